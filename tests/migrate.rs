//! Migrations against real servers: a site applied on one fleet host, its spec re-pointed at
//! another, and `siteward apply` moving it — database, storage, `.env`, code, crons and
//! workers — in `test` then `final-sync` mode; a failed validation; a killed run and network
//! cuts that the next apply resumes. Hosts: `t-migrate-*`.

mod support;

use anyhow::{Context, Result, ensure};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::Host;
use support::migration::{
    Move, assert_report, cron_live, database_digest, event_status, hostname, job_hosts, now_unix,
    push_job, schedule_runs, seed_database, seed_storage, storage_digest, worker_running,
};
use support::site::wait_for;

/// A loop on the source that appends to a storage file and inserts rows every 0.1 s, the way a
/// live site writes while it is copied.
struct LiveWriter {
    child: Child,
    host: Host,
    stop_file: String,
}

impl LiveWriter {
    fn start(site: &Move) -> Result<LiveWriter> {
        let stop_file = format!("/tmp/{}-stop-writer", site.name);
        site.sql(
            &site.a,
            "CREATE TABLE IF NOT EXISTS ticks (id INT AUTO_INCREMENT PRIMARY KEY);",
        )?;
        site.a.exec(&format!("rm -f {stop_file}"))?;
        let script = format!(
            "while [ ! -e {stop_file} ]; do echo tick >> {root}/shared/storage/logs/live.log; \
             mariadb {db} -e 'INSERT INTO ticks () VALUES ()'; sleep 0.1; done",
            root = site.root(),
            db = site.user()
        );
        let child = site
            .a
            .ssh_command(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(LiveWriter {
            child,
            host: site.a.clone(),
            stop_file,
        })
    }

    fn stop(mut self) -> Result<()> {
        self.host.exec(&format!("touch {}", self.stop_file))?;
        self.child.wait()?;
        Ok(())
    }
}

// --- tests --------------------------------------------------------------------------------------

#[test]
fn a_mariadb_site_moves_in_test_mode_then_final_sync_with_jobs_on_one_server_at_a_time()
-> Result<()> {
    let site = Move::new("t-migrate-a", "t-migrate-b", "mig-maria", "mysql")?;
    site.place("a", "test", "stop")?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    seed_storage(&site, 24)?;
    site.a.exec(&format!(
        "echo 'HAND_MADE=kept from a' >> {}/shared/.env",
        site.root()
    ))?;

    // Re-pointed, in test mode: the plan shows the move with its sizes; B gets everything,
    // its jobs installed but paused; A stays the live runner.
    site.place("b", "test", "stop")?;
    let plan = site.siteward(&["plan"])?;
    plan.assert_success();
    ensure!(
        plan.stdout.contains("site mig-maria moves from a to b")
            && plan.stdout.contains("database-copied")
            && plan.stdout.contains("estimate about"),
        "plan: {}",
        plan.stdout
    );
    // A keeps writing while it is copied: what changed during the copy is named, not compared.
    let writer = LiveWriter::start(&site)?;
    let applied = site.apply();
    writer.stop()?;
    applied?.assert_success();
    let report = assert_report(&site, false)?;
    ensure!(
        report["database"][0]["changedOnSource"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "ticks")),
        "the table written during the copy is named: {report:#}"
    );
    ensure!(
        report["storage"][0]["changedOnSource"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p
                .as_str()
                .is_some_and(|p| p.contains("storage/logs/live.log")))),
        "the file written during the copy is named: {report:#}"
    );
    ensure!(database_digest(&site, &site.a)? == database_digest(&site, &site.b)?);
    ensure!(database_digest(&site, &site.b)?.contains("Café ☕ 🚀 ✓ naïve"));
    ensure!(storage_digest(&site, &site.a)? == storage_digest(&site, &site.b)?);
    let env_b = site.b.read_file(&format!("{}/shared/.env", site.root()))?;
    ensure!(env_b.contains("HAND_MADE=kept from a") && env_b.contains("APP_NAME=mig-maria"));
    ensure!(cron_live(&site, &site.a)? && worker_running(&site, &site.a)?);
    ensure!(!cron_live(&site, &site.b)? && !worker_running(&site, &site.b)?);
    // A database event is a job too: it stays off on B while A is live.
    ensure!(event_status(&site, &site.a)? == "ENABLED");
    ensure!(event_status(&site, &site.b)? == "DISABLED");
    let (status, body) = site.b.http_get(&site.domain(), "/up")?;
    ensure!(status == 200 && body.contains("OK"), "B: {status} {body}");
    ensure!(
        site.plan_code()? == 0,
        "a tested migration has nothing more to do"
    );

    // More data on A, then final-sync: A stops, the data is synced again, B takes over.
    site.sql(
        &site.a,
        "INSERT INTO memos (body) VALUES ('written after the test');",
    )?;
    // Jobs still queued in A's Redis when it stops (a queue no worker takes yet), a delayed job
    // and a key with a TTL: the final sync moves them into B's Redis.
    let prefix = format!("{}_", site.user());
    let queued: Vec<String> = (1..=3)
        .map(|n| format!("later-{n}-{}", now_unix()))
        .collect();
    for id in &queued {
        site.a.exec(&format!(
            "cd {}/current && runuser -u {} -- php artisan queue:push {id} --queue=later",
            site.root(),
            site.user()
        ))?;
    }
    site.a.exec(&format!(
        "redis-cli zadd '{prefix}queues:later:delayed' 1900000000 delayed-job >/dev/null && \
         redis-cli set '{prefix}lock' held EX 3600 >/dev/null"
    ))?;
    site.place("b", "final-sync", "stop")?;
    let before = now_unix();
    site.apply()?.assert_success();
    let switched = now_unix();
    let report = assert_report(&site, true)?;
    ensure!(
        report["redis"]["keys"]
            .as_u64()
            .is_some_and(|keys| keys >= 3),
        "the report counts the keys moved: {report:#}"
    );
    ensure!(
        site.b.exec(&format!(
            "redis-cli zrange '{prefix}queues:later:delayed' 0 -1 withscores"
        ))? == "delayed-job\n1900000000\n",
        "the delayed job came along"
    );
    let ttl: i64 = site
        .b
        .exec(&format!("redis-cli pttl '{prefix}lock'"))?
        .trim()
        .parse()?;
    ensure!(ttl > 0 && ttl <= 3_600_000, "the TTL came along: {ttl}");
    site.b.exec(&format!(
        "cd {}/current && runuser -u {} -- php artisan queue:work --queue=later --stop-when-empty",
        site.root(),
        site.user()
    ))?;
    let b_host = hostname(&site.b)?;
    for id in &queued {
        ensure!(
            job_hosts(&site, &site.b, id)? == vec![b_host.clone()],
            "job {id} queued on A ran on B, once"
        );
    }
    ensure!(database_digest(&site, &site.a)? == database_digest(&site, &site.b)?);
    ensure!(
        site.sql(
            &site.b,
            "SELECT COUNT(*) FROM memos WHERE body = 'written after the test';"
        )? == "1"
    );
    ensure!(storage_digest(&site, &site.a)? == storage_digest(&site, &site.b)?);
    ensure!(cron_live(&site, &site.b)? && worker_running(&site, &site.b)?);
    ensure!(!cron_live(&site, &site.a)? && !worker_running(&site, &site.a)?);
    ensure!(event_status(&site, &site.b)? == "ENABLED");
    ensure!(event_status(&site, &site.a)? == "DISABLED");
    // onSource: stop — A no longer serves the site; its files and database stay.
    ensure!(
        !site
            .a
            .exists(&format!("/etc/nginx/conf.d/siteward-{}.conf", site.name))?
    );
    ensure!(site.a.exists(&format!("{}/shared/.env", site.root()))?);
    ensure!(
        site.plan_code()? == 0,
        "a finished migration is not planned again"
    );

    // The job records: after the switch only B's scheduler and workers run, nothing twice.
    let (a_name, b_name) = (hostname(&site.a)?, hostname(&site.b)?);
    // Unique ids: a job left queued in A's Redis by an earlier run must not count.
    let (job_b, job_a) = (format!("b-{switched}"), format!("a-{switched}"));
    push_job(&site, &site.b, &job_b)?;
    push_job(&site, &site.a, &job_a)?;
    wait_for(
        "a scheduler run on B after the switch",
        Duration::from_secs(130),
        || {
            Ok(schedule_runs(&site, &site.b)?
                .iter()
                .any(|(host, at)| *host == b_name && *at > switched))
        },
    )?;
    wait_for(
        "B's worker to handle its job",
        Duration::from_secs(30),
        || Ok(job_hosts(&site, &site.b, &job_b)? == vec![b_name.clone()]),
    )?;
    // A stays the live runner until the apply pauses its jobs, a while after `before`: its
    // runs of that while came along with the final sync of its database. None follows B's first.
    let runs = schedule_runs(&site, &site.b)?;
    let b_first = runs
        .iter()
        .filter(|(host, at)| *host == b_name && *at > before)
        .map(|(_, at)| *at)
        .min()
        .context("a run of B's")?;
    ensure!(
        runs.iter()
            .all(|(host, at)| *at <= before || *host == b_name || *at < b_first),
        "only B's scheduler runs after the switch: {runs:?}"
    );
    let mut minutes: Vec<u64> = runs.iter().map(|(_, at)| at / 60).collect();
    let all = minutes.len();
    minutes.dedup();
    ensure!(minutes.len() == all, "no minute ran twice: {runs:?}");
    let on_a = schedule_runs(&site, &site.a)?;
    ensure!(
        on_a.iter()
            .all(|(host, at)| *at <= switched && *host == a_name),
        "A ran nothing after the switch: {on_a:?}"
    );
    ensure!(
        job_hosts(&site, &site.a, &job_a)?.is_empty(),
        "A's workers are stopped"
    );
    Ok(())
}

#[test]
fn a_postgres_site_moves_with_final_sync_and_on_source_remove_leaves_nothing_on_the_source()
-> Result<()> {
    let site = Move::new("t-migrate-c", "t-migrate-d", "mig-pg", "postgres")?;
    site.place("a", "final-sync", "remove")?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    seed_storage(&site, 8)?;
    let database_on_a = database_digest(&site, &site.a)?;
    let storage_on_a = storage_digest(&site, &site.a)?;
    let prefix = format!("{}_", site.user());
    site.a.exec(&format!(
        "redis-cli set '{prefix}left-behind?' no >/dev/null"
    ))?;

    site.place("b", "final-sync", "remove")?;
    // B has two cores, where one index builder is the default: two are asked for, so that the
    // spooled archive and `pg_restore --jobs` are what restores the post-data section here.
    let mut site = site;
    site.env.push(("SITEWARD_INDEX_JOBS".into(), "2".into()));
    site.env
        .push(("SITEWARD_LOG".into(), "siteward=info".into()));
    let out = site.apply()?;
    out.assert_success();
    ensure!(
        out.stderr.contains("built side by side") && out.stderr.contains("jobs=2"),
        "the post-data section was restored by two connections: {}",
        out.stderr
    );
    let spooled = site
        .b
        .exec("ls -d /var/tmp/.siteward-restore.* 2>/dev/null; true")?;
    ensure!(
        spooled.trim().is_empty(),
        "the spooled archive is removed: {spooled}"
    );
    ensure!(
        out.stdout.contains("ready for cutover"),
        "the report is printed: {}",
        out.stdout
    );
    let report = assert_report(&site, true)?;
    ensure!(
        report["database"][0]["tables"]
            .as_array()
            .is_some_and(|t| t.len() >= 3)
    );
    ensure!(database_digest(&site, &site.b)? == database_on_a);
    ensure!(database_digest(&site, &site.b)?.contains("Café ☕ 🚀 ✓ naïve"));
    ensure!(storage_digest(&site, &site.b)? == storage_on_a);
    ensure!(cron_live(&site, &site.b)? && worker_running(&site, &site.b)?);
    // Nothing of the site is left on A.
    let user = site.user();
    let leftovers = site.a.exec(&format!(
        "id -u {user} 2>/dev/null; ls -d /home/{user} /var/lib/siteward/sites/{n} /etc/cron.d/siteward-{n} \
         /etc/nginx/conf.d/siteward-{n}.conf /etc/supervisor/conf.d/siteward-{n}-* 2>/dev/null; \
         runuser -u postgres -- psql -XAtc \"SELECT datname FROM pg_database WHERE datname = '{user}' UNION ALL SELECT rolname FROM pg_roles WHERE rolname = '{user}'\"; true",
        n = site.name
    ))?;
    ensure!(leftovers.trim().is_empty(), "left on A: {leftovers}");
    let keys = site
        .a
        .exec(&format!("redis-cli --scan --pattern '{prefix}*'"))?;
    ensure!(keys.trim().is_empty(), "Redis keys left on A: {keys}");
    ensure!(
        site.b
            .exec(&format!("redis-cli get '{prefix}left-behind?'"))?
            .trim()
            == "no",
        "the key moved to B"
    );
    ensure!(site.plan_code()? == 0);
    Ok(())
}

#[test]
fn a_failed_validation_brings_the_source_back_and_the_next_apply_converges() -> Result<()> {
    let site = Move::new("t-migrate-e", "t-migrate-f", "mig-back", "mysql")?;
    site.place("a", "test", "keep")?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    site.place("b", "test", "keep")?;
    site.apply()?.assert_success();

    // Redis on B starts refusing the site: the handover fails after A was stopped.
    site.b.redis("CONFIG SET requirepass refused-by-b")?;
    site.place("b", "final-sync", "keep")?;
    let failed = site.apply()?;
    site.b
        .exec("redis-cli -a refused-by-b --no-auth-warning CONFIG SET requirepass ''")?;
    ensure!(!failed.success(), "the apply fails: {}", failed.stdout);
    let report = site.report()?;
    ensure!(
        report["ok"] == false && report["sourceBroughtBack"] == true,
        "{report:#}"
    );
    // A is the live runner again: jobs live, maintenance off; B's jobs are paused.
    ensure!(cron_live(&site, &site.a)? && worker_running(&site, &site.a)?);
    let (status, _) = site.a.http_get(&site.domain(), "/up")?;
    ensure!(status == 200, "A serves again: {status}");
    ensure!(!cron_live(&site, &site.b)? && !worker_running(&site, &site.b)?);
    ensure!(
        !site.journal(&site.b)?.contains("source-stopped"),
        "{}",
        site.journal(&site.b)?
    );

    // With B's Redis fixed, the next apply resumes and completes the handover.
    site.sql(
        &site.a,
        "INSERT INTO memos (body) VALUES ('after the failed handover');",
    )?;
    site.apply()?.assert_success();
    assert_report(&site, true)?;
    ensure!(
        site.sql(
            &site.b,
            "SELECT COUNT(*) FROM memos WHERE body = 'after the failed handover';"
        )? == "1"
    );
    ensure!(cron_live(&site, &site.b)? && worker_running(&site, &site.b)?);
    ensure!(!cron_live(&site, &site.a)? && !worker_running(&site, &site.a)?);
    let (status, _) = site.a.http_get(&site.domain(), "/up")?;
    ensure!(
        status == 503,
        "onSource keep leaves A in maintenance: {status}"
    );
    Ok(())
}

#[test]
fn a_final_sync_killed_after_the_source_stopped_then_set_back_to_test_brings_the_source_back()
-> Result<()> {
    // B's Redis is never touched here, unlike on e/f; c/d's other site moves with onSource:
    // remove, which deletes only that site.
    let site = Move::new("t-migrate-c", "t-migrate-d", "mig-mode", "mysql")?;
    site.place("a", "test", "keep")?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    site.place("b", "final-sync", "keep")?;
    // Killed as A's jobs pause: the pause script may still wait on the server for the worker
    // to stop while the next run begins.
    let mut child = site.spawn_apply()?;
    let started = Instant::now();
    while cron_live(&site, &site.a)? {
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the source never stopped: {}",
            site.journal(&site.b)?
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    let journal = site.journal(&site.b)?;
    ensure!(journal.contains("source-stopped"), "{journal}");
    ensure!(!journal.contains("validated"), "killed too late: {journal}");
    let (status, _) = site.a.http_get(&site.domain(), "/up")?;
    ensure!(status == 503, "A is left in maintenance: {status}");

    site.place("b", "test", "keep")?;
    let out = site.apply()?;
    out.assert_success();
    ensure!(
        out.stderr.contains("bringing the source back")
            || out.stdout.contains("bringing the source back"),
        "{out}"
    );
    let (status, _) = site.a.http_get(&site.domain(), "/up")?;
    ensure!(status == 200, "A serves again: {status}");
    ensure!(cron_live(&site, &site.a)? && worker_running(&site, &site.a)?);
    ensure!(!cron_live(&site, &site.b)? && !worker_running(&site, &site.b)?);
    let journal = site.journal(&site.b)?;
    ensure!(!journal.contains("source-stopped"), "{journal}");
    assert_report(&site, false)?;
    Ok(())
}

/// Waits until `host` runs a process whose command line matches the regular expression
/// `pattern` (anchor it with `^`, so that the shell running `pgrep` does not match itself).
fn wait_for_process(host: &Host, pattern: &str) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let found = host.exec(&format!(
            "pgrep -f -- {} >/dev/null && echo yes; true",
            support::shell_quote(pattern)
        ))?;
        if found.trim() == "yes" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("no `{pattern}` process on {}", host.name)
}

#[test]
fn a_killed_run_and_network_cuts_during_the_streams_resume_from_the_journal() -> Result<()> {
    let site = Move::with_servers(
        "t-migrate-g",
        "t-migrate-h",
        "mig-cut",
        "mysql",
        "  keepaliveSeconds: 1\n",
    )?;
    site.place("a", "final-sync", "stop")?;
    site.apply()?.assert_success();
    seed_database(&site)?;
    // Enough data that the streams last a few seconds.
    site.sql(
        &site.a,
        "CREATE TABLE bulk (id INT AUTO_INCREMENT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB;
SET SESSION max_recursive_iterations = 1000000;
INSERT INTO bulk (data) WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 60000)
  SELECT RANDOM_BYTES(1024) FROM seq;",
    )?;
    seed_storage(&site, 300)?;
    site.place("b", "final-sync", "stop")?;

    // Killed while the database streams into B.
    let restoring = "^mariadb .*--batch mig_cut$";
    let mut child = site.spawn_apply()?;
    wait_for_process(&site.b, restoring)?;
    child.kill()?;
    child.wait()?;
    ensure!(
        !site.journal(&site.b)?.contains("database-copied"),
        "{}",
        site.journal(&site.b)?
    );

    // Cut off from A while the database streams again.
    let child = site.spawn_apply()?;
    wait_for_process(&site.b, restoring)?;
    site.a.cut_network()?;
    let out = child.wait_with_output()?;
    site.a.heal_network()?;
    ensure!(!out.status.success(), "the cut run fails");
    ensure!(
        !site.journal(&site.b)?.contains("database-copied"),
        "{}",
        site.journal(&site.b)?
    );

    // Cut off from B while the storage streams.
    let child = site.spawn_apply()?;
    wait_for_process(&site.b, "^tar -x -p")?;
    site.b.cut_network()?;
    let out = child.wait_with_output()?;
    site.b.heal_network()?;
    ensure!(!out.status.success(), "the cut run fails");
    let journal = site.journal(&site.b)?;
    // The database streams beside the storage: cut off from B, neither is recorded as copied.
    ensure!(!journal.contains("storage-copied"), "{journal}");

    // The next apply resumes and converges.
    site.apply()?.assert_success();
    assert_report(&site, true)?;
    ensure!(database_digest(&site, &site.a)? == database_digest(&site, &site.b)?);
    ensure!(
        site.sql(&site.a, "CHECKSUM TABLE bulk;")? == site.sql(&site.b, "CHECKSUM TABLE bulk;")?
    );
    ensure!(storage_digest(&site, &site.a)? == storage_digest(&site, &site.b)?);
    ensure!(cron_live(&site, &site.b)? && !cron_live(&site, &site.a)?);
    ensure!(site.plan_code()? == 0);
    Ok(())
}

/// What the target lacks that the source has is named before anything moves: a smaller
/// `max_allowed_packet` in its configuration, and a PHP extension the code's composer.json
/// requires. The plan refuses the move; the source keeps running, untouched.
#[test]
fn a_target_without_what_the_site_needs_is_refused_before_anything_moves() -> Result<()> {
    let site = Move::new("t-migrate-a", "t-migrate-b", "mig-needs", "mysql")?;
    let small_packet = "/etc/mysql/mariadb.conf.d/99-siteward-test-packet.cnf";
    site.b.exec(&format!("rm -f {small_packet}"))?;
    site.place("a", "final-sync", "keep")?;
    site.apply()?.assert_success();
    site.a.exec(&format!(
        "printf '%s' '{{\"require\": {{\"php\": \"^8.2\", \"ext-ctype\": \"*\", \"ext-imagick\": \"*\"}}}}' > {}/current/composer.json",
        site.root()
    ))?;
    site.b.exec(&format!(
        "printf '[mariadbd]\\nmax_allowed_packet = 1M\\n' > {small_packet}"
    ))?;
    site.place("b", "final-sync", "keep")?;
    let plan = site.siteward(&["plan"]);
    let applied = site.apply();
    site.b.exec(&format!("rm -f {small_packet}"))?;
    let (plan, applied) = (plan?, applied?);
    let said = format!("{}{}", plan.stdout, plan.stderr);
    ensure!(
        said.contains("max_allowed_packet is 1.0 MiB here and 16.0 MiB on the source"),
        "the packet is named: {said}"
    );
    ensure!(
        said.contains("lacks the extensions the site's composer files require: imagick (Debian: php8.2-imagick)"),
        "the extension is named: {said}"
    );
    ensure!(
        !said.contains("ctype"),
        "an extension B has is not named: {said}"
    );
    ensure!(!applied.success(), "the apply refuses the move: {applied}");
    ensure!(
        !site.b.exists(&site.root())?,
        "nothing was made on the target"
    );
    ensure!(worker_running(&site, &site.a)?, "the source runs on");
    Ok(())
}
