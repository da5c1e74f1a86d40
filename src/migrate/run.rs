//! Running a migration: the phases of DESIGN §4 in order, each recorded in the journal on the
//! target once done, so that a run killed or cut off at any point resumes where it stopped.
//!
//! The invariant of the handover: a site's crons and workers run on exactly one server at any
//! moment. The target's are installed paused; the source's are paused before the target's
//! start; if anything fails after the source was paused, the target's are paused again before
//! the source's resume.

use std::time::{Duration, Instant};

use crate::apply::commands::StepContext;
use crate::apply::lock;
use crate::apply::{SiteOutcome, StepOutcome, error_text, run_steps};
use crate::plan::migration::{Journal, Phase};
use crate::plan::{ResourceKind, Step};
use crate::resources::DesiredSite;
use crate::spec::site::MigrationMode;
use crate::transport::Transport;

use super::report::{MigrationReport, PhaseRun, REPORT_VERSION};
use journal::now_unix;

mod copy;
mod cutover;
mod job;
mod journal;
mod snapshot;
mod source;
mod tls;

pub use job::{Endpoint, MigrationError, MigrationJob};
pub use source::outermost_paths;

/// How long the source's cron jobs may take to finish once their crons are off.
const CRON_DRAIN: Duration = Duration::from_secs(90);

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
