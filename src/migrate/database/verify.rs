//! Verifying a copy: row counts and checksums of every base table on both servers, and on a
//! live source, which tables changed while it was copied.

use super::*;

/// Table name → (rows, checksum).
pub(super) type TableStats = BTreeMap<String, (u64, String)>;

/// What a live source's tables are compared against after the copy.
pub(super) enum LiveBaseline {
    /// PostgreSQL: every table's stats before the dump (changed ones differ afterwards).
    Stats(TableStats),
    /// MariaDB/MySQL: the server's clock before the dump; a table's `UPDATE_TIME` (set at each
    /// commit that writes it) then names what changed, without a second full read of the data.
    Clock(u64),
}

pub(super) async fn live_baseline(
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
pub(super) async fn updated_since(
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
pub(super) fn changed_between(before: &TableStats, after: &TableStats) -> Vec<String> {
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
pub(super) fn compare_excluding(
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

pub(super) fn compare(
    source: TableStats,
    mut target: TableStats,
) -> Result<Vec<TableReport>, MigrateError> {
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

/// Row counts and checksums of every base table of database `name`.
pub(super) async fn table_stats(
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
pub(super) async fn mysql_table_list(
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
pub(super) async fn mysql_table_sizes(
    transport: &impl Transport,
    admin: &DbAdmin,
    name: &str,
) -> Result<Vec<(String, u64)>, MigrateError> {
    let query = sql::mysql_table_sizes(name);
    let what = || format!("measuring the tables of database `{name}`");
    let asked = (Engine::Mysql, None, query.as_str());
    query_parsed(transport, admin, asked, what, sql::parse_mysql_table_sizes).await
}

/// Row counts and `CHECKSUM TABLE` of `tables` of MySQL/MariaDB database `name` (a checksum
/// of the content for a table with generated columns, see [`super::load::content_checksum`]).
pub(super) async fn mysql_stats(
    transport: &impl Transport,
    admin: &DbAdmin,
    name: &str,
    tables: &[String],
) -> Result<TableStats, MigrateError> {
    if tables.is_empty() {
        return Ok(TableStats::new());
    }
    let query = super::load::columns_query(name);
    let asked = (Engine::Mysql, None, query.as_str());
    let what = || format!("reading the columns of database `{name}`");
    let columns = query_parsed(transport, admin, asked, what, super::load::parse_columns).await?;
    let query = sql::mysql_table_stats(name, tables, |table, full| {
        let columns = columns.get(table)?;
        super::load::has_generated(columns).then(|| super::load::content_checksum(full, columns))
    });
    let what = || format!("checksumming the tables of database `{name}`");
    let parse = |answer: &str| sql::parse_mysql_stats(answer, tables);
    let asked = (Engine::Mysql, None, query.as_str());
    query_parsed(transport, admin, asked, what, parse).await
}
