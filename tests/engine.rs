//! The reconcile engine against real servers: fresh applies, idempotence, drift, locks,
//! stale plans, crashes and the secret canary. Hosts: `t-engine-*`.

mod support;

use anyhow::{Result, ensure};
use std::time::Duration;
use support::{Fleet, Host};

/// A Laravel site spec with a database, Redis, a worker, storage and secrets.
fn laravel_site(name: &str, engine: &str, extra: &str) -> String {
    let (connection, port) = if engine == "postgres" {
        ("pgsql", 5432)
    } else {
        ("mysql", 3306)
    };
    let upper = name.to_uppercase().replace('-', "_");
    format!(
        r#"apiVersion: siteward.dev/v1
kind: Site
metadata:
  name: {name}
spec:
  server: web
  type: laravel
  domain: {name}.test
  user: {user}
  php: "8.2"
  webDirectory: public
  source:
    repository: git://10.77.0.1/app.git
    branch: main
  deploy:
    script: |
      php artisan migrate --force
  env:
    APP_NAME: {name}
    APP_ENV: production
    APP_KEY: {{secret: env:{upper}_APP_KEY}}
    DB_CONNECTION: {connection}
    DB_HOST: localhost
    DB_PORT: {port}
    DB_DATABASE: {db}
    DB_USERNAME: {db}
    DB_PASSWORD: {{secret: env:{upper}_DB_PASSWORD}}
    REDIS_HOST: 127.0.0.1
  database:
    engine: {engine}
    name: {db}
    users:
      - name: {db}
        password: {{secret: env:{upper}_DB_PASSWORD}}
  redis:
    required: true
  workers:
    - name: queue
      command: php artisan queue:work
  storage:
    - storage/app/public
  health:
    path: /up
{extra}"#,
        user = name.replace('-', "_"),
        db = name.replace('-', "_"),
    )
}

/// The secrets a site spec references, as environment variables.
fn secrets(name: &str, password: &str) -> Vec<(String, String)> {
    let upper = name.to_uppercase().replace('-', "_");
    vec![
        (
            format!("{upper}_APP_KEY"),
            "base64:dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdGtleTA=".to_owned(),
        ),
        (format!("{upper}_DB_PASSWORD"), password.to_owned()),
    ]
}

use support::site::{SiteUnderTest as Site, wait_for};

impl Site {
    /// A clean Laravel site on `host_name` with a database on `engine`.
    fn laravel(host_name: &str, name: &str, engine: &str, password: &str) -> Result<Site> {
        let host = Fleet::host(host_name)?;
        let site = Site::new(&host, name, secrets(name, password))?;
        site.workspace.write_spec(
            &format!("sites/{name}.yaml"),
            &laravel_site(name, engine, ""),
        )?;
        Ok(site)
    }

    fn mtimes(&self) -> Result<String> {
        self.host.exec(&format!(
            "stat -c '%n %Y' /etc/nginx/conf.d/siteward-{n}.conf /etc/php/8.2/fpm/pool.d/siteward-{n}.conf /etc/cron.d/siteward-{n} \
             /etc/supervisor/conf.d/siteward-{n}-queue.conf /home/{u}/{n}.test/shared/.env /var/lib/siteward/sites/{n}/facts",
            n = self.name,
            u = self.name.replace('-', "_")
        ))
    }
}

fn nginx_workers(host: &Host) -> Result<String> {
    host.exec("ps -eo pid=,args= | awk '$2 == \"nginx:\" && $3 == \"worker\" { print $1 }' | sort | tr '\\n' ' '")
}

/// Waits until the `queue` worker of site `name` on `host` is RUNNING.
fn wait_for_worker(host: &Host, name: &str, within: Duration) -> Result<()> {
    let program = format!("siteward-{name}-queue");
    wait_for("the worker running", within, || {
        Ok(host
            .exec(&format!("supervisorctl status '{program}:*'"))?
            .contains("RUNNING"))
    })
}

fn fresh_site_works(site: &Site) -> Result<()> {
    site.apply()?.assert_success();
    let page = site.page()?;
    assert_eq!(page["app"], site.name.as_str(), "{page}");
    assert_eq!(page["database"]["ok"], true, "{page}");
    assert_eq!(page["redis"]["ok"], true, "{page}");
    wait_for_worker(&site.host, &site.name, Duration::from_secs(20))?;
    let log = format!(
        "/home/{}/{}.test/shared/storage/logs/schedule.log",
        site.name.replace('-', "_"),
        site.name
    );
    wait_for("the scheduler cron firing", Duration::from_secs(75), || {
        site.host.exists(&log)
    })?;

    let before = (site.mtimes()?, nginx_workers(&site.host)?);
    let second = site.apply()?;
    second.assert_success();
    assert!(second.stdout.contains("No changes"), "{second}");
    assert_eq!(site.pending()?, vec![], "the plan after an apply is empty");
    let after = (site.mtimes()?, nginx_workers(&site.host)?);
    assert_eq!(
        before, after,
        "a second apply wrote nothing and reloaded nothing"
    );
    Ok(())
}

#[test]
fn a_fresh_apply_makes_a_working_mariadb_site_and_a_second_changes_nothing() -> Result<()> {
    let site = Site::laravel("t-engine-a", "eng-maria", "mariadb", "maria-pass-1")?;
    fresh_site_works(&site)
}

#[test]
fn a_fresh_apply_makes_a_working_postgres_site_and_a_second_changes_nothing() -> Result<()> {
    let site = Site::laravel("t-engine-b", "eng-pg", "postgres", "pg-pass-1")?;
    fresh_site_works(&site)
}

impl Site {
    /// Rewrites the site's spec with `edit` applied to the base document.
    fn edit_spec(&self, engine: &str, edit: impl Fn(String) -> String) -> Result<()> {
        let base = laravel_site(&self.name, engine, "");
        let edited = edit(base.clone());
        ensure!(edited != base, "the edit changed nothing");
        self.workspace
            .write_spec(&format!("sites/{}.yaml", self.name), &edited)?;
        Ok(())
    }

    /// Pending changes without the record (which changes with every spec change).
    fn pending_resources(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .pending()?
            .into_iter()
            .filter(|(resource, _, _)| resource != "record")
            .map(|(resource, action, _)| (resource, action))
            .collect())
    }
}

fn pair(resource: &str, action: &str) -> (String, String) {
    (resource.to_owned(), action.to_owned())
}

/// What changes, how the spec is edited, and the changes the plan must show.
type FieldCase = (
    &'static str,
    Box<dyn Fn(String) -> String>,
    Vec<(String, String)>,
);

#[test]
fn changing_each_field_plans_exactly_that_change_and_converges() -> Result<()> {
    let mut site = Site::laravel("t-engine-c", "eng-fields", "mariadb", "fields-pass-1")?;
    site.apply()?.assert_success();
    let cases: Vec<FieldCase> = vec![
        (
            "an alias",
            Box::new(|s: String| {
                s.replace(
                    "  domain: eng-fields.test\n",
                    "  domain: eng-fields.test\n  aliases: [www.eng-fields.test]\n",
                )
            }),
            vec![pair("vhost", "update")],
        ),
        (
            "a plain .env value",
            Box::new(|s: String| s.replace("APP_ENV: production", "APP_ENV: staging")),
            vec![pair("env", "update")],
        ),
        (
            "a cron job",
            Box::new(|s: String| {
                s + "  crons:\n    - name: report\n      schedule: \"@hourly\"\n      command: php artisan about\n"
            }),
            vec![pair("cron", "update")],
        ),
        (
            "the number of worker processes",
            Box::new(|s: String| {
                s.replace(
                    "      command: php artisan queue:work\n",
                    "      command: php artisan queue:work\n      processes: 2\n",
                )
            }),
            vec![pair("worker", "update")],
        ),
        (
            "a second worker",
            Box::new(|s: String| {
                s.replace(
                    "      command: php artisan queue:work\n",
                    "      command: php artisan queue:work\n    - name: mail\n      command: php artisan queue:work --queue=mail\n",
                )
            }),
            vec![pair("worker", "create")],
        ),
        (
            "a storage path",
            Box::new(|s: String| {
                s.replace(
                    "    - storage/app/public\n",
                    "    - storage/app/public\n    - storage/app/exports\n",
                )
            }),
            vec![pair("directory", "update")],
        ),
        (
            "the database collation",
            Box::new(|s: String| {
                s.replace("    name: eng_fields\n    users:", "    name: eng_fields\n    charset: utf8mb4\n    collation: utf8mb4_bin\n    users:")
            }),
            vec![pair("database", "update")],
        ),
        (
            "a read-only database user",
            Box::new(|s: String| {
                s.replace(
                    "        password: {secret: env:ENG_FIELDS_DB_PASSWORD}\n",
                    "        password: {secret: env:ENG_FIELDS_DB_PASSWORD}\n      - name: eng_fields_ro\n        password: {secret: env:ENG_FIELDS_DB_PASSWORD}\n        privileges: [SELECT]\n",
                )
            }),
            vec![pair("database-user", "create")],
        ),
    ];
    for (what, edit, expected) in &cases {
        site.edit_spec("mariadb", edit)?;
        assert_eq!(&site.pending_resources()?, expected, "changing {what}");
        site.apply()?.assert_success();
        assert_eq!(site.pending()?, vec![], "after applying {what}");
        site.workspace.write_spec(
            "sites/eng-fields.yaml",
            &laravel_site("eng-fields", "mariadb", ""),
        )?;
        let reverted = site.pending_resources()?;
        // Storage directories hold data: a path leaving the spec keeps its directory. A spec
        // without a collation accepts whatever the database has.
        let keeps_data = *what == "a storage path" || *what == "the database collation";
        assert_eq!(
            reverted.is_empty(),
            keeps_data,
            "reverting {what}: {reverted:?}"
        );
        site.apply()?.assert_success();
        assert_eq!(site.pending()?, vec![], "after reverting {what}");
    }
    let grants = site
        .host
        .mysql("SELECT COUNT(*) FROM mysql.user WHERE user = 'eng_fields_ro'")?;
    assert_eq!(
        grants.trim(),
        "0",
        "a database user removed from the spec is dropped"
    );

    site.env[1].1 = "fields-pass-2".to_owned();
    let changes = site.pending_resources()?;
    assert_eq!(
        changes,
        vec![pair("env", "update"), pair("database-user", "update")],
        "a new password"
    );
    site.apply()?.assert_success();
    assert_eq!(site.pending()?, vec![]);
    let page = site.page()?;
    assert_eq!(
        page["database"]["ok"], true,
        "the site logs in with the new password: {page}"
    );
    Ok(())
}

#[test]
fn drift_made_by_hand_shows_in_the_plan_and_apply_repairs_it() -> Result<()> {
    let site = Site::laravel("t-engine-d", "eng-drift", "mariadb", "drift-pass-1")?;
    site.apply()?.assert_success();
    let user = "eng_drift";
    let host = &site.host;
    host.exec(&format!(
        "(crontab -u {user} -l 2>/dev/null; echo '*/5 * * * * echo mine') | crontab -u {user} -"
    ))?;
    host.exec("sed -i 's/client_max_body_size 64m/client_max_body_size 1m/' /etc/nginx/conf.d/siteward-eng-drift.conf")?;
    host.mysql("REVOKE DELETE ON eng_drift.* FROM 'eng_drift'@'localhost'")?;
    host.exec("rm /etc/supervisor/conf.d/siteward-eng-drift-queue.conf && supervisorctl update >/dev/null")?;
    host.exec("echo '* * * * * root touch /tmp/hand-made' >> /etc/cron.d/siteward-eng-drift")?;

    let mut changes = site.pending_resources()?;
    changes.sort();
    let mut expected = vec![
        pair("vhost", "update"),
        pair("database-user", "update"),
        pair("worker", "create"),
        pair("cron", "update"),
    ];
    expected.sort();
    assert_eq!(changes, expected);
    let plan = site.siteward(&["plan"])?;
    assert!(
        plan.stdout.contains("-    client_max_body_size 1m;")
            && plan.stdout.contains("+    client_max_body_size 64m;"),
        "{plan}"
    );
    assert!(plan.stdout.contains("missing DELETE"), "{plan}");

    site.apply()?.assert_success();
    assert_eq!(site.pending()?, vec![], "apply repaired the drift");
    wait_for(
        "the recreated worker running",
        Duration::from_secs(20),
        || {
            Ok(host
                .exec("supervisorctl status 'siteward-eng-drift-queue:*'")?
                .contains("RUNNING"))
        },
    )?;
    let crontab = host.exec(&format!("crontab -u {user} -l"))?;
    assert!(
        crontab.contains("echo mine"),
        "the user's own crontab is untouched: {crontab}"
    );
    assert!(
        !host
            .read_file("/etc/cron.d/siteward-eng-drift")?
            .contains("hand-made")
    );
    Ok(())
}

/// `siteward apply --auto-approve` of `site` started in the background.
fn spawn_apply(site: &Site) -> Result<std::process::Child> {
    Ok(std::process::Command::new(env!("CARGO_BIN_EXE_siteward"))
        .args(["apply", "--auto-approve"])
        .current_dir(site.workspace.root())
        .envs(site.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?)
}

#[test]
fn an_apply_killed_in_the_middle_converges_on_the_next_apply() -> Result<()> {
    let site = Site::laravel("t-engine-d", "eng-kill", "mariadb", "kill-pass-1")?;
    // The deploy script holds while /tmp/eng-kill-hold exists, so that the apply is killed
    // at a known point: the database made, the release being built, no worker nor record yet.
    let hold = "/tmp/eng-kill-hold";
    let reached = "/tmp/eng-kill-reached";
    let runs = "/tmp/eng-kill-runs";
    let script = format!(
        "echo run >> {runs}\n      if [ -e {hold} ]; then : > {reached}; while [ -e {hold} ]; do sleep 0.2; done; fi\n      php artisan migrate --force"
    );
    site.workspace.write_spec(
        "sites/eng-kill.yaml",
        &laravel_site("eng-kill", "mariadb", "").replace("php artisan migrate --force", &script),
    )?;
    let host = &site.host;
    let lock = "/run/siteward/deploy-%home%eng_kill%eng-kill.test.lock";
    // `-o`: the lock is flock's alone (not its child's), so killing flock releases it.
    let holder = format!("flock -o {lock} sleep 600");
    host.exec(&format!(
        "pkill -f '^{holder}$'; rm -f {reached} {runs} && touch {hold}"
    ))?;
    let mut killed = spawn_apply(&site)?;
    wait_for(
        "the apply reaching the deploy script",
        Duration::from_secs(90),
        || host.exists(reached),
    )?;
    assert!(
        host.mysql("SHOW DATABASES LIKE 'eng_kill'")?
            .contains("eng_kill"),
        "the database was made before the deploy"
    );
    killed.kill()?;
    killed.wait()?;
    // Its session gone, the server stops what it ran (nothing else would ever stop it).
    wait_for(
        "the server stopping the killed apply's deploy",
        Duration::from_secs(20),
        || {
            Ok(!host
                .run("pgrep -u eng_kill -f siteward-deploy", None)?
                .success())
        },
    )?;
    host.exec(&format!("rm -f {hold} {reached}"))?;
    assert!(
        !site.pending()?.is_empty(),
        "the killed apply left work to do"
    );

    // A deploy of the site that still runs (its apply's connection half open: a runner that
    // vanished) holds the site's deploy lock. The next deploy waits for it rather than
    // running the same migrations beside it.
    host.exec(&format!(
        "mkdir -p /run/siteward && (setsid {holder} </dev/null >/dev/null 2>&1 &)"
    ))?;
    let next = spawn_apply(&site)?;
    wait_for(
        "the next deploy waiting for the running one",
        Duration::from_secs(90),
        || Ok(host.run("pgrep -f '^flock -w [0-9]+ 8$'", None)?.success()),
    )?;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        host.exec(&format!("wc -l < {runs}"))?.trim(),
        "1",
        "the next deploy script waits"
    );
    host.exec(&format!("pkill -f '^{holder}$'"))?;
    let output = next.wait_with_output()?;
    assert!(
        output.status.success(),
        "the next apply succeeded: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(site.pending()?, vec![], "the next apply converged");
    assert_eq!(host.exec(&format!("wc -l < {runs}"))?.trim(), "2");
    let env_file = host.read_file("/home/eng_kill/eng-kill.test/shared/.env")?;
    assert_eq!(
        env_file.matches("DB_PASSWORD=").count(),
        1,
        "no key written twice: {env_file}"
    );
    let live = host.exec("ls /home/eng_kill/eng-kill.test/releases | wc -l")?;
    assert!(live.trim().parse::<u32>()? >= 1);
    assert_eq!(site.page()?["database"]["ok"], true);
    Ok(())
}

/// The markers of files written or removed that their service has not loaded yet.
fn unloaded_markers(host: &Host) -> Result<String> {
    host.exec("ls -A /run/siteward/unloaded 2>/dev/null || true")
}

#[test]
fn files_written_but_never_loaded_are_reloaded_by_the_next_apply() -> Result<()> {
    let site = Site::laravel("t-engine-f", "eng-reload", "mariadb", "reload-pass-1")?;
    site.apply()?.assert_success();
    let host = &site.host;
    assert_eq!(
        unloaded_markers(host)?,
        "",
        "a whole apply leaves no marker"
    );
    // What an apply stopped between writing and reloading leaves: the right files on disk,
    // services that never loaded them, and the markers the write scripts set first.
    let vhost = "/etc/nginx/conf.d/siteward-eng-reload.conf";
    let pool = "/etc/php/8.2/fpm/pool.d/siteward-eng-reload.conf";
    host.exec(&format!(
        "mv {vhost} /root/vhost && mv {pool} /root/pool && nginx -s reload && kill -USR2 $(cat /run/php/php8.2-fpm.pid)"
    ))?;
    wait_for("the site no longer served", Duration::from_secs(20), || {
        Ok(host.http_get("eng-reload.test", "/up")?.0 == 404
            && !host.exists("/run/php/siteward-eng-reload.sock")?)
    })?;
    host.exec(&format!(
        "mv /root/vhost {vhost} && mv /root/pool {pool} && mkdir -p /run/siteward/unloaded && \
         touch /run/siteward/unloaded/%etc%nginx%conf.d%siteward-eng-reload.conf \
               /run/siteward/unloaded/%etc%php%8.2%fpm%pool.d%siteward-eng-reload.conf"
    ))?;

    let mut pending = site.pending()?;
    pending.sort();
    assert_eq!(
        pending,
        vec![
            ("fpm-pool".into(), "update".into(), pool.into()),
            ("vhost".into(), "update".into(), vhost.into()),
        ]
    );
    let plan = site.siteward(&["plan"])?;
    assert!(
        plan.stdout
            .contains(&format!("{vhost} is written but nginx has not loaded it")),
        "{plan}"
    );
    let observed = site.siteward(&["observe"])?;
    assert!(
        observed.stdout.contains(&format!(
            "unloaded: {pool} (its service has not loaded it since it changed)"
        )),
        "{observed}"
    );
    site.apply()?.assert_success();
    assert_eq!(site.page()?["app"], "eng-reload", "served again");
    assert_eq!(unloaded_markers(host)?, "");
    assert_eq!(site.pending()?, vec![], "converged");
    Ok(())
}

#[test]
fn a_stale_plan_is_refused() -> Result<()> {
    let site = Site::laravel("t-engine-e", "eng-stale", "mariadb", "stale-pass-1")?;
    let plan_file = site.workspace.root().join("fresh.plan");
    let plan_arg = plan_file.display().to_string();
    site.siteward(&["plan", "--out", &plan_arg])?
        .assert_success();
    site.apply()?.assert_success();
    let refused = site.siteward(&["apply", &plan_arg])?;
    assert_eq!(refused.code(), Some(1), "{refused}");
    assert!(
        refused.stderr.contains("the plan is stale"),
        "a plan made when nothing existed: {refused}"
    );

    site.host.exec(
        "sed -i 's/charset utf-8;/charset latin1;/' /etc/nginx/conf.d/siteward-eng-stale.conf",
    )?;
    site.siteward(&["plan", "--out", &plan_arg])?
        .assert_success();
    site.host
        .exec("echo '# touched' >> /etc/nginx/conf.d/siteward-eng-stale.conf")?;
    let refused = site.siteward(&["apply", &plan_arg])?;
    assert!(refused.stderr.contains("the plan is stale"), "{refused}");
    site.siteward(&["plan", "--out", &plan_arg])?
        .assert_success();
    site.siteward(&["apply", &plan_arg])?.assert_success();
    assert_eq!(site.pending()?, vec![]);
    Ok(())
}

#[test]
fn two_applies_at_once_never_both_act() -> Result<()> {
    let site = Site::laravel("t-engine-e", "eng-race", "mariadb", "race-pass-1")?;
    let env: Vec<(String, String)> = site.env.clone();
    let root = site.workspace.root().to_path_buf();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_siteward"))
            .args(["apply", "--auto-approve"])
            .current_dir(&root)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("NO_COLOR", "1")
            .output()
    };
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(spawn);
        let b = scope.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    let (first, second) = (first?, second?);
    let texts = [
        String::from_utf8_lossy(&first.stderr).into_owned(),
        String::from_utf8_lossy(&second.stderr).into_owned(),
    ];
    let locked = texts
        .iter()
        .filter(|t| t.contains("is locked on") && t.contains("siteward apply on"))
        .count();
    let succeeded = [first.status.success(), second.status.success()]
        .iter()
        .filter(|s| **s)
        .count();
    assert!(succeeded >= 1, "{texts:?}");
    assert!(
        locked == 1 || succeeded == 2,
        "one apply failed naming the holder: {texts:?}"
    );
    let releases = site
        .host
        .exec("ls /home/eng_race/eng-race.test/releases | wc -l")?;
    assert_eq!(releases.trim(), "1", "never both acting: one deploy");
    assert_eq!(site.pending()?, vec![]);
    Ok(())
}

#[test]
fn a_site_no_spec_names_is_orphaned_and_removed_only_with_prune() -> Result<()> {
    // Pruning removes every site no spec names: this test has its host to itself. Two sites
    // (PostgreSQL and MariaDB) go in one prune, through the apply's batches of removals.
    let mut site = Site::laravel("t-engine-f", "eng-orphan", "postgres", "orphan-pass-1")?;
    let other = "eng-orphan2";
    support::site::clean_site(&site.host, other)?;
    site.workspace.write_spec(
        &format!("sites/{other}.yaml"),
        &laravel_site(other, "mariadb", ""),
    )?;
    site.env.extend(secrets(other, "orphan-pass-2"));
    site.apply()?.assert_success();
    for name in ["eng-orphan", other] {
        wait_for_worker(&site.host, name, Duration::from_secs(30))?;
        std::fs::remove_file(
            site.workspace
                .specs_dir()
                .join(format!("sites/{name}.yaml")),
        )?;
    }
    let plan = site.siteward(&["plan"])?;
    plan.assert_success();
    assert!(
        plan.stdout.contains("site eng-orphan on web (orphaned"),
        "{plan}"
    );
    site.apply()?.assert_success();
    assert!(
        site.host.exists("/home/eng_orphan/eng-orphan.test")?,
        "not removed without --prune"
    );
    let report = site.workspace.root().join("prune.json");
    let report_arg = report.to_string_lossy().into_owned();
    site.siteward(&[
        "apply",
        "--auto-approve",
        "--prune",
        "--report",
        &report_arg,
    ])?
    .assert_success();
    let outcomes: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    let removals: Vec<&serde_json::Value> = outcomes
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|site| site["steps"].as_array().into_iter().flatten())
        .filter(|step| {
            step["what"] == "remove site eng-orphan"
                || step["what"] == format!("remove site {other}")
        })
        .collect();
    assert_eq!(removals.len(), 2, "{outcomes:#}");
    assert!(
        removals.iter().all(|step| step["ok"] == true
            && step["output"]
                .as_str()
                .is_some_and(|o| o.starts_with("one batch of"))),
        "the removals ran in the apply's batches: {outcomes:#}"
    );
    for (name, user) in [("eng-orphan", "eng_orphan"), (other, "eng_orphan2")] {
        assert!(
            !site.host.exists(&format!("/home/{user}"))?,
            "the site root and user are gone"
        );
        for file in [
            format!("/etc/nginx/conf.d/siteward-{name}.conf"),
            format!("/etc/php/8.2/fpm/pool.d/siteward-{name}.conf"),
            format!("/etc/supervisor/conf.d/siteward-{name}-queue.conf"),
            format!("/etc/cron.d/siteward-{name}"),
            format!("/var/lib/siteward/sites/{name}"),
        ] {
            assert!(!site.host.exists(&file)?, "{file} is gone");
        }
        let left = site.host.exec(&format!(
            "getent passwd {user}; getent group {user}; id -nG www-data | tr ' ' '\\n' | grep -x {user}; \
             supervisorctl status | grep siteward-{name}; ps -e -o user= | grep -x {user}; true"
        ))?;
        assert_eq!(left.trim(), "", "nothing of {name} is left: {left}");
    }
    let databases = site
        .host
        .psql("SELECT count(*) FROM pg_database WHERE datname = 'eng_orphan'")?;
    assert_eq!(databases.trim(), "0");
    let databases = site.host.mysql(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'eng_orphan2'",
    )?;
    assert_eq!(databases.trim(), "0");
    let plan = site.siteward(&["plan"])?;
    assert!(plan.stdout.contains("No changes"), "{plan}");
    Ok(())
}

/// Samples every process's command line until told to stop; returns what it saw.
fn sample_machine_cmdlines(stop: &std::sync::atomic::AtomicBool) -> String {
    let mut seen = String::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
                seen.push_str(&String::from_utf8_lossy(&bytes).replace('\0', " "));
                seen.push('\n');
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    seen
}

#[test]
fn the_secret_canary_appears_nowhere() -> Result<()> {
    let canary = format!("canary-{}-Zq7x", std::process::id());
    let site = Site::laravel("t-engine-g", "eng-canary", "mariadb", &canary)?;
    let host = &site.host;
    host.mysql("SET GLOBAL general_log_file = '/var/log/mysql/canary-general.log'; SET GLOBAL general_log = 1")?;
    host.exec("rm -f /tmp/canary-cmdlines /tmp/canary-stop; setsid sh -c 'end=$(($(date +%s) + 90)); while [ $(date +%s) -lt $end ] && [ ! -e /tmp/canary-stop ]; do cat /proc/[0-9]*/cmdline 2>/dev/null | tr \"\\0\" \" \"; echo; done > /tmp/canary-cmdlines' >/dev/null 2>&1 < /dev/null &")?;
    wait_for("the host sampler running", Duration::from_secs(10), || {
        Ok(host.exec("stat -c %s /tmp/canary-cmdlines")?.trim() != "0")
    })?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (machine_cmdlines, outputs) =
        std::thread::scope(|scope| -> Result<(String, Vec<support::CommandOutput>)> {
            let sampler = scope.spawn(|| sample_machine_cmdlines(&stop));
            let mut outputs = vec![site.siteward(&["-vvv", "plan", "--format", "json"])?];
            outputs.push(site.siteward(&["-vvv", "apply", "--auto-approve"])?);
            outputs.push(site.siteward(&["-vvv", "plan", "--format", "markdown"])?);
            outputs.push(site.siteward(&["-vvv", "--log-format", "json", "plan"])?);
            outputs.push(site.siteward(&["report", "eng-canary", "--format", "json"])?);
            outputs.push(site.siteward(&["status"])?);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            Ok((sampler.join().unwrap(), outputs))
        })?;
    host.exec("touch /tmp/canary-stop; sleep 0.3")?;
    host.mysql("SET GLOBAL general_log = 0")?;
    outputs[1].assert_success();

    // Positive controls: the secret was really used, and the samplers really sampled.
    assert!(
        host.read_file("/home/eng_canary/eng-canary.test/shared/.env")?
            .contains(&canary)
    );
    assert_eq!(site.page()?["database"]["ok"], true);
    let general_log = host.read_file("/var/log/mysql/canary-general.log")?;
    assert!(
        general_log.contains("eng_canary"),
        "the general log recorded the apply"
    );
    let host_cmdlines = host.read_file("/tmp/canary-cmdlines")?;
    assert!(
        host_cmdlines.contains("sh -c"),
        "the host sampler saw the apply's commands"
    );
    assert!(
        machine_cmdlines.contains("siteward"),
        "the machine sampler saw siteward"
    );

    for output in &outputs {
        assert!(
            !output.stdout.contains(&canary) && !output.stderr.contains(&canary),
            "siteward printed the secret: {output}"
        );
    }
    assert!(
        !general_log.contains(&canary),
        "MariaDB's general log holds the secret"
    );
    assert!(
        !host_cmdlines.contains(&canary),
        "a process argument on the host held the secret"
    );
    assert!(
        !machine_cmdlines.contains(&canary),
        "a process argument on the machine held the secret"
    );
    for entry in std::fs::read_dir(site.workspace.root().join(".siteward"))? {
        let bytes = std::fs::read(entry?.path())?;
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&canary),
            "the state store holds the secret"
        );
    }
    Ok(())
}

#[test]
fn a_vhost_that_fails_nginx_t_is_put_back_and_the_step_fails() -> Result<()> {
    // A broken nginx configuration affects every site of the host: this test has it alone.
    let site = Site::laravel("t-engine-h", "eng-nginx", "mariadb", "nginx-pass-1")?;
    site.apply()?.assert_success();
    let vhost = "/etc/nginx/conf.d/siteward-eng-nginx.conf";
    let before = site.host.read_file(vhost)?;
    site.host.write_file(
        "/etc/nginx/conf.d/zz-broken.conf",
        "this is not nginx configuration\n",
    )?;
    let result = (|| -> Result<()> {
        site.edit_spec("mariadb", |s| {
            s.replace(
                "  domain: eng-nginx.test\n",
                "  domain: eng-nginx.test\n  aliases: [www.eng-nginx.test]\n",
            )
        })?;
        let failed = site.apply()?;
        assert_eq!(failed.code(), Some(1), "{failed}");
        assert!(
            failed
                .stderr
                .contains("nginx -t failed, previous file restored"),
            "{failed}"
        );
        assert_eq!(
            site.host.read_file(vhost)?,
            before,
            "the previous vhost is back"
        );
        Ok(())
    })();
    site.host.exec("rm -f /etc/nginx/conf.d/zz-broken.conf")?;
    result?;
    site.apply()?.assert_success();
    assert!(site.host.read_file(vhost)?.contains("www.eng-nginx.test"));
    let (status, _) = site.host.http_get("www.eng-nginx.test", "/up")?;
    assert_eq!(status, 200);
    Ok(())
}
