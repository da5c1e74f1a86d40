//! The migration report: what moved, how much, the proofs it arrived whole, time per phase,
//! every validation check, and what to change outside siteward for the cutover.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::plan::migration::{Phase, human_duration, mode_word};
use crate::spec::site::{MigrationMode, OnSource};

/// One phase as it ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseRun {
    pub phase: Phase,
    /// `done`, `already-done` (from the journal of an earlier run) or `failed`.
    pub status: String,
    pub millis: u64,
}

/// A database copy as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseMoved {
    /// The copy made while the source stayed live, or the final sync.
    pub phase: Phase,
    pub engine: String,
    pub name: String,
    pub compression: String,
    pub bytes_on_wire: u64,
    pub transfer_millis: u64,
    pub verification_millis: u64,
    /// `(table, rows, checksum)` as copied, equal on both servers but for `changed_on_source`.
    pub tables: Vec<(String, u64, String)>,
    /// Tables that changed on the live source during the copy (compared by the final sync).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_on_source: Vec<String>,
    /// Schema objects (columns, indexes, keys, triggers, routines, views, events) equal on both.
    #[serde(default)]
    pub schema_objects: usize,
}

/// A storage copy as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageMoved {
    /// The copy made while the source stayed live, or the final sync.
    pub phase: Phase,
    pub paths: Vec<String>,
    /// Paths the spec names that did not exist on the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent_on_source: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub symlinks: u64,
    pub directories: u64,
    pub bytes_on_wire: u64,
    pub compression: String,
    /// sha256 of the sorted listing (path, type, mode, size, content BLAKE2b-256) on the target.
    pub checksum: String,
    /// Paths that changed on the live source during the copy (compared by the final sync).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_on_source: Vec<String>,
    pub millis: u64,
}

/// One validation check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub millis: u64,
}

/// Everything a migration run did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationReport {
    pub format_version: u32,
    pub site: String,
    pub domain: String,
    pub source: String,
    pub source_address: String,
    pub target: String,
    pub target_address: String,
    pub mode: MigrationMode,
    pub on_source: OnSource,
    /// Whether this run completed what its mode asks.
    pub ok: bool,
    pub phases: Vec<PhaseRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub database: Vec<DatabaseMoved>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<StorageMoved>,
    /// The site's Redis keys moved in the final sync (or why they were left alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<crate::migrate::redis::RedisMoved>,
    /// `.env` keys that came from the source (values never reported).
    pub env_keys_from_source: usize,
    /// The backups of the source taken before the final sync stopped it and before
    /// `onSource: remove` deleted it: `when: snapshot ids`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
    pub checks: Vec<CheckResult>,
    /// Set when a failure after the source was stopped made it the live runner again.
    pub source_brought_back: bool,
    pub ready_for_cutover: bool,
    /// What to do next, outside siteward or with it.
    pub next: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub millis: u64,
}

/// The report format version.
pub const REPORT_VERSION: u32 = 1;

impl MigrationReport {
    /// The report as Markdown (for pull requests, tickets and people).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let verdict = if !self.ok {
            "FAILED"
        } else if self.ready_for_cutover {
            "ready for cutover"
        } else {
            "tested"
        };
        let _ = writeln!(
            out,
            "## Migration of `{}` ({}) from `{}` to `{}`: {verdict}\n",
            self.site, self.domain, self.source, self.target
        );
        let _ = writeln!(
            out,
            "Mode `{}`, on the source: `{}`. Took {}.\n",
            mode_word(self.mode),
            on_source_word(self.on_source),
            human_duration(self.millis / 1000)
        );
        if let Some(error) = &self.error {
            let _ = writeln!(out, "**Error:** {error}\n");
        }
        if self.source_brought_back {
            let _ = writeln!(
                out,
                "**The source `{}` was brought back as the live runner** (workers, crons, maintenance off).\n",
                self.source
            );
        }
        self.phases_markdown(&mut out);
        if !self.snapshots.is_empty() {
            let _ = writeln!(out, "### Snapshots of the source\n");
            for snapshot in &self.snapshots {
                let _ = writeln!(out, "- {snapshot}");
            }
            out.push('\n');
        }
        self.data_markdown(&mut out);
        self.checks_markdown(&mut out);
        if !self.next.is_empty() {
            let heading = if self.ready_for_cutover {
                "### Ready for cutover"
            } else {
                "### Next"
            };
            let _ = writeln!(out, "{heading}\n");
            for line in &self.next {
                let _ = writeln!(out, "- {line}");
            }
        }
        out
    }

    fn phases_markdown(&self, out: &mut String) {
        let _ = writeln!(out, "| Phase | Status | Time |\n|---|---|---|");
        for phase in &self.phases {
            let _ = writeln!(
                out,
                "| {} | {} | {} ms |",
                phase.phase.word(),
                phase.status,
                phase.millis
            );
        }
        out.push('\n');
    }

    fn data_markdown(&self, out: &mut String) {
        for db in &self.database {
            let _ = writeln!(
                out,
                "**Database** `{}` ({}, {}): {} tables, {} rows, {} on the wire ({}), transfer {} ms, verification {} ms; row counts and checksums equal on both servers, and {} schema objects.\n",
                db.name,
                db.engine,
                db.phase.word(),
                db.tables.len(),
                db.tables.iter().map(|t| t.1).sum::<u64>(),
                super::preflight::human_bytes(db.bytes_on_wire),
                db.compression,
                db.transfer_millis,
                db.verification_millis,
                db.schema_objects
            );
            let tables: Vec<String> = db
                .changed_on_source
                .iter()
                .map(|t| format!("`{t}`"))
                .collect();
            changed_on_source_markdown(out, &tables);
            if !db.tables.is_empty() {
                let _ = writeln!(out, "| Table | Rows | Checksum |\n|---|---|---|");
                for (table, rows, checksum) in &db.tables {
                    let _ = writeln!(out, "| `{table}` | {rows} | `{checksum}` |");
                }
                out.push('\n');
            }
        }
        for storage in &self.storage {
            let _ = writeln!(
                out,
                "**Storage** ({}) {}: {} files ({}), {} symlinks, {} directories, {} on the wire ({}), {} ms; per-file BLAKE2b-256 equal, listing checksum `{}`.\n",
                storage.phase.word(),
                storage
                    .paths
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                storage.files,
                super::preflight::human_bytes(storage.bytes),
                storage.symlinks,
                storage.directories,
                super::preflight::human_bytes(storage.bytes_on_wire),
                storage.compression,
                storage.millis,
                storage.checksum
            );
            changed_on_source_markdown(out, &storage.changed_on_source);
            if !storage.absent_on_source.is_empty() {
                let _ = writeln!(
                    out,
                    "Not on the source (nothing to copy): {}.\n",
                    storage.absent_on_source.join(", ")
                );
            }
        }
        if let Some(redis) = &self.redis {
            let _ = match &redis.left_alone {
                Some(why) => writeln!(out, "**Redis** (redis-synced): nothing moved: {why}.\n"),
                None => writeln!(
                    out,
                    "**Redis** (redis-synced): {} keys ({}) from {} to {}, TTLs kept, {} ms; the target holds exactly these under the site's prefixes.\n",
                    redis.keys,
                    super::preflight::human_bytes(redis.bytes),
                    redis.source,
                    redis.target,
                    redis.millis
                ),
            };
        }
        if self.env_keys_from_source > 0 {
            let _ = writeln!(
                out,
                "**.env**: {} keys from the source, the spec's keys applied on top (values not shown).\n",
                self.env_keys_from_source
            );
        }
    }

    fn checks_markdown(&self, out: &mut String) {
        if self.checks.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### Validation of `{}`\n\n| Check | Result | Detail |\n|---|---|---|",
            self.target
        );
        for check in &self.checks {
            let mark = if check.ok { "pass" } else { "**FAIL**" };
            let _ = writeln!(
                out,
                "| {} | {mark} | {} |",
                check.name,
                check.detail.replace('|', "\\|").replace('\n', " ")
            );
        }
        out.push('\n');
    }

    /// What to do next, once the run is over.
    pub fn next_steps(&mut self, domains: &[String]) {
        let names = domains.join(", ");
        self.next = if !self.ok {
            vec![
                "fix the cause above and run `siteward apply` again: the migration resumes from its journal".into(),
            ]
        } else if self.ready_for_cutover {
            vec![
                format!(
                    "point DNS for {names} at {} (`{}`), or switch the reverse proxy's upstream from {} to {}",
                    self.target_address, self.target, self.source_address, self.target_address
                ),
                format!(
                    "the source `{}` is {}",
                    self.source,
                    match self.on_source {
                        OnSource::Keep =>
                            "kept as it was: in maintenance, its crons and workers off",
                        OnSource::Stop =>
                            "no longer serving the site (vhost and pool removed); its files and database are kept",
                        OnSource::Remove => "cleared of the site, its database and its users",
                    }
                ),
            ]
        } else {
            vec![
                format!(
                    "try the new home without touching DNS: `curl --resolve {}:80:{} http://{}/`",
                    domains.first().map_or("", String::as_str),
                    self.target_address,
                    domains.first().map_or("", String::as_str)
                ),
                format!(
                    "when satisfied, set `migration.mode: final-sync` in the spec and apply: `{}` stops, the data is synced again and `{}` takes over",
                    self.source, self.target
                ),
            ]
        };
    }
}

/// The line naming what changed on a live source while it was copied, when anything did.
fn changed_on_source_markdown(out: &mut String, names: &[String]) {
    if !names.is_empty() {
        let _ = writeln!(
            out,
            "Changed on the live source during the copy (not compared; the final sync copies them from the quiet source): {}.\n",
            names.join(", ")
        );
    }
}

fn on_source_word(on_source: OnSource) -> &'static str {
    match on_source {
        OnSource::Keep => "keep",
        OnSource::Stop => "stop",
        OnSource::Remove => "remove",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> MigrationReport {
        MigrationReport {
            format_version: REPORT_VERSION,
            site: "shop".into(),
            domain: "shop.test".into(),
            source: "a".into(),
            source_address: "10.0.0.1".into(),
            target: "b".into(),
            target_address: "10.0.0.2".into(),
            mode: MigrationMode::FinalSync,
            on_source: OnSource::Stop,
            ok: true,
            phases: vec![PhaseRun {
                phase: Phase::DatabaseCopied,
                status: "done".into(),
                millis: 12,
            }],
            database: vec![DatabaseMoved {
                phase: Phase::DatabaseCopied,
                engine: "mysql".into(),
                name: "shop".into(),
                compression: "zstd".into(),
                bytes_on_wire: 2048,
                transfer_millis: 5,
                verification_millis: 3,
                tables: vec![("orders".into(), 3, "123".into())],
                changed_on_source: Vec::new(),
                schema_objects: 9,
            }],
            storage: Vec::new(),
            redis: None,
            env_keys_from_source: 4,
            snapshots: Vec::new(),
            checks: vec![CheckResult {
                name: "http".into(),
                ok: true,
                detail: "GET /up → 200".into(),
                millis: 4,
            }],
            source_brought_back: false,
            ready_for_cutover: true,
            next: Vec::new(),
            error: None,
            millis: 61_000,
        }
    }

    #[test]
    fn a_finished_final_sync_says_ready_for_cutover_and_what_to_change() {
        let mut report = report();
        report.next_steps(&["shop.test".into(), "www.shop.test".into()]);
        let text = report.markdown();
        assert!(text.contains("ready for cutover"), "{text}");
        assert!(
            text.contains("point DNS for shop.test, www.shop.test at 10.0.0.2"),
            "{text}"
        );
        assert!(text.contains("| `orders` | 3 | `123` |"), "{text}");
        assert!(text.contains("| http | pass |"), "{text}");
    }

    #[test]
    fn the_redis_keys_moved_or_left_alone_are_told() {
        let mut report = report();
        report.redis = Some(crate::migrate::redis::RedisMoved {
            source: "127.0.0.1:6379 (database 0)".into(),
            target: "127.0.0.1:6379 (database 0)".into(),
            keys: 12,
            bytes: 2048,
            left_alone: None,
            millis: 40,
        });
        let text = report.markdown();
        assert!(
            text.contains(
                "**Redis** (redis-synced): 12 keys (2.0 KiB) from 127.0.0.1:6379 (database 0)"
            ),
            "{text}"
        );
        report.redis = Some(crate::migrate::redis::RedisMoved {
            left_alone: Some(
                "both servers use the Redis at r:6379 (database 0): shared, left alone".into(),
            ),
            ..Default::default()
        });
        assert!(
            report
                .markdown()
                .contains("nothing moved: both servers use")
        );
    }

    #[test]
    fn a_failed_run_says_how_to_resume() {
        let mut report = report();
        report.ok = false;
        report.ready_for_cutover = false;
        report.error = Some("the dump failed".into());
        report.next_steps(&["shop.test".into()]);
        let text = report.markdown();
        assert!(text.contains("FAILED"));
        assert!(text.contains("resumes from its journal"));
    }
}
