//! Copying a database between servers, streamed through siteward, then verified table by table.
//!
//! The dump runs on the source, the restore on the target, and the bytes flow through this
//! process (compressed): the two servers never talk to each other nor hold keys to each other.
//! This file holds what callers use; the copy itself ([`copy`]), the stream between the servers
//! ([`stream`]), preparing the target ([`target`]), the verification ([`verify`]), the
//! administrator's queries ([`query`]) and the SQL with the parsing of its answers ([`sql`])
//! are modules of their own.

mod collations;
mod copy;
mod keys;
mod load;
mod query;
mod rows;
mod schema;
mod sql;
mod stream;
mod target;
mod verify;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::progress::Meter;
use super::{Compression, SourceState};
use crate::plan::step::Engine;
use crate::spec::secret::Secret;
use crate::transport::{
    Command, IdentifierKind, QuoteError, Stdin, Transport, TransportError, validate_identifier,
};

use copy::*;
use query::*;
use target::*;
use verify::*;

const LOGIN: &str = include_str!("../scripts/db_login.sh");
const DUMP: &str = include_str!("../scripts/db_dump.sh");
const RESTORE: &str = include_str!("../scripts/db_restore.sh");
const COMPRESSION: &str = include_str!("../scripts/db_compression.sh");
const SQL: &str = include_str!("../../apply/scripts/sql.sh");

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
    /// A table's rows did not load on the target as they were on the source.
    #[error("the rows of table `{table}` did not load on the target: {detail}")]
    Rows {
        /// The table.
        table: String,
        /// What the target's server said.
        detail: String,
    },
    /// A table differs between source and target after the copy.
    #[error("table `{table}` differs after the copy: {detail}")]
    Mismatch {
        /// The table (`schema.table` on PostgreSQL).
        table: String,
        /// How it differs.
        detail: String,
    },
    /// The target's server lacks collations the database uses (found before the copy starts).
    #[error(
        "database `{database}` uses collations the database server on {endpoint} does not have: \
         {}; give the target a server that has them (the source's version or newer), or convert \
         those tables on the source (ALTER TABLE … CONVERT TO CHARACTER SET … COLLATE …)",
        collations.join(", ")
    )]
    Collations {
        /// The database.
        database: String,
        /// The target server.
        endpoint: String,
        /// The collations it lacks.
        collations: Vec<String>,
    },
    /// A schema object (column, index, key, trigger, routine, view, event…) differs.
    #[error("the {object} differs after the copy: {detail}")]
    Schema {
        /// Its kind and name.
        object: String,
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
    /// Schema objects (columns, indexes, keys, triggers, routines, views, events) found equal
    /// on both servers.
    pub schema_objects: usize,
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
    if engine == Engine::Mysql {
        collations::check((source, source_admin), (target, target_admin), name).await?;
    }
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
        index_jobs: index_jobs(
            probe.target_cpus,
            std::env::var(INDEX_JOBS_VARIABLE).ok().as_deref(),
        ),
        meter,
    };
    if engine == Engine::Postgres && copy.index_jobs > 1 {
        tracing::info!(
            database = name,
            jobs = copy.index_jobs,
            "PostgreSQL's indexes and constraints are built side by side"
        );
    }
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
    let (on_source, on_target) = tokio::join!(
        schema::schema_objects(source, source_admin, engine, name),
        schema::schema_objects(target, target_admin, engine, name)
    );
    let schema_objects = schema::compare(&on_source?, &on_target?)?;
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
        schema_objects,
        verified: true,
    })
}

/// Compares every base table of database `name` on `source` and `target`: row counts and
/// content checksums (MySQL/MariaDB: `CHECKSUM TABLE`; PostgreSQL: md5 of the rows' md5s);
/// then every schema object (see [`schema`]).
///
/// # Errors
/// [`MigrateError::Mismatch`] naming the first table that differs or exists on one side only;
/// [`MigrateError::Schema`] naming the first schema object that does.
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
    let tables = compare(on_source?, on_target?)?;
    let (on_source, on_target) = tokio::join!(
        schema::schema_objects(source, source_admin, engine, name),
        schema::schema_objects(target, target_admin, engine, name)
    );
    schema::compare(&on_source?, &on_target?)?;
    Ok(tables)
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
