//! Copying databases between two fleet hosts (`t-migdb-a` → `t-migdb-b`) through siteward:
//! MariaDB and PostgreSQL, with their odd data and schema objects, verified, re-runnable.

mod support;

use std::time::Duration;

use siteward::migrate::database::{
    DatabaseCopyReport, DbAdmin, MigrateError, copy_database, verify_database,
};
use siteward::plan::step::Engine;
use siteward::spec::secret::Secret;
use siteward::transport::SshSession;
use support::{Fleet, Host};

/// A MariaDB database with utf8mb4 text, blobs, a trigger, a view, a function and an event,
/// whose objects belong to a user that exists on the source only.
fn mariadb_fixture(database: &str) -> String {
    format!(
        "SET NAMES utf8mb4;
DROP DATABASE IF EXISTS {database};
CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'migdb_ghost'@'localhost';
GRANT ALL ON {database}.* TO 'migdb_ghost'@'localhost';
USE {database};
CREATE TABLE products (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200) NOT NULL,
  photo BLOB, price DECIMAL(10,2)) ENGINE=InnoDB;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, product_id INT, note VARCHAR(250))
  ENGINE=InnoDB;
CREATE DEFINER='migdb_ghost'@'localhost' TRIGGER products_audit AFTER INSERT ON products
  FOR EACH ROW INSERT INTO audit (product_id, note) VALUES (NEW.id, CONCAT('added ', NEW.name));
CREATE DEFINER='migdb_ghost'@'localhost' SQL SECURITY DEFINER VIEW expensive AS
  SELECT name, price FROM products WHERE price > 99;
CREATE DEFINER='migdb_ghost'@'localhost' FUNCTION with_tax(p DECIMAL(10,2))
  RETURNS DECIMAL(10,2) DETERMINISTIC RETURN p * 1.2;
CREATE DEFINER='migdb_ghost'@'localhost' EVENT purge_audit ON SCHEDULE EVERY 1 DAY
  DO DELETE FROM audit WHERE id < 0;
INSERT INTO products (name, photo, price) VALUES ('Café ☕ 🚀 ✓', UNHEX('00FF10275C0A0D22'), 99.50);
INSERT INTO products (name, price) VALUES ('text DEFINER=`ghost`@`localhost` is data', 5);
SET SESSION max_recursive_iterations = 100000;
INSERT INTO products (name, photo, price)
  WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 20000)
  SELECT CONCAT('item ', n, ' 🧪'), UNHEX(SHA2(n, 256)), n % 100 FROM seq;
"
    )
}

/// A PostgreSQL database with text with emoji, bytea, a trigger function and a view.
fn postgres_fixture(database: &str) -> String {
    format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE);
CREATE DATABASE {database} TEMPLATE template0 ENCODING 'UTF8';
\\c {database}
CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, photo bytea, price numeric(10,2));
CREATE TABLE audit (id serial PRIMARY KEY, product_id int, note text);
CREATE FUNCTION log_product() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit (product_id, note) VALUES (NEW.id, 'added ' || NEW.name);
  RETURN NEW;
END $$;
CREATE TRIGGER products_audit AFTER INSERT ON products FOR EACH ROW EXECUTE FUNCTION log_product();
CREATE VIEW expensive AS SELECT name, price FROM products WHERE price > 99;
INSERT INTO products (name, photo, price) VALUES ('Café ☕ 🚀 ✓', '\\x00ff10275c0a0d22'::bytea, 99.50);
INSERT INTO products (name, photo, price)
  SELECT 'item ' || n || ' 🧪', sha256(n::text::bytea), n % 100 FROM generate_series(1, 20000) AS n;
"
    )
}

async fn connect(host: &Host) -> SshSession {
    SshSession::connect(&host.ssh_target(Duration::from_secs(300)))
        .await
        .unwrap()
}

struct Pair {
    a: Host,
    b: Host,
    source: SshSession,
    target: SshSession,
}

async fn pair() -> Pair {
    let a = Fleet::host("t-migdb-a").unwrap();
    let b = Fleet::host("t-migdb-b").unwrap();
    let (source, target) = tokio::join!(connect(&a), connect(&b));
    Pair {
        a,
        b,
        source,
        target,
    }
}

impl Pair {
    async fn copy(
        &self,
        engine: Engine,
        database: &str,
    ) -> Result<DatabaseCopyReport, MigrateError> {
        let admin = admin(engine);
        copy_database(&self.source, &self.target, &admin, &admin, engine, database).await
    }

    async fn verify(&self, engine: Engine, database: &str) -> Result<(), MigrateError> {
        let admin = admin(engine);
        verify_database(&self.source, &self.target, &admin, &admin, engine, database)
            .await
            .map(drop)
    }
}

fn admin(engine: Engine) -> DbAdmin {
    match engine {
        Engine::Mysql => DbAdmin::socket("root"),
        Engine::Postgres => DbAdmin::socket("postgres"),
    }
}

fn print_report(report: &DatabaseCopyReport) {
    eprintln!(
        "{:?} {}: {} bytes on the wire ({:?}), transfer {:?}, verification {:?}, tables {:?}",
        report.engine,
        report.database,
        report.bytes_on_wire,
        report.compression,
        report.transfer,
        report.verification,
        report
            .tables
            .iter()
            .map(|t| format!("{}={}", t.name, t.rows))
            .collect::<Vec<_>>()
    );
}

fn rows(report: &DatabaseCopyReport) -> Vec<(String, u64)> {
    report
        .tables
        .iter()
        .map(|table| (table.name.clone(), table.rows))
        .collect()
}

#[tokio::test]
async fn a_mariadb_database_arrives_whole_with_its_triggers_views_routines_and_events() {
    let pair = pair().await;
    let database = "migdb_shop";
    pair.a.mysql(&mariadb_fixture(database)).unwrap();
    pair.b
        .mysql("DROP USER IF EXISTS 'migdb_ghost'@'localhost'")
        .unwrap();

    let report = pair.copy(Engine::Mysql, database).await.unwrap();
    print_report(&report);
    assert!(report.verified);
    // 7 columns, 2 primary keys, a trigger, a view, a function, an event at least.
    assert!(report.schema_objects >= 13, "{}", report.schema_objects);
    let expected = vec![("audit".to_owned(), 20002), ("products".to_owned(), 20002)];
    assert_eq!(rows(&report), expected);
    assert!(report.bytes_on_wire > 0);

    let b = &pair.b;
    let query = |sql: &str| {
        b.mysql(&format!("SET NAMES utf8mb4; USE {database}; {sql}"))
            .unwrap()
    };
    assert_eq!(
        query("SELECT name FROM products WHERE id = 1"),
        "Café ☕ 🚀 ✓"
    );
    assert_eq!(
        query("SELECT HEX(photo) FROM products WHERE id = 1"),
        "00FF10275C0A0D22"
    );
    assert_eq!(
        query("SELECT name FROM products WHERE id = 2"),
        "text DEFINER=`ghost`@`localhost` is data",
        "a value that looks like a DEFINER clause is data, left as it is"
    );
    assert_eq!(query("SELECT with_tax(10)"), "12.00");
    assert_eq!(query("SELECT COUNT(*) FROM expensive"), "1");
    let event = "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_NAME = 'purge_audit' AND EVENT_SCHEMA = DATABASE()";
    assert_eq!(query(event), "1");
    for view in ["ROUTINES", "TRIGGERS", "VIEWS", "EVENTS"] {
        let definers = format!(
            "SELECT COUNT(*) FROM information_schema.{view} WHERE DEFINER LIKE 'migdb_ghost%'"
        );
        assert_eq!(
            query(&definers),
            "0",
            "no {view} keeps the source's DEFINER"
        );
    }
    query("INSERT INTO products (name, price) VALUES ('on B', 1)");
    assert_eq!(
        query("SELECT note FROM audit ORDER BY id DESC LIMIT 1"),
        "added on B"
    );

    let again = pair.copy(Engine::Mysql, database).await.unwrap();
    print_report(&again);
    assert_eq!(rows(&again), expected, "a second copy converges");
    assert_eq!(query("SELECT COUNT(*) FROM products"), "20002");
}

/// A MariaDB database whose values a text dump would change or lose: FLOAT and DOUBLE values
/// that need all their digits, BIT, a generated column, NULL next to the string 'NULL', bytes
/// a text format must escape, a 200 KB value, a table without a primary key (these go as data),
/// and a large table of wide rows (sent as `INSERT`s) whose keys are built after its rows, with
/// a foreign key and a trigger that would change rows if it fired during the load.
fn exact_fixture(database: &str) -> String {
    format!(
        "SET NAMES utf8mb4;
DROP DATABASE IF EXISTS {database};
CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE {database};
CREATE TABLE measures (id INT PRIMARY KEY, f FLOAT, d DOUBLE, flags BIT(5), s VARCHAR(20) NULL,
  raw VARBINARY(40), big MEDIUMTEXT, at TIMESTAMP NULL, doubled INT AS (id * 2) VIRTUAL,
  n INT NOT NULL) ENGINE=InnoDB;
INSERT INTO measures (id, f, d, flags, s, raw, big, at, n) VALUES
  (1, 0.1234567, 0.1234567890123456789, b'10101', 'NULL', UNHEX('00090A0D5C4E5C'),
   REPEAT('a\tb\\c\n', 40000), '2024-02-29 23:59:59', 0),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1),
  (3, -3.4028e38, 1e-300, b'00000', '', '\\E', '', '1970-01-01 00:00:01', 2);
CREATE TABLE loose (a INT, b VARCHAR(10)) ENGINE=InnoDB;
INSERT INTO loose VALUES (1, 'x'), (1, 'x'), (NULL, NULL);
CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(60) NOT NULL,
  UNIQUE KEY customers_email_unique (email)) ENGINE=InnoDB;
INSERT INTO customers (email) SELECT CONCAT('c', seq, '@example.test') FROM seq_1_to_1000;
CREATE TABLE orders (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL,
  code VARCHAR(20) NOT NULL, total DECIMAL(10,2), note VARCHAR(400), digest VARBINARY(16),
  label VARCHAR(30), legacy VARCHAR(10) CHARACTER SET latin1,
  UNIQUE KEY orders_code_unique (code), KEY orders_total_index (total),
  CONSTRAINT orders_customer_id_foreign FOREIGN KEY (customer_id) REFERENCES customers (id)
  ON DELETE CASCADE) ENGINE=InnoDB;
INSERT INTO orders (customer_id, code, total, note, digest, label, legacy)
  SELECT 1 + seq % 1000, CONCAT('o-', seq), seq % 5000 / 3, REPEAT(CHAR(65 + seq % 26), 300),
  UNHEX(MD5(seq)), CONCAT('Grüße 😀 ', seq), CONCAT('café ', seq % 100) FROM seq_1_to_60000;
ANALYZE TABLE orders;
CREATE TRIGGER orders_stamp BEFORE INSERT ON orders FOR EACH ROW SET NEW.note = 'changed';
CREATE TABLE zz_last (id INT PRIMARY KEY) ENGINE=InnoDB;
"
    )
}

#[tokio::test]
async fn values_a_text_dump_would_change_arrive_exactly_and_keys_are_built_after_the_rows() {
    let pair = pair().await;
    let database = "migdb_exact";
    pair.a.mysql(&exact_fixture(database)).unwrap();
    let size = pair
        .a
        .mysql(&format!(
            "SELECT DATA_LENGTH + INDEX_LENGTH, AVG_ROW_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = '{database}' AND TABLE_NAME = 'orders'"
        ))
        .unwrap();
    let (size, row) = size.split_once('\t').unwrap();
    assert!(
        row.parse::<u64>().unwrap() >= 200,
        "orders has wide rows: {row}"
    );
    assert!(
        size.parse::<u64>().unwrap() >= 16 << 20,
        "orders is large: {size}"
    );

    let report = pair.copy(Engine::Mysql, database).await.unwrap();
    print_report(&report);
    let query = |host: &Host, sql: &str| {
        host.mysql(&format!(
            "SET NAMES utf8mb4; SET time_zone = '+00:00'; USE {database}; {sql}"
        ))
        .unwrap()
    };
    let exact = "SELECT id, CAST(f AS DOUBLE), d, flags + 0, HEX(s), s IS NULL, HEX(raw), \
                 MD5(big), at, doubled, n FROM measures ORDER BY id";
    assert_eq!(query(&pair.b, exact), query(&pair.a, exact));
    assert!(
        query(&pair.b, exact)
            .starts_with("1\t0.12345670163631439\t0.12345678901234568\t21\t4E554C4C\t0"),
        "{}",
        query(&pair.b, exact)
    );
    assert_eq!(
        query(&pair.b, "SELECT COUNT(*), COUNT(a) FROM loose"),
        "3\t2"
    );
    // The wide rows go as INSERTs in the binary character set: bytes a string literal must
    // escape (every byte value turns up in 60,000 MD5s), 4-byte UTF-8 and latin1 arrive as stored.
    let wide = "SELECT COUNT(*), SUM(CRC32(CONCAT(HEX(digest), HEX(label), HEX(legacy)))), \
                SUM(LOCATE(0x00, digest) > 0), SUM(LOCATE(0x5C, digest) > 0) FROM orders";
    let on_b = query(&pair.b, wide);
    assert_eq!(on_b, query(&pair.a, wide));
    let counts: Vec<u64> = on_b.split('\t').map(|n| n.parse().unwrap()).collect();
    assert!(
        counts[2] > 1000 && counts[3] > 1000,
        "escaped bytes were sent: {on_b}"
    );
    assert_eq!(
        query(
            &pair.b,
            "SELECT COUNT(*) FROM orders WHERE note = 'changed'"
        ),
        "0",
        "no trigger fired while the rows loaded"
    );
    let keys = "SELECT INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME FROM information_schema.STATISTICS \
                WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX";
    assert_eq!(query(&pair.b, keys), query(&pair.a, keys));
    // InnoDB numbers indexes as it creates them: the schema makes `zz_last` after `orders`, so
    // the keys of `orders` numbered after its primary key were built after the schema.
    let index_id = |table: &str, index: &str| -> u64 {
        query(
            &pair.b,
            &format!(
                "SELECT i.INDEX_ID FROM information_schema.INNODB_SYS_INDEXES i \
                 JOIN information_schema.INNODB_SYS_TABLES t USING (TABLE_ID) \
                 WHERE t.NAME = '{database}/{table}' AND i.NAME = '{index}'"
            ),
        )
        .parse()
        .unwrap()
    };
    let schema_made = index_id("zz_last", "PRIMARY");
    for key in ["orders_code_unique", "orders_total_index"] {
        assert!(
            index_id("orders", key) > schema_made,
            "{key} was built after the rows"
        );
    }
    assert!(index_id("orders", "PRIMARY") < schema_made);
    let foreign = "SELECT CONSTRAINT_NAME, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS \
                   WHERE CONSTRAINT_SCHEMA = DATABASE()";
    assert_eq!(
        query(&pair.b, foreign),
        "orders_customer_id_foreign\tCASCADE"
    );
    query(&pair.b, "DELETE FROM customers WHERE id = 7");
    assert_eq!(
        query(&pair.b, "SELECT COUNT(*) FROM orders WHERE customer_id = 7"),
        "0",
        "the foreign key acts on the target"
    );
    let duplicate = pair.b.mysql(&format!(
        "USE {database}; INSERT INTO orders (customer_id, code) VALUES (1, 'o-1')"
    ));
    assert!(duplicate.is_err(), "the unique key holds on the target");
}

#[tokio::test]
async fn a_row_the_target_cannot_hold_fails_the_copy_naming_the_table_and_the_reason() {
    let pair = pair().await;
    let database = "migdb_refused";
    pair.a
        .mysql(&format!(
            "DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database}; USE {database};
             CREATE TABLE fine (id INT PRIMARY KEY);
             INSERT INTO fine VALUES (1), (2);
             CREATE TABLE ages (id INT PRIMARY KEY, age INT);
             INSERT INTO ages VALUES (1, 30), (2, -4);
             SET SESSION check_constraint_checks = 0;
             ALTER TABLE ages ADD CONSTRAINT age_positive CHECK (age >= 0);"
        ))
        .unwrap();
    let error = pair.copy(Engine::Mysql, database).await.unwrap_err();
    match &error {
        MigrateError::Rows { table, detail } => {
            assert_eq!(table, "ages");
            assert!(detail.contains("age_positive"), "{detail}");
        }
        other => panic!("expected the rows of ages refused, got {other:?}"),
    }
    assert!(
        error.to_string().contains("did not load on the target"),
        "{error}"
    );
}

#[tokio::test]
async fn a_postgres_database_arrives_whole_with_its_trigger_function_and_view() {
    let pair = pair().await;
    let database = "migdb_shop";
    pair.a.psql(&postgres_fixture(database)).unwrap();

    let report = pair.copy(Engine::Postgres, database).await.unwrap();
    print_report(&report);
    assert!(report.verified);
    let expected = vec![
        ("public.audit".to_owned(), 20001),
        ("public.products".to_owned(), 20001),
    ];
    assert_eq!(rows(&report), expected);

    let b = &pair.b;
    let query = |sql: &str| b.psql(&format!("\\c {database}\n{sql}")).unwrap();
    assert_eq!(
        query("SELECT name FROM products WHERE id = 1"),
        "Café ☕ 🚀 ✓"
    );
    assert_eq!(
        query("SELECT encode(photo, 'hex') FROM products WHERE id = 1"),
        "00ff10275c0a0d22"
    );
    assert_eq!(query("SELECT count(*) FROM expensive"), "1");
    query("INSERT INTO products (name, price) VALUES ('on B', 1)");
    assert_eq!(
        query("SELECT note FROM audit ORDER BY id DESC LIMIT 1"),
        "added on B"
    );

    let again = pair.copy(Engine::Postgres, database).await.unwrap();
    print_report(&again);
    assert_eq!(rows(&again), expected, "a second copy converges");
    assert_eq!(query("SELECT count(*) FROM products"), "20001");
}

#[tokio::test]
async fn a_row_changed_on_the_target_after_the_copy_fails_verification_naming_its_table() {
    let pair = pair().await;
    let database = "migdb_corrupt";
    pair.a.mysql(&mariadb_fixture(database)).unwrap();
    pair.a.psql(&postgres_fixture(database)).unwrap();
    pair.copy(Engine::Mysql, database).await.unwrap();
    pair.copy(Engine::Postgres, database).await.unwrap();

    let change = "UPDATE products SET name = 'tampered' WHERE id = 7";
    pair.b.mysql(&format!("USE {database}; {change}")).unwrap();
    pair.b.psql(&format!("\\c {database}\n{change}")).unwrap();

    for (engine, table) in [
        (Engine::Mysql, "products"),
        (Engine::Postgres, "public.products"),
    ] {
        match pair.verify(engine, database).await {
            Err(MigrateError::Mismatch { table: named, .. }) => assert_eq!(named, table),
            other => panic!("{engine:?}: expected a mismatch of {table}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_schema_object_lost_on_the_target_fails_verification_naming_it() {
    let pair = pair().await;
    let database = "migdb_schema";
    pair.a.mysql(&mariadb_fixture(database)).unwrap();
    pair.a.psql(&postgres_fixture(database)).unwrap();
    pair.copy(Engine::Mysql, database).await.unwrap();
    let postgres = pair.copy(Engine::Postgres, database).await.unwrap();
    assert!(postgres.schema_objects >= 8, "{}", postgres.schema_objects);
    pair.verify(Engine::Mysql, database).await.unwrap();

    pair.b
        .mysql(&format!("USE {database}; DROP TRIGGER products_audit"))
        .unwrap();
    pair.b
        .psql(&format!(
            "\\c {database}\nDROP TRIGGER products_audit ON products"
        ))
        .unwrap();
    for (engine, object) in [
        (Engine::Mysql, "trigger products_audit"),
        (Engine::Postgres, "trigger products.products_audit"),
    ] {
        match pair.verify(engine, database).await {
            Err(MigrateError::Schema {
                object: named,
                detail,
            }) => {
                assert_eq!(
                    (named.as_str(), detail.as_str()),
                    (object, "missing on the target")
                );
            }
            other => panic!("{engine:?}: expected {object} missing, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn copying_a_database_the_source_lacks_is_an_error_that_names_it() {
    let pair = pair().await;
    let error = pair.copy(Engine::Mysql, "migdb_nowhere").await.unwrap_err();
    assert!(
        matches!(&error, MigrateError::SourceMissing { database, .. } if database == "migdb_nowhere"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_restore_that_fails_on_the_target_is_an_error_of_the_restore() {
    let pair = pair().await;
    let database = "migdb_grant";
    let fixture = format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE);
CREATE DATABASE {database};
DO $$ BEGIN CREATE ROLE migdb_only_on_a; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
\\c {database}
CREATE TABLE notes (id int PRIMARY KEY, body text);
INSERT INTO notes SELECT n, repeat('x', 100) FROM generate_series(1, 50000) AS n;
GRANT SELECT ON notes TO migdb_only_on_a;
"
    );
    pair.a.psql(&fixture).unwrap();
    pair.b.psql("DROP ROLE IF EXISTS migdb_only_on_a").unwrap();

    let error = pair.copy(Engine::Postgres, database).await.unwrap_err();
    match &error {
        MigrateError::Failed { what, stderr, .. } => {
            assert!(what.contains("restore"), "{error:?}");
            assert!(stderr.contains("migdb_only_on_a"), "{error:?}");
        }
        other => panic!("expected the restore to fail, got {other:?}"),
    }
}

#[tokio::test]
async fn an_administrator_with_a_password_copies_a_mariadb_database() {
    let pair = pair().await;
    let database = "migdb_password";
    let password = "pa ss'\"\\word";
    let login =
        "CREATE OR REPLACE USER 'migdb_admin'@'localhost' IDENTIFIED BY 'pa ss''\"\\\\word';
GRANT ALL ON *.* TO 'migdb_admin'@'localhost' WITH GRANT OPTION;";
    pair.a.mysql(login).unwrap();
    pair.b.mysql(login).unwrap();
    let fixture = format!(
        "SET NAMES utf8mb4; DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database};
USE {database}; CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20)) CHARACTER SET utf8mb4;
INSERT INTO t VALUES (1, '🚀'), (2, NULL);"
    );
    pair.a.mysql(&fixture).unwrap();

    let admin = DbAdmin {
        user: "migdb_admin".into(),
        password: Some(Secret::new(password.into())),
    };
    let report = copy_database(
        &pair.source,
        &pair.target,
        &admin,
        &admin,
        Engine::Mysql,
        database,
    )
    .await
    .unwrap();
    assert_eq!(rows(&report), [("t".to_owned(), 2)]);
}
