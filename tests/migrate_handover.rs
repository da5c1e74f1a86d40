//! Handing a site's jobs over and validating its home, on real servers: pause and resume of
//! crons and workers (`t-mighand-a`), maintenance mode and the validation checks
//! (`t-mighand-b`). Each test applies its own Laravel site with a cron job and a queue worker.

mod support;

use std::time::{Duration, Instant};

use anyhow::Result;
use siteward::migrate::handover::{self, HandoverError, JobsState, Maintenance, START_WAIT};
use siteward::migrate::validate::{self, Check, DatabaseLogin, JobsExpected, ValidationInput};
use siteward::plan::step::Engine;
use siteward::spec::secret::Secret;
use siteward::spec::site::Health;
use siteward::transport::{SshSession, Timeouts};
use support::site::SiteUnderTest as Site;
use support::{Fleet, Host};

const APP_KEY: &str = "base64:dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdGtleTA=";

/// A Laravel site on MariaDB with Redis, a cron job and a queue worker, served as `NAME.test`.
fn site_spec(name: &str) -> String {
    let db = name.replace('-', "_");
    let upper = db.to_uppercase();
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
    branch: main
  deploy:
    script: php artisan migrate --force
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
  crons:
    - name: report
      schedule: "@hourly"
      command: php artisan about
  workers:
    - name: queue
      command: php artisan queue:work
  health:
    path: /up
    expectBody: OK
    timeoutSeconds: 4
"#
    )
}

fn password(name: &str) -> String {
    format!("pw-{name}-1")
}

/// Applies the site `name` on `host` from scratch; returns it with a session to the host.
async fn applied(host: &Host, name: &str) -> Result<(Site, SshSession)> {
    let upper = name.replace('-', "_").to_uppercase();
    let env = vec![
        (format!("{upper}_APP_KEY"), APP_KEY.to_owned()),
        (format!("{upper}_DB_PASSWORD"), password(name)),
    ];
    let site = Site::new(host, name, env)?;
    host.exec(&format!("rm -rf /var/lib/siteward/sites/{name}/paused"))?;
    site.workspace
        .write_spec(&format!("sites/{name}.yaml"), &site_spec(name))?;
    site.apply()?.assert_success();
    let session = SshSession::connect(&host.ssh_target(Timeouts::default().exec)).await?;
    Ok((site, session))
}

fn program(site: &Site) -> String {
    format!("siteward-{}-queue", site.name)
}

/// supervisor's status line(s) of the site's worker, or "" when it does not know it.
fn supervisor_status(site: &Site) -> String {
    site.host
        .exec(&format!(
            "supervisorctl status | grep '^{}:' || true",
            program(site)
        ))
        .unwrap()
}

/// The paths of the site's cron and program files, live and paused, that exist.
fn job_files(site: &Site) -> Vec<String> {
    let paused = format!("/var/lib/siteward/sites/{}/paused", site.name);
    let candidates = [
        format!("/etc/cron.d/siteward-{}", site.name),
        format!("/etc/supervisor/conf.d/{}.conf", program(site)),
        format!("{paused}/siteward-{}", site.name),
        format!("{paused}/{}.conf", program(site)),
    ];
    candidates
        .into_iter()
        .filter(|path| site.host.exists(path).unwrap())
        .collect()
}

/// A stand-in for a cron job: a process of `user` below a process named `cron` (what the
/// daemon's children are called), sleeping `seconds`. Returns once it runs as `user`.
fn fake_cron_job(host: &Host, user: &str, seconds: u32) {
    host.exec(&format!(
        "mkdir -p /tmp/fake-cron; ln -sfn /bin/sh /tmp/fake-cron/cron; \
         setsid /tmp/fake-cron/cron -c 'runuser -u {user} -- sleep {seconds}; true' \
         </dev/null >/dev/null 2>&1 &"
    ))
    .unwrap();
    support::site::wait_for("the stand-in cron job", Duration::from_secs(10), || {
        let found = host.run(&format!("pgrep -u {user} -f '^sleep {seconds}$'"), None)?;
        Ok(found.success())
    })
    .unwrap();
}

#[tokio::test]
async fn paused_jobs_run_nowhere_and_resumed_jobs_run_again() -> Result<()> {
    let host = Fleet::host("t-mighand-a")?;
    let (site, session) = applied(&host, "mh-jobs").await?;
    let users = vec![site.user()];
    let live = handover::jobs_state(&session, &site.name, &users).await?;
    assert!(live.cron_live && !live.cron_paused, "{live:?}");
    assert_eq!(live.programs_live, [program(&site)]);

    let paused =
        handover::pause_jobs(&session, &site.name, &users, Duration::from_secs(30)).await?;
    let paused_dir = format!("/var/lib/siteward/sites/{}/paused", site.name);
    assert_eq!(
        job_files(&site),
        [
            format!("{paused_dir}/siteward-{}", site.name),
            format!("{paused_dir}/{}.conf", program(&site)),
        ]
    );
    assert_eq!(
        supervisor_status(&site),
        "",
        "supervisor forgot the program"
    );
    let workers = host.run(&format!("pgrep -u {} -f queue:work", site.user()), None)?;
    assert!(!workers.success(), "the worker stopped: {workers}");
    assert_eq!(
        host.exec(&format!("stat -c '%U %a' {paused_dir}"))?,
        "root 700\n"
    );
    assert_eq!(
        paused,
        JobsState {
            cron_paused: true,
            programs_paused: vec![program(&site)],
            ..JobsState::default()
        }
    );
    let listing = |dir: &str| host.exec(&format!("ls -la --time-style=full-iso {dir}"));
    let before = listing(&paused_dir)?;
    let again = handover::pause_jobs(&session, &site.name, &users, Duration::from_secs(30)).await?;
    assert_eq!(again, paused, "a second pause changes nothing");
    assert_eq!(listing(&paused_dir)?, before, "not even a file's time");

    let resumed = handover::resume_jobs(&session, &site.name, START_WAIT).await?;
    assert!(resumed.cron_live && !resumed.cron_paused, "{resumed:?}");
    assert_eq!(resumed.programs_running, [program(&site)]);
    assert!(supervisor_status(&site).contains("RUNNING"));
    assert_eq!(
        job_files(&site),
        [
            format!("/etc/cron.d/siteward-{}", site.name),
            format!("/etc/supervisor/conf.d/{}.conf", program(&site)),
        ]
    );
    assert_eq!(
        host.exec(&format!(
            "stat -c '%U %a' /etc/cron.d/siteward-{}",
            site.name
        ))?,
        "root 644\n",
        "cron reads only root-owned files that others cannot write"
    );
    let twice = handover::resume_jobs(&session, &site.name, START_WAIT).await?;
    assert_eq!(twice.programs_running, [program(&site)]);
    assert_eq!(twice.cron_live, resumed.cron_live);
    Ok(())
}

#[tokio::test]
async fn pausing_waits_for_running_cron_jobs_within_its_bound() -> Result<()> {
    let host = Fleet::host("t-mighand-a")?;
    let (site, session) = applied(&host, "mh-cron").await?;
    let users = vec![site.user()];

    fake_cron_job(&host, &site.user(), 30);
    let seen = handover::jobs_state(&session, &site.name, &users).await?;
    assert_eq!(seen.cron_processes.len(), 1, "{seen:?}");
    assert!(seen.cron_processes[0].contains("sleep 30"), "{seen:?}");
    let error = handover::pause_jobs(&session, &site.name, &users, Duration::from_secs(2))
        .await
        .unwrap_err();
    let HandoverError::StillRunning { jobs, .. } = &error else {
        panic!("expected StillRunning, got {error}");
    };
    assert!(jobs.iter().any(|job| job.contains("sleep 30")), "{error}");
    host.exec(&format!("pkill -u {} -x sleep || true", site.user()))?;

    fake_cron_job(&host, &site.user(), 5);
    let started = Instant::now();
    let paused =
        handover::pause_jobs(&session, &site.name, &users, Duration::from_secs(30)).await?;
    assert!(paused.is_paused(), "{paused:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the pause waited for the job ({:?})",
        started.elapsed()
    );
    let after = handover::jobs_state(&session, &site.name, &users).await?;
    assert!(after.cron_processes.is_empty(), "{after:?}");
    Ok(())
}

fn validation_input(site: &Site, jobs: JobsExpected, db_password: &str) -> ValidationInput {
    ValidationInput {
        site: site.name.clone(),
        domain: format!("{}.test", site.name),
        address: site.host.address.clone(),
        code_dir: format!("{}/current", site.root()),
        user: site.user(),
        laravel: true,
        health: Some(Health {
            path: "/up".to_owned(),
            expect_status: 200,
            expect_body: Some("OK".to_owned()),
            timeout_seconds: 2,
        }),
        database: Some(DatabaseLogin {
            engine: Engine::Mysql,
            name: site.user(),
            user: site.user(),
            password: Secret::new(db_password.to_owned()),
        }),
        redis_url: Some("redis://127.0.0.1:6379".to_owned()),
        crons: true,
        workers: vec!["queue".to_owned()],
        jobs,
        https: None,
    }
}

fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|check| check.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
}

#[tokio::test]
async fn maintenance_and_validation_see_what_the_site_serves() -> Result<()> {
    let host = Fleet::host("t-mighand-b")?;
    let (site, session) = applied(&host, "mh-valid").await?;
    let domain = format!("{}.test", site.name);
    let code_dir = format!("{}/current", site.root());
    let healthy = validation_input(&site, JobsExpected::Running, &password(&site.name));

    let checks = validate::validate_site(&session, &healthy).await;
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    let worker = format!("worker {}", program(&site));
    assert_eq!(
        names,
        [
            "http",
            "artisan about",
            "database",
            "redis",
            "cron",
            worker.as_str()
        ]
    );
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");

    handover::maintenance(&session, &code_dir, &site.user(), Maintenance::On).await?;
    handover::maintenance(&session, &code_dir, &site.user(), Maintenance::On).await?;
    assert_eq!(host.http_get(&domain, "/up")?.0, 503);
    let down = validate::validate_site(&session, &healthy).await;
    let http = check(&down, "http");
    assert!(!http.ok && http.detail.contains("answered 503"), "{http:?}");
    handover::maintenance(&session, &code_dir, &site.user(), Maintenance::Off).await?;
    handover::maintenance(&session, &code_dir, &site.user(), Maintenance::Off).await?;
    assert_eq!(host.http_get(&domain, "/up")?, (200, "OK".to_owned()));

    let wrong = validation_input(&site, JobsExpected::Running, "not-the-password");
    let checks = validate::validate_site(&session, &wrong).await;
    let database = check(&checks, "database");
    assert!(
        !database.ok && database.detail.contains("Access denied"),
        "{database:?}"
    );
    assert!(check(&checks, "http").ok, "{checks:#?}");

    let expect_paused = validation_input(&site, JobsExpected::Paused, &password(&site.name));
    let checks = validate::validate_site(&session, &expect_paused).await;
    let worker_check = check(&checks, &worker);
    assert!(
        !worker_check.ok && worker_check.detail.contains("expected paused"),
        "{worker_check:?}"
    );
    assert!(!check(&checks, "cron").ok, "{checks:#?}");

    let users = vec![site.user()];
    handover::pause_jobs(&session, &site.name, &users, Duration::from_secs(30)).await?;
    let checks = validate::validate_site(&session, &expect_paused).await;
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    let checks = validate::validate_site(&session, &healthy).await;
    let worker_check = check(&checks, &worker);
    assert!(!worker_check.ok, "{worker_check:?}");
    handover::resume_jobs(&session, &site.name, START_WAIT).await?;
    Ok(())
}

/// The one `supervisorctl update` of applies, removals and handovers.
const SUPERVISOR_SH: &str = include_str!("../src/apply/scripts/supervisor.sh");

/// Another update on the server (another site's removal, an administrator) can remove a
/// program between a script's look at supervisor and its own update: supervisor then answers
/// "no such group". That program is as wanted when its file is gone; not when it is there.
#[test]
fn a_program_removed_by_another_update_first_is_as_wanted() -> Result<()> {
    let host = Fleet::host("t-mighand-b")?;
    let update = |dir: &str, program: &str| {
        host.run(
            &format!("{SUPERVISOR_SH}\nsupervisor_update {dir} {program}"),
            None,
        )
    };
    let gone = update("/etc/supervisor/conf.d", "siteward-mh-gone-queue")?;
    assert!(gone.success(), "a removed program's file is gone: {gone}");

    host.exec("mkdir -p /tmp/mh-programs && : > /tmp/mh-programs/siteward-mh-ghost-queue.conf")?;
    let unknown = update("/tmp/mh-programs", "siteward-mh-ghost-queue")?;
    host.exec("rm -rf /tmp/mh-programs")?;
    assert!(!unknown.success(), "its file is there: {unknown}");
    assert!(
        unknown
            .stderr
            .contains("ERROR: no such group: siteward-mh-ghost-queue"),
        "says what supervisor answered: {unknown}"
    );
    Ok(())
}
