//! The `Site` kind: a site's code, runtime, data, jobs and placement.

use super::names::{DatabaseName, DatabaseUser, EnvKey, JobName, LinuxUser, ServerName, SiteName};
use super::secret::SecretRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A web site and everything it needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteSpec {
    /// The Server this site lives on: change it to migrate the site.
    pub server: ServerName,
    /// What kind of application this is.
    #[serde(rename = "type")]
    pub site_type: SiteType,
    /// The primary domain (nginx `server_name`).
    pub domain: String,
    /// More host names served by the same vhost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The site's isolated Linux user; its home holds the site.
    pub user: LinuxUser,
    /// PHP version (`"8.2"`); not used by `static` sites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub php: Option<String>,
    /// Directory inside the code served as the web root (`public` for Laravel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_directory: Option<String>,
    /// Where the code comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// How code is deployed.
    #[serde(default)]
    pub deploy: Deploy,
    /// `.env` entries: plain values or secret references. Keys not named here are kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<EnvKey, EnvValue>,
    /// The site's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<Database>,
    /// Redis requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisRequirement>,
    /// Cron jobs, written to `/etc/cron.d/siteward-<site>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crons: Vec<Cron>,
    /// Long-running workers, run by the process manager.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<Worker>,
    /// Paths relative to the site that hold data surviving deploys and migrations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<String>,
    /// The health check used after deploys and migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// How the site moves when its `server` changes.
    #[serde(default)]
    pub migration: Migration,
    /// What to do about drift found on the server.
    #[serde(default)]
    pub drift_policy: DriftPolicy,
    /// Laravel defaults; each can be turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub laravel: Option<LaravelDefaults>,
    /// Backups of the database, the storage and `.env` with restic (over the Server's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<super::backup::BackupSpec>,
    /// HTTPS: a certificate from ACME or from secrets, the redirect and HSTS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::tls::TlsSpec>,
    /// What the first apply takes over from the site's previous setup (`siteward discover`
    /// writes it): their files go in the step that installs siteward's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<super::adopt::Adopt>,
}

/// The kind of application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SiteType {
    Laravel,
    Php,
    Static,
}

/// A git source: a branch to follow or a pinned revision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// Repository URL, as reachable from the server.
    pub repository: String,
    /// Branch to follow; its tip is deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A pinned commit (full or abbreviated hash) or tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// How code reaches the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deploy {
    /// `releases` (zero-downtime, the default) or `in-place`.
    #[serde(default)]
    pub strategy: DeployStrategy,
    /// How many releases to keep with `releases`.
    #[serde(default = "default_keep_releases")]
    #[schemars(range(min = 2, max = 100))]
    pub keep_releases: u32,
    /// Shell script run as the site user in the new release before it goes live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            strategy: DeployStrategy::default(),
            keep_releases: default_keep_releases(),
            script: None,
        }
    }
}

fn default_keep_releases() -> u32 {
    5
}

/// Deployment strategy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeployStrategy {
    #[default]
    Releases,
    InPlace,
}

/// A `.env` value: plain text (numbers and booleans are written as text) or a secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvValue {
    Secret(SecretRef),
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

/// The site's database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Database {
    /// Database engine.
    pub engine: DatabaseEngine,
    /// Database name.
    pub name: DatabaseName,
    /// Character set (MySQL/MariaDB `utf8mb4`; PostgreSQL encoding `UTF8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<String>,
    /// Collation (`utf8mb4_unicode_ci`; PostgreSQL `C.UTF-8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
    /// Users with privileges on this database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<DatabaseUserSpec>,
}

/// Database engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseEngine {
    Mysql,
    Mariadb,
    Postgres,
}

/// A database user and its privileges on the site's database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseUserSpec {
    /// User (role) name.
    pub name: DatabaseUser,
    /// Reference to the password.
    pub password: SecretRef,
    /// Privileges on the site's database (`ALL`, `SELECT`, `INSERT`, …).
    #[serde(default = "default_privileges")]
    pub privileges: Vec<Privilege>,
}

fn default_privileges() -> Vec<Privilege> {
    vec![Privilege::All]
}

/// A database privilege.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Privilege {
    All,
    Select,
    Insert,
    Update,
    Delete,
    Create,
    Drop,
    Alter,
    Index,
    References,
    CreateTemporaryTables,
    LockTables,
    Execute,
    CreateView,
    ShowView,
    CreateRoutine,
    AlterRoutine,
    Event,
    Trigger,
}

/// Redis requirements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisRequirement {
    /// Whether the site needs Redis (checked before deploys and migrations).
    #[serde(default)]
    pub required: bool,
}

/// A cron job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cron {
    /// Name, unique within the site.
    pub name: JobName,
    /// Five-field schedule (`* * * * *`) or a macro (`@daily`, `@hourly`, …).
    pub schedule: String,
    /// Command run in the live code's directory.
    pub command: String,
    /// User to run as (default: the site user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<LinuxUser>,
}

/// A long-running worker process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Worker {
    /// Name, unique within the site.
    pub name: JobName,
    /// Command run in the live code's directory.
    pub command: String,
    /// Number of processes.
    #[serde(default = "default_processes")]
    #[schemars(range(min = 1, max = 64))]
    pub processes: u32,
    /// Seconds to wait for a graceful stop.
    #[serde(default = "default_stop_wait")]
    #[schemars(range(min = 1, max = 86400))]
    pub stop_wait_seconds: u32,
    /// User to run as (default: the site user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<LinuxUser>,
}

fn default_processes() -> u32 {
    1
}

fn default_stop_wait() -> u32 {
    60
}

/// The health check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Health {
    /// Path requested with the site's Host header.
    pub path: String,
    /// Expected HTTP status.
    #[serde(default = "default_expect_status")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: u16,
    /// Text the response body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// Seconds before the check counts as failed.
    #[serde(default = "default_health_timeout")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: u32,
}

fn default_expect_status() -> u16 {
    200
}

fn default_health_timeout() -> u32 {
    10
}

/// How a migration runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Migration {
    /// `test` (the target is installed inactive) or `final-sync` (the target takes over).
    #[serde(default)]
    pub mode: MigrationMode,
    /// What happens to the source after a successful move.
    #[serde(default)]
    pub on_source: OnSource,
}

/// Migration mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationMode {
    #[default]
    Test,
    FinalSync,
}

/// The source's fate after a migration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnSource {
    #[default]
    Keep,
    Stop,
    Remove,
}

/// Drift handling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DriftPolicy {
    #[default]
    Correct,
    Detect,
}

/// Laravel's defaults, each on unless turned off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaravelDefaults {
    /// The scheduler cron (`php artisan schedule:run` every minute).
    #[serde(default = "yes")]
    pub scheduler: bool,
    /// `php artisan storage:link --relative` on deploy.
    #[serde(default = "yes")]
    pub storage_link: bool,
    /// `storage` and `bootstrap/cache` writable by the site user.
    #[serde(default = "yes")]
    pub writable_paths: bool,
    /// `horizon:terminate` / `queue:restart` after a deploy.
    #[serde(default = "yes")]
    pub restart_workers: bool,
}

impl Default for LaravelDefaults {
    fn default() -> Self {
        LaravelDefaults {
            scheduler: true,
            storage_link: true,
            writable_paths: true,
            restart_workers: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// A named site, as loaded from a spec document.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub name: SiteName,
    pub spec: SiteSpec,
}
