//! One database copy under way: the schema, the rows in balanced groups side by side, then
//! the triggers, each group checksummed as soon as its rows are in.

use super::rows::Loader;
use super::stream::{Ends, stream};
use super::*;

/// The most row dumps a MySQL/MariaDB copy runs side by side: one per core of the target (whose
/// database server does most of the work), up to this.
pub(super) const MAX_ROW_STREAMS: usize = 4;

/// What a copy moved and how it was verified, before it becomes a report.
pub(super) struct Copied {
    pub(super) bytes_on_wire: u64,
    pub(super) tables: Vec<TableReport>,
    pub(super) changed_on_source: Vec<String>,
    pub(super) transfer: Duration,
    pub(super) verification: Duration,
}

/// What one dump sends (`db_dump.sh`'s third argument).
#[derive(Debug, Clone, Copy)]
pub(super) enum Part {
    /// Everything in one stream (PostgreSQL's custom-format archive).
    All,
    /// The tables without their rows, the views, routines and events.
    Schema,
    /// The rows of the tables named.
    Rows,
    /// The triggers, created once the rows are in, so that loading fires none of them.
    Triggers,
}

impl Part {
    pub(super) fn word(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Schema => "schema",
            Self::Rows => "rows",
            Self::Triggers => "triggers",
        }
    }

    /// The character set the restoring client reads this part in: the one it was dumped in.
    pub(super) fn client_charset(self) -> &'static str {
        match self {
            Self::Rows => "binary",
            Self::All | Self::Schema | Self::Triggers => "utf8mb4",
        }
    }
}

/// The rows of one group of tables, loaded and checksummed.
pub(super) struct LoadedRows {
    pub(super) bytes: u64,
    pub(super) ended: Instant,
    pub(super) on_target: TableStats,
    /// The source's stats of the group, taken right after its dump (a live source only).
    pub(super) on_source: TableStats,
}

/// One database copy under way: both ends, how to log in to each, and where bytes are counted.
pub(super) struct Copy<'a, S, T> {
    pub(super) source: &'a S,
    pub(super) target: &'a T,
    pub(super) source_admin: &'a DbAdmin,
    pub(super) target_admin: &'a DbAdmin,
    pub(super) engine: Engine,
    pub(super) name: &'a str,
    pub(super) compression: Compression,
    /// The role owning the restored objects (PostgreSQL), when not the administrator.
    pub(super) role: Option<&'a str>,
    /// The largest `INSERT` the rows are dumped in (MySQL/MariaDB).
    pub(super) statement_bytes: u64,
    /// Connections building PostgreSQL's indexes and constraints after the rows.
    pub(super) index_jobs: usize,
    pub(super) meter: &'a Meter,
}

impl<S: Transport, T: Transport> Copy<'_, S, T> {
    /// Streams one part of the dump into the target's database; returns the bytes on the wire.
    pub(super) async fn stream_part(
        &self,
        part: Part,
        tables: &[String],
    ) -> Result<u64, MigrateError> {
        let dump = Command::script(format!("{LOGIN}{DUMP}"))
            .args(self.source_admin.login_args(self.engine))
            .args([self.compression.word(), self.name, part.word()])
            .arg(self.statement_bytes.to_string())
            .args(tables.iter().cloned())
            .render()?;
        let restore = Command::script(format!("{LOGIN}{RESTORE}"))
            .args(self.target_admin.login_args(self.engine))
            .args([self.compression.word(), self.name, self.role.unwrap_or("")])
            .arg(part.client_charset())
            .arg(self.index_jobs.to_string())
            .render()?;
        let ends = Ends {
            dump: &dump,
            dump_input: &[],
            restore: &restore,
            restore_prelude: &[],
        };
        Ok(stream(self.endpoints(), ends, self.name, self.meter)
            .await?
            .bytes)
    }

    /// Both servers with their administrators, as a stream takes them.
    pub(super) fn endpoints(&self) -> (&S, &DbAdmin, &T, &DbAdmin) {
        (
            self.source,
            self.source_admin,
            self.target,
            self.target_admin,
        )
    }

    /// The whole database in one stream (PostgreSQL: `pg_restore --single-transaction` takes
    /// one archive), then every table compared. A quiet source is checksummed while it streams.
    pub(super) async fn whole(&self, before: Option<LiveBaseline>) -> Result<Copied, MigrateError> {
        let started = Instant::now();
        let (source, target) = (self.source, self.target);
        let (engine, name) = (self.engine, self.name);
        let (bytes_on_wire, on_source, transfer) = match &before {
            None => {
                let (streamed, on_source) = tokio::join!(
                    async {
                        let bytes = self.stream_part(Part::All, &[]).await;
                        (bytes, started.elapsed())
                    },
                    table_stats(source, self.source_admin, engine, name),
                );
                let (bytes, transfer) = streamed;
                (bytes?, Some(on_source?), transfer)
            }
            Some(_) => {
                let bytes = self.stream_part(Part::All, &[]).await?;
                (bytes, None, started.elapsed())
            }
        };
        let verifying = Instant::now();
        let (on_source, on_target) = match on_source {
            Some(on_source) => {
                let on_target = table_stats(target, self.target_admin, engine, name).await?;
                (on_source, on_target)
            }
            None => {
                let (after, on_target) = tokio::join!(
                    table_stats(source, self.source_admin, engine, name),
                    table_stats(target, self.target_admin, engine, name),
                );
                (after?, on_target?)
            }
        };
        let changed_on_source = self.changed_on_source(before, &on_source).await?;
        let tables = compare_excluding(on_source, on_target, &changed_on_source)?;
        Ok(Copied {
            bytes_on_wire,
            tables,
            changed_on_source,
            transfer,
            verification: verifying.elapsed(),
        })
    }

    /// MySQL/MariaDB in parts: the schema (the large tables' secondary and foreign keys then
    /// taken off, see [`super::rows`]); then the rows, the tables split by size into up to
    /// `target_cpus` groups dumped and loaded side by side (a single `mysql` client waits for
    /// each statement, so one stream leaves the target's cores idle), each group checksummed on
    /// the target as soon as its rows are in; then the triggers. Each dump is
    /// `--single-transaction`; on a live source each group is its own snapshot (the quiet copy
    /// of a final sync is exact).
    pub(super) async fn in_parts(
        &self,
        before: Option<LiveBaseline>,
        target_cpus: usize,
    ) -> Result<Copied, MigrateError> {
        let sizes = mysql_table_sizes(self.source, self.source_admin, self.name).await?;
        let groups = balanced_groups(sizes.clone(), target_cpus.clamp(1, MAX_ROW_STREAMS));
        let everything: Vec<String> = groups.iter().flatten().cloned().collect();
        let live = before.is_some();
        let started = Instant::now();
        let mut bytes_on_wire = self.stream_part(Part::Schema, &[]).await?;
        let loader = &self.loader(&sizes).await?;
        let quiet_source = async {
            match live {
                true => Ok(TableStats::new()),
                false => mysql_stats(self.source, self.source_admin, self.name, &everything).await,
            }
        };
        let loads = groups
            .iter()
            .map(|group| self.load_rows(group, live, loader));
        let loads = futures::future::join_all(loads);
        let (loaded, quiet_source) = tokio::join!(loads, quiet_source);
        let (mut on_source, mut on_target) = (quiet_source?, TableStats::new());
        let mut rows_ended = started;
        for load in loaded {
            let load = load?;
            bytes_on_wire += load.bytes;
            rows_ended = rows_ended.max(load.ended);
            on_source.extend(load.on_source);
            on_target.extend(load.on_target);
        }
        let triggers = Instant::now();
        self.add_foreign_keys(loader).await?;
        bytes_on_wire += self.stream_part(Part::Triggers, &[]).await?;
        let transfer = (rows_ended - started) + triggers.elapsed();
        self.no_other_tables_on_target(&everything).await?;
        let changed_on_source = self.changed_on_source(before, &on_source).await?;
        let tables = compare_excluding(on_source, on_target, &changed_on_source)?;
        Ok(Copied {
            bytes_on_wire,
            tables,
            changed_on_source,
            transfer,
            verification: started.elapsed().saturating_sub(transfer),
        })
    }

    /// Streams the rows of `tables` (as data or as `INSERT`s, as `loader` says), then
    /// checksums them on the target (and on a live source).
    pub(super) async fn load_rows(
        &self,
        tables: &[String],
        live: bool,
        loader: &Loader,
    ) -> Result<LoadedRows, MigrateError> {
        let (as_data, as_inserts) = loader.split(tables);
        let mut bytes = 0;
        if !as_data.is_empty() {
            bytes += self.load_data(&as_data, loader).await?;
        }
        if !as_inserts.is_empty() {
            bytes += self.stream_part(Part::Rows, &as_inserts).await?;
        }
        tracing::debug!(?tables, bytes, "rows streamed");
        // A has sent the group: a live source is checksummed while B still builds the keys of
        // the tables sent as INSERTs, then checksums its copy.
        let on_target = async {
            self.add_indexes(&as_inserts, loader).await?;
            let ended = Instant::now();
            let stats = mysql_stats(self.target, self.target_admin, self.name, tables).await?;
            Ok::<_, MigrateError>((ended, stats))
        };
        let on_source = async {
            match live {
                true => mysql_stats(self.source, self.source_admin, self.name, tables).await,
                false => Ok(TableStats::new()),
            }
        };
        let (on_target, on_source) = tokio::join!(on_target, on_source);
        let (ended, on_target) = on_target?;
        Ok(LoadedRows {
            bytes,
            ended,
            on_target,
            on_source: on_source?,
        })
    }

    /// Fails when the target holds a base table the copy did not send.
    pub(super) async fn no_other_tables_on_target(
        &self,
        sent: &[String],
    ) -> Result<(), MigrateError> {
        let on_target = mysql_table_list(self.target, self.target_admin, self.name).await?;
        match on_target.into_iter().find(|table| !sent.contains(table)) {
            Some(table) => Err(MigrateError::Mismatch {
                table,
                detail: "exists on the target only".into(),
            }),
            None => Ok(()),
        }
    }

    /// The tables a live source wrote while it was copied (none for a quiet one).
    pub(super) async fn changed_on_source(
        &self,
        before: Option<LiveBaseline>,
        after: &TableStats,
    ) -> Result<Vec<String>, MigrateError> {
        match before {
            None => Ok(Vec::new()),
            Some(LiveBaseline::Stats(before)) => Ok(changed_between(&before, after)),
            Some(LiveBaseline::Clock(since)) => {
                updated_since(self.source, self.source_admin, self.name, since).await
            }
        }
    }
}

/// The variable that sets how many connections build PostgreSQL's indexes and constraints.
pub const INDEX_JOBS_VARIABLE: &str = "SITEWARD_INDEX_JOBS";

/// How many connections build PostgreSQL's indexes and constraints on a target with
/// `target_cpus` cores: half of them, up to 4 (one on two cores: measured there, two builders
/// sharing two cores with the restore were slower than one), unless [`INDEX_JOBS_VARIABLE`]
/// says a number from 1 to 16.
pub(super) fn index_jobs(target_cpus: usize, told: Option<&str>) -> usize {
    match told.and_then(|told| told.trim().parse::<usize>().ok()) {
        Some(jobs) if (1..=16).contains(&jobs) => jobs,
        _ => (target_cpus / 2).clamp(1, 4),
    }
}

/// The smallest and largest `INSERT` statements the rows are dumped in: mysqldump's default,
/// and a size at which loading 1 GB takes ~10% less time than with the default (the server
/// parses and commits fewer, larger statements).
pub(super) const STATEMENT_BYTES: (u64, u64) = (1 << 20, 8 << 20);

/// The largest `INSERT` to dump the rows in: half of what the target's server accepts
/// (`max_allowed_packet`), within [`STATEMENT_BYTES`].
pub(super) async fn statement_bytes(
    target: &impl Transport,
    admin: &DbAdmin,
) -> Result<u64, MigrateError> {
    let asked = (Engine::Mysql, None, "SELECT @@max_allowed_packet;");
    let what = || "reading the largest statement the database server accepts".to_owned();
    let parse = |answer: &str| answer.trim().parse::<u64>().ok();
    let accepted = query_parsed(target, admin, asked, what, parse).await?;
    Ok((accepted / 2).clamp(STATEMENT_BYTES.0, STATEMENT_BYTES.1))
}

/// Tables split into at most `count` groups of about equal size, largest first (each into the
/// lightest group so far). No empty group.
pub(super) fn balanced_groups(mut sizes: Vec<(String, u64)>, count: usize) -> Vec<Vec<String>> {
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut groups: Vec<(u64, Vec<String>)> = vec![(0, Vec::new()); count.max(1)];
    for (table, size) in sizes {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(total, tables)| (*total, tables.len()))
            .expect("at least one group");
        lightest.0 += size;
        lightest.1.push(table);
    }
    groups
        .into_iter()
        .map(|(_, tables)| tables)
        .filter(|tables| !tables.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_builders_are_half_the_cores_unless_a_sane_number_is_told() {
        assert_eq!(index_jobs(1, None), 1);
        assert_eq!(index_jobs(2, None), 1);
        assert_eq!(index_jobs(6, None), 3);
        assert_eq!(index_jobs(64, None), 4);
        assert_eq!(index_jobs(2, Some(" 3 ")), 3);
        assert_eq!(index_jobs(8, Some("0")), 4);
        assert_eq!(index_jobs(8, Some("many")), 4);
        assert_eq!(index_jobs(8, Some("17")), 4);
    }
}
