//! Verifying a copy's schema, not only its rows: every column, index, key, trigger, routine,
//! view and event (PostgreSQL: columns, indexes, constraints, triggers, views, functions,
//! sequences) exists on both servers with the same definition. One query a side, run at once.
//!
//! Definitions are compared when both servers run the same major.minor version; across
//! versions (a move to a newer server), `information_schema` may print the same object
//! differently, so only the set of objects is compared then.

use super::*;

/// Object (`kind name`) → md5 of its definition, and the server's version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct SchemaObjects {
    pub(super) version: String,
    pub(super) objects: BTreeMap<String, String>,
}

/// The schema objects of database `name`.
pub(super) async fn schema_objects(
    transport: &impl Transport,
    admin: &DbAdmin,
    engine: Engine,
    name: &str,
) -> Result<SchemaObjects, MigrateError> {
    let (query, database) = match engine {
        Engine::Mysql => (mysql_query(name), None),
        Engine::Postgres => (PG_QUERY.to_owned(), Some(name)),
    };
    let answer = run_sql(transport, admin, engine, database, &query).await?;
    parse(&answer, engine).ok_or_else(|| MigrateError::Answer {
        what: format!("reading the schema of database `{name}`"),
        endpoint: transport.endpoint().to_owned(),
        answer: answer.chars().take(300).collect(),
    })
}

/// Whether both schemas hold the same objects (and definitions, on one version). Returns how
/// many objects were compared.
pub(super) fn compare(
    source: &SchemaObjects,
    target: &SchemaObjects,
) -> Result<usize, MigrateError> {
    let mismatch = |object: &str, detail: &str| MigrateError::Schema {
        object: object.to_owned(),
        detail: detail.to_owned(),
    };
    for object in source.objects.keys() {
        if !target.objects.contains_key(object) {
            return Err(mismatch(object, "missing on the target"));
        }
    }
    for object in target.objects.keys() {
        if !source.objects.contains_key(object) {
            return Err(mismatch(object, "on the target only"));
        }
    }
    if same_release(&source.version, &target.version) {
        for (object, definition) in &source.objects {
            if target.objects.get(object) != Some(definition) {
                return Err(mismatch(object, "defined differently on the target"));
            }
        }
    }
    Ok(source.objects.len())
}

/// Whether two version strings share their major.minor (`10.11.19-MariaDB…`, `15.10 (Debian…)`).
fn same_release(a: &str, b: &str) -> bool {
    let release = |v: &str| -> Vec<String> {
        v.split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .take(2)
            .map(str::to_owned)
            .collect()
    };
    !a.is_empty() && release(a) == release(b)
}

/// `kind<TAB>name<TAB>md5` lines after a `version<TAB>…` line. MySQL's batch output escapes
/// tabs and newlines in names; PostgreSQL's names are split from both ends.
fn parse(answer: &str, engine: Engine) -> Option<SchemaObjects> {
    let mut schema = SchemaObjects::default();
    for line in answer.lines().filter(|line| !line.is_empty()) {
        let (kind, rest) = line.split_once('\t')?;
        if kind == "version" {
            schema.version = rest.to_owned();
            continue;
        }
        let (name, digest) = rest.rsplit_once('\t')?;
        let name = match engine {
            Engine::Mysql => sql::unescape_batch(name)?,
            Engine::Postgres => name.to_owned(),
        };
        schema
            .objects
            .insert(format!("{kind} {name}"), digest.to_owned());
    }
    (!schema.version.is_empty()).then_some(schema)
}

/// Database `name`'s objects on MariaDB/MySQL (a validated identifier). The `DEFINER`s are left
/// out (the copy removes them) and so are events' states (the copy disables them on the target).
fn mysql_query(name: &str) -> String {
    format!(
        "SET SESSION group_concat_max_len = 1048576;
SELECT 'version', VERSION();
SELECT kind, name, MD5(def) FROM (
 SELECT 'column' AS kind, CONCAT(TABLE_NAME, '.', COLUMN_NAME) AS name, CONCAT_WS('|', ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, IFNULL(COLUMN_DEFAULT, '<none>'), IFNULL(COLLATION_NAME, ''), EXTRA, IFNULL(GENERATION_EXPRESSION, '')) AS def FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{name}'
 UNION ALL SELECT 'index', CONCAT(TABLE_NAME, '.', INDEX_NAME), GROUP_CONCAT(CONCAT_WS(':', SEQ_IN_INDEX, COLUMN_NAME, IFNULL(SUB_PART, ''), NON_UNIQUE, INDEX_TYPE) ORDER BY SEQ_IN_INDEX SEPARATOR ',') FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{name}' GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE, INDEX_TYPE
 UNION ALL SELECT 'foreign key', CONCAT(TABLE_NAME, '.', CONSTRAINT_NAME), CONCAT_WS('|', REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '{name}'
 UNION ALL SELECT 'trigger', TRIGGER_NAME, CONCAT_WS('|', EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER, ACTION_STATEMENT) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{name}'
 UNION ALL SELECT 'routine', CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME), IFNULL(ROUTINE_DEFINITION, '') FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{name}'
 UNION ALL SELECT 'view', TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{name}'
 UNION ALL SELECT 'event', EVENT_NAME, CONCAT_WS('|', EVENT_DEFINITION, EVENT_TYPE, IFNULL(INTERVAL_VALUE, ''), IFNULL(INTERVAL_FIELD, '')) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{name}'
) AS objects ORDER BY kind, name;
"
    )
}

/// The connected database's objects on PostgreSQL, outside the system schemas, one text column
/// a line (psql separates columns with `|`, which names may hold). Sequences by their
/// definition (their values move with a live source).
const PG_QUERY: &str = "SELECT 'version' || E'\\t' || current_setting('server_version');
SELECT kind || E'\\t' || name || E'\\t' || md5(coalesce(def, '')) FROM (
 SELECT 'column' AS kind, table_schema || '.' || table_name || '.' || column_name AS name, concat_ws('|', ordinal_position, data_type, udt_name, is_nullable, coalesce(column_default, '<none>'), coalesce(collation_name, ''), character_maximum_length, numeric_precision, numeric_scale, is_identity, is_generated, coalesce(generation_expression, '')) AS def FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
 UNION ALL SELECT 'index', schemaname || '.' || indexname, indexdef FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
 UNION ALL SELECT 'constraint', n.nspname || '.' || c.conrelid::regclass::text || '.' || c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
 UNION ALL SELECT 'trigger', t.tgrelid::regclass::text || '.' || t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE NOT t.tgisinternal
 UNION ALL SELECT 'view', schemaname || '.' || viewname, definition FROM pg_views WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
 UNION ALL SELECT 'function', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'p')
 UNION ALL SELECT 'sequence', schemaname || '.' || sequencename, concat_ws('|', data_type, start_value, increment_by, min_value, max_value, cycle) FROM pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
) AS objects ORDER BY kind, name;
";

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(version: &str, objects: &[(&str, &str)]) -> SchemaObjects {
        SchemaObjects {
            version: version.to_owned(),
            objects: objects
                .iter()
                .map(|(o, d)| ((*o).to_owned(), (*d).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_answer_is_read_with_escaped_names() {
        let answer = "version\t10.11.19-MariaDB-0+deb12u1\ncolumn\tmemos.a\\tb\tabc\ntrigger\tmemos_audit\tdef\n";
        let parsed = parse(answer, Engine::Mysql).unwrap();
        assert_eq!(parsed.version, "10.11.19-MariaDB-0+deb12u1");
        assert_eq!(
            parsed.objects.keys().collect::<Vec<_>>(),
            ["column memos.a\tb", "trigger memos_audit"]
        );
        assert!(
            parse("column\tx\ty\n", Engine::Mysql).is_none(),
            "no version line"
        );
    }

    #[test]
    fn a_missing_or_different_object_is_named() {
        let source = schema(
            "10.11.19",
            &[("trigger memos_audit", "aa"), ("view totals", "bb")],
        );
        assert_eq!(compare(&source, &source.clone()).unwrap(), 2);
        let missing = schema("10.11.19", &[("view totals", "bb")]);
        let error = compare(&source, &missing).unwrap_err().to_string();
        assert!(
            error.contains("trigger memos_audit") && error.contains("missing on the target"),
            "{error}"
        );
        let changed = schema(
            "10.11.19",
            &[("trigger memos_audit", "zz"), ("view totals", "bb")],
        );
        let error = compare(&source, &changed).unwrap_err().to_string();
        assert!(error.contains("defined differently"), "{error}");
        let extra = schema(
            "10.11.19",
            &[
                ("trigger memos_audit", "aa"),
                ("view totals", "bb"),
                ("event e", "c"),
            ],
        );
        assert!(
            compare(&source, &extra)
                .unwrap_err()
                .to_string()
                .contains("on the target only")
        );
    }

    #[test]
    fn across_versions_only_the_objects_are_compared() {
        let source = schema("10.11.19-MariaDB", &[("view totals", "bb")]);
        let newer = schema("11.4.2-MariaDB", &[("view totals", "printed-otherwise")]);
        assert_eq!(compare(&source, &newer).unwrap(), 1);
        assert!(same_release("15.10 (Debian 15.10-0+deb12u1)", "15.10"));
        assert!(!same_release("", ""));
    }
}
