//! SQL for database steps. Identifiers are validated names; passwords never appear in SQL:
//! only verifiers computed here (MariaDB native hash, PostgreSQL SCRAM), so that server logs
//! and process lists can never show a password.

use crate::plan::step::Engine;
use sha2::{Digest, Sha256};
use std::io::Read;

/// Why SQL could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("`{0}` is not a safe charset or collation name (letters, digits, `_`, `-`, `.`)")]
    UnsafeWord(String),
    #[error("PostgreSQL cannot change the encoding or collation of an existing database `{0}`")]
    PostgresEncoding(String),
    #[error("no randomness for a password salt: {0}")]
    Random(#[source] std::io::Error),
}

fn safe_word(word: &str) -> Result<&str, SqlError> {
    let ok = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(word)
    } else {
        Err(SqlError::UnsafeWord(word.to_owned()))
    }
}

/// ` CHARACTER SET x COLLATE y` for MariaDB/MySQL, each part only when given.
fn mysql_charset_clause(
    charset: Option<&str>,
    collation: Option<&str>,
) -> Result<String, SqlError> {
    let mut clause = String::new();
    if let Some(charset) = charset {
        clause.push_str(&format!(" CHARACTER SET {}", safe_word(charset)?));
    }
    if let Some(collation) = collation {
        clause.push_str(&format!(" COLLATE {}", safe_word(collation)?));
    }
    Ok(clause)
}

/// `CREATE DATABASE` when it does not exist.
pub fn create_database(
    engine: Engine,
    name: &str,
    charset: Option<&str>,
    collation: Option<&str>,
) -> Result<String, SqlError> {
    match engine {
        Engine::Mysql => {
            let clause = mysql_charset_clause(charset, collation)?;
            Ok(format!("CREATE DATABASE IF NOT EXISTS `{name}`{clause};\n"))
        }
        Engine::Postgres => {
            let mut create = format!("CREATE DATABASE \"{name}\"");
            if let Some(charset) = charset {
                create.push_str(&format!(" ENCODING '{}'", safe_word(charset)?));
            }
            if let Some(collation) = collation {
                let collation = safe_word(collation)?;
                create.push_str(&format!(" LC_COLLATE '{collation}' LC_CTYPE '{collation}'"));
            }
            if charset.is_some() || collation.is_some() {
                create.push_str(" TEMPLATE template0");
            }
            Ok(format!(
                "SELECT '{}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{name}')\\gexec\n",
                create.replace('\'', "''")
            ))
        }
    }
}

/// Changes charset and collation (MariaDB/MySQL only).
pub fn alter_database(
    engine: Engine,
    name: &str,
    charset: Option<&str>,
    collation: Option<&str>,
) -> Result<String, SqlError> {
    match engine {
        Engine::Postgres => Err(SqlError::PostgresEncoding(name.to_owned())),
        Engine::Mysql => {
            let clause = mysql_charset_clause(charset, collation)?;
            Ok(format!("ALTER DATABASE `{name}`{clause};\n"))
        }
    }
}

/// Creates or updates a user, sets its password verifier, and makes its privileges on the
/// database exactly `privileges`.
pub fn ensure_user(
    engine: Engine,
    database: &str,
    name: &str,
    password: &str,
    privileges: &[String],
) -> Result<String, SqlError> {
    match engine {
        Engine::Mysql => Ok(mysql_ensure_user(database, name, password, privileges)),
        Engine::Postgres => postgres_ensure_user(database, name, password, privileges),
    }
}

/// The hosts of a site's MariaDB/MySQL accounts: the socket (`localhost`) and TCP on the
/// loopback (`127.0.0.1`, which a server with `skip_name_resolve` does not call `localhost`;
/// Laravel's default `DB_HOST`).
const MYSQL_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

fn mysql_ensure_user(database: &str, name: &str, password: &str, privileges: &[String]) -> String {
    let hash = mysql_native_hash(password);
    let wanted = if privileges.iter().any(|p| p == "ALL") {
        "ALL PRIVILEGES".to_owned()
    } else {
        privileges.join(", ")
    };
    let mut sql = String::new();
    for host in MYSQL_HOSTS {
        let account = format!("'{name}'@'{host}'");
        sql.push_str(&format!(
            "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY PASSWORD '{hash}';\n\
             ALTER USER {account} IDENTIFIED BY PASSWORD '{hash}';\n\
             GRANT USAGE ON `{database}`.* TO {account};\n\
             GRANT SELECT ON `{database}`.* TO {account};\n\
             REVOKE ALL PRIVILEGES ON `{database}`.* FROM {account};\n\
             GRANT {wanted} ON `{database}`.* TO {account};\n"
        ));
    }
    sql
}

fn postgres_ensure_user(
    database: &str,
    name: &str,
    password: &str,
    privileges: &[String],
) -> Result<String, SqlError> {
    let verifier = scram_verifier(password)?;
    let mut sql = format!(
        "SELECT 'CREATE ROLE \"{name}\" LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}')\\gexec\n\
         ALTER ROLE \"{name}\" WITH LOGIN PASSWORD '{verifier}';\n"
    );
    if privileges.iter().any(|p| p == "ALL") {
        sql.push_str(&format!(
            "ALTER DATABASE \"{database}\" OWNER TO \"{name}\";\nGRANT ALL PRIVILEGES ON DATABASE \"{database}\" TO \"{name}\";\n"
        ));
    } else {
        let table_privileges: Vec<&str> = privileges
            .iter()
            .map(String::as_str)
            .filter(|p| {
                [
                    "SELECT",
                    "INSERT",
                    "UPDATE",
                    "DELETE",
                    "REFERENCES",
                    "TRIGGER",
                ]
                .contains(p)
            })
            .collect();
        sql.push_str(&format!("GRANT CONNECT ON DATABASE \"{database}\" TO \"{name}\";\n\\connect \"{database}\"\nGRANT USAGE ON SCHEMA public TO \"{name}\";\n"));
        if !table_privileges.is_empty() {
            let list = table_privileges.join(", ");
            sql.push_str(&format!(
                "GRANT {list} ON ALL TABLES IN SCHEMA public TO \"{name}\";\nALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {list} ON TABLES TO \"{name}\";\n"
            ));
        }
    }
    Ok(sql)
}

/// Drops a user.
pub fn drop_user(engine: Engine, name: &str) -> String {
    match engine {
        Engine::Mysql => MYSQL_HOSTS
            .iter()
            .map(|host| format!("DROP USER IF EXISTS '{name}'@'{host}';\n"))
            .collect(),
        Engine::Postgres => format!(
            "SELECT 'REASSIGN OWNED BY \"{name}\" TO CURRENT_USER' WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}')\\gexec\n\
             SELECT 'DROP OWNED BY \"{name}\"' WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}')\\gexec\n\
             DROP ROLE IF EXISTS \"{name}\";\n"
        ),
    }
}

/// Drops a database.
pub fn drop_database(engine: Engine, name: &str) -> String {
    match engine {
        Engine::Mysql => format!("DROP DATABASE IF EXISTS `{name}`;\n"),
        Engine::Postgres => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE);\n"),
    }
}

/// MariaDB's `mysql_native_password` hash.
pub fn mysql_native_hash(password: &str) -> String {
    let inner = sha1::Sha1::digest(password.as_bytes());
    format!("*{}", hex::encode_upper(sha1::Sha1::digest(inner)))
}

/// A PostgreSQL SCRAM-SHA-256 verifier with a fresh salt.
pub fn scram_verifier(password: &str) -> Result<String, SqlError> {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .map_err(SqlError::Random)?;
    let iterations = 4096;
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    let mac = |message: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(&salted).expect("HMAC takes any key length");
        mac.update(message);
        mac.finalize().into_bytes()
    };
    let stored_key = Sha256::digest(mac(b"Client Key"));
    let server_key = mac(b"Server Key");
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64(&salt),
        b64(&stored_key),
        b64(&server_key)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::verifier::{mysql_native_matches, scram_matches};

    #[test]
    fn generated_verifiers_match_their_password() {
        let scram = scram_verifier("p@ss'word").unwrap();
        assert!(scram_matches(&scram, "p@ss'word"));
        assert!(!scram_matches(&scram, "other"));
        assert!(mysql_native_matches(
            &mysql_native_hash("p@ss'word"),
            "p@ss'word"
        ));
    }

    #[test]
    fn sql_never_contains_the_password() {
        let sql = ensure_user(
            Engine::Mysql,
            "shop",
            "shop",
            "canary-9f3b",
            &["ALL".into()],
        )
        .unwrap();
        assert!(!sql.contains("canary-9f3b"));
        let sql = ensure_user(
            Engine::Postgres,
            "shop",
            "shop",
            "canary-9f3b",
            &["SELECT".into()],
        )
        .unwrap();
        assert!(!sql.contains("canary-9f3b"));
    }

    #[test]
    fn charset_and_collation_are_added_only_when_given() {
        let sql =
            create_database(Engine::Mysql, "shop", Some("utf8mb4"), Some("utf8mb4_bin")).unwrap();
        assert_eq!(
            sql,
            "CREATE DATABASE IF NOT EXISTS `shop` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n"
        );
        assert_eq!(
            alter_database(Engine::Mysql, "shop", None, Some("utf8mb4_bin")).unwrap(),
            "ALTER DATABASE `shop` COLLATE utf8mb4_bin;\n"
        );
    }

    #[test]
    fn unsafe_charsets_are_refused() {
        assert!(create_database(Engine::Mysql, "shop", Some("utf8mb4; DROP"), None).is_err());
    }
}
