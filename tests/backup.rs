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
    let get = store_env("s3-serve", "s3-env")?;
    Ok(S3 {
        url: get("S3_URL")?,
        key: get("S3_ACCESS_KEY_ID")?,
        secret: get("S3_SECRET_ACCESS_KEY")?,
    })
}

/// Starts a store of the fleet's (`scripts/fleet SERVE`, idempotent) and reads what
/// `scripts/fleet ENV` prints of it, by name.
fn store_env(serve: &str, env: &str) -> Result<impl Fn(&str) -> Result<String>> {
    Fleet::run(&[serve])?;
    let printed = Fleet::run(&[env])?;
    let env = env.to_owned();
    Ok(move |name: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .with_context(|| format!("{name} in {env}"))
    })
}

/// A moving site with backups to its own fresh repository, and the secrets they need.
fn with_backups(site: &mut Move, s3: &S3, extra: &str) -> Result<String> {
    let repository = format!("s3:{}/backups/{}-{}", s3.url, site.name, now_unix());
    let upper = site.name.to_uppercase().replace('-', "_");
    site.env.push((
        format!("{upper}_RESTIC_PASSWORD"),
        format!("{}-restic-pw", site.name),
    ));
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

/// MariaDB values a text dump would change or lose: FLOAT and DOUBLE values that need all their
/// digits, BIT, a generated column, NULL next to the string 'NULL', bytes a string literal must
/// escape, latin1, a point, a 200 KB value, a TIMESTAMP, a zero in an AUTO_INCREMENT column, a
/// table without a primary key, a trigger that would change rows if it fired in the load, a
/// table and columns named with a space, a backtick and a quote, and a sequence in use.
const EXACT_VALUES: &str = "SET NAMES utf8mb4;
CREATE TABLE measures (id INT AUTO_INCREMENT PRIMARY KEY, f FLOAT, d DOUBLE, flags BIT(5),
  s VARCHAR(20) NULL, raw VARBINARY(40), big MEDIUMTEXT, at TIMESTAMP NULL,
  doubled INT AS (id * 2) VIRTUAL, legacy VARCHAR(10) CHARACTER SET latin1, spot POINT NULL,
  n INT NOT NULL) ENGINE=InnoDB;
INSERT INTO measures (id, f, d, flags, s, raw, big, at, legacy, spot, n) VALUES
  (1, 0.1234567, 0.1234567890123456789, b'10101', 'NULL', UNHEX('00090A0D5C4E5C1A27'),
   REPEAT('a\tb\\\\c\n', 40000), '2024-02-29 23:59:59', 'café', POINT(1.5, -2.25), 0),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1),
  (3, -3.4028e38, 1e-300, b'00000', '', '\\\\E', '', '1970-01-01 00:00:01', '', NULL, 2);
SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO');
INSERT INTO measures (id, f, n) VALUES (0, 1.5, 3);
CREATE TRIGGER measures_stamp BEFORE INSERT ON measures FOR EACH ROW SET NEW.n = -1;
CREATE TABLE loose (a INT, b VARCHAR(10)) ENGINE=InnoDB;
INSERT INTO loose VALUES (1, 'x'), (1, 'x'), (NULL, NULL);
CREATE TABLE `odd ``na'me` (`col umn` INT PRIMARY KEY, `it's` VARCHAR(5)) ENGINE=InnoDB;
INSERT INTO `odd ``na'me` VALUES (1, 'x'), (2, NULL);
CREATE SEQUENCE tickets START WITH 1000;
SELECT NEXTVAL(tickets), NEXTVAL(tickets), NEXTVAL(tickets);";

/// What [`EXACT_VALUES`] made, byte for byte.
const EXACT_DIGEST: &str = "SET NAMES utf8mb4; SET time_zone = '+00:00';
SELECT id, CAST(f AS DOUBLE), d, flags + 0, HEX(s), s IS NULL, HEX(raw), MD5(big), at, doubled,
  HEX(legacy), ST_AsText(spot), n FROM measures ORDER BY id;
SELECT COUNT(*), COUNT(a), SUM(b = 'x') FROM loose;
SELECT COUNT(*), SUM(`col umn`), COUNT(`it's`) FROM `odd ``na'me`;";

#[test]
fn a_backup_checks_clean_and_restores_onto_another_host_with_equal_checksums() -> Result<()> {
    let s3 = s3()?;
    let mut site = Move::new("t-backup-a", "t-backup-b", "bk-restore", "mariadb")?;
    site.place("a", "final-sync", "keep")?;
    let repository = with_backups(&mut site, &s3, "")?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    site.sql(&site.a, EXACT_VALUES)?;
    seed_storage(&site, 2)?;
    let database = database_digest(&site, &site.a)?;
    let exact = site.sql(&site.a, EXACT_DIGEST)?;
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
    ensure!(
        out.stdout.contains("restore:"),
        "the plan shows the restore: {}",
        out.stdout
    );
    ensure!(
        database_digest(&site, &site.b)? == database,
        "database differs after restore"
    );
    let restored = site.sql(&site.b, EXACT_DIGEST)?;
    ensure!(
        restored == exact,
        "values differ after restore:\n{restored}\nagainst\n{exact}"
    );
    ensure!(
        restored.contains("0.12345670163631439\t0.12345678901234568\t21\t4E554C4C\t0"),
        "{restored}"
    );
    // A sequence goes on past the values A handed out (1000 to 1002), never repeats one.
    let next: u64 = site
        .sql(&site.b, "SELECT NEXTVAL(tickets);")?
        .trim()
        .parse()?;
    ensure!(next > 1002, "the sequence restarted: {next}");
    ensure!(
        storage_digest(&site, &site.b)? == storage,
        "storage differs after restore"
    );
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
    wait_for(
        "a second scheduled backup",
        Duration::from_secs(150),
        || {
            let now = site.a.exec(&format!("cat {status} 2>/dev/null; true"))?;
            Ok(now.contains("result=ok") && !now.contains(&format!("time={first_time}")))
        },
    )?;
    // cron starts a run every minute: one may be under way (not yet pruned) when listed.
    let mut runs = serde_json::Value::Null;
    let pruned = wait_for(
        "keep daily 1 to leave one run",
        Duration::from_secs(150),
        || {
            let listed = site.siteward(&["backups", &site.name, "--format", "json"])?;
            listed.assert_success();
            runs = serde_json::from_str(&listed.stdout)?;
            Ok(runs.as_array().map(Vec::len) == Some(1))
        },
    );
    ensure!(
        pruned.is_ok(),
        "keep daily 1 leaves one run of today: {runs:#}"
    );
    let log = site
        .a
        .exec(&format!("cat /var/log/siteward/backup-{}.log", site.name))?;
    ensure!(log.contains("backup"), "{log}");
    Ok(())
}

fn placed_with(site: &Move, server: &str, mode: &str, on_source: &str) -> Result<()> {
    let backup = section(site)?;
    site.place(server, mode, on_source)?;
    append_backup(site, &backup)
}

fn set_env(site: &mut Move, key: &str, value: &str) {
    site.env.retain(|(k, _)| k != key);
    site.env.push((key.to_owned(), value.to_owned()));
}

#[test]
fn a_wrong_password_or_an_unreachable_store_fails_clearly_and_changes_nothing() -> Result<()> {
    let s3 = s3()?;
    let mut site = Move::new("t-backup-a", "t-backup-b", "bk-fail", "mariadb")?;
    site.place("a", "final-sync", "keep")?;
    with_backups(&mut site, &s3, "")?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    site.siteward(&["backup", &site.name])?.assert_success();
    let database = database_digest(&site, &site.a)?;
    let key = format!(
        "{}_RESTIC_PASSWORD",
        site.name.to_uppercase().replace('-', "_")
    );
    let right = site
        .env
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
        .context("pw")?;

    set_env(&mut site, &key, "not-the-password");
    let out = site.siteward(&["backup", &site.name])?;
    ensure!(!out.success(), "a wrong password fails");
    ensure!(out.stderr.contains("wrong password"), "{}", out.stderr);
    let out = site.siteward(&["restore", &site.name, "--auto-approve"])?;
    ensure!(
        !out.success() && out.stderr.contains("wrong password"),
        "{}",
        out.stderr
    );
    ensure!(
        database_digest(&site, &site.a)? == database,
        "nothing changed"
    );

    // The failed run shows in the site's status.
    site.siteward(&["plan"])?;
    let status = site.siteward(&["status", &site.name, "--format", "json"])?;
    ensure!(status.stdout.contains("BackupFailing"), "{}", status.stdout);

    set_env(&mut site, &key, &right);
    let unreachable = section(&site)?.replace(&s3.url, "http://10.77.0.1:9");
    append_backup(&site, &unreachable)?;
    let out = site.siteward(&["backup", &site.name])?;
    ensure!(
        !out.success() && out.stderr.contains("connection refused"),
        "{}",
        out.stderr
    );
    let out = site.siteward(&["restore", &site.name, "--auto-approve"])?;
    ensure!(
        !out.success() && out.stderr.contains("connection refused"),
        "{}",
        out.stderr
    );
    ensure!(
        database_digest(&site, &site.a)? == database,
        "nothing changed"
    );
    Ok(())
}

#[test]
fn a_migration_that_removes_its_source_leaves_a_snapshot_named_in_its_report() -> Result<()> {
    let s3 = s3()?;
    let mut site = Move::new("t-backup-a", "t-backup-b", "bk-move", "mariadb")?;
    site.place("a", "final-sync", "remove")?;
    with_backups(&mut site, &s3, "")?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    let database = database_digest(&site, &site.a)?;
    placed_with(&site, "b", "final-sync", "remove")?;
    site.apply()?.assert_success();
    let report = site.report()?;
    let snapshots = report["snapshots"].as_array().context("snapshots")?;
    ensure!(snapshots.len() == 2, "{report:#}");
    ensure!(
        snapshots[1]
            .as_str()
            .unwrap_or("")
            .starts_with("before `onSource: remove`"),
        "{report:#}"
    );
    ensure!(!site.a.exists(&site.root())?, "the source is removed");
    let listed = site.siteward(&["backups", &site.name, "--format", "json"])?;
    let runs: serde_json::Value = serde_json::from_str(&listed.stdout)?;
    let last = &runs
        .as_array()
        .context("runs")?
        .last()
        .context("a run")?
        .clone();
    ensure!(last["server"] == "a", "{runs:#}");
    let id = last["database"]["shortId"].as_str().context("id")?;
    ensure!(
        snapshots[1].as_str().unwrap_or("").contains(id),
        "{report:#} {runs:#}"
    );
    let moved = database_digest(&site, &site.b)?;
    ensure!(moved == database, "database differs: {moved} / {database}");
    Ok(())
}

#[test]
fn a_re_pointed_site_whose_source_is_down_is_restored_from_its_latest_backup() -> Result<()> {
    let s3 = s3()?;
    let mut site = Move::new("t-backup-c", "t-backup-b", "bk-dead", "postgres")?;
    site.place("a", "final-sync", "keep")?;
    with_backups(&mut site, &s3, "")?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    seed_storage(&site, 1)?;
    site.siteward(&["backup", &site.name])?.assert_success();
    let database = database_digest(&site, &site.a)?;
    let storage = storage_digest(&site, &site.a)?;

    Fleet::down("t-backup-c")?;
    placed_with(&site, "b", "final-sync", "keep")?;
    let plan = site.siteward(&["plan"])?;
    plan.assert_success();
    ensure!(
        plan.stdout.contains("`a` does not answer"),
        "{}",
        plan.stdout
    );
    site.apply()?.assert_success();
    ensure!(
        database_digest(&site, &site.b)? == database,
        "database differs"
    );
    ensure!(
        storage_digest(&site, &site.b)? == storage,
        "storage differs"
    );
    let (status, body) = site.b.http_get(&site.domain(), "/up")?;
    ensure!(status == 200 && body.contains("OK"), "{status} {body}");
    Ok(())
}

/// Every byte the bundle holds once each member is unpacked (gzip and tar undone).
fn unpacked(bundle: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(bundle)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        out.extend_from_slice(&bytes);
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(bytes.as_slice()).read_to_end(&mut plain)?;
            out.extend_from_slice(&plain);
        }
    }
    Ok(out)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn an_export_imports_onto_a_fresh_host_and_no_archive_holds_a_secret() -> Result<()> {
    let s3 = s3()?;
    let mut site = Move::new("t-backup-a", "t-backup-d", "bk-bundle", "mariadb")?;
    let stamp = now_unix();
    let canaries = [
        format!("canary-db-{stamp}"),
        format!("canary-mail-{stamp}"),
        format!("canary-restic-{stamp}"),
    ];
    let upper = "BK_BUNDLE";
    set_env(&mut site, &format!("{upper}_DB_PASSWORD"), &canaries[0]);
    site.place("a", "final-sync", "keep")?;
    with_backups(&mut site, &s3, "")?;
    set_env(&mut site, &format!("{upper}_RESTIC_PASSWORD"), &canaries[2]);
    site.apply()?.assert_success();
    seed_database(&site)?;
    seed_storage(&site, 1)?;
    // A secret the spec does not name, set on the server by hand.
    site.a.exec(&format!(
        "echo 'MAIL_PASSWORD=\"{}\"' >> {}/shared/.env",
        canaries[1],
        site.root()
    ))?;
    let database = database_digest(&site, &site.a)?;
    let storage = storage_digest(&site, &site.a)?;
    let mut logs = String::new();
    let backup = site.siteward(&["backup", &site.name])?;
    backup.assert_success();
    logs.push_str(&backup.stdout);
    logs.push_str(&backup.stderr);

    let file = site.workspace.root().join("bk-bundle.bundle");
    let out = site.siteward(&["export", &site.name, "-o", file.to_str().context("path")?])?;
    out.assert_success();
    ensure!(
        out.stdout.contains("env:BK_BUNDLE_MAIL_PASSWORD"),
        "{}",
        out.stdout
    );
    logs.push_str(&out.stdout);
    logs.push_str(&out.stderr);

    // A flipped byte: refused, naming the member, and the fresh host gets nothing.
    let damaged = site.workspace.root().join("damaged.bundle");
    let mut bytes = std::fs::read(&file)?;
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&damaged, &bytes)?;
    set_env(&mut site, &format!("{upper}_MAIL_PASSWORD"), &canaries[1]);
    placed_with(&site, "b", "final-sync", "keep")?;
    let out = site.siteward(&[
        "import",
        damaged.to_str().context("path")?,
        "--auto-approve",
    ])?;
    ensure!(!out.success(), "a damaged bundle is refused");
    ensure!(
        out.stderr.contains("member `storage.tar.gz`"),
        "{}",
        out.stderr
    );
    ensure!(
        !site.b.exists(&site.root())?,
        "nothing changed on the fresh host"
    );

    // The intact bundle, onto the fresh host (the site was never there, and `a` still has it:
    // the spec is a fresh copy named after the bundle's site, placed on `b`).
    support::site::clean_site(&site.a, &site.name)?;
    clean_backups(&site)?;
    let out = site.siteward(&["import", file.to_str().context("path")?, "--auto-approve"])?;
    out.assert_success();
    logs.push_str(&out.stdout);
    logs.push_str(&out.stderr);
    ensure!(
        database_digest(&site, &site.b)? == database,
        "database differs after import"
    );
    ensure!(
        storage_digest(&site, &site.b)? == storage,
        "storage differs after import"
    );
    let (status, body) = site.b.http_get(&site.domain(), "/up")?;
    ensure!(status == 200 && body.contains("OK"), "{status} {body}");
    let env = site.b.read_file(&format!("{}/shared/.env", site.root()))?;
    ensure!(
        env.contains(&canaries[1]),
        "the hand-made secret comes back from its reference"
    );

    // The canaries: in no bundle member, manifest, store row, log line or S3 object.
    let bundle = unpacked(&file)?;
    ensure!(
        contains(&bundle, "memo") || contains(&bundle, "Caf"),
        "the bundle holds the data"
    );
    let store = std::fs::read(site.workspace.root().join(".siteward/state.db"))?;
    for canary in &canaries {
        ensure!(!contains(&bundle, canary), "{canary} is in the bundle");
        ensure!(!contains(&store, canary), "{canary} is in the state store");
        ensure!(
            !logs.contains(canary.as_str()),
            "{canary} is in siteward's output"
        );
    }
    let fleet = std::env::var("FLEET_DIR").unwrap_or_else(|_| "/var/tmp/siteward-fleet".into());
    let found = std::process::Command::new("grep")
        .args([
            "-rlaF",
            "-e",
            &canaries[0],
            "-e",
            &canaries[1],
            "-e",
            &canaries[2],
        ])
        .arg(format!("{fleet}/s3/data"))
        .output()?;
    ensure!(
        found.stdout.is_empty(),
        "a canary is in the S3 objects: {}",
        String::from_utf8_lossy(&found.stdout)
    );
    Ok(())
}

/// The SFTP store: a second sshd of the machine's (`scripts/fleet sftp-serve`), SFTP only.
struct Sftp {
    url: String,
    key_file: String,
    host_key: String,
    root: String,
}

fn sftp() -> Result<Sftp> {
    let get = store_env("sftp-serve", "sftp-env")?;
    Ok(Sftp {
        url: get("SFTP_URL")?,
        key_file: get("SFTP_KEY_FILE")?,
        host_key: get("SFTP_HOST_KEY")?,
        root: get("SFTP_ROOT")?,
    })
}

/// A repository on another server: reached over SSH with the site's key, the store's host key
/// pinned. A key that is not the store's is refused before anything is written there.
#[test]
fn a_backup_over_sftp_to_another_server_restores_onto_another_host() -> Result<()> {
    let store = sftp()?;
    let mut site = Move::new("t-backup-a", "t-backup-b", "bk-sftp", "mariadb")?;
    site.place("a", "final-sync", "keep")?;
    site.env
        .push(("BK_SFTP_RESTIC_PASSWORD".into(), "bk-sftp-restic-pw".into()));
    let name = format!("bk-sftp-{}", now_unix());
    let repository = format!("{}/{name}", store.url);
    let stored = std::path::Path::new(&store.root)
        .join("backups")
        .join(&name);
    let section = |host_key: &str| {
        format!(
            "  backup:\n    repository: {repository}\n    password: {{secret: env:BK_SFTP_RESTIC_PASSWORD}}\n    credentials:\n      sshKey: {{secret: file:{}}}\n    hostKey: {host_key}\n",
            store.key_file
        )
    };
    // The client's own public key stands in for a host key that is not the store's.
    let not_the_store = std::fs::read_to_string(format!("{}.pub", store.key_file))?;
    append_backup(&site, &section(not_the_store.trim()))?;
    clean_backups(&site)?;
    site.apply()?.assert_success();
    let refused = site.siteward(&["backup", &site.name])?;
    ensure!(!refused.success(), "a wrong host key is refused: {refused}");
    ensure!(
        refused.stderr.contains("Host key verification failed"),
        "says why: {refused}"
    );
    ensure!(!stored.exists(), "nothing was written at the store");

    append_backup(&site, &section(&store.host_key))?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    seed_storage(&site, 2)?;
    let database = database_digest(&site, &site.a)?;
    let storage = storage_digest(&site, &site.a)?;
    let out = site.siteward(&["backup", &site.name])?;
    out.assert_success();
    ensure!(
        stored.join("config").is_file(),
        "restic's repository is at the store"
    );
    let listed = site.siteward(&["backups", &site.name, "--format", "json"])?;
    listed.assert_success();
    let runs: serde_json::Value = serde_json::from_str(&listed.stdout)?;
    ensure!(runs.as_array().map(Vec::len) == Some(1), "{runs:#}");
    let secrets = site.a.exec(&format!(
        "stat -c '%a %U' /etc/siteward/backup/{}/secrets",
        site.name
    ))?;
    ensure!(
        secrets.trim() == "600 root",
        "the key is root's alone: {secrets}"
    );

    support::site::clean_site(&site.a, &site.name)?;
    clean_backups(&site)?;
    let backup = section(&store.host_key);
    place(&site, "b", &backup)?;
    let out = site.siteward(&["restore", &site.name, "--auto-approve"])?;
    out.assert_success();
    ensure!(
        database_digest(&site, &site.b)? == database,
        "database differs after restore"
    );
    ensure!(
        storage_digest(&site, &site.b)? == storage,
        "storage differs after restore"
    );
    let (status, body) = site.b.http_get(&site.domain(), "/up")?;
    ensure!(status == 200 && body.contains("OK"), "{status} {body}");
    std::fs::remove_dir_all(&stored)?;
    Ok(())
}
