//! The probe: renders the script sent to a server and reads its answer strictly.
//!
//! The script is `probe.sh` behind a header that carries the request (one `sw_site` call per
//! site, every fact quoted by [`quote`]) and the database admin logins. It travels on the stdin
//! of one `sh -s`, so secrets are never a process argument; the script writes them to 0600
//! files in its own temporary directory for `--defaults-extra-file` and `PGPASSFILE`.
//!
//! The answer is a line protocol: `siteward-probe 1`, then one record per line (a tag and
//! tab-separated fields, text in base64), then `end <records>`. [`parse`] checks every line
//! and turns the records into an [`ObservedServer`].

mod answer;
mod assemble;

use std::fmt::{self, Write as _};

use super::{ObservedServer, ProbeRequest, SiteProbe};
use crate::spec::secret::Secret;
use crate::transport::quote::{Command, QuoteError, quote};

/// The probe script proper (functions, then `sw_main`); [`render`] puts the request before it.
pub const PROBE_SCRIPT: &str = include_str!("probe.sh");

/// The protocol version the script answers with and [`parse`] accepts.
pub const PROTOCOL_VERSION: u32 = 1;

/// Why a probe could not be rendered or its answer not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A site fact or login cannot be put into the script.
    #[error("the probe request cannot be written as a shell script")]
    Quote(#[from] QuoteError),
    /// A password that the client's password file format cannot hold.
    #[error("the {what} contains {problem}, which {format} cannot hold")]
    UnsupportedSecret {
        /// Which secret, e.g. "PostgreSQL admin password".
        what: &'static str,
        /// What is in it, e.g. "a newline".
        problem: &'static str,
        /// The file format.
        format: &'static str,
    },
    /// A line of the answer breaks the protocol.
    #[error("line {line} of the probe's answer is malformed: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The answer stops before its `end` record.
    #[error("the probe's answer is truncated: {lines} lines and no `end` record")]
    Truncated {
        /// How many lines arrived.
        lines: usize,
    },
}

impl ProbeError {
    pub(crate) fn malformed(line: usize, reason: impl Into<String>) -> Self {
        ProbeError::Malformed {
            line,
            reason: reason.into(),
        }
    }
}

/// How the probe logs in to the database servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeAccess {
    /// MySQL/MariaDB: `root` over the socket by default.
    pub mysql: AdminLogin,
    /// PostgreSQL: `postgres` by peer authentication by default.
    pub postgres: AdminLogin,
}

impl Default for ProbeAccess {
    fn default() -> Self {
        ProbeAccess {
            mysql: AdminLogin::socket("root"),
            postgres: AdminLogin::socket("postgres"),
        }
    }
}

/// An administrative database login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminLogin {
    /// The user (role).
    pub user: String,
    /// The password; socket (peer) authentication when absent.
    pub password: Option<Secret>,
}

impl AdminLogin {
    /// Socket or peer authentication as `user`.
    pub fn socket(user: &str) -> Self {
        AdminLogin {
            user: user.to_owned(),
            password: None,
        }
    }
}

/// A rendered probe: the text sent on stdin. Its `Debug` never shows the text (secrets).
#[derive(Clone, PartialEq, Eq)]
pub struct ProbeScript(String);

impl ProbeScript {
    /// The script, for the command's stdin.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The script text. It holds secrets: only for stdin, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ProbeScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProbeScript({} bytes)", self.0.len())
    }
}

/// The command the script is sent to: a POSIX shell reading its script from stdin.
///
/// # Errors
/// Never in practice (constant words); a quoting error otherwise.
pub fn probe_command() -> Result<String, QuoteError> {
    Command::new("sh").arg("-s").render()
}

/// Renders the script for `request`, logging in to the databases with `access`.
///
/// # Errors
/// [`ProbeError::Quote`] for a NUL byte in a fact; [`ProbeError::UnsupportedSecret`] for a
/// PostgreSQL password with a newline.
pub fn render(request: &ProbeRequest, access: &ProbeAccess) -> Result<ProbeScript, ProbeError> {
    let mut script = String::from("# siteward probe request\n");
    assign(&mut script, "sw_mysql_user", &access.mysql.user)?;
    if let Some(password) = &access.mysql.password {
        let file = mysql_option_file(&access.mysql.user, password.expose());
        assign(&mut script, "sw_mysql_cnf", &file)?;
    }
    assign(&mut script, "sw_pg_user", &access.postgres.user)?;
    if let Some(password) = &access.postgres.password {
        let line = pgpass_line(&access.postgres.user, password.expose())?;
        assign(&mut script, "sw_pgpass", &line)?;
    }
    let redis = request.redis.clone().unwrap_or_default();
    assign(&mut script, "sw_redis_host", &redis.host)?;
    assign(&mut script, "sw_redis_port", &redis.port.to_string())?;
    assign(
        &mut script,
        "sw_only",
        if request.only_requested { "1" } else { "" },
    )?;
    script.push_str("sw_request() {\n");
    for site in &request.sites {
        let _ = writeln!(script, "  {}", site_call(site)?);
        if !site.adopted.is_empty() {
            let call = Command::new("sw_adopted")
                .arg(&site.name)
                .args(site.adopted.iter().cloned())
                .render()?;
            let _ = writeln!(script, "  {call}");
        }
    }
    script.push_str("  :\n}\n");
    script.push_str(PROBE_SCRIPT);
    Ok(ProbeScript(script))
}

/// Reads the probe's stdout into the observed state of the server.
///
/// # Errors
/// [`ProbeError::Malformed`] naming the first bad line and what is wrong with it;
/// [`ProbeError::Truncated`] when the `end` record is missing.
pub fn parse(stdout: &[u8], request: &ProbeRequest) -> Result<ObservedServer, ProbeError> {
    let answer = answer::Answer::read(stdout)?;
    Ok(assemble::assemble(answer, request))
}

/// `sw_site NAME USER DOMAIN PHP ENGINE DATABASE USERS STORAGE REPOSITORY REFERENCE
/// HEALTHPATH STATUS BODY TIMEOUT SCHEME`, every word quoted.
fn site_call(site: &SiteProbe) -> Result<String, QuoteError> {
    let (engine, database) = site.database.clone().unwrap_or_default();
    let (repository, reference) = site.source.clone().unwrap_or_default();
    let health = site.health.clone();
    Command::new("sw_site")
        .arg(&site.name)
        .arg(&site.user)
        .arg(&site.domain)
        .arg(site.php.clone().unwrap_or_default())
        .arg(engine)
        .arg(database)
        .arg(site.database_users.join(","))
        .arg(site.storage.join(","))
        .arg(repository)
        .arg(reference)
        .arg(health.as_ref().map(|h| h.path.clone()).unwrap_or_default())
        .arg(
            health
                .as_ref()
                .map(|h| h.expect_status.to_string())
                .unwrap_or_default(),
        )
        .arg(
            health
                .as_ref()
                .and_then(|h| h.expect_body.clone())
                .unwrap_or_default(),
        )
        .arg(
            health
                .as_ref()
                .map(|h| h.timeout_seconds.to_string())
                .unwrap_or_default(),
        )
        .arg(if health.as_ref().is_some_and(|h| h.https) {
            "https"
        } else {
            "http"
        })
        .render()
}

fn assign(script: &mut String, name: &str, value: &str) -> Result<(), QuoteError> {
    let _ = writeln!(script, "{name}={}", quote(value)?);
    Ok(())
}

/// A MySQL option file for `--defaults-extra-file`: values in double quotes, with the escapes
/// the client's option parser resolves.
fn mysql_option_file(user: &str, password: &str) -> String {
    format!(
        "[client]\nuser=\"{}\"\npassword=\"{}\"",
        mysql_escape(user),
        mysql_escape(password)
    )
}

fn mysql_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            '\u{8}' => escaped.push_str("\\b"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A libpq password file line matching any host, port and database.
fn pgpass_line(user: &str, password: &str) -> Result<String, ProbeError> {
    if password.contains(['\n', '\r']) || user.contains(['\n', '\r']) {
        return Err(ProbeError::UnsupportedSecret {
            what: "PostgreSQL admin password",
            problem: "a line break",
            format: "a PGPASSFILE",
        });
    }
    let escape = |value: &str| value.replace('\\', "\\\\").replace(':', "\\:");
    Ok(format!("*:*:*:{}:{}", escape(user), escape(password)))
}

#[cfg(test)]
mod tests;
