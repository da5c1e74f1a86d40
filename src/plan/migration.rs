//! Migration plans: a site recorded on one server while its spec names another, and the
//! sequence of phases that moves it, with sizes, an estimate and progress from the journal.
//! Pure: built from what was observed on both servers.

use serde::{Deserialize, Serialize};

use crate::spec::site::{MigrationMode, OnSource};

/// The journal's file name in a site's record directory on the target.
pub const JOURNAL_FILE: &str = "journal";

/// One phase of a migration, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The site's user, directories, `.env`, database, users, pool and vhost on the target.
    Provision,
    /// The database copied from the source while it stays live.
    DatabaseCopied,
    /// The storage paths copied from the source while it stays live.
    StorageCopied,
    /// The code deployed on the target, its crons and workers installed inactive.
    TargetInstalled,
    /// Test mode: the target validated while the source stays the live runner.
    Tested,
    /// Final sync: the source in maintenance, its workers and crons stopped.
    SourceStopped,
    /// Final sync: the database copied again from the quiet source.
    DatabaseSynced,
    /// Final sync: the storage copied again from the quiet source.
    StorageSynced,
    /// Final sync: the site's Redis keys (queued and delayed jobs) moved from the quiet source.
    RedisSynced,
    /// Final sync: the target's crons and workers started.
    TargetStarted,
    /// Final sync: the target validated as the live runner.
    Validated,
    /// `onSource` carried out on the source.
    SourceFinished,
    /// The migration is complete.
    Done,
}

impl Phase {
    /// Every phase of a mode, in order.
    pub fn sequence(mode: MigrationMode) -> &'static [Phase] {
        use Phase::*;
        match mode {
            MigrationMode::Test => &[
                Provision,
                DatabaseCopied,
                StorageCopied,
                TargetInstalled,
                Tested,
            ],
            MigrationMode::FinalSync => &[
                Provision,
                DatabaseCopied,
                StorageCopied,
                TargetInstalled,
                SourceStopped,
                DatabaseSynced,
                StorageSynced,
                RedisSynced,
                TargetStarted,
                Validated,
                SourceFinished,
                Done,
            ],
        }
    }

    /// The journal's word for the phase.
    pub fn word(self) -> &'static str {
        use Phase::*;
        match self {
            Provision => "provision",
            DatabaseCopied => "database-copied",
            StorageCopied => "storage-copied",
            TargetInstalled => "target-installed",
            Tested => "tested",
            SourceStopped => "source-stopped",
            DatabaseSynced => "database-synced",
            StorageSynced => "storage-synced",
            RedisSynced => "redis-synced",
            TargetStarted => "target-started",
            Validated => "validated",
            SourceFinished => "source-finished",
            Done => "done",
        }
    }

    /// The phase a journal word names.
    pub fn from_word(word: &str) -> Option<Phase> {
        // Every phase is in the final sync's sequence but `tested`, test mode's last.
        Phase::sequence(MigrationMode::FinalSync)
            .iter()
            .chain([Phase::Tested].iter())
            .copied()
            .find(|p| p.word() == word)
    }

    /// What the phase does, for people reading a plan.
    pub fn describe(self, on_source: OnSource) -> &'static str {
        use Phase::*;
        match self {
            Provision => {
                "provision the target: user, directories, .env of the source with the spec's keys, database and users, PHP-FPM pool, nginx vhost"
            }
            DatabaseCopied => {
                "copy the database source → target through siteward (compressed), verify row counts and checksums per table"
            }
            StorageCopied => {
                "copy the storage paths source → target as one stream, verify per-file checksums"
            }
            TargetInstalled => {
                "deploy the code on the target; install its crons and workers inactive"
            }
            Tested => {
                "validate the target (HTTP with the Host header, artisan about, database, Redis); the source stays the live runner"
            }
            SourceStopped => {
                "put the source in maintenance, stop its workers gracefully and its crons"
            }
            DatabaseSynced => "copy the database again from the quiet source and verify it",
            StorageSynced => "copy the storage again from the quiet source and verify it",
            RedisSynced => {
                "move the site's Redis keys (queued and delayed jobs, Horizon) from the quiet source, TTLs kept; a Redis both servers share is left alone"
            }
            TargetStarted => "start the target's crons and workers",
            Validated => {
                "validate the target (HTTP with the Host header, artisan about, database, Redis, workers running); on failure the source is brought back"
            }
            SourceFinished => match on_source {
                OnSource::Keep => {
                    "keep the source as it is (in maintenance, crons and workers off)"
                }
                OnSource::Stop => {
                    "stop serving the site on the source (vhost and pool removed; files and database kept)"
                }
                OnSource::Remove => "remove the site, its database and users from the source",
            },
            Done => "record the site as moved",
        }
    }
}

/// A migration's journal as kept on the target: which migration, and the phases completed.
///
/// The file is `key=value` lines: `source=`, `mode=`, `started=` (unix seconds), then one
/// `phase=<word> <unix>` per completed phase, in order. A phase is written only after it
/// completed and was verified, so a run cut off in the middle of one repeats it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub source: String,
    pub mode: String,
    pub started_unix: u64,
    pub completed: Vec<(Phase, u64)>,
    /// Database events (MariaDB/MySQL) that were enabled on the source: kept disabled on the
    /// target until it takes over, disabled on the source when it stops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

impl Journal {
    /// A fresh journal for a migration from `source`.
    pub fn start(source: &str, mode: MigrationMode, now: u64) -> Journal {
        Journal {
            source: source.to_owned(),
            mode: mode_word(mode).to_owned(),
            started_unix: now,
            completed: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Reads journal lines; `None` when they name no source (no journal).
    pub fn parse(lines: &[String]) -> Option<Journal> {
        let mut journal = Journal::default();
        for line in lines {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "source" => journal.source = value.to_owned(),
                "mode" => journal.mode = value.to_owned(),
                "started" => journal.started_unix = value.parse().unwrap_or(0),
                "event" => journal.events.push(value.to_owned()),
                "phase" => {
                    let (word, at) = value.split_once(' ').unwrap_or((value, "0"));
                    if let Some(phase) = Phase::from_word(word) {
                        journal.completed.push((phase, at.parse().unwrap_or(0)));
                    }
                }
                _ => {}
            }
        }
        (!journal.source.is_empty()).then_some(journal)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut text = format!(
            "source={}\nmode={}\nstarted={}\n",
            self.source, self.mode, self.started_unix
        );
        for event in &self.events {
            text.push_str(&format!("event={event}\n"));
        }
        for (phase, at) in &self.completed {
            text.push_str(&format!("phase={} {at}\n", phase.word()));
        }
        text
    }

    /// Remembers events that must stay off until the target takes over.
    pub fn add_events(&mut self, events: &[String]) {
        for event in events {
            if !event.contains('\n') && !self.events.contains(event) {
                self.events.push(event.clone());
            }
        }
    }

    /// Whether a phase completed.
    pub fn has(&self, phase: Phase) -> bool {
        self.completed.iter().any(|(p, _)| *p == phase)
    }

    /// Records a completed phase (once).
    pub fn complete(&mut self, phase: Phase, now: u64) {
        if !self.has(phase) {
            self.completed.push((phase, now));
        }
    }

    /// Forgets phases: after the source was brought back, the final sync starts over.
    pub fn forget(&mut self, phases: &[Phase]) {
        self.completed.retain(|(p, _)| !phases.contains(p));
    }

    /// Whether the journal belongs to a finished migration (a new one starts afresh).
    pub fn finished(&self) -> bool {
        self.has(Phase::Done)
    }
}

/// The spec's word for a mode.
pub fn mode_word(mode: MigrationMode) -> &'static str {
    match mode {
        MigrationMode::Test => "test",
        MigrationMode::FinalSync => "final-sync",
    }
}

/// What a migration carries, measured on the source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveSizes {
    /// The database's size on disk (data and indexes).
    pub database_bytes: u64,
    /// The storage paths' bytes.
    pub storage_bytes: u64,
    /// The storage paths' regular files.
    pub storage_files: u64,
}

/// One phase in a plan: what it does and whether the journal says it is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedPhase {
    pub phase: Phase,
    pub what: String,
    pub done: bool,
}

/// The migration part of a site's plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationPlan {
    /// The server the site is recorded on.
    pub source: String,
    /// The server its spec names.
    pub target: String,
    pub mode: MigrationMode,
    pub on_source: OnSource,
    pub sizes: MoveSizes,
    /// Whether the storage sizes were measured (a source that did not answer leaves them 0).
    pub sizes_measured: bool,
    /// A rough duration of the remaining phases, in seconds.
    pub estimate_seconds: u64,
    /// A migration already under way: when it started (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from_unix: Option<u64>,
    pub phases: Vec<PlannedPhase>,
}

impl MigrationPlan {
    /// Builds the plan of a migration from its journal (when one is under way).
    pub fn new(
        source: &str,
        target: &str,
        migration: &crate::spec::site::Migration,
        sizes: Option<MoveSizes>,
        journal: Option<&Journal>,
    ) -> MigrationPlan {
        let journal = journal.filter(|j| j.source == source && !j.finished());
        let phases: Vec<PlannedPhase> = Phase::sequence(migration.mode)
            .iter()
            .map(|phase| PlannedPhase {
                phase: *phase,
                what: phase.describe(migration.on_source).to_owned(),
                done: *phase != Phase::Provision && journal.is_some_and(|j| j.has(*phase)),
            })
            .collect();
        let sizes_measured = sizes.is_some();
        let sizes = sizes.unwrap_or_default();
        let mut plan = MigrationPlan {
            source: source.to_owned(),
            target: target.to_owned(),
            mode: migration.mode,
            on_source: migration.on_source,
            sizes,
            sizes_measured,
            estimate_seconds: 0,
            resumed_from_unix: journal.map(|j| j.started_unix),
            phases,
        };
        plan.estimate_seconds = estimate_seconds(&plan);
        plan
    }

    /// Whether any phase after provisioning is still to run.
    pub fn pending(&self) -> bool {
        self.phases
            .iter()
            .any(|p| p.phase != Phase::Provision && !p.done)
    }
}

/// Throughput assumed for estimates: a dump piped into a restore, and a tar stream.
const DATABASE_BYTES_PER_SECOND: u64 = 20 << 20;
const STORAGE_BYTES_PER_SECOND: u64 = 60 << 20;
/// Per file: listing and checksumming on both sides.
const FILES_PER_SECOND: u64 = 5_000;
/// Provisioning, a deploy and validation.
const FIXED_SECONDS: u64 = 15;

fn estimate_seconds(plan: &MigrationPlan) -> u64 {
    let sizes = plan.sizes;
    let database = sizes.database_bytes.div_ceil(DATABASE_BYTES_PER_SECOND);
    let storage = sizes.storage_bytes.div_ceil(STORAGE_BYTES_PER_SECOND)
        + sizes.storage_files.div_ceil(FILES_PER_SECOND);
    let pending = |phase: Phase| plan.phases.iter().any(|p| p.phase == phase && !p.done);
    let mut seconds = if plan.pending() { FIXED_SECONDS } else { 0 };
    for (phase, cost) in [
        (Phase::DatabaseCopied, database),
        (Phase::DatabaseSynced, database),
        (Phase::StorageCopied, storage),
        (Phase::StorageSynced, storage),
    ] {
        if pending(phase) {
            seconds += cost;
        }
    }
    seconds
}

/// `1 h 5 min`, `3 min 20 s`, `12 s`.
pub fn human_duration(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, (seconds % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::site::Migration;

    fn migration(mode: MigrationMode) -> Migration {
        Migration {
            mode,
            on_source: OnSource::Stop,
        }
    }

    #[test]
    fn a_journal_survives_rendering_and_parsing() {
        let mut journal = Journal::start("web-1", MigrationMode::FinalSync, 100);
        journal.complete(Phase::DatabaseCopied, 110);
        journal.complete(Phase::DatabaseCopied, 120);
        journal.complete(Phase::StorageCopied, 130);
        journal.add_events(&["purge".into(), "purge".into(), "nightly report".into()]);
        let lines: Vec<String> = journal.render().lines().map(str::to_owned).collect();
        let parsed = Journal::parse(&lines).unwrap();
        assert_eq!(parsed, journal);
        assert_eq!(parsed.completed.len(), 2, "a phase is recorded once");
    }

    #[test]
    fn a_journal_without_a_source_is_no_journal() {
        assert_eq!(Journal::parse(&["phase=done 1".into()]), None);
        assert_eq!(Journal::parse(&[]), None);
    }

    #[test]
    fn forgetting_phases_lets_the_final_sync_start_over() {
        let mut journal = Journal::start("a", MigrationMode::FinalSync, 1);
        for phase in [
            Phase::DatabaseCopied,
            Phase::SourceStopped,
            Phase::DatabaseSynced,
        ] {
            journal.complete(phase, 2);
        }
        journal.forget(&[Phase::SourceStopped, Phase::DatabaseSynced]);
        assert!(journal.has(Phase::DatabaseCopied));
        assert!(!journal.has(Phase::SourceStopped));
    }

    #[test]
    fn a_fresh_migration_has_every_phase_pending_and_an_estimate_from_its_sizes() {
        let sizes = MoveSizes {
            database_bytes: 1 << 30,
            storage_bytes: 1 << 30,
            storage_files: 50_000,
        };
        let plan = MigrationPlan::new(
            "a",
            "b",
            &migration(MigrationMode::FinalSync),
            Some(sizes),
            None,
        );
        assert!(plan.pending());
        assert!(plan.phases.iter().all(|p| !p.done));
        // Two database copies of 1 GiB at 20 MiB/s, two storage copies at 60 MiB/s + files.
        assert_eq!(plan.estimate_seconds, 15 + 2 * 52 + 2 * (18 + 10));
        assert_eq!(plan.phases.last().unwrap().phase, Phase::Done);
    }

    #[test]
    fn a_tested_migration_has_nothing_pending_in_test_mode_and_the_handover_in_final_sync() {
        let mut journal = Journal::start("a", MigrationMode::Test, 1);
        for phase in Phase::sequence(MigrationMode::Test) {
            journal.complete(*phase, 2);
        }
        let test = MigrationPlan::new(
            "a",
            "b",
            &migration(MigrationMode::Test),
            None,
            Some(&journal),
        );
        assert!(!test.pending());
        assert_eq!(test.estimate_seconds, 0);
        let final_sync = MigrationPlan::new(
            "a",
            "b",
            &migration(MigrationMode::FinalSync),
            None,
            Some(&journal),
        );
        let pending: Vec<Phase> = final_sync
            .phases
            .iter()
            .filter(|p| !p.done)
            .map(|p| p.phase)
            .collect();
        assert_eq!(pending[0], Phase::Provision);
        assert_eq!(pending[1], Phase::SourceStopped);
        assert!(!pending.contains(&Phase::DatabaseCopied));
    }

    #[test]
    fn a_journal_of_another_source_or_a_finished_move_is_ignored() {
        let mut journal = Journal::start("c", MigrationMode::Test, 1);
        journal.complete(Phase::DatabaseCopied, 2);
        let plan = MigrationPlan::new(
            "a",
            "b",
            &migration(MigrationMode::Test),
            None,
            Some(&journal),
        );
        assert!(plan.phases.iter().all(|p| !p.done));
        assert_eq!(plan.resumed_from_unix, None);
    }

    #[test]
    fn every_phase_reads_back_from_its_journal_word() {
        for mode in [MigrationMode::Test, MigrationMode::FinalSync] {
            for phase in Phase::sequence(mode) {
                assert_eq!(Phase::from_word(phase.word()), Some(*phase));
            }
        }
        assert_eq!(Phase::from_word("nonsense"), None);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(12), "12 s");
        assert_eq!(human_duration(200), "3 min 20 s");
        assert_eq!(human_duration(3900), "1 h 5 min");
    }
}
