//! The site's database: what its `.env` names, checked against what the database servers hold
//! (read as root over the socket and as `postgres` by peer authentication, never with the
//! application's password).

use std::collections::{BTreeMap, BTreeSet};

use super::Item;
use super::answer::Answer;
use crate::resources::database::MYSQL_ALL;
use crate::spec::names::{DatabaseName, DatabaseUser};
use crate::spec::secret::SecretRef;
use crate::spec::site::{Database, DatabaseEngine, DatabaseUserSpec, Privilege};

/// A database as its server lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub charset: String,
    pub collation: String,
    /// PostgreSQL: the owner role.
    pub owner: String,
}

/// What the database servers of one machine hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerDatabases {
    pub mariadb: bool,
    pub mysql: Vec<Listed>,
    /// `(user, host)`.
    pub mysql_users: Vec<(String, String)>,
    /// `(user, schema or *, privilege)`.
    pub mysql_grants: Vec<(String, String, String)>,
    pub postgres: Vec<Listed>,
    pub postgres_roles: BTreeSet<String>,
    pub errors: BTreeMap<String, String>,
}

impl ServerDatabases {
    /// Reads the probe's query output.
    pub fn parse(answer: &Answer) -> Self {
        let mut out = ServerDatabases {
            mariadb: answer
                .versions
                .get("mysql")
                .is_some_and(|v| v.contains("MariaDB")),
            errors: answer
                .database_errors
                .iter()
                .filter(|(_, e)| !e.trim().is_empty())
                .map(|(k, v)| (k.clone(), v.trim().to_owned()))
                .collect(),
            ..ServerDatabases::default()
        };
        for line in answer
            .databases
            .get("mysql")
            .map(String::as_str)
            .unwrap_or_default()
            .lines()
        {
            out.mysql_line(&line.split('\t').collect::<Vec<_>>());
        }
        for line in answer
            .databases
            .get("postgres")
            .map(String::as_str)
            .unwrap_or_default()
            .lines()
        {
            out.postgres_line(&line.split('\t').collect::<Vec<_>>());
        }
        out
    }

    fn mysql_line(&mut self, fields: &[&str]) {
        match fields {
            ["database", name, charset, collation] => self.mysql.push(Listed {
                name: (*name).to_owned(),
                charset: (*charset).to_owned(),
                collation: (*collation).to_owned(),
                owner: String::new(),
            }),
            ["user", user, host] => self
                .mysql_users
                .push(((*user).to_owned(), (*host).to_owned())),
            ["grant" | "global", grantee, schema, privilege] => {
                if let Some(user) = grantee_user(grantee) {
                    self.mysql_grants.push((
                        user,
                        schema.replace("\\_", "_").replace("\\%", "%"),
                        (*privilege).to_owned(),
                    ));
                }
            }
            _ => {}
        }
    }

    fn postgres_line(&mut self, fields: &[&str]) {
        match fields {
            ["database", name, encoding, collate, owner] => self.postgres.push(Listed {
                name: (*name).to_owned(),
                charset: (*encoding).to_owned(),
                collation: (*collate).to_owned(),
                owner: (*owner).to_owned(),
            }),
            ["user", role, ..] => drop(self.postgres_roles.insert((*role).to_owned())),
            _ => {}
        }
    }
}

/// `'shop'@'%'` → `shop`.
fn grantee_user(grantee: &str) -> Option<String> {
    let rest = grantee.strip_prefix('\'')?;
    let (user, _) = rest.split_once("'@'")?;
    Some(user.to_owned())
}

/// A fact about the database: what, value, where.
pub type DatabaseFact = (&'static str, String, String);

/// The site's database as its `.env` (at `env_path`) names it, or why it cannot be in the spec.
/// `Ok(None)`: the site uses none (or SQLite).
///
/// # Errors
/// An [`Item`] when the database is elsewhere, missing, or its names are not ones siteward
/// manages.
pub fn site_database(
    servers: &ServerDatabases,
    env: &BTreeMap<String, String>,
    password: Option<SecretRef>,
    env_path: &str,
) -> Result<Option<(Database, Vec<DatabaseFact>)>, Item> {
    let connection = env
        .get("DB_CONNECTION")
        .map(String::as_str)
        .unwrap_or("mysql");
    let Some(name) = env.get("DB_DATABASE").filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let engine = match connection {
        "mysql" | "mariadb" if servers.mariadb => DatabaseEngine::Mariadb,
        "mysql" | "mariadb" => DatabaseEngine::Mysql,
        "pgsql" => DatabaseEngine::Postgres,
        "sqlite" => return Ok(None),
        other => {
            return Err(problem(
                "database-engine",
                format!("DB_CONNECTION `{other}` is no engine siteward manages"),
                env_path,
            ));
        }
    };
    let host = env
        .get("DB_HOST")
        .map(String::as_str)
        .unwrap_or("127.0.0.1");
    if !["", "127.0.0.1", "localhost", "::1"].contains(&host) {
        return Err(problem(
            "database-remote",
            format!(
                "the database is on {host}, not on this server: siteward manages databases on the site's server"
            ),
            env_path,
        ));
    }
    let postgres = engine == DatabaseEngine::Postgres;
    let listed = if postgres {
        &servers.postgres
    } else {
        &servers.mysql
    };
    let Some(found) = listed.iter().find(|d| &d.name == name) else {
        let server = if postgres { "postgres" } else { "mysql" };
        let why = servers
            .errors
            .get(server)
            .map(|e| format!(" (the server could not be read: {e})"))
            .unwrap_or_default();
        return Err(problem(
            "database-missing",
            format!("database `{name}` named by DB_DATABASE does not exist on this server{why}"),
            env_path,
        ));
    };
    let database_name = DatabaseName::new(name.as_str()).map_err(|why| {
        problem(
            "database-name",
            format!("database `{name}`: {why}"),
            env_path,
        )
    })?;
    let mut facts = vec![(
        "database",
        format!(
            "{} `{name}` ({}, {})",
            engine_word(engine),
            found.charset,
            found.collation
        ),
        format!("{env_path} DB_DATABASE, the server's catalogue"),
    )];
    let users = match env.get("DB_USERNAME").filter(|u| !u.is_empty()) {
        Some(user) => vec![database_user(
            servers, engine, found, user, password, env_path, &mut facts,
        )?],
        None => Vec::new(),
    };
    let database = Database {
        engine,
        name: database_name,
        charset: Some(found.charset.clone()).filter(|c| !c.is_empty()),
        collation: Some(found.collation.clone()).filter(|c| !c.is_empty()),
        users,
    };
    Ok(Some((database, facts)))
}

fn database_user(
    servers: &ServerDatabases,
    engine: DatabaseEngine,
    database: &Listed,
    user: &str,
    password: Option<SecretRef>,
    env_path: &str,
    facts: &mut Vec<DatabaseFact>,
) -> Result<DatabaseUserSpec, Item> {
    let name = DatabaseUser::new(user).map_err(|why| {
        problem(
            "database-user",
            format!("database user `{user}`: {why}"),
            env_path,
        )
    })?;
    let Some(password) = password else {
        return Err(problem(
            "database-password",
            format!(
                "DB_PASSWORD is empty: siteward's database users have passwords (user `{user}`)"
            ),
            env_path,
        ));
    };
    let privileges = if engine == DatabaseEngine::Postgres {
        postgres_privileges(servers, database, user, env_path, facts)?
    } else {
        mysql_privileges(servers, database, user, env_path, facts)?
    };
    facts.push((
        "database user",
        user.to_owned(),
        format!("{env_path} DB_USERNAME"),
    ));
    Ok(DatabaseUserSpec {
        name,
        password,
        privileges,
    })
}

fn postgres_privileges(
    servers: &ServerDatabases,
    database: &Listed,
    user: &str,
    env_path: &str,
    facts: &mut Vec<DatabaseFact>,
) -> Result<Vec<Privilege>, Item> {
    if !servers.postgres_roles.contains(user) {
        return Err(problem(
            "database-user-missing",
            format!("role `{user}` named by DB_USERNAME does not exist"),
            env_path,
        ));
    }
    if database.owner != user {
        facts.push((
            "database owner",
            format!(
                "`{}`: the first apply makes `{user}` the owner (siteward's `ALL`)",
                database.owner
            ),
            "pg_database".to_owned(),
        ));
    }
    Ok(vec![Privilege::All])
}

fn mysql_privileges(
    servers: &ServerDatabases,
    database: &Listed,
    user: &str,
    env_path: &str,
    facts: &mut Vec<DatabaseFact>,
) -> Result<Vec<Privilege>, Item> {
    let hosts: Vec<&str> = servers
        .mysql_users
        .iter()
        .filter(|(u, _)| u == user)
        .map(|(_, h)| h.as_str())
        .collect();
    if hosts.is_empty() {
        return Err(problem(
            "database-user-missing",
            format!("user `{user}` named by DB_USERNAME does not exist"),
            env_path,
        ));
    }
    let on = |schema: &str| -> BTreeSet<&str> {
        servers
            .mysql_grants
            .iter()
            .filter(|(u, s, _)| u == user && s == schema)
            .map(|(_, _, p)| p.as_str())
            .collect()
    };
    let all = |set: &BTreeSet<&str>| MYSQL_ALL.iter().all(|p| set.contains(p));
    if !hosts.contains(&"localhost") {
        facts.push((
            "database user hosts",
            hosts.join(", "),
            "mysql.user".to_owned(),
        ));
    }
    if all(&on(&database.name)) || all(&on("*")) {
        return Ok(vec![Privilege::All]);
    }
    let granted = on(&database.name);
    let privileges: Vec<Privilege> = granted.iter().filter_map(|p| privilege(p)).collect();
    if privileges.is_empty() {
        return Err(problem(
            "database-grants",
            format!("user `{user}` holds no privilege on `{}`", database.name),
            env_path,
        ));
    }
    Ok(privileges)
}

fn privilege(sql: &str) -> Option<Privilege> {
    let word = sql.to_ascii_lowercase().replace(' ', "-");
    serde_json::from_value(serde_json::Value::String(
        word.to_ascii_uppercase().replace('-', "_"),
    ))
    .ok()
}

fn engine_word(engine: DatabaseEngine) -> &'static str {
    match engine {
        DatabaseEngine::Mysql => "MySQL",
        DatabaseEngine::Mariadb => "MariaDB",
        DatabaseEngine::Postgres => "PostgreSQL",
    }
}

fn problem(kind: &'static str, message: String, source: &str) -> Item {
    Item {
        kind,
        message,
        source: Some(source.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> ServerDatabases {
        let mut answer = Answer::default();
        answer.versions.insert(
            "mysql".into(),
            "mariadbd  Ver 10.11.6-MariaDB-0+deb12u1".into(),
        );
        let mut rows: Vec<String> = vec![
            "database\tshop\tutf8mb4\tutf8mb4_unicode_ci".into(),
            "user\tshop\t%".into(),
            "user\tforge\t%".into(),
        ];
        rows.extend(
            MYSQL_ALL
                .iter()
                .map(|p| format!("grant\t'shop'@'%'\tshop\t{p}")),
        );
        rows.push("global\t'forge'@'%'\t*\tSELECT".into());
        answer.databases.insert("mysql".into(), rows.join("\n"));
        answer.databases.insert(
            "postgres".into(),
            "database\tblog\tUTF8\tC.UTF-8\tblog\nuser\tblog\t\n".into(),
        );
        ServerDatabases::parse(&answer)
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn password() -> Option<SecretRef> {
        Some(SecretRef {
            secret: "env:SHOP_DB_PASSWORD".into(),
        })
    }

    #[test]
    fn a_mariadb_database_with_all_privileges_becomes_a_spec_with_a_password_reference() {
        let env = env(&[
            ("DB_CONNECTION", "mysql"),
            ("DB_DATABASE", "shop"),
            ("DB_USERNAME", "shop"),
            ("DB_PASSWORD", "x"),
        ]);
        let (database, facts) = site_database(&servers(), &env, password(), "/e")
            .unwrap()
            .unwrap();
        assert_eq!(database.engine, DatabaseEngine::Mariadb);
        assert_eq!(database.collation.as_deref(), Some("utf8mb4_unicode_ci"));
        assert_eq!(database.users[0].privileges, vec![Privilege::All]);
        assert_eq!(database.users[0].password.secret, "env:SHOP_DB_PASSWORD");
        assert!(
            facts
                .iter()
                .any(|(what, value, _)| *what == "database user hosts" && value == "%")
        );
    }

    #[test]
    fn postgres_owner_and_missing_or_remote_databases_are_told_apart() {
        let servers = servers();
        let pg = env(&[
            ("DB_CONNECTION", "pgsql"),
            ("DB_DATABASE", "blog"),
            ("DB_USERNAME", "blog"),
        ]);
        let (database, _) = site_database(&servers, &pg, password(), "/e")
            .unwrap()
            .unwrap();
        assert_eq!(
            (database.engine, database.charset.as_deref()),
            (DatabaseEngine::Postgres, Some("UTF8"))
        );
        let missing = env(&[("DB_DATABASE", "nope")]);
        assert_eq!(
            site_database(&servers, &missing, None, "/e")
                .unwrap_err()
                .kind,
            "database-missing"
        );
        let remote = env(&[("DB_DATABASE", "shop"), ("DB_HOST", "10.0.0.5")]);
        assert_eq!(
            site_database(&servers, &remote, None, "/e")
                .unwrap_err()
                .kind,
            "database-remote"
        );
        let sqlite = env(&[("DB_CONNECTION", "sqlite"), ("DB_DATABASE", "/x.sqlite")]);
        assert!(
            site_database(&servers, &sqlite, None, "/e")
                .unwrap()
                .is_none()
        );
        let no_password = env(&[("DB_DATABASE", "shop"), ("DB_USERNAME", "shop")]);
        assert_eq!(
            site_database(&servers, &no_password, None, "/e")
                .unwrap_err()
                .kind,
            "database-password"
        );
    }

    #[test]
    fn privilege_names_map_to_the_spec() {
        assert_eq!(
            privilege("CREATE TEMPORARY TABLES"),
            Some(Privilege::CreateTemporaryTables)
        );
        assert_eq!(privilege("SELECT"), Some(Privilege::Select));
        assert_eq!(privilege("FILE"), None);
    }
}
