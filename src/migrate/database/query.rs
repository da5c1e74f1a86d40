//! Queries as the administrator, with their answers parsed.

use super::stream::checked;
use super::*;

/// Runs a query as the administrator — `(engine, database, sql)` — and parses its answer; an
/// answer `parse` refuses is an error saying what was being done.
pub(super) async fn query_parsed<T>(
    transport: &impl Transport,
    admin: &DbAdmin,
    (engine, database, query): (Engine, Option<&str>, &str),
    what: impl FnOnce() -> String,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, MigrateError> {
    let answer = run_sql(transport, admin, engine, database, query).await?;
    parse(&answer).ok_or_else(|| MigrateError::Answer {
        what: what(),
        endpoint: transport.endpoint().to_owned(),
        answer,
    })
}

/// Runs `sql` as the administrator (the executor's `sql.sh`) and returns its output.
pub(super) async fn run_sql(
    transport: &impl Transport,
    admin: &DbAdmin,
    engine: Engine,
    database: Option<&str>,
    sql: &str,
) -> Result<String, MigrateError> {
    let command = Command::script(SQL)
        .args(admin.login_args(engine))
        .arg(database.unwrap_or(""))
        .render()?;
    let mut stdin = admin.password_line();
    stdin.extend_from_slice(sql.as_bytes());
    let output = transport.exec(&command, Stdin::Bytes(&stdin)).await;
    let what = format!("SQL on database `{}`", database.unwrap_or("(none)"));
    let stdout = checked(transport.endpoint(), &what, output)?;
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

pub(super) fn engine_word(engine: Engine) -> &'static str {
    match engine {
        Engine::Mysql => "mysql",
        Engine::Postgres => "postgres",
    }
}
