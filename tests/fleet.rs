//! The test fleet itself: real services on every host, isolation between hosts, disk state
//! across restarts, crash recovery, and the test app served by nginx and php-fpm.
//!
//! Hosts: `t-fleet-a` and `t-fleet-b` (shared, disjoint resources per test), `t-fleet-persist`
//! (stopped and started by one test), `t-fleet-crash` (killed by one test), `t-fleet-cut`
//! (network cut and healed by one test).

mod support;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use support::{Fleet, Host, app_repo_url, git_commit, shell_quote};

/// A value no earlier run left behind.
fn unique_token(label: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}-{}-{nanos}", std::process::id())
}

/// Retries `check` for up to ten seconds (nginx reloads and workers exit asynchronously).
fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_services_answer(host: &Host) -> Result<()> {
    assert_eq!(host.exec("hostname")?.trim(), host.name);
    let resolved = host.exec("getent hosts \"$(hostname)\"")?;
    assert_eq!(
        resolved.split_whitespace().next(),
        Some(host.address.as_str()),
        "{resolved}"
    );
    assert_eq!(host.mysql("SELECT 1")?, "1");
    assert_eq!(host.psql("SELECT 1")?, "1");
    assert_eq!(host.redis("ping")?, "PONG");
    assert!(
        host.exec("supervisorctl pid")?
            .trim()
            .parse::<u32>()
            .is_ok()
    );
    host.exec("pgrep -x cron")?;
    host.exec("php -r 'exit(stream_socket_client(\"unix:///run/php/php8.2-fpm.sock\") ? 0 : 1);'")?;
    let (status, _) = host.http_get("default.fleet.test", "/")?;
    assert!(status == 200 || status == 404, "nginx answered {status}");
    // Real SSH from the machine: key auth as root, host key checked against known_hosts.
    assert_eq!(
        host.ssh("hostname && id -u")?,
        format!("{}\n0\n", host.name)
    );
    Ok(())
}

#[test]
fn every_service_answers_on_every_host() -> Result<()> {
    let a = Fleet::host("t-fleet-a")?;
    let b = Fleet::host("t-fleet-b")?;
    assert_ne!(a.address, b.address);
    assert_ne!(a.host_key, b.host_key, "every host has its own host key");
    assert_services_answer(&a)?;
    assert_services_answer(&b)?;
    let known_hosts = Fleet::run(&["known-hosts"])?;
    for host in [&a, &b] {
        let prefix = format!("{} ssh-ed25519 ", host.address);
        assert_eq!(
            known_hosts
                .lines()
                .filter(|l| l.starts_with(&prefix))
                .count(),
            1,
            "{known_hosts}"
        );
    }
    Ok(())
}

#[test]
fn changes_on_one_host_are_invisible_on_another() -> Result<()> {
    let a = Fleet::host("t-fleet-a")?;
    let b = Fleet::host("t-fleet-b")?;
    let token = unique_token("isolation");
    for dir in [
        "/etc",
        "/home",
        "/root",
        "/srv",
        "/var/lib/siteward",
        "/var/log",
        "/tmp",
    ] {
        let path = format!("{dir}/fleet-isolation-probe");
        a.write_file(&path, &token)?;
        assert_eq!(a.read_file(&path)?, token);
        let seen_on_b = b.run(&format!("cat {path}"), None)?.stdout;
        assert_ne!(seen_on_b, token, "{path} written on a is visible on b");
        assert!(
            std::fs::read_to_string(&path).map_or(true, |seen| seen != token),
            "{path} leaks to the machine"
        );
    }
    let database = "fleet_isolation_probe";
    a.mysql(&format!("CREATE DATABASE IF NOT EXISTS {database}"))?;
    assert_eq!(b.mysql(&format!("SHOW DATABASES LIKE '{database}'"))?, "");
    // Each host sees its own processes only: PID 1 is its own init.
    assert!(a.read_file("/proc/1/cmdline")?.contains("t-fleet-a"));
    assert!(!a.exec("ps -e -o args")?.contains("__boot t-fleet-b"));
    Ok(())
}

#[test]
fn hosts_reach_the_machine_and_nothing_else() -> Result<()> {
    let a = Fleet::host("t-fleet-a")?;
    let routes = a.exec("ip -4 route")?;
    assert!(
        !routes.contains("default"),
        "a host must not route anywhere but the machine:\n{routes}"
    );
    // The machine (its side of the link, and the git daemon) answers.
    a.exec(&format!("ping -c1 -W2 {}", a.gateway))?;
    a.exec("timeout 5 bash -c 'exec 3<>/dev/tcp/10.77.0.1/9418'")?;
    // Outside addresses are unreachable.
    let outside = a.run("timeout 3 bash -c 'exec 3<>/dev/tcp/192.0.2.1/80'", None)?;
    assert!(!outside.success(), "{outside}");
    Ok(())
}

#[test]
fn a_host_keeps_its_data_across_down_and_up() -> Result<()> {
    let name = "t-fleet-persist";
    let host = Fleet::host(name)?;
    let token = unique_token("persist");
    host.mysql(&format!(
        "CREATE DATABASE IF NOT EXISTS persist; \
         CREATE TABLE IF NOT EXISTS persist.notes (body VARCHAR(128)); \
         DELETE FROM persist.notes; INSERT INTO persist.notes VALUES ('{token}');"
    ))?;
    host.psql(&format!(
        "DROP TABLE IF EXISTS persist_notes; CREATE TABLE persist_notes (body text); \
         INSERT INTO persist_notes VALUES ('{token}');"
    ))?;
    host.redis(&format!("set fleet:persist {token}"))?;
    host.write_file("/srv/persist/note.txt", &token)?;
    host.write_file("/etc/cron.d/fleet-persist", "# persist\n")?;

    Fleet::down(name)?;
    assert!(host.exec("true").is_err(), "a stopped host runs nothing");
    let (status, _) = host.http_get("x", "/").unwrap_or((0, String::new()));
    assert_eq!(status, 0, "a stopped host does not answer");

    let again = Fleet::host(name)?;
    assert_eq!(
        again, host,
        "same address, key paths and host key after a restart"
    );
    assert_eq!(again.mysql("SELECT body FROM persist.notes")?, token);
    assert_eq!(again.psql("SELECT body FROM persist_notes")?, token);
    assert_eq!(again.redis("get fleet:persist")?, token);
    assert_eq!(again.read_file("/srv/persist/note.txt")?, token);
    assert_eq!(again.read_file("/etc/cron.d/fleet-persist")?, "# persist\n");
    assert_services_answer(&again)
}

#[test]
fn a_killed_host_comes_back_with_its_data() -> Result<()> {
    let name = "t-fleet-crash";
    let host = Fleet::host(name)?;
    let token = unique_token("crash");
    host.mysql(&format!(
        "CREATE DATABASE IF NOT EXISTS crash; CREATE TABLE IF NOT EXISTS crash.notes (body VARCHAR(128)); \
         DELETE FROM crash.notes; INSERT INTO crash.notes VALUES ('{token}');"
    ))?;

    // One service dies: `up` starts it again.
    host.exec("pkill -KILL -x mariadbd; pkill -KILL -x nginx")?;
    let host = Fleet::up(name)?;
    assert_eq!(host.mysql("SELECT body FROM crash.notes")?, token);

    // Every process of the host dies at once (kill -9 from the machine), leaving its network
    // namespace, link and pid files behind: `up` cleans up and boots it again.
    let status = Command::new("bash")
        .args([
            "-c",
            &format!("kill -KILL $(ip netns pids sw-{name}) 2>/dev/null; true"),
        ])
        .status()?;
    assert!(status.success());
    let host = Fleet::up(name)?;
    assert_eq!(host.mysql("SELECT body FROM crash.notes")?, token);
    assert_services_answer(&host)
}

/// Checks out the test app (git clone from the machine's git daemon) as release `release` of
/// `root`, with `current` pointing at it and a `.env` from `env`.
fn check_out_app(
    host: &Host,
    root: &str,
    release: &str,
    revision: &str,
    env: &str,
) -> Result<String> {
    let dir = format!("{root}/releases/{release}");
    host.exec(&format!(
        "rm -rf {root} && mkdir -p {root}/releases && git clone -q {url} {dir} && \
         git -C {dir} checkout -q {revision} && ln -sfn releases/{release} {root}/current",
        url = app_repo_url(host),
        revision = shell_quote(revision),
    ))?;
    host.write_file(&format!("{dir}/.env"), env)?;
    host.exec(&format!(
        "chown -R www-data:www-data {dir}/storage {dir}/bootstrap/cache"
    ))?;
    Ok(dir)
}

fn mysql_database(host: &Host, name: &str, password: &str) -> Result<()> {
    host.mysql(&format!(
        "CREATE DATABASE IF NOT EXISTS {name}; \
         CREATE USER IF NOT EXISTS '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'; \
         ALTER USER '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'; \
         GRANT ALL ON {name}.* TO '{name}'@'127.0.0.1';"
    ))
    .map(drop)
}

fn app_env(name: &str, connection: &str, port: u16, password: &str) -> String {
    format!(
        "APP_NAME=\"{name} app\"\nAPP_ENV=production\n\
         DB_CONNECTION={connection}\nDB_HOST=127.0.0.1\nDB_PORT={port}\n\
         DB_DATABASE={name}\nDB_USERNAME={name}\nDB_PASSWORD='{password}'\n\
         REDIS_HOST=127.0.0.1\nREDIS_PORT=6379\nREDIS_PREFIX={name}:\n"
    )
}

#[test]
fn the_test_app_is_served_through_nginx_and_php_fpm() -> Result<()> {
    let host = Fleet::host("t-fleet-a")?;
    let (site, domain, root) = ("fleet_web", "web.fleet.test", "/srv/fleet-web");
    mysql_database(&host, site, "web-secret")?;
    check_out_app(
        &host,
        root,
        "r1",
        "main",
        &app_env(site, "mysql", 3306, "web-secret"),
    )?;
    let vhost = format!(
        "server {{\n  listen 80;\n  server_name {domain};\n  root {root}/current/public;\n  \
         index index.php;\n  location / {{ try_files $uri $uri/ /index.php?$query_string; }}\n  \
         location ~ \\.php$ {{\n    include fastcgi_params;\n    \
         fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;\n    \
         fastcgi_param DOCUMENT_ROOT $realpath_root;\n    \
         fastcgi_pass unix:/run/php/php8.2-fpm.sock;\n  }}\n}}\n"
    );
    host.write_file("/etc/nginx/sites-enabled/fleet-web.conf", &vhost)?;
    host.exec("nginx -t 2>&1 && nginx -s reload")?;

    let body = eventually("the vhost to answer", || {
        let (status, body) = host.http_get(domain, "/up")?;
        Ok((status == 200).then_some(body))
    })?;
    assert_eq!(body, "OK");

    let (status, body) = host.http_get(domain, "/")?;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).with_context(|| format!("not JSON: {body}"))?;
    assert_eq!(report["app"], "fleet_web app");
    assert_eq!(report["host"], "t-fleet-a");
    assert_eq!(report["release"], "r1");
    assert_eq!(report["version"], "v2");
    assert_eq!(report["database"]["ok"], true, "{body}");
    assert_eq!(report["redis"]["ok"], true, "{body}");
    assert_eq!(host.http_get(domain, "/missing")?.0, 404);

    host.exec(&format!("cd {root}/current && php artisan down"))?;
    assert_eq!(host.http_get(domain, "/up")?.0, 503);
    host.exec(&format!("cd {root}/current && php artisan up"))?;
    assert_eq!(host.http_get(domain, "/up")?.0, 200);
    Ok(())
}

/// Waits until process `pid` on `host` has exited.
fn wait_for_exit(host: &Host, pid: &str) -> Result<()> {
    eventually(&format!("process {pid} to exit"), || {
        Ok((!host.run(&format!("kill -0 {pid}"), None)?.success()).then_some(()))
    })
}

/// Starts `php artisan COMMAND` in the background in `dir`; returns its pid.
fn start_worker(host: &Host, dir: &str, command: &str, log: &str) -> Result<String> {
    let pid = host.exec(&format!(
        "cd {dir} && {{ php artisan {command} >{log} 2>&1 </dev/null & echo $!; }}"
    ))?;
    Ok(pid.trim().to_owned())
}

#[test]
fn artisan_commands_work_against_mariadb_and_redis() -> Result<()> {
    let host = Fleet::host("t-fleet-b")?;
    let (site, root) = ("fleet_artisan", "/srv/fleet-artisan");
    mysql_database(&host, site, "artisan-secret")?;
    host.mysql(&format!("DROP DATABASE {site}; CREATE DATABASE {site};"))?;
    host.redis(&format!("del {site}:queue:default"))?;
    let dir = check_out_app(
        &host,
        root,
        "r1",
        "v1",
        &app_env(site, "mysql", 3306, "artisan-secret"),
    )?;
    let artisan = |args: &str| host.run(&format!("cd {dir} && php artisan {args}"), None);

    let about = artisan("about")?;
    assert!(about.success(), "{about}");
    assert!(
        about.stdout.contains("mysql OK")
            && about.stdout.contains("Version ")
            && about.stdout.contains("v1"),
        "{about}"
    );
    assert!(
        about
            .stdout
            .lines()
            .any(|l| l.contains("Redis") && l.ends_with("OK")),
        "{about}"
    );

    assert!(!artisan("migrate")?.success(), "production needs --force");
    artisan("migrate --force")?.assert_success();
    assert!(
        artisan("migrate --force")?
            .assert_success()
            .stdout
            .contains("Nothing to migrate")
    );
    let status = artisan("migrate:status")?.stdout;
    assert!(
        status
            .lines()
            .any(|l| l.contains("create_schedule_runs_table ...") && l.ends_with("Ran")),
        "{status}"
    );
    assert_eq!(
        host.mysql(&format!("SELECT COUNT(*) FROM {site}.migrations"))?,
        "2"
    );
    host.exec(&format!("git -C {dir} checkout -q v2"))?;
    artisan("migrate --force")?.assert_success();
    assert_eq!(
        host.mysql(&format!("SELECT COUNT(*) FROM {site}.migrations"))?,
        "3"
    );

    // queue:work takes jobs from Redis and records them with the host and the release.
    artisan("queue:push job-1")?.assert_success();
    artisan("queue:work --stop-when-empty")?.assert_success();
    assert_eq!(
        host.mysql(&format!(
            "SELECT job_id, host, release_dir, worker FROM {site}.jobs_done"
        ))?,
        format!("job-1\tt-fleet-b\t{dir}\tqueue:work")
    );

    // queue:restart stops queue:work workers only; horizon:terminate stops horizon.
    let worker = start_worker(&host, &dir, "queue:work", "/tmp/fleet-artisan-worker.log")?;
    let horizon = start_worker(&host, &dir, "horizon", "/tmp/fleet-artisan-horizon.log")?;
    std::thread::sleep(Duration::from_millis(700));
    artisan("queue:push job-2")?.assert_success();
    eventually("job-2", || {
        let done = host.mysql(&format!(
            "SELECT COUNT(*) FROM {site}.jobs_done WHERE job_id = 'job-2'"
        ))?;
        Ok((done == "1").then_some(()))
    })?;
    artisan("queue:restart")?.assert_success();
    wait_for_exit(&host, &worker)?;
    assert!(
        host.run(&format!("kill -0 {horizon}"), None)?.success(),
        "queue:restart stopped horizon"
    );
    artisan("horizon:terminate")?.assert_success();
    wait_for_exit(&host, &horizon)?;

    // SIGTERM lets the current job finish.
    let worker = start_worker(&host, &dir, "queue:work", "/tmp/fleet-artisan-worker.log")?;
    artisan("queue:push job-slow --sleep=1.5")?.assert_success();
    std::thread::sleep(Duration::from_millis(700));
    host.exec(&format!("kill -TERM {worker}"))?;
    wait_for_exit(&host, &worker)?;
    let done = host.mysql(&format!(
        "SELECT COUNT(*) FROM {site}.jobs_done WHERE job_id = 'job-slow'"
    ))?;
    assert_eq!(
        done,
        "1",
        "{}",
        host.read_file("/tmp/fleet-artisan-worker.log")?
    );

    artisan("schedule:run")?.assert_success();
    let log = host.read_file(&format!("{dir}/storage/logs/schedule.log"))?;
    assert!(
        log.lines()
            .last()
            .is_some_and(|l| l.starts_with("t-fleet-b ")),
        "{log}"
    );
    assert_eq!(
        host.mysql(&format!("SELECT COUNT(*) FROM {site}.schedule_runs"))?,
        "1"
    );

    artisan("storage:link --relative")?.assert_success();
    assert_eq!(
        host.exec(&format!("readlink {dir}/public/storage"))?.trim(),
        "../storage/app/public"
    );

    artisan("config:cache")?.assert_success();
    assert!(host.exists(&format!("{dir}/bootstrap/cache/config.php"))?);
    assert!(artisan("about")?.stdout.contains("CACHED"));
    artisan("config:clear")?.assert_success();

    host.exec(&format!(
        "sed -i 's/^DB_PASSWORD=.*/DB_PASSWORD=wrong/' {dir}/.env"
    ))?;
    let about = artisan("about")?;
    assert_eq!(
        about.code(),
        Some(1),
        "about must fail when the database does not answer: {about}"
    );
    Ok(())
}

#[test]
fn artisan_commands_work_against_postgres() -> Result<()> {
    let host = Fleet::host("t-fleet-b")?;
    let (site, root) = ("fleet_pg", "/srv/fleet-pg");
    host.psql(&format!(
        "DROP DATABASE IF EXISTS {site} WITH (FORCE); DROP ROLE IF EXISTS {site}; \
         CREATE ROLE {site} LOGIN PASSWORD 'pg-secret'; CREATE DATABASE {site} OWNER {site};"
    ))?;
    let dir = check_out_app(
        &host,
        root,
        "r1",
        "main",
        &app_env(site, "pgsql", 5432, "pg-secret"),
    )?;
    let artisan = |args: &str| host.run(&format!("cd {dir} && php artisan {args}"), None);
    assert!(
        artisan("about")?
            .assert_success()
            .stdout
            .contains("pgsql OK")
    );
    artisan("migrate --force")?.assert_success();
    artisan("queue:push pg-1")?.assert_success();
    artisan("queue:work --stop-when-empty")?.assert_success();
    let done = host.psql(&format!("\\c {site}\nSELECT job_id, host FROM jobs_done"))?;
    assert_eq!(done, "pg-1|t-fleet-b");
    Ok(())
}

#[test]
fn git_commit_adds_stable_branches_that_hosts_can_clone() -> Result<()> {
    let host = Fleet::host("t-fleet-a")?;
    let script = "echo '<?php this is a syntax error' > public/index.php";
    let first = git_commit(
        "t-fleet-a/broken",
        "Break the front controller",
        None,
        script,
    )?;
    let second = git_commit(
        "t-fleet-a/broken",
        "Break the front controller",
        None,
        script,
    )?;
    assert_eq!(first, second, "the same commit gives the same id");
    assert_eq!(first.len(), 40);

    let refs = host.exec(&format!("git ls-remote {}", app_repo_url(&host)))?;
    for name in ["refs/heads/main", "refs/tags/v1", "refs/tags/v2"] {
        assert!(refs.contains(name), "{refs}");
    }
    assert!(
        refs.contains(&format!("{first}\trefs/heads/t-fleet-a/broken")),
        "{refs}"
    );
    let dir = "/srv/fleet-git-broken";
    host.exec(&format!(
        "rm -rf {dir} && git clone -q -b t-fleet-a/broken {} {dir}",
        app_repo_url(&host)
    ))?;
    assert!(
        host.read_file(&format!("{dir}/public/index.php"))?
            .contains("syntax error")
    );
    assert_eq!(host.read_file(&format!("{dir}/VERSION"))?.trim(), "v2");
    Ok(())
}

/// Whether a TCP connection to `address:22` is still unanswered after two seconds, the way a
/// cut network looks (no reset, no ICMP error): `Ok(())` for a timeout, an error otherwise.
fn connect_times_out(address: &str) -> Result<()> {
    let target: std::net::SocketAddr = format!("{address}:22").parse()?;
    let started = Instant::now();
    match std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
        Ok(_) => bail!("{target} accepted a connection"),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(()),
        Err(e) => bail!(
            "connecting to {target} failed after {:?} with `{e}` instead of timing out",
            started.elapsed()
        ),
    }
}

#[test]
fn a_cut_host_is_unreachable_until_healed() -> Result<()> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;

    let host = Fleet::host("t-fleet-cut")?;
    host.heal_network()?; // a no-op, also when an interrupted run left the host cut
    assert!(!host.network_is_cut()?);
    assert_eq!(host.ssh("hostname")?.trim(), host.name);

    // An SSH stream in flight: one line every 50 ms.
    let mut stream = host
        .ssh_command("for i in $(seq 1 1200); do echo $i; sleep 0.05; done")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let (lines_tx, lines) = mpsc::channel();
    let stdout = stream.stdout.take().expect("stdout is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let result = (|| -> Result<()> {
        lines.recv_timeout(Duration::from_secs(30))??;

        host.cut_network()?;
        host.cut_network()?; // idempotent
        assert!(host.network_is_cut()?);
        assert!(
            Fleet::run(&["status"])?
                .lines()
                .any(|l| l.starts_with("t-fleet-cut ") && l.contains(" cut ")),
            "status shows the cut"
        );
        connect_times_out(&host.address)?;
        // The stream stalls instead of failing: what was in flight arrives, then nothing.
        while lines.recv_timeout(Duration::from_millis(300)).is_ok() {}
        match lines.recv_timeout(Duration::from_millis(1500)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(line) => bail!("the stream went on across the cut: {line:?}"),
            Err(e) => bail!("the stream ended during the cut: {e}"),
        }
        assert!(stream.try_wait()?.is_none(), "ssh exited during the cut");
        // No network, but the host itself runs on.
        assert_eq!(host.exec("hostname")?.trim(), host.name);

        host.heal_network()?;
        host.heal_network()?; // idempotent
        assert!(!host.network_is_cut()?);
        // New connections work at once. (The stalled one carries on at TCP's next
        // retransmission, whose back-off doubles while the cut lasts: on a loaded machine that
        // can be minutes away, so it is not waited for.)
        assert_eq!(host.ssh("hostname")?.trim(), host.name);
        Ok(())
    })();
    let _ = stream.kill();
    let _ = stream.wait();
    if result.is_err() {
        let _ = host.heal_network();
    }
    result
}
