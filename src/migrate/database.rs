//! Copying a database between servers, streamed through siteward, then verified table by table.
//!
//! The dump runs on the source, the restore on the target, and the bytes flow through this
//! process (compressed): the two servers never talk to each other nor hold keys to each other.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::progress::Meter;
use super::{Compression, SourceState};
use crate::plan::step::Engine;
use crate::spec::secret::Secret;
use crate::transport::{
    Command, IdentifierKind, QuoteError, Stdin, Transport, TransportError, validate_identifier,
};

const LOGIN: &str = include_str!("scripts/db_login.sh");
const DUMP: &str = include_str!("scripts/db_dump.sh");
const RESTORE: &str = include_str!("scripts/db_restore.sh");
const COMPRESSION: &str = include_str!("scripts/db_compression.sh");
const SQL: &str = include_str!("../apply/scripts/sql.sh");

/// The size of the in-memory pipe between the dump and the restore.
const PIPE_BUFFER: usize = 1 << 20;

/// Why a database could not be copied or verified.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A name could not be made part of a command.
    #[error("the database name cannot be used")]
    Name(#[from] QuoteError),
    /// A remote command could not run.
    #[error("{what} could not run on {endpoint}")]
    Transport {
        /// What was being done.
        what: String,
        /// The server.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<TransportError>,
    },
    /// A remote command exited with a non-zero status.
    #[error("{what} failed on {endpoint} with status {status}: {stderr}")]
    Failed {
        /// What was being done.
        what: String,
        /// The server.
        endpoint: String,
        /// The exit status.
        status: u32,
        /// Its stderr, trimmed.
        stderr: String,
    },
    /// The dump and the restore both failed.
    #[error("{dump}; and {restore}")]
    Both {
        /// The dump's failure.
        dump: Box<MigrateError>,
        /// The restore's failure.
        restore: Box<MigrateError>,
    },
    /// The database to copy does not exist on the source.
    #[error("database `{database}` does not exist on {endpoint}")]
    SourceMissing {
        /// The database.
        database: String,
        /// The source server.
        endpoint: String,
    },
    /// A server answered something siteward cannot use.
    #[error("{what} on {endpoint} gave an unexpected answer: {answer:?}")]
    Answer {
        /// What was being done.
        what: String,
        /// The server.
        endpoint: String,
        /// The offending answer.
        answer: String,
    },
    /// A table differs between source and target after the copy.
    #[error("table `{table}` differs after the copy: {detail}")]
    Mismatch {
        /// The table (`schema.table` on PostgreSQL).
        table: String,
        /// How it differs.
        detail: String,
    },
}

/// How siteward logs in to a server's database engine as its administrator.
#[derive(Debug, Clone)]
pub struct DbAdmin {
    /// The administrative user (`root`, `postgres`).
    pub user: String,
    /// Its password; `None` for socket (peer) authentication as root.
    pub password: Option<Secret>,
}

impl DbAdmin {
    /// An administrator authenticated by the server's socket (peer auth).
    pub fn socket(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: None,
        }
    }

    fn auth(&self) -> &'static str {
        if self.password.is_some() {
            "password"
        } else {
            "socket"
        }
    }

    /// The password line the scripts read first from stdin, or nothing.
    fn password_line(&self) -> Vec<u8> {
        self.password
            .as_ref()
            .map(|secret| format!("{}\n", secret.expose()).into_bytes())
            .unwrap_or_default()
    }

    fn login_args(&self, engine: Engine) -> [String; 3] {
        [
            engine_word(engine).into(),
            self.auth().into(),
            self.user.clone(),
        ]
    }
}

/// One table as verified on both servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableReport {
    /// The table (`schema.table` on PostgreSQL).
    pub name: String,
    /// Its row count, equal on both servers.
    pub rows: u64,
    /// Its content checksum, equal on both servers.
    pub checksum: String,
}

/// What a database copy moved, and the proof it arrived whole.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseCopyReport {
    /// The engine family.
    pub engine: Engine,
    /// The database.
    pub database: String,
    /// The compression on the wire.
    pub compression: Compression,
    /// Compressed bytes that went from the source to the target.
    pub bytes_on_wire: u64,
    /// Time of the dump and restore stream.
    pub transfer: Duration,
    /// Time of the verification.
    pub verification: Duration,
    /// Every base table, with rows and checksum (as copied to the target).
    pub tables: Vec<TableReport>,
    /// Tables that changed on a live source while it was copied (compared again by a copy
    /// from the quiet source).
    pub changed_on_source: Vec<String>,
    /// Whether every table matched (always `true` in a returned report: a mismatch is an error).
    pub verified: bool,
}

/// Copies database `name` from `source` to `target`, then verifies it.
///
/// # Guarantees
/// - The target's database is dropped and created again (MySQL/MariaDB with the source's
///   charset and collation; PostgreSQL with the source's encoding and locale, owned by the
///   target's previous owner) before loading, so running the copy again converges: nothing is
///   duplicated.
/// - The dump streams through siteward, compressed; the servers never talk to each other.
/// - DEFINER clauses of views, triggers, routines and events are removed (MySQL/MariaDB): the
///   objects belong to the target's administrator, so the source's users need not exist there.
/// - A failure of either side is an error; the target's database is then incomplete and must
///   not be taken as copied.
/// - The result is only `Ok` when every base table has the same row count and content
///   checksum on both servers; otherwise [`MigrateError::Mismatch`] names the table.
///
/// # Errors
/// An invalid name, a missing source database, a failed remote command, or a mismatch.
pub async fn copy_database(
    source: &impl Transport,
    target: &impl Transport,
    source_admin: &DbAdmin,
    target_admin: &DbAdmin,
    engine: Engine,
    name: &str,
) -> Result<DatabaseCopyReport, MigrateError> {
    let meter = Meter::none();
    let (ends, admins) = ((source, target), (source_admin, target_admin));
    copy_database_metered(ends, admins, engine, name, SourceState::Quiet, &meter).await
}

/// [`copy_database`], counting the bytes on the wire into `meter` as they go.
///
/// With a [`SourceState::Live`] source (the site still runs there), a table that changed on the
/// source during the copy cannot be compared with it: it is reported in `changed_on_source`,
/// and every other table must match exactly. What changed is told by MariaDB/MySQL's
/// per-table `UPDATE_TIME` against the server's clock before the dump, or on PostgreSQL by
/// checksumming every table before the dump as well. A quiet source is verified strictly, its
/// checksums taken while the copy streams.
///
/// # Errors
/// As [`copy_database`].
pub async fn copy_database_metered(
    (source, target): (&impl Transport, &impl Transport),
    (source_admin, target_admin): (&DbAdmin, &DbAdmin),
    engine: Engine,
    name: &str,
    source_state: SourceState,
    meter: &Meter,
) -> Result<DatabaseCopyReport, MigrateError> {
    validate_identifier(IdentifierKind::Database, name)?;
    let probe = probe(source, target).await?;
    let before = match source_state {
        SourceState::Live => Some(live_baseline(source, source_admin, engine, name).await?),
        SourceState::Quiet => None,
    };
    let role = recreate_target(source, target, source_admin, target_admin, engine, name).await?;
    let copy = Copy {
        source,
        target,
        source_admin,
        target_admin,
        engine,
        name,
        compression: probe.compression,
        role: role.as_deref(),
        statement_bytes: match engine {
            Engine::Mysql => statement_bytes(target, target_admin).await?,
            Engine::Postgres => 0,
        },
        meter,
    };
    let copied = match engine {
        Engine::Postgres => copy.whole(before).await?,
        Engine::Mysql => copy.in_parts(before, probe.target_cpus).await?,
    };
    let Copied {
        bytes_on_wire,
        tables,
        changed_on_source,
        transfer,
        verification,
    } = copied;
    let compression = probe.compression;
    tracing::info!(
        database = name,
        bytes = bytes_on_wire,
        ?transfer,
        tables = tables.len(),
        "database copied and verified"
    );
    Ok(DatabaseCopyReport {
        engine,
        database: name.to_owned(),
        compression,
        bytes_on_wire,
        transfer,
        verification,
        tables,
        changed_on_source,
        verified: true,
    })
}

/// Compares every base table of database `name` on `source` and `target`: row counts and
/// content checksums (MySQL/MariaDB: `CHECKSUM TABLE`; PostgreSQL: md5 of the rows' md5s).
///
/// # Errors
/// [`MigrateError::Mismatch`] naming the first table that differs or exists on one side only.
pub async fn verify_database(
    source: &impl Transport,
    target: &impl Transport,
    source_admin: &DbAdmin,
    target_admin: &DbAdmin,
    engine: Engine,
    name: &str,
) -> Result<Vec<TableReport>, MigrateError> {
    validate_identifier(IdentifierKind::Database, name)?;
    let (on_source, on_target) = tokio::join!(
        table_stats(source, source_admin, engine, name),
        table_stats(target, target_admin, engine, name),
    );
    compare(on_source?, on_target?)
}

/// The events (MariaDB/MySQL's own scheduled jobs) of database `name` that are enabled, by
/// name. PostgreSQL has none.
///
/// # Errors
/// A query that cannot run.
pub async fn enabled_events(
    transport: &impl Transport,
    admin: &DbAdmin,
    engine: Engine,
    name: &str,
) -> Result<Vec<String>, MigrateError> {
    validate_identifier(IdentifierKind::Database, name)?;
    if engine != Engine::Mysql {
        return Ok(Vec::new());
    }
    let query = format!(
        "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{name}' AND STATUS = 'ENABLED' ORDER BY EVENT_NAME;"
    );
    let answer = run_sql(transport, admin, engine, None, &query).await?;
    Ok(answer
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Enables or disables events of database `name` (MariaDB/MySQL; nothing on PostgreSQL).
///
/// # Guarantees
/// Idempotent: an event already in that state is left as it is; one that no longer exists is
/// skipped.
///
/// # Errors
/// A query that cannot run.
pub async fn set_events(
    transport: &impl Transport,
    admin: &DbAdmin,
    engine: Engine,
    name: &str,
    events: &[String],
    enabled: bool,
) -> Result<(), MigrateError> {
    validate_identifier(IdentifierKind::Database, name)?;
    if engine != Engine::Mysql || events.is_empty() {
        return Ok(());
    }
    let state = if enabled { "ENABLE" } else { "DISABLE" };
    let mut query = String::new();
    for event in events {
        let exists = format!(
            "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{name}' AND EVENT_NAME = '{}'",
            event.replace('\\', "\\\\").replace('\'', "''")
        );
        // ALTER EVENT fails for a missing event: only those that exist are altered.
        query.push_str(&format!(
            "SET @sw := IF(({exists}) > 0, 'ALTER EVENT `{name}`.`{}` {state}', 'DO 0');\nPREPARE sw FROM @sw; EXECUTE sw; DEALLOCATE PREPARE sw;\n",
            event.replace('`', "``").replace('\'', "''")
        ));
    }
    run_sql(transport, admin, engine, None, &query)
        .await
        .map(drop)
}

/// Table name → (rows, checksum).
type TableStats = BTreeMap<String, (u64, String)>;

/// What a live source's tables are compared against after the copy.
enum LiveBaseline {
    /// PostgreSQL: every table's stats before the dump (changed ones differ afterwards).
    Stats(TableStats),
    /// MariaDB/MySQL: the server's clock before the dump; a table's `UPDATE_TIME` (set at each
    /// commit that writes it) then names what changed, without a second full read of the data.
    Clock(u64),
}

async fn live_baseline(
    source: &impl Transport,
    admin: &DbAdmin,
    engine: Engine,
    name: &str,
) -> Result<LiveBaseline, MigrateError> {
    match engine {
        Engine::Postgres => Ok(LiveBaseline::Stats(
            table_stats(source, admin, engine, name).await?,
        )),
        Engine::Mysql => {
            let asked = (engine, None, "SELECT UNIX_TIMESTAMP();");
            let what = || "reading the database server's clock".to_owned();
            let parse = |answer: &str| answer.trim().parse().ok().map(LiveBaseline::Clock);
            query_parsed(source, admin, asked, what, parse).await
        }
    }
}

/// MariaDB/MySQL base tables of database `name` written since `since` (server clock, seconds;
/// one second of margin).
async fn updated_since(
    source: &impl Transport,
    admin: &DbAdmin,
    name: &str,
    since: u64,
) -> Result<Vec<String>, MigrateError> {
    let query = format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{name}' \
         AND TABLE_TYPE = 'BASE TABLE' AND UPDATE_TIME IS NOT NULL \
         AND UNIX_TIMESTAMP(UPDATE_TIME) >= {} ORDER BY TABLE_NAME;",
        since.saturating_sub(1)
    );
    let answer = run_sql(source, admin, Engine::Mysql, None, &query).await?;
    Ok(answer
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Tables whose stats differ before and after, or that exist on one side only.
fn changed_between(before: &TableStats, after: &TableStats) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter(|name| match (before.get(*name), after.get(*name)) {
            (Some(then), Some(now)) => then != now,
            _ => true,
        })
        .cloned()
        .collect()
}

/// A live source's tables compared with the target, except those that `changed` during the
/// copy: these are reported with the target's stats.
fn compare_excluding(
    after: TableStats,
    target: TableStats,
    changed: &[String],
) -> Result<Vec<TableReport>, MigrateError> {
    let mut stable = after;
    stable.retain(|name, _| !changed.contains(name));
    let mut target_rest = target.clone();
    target_rest.retain(|name, _| !changed.contains(name));
    let mut tables = compare(stable, target_rest)?;
    for name in changed {
        if let Some((rows, checksum)) = target.get(name) {
            tables.push(TableReport {
                name: name.clone(),
                rows: *rows,
                checksum: checksum.clone(),
            });
        }
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tables)
}

fn compare(source: TableStats, mut target: TableStats) -> Result<Vec<TableReport>, MigrateError> {
    let mut tables = Vec::with_capacity(source.len());
    for (name, (rows, checksum)) in source {
        let mismatch = |detail: String| MigrateError::Mismatch {
            table: name.clone(),
            detail,
        };
        let Some((target_rows, target_checksum)) = target.remove(&name) else {
            return Err(mismatch("missing on the target".into()));
        };
        if target_rows != rows {
            return Err(mismatch(format!(
                "{rows} rows on the source, {target_rows} on the target"
            )));
        }
        if target_checksum != checksum {
            return Err(mismatch(format!(
                "checksum {checksum} on the source, {target_checksum} on the target"
            )));
        }
        tables.push(TableReport {
            name,
            rows,
            checksum,
        });
    }
    match target.into_keys().next() {
        Some(table) => Err(MigrateError::Mismatch {
            table,
            detail: "exists on the target only".into(),
        }),
        None => Ok(tables),
    }
}

// --- the copy -----------------------------------------------------------------------------------

/// The most row dumps a MySQL/MariaDB copy runs side by side: one per core of the target (whose
/// database server does most of the work), up to this.
const MAX_ROW_STREAMS: usize = 4;

/// What a copy moved and how it was verified, before it becomes a report.
struct Copied {
    bytes_on_wire: u64,
    tables: Vec<TableReport>,
    changed_on_source: Vec<String>,
    transfer: Duration,
    verification: Duration,
}

/// What one dump sends (`db_dump.sh`'s third argument).
#[derive(Debug, Clone, Copy)]
enum Part {
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
    fn word(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Schema => "schema",
            Self::Rows => "rows",
            Self::Triggers => "triggers",
        }
    }
}

/// The rows of one group of tables, loaded and checksummed.
struct LoadedRows {
    bytes: u64,
    ended: Instant,
    on_target: TableStats,
    /// The source's stats of the group, taken right after its dump (a live source only).
    on_source: TableStats,
}

/// One database copy under way: both ends, how to log in to each, and where bytes are counted.
struct Copy<'a, S, T> {
    source: &'a S,
    target: &'a T,
    source_admin: &'a DbAdmin,
    target_admin: &'a DbAdmin,
    engine: Engine,
    name: &'a str,
    compression: Compression,
    /// The role owning the restored objects (PostgreSQL), when not the administrator.
    role: Option<&'a str>,
    /// The largest `INSERT` the rows are dumped in (MySQL/MariaDB).
    statement_bytes: u64,
    meter: &'a Meter,
}

impl<S: Transport, T: Transport> Copy<'_, S, T> {
    /// Streams one part of the dump into the target's database; returns the bytes on the wire.
    async fn stream_part(&self, part: Part, tables: &[String]) -> Result<u64, MigrateError> {
        let dump = Command::script(format!("{LOGIN}{DUMP}"))
            .args(self.source_admin.login_args(self.engine))
            .args([self.compression.word(), self.name, part.word()])
            .arg(self.statement_bytes.to_string())
            .args(tables.iter().cloned())
            .render()?;
        let restore = Command::script(format!("{LOGIN}{RESTORE}"))
            .args(self.target_admin.login_args(self.engine))
            .args([self.compression.word(), self.name, self.role.unwrap_or("")])
            .render()?;
        let endpoints = (
            self.source,
            self.source_admin,
            self.target,
            self.target_admin,
        );
        stream(endpoints, &dump, &restore, self.name, self.meter).await
    }

    /// The whole database in one stream (PostgreSQL: `pg_restore --single-transaction` takes
    /// one archive), then every table compared. A quiet source is checksummed while it streams.
    async fn whole(&self, before: Option<LiveBaseline>) -> Result<Copied, MigrateError> {
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

    /// MySQL/MariaDB in parts: the schema; then the rows, the tables split by size into up to
    /// `target_cpus` groups dumped and loaded side by side (a single `mysql` client waits for
    /// each statement, so one stream leaves the target's cores idle), each group checksummed on
    /// the target as soon as its rows are in; then the triggers. Each dump is
    /// `--single-transaction`; on a live source each group is its own snapshot (the quiet copy
    /// of a final sync is exact).
    async fn in_parts(
        &self,
        before: Option<LiveBaseline>,
        target_cpus: usize,
    ) -> Result<Copied, MigrateError> {
        let sizes = mysql_table_sizes(self.source, self.source_admin, self.name).await?;
        let groups = balanced_groups(sizes, target_cpus.clamp(1, MAX_ROW_STREAMS));
        let everything: Vec<String> = groups.iter().flatten().cloned().collect();
        let live = before.is_some();
        let started = Instant::now();
        let mut bytes_on_wire = self.stream_part(Part::Schema, &[]).await?;
        let quiet_source = async {
            match live {
                true => Ok(TableStats::new()),
                false => mysql_stats(self.source, self.source_admin, self.name, &everything).await,
            }
        };
        let loads =
            futures::future::join_all(groups.iter().map(|group| self.load_rows(group, live)));
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

    /// Streams the rows of `tables`, then checksums them on the target (and on a live source).
    async fn load_rows(&self, tables: &[String], live: bool) -> Result<LoadedRows, MigrateError> {
        let bytes = self.stream_part(Part::Rows, tables).await?;
        let ended = Instant::now();
        tracing::debug!(?tables, bytes, "rows streamed");
        let on_source = async {
            match live {
                true => mysql_stats(self.source, self.source_admin, self.name, tables).await,
                false => Ok(TableStats::new()),
            }
        };
        let (on_target, on_source) = tokio::join!(
            mysql_stats(self.target, self.target_admin, self.name, tables),
            on_source,
        );
        Ok(LoadedRows {
            bytes,
            ended,
            on_target: on_target?,
            on_source: on_source?,
        })
    }

    /// Fails when the target holds a base table the copy did not send.
    async fn no_other_tables_on_target(&self, sent: &[String]) -> Result<(), MigrateError> {
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
    async fn changed_on_source(
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

/// The smallest and largest `INSERT` statements the rows are dumped in: mysqldump's default,
/// and a size at which loading 1 GB takes ~10% less time than with the default (the server
/// parses and commits fewer, larger statements).
const STATEMENT_BYTES: (u64, u64) = (1 << 20, 8 << 20);

/// The largest `INSERT` to dump the rows in: half of what the target's server accepts
/// (`max_allowed_packet`), within [`STATEMENT_BYTES`].
async fn statement_bytes(target: &impl Transport, admin: &DbAdmin) -> Result<u64, MigrateError> {
    let asked = (Engine::Mysql, None, "SELECT @@max_allowed_packet;");
    let what = || "reading the largest statement the database server accepts".to_owned();
    let parse = |answer: &str| answer.trim().parse::<u64>().ok();
    let accepted = query_parsed(target, admin, asked, what, parse).await?;
    Ok((accepted / 2).clamp(STATEMENT_BYTES.0, STATEMENT_BYTES.1))
}

/// Tables split into at most `count` groups of about equal size, largest first (each into the
/// lightest group so far). No empty group.
fn balanced_groups(mut sizes: Vec<(String, u64)>, count: usize) -> Vec<Vec<String>> {
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

// --- the stream ---------------------------------------------------------------------------------

/// Runs the dump on the source and the restore on the target at once, the dump's stdout
/// feeding the restore's stdin through an in-memory pipe. Returns the bytes that went through.
async fn stream<S: Transport, T: Transport>(
    (source, source_admin, target, target_admin): (&S, &DbAdmin, &T, &DbAdmin),
    dump: &str,
    restore: &str,
    name: &str,
    meter: &Meter,
) -> Result<u64, MigrateError> {
    let (writer, reader) = tokio::io::duplex(PIPE_BUFFER);
    let mut counter = CountingWriter {
        inner: writer,
        bytes: 0,
        meter,
    };
    let dump_password = source_admin.password_line();
    let restore_input = std::io::Cursor::new(target_admin.password_line()).chain(reader);
    let (source_slot, target_slot) = crate::transport::reserve_pair(source, target)
        .await
        .map_err(|source_error| MigrateError::Transport {
            what: format!("opening the channels of the copy of database `{name}`"),
            endpoint: format!("{} and {}", source.endpoint(), target.endpoint()),
            source: Box::new(source_error),
        })?;
    let dumping = async {
        let exit = source
            .exec_streaming_in(
                source_slot,
                dump,
                Stdin::Bytes(&dump_password),
                &mut counter,
            )
            .await;
        // EOF for the restore, whatever happened to the dump.
        let _ = counter.inner.shutdown().await;
        drop(counter.inner);
        (exit, counter.bytes)
    };
    let restoring = target.exec_in(target_slot, restore, Stdin::reader(restore_input));
    let ((dumped, bytes), restored) = tokio::join!(dumping, restoring);
    let dump_what = format!("the dump of database `{name}`");
    let restore_what = format!("the restore of database `{name}`");
    let dump_result = checked(source.endpoint(), &dump_what, dumped);
    let restore_result = checked(target.endpoint(), &restore_what, restored);
    match (dump_result, restore_result) {
        (Ok(_), Ok(_)) => Ok(bytes),
        (Err(dump), Ok(_)) => Err(dump),
        (Ok(_), Err(restore)) => Err(restore),
        // A restore that stopped leaves the dump's output nowhere to go: the restore's error is
        // the cause.
        (Err(dump), Err(restore)) if lost_its_reader(&dump) => Err(restore),
        // Otherwise the dump failed or was cut off, truncating the restore's input: both are
        // told, the dump first.
        (Err(dump), Err(restore)) => Err(MigrateError::Both {
            dump: Box::new(dump),
            restore: Box::new(restore),
        }),
    }
}

/// Whether a dump failed only because what it printed could not be passed on.
fn lost_its_reader(dump: &MigrateError) -> bool {
    matches!(
        dump,
        MigrateError::Transport { source, .. }
            if matches!(**source, TransportError::Ssh(crate::transport::SshError::StdoutWrite { .. }))
    )
}

/// A writer that counts what goes through it.
struct CountingWriter<'m, W> {
    inner: W,
    bytes: u64,
    meter: &'m Meter,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CountingWriter<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &poll {
            self.bytes += *written as u64;
            self.meter.add(*written as u64);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Output of a finished command: what it printed, or why it failed.
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: u32,
    signal: Option<String>,
}

impl From<crate::transport::Exit> for Outcome {
    fn from(exit: crate::transport::Exit) -> Self {
        Self {
            stdout: Vec::new(),
            stderr: exit.stderr,
            status: exit.status,
            signal: exit.signal,
        }
    }
}

impl From<crate::transport::ExecOutput> for Outcome {
    fn from(output: crate::transport::ExecOutput) -> Self {
        Self {
            stdout: output.stdout,
            stderr: output.stderr,
            status: output.status,
            signal: output.signal,
        }
    }
}

/// The stdout of a command that ran and succeeded, or the error saying what failed where.
fn checked<O: Into<Outcome>>(
    endpoint: &str,
    what: &str,
    result: Result<O, TransportError>,
) -> Result<Vec<u8>, MigrateError> {
    let outcome: Outcome = result
        .map_err(|source| MigrateError::Transport {
            what: what.to_owned(),
            endpoint: endpoint.to_owned(),
            source: Box::new(source),
        })?
        .into();
    if outcome.status == 0 && outcome.signal.is_none() {
        return Ok(outcome.stdout);
    }
    Err(MigrateError::Failed {
        what: what.to_owned(),
        endpoint: endpoint.to_owned(),
        status: outcome.status,
        stderr: crate::transport::stderr_excerpt(&outcome.stderr),
    })
}

// --- preparing the target -----------------------------------------------------------------------

/// What the two servers offer the copy: the wire compression and the target's cores.
struct Probe {
    compression: Compression,
    target_cpus: usize,
}

/// zstd when both servers have it, else gzip; and how many cores the target has.
async fn probe(source: &impl Transport, target: &impl Transport) -> Result<Probe, MigrateError> {
    let command = Command::script(COMPRESSION).render()?;
    let what = "looking for zstd";
    let (on_source, on_target) = tokio::join!(
        source.exec(&command, Stdin::Empty),
        target.exec(&command, Stdin::Empty),
    );
    let on_source = checked(source.endpoint(), what, on_source)?;
    let on_target = checked(target.endpoint(), what, on_target)?;
    let (source_tool, _) = parse_probe(&on_source);
    let (target_tool, target_cpus) = parse_probe(&on_target);
    Ok(Probe {
        compression: Compression::shared(source_tool == "zstd", target_tool == "zstd"),
        target_cpus,
    })
}

/// `db_compression.sh`'s answer: its compressor, and its count of cores (1 when unknown).
fn parse_probe(answer: &[u8]) -> (String, usize) {
    let answer = String::from_utf8_lossy(answer);
    let mut words = answer.split_whitespace();
    let tool = words.next().unwrap_or_default().to_owned();
    let cpus = words.next().and_then(|cpus| cpus.parse().ok()).unwrap_or(1);
    (tool, cpus)
}

/// Drops and creates database `name` on the target, like the source's. Returns the role that
/// must own the restored objects (PostgreSQL, when not the administrator).
async fn recreate_target(
    source: &impl Transport,
    target: &impl Transport,
    source_admin: &DbAdmin,
    target_admin: &DbAdmin,
    engine: Engine,
    name: &str,
) -> Result<Option<String>, MigrateError> {
    let settings_query = sql::database_settings(engine, name);
    let settings = run_sql(source, source_admin, engine, None, &settings_query).await?;
    let settings = sql::parse_settings(&settings).ok_or_else(|| MigrateError::Answer {
        what: format!("reading the settings of database `{name}`"),
        endpoint: source.endpoint().to_owned(),
        answer: settings.clone(),
    })?;
    let Some(settings) = settings else {
        return Err(MigrateError::SourceMissing {
            database: name.to_owned(),
            endpoint: source.endpoint().to_owned(),
        });
    };
    let owner = match engine {
        Engine::Mysql => None,
        Engine::Postgres => target_owner(target, target_admin, name).await?,
    };
    let recreate = sql::recreate_database(engine, name, &settings, owner.as_deref());
    run_sql(target, target_admin, engine, None, &recreate).await?;
    Ok(owner.filter(|owner| *owner != target_admin.user))
}

/// The owner of database `name` on the target, when it exists (PostgreSQL).
async fn target_owner(
    target: &impl Transport,
    admin: &DbAdmin,
    name: &str,
) -> Result<Option<String>, MigrateError> {
    let answer = run_sql(target, admin, Engine::Postgres, None, &sql::owner(name)).await?;
    let owner = answer.trim();
    if owner.is_empty() {
        return Ok(None);
    }
    validate_identifier(IdentifierKind::DatabaseUser, owner)?;
    Ok(Some(owner.to_owned()))
}

/// Row counts and checksums of every base table of database `name`.
async fn table_stats(
    transport: &impl Transport,
    admin: &DbAdmin,
    engine: Engine,
    name: &str,
) -> Result<TableStats, MigrateError> {
    match engine {
        Engine::Postgres => {
            let asked = (engine, Some(name), sql::PG_TABLE_STATS);
            let what = || format!("checksumming the tables of database `{name}`");
            query_parsed(transport, admin, asked, what, sql::parse_pg_stats).await
        }
        Engine::Mysql => {
            let tables = mysql_table_list(transport, admin, name).await?;
            mysql_stats(transport, admin, name, &tables).await
        }
    }
}

/// The base tables of MySQL/MariaDB database `name`.
async fn mysql_table_list(
    transport: &impl Transport,
    admin: &DbAdmin,
    name: &str,
) -> Result<Vec<String>, MigrateError> {
    let query = sql::mysql_tables(name);
    let what = || format!("listing the tables of database `{name}`");
    let asked = (Engine::Mysql, None, query.as_str());
    query_parsed(transport, admin, asked, what, sql::parse_mysql_tables).await
}

/// The base tables of MySQL/MariaDB database `name` with their sizes on disk (bytes).
async fn mysql_table_sizes(
    transport: &impl Transport,
    admin: &DbAdmin,
    name: &str,
) -> Result<Vec<(String, u64)>, MigrateError> {
    let query = sql::mysql_table_sizes(name);
    let what = || format!("measuring the tables of database `{name}`");
    let asked = (Engine::Mysql, None, query.as_str());
    query_parsed(transport, admin, asked, what, sql::parse_mysql_table_sizes).await
}

/// Row counts and `CHECKSUM TABLE` of `tables` of MySQL/MariaDB database `name`.
async fn mysql_stats(
    transport: &impl Transport,
    admin: &DbAdmin,
    name: &str,
    tables: &[String],
) -> Result<TableStats, MigrateError> {
    if tables.is_empty() {
        return Ok(TableStats::new());
    }
    let query = sql::mysql_table_stats(name, tables);
    let what = || format!("checksumming the tables of database `{name}`");
    let parse = |answer: &str| sql::parse_mysql_stats(answer, tables);
    let asked = (Engine::Mysql, None, query.as_str());
    query_parsed(transport, admin, asked, what, parse).await
}

/// Runs a query as the administrator — `(engine, database, sql)` — and parses its answer; an
/// answer `parse` refuses is an error saying what was being done.
async fn query_parsed<T>(
    transport: &impl Transport,
    admin: &DbAdmin,
    (engine, database, query): (Engine, Option<&str>, &str),
    what: impl FnOnce() -> String,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, MigrateError> {
    let answer = run_sql(transport, admin, engine, database, query).await?;
    parse(&answer).ok_or_else(|| MigrateError::Answer {
        what: what(),
        endpoint: transport.endpoint().to_owned(),
        answer,
    })
}

/// Runs `sql` as the administrator (the executor's `sql.sh`) and returns its output.
async fn run_sql(
    transport: &impl Transport,
    admin: &DbAdmin,
    engine: Engine,
    database: Option<&str>,
    sql: &str,
) -> Result<String, MigrateError> {
    let command = Command::script(SQL)
        .args(admin.login_args(engine))
        .arg(database.unwrap_or(""))
        .render()?;
    let mut stdin = admin.password_line();
    stdin.extend_from_slice(sql.as_bytes());
    let output = transport.exec(&command, Stdin::Bytes(&stdin)).await;
    let what = format!("SQL on database `{}`", database.unwrap_or("(none)"));
    let stdout = checked(transport.endpoint(), &what, output)?;
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

fn engine_word(engine: Engine) -> &'static str {
    match engine {
        Engine::Mysql => "mysql",
        Engine::Postgres => "postgres",
    }
}

/// The SQL of the copy and its verification, and the parsing of the answers (pure).
mod sql {
    use super::{Engine, TableStats};

    /// A name validated by `validate_identifier`, quoted for MySQL (backticks).
    fn mysql_name(name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
    }

    /// A name quoted for PostgreSQL (double quotes).
    fn pg_name(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    /// A string literal for either engine (backslashes doubled for MySQL's default mode).
    fn literal(engine: Engine, value: &str) -> String {
        let value = value.replace('\'', "''");
        match engine {
            Engine::Mysql => format!("'{}'", value.replace('\\', "\\\\")),
            Engine::Postgres => format!("'{value}'"),
        }
    }

    /// The charset and collation (MySQL) or encoding, collate and ctype (PostgreSQL) of `name`.
    pub fn database_settings(engine: Engine, name: &str) -> String {
        let name = literal(engine, name);
        match engine {
            Engine::Mysql => format!(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
                 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {name};\n"
            ),
            Engine::Postgres => format!(
                "SELECT pg_encoding_to_char(encoding) || E'\\t' || datcollate || E'\\t' \
                 || datctype FROM pg_database WHERE datname = {name};\n"
            ),
        }
    }

    /// The settings line: `None` when malformed, `Some(None)` when the database is missing.
    /// Each setting is a plain word, so it can be written into SQL as it is.
    pub fn parse_settings(answer: &str) -> Option<Option<Vec<String>>> {
        let line = answer.trim_end_matches('\n');
        if line.is_empty() {
            return Some(None);
        }
        let plain = |word: &str| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
        };
        let words: Vec<String> = line.split('\t').map(str::to_owned).collect();
        (!line.contains('\n') && words.len() >= 2 && words.iter().all(|w| plain(w)))
            .then_some(Some(words))
    }

    /// Drops database `name` and creates it again with `settings`, owned by `owner` (PostgreSQL).
    pub fn recreate_database(
        engine: Engine,
        name: &str,
        settings: &[String],
        owner: Option<&str>,
    ) -> String {
        match engine {
            Engine::Mysql => {
                let name = mysql_name(name);
                format!(
                    "DROP DATABASE IF EXISTS {name};\n\
                     CREATE DATABASE {name} CHARACTER SET {} COLLATE {};\n",
                    settings[0], settings[1]
                )
            }
            Engine::Postgres => {
                let locale = |i: usize| settings.get(i).map_or("C", String::as_str);
                let owner = owner.map_or(String::new(), |o| format!(" OWNER {}", pg_name(o)));
                let name = pg_name(name);
                format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE);\n\
                     CREATE DATABASE {name} TEMPLATE template0 ENCODING '{}' LC_COLLATE '{}' \
                     LC_CTYPE '{}'{owner};\n",
                    settings[0],
                    locale(1),
                    locale(2)
                )
            }
        }
    }

    /// The owner of database `name` (PostgreSQL); no row when it does not exist.
    pub fn owner(name: &str) -> String {
        format!(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {};\n",
            literal(Engine::Postgres, name)
        )
    }

    /// Every base table of the connected database with its row count and the md5 of its rows'
    /// md5s in order, as `schema.table<TAB>rows<TAB>md5` lines: one query, no names from outside.
    pub const PG_TABLE_STATS: &str = "SELECT format('%I.%I', schemaname, tablename) || E'\\t' \
        || (xpath('/row/n/text()', x))[1]::text || E'\\t' || (xpath('/row/h/text()', x))[1]::text \
        FROM (SELECT schemaname, tablename, query_to_xml(format('SELECT count(*) AS n, \
        md5(coalesce(string_agg(md5(t::text), '''' ORDER BY md5(t::text)), '''')) AS h \
        FROM %I.%I AS t', schemaname, tablename), false, true, '') AS x FROM pg_tables \
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema')) AS stats ORDER BY 1;\n";

    /// `table<TAB>rows<TAB>checksum` lines into stats.
    pub fn parse_pg_stats(answer: &str) -> Option<TableStats> {
        answer
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| {
                let mut fields = line.rsplitn(3, '\t');
                let checksum = fields.next()?;
                let rows = fields.next()?.parse().ok()?;
                Some((fields.next()?.to_owned(), (rows, checksum.to_owned())))
            })
            .collect()
    }

    /// The base tables of database `name` (MySQL), one per line.
    pub fn mysql_tables(name: &str) -> String {
        format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} \
             AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME;\n",
            literal(Engine::Mysql, name)
        )
    }

    /// The base tables of database `name` (MySQL) with their data and index sizes, one per line.
    pub fn mysql_table_sizes(name: &str) -> String {
        format!(
            "SELECT TABLE_NAME, COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} \
             AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME;\n",
            literal(Engine::Mysql, name)
        )
    }

    /// `table<TAB>bytes` lines of [`mysql_table_sizes`].
    pub fn parse_mysql_table_sizes(answer: &str) -> Option<Vec<(String, u64)>> {
        answer
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| {
                let (table, bytes) = line.rsplit_once('\t')?;
                Some((unescape_batch(table)?, bytes.parse().ok()?))
            })
            .collect()
    }

    /// Table names from `mysql --batch` lines, where backslash, tab, newline and NUL are escaped.
    pub fn parse_mysql_tables(answer: &str) -> Option<Vec<String>> {
        answer
            .lines()
            .filter(|line| !line.is_empty())
            .map(unescape_batch)
            .collect()
    }

    fn unescape_batch(field: &str) -> Option<String> {
        let mut out = String::with_capacity(field.len());
        let mut chars = field.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            out.push(match chars.next()? {
                '\\' => '\\',
                't' => '\t',
                'n' => '\n',
                '0' => '\0',
                _ => return None,
            });
        }
        Some(out)
    }

    /// For each table, its row count then its `CHECKSUM TABLE` line.
    pub fn mysql_table_stats(name: &str, tables: &[String]) -> String {
        tables
            .iter()
            .map(|table| {
                let full = format!("{}.{}", mysql_name(name), mysql_name(table));
                format!("SELECT COUNT(*) FROM {full};\nCHECKSUM TABLE {full};\n")
            })
            .collect()
    }

    /// The answer of [`mysql_table_stats`]: a count line and a `db.table<TAB>checksum` line
    /// per table, in order.
    pub fn parse_mysql_stats(answer: &str, tables: &[String]) -> Option<TableStats> {
        let lines: Vec<&str> = answer.lines().collect();
        if lines.len() != tables.len() * 2 {
            return None;
        }
        tables
            .iter()
            .zip(lines.chunks(2))
            .map(|(table, pair)| {
                let rows = pair[0].trim().parse().ok()?;
                let checksum = pair[1].rsplit('\t').next()?;
                (checksum != "NULL").then(|| (table.clone(), (rows, checksum.to_owned())))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(entries: &[(&str, u64, &str)]) -> TableStats {
        entries
            .iter()
            .map(|(name, rows, sum)| (name.to_string(), (*rows, sum.to_string())))
            .collect()
    }

    fn names(groups: &[Vec<String>]) -> Vec<Vec<&str>> {
        groups
            .iter()
            .map(|group| group.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn tables_are_split_into_groups_of_about_equal_size() {
        let sizes = [("a", 50), ("b", 900), ("c", 400), ("d", 300), ("e", 250)]
            .map(|(name, size)| (name.to_owned(), size))
            .to_vec();
        let groups = balanced_groups(sizes, 2);
        assert_eq!(
            names(&groups),
            [vec!["b", "a"], vec!["c", "d", "e"]],
            "950 bytes each"
        );
    }

    #[test]
    fn no_group_is_empty_and_one_stream_takes_everything() {
        let sizes = vec![("only".to_owned(), 10)];
        assert_eq!(names(&balanced_groups(sizes.clone(), 4)), [vec!["only"]]);
        assert!(balanced_groups(Vec::new(), 4).is_empty());
        let two = vec![("x".to_owned(), 0), ("y".to_owned(), 0)];
        assert_eq!(names(&balanced_groups(two.clone(), 1)), [vec!["x", "y"]]);
        assert_eq!(names(&balanced_groups(two, 0)), [vec!["x", "y"]]);
    }

    #[test]
    fn the_probe_answer_names_the_compressor_and_the_cores() {
        assert_eq!(parse_probe(b"zstd 8\n"), ("zstd".to_owned(), 8));
        assert_eq!(parse_probe(b"gzip\n"), ("gzip".to_owned(), 1));
        assert_eq!(parse_probe(b""), (String::new(), 1));
    }

    #[test]
    fn table_sizes_are_read_with_escaped_names() {
        let parsed = sql::parse_mysql_table_sizes("a\\tb\t16384\nplain\t0\n").unwrap();
        assert_eq!(
            parsed,
            [("a\tb".to_owned(), 16384), ("plain".to_owned(), 0)]
        );
        assert!(sql::parse_mysql_table_sizes("broken\n").is_none());
    }

    #[test]
    fn equal_tables_are_reported_with_rows_and_checksums() {
        let both = stats(&[("audit", 2, "11"), ("products", 3, "22")]);
        let tables = compare(both.clone(), both).unwrap();
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[1].name, "products");
        assert_eq!(tables[1].rows, 3);
    }

    #[test]
    fn a_differing_checksum_names_the_table() {
        let source = stats(&[("audit", 2, "11"), ("products", 3, "22")]);
        let target = stats(&[("audit", 2, "11"), ("products", 3, "23")]);
        let error = compare(source, target).unwrap_err();
        assert!(matches!(error, MigrateError::Mismatch { table, .. } if table == "products"));
    }

    #[test]
    fn a_table_on_one_side_only_is_a_mismatch() {
        let source = stats(&[("audit", 2, "11")]);
        let target = stats(&[("audit", 2, "11"), ("extra", 0, "0")]);
        let error = compare(source, target).unwrap_err();
        assert!(matches!(error, MigrateError::Mismatch { table, .. } if table == "extra"));
    }

    #[test]
    fn mysql_stats_pair_counts_with_checksum_lines() {
        let tables = vec!["a".to_owned(), "b c".to_owned()];
        let answer = "5\nshop.a\t123\n0\nshop.b c\t0\n";
        let parsed = sql::parse_mysql_stats(answer, &tables).unwrap();
        assert_eq!(parsed["b c"], (0, "0".to_owned()));
        assert!(sql::parse_mysql_stats("5\n", &tables).is_none());
    }

    #[test]
    fn mysql_batch_escapes_in_table_names_are_undone() {
        let tables = sql::parse_mysql_tables("plain\ntab\\there\nback\\\\slash\n").unwrap();
        assert_eq!(tables, ["plain", "tab\there", "back\\slash"]);
    }

    #[test]
    fn postgres_stats_split_from_the_right() {
        let parsed = sql::parse_pg_stats("public.\"a\tb\"\t4\tabc\n").unwrap();
        assert_eq!(parsed["public.\"a\tb\""], (4, "abc".to_owned()));
    }

    #[test]
    fn settings_that_are_not_plain_words_are_refused() {
        assert_eq!(sql::parse_settings(""), Some(None));
        let plain = sql::parse_settings("utf8mb4\tutf8mb4_unicode_ci\n").unwrap();
        assert_eq!(plain.unwrap()[1], "utf8mb4_unicode_ci");
        assert_eq!(sql::parse_settings("utf8mb4\tx'; DROP\n"), None);
    }

    #[test]
    fn recreating_a_postgres_database_keeps_its_owner() {
        let settings = [
            "UTF8".to_owned(),
            "C.UTF-8".to_owned(),
            "C.UTF-8".to_owned(),
        ];
        let sql = sql::recreate_database(Engine::Postgres, "shop", &settings, Some("shop_app"));
        assert!(sql.contains("DROP DATABASE IF EXISTS \"shop\" WITH (FORCE);"));
        assert!(sql.contains("LC_CTYPE 'C.UTF-8' OWNER \"shop_app\";"));
    }

    #[test]
    fn a_live_copy_names_the_tables_that_changed_during_it_and_checks_the_others() {
        let before = stats(&[("orders", 3, "a"), ("runs", 5, "b"), ("gone", 1, "c")]);
        let after = stats(&[("orders", 3, "a"), ("runs", 6, "b2"), ("new", 1, "d")]);
        let target = stats(&[("orders", 3, "a"), ("runs", 5, "b"), ("gone", 1, "c")]);
        let changed = super::changed_between(&before, &after);
        assert_eq!(changed, vec!["gone", "new", "runs"]);
        let tables = super::compare_excluding(after, target, &changed).unwrap();
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["gone", "orders", "runs"]);
    }

    #[test]
    fn a_live_copy_still_fails_on_a_table_that_did_not_change_on_the_source() {
        let before = stats(&[("orders", 3, "a")]);
        let after = stats(&[("orders", 3, "a")]);
        let target = stats(&[("orders", 2, "x")]);
        let changed = super::changed_between(&before, &after);
        assert!(super::compare_excluding(after, target, &changed).is_err());
    }
}
