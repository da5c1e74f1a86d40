//! The copies of a migration: the database and the storage side by side, the `.env`, and the source's and target's database events around them.

use std::time::Instant;

use super::{MigrationError, Run, Side, outermost_paths};
use crate::migrate::SourceState;
use crate::migrate::database::{DbAdmin, copy_database_metered, enabled_events, set_events};
use crate::migrate::files::FilesError;
use crate::migrate::files::copy_paths_metered;
use crate::migrate::report::{DatabaseMoved, StorageMoved};
use crate::observe::ObservedSite;
use crate::plan::migration::{MoveSizes, Phase};
use crate::plan::step::Engine;
use crate::resources;
use crate::transport::Transport;

impl<'j, 'a, T: Transport> Run<'j, 'a, T> {
    /// The database and the storage copied at once: a restore keeps one core of the target
    /// busy and the archive another, and each stream waits on its own network. Each phase is
    /// recorded in the journal on its own as soon as it is verified; the first error is
    /// returned once both are over.
    pub(super) async fn copy_data(
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

    /// The source's whole `.env` travels in memory to the target, then the spec's keys are
    /// set on top (every key, whatever the target had).
    pub(super) async fn copy_env(&mut self) -> Result<(), MigrationError> {
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
    pub(super) async fn copy_database(&mut self) -> Result<(), MigrationError> {
        let moved = self.database_copy().await?;
        self.after_database_copy(moved).await
    }

    /// Streams the database A → B and verifies it; changes nothing in the run's state, so it
    /// can run beside the storage copy.
    pub(super) async fn database_copy(&self) -> Result<Option<DatabaseMoved>, MigrationError> {
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
            schema_objects: copied.schema_objects,
        }))
    }

    /// After a database copy: its report, the events held back on the target, and the site's
    /// users' grants again (a database dropped and created again loses its database-level
    /// grants on PostgreSQL).
    pub(super) async fn after_database_copy(
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
    pub(super) async fn hold_target_events(
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
    pub(super) async fn switch_events(
        &self,
        side: Side,
        enabled: bool,
    ) -> Result<(), MigrationError> {
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
    pub(super) async fn stop_source_events(&mut self) -> Result<(), MigrationError> {
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
    pub(super) fn source_state(&self) -> SourceState {
        if self.journal.has(Phase::SourceStopped) {
            SourceState::Quiet
        } else {
            SourceState::Live
        }
    }

    /// Which copy is running: the first (source live) or the final sync (source stopped).
    /// A size measured on the source when the plan was made, for the progress ETA.
    pub(super) fn planned_size(&self, pick: fn(&MoveSizes) -> u64) -> Option<u64> {
        self.job.plan.migration.as_ref().map(|m| pick(&m.sizes))
    }

    pub(super) fn current_copy(&self, first: Phase, sync: Phase) -> Phase {
        if self.journal.has(Phase::SourceStopped) {
            sync
        } else {
            first
        }
    }

    pub(super) fn admin(&self, side: Side, engine: Engine) -> Result<DbAdmin, MigrationError> {
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

    /// The site's Redis keys from the quiet source to the target (its workers stopped: nothing
    /// takes a job meanwhile), each side's Redis where its `.env` says.
    pub(super) async fn move_redis(&mut self) -> Result<(), MigrationError> {
        let source_env = format!("{}/.env", self.source_shared());
        let target_env = resources::env_file::env_path(&self.desired);
        let required = self
            .job
            .site
            .spec
            .redis
            .as_ref()
            .is_some_and(|r| r.required);
        let moved = crate::migrate::redis::move_redis(
            self.job.source.streaming,
            self.job.target.streaming,
            &source_env,
            &target_env,
            required,
        )
        .await
        .map_err(MigrationError::Redis)?;
        self.report.redis = Some(moved);
        Ok(())
    }

    /// The site's Redis keys removed from the source's Redis (`onSource: remove`), unless the
    /// target shares that Redis.
    pub(super) async fn clear_source_redis(&mut self) -> Result<(), MigrationError> {
        let source_env = format!("{}/.env", self.source_shared());
        let target_env = resources::env_file::env_path(&self.desired);
        let cleared = crate::migrate::redis::clear_source(
            self.job.source.transport,
            self.job.target.transport,
            &source_env,
            &target_env,
        )
        .await
        .map_err(MigrationError::Redis)?;
        if cleared > 0 {
            self.say(&format!(
                "removed the site's {cleared} Redis keys from the source"
            ));
        }
        Ok(())
    }

    pub(super) async fn copy_storage(&mut self) -> Result<(), MigrationError> {
        let moved = self.storage_copy().await?;
        self.report.storage.extend(moved);
        Ok(())
    }

    /// Streams the storage paths A → B and verifies them; changes nothing in the run's state,
    /// so it can run beside the database copy. `None` when the source has none of the paths.
    pub(super) async fn storage_copy(&self) -> Result<Option<StorageMoved>, MigrationError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn env_keys_are_counted_without_comments() {
        assert_eq!(env_key_count(b"# c=1\nA=1\n\nB=2\n  export C=3\n"), 3);
    }
}
