//! Many sites in one apply on servers with Debian's stock sshd limits, and on one that allows
//! only two sessions per connection: every site converges in the first apply, and the second
//! has nothing to do. Hosts: `t-scale-a` (stock), `t-scale-b` (`MaxSessions 2`).

mod support;

use anyhow::{Result, ensure};
use support::site::{APP_KEY, Shape, clean_site, site_spec};
use support::{CommandOutput, Fleet, Host, Workspace};

/// `count` Laravel sites named `{prefix}-N` on `host` in one workspace, each with a database,
/// its user, `.env` secrets, Redis, a queue worker, the scheduler cron and a deploy.
struct Sites {
    workspace: Workspace,
    host: Host,
    names: Vec<String>,
    env: Vec<(String, String)>,
}

impl Sites {
    fn new(host: Host, prefix: &str, count: usize) -> Result<Sites> {
        let workspace = Workspace::with_servers(&[("web", &host)])?;
        let names: Vec<String> = (1..=count).map(|n| format!("{prefix}-{n}")).collect();
        let mut env = Vec::new();
        for name in &names {
            clean_site(&host, name)?;
            let shape = Shape {
                branch: "main",
                script: "php artisan migrate --force",
                keep: 2,
            };
            workspace.write_spec(&format!("sites/{name}.yaml"), &site_spec(name, &shape))?;
            let upper = name.to_uppercase().replace('-', "_");
            env.push((format!("{upper}_APP_KEY"), APP_KEY.to_owned()));
            env.push((format!("{upper}_DB_PASSWORD"), format!("pw-{name}")));
        }
        Ok(Sites {
            workspace,
            host,
            names,
            env,
        })
    }

    fn apply(&self) -> Result<CommandOutput> {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        self.workspace
            .siteward_with_env(&["apply", "--auto-approve"], &env)
    }

    /// Every site answers its health check through nginx.
    fn all_serve(&self) -> Result<()> {
        for name in &self.names {
            let (status, body) = self.host.http_get(&format!("{name}.test"), "/up")?;
            ensure!(
                (status, body.trim()) == (200, "OK"),
                "{name}: {status} {body}"
            );
        }
        Ok(())
    }

    /// Removes the sites (their workers would load the machine for the tests after this one).
    fn clean(&self) -> Result<()> {
        for name in &self.names {
            clean_site(&self.host, name)?;
        }
        Ok(())
    }

    /// Applies, checks every site, applies again; the sites are removed whatever happened.
    fn converge_in_one_apply(&self) -> Result<()> {
        let checked = self.first_and_second_apply();
        self.clean()?;
        checked
    }

    fn first_and_second_apply(&self) -> Result<()> {
        let first = self.apply()?;
        ensure!(first.success(), "the first apply failed: {first}");
        ensure!(
            !first.stderr.contains("SSH channel"),
            "a channel failed: {first}"
        );
        self.all_serve()?;
        let second = self.apply()?;
        ensure!(
            second.success() && second.stdout.contains("No changes"),
            "{second}"
        );
        Ok(())
    }
}

#[test]
fn thirty_sites_on_one_stock_server_converge_in_one_apply() -> Result<()> {
    let host = Fleet::host("t-scale-a")?;
    host.set_sshd_config("")?;
    Sites::new(host, "many", 30)?.converge_in_one_apply()
}

#[test]
fn a_server_allowing_two_sessions_per_connection_still_converges() -> Result<()> {
    let host = Fleet::host("t-scale-b")?;
    host.set_sshd_config("MaxSessions 2")?;
    Sites::new(host, "pair", 6)?.converge_in_one_apply()
}
