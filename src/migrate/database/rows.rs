//! How MariaDB/MySQL rows travel, and which keys are built after them: the target's large
//! tables lose their secondary and foreign keys before the rows; each group of tables streams
//! its narrow-row tables from one snapshot on the source into `LOAD DATA` on the target (see
//! [`load`]) and its wide-row tables as `INSERT` statements ([`Part::Rows`]); each table gets
//! its secondary keys back right after its rows, and the foreign keys come back once every
//! group is in.
//!
//! Why both: measured on MariaDB 10.11 (one table at a time, keys built after), `LOAD DATA`
//! costs the server about 1.6 µs a row and 42–52 ns a byte, `INSERT`s about 4.8 µs a row and
//! 28 ns a byte (hex blobs included): a million 82-byte rows load in 4.7–5.4 CPU-s against
//! 6.9–7.5, but 552 MB of 1.1 KB rows take 24.7 CPU-s as data and less as `INSERT`s. Rows of
//! under [`AS_DATA_BELOW`] bytes on average go as data, and so do tables under
//! [`DEFER_KEYS_FROM`] and every table with a `FLOAT` column (a dump prints six digits of it). A target refusing `LOCAL INFILE`, or a column type
//! text cannot carry, sends the table as `INSERT`s.

use std::collections::{BTreeMap, BTreeSet};

use super::copy::Copy;
use super::keys::{DeferredKeys, deferred_keys, referenced_keys, show_create_tables};
use super::load::{self, Column};
use super::stream::{Ends, stream};
use super::*;

const ROWS_SEND: &str = include_str!("../scripts/db_rows_send.sh");
const ROWS_LOAD: &str = include_str!("../scripts/db_rows_load.sh");

/// Tables from this size on (data and indexes, as the source reports) get their secondary keys
/// built after their rows; below it, taking keys off and adding them back costs more than it
/// saves.
pub(super) const DEFER_KEYS_FROM: u64 = 16 << 20;

/// Tables whose rows average fewer bytes than this (as the source reports) go as data.
pub(super) const AS_DATA_BELOW: u64 = 200;

/// How each table's rows travel, and the keys taken off the target until they are in.
pub(super) struct Loader {
    columns: BTreeMap<String, Vec<Column>>,
    deferred: BTreeMap<String, DeferredKeys>,
    as_data: BTreeSet<String>,
}

impl Loader {
    /// `tables` split into those loaded as data and those sent as `INSERT`s.
    pub(super) fn split(&self, tables: &[String]) -> (Vec<String>, Vec<String>) {
        tables
            .iter()
            .cloned()
            .partition(|table| self.as_data.contains(table))
    }
}

/// The tables that go as data: every column's type travels as text, and the rows are narrow,
/// or hold a `FLOAT`, or the table is small (where the way costs little, and a small table's
/// row size estimate is a page over a few rows).
fn as_data(
    columns: &BTreeMap<String, Vec<Column>>,
    row_bytes: &BTreeMap<String, u64>,
    sizes: &BTreeMap<&str, u64>,
) -> BTreeSet<String> {
    let below = |map_value: Option<&u64>, limit: u64| map_value.is_none_or(|bytes| *bytes < limit);
    columns
        .iter()
        .filter(|(_, columns)| load::travels_as_text(columns))
        .filter(|(table, columns)| {
            below(row_bytes.get(*table), AS_DATA_BELOW)
                || below(sizes.get(table.as_str()), DEFER_KEYS_FROM)
                || load::has_float(columns)
        })
        .map(|(table, _)| table.clone())
        .collect()
}

impl<S: Transport, T: Transport> Copy<'_, S, T> {
    /// How this copy's rows travel, once the target's empty tables exist. Takes the deferred
    /// keys off the target's tables.
    pub(super) async fn loader(&self, sizes: &[(String, u64)]) -> Result<Loader, MigrateError> {
        let asked = (Engine::Mysql, None, "SELECT @@local_infile;\n");
        let what = || "reading whether the database server loads local files".to_owned();
        let local_infile = query_parsed(self.target, self.target_admin, asked, what, |answer| {
            Some(answer.trim() == "1")
        });
        let query = load::columns_query(self.name);
        let asked = (Engine::Mysql, None, query.as_str());
        let what = || format!("reading the columns of database `{}`", self.name);
        let parse = load::parse_columns;
        let columns = query_parsed(self.source, self.source_admin, asked, what, parse);
        let query = load::row_bytes_query(self.name);
        let asked = (Engine::Mysql, None, query.as_str());
        let parse = load::parse_row_bytes;
        let row_bytes = query_parsed(self.source, self.source_admin, asked, what, parse);
        let (local_infile, columns, row_bytes) = tokio::join!(local_infile, columns, row_bytes);
        let (columns, row_bytes) = (columns?, row_bytes?);
        let as_data = match local_infile? {
            true => {
                let sizes = sizes.iter().map(|(table, bytes)| (table.as_str(), *bytes));
                as_data(&columns, &row_bytes, &sizes.collect())
            }
            false => {
                tracing::info!(database = self.name, "the target refuses LOCAL INFILE");
                BTreeSet::new()
            }
        };
        let large: Vec<String> = sizes
            .iter()
            .filter(|(_, bytes)| *bytes >= DEFER_KEYS_FROM)
            .map(|(table, _)| table.clone())
            .collect();
        let deferred = self.take_keys_off(&large).await?;
        Ok(Loader {
            columns,
            deferred,
            as_data,
        })
    }

    /// Adds back the secondary keys of `tables` taken off (their rows sent as `INSERT`s).
    pub(super) async fn add_indexes(
        &self,
        tables: &[String],
        loader: &Loader,
    ) -> Result<(), MigrateError> {
        let adds: String = tables
            .iter()
            .filter_map(|table| loader.deferred.get(table)?.add_indexes(table))
            .collect();
        self.alter_target(&adds).await
    }

    /// Takes the secondary and foreign keys of `tables` off the target (foreign keys first,
    /// every table's, so that no index is still needed by one); returns what was taken.
    async fn take_keys_off(
        &self,
        tables: &[String],
    ) -> Result<BTreeMap<String, DeferredKeys>, MigrateError> {
        if tables.is_empty() {
            return Ok(BTreeMap::new());
        }
        let what = || format!("reading the keys of database `{}`", self.name);
        let query = show_create_tables(self.name, tables);
        let asked = (Engine::Mysql, None, query.as_str());
        let created = query_parsed(self.target, self.target_admin, asked, what, parse_created);
        let query = referenced_keys(self.name);
        let asked = (Engine::Mysql, None, query.as_str());
        let referenced = query_parsed(
            self.target,
            self.target_admin,
            asked,
            what,
            parse_referenced,
        );
        let (created, referenced) = tokio::join!(created, referenced);
        let referenced = referenced?;
        let deferred: BTreeMap<String, DeferredKeys> = created?
            .into_iter()
            .map(|(table, create)| {
                let keys = referenced.get(&table).map_or(&[][..], Vec::as_slice);
                let deferred = deferred_keys(&create, keys);
                (table, deferred)
            })
            .collect();
        let drops: String = [DeferredKeys::drop_foreign_keys, DeferredKeys::drop_indexes]
            .iter()
            .flat_map(|drop| {
                deferred
                    .iter()
                    .filter_map(|(table, keys)| drop(keys, table))
            })
            .collect();
        self.alter_target(&drops).await?;
        Ok(deferred)
    }

    /// Streams the rows of `tables` into `LOAD DATA` on the target, each table's deferred
    /// secondary keys added right after its rows; returns the bytes on the wire.
    pub(super) async fn load_data(
        &self,
        tables: &[String],
        loader: &Loader,
    ) -> Result<u64, MigrateError> {
        let select = load::select_sql(tables, &loader.columns);
        let load = load::load_sql(tables, &loader.columns, |table| {
            loader
                .deferred
                .get(table)
                .and_then(|keys| keys.add_indexes(table))
        });
        let prelude = format!("{}\n{load}", load.len());
        let compression = self.compression.word();
        let dump = Command::script(format!("{LOGIN}{ROWS_SEND}"))
            .args(self.source_admin.login_args(self.engine))
            .args([compression, self.name])
            .render()?;
        let restore = Command::script(format!("{LOGIN}{ROWS_LOAD}"))
            .args(self.target_admin.login_args(self.engine))
            .args([compression, self.name])
            .arg(tables.len().to_string())
            .render()?;
        let ends = Ends {
            dump: &dump,
            dump_input: select.as_bytes(),
            restore: &restore,
            restore_prelude: prelude.as_bytes(),
        };
        let streamed = stream(self.endpoints(), ends, self.name, self.meter).await?;
        let answer = String::from_utf8_lossy(&streamed.restore_output).into_owned();
        match load::load_problem(&answer, tables) {
            Ok(None) => Ok(streamed.bytes),
            Ok(Some((table, detail))) => Err(MigrateError::Rows { table, detail }),
            Err(()) => Err(MigrateError::Answer {
                what: format!("loading the rows of database `{}`", self.name),
                endpoint: self.target.endpoint().to_owned(),
                answer,
            }),
        }
    }

    /// Adds back the foreign keys taken off, once every table's rows are in.
    pub(super) async fn add_foreign_keys(&self, loader: &Loader) -> Result<(), MigrateError> {
        let adds: String = loader
            .deferred
            .iter()
            .filter_map(|(table, keys)| keys.add_foreign_keys(table))
            .collect();
        self.alter_target(&adds).await
    }

    /// Runs `statements` (key changes) on the target's database, foreign keys unchecked.
    async fn alter_target(&self, statements: &str) -> Result<(), MigrateError> {
        if statements.is_empty() {
            return Ok(());
        }
        let sql = format!("SET foreign_key_checks = 0;\n{statements}");
        let database = Some(self.name);
        run_sql(
            self.target,
            self.target_admin,
            Engine::Mysql,
            database,
            &sql,
        )
        .await?;
        Ok(())
    }
}

/// `table<TAB>create statement` lines of `SHOW CREATE TABLE`, unescaped.
fn parse_created(answer: &str) -> Option<BTreeMap<String, String>> {
    answer
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (table, create) = line.split_once('\t')?;
            Some((sql::unescape_batch(table)?, sql::unescape_batch(create)?))
        })
        .collect()
}

/// `table<TAB>key` lines of [`referenced_keys`], grouped by table.
fn parse_referenced(answer: &str) -> Option<BTreeMap<String, Vec<String>>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in answer.lines().filter(|line| !line.is_empty()) {
        let (table, key) = line.split_once('\t')?;
        keys.entry(sql::unescape_batch(table)?)
            .or_default()
            .push(sql::unescape_batch(key)?);
    }
    Some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_tables_are_unescaped() {
        let answer = "t\tCREATE TABLE `t` (\\n  `id` int NOT NULL,\\n  PRIMARY KEY (`id`)\\n)\n";
        let created = parse_created(answer).unwrap();
        assert!(created["t"].contains("\n  PRIMARY KEY (`id`)\n"));
    }
}
