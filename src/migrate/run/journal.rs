//! The migration's journal on the target: which phases are done, read at the start (a run
//! killed or cut off resumes from it) and written as each phase completes.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{MigrationError, Run};
use crate::layout;
use crate::migrate::report::PhaseRun;
use crate::plan::migration::{JOURNAL_FILE, Journal, Phase};
use crate::transport::Transport;

impl<'j, 'a, T: Transport> Run<'j, 'a, T> {
    /// Phases that run at every apply until the target takes over, because what they make
    /// follows the spec (idempotent: nothing changes when nothing has to): provisioning, and the
    /// code with the paused jobs (a new commit, a changed cron).
    pub(super) fn repeated(&self, phase: Phase) -> bool {
        match phase {
            Phase::Provision => true,
            Phase::TargetInstalled => !self.journal.has(Phase::TargetStarted),
            _ => false,
        }
    }

    /// Whether the journal says a phase is done (then reported as such).
    pub(super) fn skipped(&mut self, phase: Phase) -> bool {
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
    pub(super) async fn record_phase(
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

    pub(super) fn journal_path(&self) -> String {
        format!("{}/{JOURNAL_FILE}", layout::record_dir(self.site()))
    }

    pub(super) async fn load_journal(&mut self) -> Result<(), MigrationError> {
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

    pub(super) async fn save_journal(&self) -> Result<(), MigrationError> {
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
}

pub(super) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
