//! What a migration is given (both servers, the site, its plan) and why it can stop.

use crate::apply::ApplyError;
use crate::apply::lock::{self, LockOwner};
use crate::migrate::database::MigrateError;
use crate::migrate::files::FilesError;
use crate::migrate::handover::HandoverError;
use crate::migrate::progress::Progress;
use crate::observe::ObservedSite;
use crate::plan::SitePlan;
use crate::spec::Site;
use crate::spec::secret::ResolvedSecrets;
use crate::spec::server::ServerSpec;
use crate::transport::TransportError;

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("the site's lock on `{server}` could not be taken")]
    Lock {
        server: String,
        #[source]
        source: Box<lock::LockError>,
    },
    #[error("provisioning on `{server}` failed")]
    Step {
        server: String,
        #[source]
        source: Box<ApplyError>,
    },
    #[error("the database copy failed")]
    Database(#[source] MigrateError),
    #[error("the storage copy failed")]
    Storage(#[source] FilesError),
    #[error("the handover of crons and workers failed")]
    Handover(#[source] HandoverError),
    #[error("moving the site's Redis keys failed")]
    Redis(#[source] crate::migrate::redis::RedisError),
    #[error("{what} on `{server}` failed")]
    Transport {
        what: &'static str,
        server: String,
        #[source]
        source: Box<TransportError>,
    },
    #[error("the validation of `{server}` failed: {failed}")]
    Validation { server: String, failed: String },
    #[error(
        "the source `{server}` could not be brought back as the live runner (the log says why)"
    )]
    SourceStillStopped { server: String },
    #[error(
        "stopped before the phase `{phase}`: siteward is shutting down (the next run resumes here)"
    )]
    Interrupted { phase: &'static str },
    #[error("the backup of the source `{server}` {when} failed")]
    Snapshot {
        server: String,
        when: &'static str,
        #[source]
        source: Box<crate::backup::remote::BackupError>,
    },
    #[error("the server `{server}` has no `{section}` administrator in its spec")]
    NoAdmin {
        server: String,
        section: &'static str,
    },
}

/// One side of the move.
pub struct Endpoint<'a, T> {
    /// The server's name in the specs.
    pub name: &'a str,
    pub spec: &'a ServerSpec,
    /// For short commands.
    pub transport: &'a T,
    /// For the long streams (database dump and restore, storage archive).
    pub streaming: &'a T,
    /// For the site's lock (unguarded: the lock is what the guards check).
    pub locking: &'a T,
}

/// Everything a migration needs.
pub struct MigrationJob<'a, T> {
    pub site: &'a Site,
    /// The site's plan on the target (disposition `migration`).
    pub plan: &'a SitePlan,
    pub source: Endpoint<'a, T>,
    pub target: Endpoint<'a, T>,
    /// What the source's probe saw of the site (its record's facts).
    pub source_site: &'a ObservedSite,
    pub secrets: &'a ResolvedSecrets,
    pub owner: &'a LockOwner,
    pub progress: Progress,
    /// Told each phase as it starts.
    pub on_phase: Option<&'a (dyn Fn(&str) + Sync)>,
}
