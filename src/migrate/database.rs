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

use super::SourceState;
use super::progress::Meter;
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

/// How the dump is compressed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `zstd`, when both servers have it.
    Zstd,
    /// `gzip -1` otherwise.
    Gzip,
}

impl Compression {
    fn word(self) -> &'static str {
        match self {
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
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
    let compression = choose_compression(source, target).await?;
    let before = match source_state {
        SourceState::Live => Some(live_baseline(source, source_admin, engine, name).await?),
        SourceState::Quiet => None,
    };
    let role = recreate_target(source, target, source_admin, target_admin, engine, name).await?;
    let started = Instant::now();
    let bytes_on_wire;
    let dump = Command::script(format!("{LOGIN}{DUMP}"))
        .args(source_admin.login_args(engine))
        .args([compression.word(), name])
        .render()?;
    let restore = Command::script(format!("{LOGIN}{RESTORE}"))
        .args(target_admin.login_args(engine))
        .args([compression.word(), name, role.as_deref().unwrap_or("")])
        .render()?;
    let endpoints = (source, source_admin, target, target_admin);
    let (tables, changed_on_source, transfer, verification) = match before {
        None => {
            // A quiet source does not change: it is checksummed while the copy streams.
            let (streamed, on_source) = tokio::join!(
                async {
                    let bytes = stream(endpoints, &dump, &restore, name, meter).await;
                    (bytes, started.elapsed())
                },
                table_stats(source, source_admin, engine, name),
            );
            let (bytes, transfer) = streamed;
            bytes_on_wire = bytes?;
            let verifying = Instant::now();
            let on_target = table_stats(target, target_admin, engine, name).await?;
            let tables = compare(on_source?, on_target)?;
            (tables, Vec::new(), transfer, verifying.elapsed())
        }
        Some(before) => {
            bytes_on_wire = stream(endpoints, &dump, &restore, name, meter).await?;
            let transfer = started.elapsed();
            let verifying = Instant::now();
            let (after, on_target) = tokio::join!(
                table_stats(source, source_admin, engine, name),
                table_stats(target, target_admin, engine, name),
            );
            let (after, on_target) = (after?, on_target?);
            let changed = match before {
                LiveBaseline::Stats(before) => changed_between(&before, &after),
                LiveBaseline::Clock(since) => {
                    updated_since(source, source_admin, name, since).await?
                }
            };
            let tables = compare_excluding(after, on_target, &changed)?;
            (tables, changed, transfer, verifying.elapsed())
        }
    };
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
            let answer = run_sql(source, admin, engine, None, "SELECT UNIX_TIMESTAMP();").await?;
            answer
                .trim()
                .parse()
                .map(LiveBaseline::Clock)
                .map_err(|_| MigrateError::Answer {
                    what: "reading the database server's clock".into(),
                    endpoint: source.endpoint().to_owned(),
                    answer,
                })
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
    let dumping = async {
        let exit = source
            .exec_streaming(dump, Stdin::Bytes(&dump_password), &mut counter)
            .await;
        // EOF for the restore, whatever happened to the dump.
        let _ = counter.inner.shutdown().await;
        drop(counter.inner);
        (exit, counter.bytes)
    };
    let restoring = target.exec(restore, Stdin::reader(restore_input));
    let ((dumped, bytes), restored) = tokio::join!(dumping, restoring);
    let dump_what = format!("the dump of database `{name}`");
    let restore_what = format!("the restore of database `{name}`");
    let dump_result = checked(source.endpoint(), &dump_what, dumped);
    let restore_result = checked(target.endpoint(), &restore_what, restored);
    match (dump_result, restore_result) {
        (Ok(_), Ok(_)) => Ok(bytes),
        // A dump that exited non-zero explains a failed restore (a truncated stream).
        (Err(dump @ MigrateError::Failed { .. }), _) | (Err(dump), Ok(_)) => Err(dump),
        // A restore that stopped early breaks the pipe under the dump: its error is the cause.
        (_, Err(restore)) => Err(restore),
    }
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
        stderr: String::from_utf8_lossy(&outcome.stderr).trim().to_owned(),
    })
}

// --- preparing the target -----------------------------------------------------------------------

/// zstd when both servers have it, else gzip.
async fn choose_compression(
    source: &impl Transport,
    target: &impl Transport,
) -> Result<Compression, MigrateError> {
    let command = Command::script(COMPRESSION).render()?;
    let what = "looking for zstd";
    let (on_source, on_target) = tokio::join!(
        source.exec(&command, Stdin::Empty),
        target.exec(&command, Stdin::Empty),
    );
    let on_source = checked(source.endpoint(), what, on_source)?;
    let on_target = checked(target.endpoint(), what, on_target)?;
    let both_zstd = [on_source, on_target]
        .iter()
        .all(|answer| answer.trim_ascii() == b"zstd");
    Ok(if both_zstd {
        Compression::Zstd
    } else {
        Compression::Gzip
    })
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
    let what = || format!("checksumming the tables of database `{name}`");
    let unexpected = |answer: &str| MigrateError::Answer {
        what: what(),
        endpoint: transport.endpoint().to_owned(),
        answer: answer.to_owned(),
    };
    match engine {
        Engine::Postgres => {
            let answer = run_sql(transport, admin, engine, Some(name), sql::PG_TABLE_STATS).await?;
            sql::parse_pg_stats(&answer).ok_or_else(|| unexpected(&answer))
        }
        Engine::Mysql => {
            let listed = run_sql(transport, admin, engine, None, &sql::mysql_tables(name)).await?;
            let tables = sql::parse_mysql_tables(&listed).ok_or_else(|| unexpected(&listed))?;
            if tables.is_empty() {
                return Ok(TableStats::new());
            }
            let query = sql::mysql_table_stats(name, &tables);
            let answer = run_sql(transport, admin, engine, None, &query).await?;
            sql::parse_mysql_stats(&answer, &tables).ok_or_else(|| unexpected(&answer))
        }
    }
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
