//! Validating a site's new home: HTTP, artisan, database, Redis and jobs checked on the server, in one round trip.
//!
//! The checks run on the server itself, so they see what the site will see once traffic is
//! switched: the HTTP check goes to the server's own address with the site's Host header, the
//! database is reached with the site's own credentials. Secrets travel on stdin only.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::layout;
use crate::plan::step::Engine;
use crate::spec::secret::Secret;
use crate::spec::site::Health;
use crate::transport::quote::Command;
use crate::transport::{IdentifierKind, Stdin, Transport, validate_identifier};

const SCRIPT: &str = include_str!("scripts/validate_site.sh");

/// How long the HTTP check retries when the site has no health check of its own, in seconds.
const DEFAULT_HEALTH_TIMEOUT: u32 = 10;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// `http`, `artisan about`, `database`, `redis`, `cron`, `worker <program>`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was seen: the answer, or why it failed.
    pub detail: String,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

/// Where the site's jobs should be on the validated server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobsExpected {
    /// Live and running: the server runs the site's jobs.
    Running,
    /// Installed but paused (a `test` migration's target): files in the paused directory, no
    /// program known to supervisor.
    Paused,
}

/// How the site logs in to its database.
#[derive(Debug, Clone)]
pub struct DatabaseLogin {
    /// The engine family.
    pub engine: Engine,
    /// The database.
    pub name: String,
    /// The site's database user.
    pub user: String,
    /// Its password.
    pub password: Secret,
}

/// What to validate, and how the site should look.
#[derive(Debug, Clone)]
pub struct ValidationInput {
    /// The site's name (it names its jobs' files).
    pub site: String,
    /// The site's domain, sent as the Host header.
    pub domain: String,
    /// The server's address, as siteward reaches it (an IP address or a host name).
    pub address: String,
    /// The live code directory (`/home/<user>/<domain>/current` for releases).
    pub code_dir: String,
    /// The site's Linux user.
    pub user: String,
    /// Whether the site is a Laravel application (`php artisan about` is checked).
    pub laravel: bool,
    /// The site's health check; without one, `/` must answer below 500.
    pub health: Option<Health>,
    /// The database, when the site has one.
    pub database: Option<DatabaseLogin>,
    /// The Redis URL the site uses, when it uses Redis (a password in it goes over stdin).
    pub redis_url: Option<String>,
    /// Whether the site has cron jobs (its cron file is checked).
    pub crons: bool,
    /// The site's worker names (`workers[].name` of its spec).
    pub workers: Vec<String>,
    /// Where its crons and workers should be.
    pub jobs: JobsExpected,
    /// The site has `tls`: the HTTP check goes over HTTPS with SNI, and the certificate served
    /// must be the one with this SHA-256 (any when empty).
    pub https: Option<String>,
}

/// Runs every check of `input` on the server; a check that could not run is a failed check.
///
/// # Guarantees
/// - One round trip; changes nothing on the server (temporary 0600 files under a 0700
///   directory, removed when the script exits).
/// - The database password and a Redis password reach the server on stdin only, and the
///   clients through a 0600 file (`--defaults-extra-file`, `PGPASSFILE`) or the environment
///   (`REDISCLI_AUTH`), never as an argument.
/// - Every check runs even when an earlier one failed; when the script itself cannot run, the
///   result is one failed check named `validation` saying why.
pub async fn validate_site(transport: &impl Transport, input: &ValidationInput) -> Vec<Check> {
    let started = Instant::now();
    match run(transport, input).await {
        Ok(checks) => checks,
        Err(detail) => vec![Check {
            name: "validation".to_owned(),
            ok: false,
            detail,
            millis: millis(started.elapsed()),
        }],
    }
}

async fn run(transport: &impl Transport, input: &ValidationInput) -> Result<Vec<Check>, String> {
    let (redis_url, redis_password) = split_redis_password(input.redis_url.as_deref());
    let db_password = input
        .database
        .as_ref()
        .map_or("", |login| login.password.expose());
    if let Some(login) = &input.database {
        validate_identifier(IdentifierKind::Database, &login.name)
            .and_then(|()| validate_identifier(IdentifierKind::DatabaseUser, &login.user))
            .map_err(|error| error.to_string())?;
    }
    if db_password.contains('\n') || redis_password.contains('\n') {
        return Err("a password contains a newline, which the checks cannot pass on".to_owned());
    }
    let stdin = format!("{db_password}\n{redis_password}\n");
    let command = command(input, &redis_url)
        .render()
        .map_err(|error| error.to_string())?;
    let output = transport
        .exec(&command, Stdin::from(stdin.as_str()))
        .await
        .map_err(|error| {
            format!(
                "the checks could not run on {}: {error}",
                transport.endpoint()
            )
        })?;
    let answer = output.stdout_lossy();
    parse(&answer).map_err(|reason| {
        format!(
            "the checks on {} gave an unexpected answer ({reason}); status {}: {}",
            transport.endpoint(),
            output.status,
            output.stderr_lossy()
        )
    })
}

/// The script and its arguments; no secret among them.
fn command(input: &ValidationInput, redis_url: &str) -> Command {
    let health = input.health.as_ref();
    let (engine, database, db_user) = match &input.database {
        Some(login) => (engine_word(login.engine), &*login.name, &*login.user),
        None => ("none", "", ""),
    };
    let cron = layout::cron_path(&input.site);
    let (cron_live, cron_paused) = if input.crons {
        (cron.clone(), layout::paused_path(&input.site, &cron))
    } else {
        (String::new(), String::new())
    };
    Command::script(SCRIPT)
        .args([&input.domain, &input.address, &input.code_dir, &input.user])
        .arg(if input.laravel { "yes" } else { "no" })
        .arg(health.map_or("/", |h| h.path.as_str()))
        .arg(health.map_or(String::new(), |h| h.expect_status.to_string()))
        .arg(
            health
                .and_then(|h| h.expect_body.clone())
                .unwrap_or_default(),
        )
        .arg(
            health
                .map_or(DEFAULT_HEALTH_TIMEOUT, |h| h.timeout_seconds)
                .to_string(),
        )
        .args([engine, database, db_user, redis_url])
        .arg(match input.jobs {
            JobsExpected::Running => "running",
            JobsExpected::Paused => "paused",
        })
        .args([cron_live, cron_paused])
        .arg(if input.https.is_some() { "yes" } else { "no" })
        .arg(input.https.clone().unwrap_or_default())
        .args(program_arguments(&input.site, &input.workers))
}

fn engine_word(engine: Engine) -> &'static str {
    match engine {
        Engine::Mysql => "mysql",
        Engine::Postgres => "postgres",
    }
}

/// Program, live file and paused file of each worker.
fn program_arguments(site: &str, workers: &[String]) -> Vec<String> {
    workers
        .iter()
        .flat_map(|worker| {
            let live = layout::program_path(site, worker);
            let paused = layout::paused_path(site, &live);
            [layout::program_name(site, worker), live, paused]
        })
        .collect()
}

/// Splits a password out of a Redis URL (`redis://user:secret@host:6379/0` →
/// `redis://user@host:6379/0` and `secret`), so that it never becomes an argument.
fn split_redis_password(url: Option<&str>) -> (String, String) {
    let Some(url) = url else {
        return (String::new(), String::new());
    };
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_owned(), String::new());
    };
    let (userinfo, host) = (&rest[..at], &rest[at..]);
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let prefix = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    let stripped = if user.is_empty() {
        format!("{prefix}{}", &host[1..])
    } else {
        format!("{prefix}{user}{host}")
    };
    (stripped, password.to_owned())
}

/// Reads the script's lines: `check<TAB>name<TAB>ok|fail<TAB>millis<TAB>detail`, then `end`.
fn parse(answer: &str) -> Result<Vec<Check>, String> {
    let mut checks = Vec::new();
    for line in answer.lines().filter(|line| !line.is_empty()) {
        if line == "end" {
            return Ok(checks);
        }
        checks.push(parse_check(line)?);
    }
    Err("the answer ends before its `end` line".to_owned())
}

fn parse_check(line: &str) -> Result<Check, String> {
    let unknown = || format!("unknown line {line:?}");
    let mut fields = line.splitn(5, '\t');
    if fields.next() != Some("check") {
        return Err(unknown());
    }
    let name = fields.next().ok_or_else(unknown)?;
    let ok = match fields.next() {
        Some("ok") => true,
        Some("fail") => false,
        _ => return Err(unknown()),
    };
    let millis = fields
        .next()
        .and_then(|text| text.parse().ok())
        .ok_or_else(unknown)?;
    Ok(Check {
        name: name.to_owned(),
        ok,
        detail: fields.next().unwrap_or_default().to_owned(),
        millis,
    })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_becomes_a_check_in_order() {
        let answer = "check\thttp\tok\t12\tGET http://shop.test/up at 10.0.0.2: answered 200\n\
                      check\tworker siteward-shop-queue\tfail\t3\tnot running: STOPPED\nend\n";
        let checks = parse(answer).unwrap();
        assert_eq!(
            checks,
            [
                Check {
                    name: "http".to_owned(),
                    ok: true,
                    detail: "GET http://shop.test/up at 10.0.0.2: answered 200".to_owned(),
                    millis: 12,
                },
                Check {
                    name: "worker siteward-shop-queue".to_owned(),
                    ok: false,
                    detail: "not running: STOPPED".to_owned(),
                    millis: 3,
                },
            ]
        );
    }

    #[test]
    fn a_detail_may_be_empty() {
        let checks = parse("check\tredis\tok\t1\t\nend\n").unwrap();
        assert_eq!(checks[0].detail, "");
    }

    #[test]
    fn an_answer_cut_off_before_its_end_is_refused() {
        let error = parse("check\thttp\tok\t12\tanswered 200\n").unwrap_err();
        assert!(error.contains("`end`"), "{error}");
    }

    #[test]
    fn a_line_with_an_unknown_verdict_is_refused() {
        let error = parse("check\thttp\tmaybe\t12\t\nend\n").unwrap_err();
        assert!(error.contains("maybe"), "{error}");
    }

    #[test]
    fn a_line_without_a_duration_is_refused() {
        assert!(parse("check\thttp\tok\n").is_err());
        assert!(parse("check\thttp\tok\tsoon\t\nend\n").is_err());
    }

    #[test]
    fn checks_serialise_in_camel_case() {
        let check = Check {
            name: "database".to_owned(),
            ok: true,
            detail: String::new(),
            millis: 4,
        };
        let json = serde_json::to_value(&check).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "database", "ok": true, "detail": "", "millis": 4})
        );
    }

    #[test]
    fn a_redis_password_is_split_out_of_the_url() {
        let split = |url| split_redis_password(Some(url));
        assert_eq!(
            split("redis://:s3cret@127.0.0.1:6379/2"),
            ("redis://127.0.0.1:6379/2".to_owned(), "s3cret".to_owned())
        );
        assert_eq!(
            split("redis://app:p@ss@cache:6379"),
            ("redis://app@cache:6379".to_owned(), "p@ss".to_owned())
        );
        assert_eq!(
            split("redis://127.0.0.1:6379"),
            ("redis://127.0.0.1:6379".to_owned(), String::new())
        );
        assert_eq!(split_redis_password(None), (String::new(), String::new()));
    }

    fn input() -> ValidationInput {
        ValidationInput {
            site: "shop".to_owned(),
            domain: "shop.test".to_owned(),
            address: "10.0.0.2".to_owned(),
            code_dir: "/home/shop/shop.test/current".to_owned(),
            user: "shop".to_owned(),
            laravel: true,
            health: None,
            database: Some(DatabaseLogin {
                engine: Engine::Mysql,
                name: "shop".to_owned(),
                user: "shop".to_owned(),
                password: Secret::new("hunter2".to_owned()),
            }),
            redis_url: Some("redis://:redispw@127.0.0.1:6379".to_owned()),
            crons: true,
            workers: vec!["queue".to_owned()],
            jobs: JobsExpected::Paused,
            https: None,
        }
    }

    #[test]
    fn no_secret_becomes_an_argument() {
        let input = input();
        let (url, _) = split_redis_password(input.redis_url.as_deref());
        let rendered = command(&input, &url).render().unwrap();
        assert!(!rendered.contains("hunter2"), "{rendered}");
        assert!(!rendered.contains("redispw"), "{rendered}");
        assert!(
            rendered.ends_with(
                " mysql shop shop redis://127.0.0.1:6379 paused /etc/cron.d/siteward-shop \
                 /var/lib/siteward/sites/shop/paused/siteward-shop no '' siteward-shop-queue \
                 /etc/supervisor/conf.d/siteward-shop-queue.conf \
                 /var/lib/siteward/sites/shop/paused/siteward-shop-queue.conf"
            ),
            "{rendered}"
        );
    }
}
