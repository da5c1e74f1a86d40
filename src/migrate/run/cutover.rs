//! The cutover of a migration: the target installed with its jobs paused and validated, the source stopped, the jobs handed over, the source finished (or brought back when anything failed after it stopped).

use super::{CRON_DRAIN, MigrationError, Run, Side, error_text, now_unix};
use crate::layout;
use crate::migrate::handover::{self, Maintenance};
use crate::migrate::report::CheckResult;
use crate::migrate::validate::{self, DatabaseLogin, JobsExpected, ValidationInput};
use crate::plan::build::MOVED_TO_FACT;
use crate::plan::fingerprint::site_spec_hash;
use crate::plan::migration::Phase;
use crate::plan::step::{Engine, Reload};
use crate::plan::{ResourceKind, Step};
use crate::resources;
use crate::spec::site::OnSource;
use crate::transport::Transport;

impl<'j, 'a, T: Transport> Run<'j, 'a, T> {
    /// Deploys the code on the target, takes it out of maintenance (a server the site left
    /// before, in maintenance, keeps its marker in the shared storage), and installs its crons
    /// and workers paused.
    pub(super) async fn install_target(&mut self) -> Result<(), MigrationError> {
        let steps = self.planned_steps(&[ResourceKind::Code]);
        self.run_on(Side::Target, steps).await?;
        if self.is_laravel() {
            handover::maintenance(
                self.job.target.transport,
                &self.desired.live,
                self.desired.user,
                Maintenance::Off,
            )
            .await
            .map_err(MigrationError::Handover)?;
        }
        self.install_jobs_paused().await
    }

    pub(super) async fn install_jobs_paused(&mut self) -> Result<(), MigrationError> {
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
    pub(super) async fn test_target(&mut self) -> Result<(), MigrationError> {
        self.validate(false).await?;
        self.record_target().await
    }

    pub(super) async fn stop_source(&mut self) -> Result<(), MigrationError> {
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

    pub(super) async fn start_target(&mut self) -> Result<(), MigrationError> {
        handover::resume_jobs(self.job.target.transport, self.site(), handover::START_WAIT)
            .await
            .map_err(MigrationError::Handover)?;
        self.switch_events(Side::Target, true).await
    }

    /// After a failure past the source's stop: the target's jobs are paused first (never both
    /// running), then the source's resume and its maintenance ends. When the target cannot be
    /// reached after its jobs started, the source stays stopped: the next apply resumes.
    pub(super) async fn bring_source_back(&mut self) {
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

    /// `onSource`: keep, stop serving, or remove; then the source's record says where the
    /// site went, so the next plan does not move it again.
    pub(super) async fn finish_source(&mut self) -> Result<(), MigrationError> {
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
                self.snapshot_source("before `onSource: remove`").await?;
                self.clear_source_redis().await?;
                let step = crate::plan::build::remove_site_step(self.site(), self.job.source_site);
                return self
                    .run_on(Side::Source, vec![Step::RemoveSite(Box::new(step))])
                    .await;
            }
        }
        let mut facts = facts;
        facts.insert(MOVED_TO_FACT.to_owned(), self.job.target.name.to_owned());
        // The source's copy is no longer the site: its schedule would back it up as if it were,
        // and renew a certificate the new server renews now.
        let crons = [
            layout::backup_cron_path(self.site()),
            layout::tls_cron_path(self.site()),
        ];
        let mut steps: Vec<Step> = crons
            .into_iter()
            .filter(|path| self.job.source_site.files.contains_key(path))
            .map(|path| Step::RemoveFile {
                path,
                reload: Reload::Nothing,
            })
            .collect();
        steps.push(Step::WriteRecord {
            site: self.site().to_owned(),
            facts,
        });
        self.run_on(Side::Source, steps).await
    }

    pub(super) async fn record_target(&mut self) -> Result<(), MigrationError> {
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

    pub(super) async fn validate(&mut self, workers_running: bool) -> Result<(), MigrationError> {
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

    pub(super) fn validation_input(&self, workers_running: bool) -> ValidationInput {
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
            https: self.expected_certificate(),
        }
    }

    /// With `tls`, the SHA-256 of the certificate the target must serve: the source's ACME
    /// certificate (carried), or the one from secrets.
    fn expected_certificate(&self) -> Option<String> {
        use crate::spec::tls::TlsSource;
        let tls = self.job.site.spec.tls.as_ref()?;
        let expected = match tls.source()? {
            TlsSource::Acme(_) => self
                .job
                .source_site
                .certificates
                .get("acme")
                .map(|c| c.sha256.clone()),
            TlsSource::Secrets { .. } => {
                crate::resources::tls::secrets_info(tls, self.job.secrets).map(|i| i.sha256)
            }
        };
        Some(expected.unwrap_or_default())
    }
}
