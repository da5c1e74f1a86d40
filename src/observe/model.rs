//! What siteward saw on a server: the typed result of one probe.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Everything observed on one server in one probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedServer {
    /// The server's own host name.
    pub hostname: String,
    /// PHP versions installed (`/etc/php/<v>` with an FPM binary), and whether FPM runs.
    pub php: Vec<ObservedPhp>,
    /// Services siteward relies on.
    pub services: BTreeMap<String, ServiceState>,
    /// Free disk where sites and databases live.
    pub disks: Vec<Disk>,
    /// Sites with records under `/var/lib/siteward/sites` (whatever the specs say).
    pub recorded_sites: Vec<String>,
    /// Every site looked at: those the specs place here and those recorded here.
    pub sites: BTreeMap<String, ObservedSite>,
    /// What the probe could not look at. The fields a problem is about are unknown, not absent:
    /// with a `mysql` problem, a site without `database` may still have one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ObservedProblem>,
}

/// Something the probe could not observe, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedProblem {
    /// The site concerned; `None` for the server as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// What could not be observed: `mysql`, `postgresql`, `supervisor`, `site`, `record`,
    /// `files`, `lock`.
    pub topic: String,
    /// Why, in the words of the server's tools where there are some.
    pub message: String,
}

/// One PHP version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedPhp {
    pub version: String,
    pub fpm_running: bool,
}

/// Whether a service is installed and answering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceState {
    pub installed: bool,
    pub running: bool,
}

/// Free space of the file system holding `path`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    pub path: String,
    pub available_bytes: u64,
    pub total_bytes: u64,
}

/// Everything observed about one site.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedSite {
    /// siteward's record of the site on this server, when there is one.
    pub record: Option<SiteRecord>,
    /// The site's Linux user, when it exists.
    pub user: Option<ObservedUser>,
    /// Paths of the site (root, releases, shared, storage…) by absolute path.
    pub paths: BTreeMap<String, ObservedPath>,
    /// Managed files by absolute path: vhost, pool, cron file, supervisor programs, `.env`.
    pub files: BTreeMap<String, ObservedFile>,
    /// Managed files written or removed that their service (nginx, PHP-FPM, supervisor) has not
    /// loaded since: an apply stopped between the write and the reload.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub unloaded: BTreeSet<String>,
    /// `.env` keys with the sha256 of each value; never the values. `None`: no `.env`.
    /// Values are read as Laravel reads them (one pair of quotes removed, escapes in double
    /// quotes resolved, `${VAR}` not expanded); for a key given twice, the first one counts.
    pub env: Option<BTreeMap<String, String>>,
    /// Releases on disk, oldest first.
    pub releases: Vec<ObservedRelease>,
    /// The release `current` points at.
    pub current_release: Option<String>,
    /// Git state of the live code.
    pub git: Option<GitState>,
    /// The commit the spec's branch points at, resolved on the server (`git ls-remote`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_tip: Option<String>,
    /// The database, when it exists.
    pub database: Option<ObservedDatabase>,
    /// Database users (those the spec names and those recorded) that exist.
    pub database_users: BTreeMap<String, ObservedDatabaseUser>,
    /// Supervisor processes of this site's programs.
    pub processes: Vec<ObservedProcess>,
    /// The site user's own crontab entries: lines that are neither blank nor comments (never
    /// rewritten; shown for context).
    pub user_crontab_lines: usize,
    /// The answer to the site's health check, when the probe was asked to make it (the daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<ObservedHealth>,
    /// The status the site's last backup left on the server, when one ran there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<ObservedBackup>,
    /// The site's certificates by where they are: `acme` (certbot's lineage), `files` (from
    /// secrets, in `/etc/siteward/tls/<site>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub certificates: BTreeMap<String, ObservedCertificate>,
}

/// A certificate on a server, as `openssl x509` describes it: never anything of its key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedCertificate {
    /// Its DNS names (subject alternative names), lower case.
    pub names: Vec<String>,
    /// The issuer's distinguished name (RFC 2253).
    pub issuer: String,
    /// When it expires (unix seconds).
    pub not_after: i64,
    /// The SHA-256 of its DER, hex.
    pub sha256: String,
}

impl ObservedCertificate {
    /// Reads the lines of `openssl x509 -noout -fingerprint -sha256 -enddate -issuer
    /// -nameopt RFC2253 -ext subjectAltName`; `None` without a fingerprint and an expiry.
    pub fn from_openssl(lines: &[String]) -> Option<Self> {
        let mut out = ObservedCertificate::default();
        let mut expiry = None;
        let mut in_names = false;
        for line in lines {
            let line = line.trim();
            if let Some(hex) = line.strip_prefix("sha256 Fingerprint=") {
                out.sha256 = hex.replace(':', "").to_lowercase();
            } else if let Some(date) = line.strip_prefix("notAfter=") {
                expiry = parse_openssl_date(date);
            } else if let Some(issuer) = line.strip_prefix("issuer=") {
                out.issuer = issuer.trim().to_owned();
            } else if line.starts_with("X509v3 Subject Alternative Name") {
                in_names = true;
                continue;
            } else if in_names {
                out.names = line
                    .split(", ")
                    .filter_map(|name| name.strip_prefix("DNS:"))
                    .map(str::to_lowercase)
                    .collect();
            }
            in_names = false;
        }
        out.not_after = expiry?;
        (!out.sha256.is_empty()).then_some(out)
    }
}

/// `Dec  6 08:00:00 2027 GMT` → unix seconds.
fn parse_openssl_date(text: &str) -> Option<i64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined = words.get(..4)?.join(" ");
    chrono::NaiveDateTime::parse_from_str(&joined, "%b %d %H:%M:%S %Y")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// The last backup of a site on its server, as its script recorded it
/// (`/var/lib/siteward/sites/<site>/backup-status`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedBackup {
    /// `result` (`ok`/`failed`), `time`, `finished`, `bytes`, `database`, `files` (snapshot
    /// ids), `message`, `last_ok` (time of the last good run), `stale_after` (seconds),
    /// `check_result`, `check_time`.
    pub facts: BTreeMap<String, String>,
    /// The server's clock when it was observed (unix seconds), for the age of the last run.
    pub server_now: u64,
}

impl ObservedBackup {
    fn number(&self, key: &str) -> Option<u64> {
        self.facts.get(key)?.trim().parse().ok()
    }

    /// Why the last run failed, when it did.
    pub fn failure(&self) -> Option<String> {
        (self.facts.get("result").map(String::as_str) == Some("failed")).then(|| {
            self.facts
                .get("message")
                .cloned()
                .unwrap_or_else(|| "no message".into())
        })
    }

    /// Seconds since the last good backup, by the server's clock.
    pub fn age_seconds(&self) -> Option<u64> {
        Some(self.server_now.saturating_sub(self.number("last_ok")?))
    }

    /// The age of the last good backup, when it is past what its schedule allows.
    pub fn stale_by(&self) -> Option<u64> {
        let limit = self.number("stale_after").filter(|l| *l > 0)?;
        let age = match self.age_seconds() {
            Some(age) => age,
            None => self.server_now.saturating_sub(self.number("finished")?),
        };
        (age > limit).then_some(age)
    }

    /// Whether the last repository check failed.
    pub fn check_failed(&self) -> bool {
        self.facts.get("check_result").map(String::as_str) == Some("failed")
    }
}

/// What the site's health check got, asked through the server's nginx with the site's Host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedHealth {
    /// The HTTP status; 0 when nothing answered in time.
    pub status: u16,
    /// Whether the status and the body were as the spec expects.
    pub ok: bool,
}

impl ObservedSite {
    /// The managed files there are, or that were removed without their service reloading
    /// since: every path a removal may still be owed for.
    pub fn managed_paths(&self) -> BTreeSet<&str> {
        self.files
            .keys()
            .chain(&self.unloaded)
            .map(String::as_str)
            .collect()
    }
}

/// siteward's record of a site on a server (`/var/lib/siteward/sites/<site>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteRecord {
    /// Key-value facts recorded at the last apply (`specHash`, `user`, `domain`, …).
    pub facts: BTreeMap<String, String>,
    /// The lock, when one is held.
    pub lock: Option<LockRecord>,
    /// The migration journal's lines, when a migration is in progress.
    pub journal: Vec<String>,
}

/// A site lock on its server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRecord {
    pub owner: String,
    pub machine: String,
    pub pid: u32,
    pub acquired_unix: u64,
    pub expires_unix: u64,
}

/// A Linux user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// What is at a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedPath {
    pub kind: PathKind,
    pub owner: String,
    pub group: String,
    /// Permission bits.
    pub mode: u32,
    /// For symlinks, where they point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// The kind of file system object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    File,
    Directory,
    Symlink,
    Other,
}

/// A managed file: its hash and, for text files siteward renders, its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedFile {
    pub sha256: String,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    /// The content, for files whose diff the plan shows (never `.env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// A release directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedRelease {
    pub id: String,
    /// The commit checked out in it.
    pub commit: Option<String>,
    /// Marked bad by a failed health check.
    pub bad: bool,
    /// The fingerprint of the deploy settings that failed (the marker's content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_fingerprint: Option<String>,
}

/// Git state of a checkout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitState {
    pub commit: String,
    pub remote: Option<String>,
    pub branch: Option<String>,
}

/// A database as the server reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedDatabase {
    pub engine: String,
    pub name: String,
    pub charset: String,
    pub collation: String,
    pub size_bytes: u64,
}

/// A database user and its privileges on the site's database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedDatabaseUser {
    pub name: String,
    /// Privileges on the site's database, upper case (`SELECT`, `INSERT`, …).
    pub privileges: Vec<String>,
    /// The server's stored password verifier (MariaDB `authentication_string`, PostgreSQL
    /// `rolpassword` SCRAM verifier), compared with the spec's secret without ever sending
    /// the secret. Never serialized.
    #[serde(skip_serializing, default)]
    pub password_verifier: Option<String>,
}

/// One supervisor process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedProcess {
    /// `siteward-<site>-<worker>`.
    pub program: String,
    /// `siteward-<site>-<worker>_00`.
    pub process: String,
    /// `RUNNING`, `STOPPED`, `FATAL`, …
    pub state: String,
    /// The last lines of the program's log, for a process that is not running (`FATAL`,
    /// `BACKOFF`, `EXITED`): why it stopped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_lines_give_names_issuer_expiry_and_fingerprint() {
        let lines: Vec<String> = [
            "sha256 Fingerprint=AB:CD:01",
            "notAfter=Dec  6 08:00:00 2027 GMT",
            "issuer=CN=Pebble Intermediate CA 1a2b3c",
            "X509v3 Subject Alternative Name: ",
            "    DNS:a.test, DNS:WWW.a.test",
        ]
        .map(String::from)
        .to_vec();
        let certificate = ObservedCertificate::from_openssl(&lines).unwrap();
        assert_eq!(certificate.sha256, "abcd01");
        assert_eq!(certificate.names, vec!["a.test", "www.a.test"]);
        assert_eq!(certificate.issuer, "CN=Pebble Intermediate CA 1a2b3c");
        assert_eq!(certificate.not_after, 1_828_080_000);
        assert_eq!(ObservedCertificate::from_openssl(&lines[1..]), None);
    }
}
