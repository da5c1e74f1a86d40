//! Plans: the changes between desired and observed state, and the ordered steps that make them.

pub mod build;
pub mod fingerprint;
pub mod migration;
pub mod render;
pub mod step;

pub use step::Step;

use serde::{Deserialize, Serialize};

/// The plan file format version; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// What happens to a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    Delete,
    NoOp,
}

/// The kinds of resource a site is made of, in the order they are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    User,
    Directory,
    Env,
    Database,
    DatabaseUser,
    FpmPool,
    Tls,
    Vhost,
    Code,
    Cron,
    Worker,
    Backup,
    Record,
    Site,
}

impl ResourceKind {
    /// The name people read in plans.
    pub fn label(self) -> &'static str {
        match self {
            ResourceKind::User => "user",
            ResourceKind::Directory => "directory",
            ResourceKind::Env => ".env",
            ResourceKind::Database => "database",
            ResourceKind::DatabaseUser => "database user",
            ResourceKind::Code => "code",
            ResourceKind::FpmPool => "php-fpm pool",
            ResourceKind::Tls => "tls",
            ResourceKind::Vhost => "nginx vhost",
            ResourceKind::Cron => "cron file",
            ResourceKind::Worker => "worker",
            ResourceKind::Backup => "backup",
            ResourceKind::Record => "record",
            ResourceKind::Site => "site",
        }
    }
}

/// One resource's change, with the steps that make it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub resource: ResourceKind,
    /// Which one: a path, a worker, a database user…
    pub name: String,
    pub action: Action,
    /// Why, in words.
    pub reason: String,
    /// A unified diff of a file's text, when the plan can show it (secrets redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Set when siteward's defaults (not the spec) asked for this.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// Starts again a worker that supervisor gave up on (it crashed at each start): a health
    /// problem. An apply someone runs includes it; the daemon only when asked, when the spec
    /// changed, or when the site's backoff allows another try.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restarts_failing: bool,
    pub steps: Vec<Step>,
}

impl Change {
    /// A change with its steps.
    pub fn new(
        resource: ResourceKind,
        name: impl Into<String>,
        action: Action,
        reason: impl Into<String>,
    ) -> Self {
        Change {
            resource,
            name: name.into(),
            action,
            reason: reason.into(),
            diff: None,
            default: false,
            restarts_failing: false,
            steps: Vec::new(),
        }
    }

    /// A resource that is as the spec says.
    pub fn no_op(resource: ResourceKind, name: impl Into<String>) -> Self {
        Change::new(resource, name, Action::NoOp, "up to date")
    }

    /// Adds a step.
    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// Adds a diff.
    pub fn with_diff(mut self, diff: Option<String>) -> Self {
        self.diff = diff;
        self
    }

    /// Marks the change as the restart of a worker that keeps crashing.
    pub fn restarting_failing(mut self) -> Self {
        self.restarts_failing = true;
        self
    }

    /// Marks the change as coming from siteward's defaults.
    pub fn from_default(mut self, default: bool) -> Self {
        self.default = default;
        self
    }
}

/// Why a site is in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteDisposition {
    /// Placed where the spec says; resources reconciled there.
    Reconcile,
    /// On a server no spec places it on, and no spec names it: shown, removed with `--prune`.
    Orphaned,
    /// Recorded on another server than the spec says: a migration.
    Migration,
}

/// The plan for one site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SitePlan {
    pub site: String,
    pub server: String,
    pub disposition: SiteDisposition,
    /// With `driftPolicy: detect`, changes are reported and not applied.
    pub detect_only: bool,
    /// What could not be observed: the site cannot be planned until it can.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<String>,
    /// What the operator should know before applying (a panel that may still rewrite the
    /// files an adoption takes over).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub changes: Vec<Change>,
    /// Set when the site moves here from another server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<migration::MigrationPlan>,
    /// Set when the site's data comes back from a backup (`siteward restore`, or a re-pointed
    /// site whose last server does not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<crate::backup::restore::RestorePlan>,
}

impl SitePlan {
    /// Whether an apply has anything to do for this site: steps, or migration phases.
    pub fn has_work(&self) -> bool {
        self.steps().next().is_some()
            || self.migration.as_ref().is_some_and(|m| m.pending())
            || self.restore.is_some()
    }

    /// Changes that do something.
    pub fn pending(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action != Action::NoOp)
    }

    /// Steps an apply would run for this site.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        let applies = !self.detect_only;
        self.pending()
            .filter(move |_| applies)
            .flat_map(|c| c.steps.iter())
    }
}

/// A whole plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub format_version: u32,
    /// Hash of the specs the plan was made from.
    pub spec_hash: String,
    /// Hash of everything observed, so that a stale plan is refused.
    pub observed_fingerprint: String,
    pub sites: Vec<SitePlan>,
}

impl Plan {
    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        self.sites.iter().any(SitePlan::has_work)
    }

    /// Number of steps an apply would run.
    pub fn step_count(&self) -> usize {
        self.sites.iter().map(|site| site.steps().count()).sum()
    }

    /// Sites that could not be planned, with why.
    pub fn blocked(&self) -> impl Iterator<Item = &SitePlan> {
        self.sites.iter().filter(|site| !site.blocked_by.is_empty())
    }
}
