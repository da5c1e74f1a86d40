//! Keys built after the rows (pure): a large table's secondary keys and every foreign key are
//! taken off the target's empty tables before the rows load, then added back in one `ALTER
//! TABLE` each, so the server builds each index once, sorted, instead of row by row.
//!
//! What stays: the primary key (the rows are stored in its order), a key starting with the
//! `AUTO_INCREMENT` column (the server requires one), `FULLTEXT`/`SPATIAL` keys and `USING
//! HASH` ones, `CHECK` constraints, and every key of a table without a primary key (its first
//! unique key may be the one the rows are stored in).

use super::Engine;
use super::sql::{literal, mysql_name};

/// The keys of one table that are built after its rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DeferredKeys {
    /// Names of the secondary keys taken off.
    pub(super) indexes: Vec<String>,
    /// Their definitions, as `SHOW CREATE TABLE` prints them.
    pub(super) index_definitions: Vec<String>,
    /// Names of the foreign keys taken off.
    pub(super) foreign_keys: Vec<String>,
    /// Their definitions.
    pub(super) foreign_key_definitions: Vec<String>,
}

impl DeferredKeys {
    /// The `ALTER TABLE` taking the foreign keys off, if any.
    pub(super) fn drop_foreign_keys(&self, table: &str) -> Option<String> {
        let drops = self
            .foreign_keys
            .iter()
            .map(|name| format!("DROP FOREIGN KEY {}", mysql_name(name)));
        alter(table, drops)
    }

    /// The `ALTER TABLE` taking the secondary keys off, if any.
    pub(super) fn drop_indexes(&self, table: &str) -> Option<String> {
        let drops = self
            .indexes
            .iter()
            .map(|name| format!("DROP INDEX {}", mysql_name(name)));
        alter(table, drops)
    }

    /// The `ALTER TABLE` adding the secondary keys back, if any.
    pub(super) fn add_indexes(&self, table: &str) -> Option<String> {
        alter(
            table,
            self.index_definitions.iter().map(|d| format!("ADD {d}")),
        )
    }

    /// The `ALTER TABLE` adding the foreign keys back, if any.
    pub(super) fn add_foreign_keys(&self, table: &str) -> Option<String> {
        alter(
            table,
            self.foreign_key_definitions
                .iter()
                .map(|d| format!("ADD {d}")),
        )
    }
}

fn alter(table: &str, clauses: impl Iterator<Item = String>) -> Option<String> {
    let clauses: Vec<String> = clauses.collect();
    (!clauses.is_empty()).then(|| {
        format!(
            "ALTER TABLE {} {};\n",
            mysql_name(table),
            clauses.join(", ")
        )
    })
}

/// A backquoted name at the start of `text`, and what follows it.
fn quoted_name(text: &str) -> Option<(String, &str)> {
    let rest = text.strip_prefix('`')?;
    let mut name = String::new();
    let mut chars = rest.char_indices();
    while let Some((at, c)) = chars.next() {
        if c != '`' {
            name.push(c);
            continue;
        }
        if rest[at + 1..].starts_with('`') {
            name.push('`');
            chars.next();
            continue;
        }
        return Some((name, &rest[at + 1..]));
    }
    None
}

/// The keys of a table built after its rows, read from its `SHOW CREATE TABLE`; `referenced`
/// names its keys that foreign keys reference.
pub(super) fn deferred_keys(create_table: &str, referenced: &[String]) -> DeferredKeys {
    let lines: Vec<&str> = create_table
        .lines()
        .map(|line| line.trim_end().trim_end_matches(','))
        .collect();
    let mut keys = DeferredKeys::default();
    if !lines.iter().any(|line| line.starts_with("  PRIMARY KEY ")) {
        return keys;
    }
    let auto_increment = lines.iter().find_map(|line| {
        let (name, rest) = quoted_name(line.strip_prefix("  ")?)?;
        rest.contains(" AUTO_INCREMENT").then_some(name)
    });
    for line in &lines {
        let Some(item) = line.strip_prefix("  ") else {
            continue;
        };
        if let Some(rest) = item.strip_prefix("CONSTRAINT ") {
            if let Some((name, after)) = quoted_name(rest)
                && after.starts_with(" FOREIGN KEY ")
            {
                keys.foreign_keys.push(name);
                keys.foreign_key_definitions.push(item.to_owned());
            }
            continue;
        }
        let rest = match item
            .strip_prefix("UNIQUE KEY ")
            .or(item.strip_prefix("KEY "))
        {
            Some(rest) => rest,
            None => continue,
        };
        let Some((name, after)) = quoted_name(rest) else {
            continue;
        };
        let first_column = after.trim_start().strip_prefix('(').and_then(quoted_name);
        let keeps_auto_increment =
            first_column.is_some_and(|(column, _)| Some(&column) == auto_increment.as_ref());
        if keeps_auto_increment || referenced.contains(&name) || after.contains(" USING HASH") {
            continue;
        }
        keys.indexes.push(name);
        keys.index_definitions.push(item.to_owned());
    }
    keys
}

/// The keys that foreign keys reference: `table<TAB>key` lines.
pub(super) fn referenced_keys(database: &str) -> String {
    format!(
        "SELECT REFERENCED_TABLE_NAME, UNIQUE_CONSTRAINT_NAME \
         FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = {};\n",
        literal(Engine::Mysql, database)
    )
}

/// `SHOW CREATE TABLE` of each table, one statement per table.
pub(super) fn show_create_tables(database: &str, tables: &[String]) -> String {
    tables
        .iter()
        .map(|table| {
            format!(
                "SHOW CREATE TABLE {}.{};\n",
                mysql_name(database),
                mysql_name(table)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERS: &str = "CREATE TABLE `orders` (\n  \
        `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,\n  \
        `customer_id` bigint(20) unsigned NOT NULL,\n  \
        `code` varchar(20) NOT NULL,\n  \
        `note` text DEFAULT NULL,\n  \
        PRIMARY KEY (`id`),\n  \
        UNIQUE KEY `orders_code_unique` (`code`),\n  \
        KEY `orders_customer_id_foreign` (`customer_id`),\n  \
        FULLTEXT KEY `orders_note` (`note`),\n  \
        CONSTRAINT `orders_customer_id_foreign` FOREIGN KEY (`customer_id`) REFERENCES `customers` (`id`) ON DELETE CASCADE,\n  \
        CONSTRAINT `code_check` CHECK (`code` <> '')\n\
        ) ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4";

    #[test]
    fn secondary_and_foreign_keys_are_deferred_and_the_rest_stays() {
        let keys = deferred_keys(ORDERS, &[]);
        assert_eq!(
            keys.indexes,
            ["orders_code_unique", "orders_customer_id_foreign"]
        );
        assert_eq!(keys.foreign_keys, ["orders_customer_id_foreign"]);
        assert_eq!(
            keys.add_indexes("orders").unwrap(),
            "ALTER TABLE `orders` ADD UNIQUE KEY `orders_code_unique` (`code`), \
             ADD KEY `orders_customer_id_foreign` (`customer_id`);\n"
        );
        assert_eq!(
            keys.add_foreign_keys("orders").unwrap(),
            "ALTER TABLE `orders` ADD CONSTRAINT `orders_customer_id_foreign` FOREIGN KEY \
             (`customer_id`) REFERENCES `customers` (`id`) ON DELETE CASCADE;\n"
        );
        assert_eq!(
            keys.drop_foreign_keys("orders").unwrap(),
            "ALTER TABLE `orders` DROP FOREIGN KEY `orders_customer_id_foreign`;\n"
        );
        assert_eq!(
            keys.drop_indexes("orders").unwrap(),
            "ALTER TABLE `orders` DROP INDEX `orders_code_unique`, \
             DROP INDEX `orders_customer_id_foreign`;\n"
        );
    }

    #[test]
    fn a_key_the_auto_increment_column_needs_stays() {
        let create = "CREATE TABLE `t` (\n  `a` int NOT NULL,\n  \
                      `n` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`a`),\n  \
                      KEY `n_first` (`n`,`a`),\n  KEY `by_a` (`a`,`n`)\n) ENGINE=InnoDB";
        assert_eq!(deferred_keys(create, &[]).indexes, ["by_a"]);
    }

    #[test]
    fn a_key_another_table_references_stays() {
        let keys = deferred_keys(ORDERS, &["orders_code_unique".to_owned()]);
        assert_eq!(keys.indexes, ["orders_customer_id_foreign"]);
    }

    #[test]
    fn a_table_without_a_primary_key_keeps_every_key() {
        let create =
            "CREATE TABLE `t` (\n  `a` int NOT NULL,\n  UNIQUE KEY `a` (`a`)\n) ENGINE=InnoDB";
        assert_eq!(deferred_keys(create, &[]), DeferredKeys::default());
        assert!(deferred_keys(create, &[]).add_indexes("t").is_none());
    }

    #[test]
    fn quoted_names_keep_their_doubled_backquotes() {
        assert_eq!(
            quoted_name("`a``b` rest"),
            Some(("a`b".to_owned(), " rest"))
        );
        assert_eq!(quoted_name("`open"), None);
    }
}
