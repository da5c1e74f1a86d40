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
use crate::plan::build::MOVED_TO_FACT;
use crate::plan::fingerprint::site_spec_hash;
use crate::plan::migration::{JOURNAL_FILE, Journal, MoveSizes, Phase};
use crate::plan::step::{Engine, Reload};
use crate::plan::{ResourceKind, SitePlan, Step};
use crate::resources::{self, DesiredSite};
use crate::spec::Site;
use crate::spec::secret::ResolvedSecrets;
use crate::spec::server::ServerSpec;
use crate::spec::site::{DeployStrategy, MigrationMode, OnSource, SiteType};
use crate::transport::{Transport, TransportError};

use super::SourceState;
use super::database::{DbAdmin, MigrateError, copy_database_metered, enabled_events, set_events};
use super::files::{FilesError, copy_paths_metered};
use super::handover::{self, HandoverError, Maintenance};
use super::progress::Progress;
use super::report::{
    CheckResult, DatabaseMoved, MigrationReport, PhaseRun, REPORT_VERSION, StorageMoved,
};
use super::validate::{self, DatabaseLogin, JobsExpected, ValidationInput};

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
            env_keys_from_source: 0,
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
            lock::acquire(side.transport, &site, job.owner)
                .await
                .map_err(|source| MigrationError::Lock {
                    server: side.name.to_owned(),
                    source: Box::new(source),
                })?;
        }
        let result = self.phases().await;
        for side in [&job.source, &job.target] {
            if let Err(error) = lock::release(side.transport, &site, job.owner).await {
                tracing::warn!(
                    site,
                    server = side.name,
                    "could not release the lock: {error}"
                );
            }
        }
        result
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
        self.timed(Phase::SourceStopped).await?;
        let handed_over = self.hand_over().await;
        if let Err(error) = handed_over {
            self.bring_source_back().await;
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
        self.timed(Phase::TargetStarted).await?;
        self.timed(Phase::Validated).await
    }

    /// The database and the storage copied at once: a restore keeps one core of the target
    /// busy and the archive another, and each stream waits on its own network. Each phase is
    /// recorded in the journal on its own as soon as it is verified; the first error is
    /// returned once both are over.
    async fn copy_data(
        &mut self,
        database_phase: Phase,
        storage_phase: Phase,
    ) -> Result<(), MigrationError> {
        let has_database = self.job.site.spec.database.is_some();
        let database_due = has_database && !self.skipped(database_phase);
        let storage_due = !self.skipped(storage_phase);
        match (database_due, storage_due) {
            (true, true) => self.say(&format!(
                "{} and {}",
                database_phase.word(),
                storage_phase.word()
            )),
            (true, false) => self.say(database_phase.word()),
            (false, true) => self.say(storage_phase.word()),
            (false, false) => {}
        }
        let started = Instant::now();
        let (database, storage) = tokio::join!(
            async {
                if !database_due {
                    return None;
                }
                let moved = self.database_copy().await;
                Some((moved, started.elapsed()))
            },
            async {
                if !storage_due {
                    return None;
                }
                let moved = self.storage_copy().await;
                Some((moved, started.elapsed()))
            },
        );
        let mut first_error = None;
        if let Some((moved, took)) = database {
            let result = match moved {
                Ok(moved) => self.after_database_copy(moved).await,
                Err(error) => Err(error),
            };
            if let Err(error) = self.record_phase(database_phase, took, result).await {
                first_error.get_or_insert(error);
            }
        }
        if let Some((moved, took)) = storage {
            let result = moved.map(|moved| self.report.storage.extend(moved));
            if let Err(error) = self.record_phase(storage_phase, took, result).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Tells what the migration is doing, on stderr.
    fn say(&self, what: &str) {
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

    /// User, directories, database and users, pool and vhost on the target, then the `.env`.
    async fn provision(&mut self) -> Result<(), MigrationError> {
        use ResourceKind::*;
        let steps = self.planned_steps(&[User, Directory, Database, DatabaseUser, FpmPool, Vhost]);
        self.run_on(Side::Target, steps).await?;
        self.copy_env().await
    }

    /// The source's whole `.env` travels in memory to the target, then the spec's keys are
    /// set on top (every key, whatever the target had).
    async fn copy_env(&mut self) -> Result<(), MigrationError> {
        let source_env = format!("{}/.env", self.source_shared());
        let target_env = resources::env_file::env_path(&self.desired);
        let source = &self.job.source;
        let content = source
            .transport
            .read_file(&source_env)
            .await
            .map_err(|error| MigrationError::Transport {
                what: "reading the source's .env",
                server: source.name.to_owned(),
                source: Box::new(error),
            })?;
        if let Some(content) = content {
            self.report.env_keys_from_source = env_key_count(&content);
            let user = self.desired.user;
            let target = &self.job.target;
            target
                .transport
                .write_file_atomic(&target_env, &content, user, user, 0o640)
                .await
                .map_err(|error| MigrationError::Transport {
                    what: "writing the .env",
                    server: target.name.to_owned(),
                    source: Box::new(error),
                })?;
        }
        let merge =
            resources::env_file::diff(&self.desired, &ObservedSite::default(), self.job.secrets);
        self.run_on(Side::Target, merge.steps).await
    }

    /// The database copy of the current phase, then what the target needs after it.
    async fn copy_database(&mut self) -> Result<(), MigrationError> {
        let moved = self.database_copy().await?;
        self.after_database_copy(moved).await
    }

    /// Streams the database A → B and verifies it; changes nothing in the run's state, so it
    /// can run beside the storage copy.
    async fn database_copy(&self) -> Result<Option<DatabaseMoved>, MigrationError> {
        let Some(database) = &self.job.site.spec.database else {
            return Ok(None);
        };
        let engine = Engine::of(database.engine);
        let (source_admin, target_admin) = (
            self.admin(Side::Source, engine)?,
            self.admin(Side::Target, engine)?,
        );
        let phase = self.current_copy(Phase::DatabaseCopied, Phase::DatabaseSynced);
        let expected = self.planned_size(|sizes| sizes.database_bytes);
        let meter = self.job.progress.meter(
            &format!("migration of {} | database {}", self.site(), database.name),
            expected,
        );
        let copied = copy_database_metered(
            (self.job.source.streaming, self.job.target.streaming),
            (&source_admin, &target_admin),
            engine,
            database.name.as_str(),
            self.source_state(),
            &meter,
        )
        .await;
        meter.finish();
        let copied = copied.map_err(MigrationError::Database)?;
        Ok(Some(DatabaseMoved {
            phase,
            engine: format!("{:?}", copied.engine).to_lowercase(),
            name: copied.database.clone(),
            compression: format!("{:?}", copied.compression).to_lowercase(),
            bytes_on_wire: copied.bytes_on_wire,
            transfer_millis: copied.transfer.as_millis() as u64,
            verification_millis: copied.verification.as_millis() as u64,
            tables: copied
                .tables
                .iter()
                .map(|t| (t.name.clone(), t.rows, t.checksum.clone()))
                .collect(),
            changed_on_source: copied.changed_on_source.clone(),
        }))
    }

    /// After a database copy: its report, the events held back on the target, and the site's
    /// users' grants again (a database dropped and created again loses its database-level
    /// grants on PostgreSQL).
    async fn after_database_copy(
        &mut self,
        moved: Option<DatabaseMoved>,
    ) -> Result<(), MigrationError> {
        let (Some(moved), Some(database)) = (moved, &self.job.site.spec.database) else {
            return Ok(());
        };
        self.report.database.push(moved);
        let engine = Engine::of(database.engine);
        let target_admin = self.admin(Side::Target, engine)?;
        self.hold_target_events(engine, &target_admin, database.name.as_str())
            .await?;
        let users = resources::database::diff_users(
            &self.desired,
            &ObservedSite::default(),
            self.job.secrets,
            &[],
        );
        let steps = users.into_iter().flat_map(|c| c.steps).collect();
        self.run_on(Side::Target, steps).await
    }

    /// Events copied enabled stay off on the target until it takes over (a MariaDB event is a
    /// job like a cron): recorded in the journal first, then disabled.
    async fn hold_target_events(
        &mut self,
        engine: Engine,
        admin: &DbAdmin,
        database: &str,
    ) -> Result<(), MigrationError> {
        if self.journal.has(Phase::TargetStarted) {
            return Ok(());
        }
        let target = self.job.target.transport;
        let enabled = enabled_events(target, admin, engine, database)
            .await
            .map_err(MigrationError::Database)?;
        if enabled.is_empty() {
            return Ok(());
        }
        self.journal.add_events(&enabled);
        self.save_journal().await?;
        set_events(target, admin, engine, database, &enabled, false)
            .await
            .map_err(MigrationError::Database)
    }

    /// Turns the journal's events on or off on one side.
    async fn switch_events(&self, side: Side, enabled: bool) -> Result<(), MigrationError> {
        let Some(database) = &self.job.site.spec.database else {
            return Ok(());
        };
        if self.journal.events.is_empty() {
            return Ok(());
        }
        let engine = Engine::of(database.engine);
        let admin = self.admin(side, engine)?;
        set_events(
            self.endpoint(side).transport,
            &admin,
            engine,
            database.name.as_str(),
            &self.journal.events,
            enabled,
        )
        .await
        .map_err(MigrationError::Database)
    }

    /// The source's enabled events, recorded then disabled: it runs no job once stopped.
    async fn stop_source_events(&mut self) -> Result<(), MigrationError> {
        let Some(database) = &self.job.site.spec.database else {
            return Ok(());
        };
        let engine = Engine::of(database.engine);
        let admin = self.admin(Side::Source, engine)?;
        let source = self.job.source.transport;
        let enabled = enabled_events(source, &admin, engine, database.name.as_str())
            .await
            .map_err(MigrationError::Database)?;
        self.journal.add_events(&enabled);
        self.save_journal().await?;
        self.switch_events(Side::Source, false).await
    }

    /// Whether the site still runs on the source: before it stopped, what changes there during
    /// a copy is named rather than compared.
    fn source_state(&self) -> SourceState {
        if self.journal.has(Phase::SourceStopped) {
            SourceState::Quiet
        } else {
            SourceState::Live
        }
    }

    /// Which copy is running: the first (source live) or the final sync (source stopped).
    /// A size measured on the source when the plan was made, for the progress ETA.
    fn planned_size(&self, pick: fn(&MoveSizes) -> u64) -> Option<u64> {
        self.job.plan.migration.as_ref().map(|m| pick(&m.sizes))
    }

    fn current_copy(&self, first: Phase, sync: Phase) -> Phase {
        if self.journal.has(Phase::SourceStopped) {
            sync
        } else {
            first
        }
    }

    fn admin(&self, side: Side, engine: Engine) -> Result<DbAdmin, MigrationError> {
        let endpoint = self.endpoint(side);
        let (section, admin) = match engine {
            Engine::Mysql => ("mysql", endpoint.spec.mysql.as_ref()),
            Engine::Postgres => ("postgres", endpoint.spec.postgres.as_ref()),
        };
        let admin = admin.ok_or_else(|| MigrationError::NoAdmin {
            server: endpoint.name.to_owned(),
            section,
        })?;
        Ok(DbAdmin {
            user: admin.admin_user.clone(),
            password: admin
                .admin_password
                .as_ref()
                .and_then(|r| self.job.secrets.get(r))
                .cloned(),
        })
    }

    async fn copy_storage(&mut self) -> Result<(), MigrationError> {
        let moved = self.storage_copy().await?;
        self.report.storage.extend(moved);
        Ok(())
    }

    /// Streams the storage paths A → B and verifies them; changes nothing in the run's state,
    /// so it can run beside the database copy. `None` when the source has none of the paths.
    async fn storage_copy(&self) -> Result<Option<StorageMoved>, MigrationError> {
        let mut paths = outermost_paths(&self.desired.storage);
        let mut absent = Vec::new();
        let phase = self.current_copy(Phase::StorageCopied, Phase::StorageSynced);
        let total = self.planned_size(|sizes| sizes.storage_bytes);
        loop {
            if paths.is_empty() {
                break;
            }
            let label = format!("migration of {} | storage", self.site());
            let meter = self.job.progress.meter(&label, total);
            let copied = copy_paths_metered(
                (self.job.source.streaming, self.job.target.streaming),
                (&self.source_shared(), &self.desired.shared),
                &paths,
                self.desired.user,
                self.source_state(),
                &meter,
            )
            .await;
            meter.finish();
            match copied {
                Ok(copied) => {
                    return Ok(Some(StorageMoved {
                        phase,
                        paths: paths.clone(),
                        absent_on_source: absent.clone(),
                        files: copied.files,
                        bytes: copied.bytes,
                        symlinks: copied.symlinks,
                        directories: copied.directories,
                        bytes_on_wire: copied.wire_bytes,
                        compression: format!("{:?}", copied.codec).to_lowercase(),
                        checksum: copied.checksums,
                        changed_on_source: named_few(copied.changed_on_source),
                        millis: copied.duration.as_millis() as u64,
                    }));
                }
                // Paths the source never had (a spec that names more than the old server
                // held) have nothing to copy; the target keeps its empty directories.
                Err(FilesError::Missing { paths: missing, .. }) if !missing.is_empty() => {
                    paths.retain(|p| !missing.contains(p));
                    absent.extend(missing);
                }
                Err(error) => return Err(MigrationError::Storage(error)),
            }
        }
        Ok(None)
    }

    /// Deploys the code on the target and installs its crons and workers paused.
    async fn install_target(&mut self) -> Result<(), MigrationError> {
        let steps = self.planned_steps(&[ResourceKind::Code]);
        self.run_on(Side::Target, steps).await?;
        self.install_jobs_paused().await
    }

    async fn install_jobs_paused(&mut self) -> Result<(), MigrationError> {
        let mut files = Vec::new();
        if let Some(cron) = resources::jobs::cron_file(&self.desired) {
            files.push(cron);
        }
        for worker in &self.desired.workers {
            files.push(resources::jobs::program_file(&self.desired, worker));
        }
        let target = &self.job.target;
        let site = self.site().to_owned();
        handover::ensure_paused_dir(target.transport, &site)
            .await
            .map_err(MigrationError::Handover)?;
        for file in files {
            let paused = layout::paused_path(&site, &file.path);
            target
                .transport
                .write_file_atomic(&paused, file.content.as_bytes(), "root", "root", 0o644)
                .await
                .map_err(|source| MigrationError::Transport {
                    what: "installing the paused crons and workers",
                    server: target.name.to_owned(),
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }

    /// Test mode: the target is validated with its jobs paused; the source stays live.
    async fn test_target(&mut self) -> Result<(), MigrationError> {
        self.validate(false).await?;
        self.record_target().await
    }

    async fn stop_source(&mut self) -> Result<(), MigrationError> {
        // Recorded before acting: a run cut off in the middle knows the source may be
        // stopped, and bringing it back is harmless when it was not.
        self.journal.complete(Phase::SourceStopped, now_unix());
        self.save_journal().await?;
        let source = &self.job.source;
        if self.is_laravel() {
            handover::maintenance(
                source.transport,
                &self.source_live(),
                self.desired.user,
                Maintenance::On,
            )
            .await
            .map_err(MigrationError::Handover)?;
        }
        handover::pause_jobs(
            source.transport,
            self.site(),
            &self.cron_users(),
            CRON_DRAIN,
        )
        .await
        .map_err(MigrationError::Handover)?;
        self.stop_source_events().await
    }

    async fn start_target(&mut self) -> Result<(), MigrationError> {
        handover::resume_jobs(self.job.target.transport, self.site(), handover::START_WAIT)
            .await
            .map_err(MigrationError::Handover)?;
        self.switch_events(Side::Target, true).await
    }

    async fn validate(&mut self, workers_running: bool) -> Result<(), MigrationError> {
        let input = self.validation_input(workers_running);
        let checks = validate::validate_site(self.job.target.transport, &input).await;
        let failed: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        self.report.checks = checks
            .into_iter()
            .map(|c| CheckResult {
                name: c.name,
                ok: c.ok,
                detail: self.job.secrets.scrub(&c.detail),
                millis: c.millis,
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(MigrationError::Validation {
                server: self.job.target.name.to_owned(),
                failed: self.job.secrets.scrub(&failed.join("; ")),
            })
        }
    }

    fn validation_input(&self, workers_running: bool) -> ValidationInput {
        let spec = &self.job.site.spec;
        let database = spec.database.as_ref().and_then(|db| {
            let user = db.users.first()?;
            Some(DatabaseLogin {
                engine: Engine::of(db.engine),
                name: db.name.to_string(),
                user: user.name.to_string(),
                password: self.job.secrets.get(&user.password)?.clone(),
            })
        });
        let redis_url = spec
            .redis
            .as_ref()
            .filter(|r| r.required)
            .and(self.job.target.spec.redis.as_ref())
            .map(|r| r.url.clone());
        ValidationInput {
            site: self.site().to_owned(),
            domain: spec.domain.clone(),
            address: self.job.target.spec.address.clone(),
            code_dir: self.desired.live.clone(),
            user: self.desired.user.to_owned(),
            laravel: self.is_laravel(),
            health: spec.health.clone(),
            database,
            redis_url,
            crons: !self.desired.crons.is_empty(),
            workers: self
                .desired
                .workers
                .iter()
                .map(|w| w.name.to_string())
                .collect(),
            jobs: if workers_running {
                JobsExpected::Running
            } else {
                JobsExpected::Paused
            },
        }
    }

    /// `onSource`: keep, stop serving, or remove; then the source's record says where the
    /// site went, so the next plan does not move it again.
    async fn finish_source(&mut self) -> Result<(), MigrationError> {
        let facts = self
            .job
            .source_site
            .record
            .as_ref()
            .map(|r| r.facts.clone())
            .unwrap_or_default();
        match self.job.site.spec.migration.on_source {
            OnSource::Keep => {}
            OnSource::Stop => {
                let mut steps = vec![Step::RemoveFile {
                    path: layout::vhost_path(self.site()),
                    reload: Reload::Nginx,
                }];
                if let Some(php) = facts.get("php") {
                    steps.push(Step::RemoveFile {
                        path: layout::pool_path(php, self.site()),
                        reload: Reload::PhpFpm {
                            version: php.clone(),
                        },
                    });
                }
                self.run_on(Side::Source, steps).await?;
            }
            OnSource::Remove => {
                let step = crate::plan::build::remove_site_step(self.site(), self.job.source_site);
                return self
                    .run_on(Side::Source, vec![Step::RemoveSite(Box::new(step))])
                    .await;
            }
        }
        let mut facts = facts;
        facts.insert(MOVED_TO_FACT.to_owned(), self.job.target.name.to_owned());
        let step = Step::WriteRecord {
            site: self.site().to_owned(),
            facts,
        };
        self.run_on(Side::Source, vec![step]).await
    }

    async fn record_target(&mut self) -> Result<(), MigrationError> {
        let facts = resources::record::facts(
            &self.desired,
            self.job.target.name,
            &site_spec_hash(self.job.site),
        );
        let step = Step::WriteRecord {
            site: self.site().to_owned(),
            facts,
        };
        self.run_on(Side::Target, vec![step]).await
    }

    /// After a failure past the source's stop: the target's jobs are paused first (never both
    /// running), then the source's resume and its maintenance ends. When the target cannot be
    /// reached after its jobs started, the source stays stopped: the next apply resumes.
    async fn bring_source_back(&mut self) {
        let target_started = self.journal.has(Phase::TargetStarted);
        if target_started
            && let Err(error) = handover::pause_jobs(
                self.job.target.transport,
                self.site(),
                &self.cron_users(),
                CRON_DRAIN,
            )
            .await
        {
            tracing::error!(
                site = self.site(),
                "the target's jobs could not be paused, so the source stays stopped: {}",
                error_text(&error)
            );
            return;
        }
        if target_started && let Err(error) = self.switch_events(Side::Target, false).await {
            tracing::error!(
                site = self.site(),
                "the target's database events could not be disabled, so the source stays stopped: {}",
                error_text(&error)
            );
            return;
        }
        if let Err(error) = self.switch_events(Side::Source, true).await {
            tracing::error!(
                site = self.site(),
                "the source's database events could not be enabled again; apply again to resume: {}",
                error_text(&error)
            );
            return;
        }
        let source = &self.job.source;
        let resumed =
            handover::resume_jobs(source.transport, self.site(), handover::START_WAIT).await;
        let resumed = match resumed {
            Ok(_) if self.is_laravel() => {
                handover::maintenance(
                    source.transport,
                    &self.source_live(),
                    self.desired.user,
                    Maintenance::Off,
                )
                .await
            }
            other => other.map(|_| ()),
        };
        if let Err(error) = resumed {
            tracing::error!(
                site = self.site(),
                "the source could not be brought back; apply again to resume: {}",
                error_text(&error)
            );
            return;
        }
        self.report.source_brought_back = true;
        self.journal.forget(&[
            Phase::SourceStopped,
            Phase::DatabaseSynced,
            Phase::StorageSynced,
            Phase::TargetStarted,
            Phase::Validated,
        ]);
        if let Err(error) = self.save_journal().await {
            tracing::error!(site = self.site(), "{}", error_text(&error));
        }
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

/// At most 20 names, then how many more there are.
fn named_few(mut names: Vec<String>) -> Vec<String> {
    const SHOWN: usize = 20;
    if names.len() > SHOWN {
        let more = names.len() - SHOWN;
        names.truncate(SHOWN);
        names.push(format!("… and {more} more"));
    }
    names
}

fn env_key_count(content: &[u8]) -> usize {
    String::from_utf8_lossy(content)
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .count()
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

    #[test]
    fn env_keys_are_counted_without_comments() {
        assert_eq!(env_key_count(b"# c=1\nA=1\n\nB=2\n  export C=3\n"), 3);
    }
}
