//! Steps: the concrete, idempotent operations an apply runs on a server.
//!
//! Steps are data (saved in plan files), never shell text: the executor turns each into a
//! command built through the one quoting function. No step holds a secret value; secrets
//! travel as references and are resolved by the executor.

use crate::spec::secret::SecretRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One operation on a server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Step {
    /// Create the site's Linux user with its own group and home, and let the web server
    /// read through the home (`www-data` joins the user's group).
    EnsureUser { user: String, home: String },
    /// Create directories (parents first) with owner and mode, in one round trip.
    EnsureDirectories {
        owner: String,
        group: String,
        /// `(path, mode)`, parents before children.
        directories: Vec<(String, u32)>,
    },
    /// Write a file atomically when its content differs, then reload what uses it.
    WriteFile {
        path: String,
        content: String,
        owner: String,
        group: String,
        mode: u32,
        reload: Reload,
    },
    /// Write a root-only (0600) file of `name=<base64 value>` lines, one per secret: the values
    /// are resolved by the executor and travel on stdin; the step holds references only.
    WriteSecrets {
        path: String,
        entries: BTreeMap<String, SecretRef>,
    },
    /// Write a site's certificate chain (`fullchain.pem`, 0644) and key (`privkey.pem`, 0600)
    /// into `directory` from secrets: the values are resolved by the executor and travel on
    /// stdin; `nginx -t` must pass before nginx reloads, or both files are put back.
    WriteCertificate {
        directory: String,
        certificate: SecretRef,
        key: SecretRef,
    },
    /// Obtain (or renew) a site's certificate from an ACME CA with certbot on the server.
    IssueCertificate(Box<IssueStep>),
    /// Remove a file, then reload what used it.
    RemoveFile { path: String, reload: Reload },
    /// Set keys in a `.env` file, keeping every other line as it is.
    MergeEnv {
        path: String,
        owner: String,
        group: String,
        set: BTreeMap<String, EnvSource>,
    },
    /// Create a database with charset and collation.
    CreateDatabase {
        engine: Engine,
        name: String,
        charset: Option<String>,
        collation: Option<String>,
    },
    /// Change a database's charset and collation.
    AlterDatabase {
        engine: Engine,
        name: String,
        charset: Option<String>,
        collation: Option<String>,
    },
    /// Create or update a database user: password from a secret, privileges granted and
    /// revoked to match exactly.
    EnsureDatabaseUser {
        engine: Engine,
        database: String,
        name: String,
        password: SecretRef,
        privileges: Vec<String>,
    },
    /// Drop a database user siteward created and the spec no longer names.
    DropDatabaseUser { engine: Engine, name: String },
    /// Deploy a revision as a new release and switch `current` to it.
    Deploy(Box<DeployStep>),
    /// Switch `current` back to an earlier release (`siteward rollback`).
    Rollback(Box<RollbackStep>),
    /// Make supervisor pick up changed programs (only these are restarted).
    SupervisorUpdate { programs: Vec<String> },
    /// Record what was applied, for the next observation.
    WriteRecord {
        site: String,
        facts: BTreeMap<String, String>,
    },
    /// Remove a whole site that no spec names any more (`apply --prune`).
    RemoveSite(Box<RemoveSiteStep>),
    /// Take a site's files over from its previous setup (the spec's `adopt`): siteward's file
    /// written, the old files removed and the old crontab lines dropped in one switch, then the
    /// service tested and reloaded; a failing test puts the old files back.
    TakeOver(Box<TakeOverStep>),
}

/// What one takeover switches.
///
/// # Guarantees
/// Old files that are gone already are skipped and lines no longer there are not dropped
/// again, so a re-run after a crash finishes the switch; the old files are kept under the
/// site's record (`adopted/`), never lost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TakeOverStep {
    pub site: String,
    /// siteward's own file that replaces them, when it is not in place yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<TakeOverWrite>,
    /// Old files, removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// `(file, line)`: old entries dropped from files that hold others too (crontabs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<(String, String)>,
    pub reload: Reload,
    /// The site user's group, which the web server joins before it reloads (an adopted site
    /// whose directories siteward then closes to others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
}

/// A file a takeover writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TakeOverWrite {
    pub path: String,
    pub content: String,
    pub owner: String,
    pub group: String,
    pub mode: u32,
}

/// An ACME certificate issued by certbot in webroot mode (never its nginx installer), lineage
/// `--cert-name <site>`, with a deploy hook that reloads nginx on every renewal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssueStep {
    pub site: String,
    /// The domain first, then the aliases.
    pub names: Vec<String>,
    pub email: String,
    /// The CA's ACME directory URL.
    pub directory: String,
    /// Where certbot writes the challenges that nginx serves.
    pub webroot: String,
}

/// A deploy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployStep {
    pub site: String,
    pub user: String,
    pub root: String,
    pub repository: String,
    /// The branch followed, when one is.
    pub branch: Option<String>,
    /// The commit to deploy.
    pub revision: String,
    pub strategy: crate::spec::site::DeployStrategy,
    pub keep_releases: u32,
    pub script: Option<String>,
    pub php_binary: Option<String>,
    pub domain: String,
    /// Paths of `shared/` linked into every release.
    pub shared: Vec<String>,
    /// `php artisan storage:link --relative` after the switch.
    pub storage_link: bool,
    /// Commands run as the site user after the switch (`php artisan queue:restart`…).
    pub restart: Vec<String>,
    /// This site's supervisor programs, restarted after the switch when no restart command
    /// does it (never another site's).
    #[serde(default)]
    pub programs: Vec<String>,
    /// The check that gates the new release; a failure switches back and marks it bad.
    #[serde(default)]
    pub health: Option<HealthCheck>,
}

impl DeployStep {
    /// What the deploy is made of besides the revision: a release marked bad is deployed
    /// again only when this changes (or the revision does).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut copy = self.clone();
        copy.revision.clear();
        let json = serde_json::to_vec(&copy).unwrap_or_default();
        hex::encode(&Sha256::digest(&json)[..8])
    }
}

/// The health check a deploy runs against the server itself, with the site's Host header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub path: String,
    pub expect_status: u16,
    pub expect_body: Option<String>,
    pub timeout_seconds: u32,
    /// Ask over HTTPS (SNI and Host the site's domain, to the server itself): the site has
    /// `tls`. The certificate is not what this checks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub https: bool,
}

/// A switch back to an earlier release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackStep {
    pub site: String,
    pub user: String,
    pub root: String,
    /// The release `current` points at now.
    pub from: String,
    /// The release `current` will point at.
    pub to: String,
    pub php_binary: Option<String>,
    pub restart: Vec<String>,
    pub programs: Vec<String>,
}

/// What a removed site leaves behind: nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveSiteStep {
    pub site: String,
    pub user: Option<String>,
    pub root: Option<String>,
    pub files: Vec<String>,
    pub programs: Vec<String>,
    pub database: Option<(Engine, String)>,
    pub database_users: Vec<String>,
}

/// A `.env` value as the step carries it: plain text, or a secret reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EnvSource {
    Plain(String),
    Secret(SecretRef),
}

/// What to reload after a file changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "service")]
pub enum Reload {
    Nothing,
    /// `nginx -t`, then reload; a failing test puts the previous file back.
    Nginx,
    /// `php-fpmX.Y -t`, then reload that version's FPM.
    PhpFpm {
        version: String,
    },
    /// Supervisor loads the program file in the `SupervisorUpdate` step that follows.
    Supervisor,
}

impl Reload {
    /// The service that must load the file, for messages; `None` when none reads it.
    pub fn service(&self) -> Option<String> {
        match self {
            Reload::Nothing => None,
            Reload::Nginx => Some("nginx".to_owned()),
            Reload::PhpFpm { version } => Some(format!("php-fpm{version}")),
            Reload::Supervisor => Some("supervisor".to_owned()),
        }
    }
}

/// Database engine family, as the executor needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    Mysql,
    Postgres,
}

impl Engine {
    /// The family of a spec engine.
    pub fn of(engine: crate::spec::site::DatabaseEngine) -> Self {
        use crate::spec::site::DatabaseEngine::*;
        match engine {
            Mysql | Mariadb => Engine::Mysql,
            Postgres => Engine::Postgres,
        }
    }
}
