//! The SQL of the copy and its verification, and the parsing of the answers (pure).

use super::{Engine, TableStats};

/// A name validated by `validate_identifier`, quoted for MySQL (backticks).
pub(super) fn mysql_name(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A name quoted for PostgreSQL (double quotes).
pub(super) fn pg_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal for either engine (backslashes doubled for MySQL's default mode).
pub(super) fn literal(engine: Engine, value: &str) -> String {
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

pub(super) fn unescape_batch(field: &str) -> Option<String> {
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

/// For each table, its row count then its `CHECKSUM TABLE` line, or what `instead` gives for
/// the table's full name.
pub fn mysql_table_stats(
    name: &str,
    tables: &[String],
    instead: impl Fn(&str, &str) -> Option<String>,
) -> String {
    tables
        .iter()
        .map(|table| {
            let full = format!("{}.{}", mysql_name(name), mysql_name(table));
            instead(table, &full).unwrap_or_else(|| {
                format!("SELECT COUNT(*) FROM {full};\nCHECKSUM TABLE {full};\n")
            })
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
