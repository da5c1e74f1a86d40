//! Sites applied together on one server share the server's config tests and reloads (a wave):
//! a site whose vhost or worker breaks fails alone, only its file is put back, the others of
//! the wave are applied, and the next apply converges. Hosts: `t-wave-a`, `t-wave-b`.

mod support;

use anyhow::{Result, ensure};
use support::site::clean_site;
use support::{CommandOutput, Fleet, Host, Workspace};

/// Sites `{prefix}-1` … `{prefix}-count` on one host, without code: user, directories, `.env`
/// with a secret, a MariaDB database and user, pool, vhost, cron file and a worker.
struct Wave {
    workspace: Workspace,
    host: Host,
    names: Vec<String>,
}

const PASSWORD: &str = "wave-password";

fn site_spec(name: &str, worker: &str) -> String {
    let user = name.replace('-', "_");
    format!(
        "apiVersion: siteward.dev/v1\nkind: Site\nmetadata:\n  name: {name}\nspec:\n  server: web\n  type: php\n  \
         domain: {name}.test\n  user: {user}\n  php: \"8.2\"\n  webDirectory: public\n  deploy:\n    strategy: in-place\n  \
         env:\n    APP_NAME: {name}\n    DB_PASSWORD: {{secret: env:WAVE_DB_PASSWORD}}\n  \
         database:\n    engine: mariadb\n    name: {user}\n    users:\n      - name: {user}\n        password: {{secret: env:WAVE_DB_PASSWORD}}\n  \
         crons:\n    - name: tick\n      schedule: \"*/5 * * * *\"\n      command: \"true\"\n  \
         workers:\n    - name: queue\n      command: {worker}\n      processes: 1\n      stopWaitSeconds: 1\n"
    )
}

impl Wave {
    fn new(host: Host, prefix: &str, count: usize) -> Result<Wave> {
        let workspace = Workspace::with_servers(&[("web", &host)])?;
        let names: Vec<String> = (1..=count).map(|n| format!("{prefix}-{n}")).collect();
        for name in &names {
            clean_site(&host, name)?;
            workspace.write_spec(
                &format!("sites/{name}.yaml"),
                &site_spec(name, "sleep 3600"),
            )?;
        }
        Ok(Wave {
            workspace,
            host,
            names,
        })
    }

    fn set_worker(&self, name: &str, command: &str) -> Result<()> {
        self.workspace
            .write_spec(&format!("sites/{name}.yaml"), &site_spec(name, command))
            .map(drop)
    }

    fn apply(&self) -> Result<CommandOutput> {
        self.workspace.siteward_with_env(
            &["apply", "--auto-approve"],
            &[("WAVE_DB_PASSWORD", PASSWORD)],
        )
    }

    fn vhost(name: &str) -> String {
        format!("/etc/nginx/conf.d/siteward-{name}.conf")
    }

    /// nginx serves the site through its vhost: a page put in its web root answers.
    fn serves(&self, name: &str) -> Result<bool> {
        let user = name.replace('-', "_");
        let page = format!("/home/{user}/{name}.test/public/wave.txt");
        self.host.write_file(&page, &format!("{name}\n"))?;
        let (status, body) = self.host.http_get(&format!("{name}.test"), "/wave.txt")?;
        Ok(status == 200 && body.trim() == name)
    }

    fn clean(&self) -> Result<()> {
        for name in &self.names {
            clean_site(&self.host, name)?;
        }
        Ok(())
    }

    /// The second apply has nothing to do.
    fn converged(&self) -> Result<()> {
        let again = self.apply()?;
        ensure!(
            again.success() && again.stdout.contains("No changes"),
            "the apply after converging was not empty: {again}"
        );
        Ok(())
    }
}

fn site_line<'a>(output: &'a CommandOutput, name: &str) -> &'a str {
    let start = format!("site {name} on web: ");
    output
        .stderr
        .lines()
        .find(|line| line.starts_with(&start))
        .unwrap_or("")
}

#[test]
fn a_broken_vhost_fails_its_site_alone_and_only_its_file_is_put_back() -> Result<()> {
    let host = Fleet::host("t-wave-a")?;
    let wave = Wave::new(host, "wave", 4)?;
    let result = broken_vhost(&wave);
    wave.host
        .exec("rm -rf /var/log/nginx/siteward-wave-3.access.log")?;
    wave.clean()?;
    result
}

fn broken_vhost(wave: &Wave) -> Result<()> {
    // nginx -t opens every log file: a directory in the place of one fails the test, and only
    // the vhost naming it is at fault.
    wave.host
        .exec("mkdir -p /var/log/nginx/siteward-wave-3.access.log")?;
    let first = wave.apply()?;
    ensure!(first.code() == Some(1), "the apply should fail: {first}");
    ensure!(
        site_line(&first, "wave-3").contains("FAILED"),
        "wave-3 should fail: {first}"
    );
    ensure!(
        first
            .stderr
            .contains("nginx -t failed, previous file restored"),
        "{first}"
    );
    ensure!(
        !wave.host.exists(&Wave::vhost("wave-3"))?,
        "the broken vhost stayed"
    );
    wave.host.exec("nginx -t")?;
    for name in ["wave-1", "wave-2", "wave-4"] {
        ensure!(
            site_line(&first, name).contains("applied"),
            "{name} should be applied: {first}"
        );
        ensure!(wave.serves(name)?, "{name} is not served");
    }
    wave.host
        .exec("rm -rf /var/log/nginx/siteward-wave-3.access.log")?;
    let second = wave.apply()?;
    ensure!(second.success(), "the apply after the fix failed: {second}");
    ensure!(wave.serves("wave-3")?, "wave-3 is not served after the fix");
    wave.converged()
}

#[test]
fn a_worker_that_cannot_start_fails_its_site_alone() -> Result<()> {
    let host = Fleet::host("t-wave-b")?;
    let wave = Wave::new(host, "crash", 3)?;
    let result = crashing_worker(&wave);
    wave.clean()?;
    result
}

fn crashing_worker(wave: &Wave) -> Result<()> {
    wave.set_worker("crash-2", "/bin/false")?;
    let first = wave.apply()?;
    ensure!(first.code() == Some(1), "the apply should fail: {first}");
    ensure!(
        site_line(&first, "crash-2").contains("FAILED"),
        "crash-2 should fail: {first}"
    );
    for name in ["crash-1", "crash-3"] {
        ensure!(
            site_line(&first, name).contains("applied"),
            "{name} should be applied: {first}"
        );
        let status = wave.host.exec(&format!(
            "supervisorctl status 'siteward-{name}-queue:*' || true"
        ))?;
        ensure!(status.contains("RUNNING"), "{name}'s worker: {status}");
    }
    wave.set_worker("crash-2", "sleep 3600")?;
    let second = wave.apply()?;
    ensure!(second.success(), "the apply after the fix failed: {second}");
    wave.converged()
}
