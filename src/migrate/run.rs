//! Running a migration: the phases of DESIGN §4 in order, each recorded in the journal on the
//! target once done, so that a run killed or cut off at any point resumes where it stopped.
//!
//! The invariant of the handover: a site's crons and workers run on exactly one server at any
//! moment. The target's are installed paused; the source's are paused before the target's
//! start; if anything fails after the source was paused, the target's are paused again before
//! the source's resume.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::apply::commands::StepContext;
use crate::apply::lock::{self, LockOwner};
use crate::apply::{ApplyError, SiteOutcome, StepOutcome, error_text, run_steps};
use crate::layout;
use crate::observe::ObservedSite;
use crate::plan::migration::{JOURNAL_FILE, Journal, Phase};
use crate::plan::{ResourceKind, SitePlan, Step};
use crate::resources::DesiredSite;
use crate::spec::Site;
use crate::spec::secret::ResolvedSecrets;
use crate::spec::server::ServerSpec;
use crate::spec::site::{DeployStrategy, MigrationMode, SiteType};
use crate::transport::{Transport, TransportError};

use super::database::MigrateError;
use super::files::FilesError;
use super::handover::HandoverError;
use super::progress::Progress;
use super::report::{MigrationReport, PhaseRun, REPORT_VERSION};

mod copy;
mod cutover;
mod snapshot;
mod tls;

/// How long the source's cron jobs may take to finish once their crons are off.
const CRON_DRAIN: Duration = Duration::from_secs(90);

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

/// Runs (or resumes) a migration; returns the site's outcome and the report.
///
/// # Guarantees
/// - A phase is recorded in the journal only once it completed and was verified; a run cut
///   off in the middle of a phase repeats that phase, which converges (the database is
///   dropped and loaded again, storage is staged and swapped in, writes are atomic).
/// - Crons and workers are never active on both servers at once.
/// - `onSource: remove` runs only after the target was validated.
pub async fn migrate_site<T: Transport>(
    job: &MigrationJob<'_, T>,
) -> (SiteOutcome, MigrationReport) {
    let started = Instant::now();
    let mut run = Run::new(job);
    let result = run.locked().await;
    run.finish(result, started)
}

struct Run<'j, 'a, T> {
    job: &'j MigrationJob<'a, T>,
    desired: DesiredSite<'a>,
    journal: Journal,
    report: MigrationReport,
    steps: Vec<StepOutcome>,
}

impl<'j, 'a, T: Transport> Run<'j, 'a, T> {
    fn new(job: &'j MigrationJob<'a, T>) -> Self {
        let spec = &job.site.spec;
        let report = MigrationReport {
            format_version: REPORT_VERSION,
            site: job.site.name.to_string(),
            domain: spec.domain.clone(),
            source: job.source.name.to_owned(),
            source_address: job.source.spec.address.clone(),
            target: job.target.name.to_owned(),
            target_address: job.target.spec.address.clone(),
            mode: spec.migration.mode,
            on_source: spec.migration.on_source,
            ok: false,
            phases: Vec::new(),
            database: Vec::new(),
            storage: Vec::new(),
            redis: None,
            env_keys_from_source: 0,
            snapshots: Vec::new(),
            checks: Vec::new(),
            source_brought_back: false,
            ready_for_cutover: false,
            next: Vec::new(),
            error: None,
            millis: 0,
        };
        Run {
            job,
            desired: DesiredSite::new(job.site),
            journal: Journal::default(),
            report,
            steps: Vec::new(),
        }
    }

    fn site(&self) -> &str {
        self.job.site.name.as_str()
    }

    /// Takes the site's lock on both servers, runs, and releases them.
    async fn locked(&mut self) -> Result<(), MigrationError> {
        let job = self.job;
        let site = self.site().to_owned();
        for side in [&job.source, &job.target] {
            lock::acquire(side.locking, &site, job.owner)
                .await
                .map_err(|source| MigrationError::Lock {
                    server: side.name.to_owned(),
                    source: Box::new(source),
                })?;
        }
        let result = self.phases().await;
        for side in [&job.source, &job.target] {
            if let Err(error) = lock::release(side.locking, &site, job.owner).await {
                tracing::warn!(
                    site,
                    server = side.name,
                    "could not release the lock: {error}"
                );
            }
        }
        result
    }

    /// A daemon sharing the sites checks on both servers, before each phase, that the site's
    /// locks are still its own (its lease was not taken over meanwhile).
    async fn check_fences(&self, phase: Phase) -> Result<(), MigrationError> {
        let job = self.job;
        for side in [&job.source, &job.target] {
            lock::check_fence(side.locking, self.site(), job.owner, phase.word())
                .await
                .map_err(|source| MigrationError::Lock {
                    server: side.name.to_owned(),
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }

    async fn phases(&mut self) -> Result<(), MigrationError> {
        self.load_journal().await?;
        self.timed(Phase::Provision).await?;
        self.copy_data(Phase::DatabaseCopied, Phase::StorageCopied)
            .await?;
        self.timed(Phase::TargetInstalled).await?;
        match self.job.site.spec.migration.mode {
            MigrationMode::Test => {
                self.source_live_again().await?;
                self.timed(Phase::Tested).await
            }
            MigrationMode::FinalSync => self.final_sync().await,
        }
    }

    /// In `test` mode the source is the live runner. A final sync that stopped it and then
    /// ended without bringing it back (killed, say) before the spec went back to `test`
    /// leaves it stopped: it is brought back before the test.
    async fn source_live_again(&mut self) -> Result<(), MigrationError> {
        if !self.journal.has(Phase::SourceStopped) {
            return Ok(());
        }
        self.say("the mode is test again: bringing the source back as the live runner");
        self.bring_source_back().await;
        if self.journal.has(Phase::SourceStopped) {
            return Err(MigrationError::SourceStillStopped {
                server: self.job.source.name.to_owned(),
            });
        }
        Ok(())
    }

    async fn final_sync(&mut self) -> Result<(), MigrationError> {
        if !self.journal.has(Phase::SourceStopped) {
            self.snapshot_source("before the final sync").await?;
        }
        self.timed(Phase::SourceStopped).await?;
        let handed_over = self.hand_over().await;
        if let Err(error) = handed_over {
            // A shutdown stops the move where it is: the journal lets the next run go on from
            // there, rather than undo what is done.
            if !matches!(error, MigrationError::Interrupted { .. }) {
                self.bring_source_back().await;
            }
            return Err(error);
        }
        self.timed(Phase::SourceFinished).await?;
        self.timed(Phase::Done).await?;
        self.report.ready_for_cutover = true;
        Ok(())
    }

    /// The phases after the source stopped: any failure here brings the source back.
    async fn hand_over(&mut self) -> Result<(), MigrationError> {
        if !self.journal.has(Phase::StorageSynced) {
            // The source's `.env` as it is now that it stopped.
            self.copy_env().await?;
        }
        self.copy_data(Phase::DatabaseSynced, Phase::StorageSynced)
            .await?;
        self.timed(Phase::RedisSynced).await?;
        self.timed(Phase::TargetStarted).await?;
        self.timed(Phase::Validated).await
    }

    /// Tells what the migration is doing, on stderr (and to whoever asked to be told).
    fn say(&self, what: &str) {
        if let Some(told) = self.job.on_phase {
            told(what);
        }
        self.job
            .progress
            .say(&format!("migration of {} | {what}", self.site()));
    }

    /// Phases that run at every apply until the target takes over, because what they make
    /// follows the spec (idempotent: nothing changes when nothing has to): provisioning, and the
    /// code with the paused jobs (a new commit, a changed cron).
    fn repeated(&self, phase: Phase) -> bool {
        match phase {
            Phase::Provision => true,
            Phase::TargetInstalled => !self.journal.has(Phase::TargetStarted),
            _ => false,
        }
    }

    /// Whether the journal says a phase is done (then reported as such).
    fn skipped(&mut self, phase: Phase) -> bool {
        if !self.journal.has(phase) {
            return false;
        }
        self.report.phases.push(PhaseRun {
            phase,
            status: "already-done".into(),
            millis: 0,
        });
        true
    }

    /// Reports a phase's outcome and journals it when it succeeded.
    async fn record_phase(
        &mut self,
        phase: Phase,
        took: std::time::Duration,
        result: Result<(), MigrationError>,
    ) -> Result<(), MigrationError> {
        self.report.phases.push(PhaseRun {
            phase,
            status: if result.is_ok() { "done" } else { "failed" }.into(),
            millis: took.as_millis() as u64,
        });
        result?;
        self.journal.complete(phase, now_unix());
        self.save_journal().await
    }

    /// Runs a phase unless the journal says it is done; records it when it completes.
    async fn timed(&mut self, phase: Phase) -> Result<(), MigrationError> {
        if !self.repeated(phase) && self.skipped(phase) {
            return Ok(());
        }
        if crate::apply::interrupted() {
            return Err(MigrationError::Interrupted {
                phase: phase.word(),
            });
        }
        self.check_fences(phase).await?;
        self.say(phase.word());
        let started = Instant::now();
        let result = self.run_phase(phase).await;
        if phase == Phase::Provision {
            self.report.phases.push(PhaseRun {
                phase,
                status: if result.is_ok() { "done" } else { "failed" }.into(),
                millis: started.elapsed().as_millis() as u64,
            });
            return result;
        }
        self.record_phase(phase, started.elapsed(), result).await
    }

    async fn run_phase(&mut self, phase: Phase) -> Result<(), MigrationError> {
        match phase {
            Phase::Provision => self.provision().await,
            Phase::DatabaseCopied | Phase::DatabaseSynced => self.copy_database().await,
            Phase::StorageCopied | Phase::StorageSynced => self.copy_storage().await,
            Phase::TargetInstalled => self.install_target().await,
            Phase::Tested => self.test_target().await,
            Phase::SourceStopped => self.stop_source().await,
            Phase::RedisSynced => self.move_redis().await,
            Phase::TargetStarted => self.start_target().await,
            Phase::Validated => self.validate(true).await,
            Phase::SourceFinished => self.finish_source().await,
            Phase::Done => self.record_target().await,
        }
    }

    // --- the journal ------------------------------------------------------------------------

    fn journal_path(&self) -> String {
        format!("{}/{JOURNAL_FILE}", layout::record_dir(self.site()))
    }

    async fn load_journal(&mut self) -> Result<(), MigrationError> {
        let target = &self.job.target;
        let text = target
            .transport
            .read_file(&self.journal_path())
            .await
            .map_err(|source| MigrationError::Transport {
                what: "reading the migration journal",
                server: target.name.to_owned(),
                source: Box::new(source),
            })?
            .unwrap_or_default();
        let lines: Vec<String> = String::from_utf8_lossy(&text)
            .lines()
            .map(str::to_owned)
            .collect();
        let mode = self.job.site.spec.migration.mode;
        self.journal = match Journal::parse(&lines) {
            Some(journal) if journal.source == self.job.source.name && !journal.finished() => {
                let started = journal.started_unix;
                self.say(&format!(
                    "resuming the migration started at unix time {started} from its journal"
                ));
                journal
            }
            _ => Journal::start(self.job.source.name, mode, now_unix()),
        };
        self.journal.mode = crate::plan::migration::mode_word(mode).to_owned();
        self.save_journal().await
    }

    async fn save_journal(&self) -> Result<(), MigrationError> {
        let target = &self.job.target;
        target
            .transport
            .write_file_atomic(
                &self.journal_path(),
                self.journal.render().as_bytes(),
                "root",
                "root",
                0o600,
            )
            .await
            .map(|_| ())
            .map_err(|source| MigrationError::Transport {
                what: "writing the migration journal",
                server: target.name.to_owned(),
                source: Box::new(source),
            })
    }

    // --- steps ------------------------------------------------------------------------------

    async fn run_on(&mut self, side: Side, steps: Vec<Step>) -> Result<(), MigrationError> {
        let endpoint = self.endpoint(side);
        let ctx = StepContext {
            server: endpoint.spec,
            secrets: self.job.secrets,
            wave: None,
            // A fenced migration's transports guard every command already.
            fence: None,
        };
        run_steps(endpoint.transport, steps.iter(), &ctx, &mut self.steps)
            .await
            .map_err(|source| MigrationError::Step {
                server: endpoint.name.to_owned(),
                source: Box::new(source),
            })
    }

    fn endpoint(&self, side: Side) -> &'j Endpoint<'a, T> {
        match side {
            Side::Source => &self.job.source,
            Side::Target => &self.job.target,
        }
    }

    fn planned_steps(&self, kinds: &[ResourceKind]) -> Vec<Step> {
        self.job
            .plan
            .pending()
            .filter(|change| kinds.contains(&change.resource))
            .flat_map(|change| change.steps.iter().cloned())
            .collect()
    }

    // --- phases -----------------------------------------------------------------------------

    /// User, directories, database and users, pool, certificate (carried from the source when
    /// certbot issued it) and vhost on the target, then the `.env`.
    async fn provision(&mut self) -> Result<(), MigrationError> {
        use ResourceKind::*;
        self.carry_certificate().await?;
        let kinds = [User, Directory, Database, DatabaseUser, FpmPool, Tls, Vhost];
        let steps = self.planned_steps(&kinds);
        self.run_on(Side::Target, steps).await?;
        self.copy_env().await
    }

    // --- the source's layout ----------------------------------------------------------------

    fn source_root(&self) -> String {
        self.job
            .source_site
            .record
            .as_ref()
            .and_then(|r| r.facts.get("root"))
            .cloned()
            .unwrap_or_else(|| self.desired.root.clone())
    }

    fn source_shared(&self) -> String {
        match self.job.site.spec.deploy.strategy {
            DeployStrategy::Releases => layout::shared_dir(&self.source_root()),
            DeployStrategy::InPlace => self.source_root(),
        }
    }

    fn source_live(&self) -> String {
        match self.job.site.spec.deploy.strategy {
            DeployStrategy::Releases => layout::current_link(&self.source_root()),
            DeployStrategy::InPlace => self.source_root(),
        }
    }

    /// The users the site's cron jobs run as (their processes are waited for when paused).
    fn cron_users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.desired.crons.iter().map(|c| c.user.clone()).collect();
        users.sort();
        users.dedup();
        users
    }

    fn is_laravel(&self) -> bool {
        self.job.site.spec.site_type == SiteType::Laravel
    }

    fn finish(
        mut self,
        result: Result<(), MigrationError>,
        started: Instant,
    ) -> (SiteOutcome, MigrationReport) {
        let millis = started.elapsed().as_millis() as u64;
        let error = result
            .err()
            .map(|e| self.job.secrets.scrub(&error_text(&e)));
        self.report.ok = error.is_none();
        self.report.error = error.clone();
        self.report.millis = millis;
        let mut domains = vec![self.job.site.spec.domain.clone()];
        domains.extend(self.job.site.spec.aliases.iter().cloned());
        self.report.next_steps(&domains);
        if self.job.site.spec.tls.is_some() {
            // The new home is tried over HTTPS, as it will be reached.
            for line in &mut self.report.next {
                *line = line.replace(":80:", ":443:").replace("http://", "https://");
            }
        }
        let outcome = SiteOutcome {
            site: self.site().to_owned(),
            server: self.job.target.name.to_owned(),
            ok: self.report.ok,
            millis,
            steps: std::mem::take(&mut self.steps),
            error,
            migration: Some(Box::new(self.report.clone())),
        };
        (outcome, self.report)
    }
}

#[derive(Clone, Copy)]
enum Side {
    Source,
    Target,
}

/// The storage paths without those inside another (one copy per tree).
pub fn outermost_paths(paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = paths
        .iter()
        .filter(|path| {
            !paths
                .iter()
                .any(|other| other != *path && path.starts_with(&format!("{other}/")))
        })
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_storage_paths_are_copied_once_with_their_parent() {
        let paths = vec![
            "storage".to_owned(),
            "storage/app/public".to_owned(),
            "uploads".to_owned(),
            "storage-old".to_owned(),
        ];
        assert_eq!(
            outermost_paths(&paths),
            vec!["storage", "storage-old", "uploads"]
        );
    }
}
