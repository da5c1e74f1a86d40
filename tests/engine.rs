//! The reconcile engine against real servers: fresh applies, idempotence, drift, locks,
//! stale plans, crashes and the secret canary. Hosts: `t-engine-*`.

mod support;

use anyhow::{Context, Result, ensure};
use std::time::{Duration, Instant};
use support::{Fleet, Host, Workspace};

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

struct Site {
    workspace: Workspace,
    host: Host,
    name: String,
    env: Vec<(String, String)>,
}

impl Site {
    fn new(host_name: &str, name: &str, engine: &str, password: &str) -> Result<Site> {
        let host = Fleet::host(host_name)?;
        let workspace = Workspace::with_servers(&[("web", &host)])?;
        workspace.write_spec(
            &format!("sites/{name}.yaml"),
            &laravel_site(name, engine, ""),
        )?;
        let site = Site {
            workspace,
            host,
            name: name.to_owned(),
            env: secrets(name, password),
        };
        site.clean()?;
        Ok(site)
    }

    /// Removes what an earlier run of the test left on the host.
    fn clean(&self) -> Result<()> {
        let user = self.name.replace('-', "_");
        let script = format!(
            "supervisorctl stop 'siteward-{n}-queue:*' >/dev/null 2>&1; rm -f /etc/supervisor/conf.d/siteward-{n}-*.conf /etc/nginx/conf.d/siteward-{n}.conf \
             /etc/php/8.2/fpm/pool.d/siteward-{n}.conf /etc/cron.d/siteward-{n}; supervisorctl update >/dev/null 2>&1; \
             pkill -u {user} >/dev/null 2>&1; userdel -r {user} >/dev/null 2>&1; groupdel {user} >/dev/null 2>&1; rm -rf /var/lib/siteward/sites/{n}; \
             mariadb -e 'DROP DATABASE IF EXISTS {user}; DROP USER IF EXISTS {user}@localhost' ; \
             runuser -u postgres -- psql -Xq -c 'DROP DATABASE IF EXISTS {user} WITH (FORCE)' -c 'DROP ROLE IF EXISTS {user}' >/dev/null 2>&1; true",
            n = self.name
        );
        self.host.exec(&script)?;
        Ok(())
    }

    fn siteward(&self, args: &[&str]) -> Result<support::CommandOutput> {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.workspace.siteward_with_env(args, &env)
    }

    fn apply(&self) -> Result<support::CommandOutput> {
        self.siteward(&["apply", "--auto-approve"])
    }

    fn plan_json(&self) -> Result<serde_json::Value> {
        let out = self.siteward(&["plan", "--format", "json"])?;
        out.assert_success();
        serde_json::from_str(&out.stdout).context("plan JSON")
    }

    fn pending(&self) -> Result<Vec<(String, String, String)>> {
        let plan = self.plan_json()?;
        let mut out = Vec::new();
        for site in plan["sites"].as_array().into_iter().flatten() {
            if site["site"] != self.name.as_str() {
                continue;
            }
            for change in site["changes"].as_array().into_iter().flatten() {
                if change["action"] != "no-op" {
                    let text = |k: &str| change[k].as_str().unwrap_or_default().to_owned();
                    out.push((text("resource"), text("action"), text("name")));
                }
            }
        }
        Ok(out)
    }

    fn page(&self) -> Result<serde_json::Value> {
        let (status, body) = self.host.http_get(&format!("{}.test", self.name), "/")?;
        ensure!(status == 200, "status {status}: {body}");
        serde_json::from_str(&body).with_context(|| format!("page body: {body}"))
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

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().unwrap_or(false) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    anyhow::bail!("{what} did not happen within {limit:?}")
}

fn nginx_workers(host: &Host) -> Result<String> {
    host.exec("ps -eo pid=,args= | awk '$2 == \"nginx:\" && $3 == \"worker\" { print $1 }' | sort | tr '\\n' ' '")
}

fn fresh_site_works(site: &Site) -> Result<()> {
    site.apply()?.assert_success();
    let page = site.page()?;
    assert_eq!(page["app"], site.name.as_str(), "{page}");
    assert_eq!(page["database"]["ok"], true, "{page}");
    assert_eq!(page["redis"]["ok"], true, "{page}");
    let program = format!("siteward-{}-queue", site.name);
    wait_for("the worker running", Duration::from_secs(20), || {
        Ok(site
            .host
            .exec(&format!("supervisorctl status '{program}:*'"))?
            .contains("RUNNING"))
    })?;
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
    let site = Site::new("t-engine-a", "eng-maria", "mariadb", "maria-pass-1")?;
    fresh_site_works(&site)
}

#[test]
fn a_fresh_apply_makes_a_working_postgres_site_and_a_second_changes_nothing() -> Result<()> {
    let site = Site::new("t-engine-b", "eng-pg", "postgres", "pg-pass-1")?;
    fresh_site_works(&site)
}
