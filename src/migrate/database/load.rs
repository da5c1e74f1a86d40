//! MariaDB/MySQL rows as data, not SQL (pure): each table's rows selected on the source as
//! tab-separated lines, loaded on the target with `LOAD DATA LOCAL INFILE`, so the target's
//! server parses no statements; and the answer of the load, each table's warnings.
//!
//! The source's client escapes backslash, tab, newline and NUL (`mysql --batch`), which is what
//! `LOAD DATA`'s default `ESCAPED BY '\\'` undoes; every value goes as bytes (`CHARACTER SET
//! binary` on both ends). Each row starts with a field `r`, and each table ends with a line `e`,
//! which no row can be: the target splits the stream into its tables by that line. What the
//! text form would lose is selected so that it does not: `FLOAT` as `DOUBLE` (all its digits),
//! `BIT` as a number, and a nullable string with a leading `v`, so that `NULL` and the string
//! `'NULL'` stay apart (`LOAD DATA` reads the word `NULL` as a string). Generated columns are
//! left to the target to compute.

use std::collections::BTreeMap;

use super::Engine;
use super::sql::{literal, mysql_name, parse_mysql_table_sizes, unescape_batch};

/// One column of a base table, as `information_schema.COLUMNS` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Column {
    pub(super) name: String,
    pub(super) data_type: String,
    pub(super) nullable: bool,
    pub(super) generated: bool,
}

/// How a column's values travel as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Numbers, dates and times: their text form is exact and never the word `NULL`.
    Plain,
    /// `FLOAT`: printed with six digits, so selected as `DOUBLE`.
    Float,
    /// `BIT`: bytes, selected as a number and set from it.
    Bit,
    /// Strings and bytes: a nullable one travels with a leading `v`.
    Bytes,
}

fn kind(data_type: &str) -> Option<Kind> {
    Some(match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "decimal" | "double" | "date"
        | "datetime" | "timestamp" | "time" | "year" | "uuid" | "inet4" | "inet6" => Kind::Plain,
        "float" => Kind::Float,
        "bit" => Kind::Bit,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "binary"
        | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "enum" | "set" => {
            Kind::Bytes
        }
        _ => return None,
    })
}

/// The columns of every base table of database `name`, in order.
pub(super) fn columns_query(name: &str) -> String {
    format!(
        "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.IS_NULLABLE, c.EXTRA \
         FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
         ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
         WHERE c.TABLE_SCHEMA = {} AND t.TABLE_TYPE = 'BASE TABLE' \
         ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION;\n",
        literal(Engine::Mysql, name)
    )
}

/// The answer of [`columns_query`]: each table's columns, in order.
pub(super) fn parse_columns(answer: &str) -> Option<BTreeMap<String, Vec<Column>>> {
    let mut tables: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for line in answer.lines().filter(|line| !line.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [table, column, data_type, nullable, extra] = fields[..] else {
            return None;
        };
        let extra = extra.to_ascii_uppercase();
        tables
            .entry(unescape_batch(table)?)
            .or_default()
            .push(Column {
                name: unescape_batch(column)?,
                data_type: data_type.to_ascii_lowercase(),
                nullable: nullable == "YES",
                generated: extra.contains("GENERATED") && !extra.contains("DEFAULT_GENERATED"),
            });
    }
    Some(tables)
}

/// Whether every stored column's type can travel as text (else the table goes as `INSERT`s).
pub(super) fn travels_as_text(columns: &[Column]) -> bool {
    stored(columns).all(|column| kind(&column.data_type).is_some())
}

/// Whether a column is a `FLOAT`, which a dump prints with six digits only.
pub(super) fn has_float(columns: &[Column]) -> bool {
    stored(columns).any(|column| kind(&column.data_type) == Some(Kind::Float))
}

/// The average row size of every base table of database `name`, as the server estimates it.
pub(super) fn row_bytes_query(name: &str) -> String {
    format!(
        "SELECT TABLE_NAME, COALESCE(AVG_ROW_LENGTH, 0) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE';\n",
        literal(Engine::Mysql, name)
    )
}

/// `table<TAB>bytes` lines of [`row_bytes_query`].
pub(super) fn parse_row_bytes(answer: &str) -> Option<BTreeMap<String, u64>> {
    Some(parse_mysql_table_sizes(answer)?.into_iter().collect())
}

fn stored(columns: &[Column]) -> impl Iterator<Item = &Column> {
    columns.iter().filter(|column| !column.generated)
}

fn select_expression(column: &Column) -> String {
    let name = mysql_name(&column.name);
    match (kind(&column.data_type), column.nullable) {
        (Some(Kind::Float), _) => format!("CAST({name} AS DOUBLE)"),
        (Some(Kind::Bit), _) => format!("{name} + 0"),
        (Some(Kind::Bytes), true) => format!("CONCAT('v', {name})"),
        _ => name,
    }
}

/// The source's SQL for `tables`: one snapshot, each table's rows then its end line.
pub(super) fn select_sql(tables: &[String], columns: &BTreeMap<String, Vec<Column>>) -> String {
    let mut sql = String::from(
        "SET time_zone = '+00:00';\n\
         SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;\n\
         START TRANSACTION WITH CONSISTENT SNAPSHOT;\n",
    );
    for table in tables {
        let fields: Vec<String> = columns
            .get(table)
            .map(|columns| stored(columns).map(select_expression).collect())
            .unwrap_or_default();
        sql += &format!(
            "SELECT 'r', {} FROM {};\nSELECT 'e';\n",
            fields.join(", "),
            mysql_name(table)
        );
    }
    sql + "COMMIT;\n"
}

/// A table's row count then a checksum of its content, as `CHECKSUM TABLE` answers (a line
/// ending in the checksum): for a table with generated columns, whose `CHECKSUM TABLE` reads
/// them uncomputed (so two tables with the same rows differ). It sums the first 60 bits of
/// each row's md5 over the stored columns, in the text the copy sends them in.
pub(super) fn content_checksum(full_name: &str, columns: &[Column]) -> String {
    let fields: Vec<String> = stored(columns)
        .map(|column| {
            let name = mysql_name(&column.name);
            let text = match kind(&column.data_type) {
                Some(Kind::Plain) => name,
                Some(Kind::Float) => format!("CAST({name} AS DOUBLE)"),
                Some(Kind::Bit) => format!("{name} + 0"),
                Some(Kind::Bytes) | None => format!("HEX({name})"),
            };
            format!("IFNULL({text}, 'N')")
        })
        .collect();
    format!(
        "SET time_zone = '+00:00';
SELECT COUNT(*) FROM {full_name};
         SELECT 'content', COALESCE(SUM(CONV(SUBSTRING(MD5(CONCAT_WS(0x1e, {})), 1, 15), 16, 10)), 0) \
         FROM {full_name};
",
        fields.join(", ")
    )
}

/// Whether `CHECKSUM TABLE` cannot be trusted with this table's rows.
pub(super) fn has_generated(columns: &[Column]) -> bool {
    columns.iter().any(|column| column.generated)
}

/// Where a loaded field goes: straight into its column, or into a variable the `SET` reads.
fn load_target(index: usize, column: &Column) -> (String, Option<String>) {
    let name = mysql_name(&column.name);
    let variable = format!("@c{index}");
    let value = match (kind(&column.data_type), column.nullable) {
        (Some(Kind::Bit), false) => format!("CAST({variable} AS UNSIGNED)"),
        (Some(Kind::Bit), true) => format!("CAST(NULLIF({variable}, 'NULL') AS UNSIGNED)"),
        (Some(Kind::Bytes), true) => {
            format!("IF({variable} = 'NULL', NULL, SUBSTRING({variable}, 2))")
        }
        (_, true) => format!("NULLIF({variable}, 'NULL')"),
        (_, false) => return (name, None),
    };
    (variable, Some(format!("{name} = {value}")))
}

/// The `LOAD DATA` of `table`'s rows from file `file` (relative to the client's directory).
pub(super) fn load_statement(table: &str, columns: &[Column], file: usize) -> String {
    let mut fields = vec!["@siteward_row".to_owned()];
    let mut sets = Vec::new();
    for (index, column) in stored(columns).enumerate() {
        let (field, set) = load_target(index, column);
        fields.push(field);
        sets.extend(set);
    }
    let set = match sets.is_empty() {
        true => String::new(),
        false => format!(" SET {}", sets.join(", ")),
    };
    format!(
        "LOAD DATA LOCAL INFILE '{file}' INTO TABLE {} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({}){set};\n",
        mysql_name(table),
        fields.join(", ")
    )
}

/// The line the target prints after each table's load, before its warnings.
const LOADED: &str = "siteward-loaded";

/// The target's SQL for `tables` (files `1`, `2`, … in order): each table's `LOAD DATA`, its
/// warning count and first warnings, then `after` of the table (its deferred keys).
pub(super) fn load_sql(
    tables: &[String],
    columns: &BTreeMap<String, Vec<Column>>,
    after: impl Fn(&str) -> Option<String>,
) -> String {
    let mut sql = String::from(
        "SET time_zone = '+00:00';\n\
         SET sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\n\
         SET foreign_key_checks = 0;\n\
         SET unique_checks = 0;\n",
    );
    let none = Vec::new();
    for (index, table) in tables.iter().enumerate() {
        sql += &load_statement(table, columns.get(table).unwrap_or(&none), index + 1);
        sql += &format!("SELECT '{LOADED}', {}, @@warning_count;\n", index + 1);
        sql += "SHOW WARNINGS LIMIT 3;\n";
        sql += &after(table).unwrap_or_default();
    }
    sql
}

/// The first table whose load warned (a value its column cannot hold, a row skipped), with
/// what the server said; `Err(answer)` when the answer is not the load's.
pub(super) fn load_problem(
    answer: &str,
    tables: &[String],
) -> Result<Option<(String, String)>, ()> {
    let mut loaded = 0;
    let mut lines = answer.lines().peekable();
    while let Some(line) = lines.next() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [LOADED, index, warnings] = fields[..] else {
            return Err(());
        };
        let index: usize = index.parse().map_err(|_| ())?;
        let table = tables.get(index.wrapping_sub(1)).ok_or(())?;
        loaded += 1;
        let mut said = Vec::new();
        while let Some(warning) = lines.next_if(|line| !line.starts_with(LOADED)) {
            said.push(warning.splitn(3, '\t').last().unwrap_or(warning).to_owned());
        }
        if warnings != "0" {
            let reason = format!(
                "{warnings} warning(s) loading its rows: {}",
                said.join("; ")
            );
            return Ok(Some((table.clone(), reason)));
        }
    }
    match loaded == tables.len() {
        true => Ok(None),
        false => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, data_type: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            nullable,
            generated: false,
        }
    }

    #[test]
    fn columns_are_read_per_table_with_generated_ones_marked() {
        let answer = "t\tid\tint\tNO\tauto_increment\nt\tg\tint\tYES\tVIRTUAL GENERATED\n\
                      t\tat\ttimestamp\tNO\tDEFAULT_GENERATED on update CURRENT_TIMESTAMP\n\
                      tab\\there\tv\tvarchar\tYES\t\n";
        let tables = parse_columns(answer).unwrap();
        assert_eq!(tables["t"].len(), 3);
        assert!(tables["t"][1].generated && !tables["t"][2].generated);
        assert_eq!(tables["tab\there"][0], column("v", "varchar", true));
        assert!(parse_columns("t\tid\tint\n").is_none());
    }

    #[test]
    fn values_that_text_would_change_are_selected_so_that_they_do_not() {
        let mut columns = BTreeMap::new();
        let mut generated = column("g", "int", true);
        generated.generated = true;
        columns.insert(
            "t".to_owned(),
            vec![
                column("id", "int", false),
                column("f", "float", true),
                column("b", "bit", false),
                column("s", "varchar", true),
                column("k", "blob", false),
                generated,
            ],
        );
        let sql = select_sql(&["t".to_owned()], &columns);
        assert!(sql.contains(
            "SELECT 'r', `id`, CAST(`f` AS DOUBLE), `b` + 0, CONCAT('v', `s`), `k` FROM `t`;\n\
             SELECT 'e';\n"
        ));
        assert!(sql.starts_with("SET time_zone = '+00:00';") && sql.ends_with("COMMIT;\n"));
        let load = load_statement("t", &columns["t"], 1);
        assert!(
            load.contains("(@siteward_row, `id`, @c1, @c2, @c3, `k`)"),
            "{load}"
        );
        assert!(load.contains("`f` = NULLIF(@c1, 'NULL')"), "{load}");
        assert!(load.contains("`b` = CAST(@c2 AS UNSIGNED)"), "{load}");
        assert!(
            load.contains("`s` = IF(@c3 = 'NULL', NULL, SUBSTRING(@c3, 2))"),
            "{load}"
        );
        assert!(!load.contains("`g`"));
        assert!(load.contains("ESCAPED BY '\\\\'"), "{load}");
    }

    #[test]
    fn a_type_text_cannot_carry_keeps_its_table_out_and_a_float_is_told() {
        assert!(!travels_as_text(&[column("at", "point", false)]));
        let mut generated = column("at", "point", false);
        generated.generated = true;
        assert!(travels_as_text(&[column("id", "int", false), generated]));
        assert!(has_float(&[
            column("id", "int", false),
            column("f", "float", true)
        ]));
        assert!(!has_float(&[column("d", "double", true)]));
        let bytes = parse_row_bytes("a\t120\nb\t8300\n").unwrap();
        assert_eq!((bytes["a"], bytes["b"]), (120, 8300));
    }

    #[test]
    fn the_first_table_that_warned_is_named_with_what_the_server_said() {
        let tables = vec!["a".to_owned(), "b".to_owned()];
        let clean = "siteward-loaded\t1\t0\nsiteward-loaded\t2\t0\n";
        assert_eq!(load_problem(clean, &tables), Ok(None));
        let warned = "siteward-loaded\t1\t0\nsiteward-loaded\t2\t1\n\
                      Warning\t4025\tCONSTRAINT `b.x` failed for `d`.`b`\n";
        let (table, reason) = load_problem(warned, &tables).unwrap().unwrap();
        assert_eq!(table, "b");
        assert!(reason.contains("CONSTRAINT `b.x` failed"), "{reason}");
        assert!(load_problem("siteward-loaded\t1\t0\n", &tables).is_err());
        assert!(load_problem("nonsense\n", &tables).is_err());
    }
}
