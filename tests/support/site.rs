//! A site under test: its spec workspace on a fleet host, its secrets, and the checks the
//! engine and deploy tests share. Sites are named `<name>`, served as `<name>.test`, owned by
//! the user `<name>` with `-` turned into `_` (also the database and its user).

use super::{CommandOutput, Host, Workspace};
use anyhow::{Context, Result, bail, ensure};
use std::time::{Duration, Instant};

/// A site and where it lives.
pub struct SiteUnderTest {
    pub workspace: Workspace,
    pub host: Host,
    pub name: String,
    /// Secrets exported to every siteward run.
    pub env: Vec<(String, String)>,
}

impl SiteUnderTest {
    /// A workspace whose Server `web` is `host`, after removing what earlier runs left there.
    pub fn new(host: &Host, name: &str, env: Vec<(String, String)>) -> Result<Self> {
        let workspace = Workspace::with_servers(&[("web", host)])?;
        let site = SiteUnderTest {
            workspace,
            host: host.clone(),
            name: name.to_owned(),
            env,
        };
        site.clean()?;
        Ok(site)
    }

    /// The site's Linux user (and database name).
    pub fn user(&self) -> String {
        self.name.replace('-', "_")
    }

    /// The site root.
    pub fn root(&self) -> String {
        format!("/home/{}/{}.test", self.user(), self.name)
    }

    /// Removes the site from the host: programs, managed files, user and home, record,
    /// databases.
    pub fn clean(&self) -> Result<()> {
        clean_site(&self.host, &self.name)
    }

    /// Runs siteward in the workspace with the site's secrets.
    pub fn siteward(&self, args: &[&str]) -> Result<CommandOutput> {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.workspace.siteward_with_env(args, &env)
    }

    /// `siteward apply --auto-approve`.
    pub fn apply(&self) -> Result<CommandOutput> {
        self.siteward(&["apply", "--auto-approve"])
    }

    /// The plan as JSON.
    pub fn plan_json(&self) -> Result<serde_json::Value> {
        let out = self.siteward(&["plan", "--format", "json"])?;
        out.assert_success();
        serde_json::from_str(&out.stdout).context("plan JSON")
    }

    /// This site's changes that do something: (resource, action, name).
    pub fn pending(&self) -> Result<Vec<(String, String, String)>> {
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

    /// The test app's status page, through nginx with the site's Host header.
    pub fn page(&self) -> Result<serde_json::Value> {
        let (status, body) = self.host.http_get(&format!("{}.test", self.name), "/")?;
        ensure!(status == 200, "status {status}: {body}");
        serde_json::from_str(&body).with_context(|| format!("page body: {body}"))
    }
}

// --- a deployed site: the spec the deploy tests vary ----------------------------------------

pub const APP_KEY: &str = "base64:dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdGtleTA=";

/// What a test varies in a site spec.
pub struct Shape<'a> {
    pub branch: &'a str,
    pub script: &'a str,
    pub keep: u32,
}

/// A Laravel site on MariaDB with Redis (its own prefix), a queue worker and a health check.
pub fn site_spec(name: &str, shape: &Shape) -> String {
    let db = name.replace('-', "_");
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
  user: {db}
  php: "8.2"
  webDirectory: public
  source:
    repository: git://10.77.0.1/app.git
    branch: {branch}
  deploy:
    keepReleases: {keep}
    script: |
      {script}
  env:
    APP_NAME: {name}
    APP_ENV: production
    APP_KEY: {{secret: env:{upper}_APP_KEY}}
    DB_CONNECTION: mysql
    DB_HOST: localhost
    DB_PORT: 3306
    DB_DATABASE: {db}
    DB_USERNAME: {db}
    DB_PASSWORD: {{secret: env:{upper}_DB_PASSWORD}}
    REDIS_HOST: 127.0.0.1
    REDIS_PREFIX: {db}_
  database:
    engine: mysql
    name: {db}
    users:
      - name: {db}
        password: {{secret: env:{upper}_DB_PASSWORD}}
  redis:
    required: true
  workers:
    - name: queue
      command: php artisan queue:work
  health:
    path: /up
    expectBody: OK
    timeoutSeconds: 4
"#,
        branch = shape.branch,
        keep = shape.keep,
        script = shape.script,
    )
}

impl SiteUnderTest {
    /// A clean site following `branch`, deployed by `migrate`.
    pub fn following(host: &Host, name: &str, branch: &str) -> Result<SiteUnderTest> {
        let upper = name.to_uppercase().replace('-', "_");
        let env = vec![
            (format!("{upper}_APP_KEY"), APP_KEY.to_owned()),
            (format!("{upper}_DB_PASSWORD"), format!("pw-{name}-1")),
        ];
        let site = SiteUnderTest::new(host, name, env)?;
        site.write(&Shape {
            branch,
            script: "php artisan migrate --force",
            keep: 5,
        })?;
        Ok(site)
    }

    /// Writes the site's spec in `shape`.
    pub fn write(&self, shape: &Shape) -> Result<()> {
        let path = format!("sites/{}.yaml", self.name);
        self.workspace
            .write_spec(&path, &site_spec(&self.name, shape))
            .map(drop)
    }

    /// The release `current` points at.
    pub fn current(&self) -> Result<String> {
        let link = self
            .host
            .exec(&format!("readlink {}/current", self.root()))?;
        Ok(link.trim().trim_start_matches("releases/").to_owned())
    }

    /// The release directories, oldest first.
    pub fn releases(&self) -> Result<Vec<String>> {
        let out = self.host.exec(&format!("ls -1 {}/releases", self.root()))?;
        Ok(out.lines().map(str::to_owned).collect())
    }

    /// Waits until the site's `queue` worker runs.
    pub fn wait_for_worker(&self) -> Result<()> {
        let program = format!("siteward-{}-queue", self.name);
        wait_for("the worker running", Duration::from_secs(20), || {
            let status = self
                .host
                .exec(&format!("supervisorctl status '{program}:*'"))?;
            Ok(status.contains("RUNNING"))
        })
    }
}

/// Sets `branch` to `main` plus a commit writing `version` to VERSION.
pub fn version_commit(branch: &str, version: &str, base: Option<&str>) -> Result<String> {
    let message = format!("Release {version}");
    super::git_commit(branch, &message, base, &format!("echo {version} > VERSION"))
}

/// Removes site `name` from `host`: programs, managed files, user and home, record,
/// databases (the user and database are `name` with `-` turned into `_`). Supervisor updates
/// only this site's programs: tests of other sites may be midway through on the same host.
pub fn clean_site(host: &Host, name: &str) -> Result<()> {
    let script = format!(
        "programs=$({{ cd /etc/supervisor/conf.d && ls siteward-{n}-*.conf; supervisorctl status | awk '{{ print $1 }}'; }} 2>/dev/null | \
           sed -n 's/^\\(siteward-{n}-[^.:]*\\).*/\\1/p' | sort -u); \
         supervisorctl stop 'siteward-{n}-queue:*' >/dev/null 2>&1; rm -f /etc/supervisor/conf.d/siteward-{n}-*.conf /etc/nginx/conf.d/siteward-{n}.conf \
         /etc/php/8.2/fpm/pool.d/siteward-{n}.conf /etc/cron.d/siteward-{n}; [ -z \"$programs\" ] || supervisorctl update $programs >/dev/null 2>&1; \
         pkill -u {u} >/dev/null 2>&1; userdel -r -f {u} >/dev/null 2>&1; groupdel {u} >/dev/null 2>&1; rm -rf /home/{u} /var/lib/siteward/sites/{n}; \
         mariadb -e 'DROP DATABASE IF EXISTS {u}; DROP USER IF EXISTS {u}@localhost'; \
         redis-cli --scan --pattern '{u}_*' | xargs -r redis-cli del >/dev/null 2>&1; \
         runuser -u postgres -- psql -Xq -c 'DROP DATABASE IF EXISTS {u} WITH (FORCE)' -c 'DROP ROLE IF EXISTS {u}' >/dev/null 2>&1; true",
        n = name,
        u = name.replace('-', "_")
    );
    host.exec(&script).map(drop)
}

/// Waits until `check` holds, polling; fails naming `what`.
pub fn wait_for(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().unwrap_or(false) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    bail!("{what} did not happen within {limit:?}")
}
