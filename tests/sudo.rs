//! Servers reached as a user with passwordless sudo and root logins off, as Forge, Vito and Ploi
//! set them up: applies, deploys, rollbacks and migrations both ways work through `sudo -n`,
//! files keep their owners and modes, secrets stay off every command line; a sudo that asks for
//! a password fails at connect time. Hosts: `t-sudo-a` (root logs in), `t-sudo-b` (root may not
//! log in: reached as the fleet's sudo user `deploy`).

mod support;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use siteward::transport::{SshError, SshSession, Stdin, Transport, TransportError, WriteOutcome};
use support::migration::{
    Move, assert_report, database_digest, seed_database, seed_storage, storage_digest,
    worker_running,
};
use support::site::{Shape, SiteUnderTest as Site, version_commit, wait_for};
use support::{Fleet, Host};

/// `t-sudo-b` with root logins refused, as its sudo user.
fn sudo_host() -> Result<Host> {
    let host = Fleet::host("t-sudo-b")?;
    host.set_sshd_config("PermitRootLogin no")?;
    Ok(host.logged_in_as(&host.sudo_user))
}

async fn connect(host: &Host) -> std::result::Result<SshSession, SshError> {
    SshSession::connect(&host.ssh_target(Duration::from_secs(60))).await
}

#[tokio::test]
async fn root_may_not_log_in_and_the_sudo_user_runs_everything_as_root() -> Result<()> {
    let host = sudo_host()?;
    let refused = connect(&host.logged_in_as("root")).await;
    ensure!(
        matches!(refused, Err(SshError::AuthFailed { .. })),
        "root logged in: {refused:?}"
    );
    let session = connect(&host).await?;
    let id = session.exec_checked("id", "id -u", Stdin::Empty).await?;
    assert_eq!(id.stdout_lossy(), "0\n");

    let path = "/srv/sudo-written/pool.conf";
    session
        .exec_checked(
            "reset",
            "rm -rf /srv/sudo-written && mkdir /srv/sudo-written",
            Stdin::Empty,
        )
        .await?;
    let first = session
        .write_file_atomic(path, b"[pool]\n", "www-data", "www-data", 0o640)
        .await?;
    let second = session
        .write_file_atomic(path, b"[pool]\n", "www-data", "www-data", 0o640)
        .await?;
    assert_eq!(
        (first, second),
        (WriteOutcome::Written, WriteOutcome::Unchanged)
    );
    assert_eq!(
        host.exec(&format!("stat -c %U:%G:%a {path}"))?,
        "www-data:www-data:640\n"
    );

    // A secret on stdin is on no command line while the command runs: not in sudo's, not in
    // any process's arguments.
    let canary = "canary-7f3a9c1e-sudo-secret";
    let listing = session
        .exec_checked(
            "list processes",
            "read -r secret; ps -eo args; test -n \"$secret\"",
            Stdin::from(format!("{canary}\n").as_str()),
        )
        .await?;
    let args = listing.stdout_lossy();
    ensure!(args.contains("sudo -n -- timeout"), "no sudo seen: {args}");
    ensure!(
        !args.contains(canary),
        "the secret is on a command line: {args}"
    );
    Ok(())
}

#[tokio::test]
async fn a_sudo_that_asks_for_a_password_fails_at_connect_with_the_fix() -> Result<()> {
    let host = sudo_host()?;
    host.exec(
        "id clerk >/dev/null 2>&1 || useradd --create-home --shell /bin/bash clerk; \
         echo 'clerk ALL=(ALL:ALL) ALL' > /etc/sudoers.d/clerk; chmod 0440 /etc/sudoers.d/clerk; \
         install -d -m 700 -o clerk -g clerk /home/clerk/.ssh; \
         install -m 600 -o clerk -g clerk /root/.ssh/authorized_keys /home/clerk/.ssh/authorized_keys",
    )?;
    let started = Instant::now();
    let error = connect(&host.logged_in_as("clerk")).await.unwrap_err();
    let message = error.to_string();
    ensure!(
        matches!(error, SshError::SudoNeedsPassword { .. }),
        "{message}"
    );
    ensure!(
        message.contains("clerk ALL=(ALL:ALL) NOPASSWD: ALL") && message.contains("visudo -c"),
        "{message}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn a_command_through_sudo_past_its_bound_is_killed() -> Result<()> {
    let host = sudo_host()?;
    let target = host.ssh_target(Duration::from_secs(2));
    let session = SshSession::connect(&target).await?;
    let marker = "/tmp/sudo-bound-marker";
    host.exec(&format!("rm -f {marker}"))?;
    let command = format!("sleep 8; touch {marker}");
    let timed_out = session.exec(&command, Stdin::Empty).await;
    ensure!(
        matches!(
            timed_out,
            Err(TransportError::Ssh(SshError::ExecTimeout { .. }))
        ),
        "{timed_out:?}"
    );
    std::thread::sleep(Duration::from_secs(9));
    ensure!(!host.exists(marker)?, "the command ran on past its bound");
    Ok(())
}

/// A laravel site on the sudo server following `branch`.
fn site_on_sudo_server(name: &str, branch: &str) -> Result<Site> {
    Site::following(&sudo_host()?, name, branch)
}

/// `owner:group mode` of `path` on the site's host.
fn owner_and_mode(site: &Site, path: &str) -> Result<String> {
    Ok(site
        .host
        .exec(&format!("stat -c '%U:%G %a' {path}"))?
        .trim()
        .to_owned())
}

#[test]
fn a_site_on_a_sudo_server_is_applied_deployed_and_rolled_back() -> Result<()> {
    let branch = "t-sudo-b/deploy";
    let first = version_commit(branch, "sudo-1", None)?;
    let site = site_on_sudo_server("sudodeploy", branch)?;
    site.apply()?.assert_success();
    assert_eq!(site.page()?["version"], "sudo-1");
    site.wait_for_worker()?;
    let (root, user) = (site.root(), site.user());
    assert_eq!(
        owner_and_mode(&site, &format!("{root}/shared/.env"))?,
        format!("{user}:{user} 640")
    );
    assert_eq!(owner_and_mode(&site, &root)?, format!("{user}:{user} 750"));
    for managed in [
        "/etc/nginx/conf.d/siteward-sudodeploy.conf".to_owned(),
        "/etc/php/8.2/fpm/pool.d/siteward-sudodeploy.conf".to_owned(),
        "/etc/supervisor/conf.d/siteward-sudodeploy-queue.conf".to_owned(),
        "/etc/cron.d/siteward-sudodeploy".to_owned(),
    ] {
        assert_eq!(
            owner_and_mode(&site, &managed)?,
            "root:root 644",
            "{managed}"
        );
    }
    assert_eq!(site.pending()?, vec![], "the plan after an apply is empty");

    let released = site.current()?;
    version_commit(branch, "sudo-2", Some(&first))?;
    site.apply()?.assert_success();
    assert_eq!(site.page()?["version"], "sudo-2");
    assert_ne!(site.current()?, released);

    let back = site.siteward(&["rollback", "sudodeploy", "--auto-approve"])?;
    back.assert_success();
    assert_eq!(site.current()?, released);
    assert_eq!(site.page()?["version"], "sudo-1");
    Ok(())
}

#[test]
fn a_site_moves_from_a_root_server_to_a_sudo_server_and_back() -> Result<()> {
    let mut site = Move::new("t-sudo-a", "t-sudo-b", "sudo-move", "mariadb")?;
    site.b.set_sshd_config("PermitRootLogin no")?;
    let deploy = site.b.sudo_user.clone();
    site.log_in_as("b", &deploy)?;
    site.place("a", "final-sync", "stop")?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    seed_storage(&site, 2)?;
    let database = database_digest(&site, &site.a)?;
    let storage = storage_digest(&site, &site.a)?;

    site.place("b", "final-sync", "stop")?;
    site.apply()?.assert_success();
    assert_report(&site, true)?;
    assert_eq!(database_digest(&site, &site.b)?, database);
    assert_eq!(storage_digest(&site, &site.b)?, storage);
    let (status, body) = site.b.http_get(&site.domain(), "/up")?;
    assert_eq!((status, body.trim()), (200, "OK"));
    wait_for("the worker on b", Duration::from_secs(20), || {
        worker_running(&site, &site.b)
    })?;
    ensure!(
        !worker_running(&site, &site.a)?,
        "the worker still runs on a"
    );
    assert_eq!(
        site.plan_code()?,
        0,
        "nothing left to do on the sudo server"
    );

    // And back: the sudo server is now the source.
    site.place("a", "final-sync", "stop")?;
    site.apply()?.assert_success();
    assert_report(&site, true)?;
    assert_eq!(database_digest(&site, &site.a)?, database);
    assert_eq!(storage_digest(&site, &site.a)?, storage);
    wait_for("the worker on a", Duration::from_secs(20), || {
        worker_running(&site, &site.a)
    })?;
    ensure!(
        !worker_running(&site, &site.b)?,
        "the worker still runs on b"
    );
    assert_eq!(site.plan_code()?, 0);
    Ok(())
}

#[test]
fn a_sudo_server_with_two_sessions_per_connection_still_converges() -> Result<()> {
    let host = Fleet::host("t-sudo-c")?;
    host.set_sshd_config("PermitRootLogin no\nMaxSessions 2")?;
    let host = host.logged_in_as(&host.sudo_user);
    let site = Site::following(&host, "sudotwo", "main")?;
    site.write(&Shape {
        branch: "main",
        script: "php artisan migrate --force",
        keep: 3,
    })?;
    let run = site.apply()?;
    run.assert_success();
    assert_eq!(site.page()?["app"], "sudotwo");
    assert_eq!(site.pending()?, vec![]);
    Ok(())
}
