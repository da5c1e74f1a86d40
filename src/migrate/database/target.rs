//! Preparing the target: what both servers offer the copy, and its database made again empty.

use super::stream::checked;
use super::*;

/// What the two servers offer the copy: the wire compression and the target's cores.
pub(super) struct Probe {
    pub(super) compression: Compression,
    pub(super) target_cpus: usize,
}

/// zstd when both servers have it, else gzip; and how many cores the target has.
pub(super) async fn probe(
    source: &impl Transport,
    target: &impl Transport,
) -> Result<Probe, MigrateError> {
    let command = Command::script(COMPRESSION).render()?;
    let what = "looking for zstd";
    let (on_source, on_target) = tokio::join!(
        source.exec(&command, Stdin::Empty),
        target.exec(&command, Stdin::Empty),
    );
    let on_source = checked(source.endpoint(), what, on_source)?;
    let on_target = checked(target.endpoint(), what, on_target)?;
    let (source_tool, _) = parse_probe(&on_source);
    let (target_tool, target_cpus) = parse_probe(&on_target);
    Ok(Probe {
        compression: Compression::shared(source_tool == "zstd", target_tool == "zstd"),
        target_cpus,
    })
}

/// `db_compression.sh`'s answer: its compressor, and its count of cores (1 when unknown).
pub(super) fn parse_probe(answer: &[u8]) -> (String, usize) {
    let answer = String::from_utf8_lossy(answer);
    let mut words = answer.split_whitespace();
    let tool = words.next().unwrap_or_default().to_owned();
    let cpus = words.next().and_then(|cpus| cpus.parse().ok()).unwrap_or(1);
    (tool, cpus)
}

/// Drops and creates database `name` on the target, like the source's. Returns the role that
/// must own the restored objects (PostgreSQL, when not the administrator).
pub(super) async fn recreate_target(
    source: &impl Transport,
    target: &impl Transport,
    source_admin: &DbAdmin,
    target_admin: &DbAdmin,
    engine: Engine,
    name: &str,
) -> Result<Option<String>, MigrateError> {
    let settings_query = sql::database_settings(engine, name);
    let settings = run_sql(source, source_admin, engine, None, &settings_query).await?;
    let settings = sql::parse_settings(&settings).ok_or_else(|| MigrateError::Answer {
        what: format!("reading the settings of database `{name}`"),
        endpoint: source.endpoint().to_owned(),
        answer: settings.clone(),
    })?;
    let Some(settings) = settings else {
        return Err(MigrateError::SourceMissing {
            database: name.to_owned(),
            endpoint: source.endpoint().to_owned(),
        });
    };
    let owner = match engine {
        Engine::Mysql => None,
        Engine::Postgres => target_owner(target, target_admin, name).await?,
    };
    let recreate = sql::recreate_database(engine, name, &settings, owner.as_deref());
    run_sql(target, target_admin, engine, None, &recreate).await?;
    Ok(owner.filter(|owner| *owner != target_admin.user))
}

/// The owner of database `name` on the target, when it exists (PostgreSQL).
pub(super) async fn target_owner(
    target: &impl Transport,
    admin: &DbAdmin,
    name: &str,
) -> Result<Option<String>, MigrateError> {
    let answer = run_sql(target, admin, Engine::Postgres, None, &sql::owner(name)).await?;
    let owner = answer.trim();
    if owner.is_empty() {
        return Ok(None);
    }
    validate_identifier(IdentifierKind::DatabaseUser, owner)?;
    Ok(Some(owner.to_owned()))
}
