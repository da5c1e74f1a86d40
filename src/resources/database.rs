//! The site's database and its users, for MariaDB/MySQL and PostgreSQL.

use super::desired::DesiredSite;
use crate::observe::{ObservedDatabaseUser, ObservedSite};
use crate::plan::step::Engine;
use crate::plan::{Action, Change, ResourceKind, Step};
use crate::spec::secret::ResolvedSecrets;
use crate::spec::site::{Database, Privilege};
use std::collections::BTreeSet;

/// Every database-level privilege MariaDB lists for `GRANT ALL ON db.*`.
pub const MYSQL_ALL: &[&str] = &[
    "ALTER",
    "ALTER ROUTINE",
    "CREATE",
    "CREATE ROUTINE",
    "CREATE TEMPORARY TABLES",
    "CREATE VIEW",
    "DELETE",
    "DROP",
    "EVENT",
    "EXECUTE",
    "INDEX",
    "INSERT",
    "LOCK TABLES",
    "REFERENCES",
    "SELECT",
    "SHOW VIEW",
    "TRIGGER",
    "UPDATE",
];

/// The SQL name of a privilege.
pub fn privilege_sql(privilege: Privilege) -> &'static str {
    match privilege {
        Privilege::All => "ALL",
        Privilege::Select => "SELECT",
        Privilege::Insert => "INSERT",
        Privilege::Update => "UPDATE",
        Privilege::Delete => "DELETE",
        Privilege::Create => "CREATE",
        Privilege::Drop => "DROP",
        Privilege::Alter => "ALTER",
        Privilege::Index => "INDEX",
        Privilege::References => "REFERENCES",
        Privilege::CreateTemporaryTables => "CREATE TEMPORARY TABLES",
        Privilege::LockTables => "LOCK TABLES",
        Privilege::Execute => "EXECUTE",
        Privilege::CreateView => "CREATE VIEW",
        Privilege::ShowView => "SHOW VIEW",
        Privilege::CreateRoutine => "CREATE ROUTINE",
        Privilege::AlterRoutine => "ALTER ROUTINE",
        Privilege::Event => "EVENT",
        Privilege::Trigger => "TRIGGER",
    }
}

/// The privileges as the server reports them, for comparison.
///
/// MariaDB lists `ALL` as its parts. PostgreSQL's database-level model is coarser: `ALL`
/// makes the user the database's owner (what Laravel migrations need); anything else is
/// `CONNECT` plus table privileges granted on the `public` schema.
pub fn expected_privileges(engine: Engine, privileges: &[Privilege]) -> BTreeSet<String> {
    let all = privileges.contains(&Privilege::All);
    match engine {
        Engine::Mysql if all => MYSQL_ALL.iter().map(|p| (*p).to_owned()).collect(),
        Engine::Mysql => privileges
            .iter()
            .map(|p| privilege_sql(*p).to_owned())
            .collect(),
        Engine::Postgres if all => ["OWNER", "CONNECT", "CREATE", "TEMPORARY"]
            .map(String::from)
            .into(),
        Engine::Postgres => ["CONNECT".to_owned()].into(),
    }
}

fn observed_privileges(user: &ObservedDatabaseUser) -> BTreeSet<String> {
    user.privileges
        .iter()
        .filter(|p| p.as_str() != "DELETE HISTORY")
        .cloned()
        .collect()
}

/// # Guarantees
/// `CreateDatabase` uses `IF NOT EXISTS`; `AlterDatabase` only runs when charset or
/// collation differ.
pub fn diff_database(desired: &DesiredSite, observed: &ObservedSite) -> Option<Change> {
    let database = desired.site.spec.database.as_ref()?;
    let engine = Engine::of(database.engine);
    let name = database.name.to_string();
    let Some(found) = &observed.database else {
        let step = Step::CreateDatabase {
            engine,
            name: name.clone(),
            charset: database.charset.clone(),
            collation: database.collation.clone(),
        };
        return Some(
            Change::new(
                ResourceKind::Database,
                &name,
                Action::Create,
                format!("database `{name}` does not exist"),
            )
            .step(step),
        );
    };
    let drift = charset_drift(database, &found.charset, &found.collation);
    if drift.is_empty() {
        return Some(Change::no_op(ResourceKind::Database, &name));
    }
    let step = Step::AlterDatabase {
        engine,
        name: name.clone(),
        charset: database.charset.clone(),
        collation: database.collation.clone(),
    };
    Some(
        Change::new(
            ResourceKind::Database,
            &name,
            Action::Update,
            drift.join("; "),
        )
        .step(step),
    )
}

fn charset_drift(database: &Database, charset: &str, collation: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(want) = &database.charset
        && !want.eq_ignore_ascii_case(charset)
    {
        out.push(format!("charset is {charset}, want {want}"));
    }
    if let Some(want) = &database.collation
        && !want.eq_ignore_ascii_case(collation)
    {
        out.push(format!("collation is {collation}, want {want}"));
    }
    out
}

/// # Guarantees
/// `EnsureDatabaseUser` creates the user when missing, sets its password, and grants and
/// revokes privileges so that they match exactly; running it twice changes nothing more.
pub fn diff_users(
    desired: &DesiredSite,
    observed: &ObservedSite,
    secrets: &ResolvedSecrets,
    recorded: &[String],
) -> Vec<Change> {
    let Some(database) = &desired.site.spec.database else {
        return Vec::new();
    };
    let engine = Engine::of(database.engine);
    let mut changes: Vec<Change> = database
        .users
        .iter()
        .map(|user| {
            let name = user.name.to_string();
            let wanted = expected_privileges(engine, &user.privileges);
            let step = Step::EnsureDatabaseUser {
                engine,
                database: database.name.to_string(),
                name: name.clone(),
                password: user.password.clone(),
                privileges: user
                    .privileges
                    .iter()
                    .map(|p| privilege_sql(*p).to_owned())
                    .collect(),
            };
            let Some(found) = observed.database_users.get(&name) else {
                return Change::new(
                    ResourceKind::DatabaseUser,
                    &name,
                    Action::Create,
                    format!("user `{name}` does not exist"),
                )
                .step(step);
            };
            let mut reasons = Vec::new();
            let have = observed_privileges(found);
            if have != wanted {
                let missing: Vec<&str> = wanted.difference(&have).map(String::as_str).collect();
                let extra: Vec<&str> = have.difference(&wanted).map(String::as_str).collect();
                if !missing.is_empty() {
                    reasons.push(format!("missing {}", missing.join(", ")));
                }
                if !extra.is_empty() {
                    reasons.push(format!("extra {}", extra.join(", ")));
                }
            }
            let password = secrets.get(&user.password).map(|s| s.expose().to_owned());
            if !password_matches(
                engine,
                found.password_verifier.as_deref(),
                password.as_deref(),
            ) {
                reasons.push("password differs from the secret".to_owned());
            }
            if reasons.is_empty() {
                Change::no_op(ResourceKind::DatabaseUser, &name)
            } else {
                Change::new(
                    ResourceKind::DatabaseUser,
                    &name,
                    Action::Update,
                    reasons.join("; "),
                )
                .step(step)
            }
        })
        .collect();
    for name in recorded {
        let named = database.users.iter().any(|u| u.name.as_str() == name);
        if !named && observed.database_users.contains_key(name) {
            changes.push(
                Change::new(
                    ResourceKind::DatabaseUser,
                    name,
                    Action::Delete,
                    format!("user `{name}` is no longer in the spec"),
                )
                .step(Step::DropDatabaseUser {
                    engine,
                    name: name.clone(),
                }),
            );
        }
    }
    changes
}

/// Whether a stored verifier is for this password. Unknown verifiers count as a mismatch
/// only when there is a password to compare.
fn password_matches(engine: Engine, verifier: Option<&str>, password: Option<&str>) -> bool {
    let (Some(verifier), Some(password)) = (verifier, password) else {
        return verifier.is_some() || password.is_none();
    };
    match engine {
        Engine::Mysql => super::verifier::mysql_native_matches(verifier, password),
        Engine::Postgres => super::verifier::scram_matches(verifier, password),
    }
}
