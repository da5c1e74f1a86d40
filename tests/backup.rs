//! Backups, restores and bundles against the fleet and a real S3 server (SeaweedFS on the
//! machine, `scripts/fleet s3-serve`): restic runs on the hosts; siteward sends it settings and
//! secrets on stdin, and the hosts run their own schedule.
//!
//! Hosts: `t-backup-a`, `t-backup-b` (shared, disjoint site names), `t-backup-c` (the dead
//! source: this file stops it), `t-backup-d` (bundles' fresh host).

mod support;

use anyhow::{Context, Result, ensure};
use std::time::Duration;
use support::Fleet;
use support::migration::{
    Move, database_digest, now_unix, seed_database, seed_storage, storage_digest,
};
use support::site::wait_for;

/// The S3 server's URL and credentials.
struct S3 {
    url: String,
    key: String,
    secret: String,
}

fn s3() -> Result<S3> {
    Fleet::run(&["s3-serve"])?;
    let env = Fleet::run(&["s3-env"])?;
    let get = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .with_context(|| format!("{name} in s3-env"))
    };
    Ok(S3 {
        url: get("S3_URL")?,
        key: get("S3_ACCESS_KEY_ID")?,
        secret: get("S3_SECRET_ACCESS_KEY")?,
    })
}

/// A moving site with backups to its own fresh repository, and the secrets they need.
fn with_backups(site: &mut Move, s3: &S3, extra: &str) -> Result<String> {
    let repository = format!("s3:{}/backups/{}-{}", s3.url, site.name, now_unix());
    let upper = site.name.to_uppercase().replace('-', "_");
    site.env.push((format!("{upper}_RESTIC_PASSWORD"), format!("{}-restic-pw", site.name)));
    site.env.push(("TEST_S3_KEY".into(), s3.key.clone()));
    site.env.push(("TEST_S3_SECRET".into(), s3.secret.clone()));
    let section = format!(
        "  backup:\n    repository: {repository}\n    password: {{secret: env:{upper}_RESTIC_PASSWORD}}\n    credentials:\n      accessKeyId: {{secret: env:TEST_S3_KEY}}\n      secretAccessKey: {{secret: env:TEST_S3_SECRET}}\n{extra}"
    );
    append_backup(site, &section)?;
    clean_backups(site)?;
    Ok(repository)
}

fn append_backup(site: &Move, section: &str) -> Result<()> {
    let path = site.workspace.specs_dir().join("sites/site.yaml");
    let mut text = std::fs::read_to_string(&path)?;
    if let Some(at) = text.find("  backup:\n") {
        text.truncate(at);
    }
    text.push_str(section);
    std::fs::write(&path, text)?;
    Ok(())
}

fn place(site: &Move, server: &str, section: &str) -> Result<()> {
    site.place(server, "final-sync", "keep")?;
    append_backup(site, section)
}

fn clean_backups(site: &Move) -> Result<()> {
    for host in [&site.a, &site.b] {
        host.exec(&format!(
            "rm -rf /etc/siteward/backup/{n} /etc/cron.d/siteward-backup_{n} /var/log/siteward/backup-{n}.log",
            n = site.name
        ))?;
    }
    Ok(())
}

/// The backup section last written, to place the site again with it.
fn section(site: &Move) -> Result<String> {
    let text = std::fs::read_to_string(site.workspace.specs_dir().join("sites/site.yaml"))?;
    let at = text.find("  backup:\n").context("a backup section")?;
    Ok(text[at..].to_owned())
}

/// `restic` run on the machine against the site's repository.
fn restic(site: &Move, s3: &S3, repository: &str, args: &[&str]) -> Result<String> {
    let upper = site.name.to_uppercase().replace('-', "_");
    let password = site
        .env
        .iter()
        .find(|(k, _)| *k == format!("{upper}_RESTIC_PASSWORD"))
        .map(|(_, v)| v.clone())
        .context("password")?;
    let output = std::process::Command::new("restic")
        .args(["-r", repository])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &s3.key)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret)
        .env("RESTIC_PASSWORD", password)
        .env("RESTIC_CACHE_DIR", "/var/tmp/siteward-test-restic-cache")
        .output()?;
    ensure!(
        output.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn a_backup_checks_clean_and_restores_onto_another_host_with_equal_checksums() -> Result<()> {
    let s3 = s3()?;
    let mut site = Move::new("t-backup-a", "t-backup-b", "bk-restore", "mariadb")?;
    site.place("a", "final-sync", "keep")?;
    let repository = with_backups(&mut site, &s3, "")?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    seed_storage(&site, 2)?;
    let database = database_digest(&site, &site.a)?;
    let storage = storage_digest(&site, &site.a)?;

    let out = site.siteward(&["backup", &site.name])?;
    out.assert_success();
    ensure!(out.stdout.contains("(database) +"), "{}", out.stdout);
    restic(&site, &s3, &repository, &["check", "--read-data"])?;
    let listed = site.siteward(&["backups", &site.name, "--format", "json"])?;
    listed.assert_success();
    let runs: serde_json::Value = serde_json::from_str(&listed.stdout)?;
    ensure!(runs.as_array().map(Vec::len) == Some(1), "{runs:#}");
    ensure!(runs[0]["server"] == "a", "{runs:#}");

    // Server `a` loses the site; its spec now names `b`, where it is restored.
    support::site::clean_site(&site.a, &site.name)?;
    clean_backups(&site)?;
    let backup = section(&site)?;
    place(&site, "b", &backup)?;
    let out = site.siteward(&["restore", &site.name, "--auto-approve"])?;
    out.assert_success();
    ensure!(out.stdout.contains("restore:"), "the plan shows the restore: {}", out.stdout);
    ensure!(database_digest(&site, &site.b)? == database, "database differs after restore");
    ensure!(storage_digest(&site, &site.b)? == storage, "storage differs after restore");
    let (status, body) = site.b.http_get(&site.domain(), "/up")?;
    ensure!(status == 200 && body.contains("OK"), "{status} {body}");
    ensure!(site.plan_code()? == 0, "a second plan is empty");
    Ok(())
}

#[test]
fn the_server_backs_up_on_its_schedule_and_retention_prunes() -> Result<()> {
    let s3 = s3()?;
    let mut site = Move::new("t-backup-a", "t-backup-b", "bk-cron", "postgres")?;
    site.place("a", "final-sync", "keep")?;
    with_backups(
        &mut site,
        &s3,
        "    schedule: \"* * * * *\"\n    keep: {daily: 1, weekly: 0, monthly: 0}\n",
    )?;
    site.apply()?.assert_success();
    ensure!(site.plan_code()? == 0, "a second plan is empty");
    let status = format!("/var/lib/siteward/sites/{}/backup-status", site.name);
    // siteward is not running: cron on the host backs the site up, twice.
    let mut first = String::new();
    wait_for("a scheduled backup", Duration::from_secs(150), || {
        first = site.a.exec(&format!("cat {status} 2>/dev/null; true"))?;
        Ok(first.contains("result=ok"))
    })?;
    let first_time = first
        .lines()
        .find_map(|l| l.strip_prefix("time="))
        .context("time")?
        .to_owned();
    wait_for("a second scheduled backup", Duration::from_secs(150), || {
        let now = site.a.exec(&format!("cat {status} 2>/dev/null; true"))?;
        Ok(now.contains("result=ok") && !now.contains(&format!("time={first_time}")))
    })?;
    let listed = site.siteward(&["backups", &site.name, "--format", "json"])?;
    listed.assert_success();
    let runs: serde_json::Value = serde_json::from_str(&listed.stdout)?;
    ensure!(
        runs.as_array().map(Vec::len) == Some(1),
        "keep daily 1 leaves one run of today: {runs:#}"
    );
    let log = site.a.exec(&format!("cat /var/log/siteward/backup-{}.log", site.name))?;
    ensure!(log.contains("backup"), "{log}");
    Ok(())
}
