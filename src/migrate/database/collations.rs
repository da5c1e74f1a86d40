//! Before a MariaDB/MySQL copy touches the target: every collation the source database uses
//! (its default, its tables', columns', routines', triggers' and views') must exist on the
//! target's server, or the copy stops naming them all, before the target's database is replaced.

use std::collections::BTreeSet;

use super::query::query_parsed;
use super::sql::{literal, parse_mysql_tables};
use super::*;

/// The collations database `name` uses anywhere, one per line.
fn used_query(name: &str) -> String {
    let name = literal(Engine::Mysql, name);
    format!(
        "SELECT DISTINCT c FROM (\
         SELECT DEFAULT_COLLATION_NAME AS c FROM information_schema.SCHEMATA \
         WHERE SCHEMA_NAME = {name} \
         UNION SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = {name} \
         UNION SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {name} \
         UNION SELECT COLLATION_CONNECTION FROM information_schema.ROUTINES \
         WHERE ROUTINE_SCHEMA = {name} \
         UNION SELECT DATABASE_COLLATION FROM information_schema.ROUTINES \
         WHERE ROUTINE_SCHEMA = {name} \
         UNION SELECT COLLATION_CONNECTION FROM information_schema.TRIGGERS \
         WHERE TRIGGER_SCHEMA = {name} \
         UNION SELECT DATABASE_COLLATION FROM information_schema.TRIGGERS \
         WHERE TRIGGER_SCHEMA = {name} \
         UNION SELECT COLLATION_CONNECTION FROM information_schema.VIEWS \
         WHERE TABLE_SCHEMA = {name}) AS used WHERE c IS NOT NULL ORDER BY c;\n"
    )
}

/// Every collation a server has, one per line.
const AVAILABLE: &str = "SELECT COLLATION_NAME FROM information_schema.COLLATIONS;\n";

/// The collations of `used` that `available` lacks, in order.
pub(super) fn missing(used: &[String], available: &[String]) -> Vec<String> {
    let available: BTreeSet<String> = available.iter().map(|c| c.to_ascii_lowercase()).collect();
    used.iter()
        .filter(|c| !available.contains(&c.to_ascii_lowercase()))
        .cloned()
        .collect()
}

/// Fails when the target's server lacks a collation database `name` uses on the source.
pub(super) async fn check(
    (source, source_admin): (&impl Transport, &DbAdmin),
    (target, target_admin): (&impl Transport, &DbAdmin),
    name: &str,
) -> Result<(), MigrateError> {
    let query = used_query(name);
    let asked = (Engine::Mysql, None, query.as_str());
    let used = query_parsed(source, source_admin, asked, what_used, parse_mysql_tables);
    let asked = (Engine::Mysql, None, AVAILABLE);
    let available = query_parsed(
        target,
        target_admin,
        asked,
        what_available,
        parse_mysql_tables,
    );
    let (used, available) = tokio::join!(used, available);
    let lacking = missing(&used?, &available?);
    match lacking.is_empty() {
        true => Ok(()),
        false => Err(MigrateError::Collations {
            database: name.to_owned(),
            endpoint: target.endpoint().to_owned(),
            collations: lacking,
        }),
    }
}

fn what_used() -> String {
    "reading the collations the database uses".to_owned()
}

fn what_available() -> String {
    "reading the collations the database server has".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn collations_the_target_has_pass_and_the_others_are_named_in_order() {
        let available = names(&[
            "utf8mb4_general_ci",
            "UTF8MB4_UNICODE_CI",
            "latin1_swedish_ci",
        ]);
        assert!(
            missing(
                &names(&["utf8mb4_unicode_ci", "latin1_swedish_ci"]),
                &available
            )
            .is_empty()
        );
        let used = names(&[
            "utf8mb4_0900_ai_ci",
            "utf8mb4_general_ci",
            "utf8mb4_uca1400_ai_ci",
        ]);
        assert_eq!(
            missing(&used, &available),
            names(&["utf8mb4_0900_ai_ci", "utf8mb4_uca1400_ai_ci"])
        );
    }

    #[test]
    fn the_query_reads_every_place_a_collation_is_named_for_that_database_only() {
        let query = used_query("shop");
        for place in [
            "SCHEMATA", "TABLES", "COLUMNS", "ROUTINES", "TRIGGERS", "VIEWS",
        ] {
            assert!(
                query.contains(&format!("information_schema.{place}")),
                "{place}"
            );
        }
        assert_eq!(query.matches("= 'shop'").count(), 8, "{query}");
    }
}
