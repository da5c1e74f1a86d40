//! Adopting sites that already run, set up the way Laravel Forge, VitoDeploy, Deployer or a person
//! by hand lay them out (`tests/fixtures/adopt/`): `siteward discover` writes specs with secret
//! references only, their first plan is the takeover, the apply takes over while requests keep
//! answering and the scheduler runs once a minute, the data stays as it was, the next plan is
//! empty, and the adopted site migrates like any other.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use support::{CommandOutput, Fleet, Host, Workspace, curl_response, shell_quote};

const COMMON: &str = include_str!("fixtures/adopt/common.sh");
const CHECK: &str = include_str!("fixtures/adopt/check.sh");

/// A site a fixture laid out on a host, with the secrets it was given.
struct Fixture {
    host: Host,
    domain: String,
    engine: &'static str,
    database: String,
    vars: Vec<(String, String)>,
    db_password: String,
    app_key: String,
    /// The database's clock when the fixture was done.
    set_up_at: String,
}

/// A value no earlier run used: secrets that must never show up anywhere.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}{nanos:x}{}", std::process::id())
}

impl Fixture {
    /// Runs `tests/fixtures/adopt/<fixture>.sh` on `host` for `domain`.
    fn set_up(
        host: Host,
        fixture: &str,
        domain: &str,
        user: &str,
        engine: &'static str,
        extra: &[(&str, &str)],
    ) -> Result<Fixture> {
        let database = domain.split('.').next().unwrap_or(domain).replace('-', "_");
        let db_password = unique("Db-pw-");
        let app_key = format!("base64:{}", unique("QXBwS2V5"));
        let mut vars: Vec<(String, String)> = [
            ("SITE_DOMAIN", domain),
            ("SITE_USER", user),
            ("DB_ENGINE", engine),
            ("DB_NAME", &database),
            ("DB_USER", &database),
            ("DB_PASSWORD", &db_password),
            ("APP_KEY", &app_key),
            ("GIT_URL", &support::app_repo_url(&host)),
            ("GIT_BRANCH", "main"),
            ("REDIS_DB", "2"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let script = match fixture {
            "forge" => include_str!("fixtures/adopt/forge.sh"),
            "vito" => include_str!("fixtures/adopt/vito.sh"),
            "deployer" => include_str!("fixtures/adopt/deployer.sh"),
            _ => include_str!("fixtures/adopt/manual.sh"),
        };
        let mut fixture = Fixture {
            host,
            domain: domain.to_owned(),
            engine,
            database,
            vars,
            db_password,
            app_key,
            set_up_at: String::new(),
        };
        let site = domain.replace('.', "-");
        forget_siteward(&fixture.host, &site, &fixture.database)?;
        let out = fixture.run(&format!("{COMMON}{script}"))?;
        ensure!(
            out.trim().ends_with(&format!("ok {domain}")),
            "fixture said: {out}"
        );
        fixture.set_up_at = fixture.second_now()?;
        Ok(fixture)
    }

    /// Runs a bash script on the host with the fixture's variables before it (on stdin).
    fn run(&self, script: &str) -> Result<String> {
        let mut text = String::new();
        for (key, value) in &self.vars {
            text.push_str(&format!("{key}={}\n", shell_quote(value)));
        }
        text.push_str(script);
        self.host.exec_with_stdin("bash -s", Some(text.as_bytes()))
    }

    /// `check.sh`'s facts about the site on `host` (this fixture's host by default).
    fn check_on(&self, host: &Host) -> Result<BTreeMap<String, String>> {
        let mut text = String::new();
        for (key, value) in &self.vars {
            text.push_str(&format!("{key}={}\n", shell_quote(value)));
        }
        text.push_str(CHECK);
        let out = host.exec_with_stdin("bash -s", Some(text.as_bytes()))?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    fn check(&self) -> Result<BTreeMap<String, String>> {
        self.check_on(&self.host)
    }

    /// A query as the database's administrator, on the site's database.
    fn sql(&self, query: &str) -> Result<String> {
        let command = if self.engine == "mariadb" {
            format!("mariadb -N -B {}", shell_quote(&self.database))
        } else {
            format!(
                "cd / && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d {}",
                shell_quote(&self.database)
            )
        };
        self.host.exec_with_stdin(&command, Some(query.as_bytes()))
    }

    /// The database server's clock, to the minute (`YYYY-MM-DD HH:MM`).
    fn minute_now(&self) -> Result<String> {
        let query = if self.engine == "mariadb" {
            "SELECT DATE_FORMAT(NOW(), '%Y-%m-%d %H:%i');"
        } else {
            "SELECT to_char(now(), 'YYYY-MM-DD HH24:MI');"
        };
        Ok(self.sql(query)?.trim().to_owned())
    }

    /// Waits until the old scheduler has run once after `after` (the database's clock, to the
    /// second); its minute, from which on every minute must have one run.
    fn first_run_after(&self, after: &str) -> Result<String> {
        let query = if self.engine == "mariadb" {
            format!(
                "SELECT DATE_FORMAT(MIN(ran_at), '%Y-%m-%d %H:%i') FROM schedule_runs WHERE ran_at >= '{after}';"
            )
        } else {
            format!(
                "SELECT to_char(MIN(ran_at), 'YYYY-MM-DD HH24:MI') FROM schedule_runs WHERE ran_at >= '{after}';"
            )
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(130);
        loop {
            let minute = self.sql(&query)?.trim().to_owned();
            if !minute.is_empty() && minute != "NULL" {
                return Ok(minute);
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "the site's scheduler never ran"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// The database server's clock, to the second.
    fn second_now(&self) -> Result<String> {
        let query = if self.engine == "mariadb" {
            "SELECT DATE_FORMAT(NOW(), '%Y-%m-%d %H:%i:%s');"
        } else {
            "SELECT to_char(now(), 'YYYY-MM-DD HH24:MI:SS');"
        };
        Ok(self.sql(query)?.trim().to_owned())
    }

    /// Scheduler runs per minute from `since` (a minute) up to the current minute, excluded.
    fn runs_per_minute(&self, since: &str) -> Result<Vec<(String, u32)>> {
        let query = if self.engine == "mariadb" {
            format!(
                "SELECT DATE_FORMAT(ran_at, '%Y-%m-%d %H:%i') m, COUNT(*) FROM schedule_runs \
                 WHERE ran_at >= '{since}:00' AND ran_at < DATE_FORMAT(NOW(), '%Y-%m-%d %H:%i:00') \
                 GROUP BY m ORDER BY m;"
            )
        } else {
            format!(
                "SELECT to_char(ran_at, 'YYYY-MM-DD HH24:MI') m, COUNT(*) FROM schedule_runs \
                 WHERE ran_at >= '{since}:00' AND ran_at < date_trunc('minute', now()) \
                 GROUP BY m ORDER BY m;"
            )
        };
        let out = self.sql(&query)?;
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (minute, count) = l.split_once(['\t', '|']).context("a row")?;
                Ok((minute.to_owned(), count.trim().parse()?))
            })
            .collect()
    }
}

/// Removes what an earlier run's siteward made for `site` on `host` (its programs, vhost, pool,
/// cron file, certificate, record and `localhost` database user), so the fixture starts over.
fn forget_siteward(host: &Host, site: &str, database_user: &str) -> Result<()> {
    let script = format!(
        "n={site}; programs=$(cd /etc/supervisor/conf.d 2>/dev/null && ls siteward-$n-*.conf 2>/dev/null | sed 's/[.]conf$//'); \
         rm -f /etc/supervisor/conf.d/siteward-$n-*.conf; [ -z \"$programs\" ] || supervisorctl update $programs >/dev/null 2>&1; \
         rm -f /etc/nginx/conf.d/siteward-$n.conf /etc/cron.d/siteward-$n /etc/php/8.2/fpm/pool.d/siteward-$n.conf; \
         rm -rf /etc/siteward/tls/$n /var/lib/siteward/sites/$n; nginx -s reload >/dev/null 2>&1; \
         kill -USR2 $(cat /run/php/php8.2-fpm.pid) 2>/dev/null; \
         mariadb -e \"DROP USER IF EXISTS '{database_user}'@'localhost', '{database_user}'@'127.0.0.1'\" >/dev/null 2>&1; true"
    );
    host.exec(&script).map(drop)
}

/// Removes a moved site from a migration's target: siteward's files, the user and its home,
/// the database.
fn forget_moved(host: &Host, site: &str, user: &str, root: &str, database: &str) -> Result<()> {
    forget_siteward(host, site, database)?;
    let script = format!(
        "pkill -u {user} >/dev/null 2>&1; userdel -r -f {user} >/dev/null 2>&1; groupdel {user} >/dev/null 2>&1; rm -rf {root}; mariadb -e \"DROP DATABASE IF EXISTS {database}; DROP USER IF EXISTS '{database}'@'%'\" >/dev/null 2>&1; \
         (cd / && runuser -u postgres -- psql -Xq -c 'DROP DATABASE IF EXISTS {database} WITH (FORCE)' -c 'DROP ROLE IF EXISTS {database}') >/dev/null 2>&1; true"
    );
    host.exec(&script).map(drop)
}

/// What a discovery wrote and said.
struct Discovered {
    report: serde_json::Value,
    out: CommandOutput,
}

/// `siteward discover web-1 --site SITE` into `discovered/`; the spec goes into `specs/sites/`.
fn discover(workspace: &Workspace, site: &str) -> Result<Discovered> {
    let out = workspace.siteward(&[
        "discover",
        "web-1",
        "--out",
        "discovered",
        "--site",
        site,
        "--format",
        "json",
    ])?;
    ensure!(matches!(out.code(), Some(0 | 2)), "discover failed: {out}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).context("the report")?;
    let spec = std::fs::read_to_string(
        workspace
            .root()
            .join(format!("discovered/sites/{site}.yaml")),
    )?;
    workspace.write_spec(&format!("sites/{site}.yaml"), &spec)?;
    Ok(Discovered { report, out })
}

/// The values of `secrets.env.example`'s references, read where each comment says they live
/// (`# web-1:PATH KEY`): a `.env` key, or a whole file (certificates and keys).
fn secrets(workspace: &Workspace, host: &Host) -> Result<Vec<(String, String)>> {
    let example = std::fs::read_to_string(workspace.root().join("discovered/secrets.env.example"))?;
    let mut out = Vec::new();
    let mut source: Option<(String, String)> = None;
    for line in example.lines() {
        if let Some(rest) = line.strip_prefix("# web-1:") {
            let (path, key) = rest.rsplit_once(' ').context("PATH KEY")?;
            source = Some((path.to_owned(), key.to_owned()));
        } else if let Some(name) = line.strip_suffix('=') {
            let (path, key) = source.take().context("a comment before each name")?;
            let text = host.read_file(&path)?;
            let value = if path.ends_with(".env") {
                siteward::discover::dotenv::parse(&text)
                    .into_iter()
                    .find(|e| e.key == key)
                    .map(|e| e.value)
                    .with_context(|| format!("{key} in {path}"))?
            } else {
                text
            };
            out.push((name.to_owned(), value));
        }
    }
    Ok(out)
}

fn with_env(secrets: &[(String, String)]) -> Vec<(&str, &str)> {
    secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The site's changes that do something, as `(resource, action, ops)`.
fn pending(plan: &serde_json::Value, site: &str) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for entry in plan["sites"].as_array().into_iter().flatten() {
        if entry["site"] != site {
            continue;
        }
        for change in entry["changes"].as_array().into_iter().flatten() {
            if change["action"] == "no-op" {
                continue;
            }
            let ops = change["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s["op"].as_str().unwrap_or_default().to_owned())
                .collect();
            let text = |k: &str| change[k].as_str().unwrap_or_default().to_owned();
            out.push((text("resource"), text("action"), ops));
        }
    }
    out
}

/// Requests `path` of the site until `stop`, counting the ones that did not answer 200.
fn request_loop(host: &Host, domain: &str, https: bool, stop: &AtomicBool) -> (u32, Vec<String>) {
    let (mut requests, mut failures) = (0, Vec::new());
    let resolve = format!("{domain}:443:{}", host.ip());
    let url = format!("https://{domain}/up");
    while !stop.load(Ordering::Relaxed) && requests < 20_000 {
        requests += 1;
        let answer = if https {
            curl_response(
                "GET /up",
                &["--insecure", "--resolve", &resolve, &url],
                10,
                None,
            )
        } else {
            host.http_get(domain, "/up")
        };
        match answer {
            Ok((200, _)) => {}
            other => failures.push(format!("{other:?}")),
        }
    }
    (requests, failures)
}

/// Applies the specs while the loop runs; the loop's count and failures.
fn apply_under_load(
    workspace: &Workspace,
    env: &[(&str, &str)],
    fixture: &Fixture,
    https: bool,
) -> Result<(CommandOutput, u32, Vec<String>)> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let looping = scope.spawn(|| request_loop(&fixture.host, &fixture.domain, https, &stop));
        std::thread::sleep(Duration::from_millis(300));
        let applied = workspace.siteward_with_env(&["apply", "--auto-approve"], env);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let (requests, failures) = looping
            .join()
            .map_err(|_| anyhow::anyhow!("the loop panicked"))?;
        Ok((applied?, requests, failures))
    })
}

/// Waits until the database's clock has passed two more minute boundaries.
fn wait_two_minutes(fixture: &Fixture) -> Result<()> {
    let start = fixture.minute_now()?;
    let mut passed = 0;
    let mut last = start;
    let deadline = std::time::Instant::now() + Duration::from_secs(200);
    while passed < 2 {
        ensure!(
            std::time::Instant::now() < deadline,
            "the database clock did not move"
        );
        std::thread::sleep(Duration::from_secs(2));
        let now = fixture.minute_now()?;
        if now != last {
            passed += 1;
            last = now;
        }
    }
    // Let the minute's run finish inserting.
    std::thread::sleep(Duration::from_secs(3));
    Ok(())
}

/// Every text siteward wrote for the site: files under `dir`, the outputs, the state store.
fn assert_no_secret(dir: &Path, texts: &[&str], fixture: &Fixture) -> Result<()> {
    let secrets = [fixture.db_password.as_str(), fixture.app_key.as_str()];
    let mut files = vec![dir.join(".siteward/state.db")];
    for entry in walk(&dir.join("discovered"))? {
        files.push(entry);
    }
    for file in files.iter().filter(|f| f.exists()) {
        let bytes = std::fs::read(file)?;
        let text = String::from_utf8_lossy(&bytes);
        for secret in secrets {
            ensure!(!text.contains(secret), "a secret is in {}", file.display());
        }
    }
    for (index, text) in texts.iter().enumerate() {
        for secret in secrets {
            ensure!(!text.contains(secret), "a secret is in output {index}");
        }
    }
    Ok(())
}

fn walk(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

/// The whole adoption of one fixture's site; returns the workspace and the secrets.
fn adopt(
    fixture: &Fixture,
    site: &str,
    panel: &str,
    https: bool,
) -> Result<(Workspace, Vec<(String, String)>)> {
    let workspace = Workspace::with_servers(&[("web-1", &fixture.host)])?;
    let discovered = discover(&workspace, site)?;
    let found = &discovered.report["sites"][0];
    assert_eq!(found["name"], site, "{}", discovered.report);
    assert_eq!(found["panel"], panel, "{}", discovered.report);
    let validate = workspace.siteward(&["validate", "discovered"])?;
    validate.assert_success();
    let secrets = secrets(&workspace, &fixture.host)?;
    let env = with_env(&secrets);

    let plan = workspace.siteward_with_env(&["plan", "--format", "json"], &env)?;
    plan.assert_success();
    let plan_json: serde_json::Value = serde_json::from_str(&plan.stdout)?;
    let changes = pending(&plan_json, site);
    for (resource, _, ops) in &changes {
        assert!(
            !["code", "env", "database"].contains(&resource.as_str()),
            "the takeover changes the {resource}: {ops:?} in {changes:?}"
        );
    }
    for resource in ["vhost", "cron", "worker"] {
        assert!(
            changes
                .iter()
                .any(|(r, _, ops)| r == resource && ops.iter().any(|o| o == "takeOver")),
            "no takeover of the {resource}: {changes:?}"
        );
    }

    let before = fixture.check()?;
    assert_eq!(before["canary_rows"], "1000", "{before:?}");
    let since = fixture.first_run_after(&fixture.set_up_at)?;
    let (applied, requests, failures) = apply_under_load(&workspace, &env, fixture, https)?;
    applied.assert_success();
    assert!(requests > 10, "the loop ran: {requests}");
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "of {requests} requests during the takeover"
    );

    let replan = workspace.siteward_with_env(&["plan", "--detailed-exitcode"], &env)?;
    replan.assert_code(0);
    wait_two_minutes(fixture)?;
    let runs = fixture.runs_per_minute(&since)?;
    assert!(
        runs.len() >= 2,
        "scheduler runs per minute since {since}: {runs:?}"
    );
    assert!(
        runs.iter().all(|(_, n)| *n == 1),
        "one run a minute, no more, no less: {runs:?}"
    );
    let minutes: Vec<&str> = runs.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        minutes.first(),
        Some(&since.as_str()),
        "no minute skipped: {runs:?}"
    );

    let after = fixture.check()?;
    assert_eq!(
        after["canary_md5"], before["canary_md5"],
        "the data is unchanged"
    );
    assert_eq!(after["workers_running"], "1", "{after:?}");
    let programs = fixture.host.exec("supervisorctl status")?;
    let ours = format!("siteward-{site}-");
    assert!(
        programs
            .lines()
            .filter(|l| l.contains(&fixture.domain) || l.starts_with(&ours))
            .all(|l| l.starts_with(&ours)),
        "only siteward's programs run the site: {programs}"
    );
    assert_no_secret(
        workspace.root(),
        &[
            &discovered.out.stdout,
            &discovered.out.stderr,
            &plan.stdout,
            &plan.stderr,
            &applied.stdout,
            &applied.stderr,
        ],
        fixture,
    )?;
    Ok((workspace, secrets))
}

#[test]
fn a_forge_site_is_adopted_without_a_failed_request_and_then_migrates() -> Result<()> {
    let source = Fleet::host("t-adopt-a")?;
    let target = Fleet::host("t-adopt-b")?;
    forget_moved(
        &target,
        "forged-test",
        "forge",
        "/home/forge/forged.test",
        "forged",
    )?;
    let fixture = Fixture::set_up(
        source,
        "forge",
        "forged.test",
        "forge",
        "mariadb",
        &[("WORKER_ID", "401")],
    )?;
    let (workspace, secrets) = adopt(&fixture, "forged-test", "forge", true)?;
    let crontab = fixture.host.read_file("/etc/crontab")?;
    assert!(
        !crontab.contains("/home/forge/forged.test/"),
        "the old scheduler line is gone: {crontab}"
    );
    let again = workspace.siteward(&["discover", "web-1", "--out", "again", "--format", "json"])?;
    let report: serde_json::Value = serde_json::from_str(&again.stdout).context("the report")?;
    let rediscovered = report["sites"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["name"] == "forged-test");
    assert!(
        !rediscovered,
        "an adopted site is not discovered again: {}",
        again.stdout
    );
    assert!(
        report["items"].as_array().into_iter().flatten().any(|i| {
            i["kind"] == "siteward-site"
                && i["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("`forged-test`"))
        }),
        "the report says the site is siteward's now: {}",
        again.stdout
    );
    let kept = fixture
        .host
        .exec("ls /var/lib/siteward/sites/forged-test/adopted/*/")?;
    assert!(
        kept.contains("%etc%nginx%sites-available%forged.test"),
        "the old vhost is kept: {kept}"
    );

    workspace.add_server("web-2", &target)?;
    let path = workspace.specs_dir().join("sites/forged-test.yaml");
    let spec = std::fs::read_to_string(&path)?.replace("server: web-1", "server: web-2");
    std::fs::write(&path, spec)?;
    let env = with_env(&secrets);
    let moved = workspace.siteward_with_env(&["apply", "--auto-approve"], &env)?;
    moved.assert_success();
    let on_target = fixture.check_on(&target)?;
    assert_eq!(on_target["https_up"], "200", "{on_target:?}");
    assert_eq!(
        on_target["canary_md5"],
        fixture.check()?["canary_md5"],
        "the data moved as it was"
    );
    workspace
        .siteward_with_env(&["plan", "--detailed-exitcode"], &env)?
        .assert_code(0);
    Ok(())
}

#[test]
fn a_vito_site_with_its_own_user_pool_and_crontab_is_adopted() -> Result<()> {
    let host = Fleet::host("t-adopt-c")?;
    let fixture = Fixture::set_up(
        host,
        "vito",
        "vitoed.test",
        "vitoed",
        "mariadb",
        &[("WORKER_ID", "17")],
    )?;
    adopt(&fixture, "vitoed-test", "vito", false)?;
    let pool = fixture.host.exists("/etc/php/8.2/fpm/pool.d/vitoed.conf")?;
    assert!(!pool, "the user's own pool went with the takeover");
    let crontab = fixture.host.read_file("/var/spool/cron/crontabs/vitoed")?;
    assert!(
        !crontab.contains("schedule:run"),
        "the user's scheduler line is gone: {crontab}"
    );
    Ok(())
}

#[test]
fn a_deployer_site_keeps_its_releases_and_is_adopted() -> Result<()> {
    let host = Fleet::host("t-adopt-d")?;
    let fixture = Fixture::set_up(
        host,
        "deployer",
        "deployed.test",
        "deployer",
        "postgres",
        &[],
    )?;
    adopt(&fixture, "deployed-test", "deployer", false)?;
    let current = fixture
        .host
        .exec("readlink /home/deployer/deployed.test/current")?;
    assert_eq!(current.trim(), "releases/2", "the live release stays");
    Ok(())
}

#[test]
fn a_site_set_up_by_hand_is_adopted() -> Result<()> {
    let host = Fleet::host("t-adopt-e")?;
    let fixture = Fixture::set_up(host, "manual", "handmade.test", "handmade", "postgres", &[])?;
    adopt(&fixture, "handmade-test", "manual", false)?;
    let gone = fixture.host.exists("/etc/cron.d/handmade-test-scheduler")?;
    assert!(!gone, "the hand-made cron file went with the takeover");
    Ok(())
}

#[test]
fn discover_never_overwrites_and_names_a_missing_server() -> Result<()> {
    let host = Fleet::host("t-adopt-e")?;
    let workspace = Workspace::with_servers(&[("web-1", &host)])?;
    let missing = workspace.siteward(&["discover", "web-9"])?;
    missing.assert_code(1);
    assert!(
        missing.stderr.contains("no Server named `web-9`"),
        "{missing}"
    );
    std::fs::create_dir_all(workspace.root().join("out"))?;
    std::fs::write(workspace.root().join("out/secrets.env.example"), "mine\n")?;
    let refused = workspace.siteward(&["discover", "web-1", "--out", "out"])?;
    refused.assert_code(1);
    assert!(refused.stderr.contains("would be overwritten"), "{refused}");
    let kept = std::fs::read_to_string(workspace.root().join("out/secrets.env.example"))?;
    assert_eq!(kept, "mine\n");
    if !workspace.root().join("out/servers").exists() {
        return Ok(());
    }
    bail!("a file was written although one would have been overwritten")
}
