//! The local state store: history of plans and applies, and each site's conditions.
//! SQLite by default (`.siteward/state.db`), PostgreSQL with a `postgres://` URL.

pub mod leases;
mod sites;

use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::path::Path;
use std::str::FromStr;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store `{location}`")]
    Open {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the directory of the state store `{0}`")]
    Directory(String, #[source] std::io::Error),
    #[error("the state store's migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a state store query failed")]
    Query(#[from] sqlx::Error),
    #[error("{0}")]
    Unsupported(&'static str),
}

/// A run to record.
#[derive(Clone, Debug)]
pub struct NewRun<'a> {
    pub kind: &'a str,
    pub spec_hash: &'a str,
    pub observed_fingerprint: &'a str,
    pub outcome: &'a str,
    pub summary: &'a str,
    pub plan_json: &'a str,
}

/// A site's part of a run.
#[derive(Clone, Debug)]
pub struct NewSiteRun<'a> {
    pub site: &'a str,
    pub server: &'a str,
    pub ok: bool,
    pub millis: i64,
    pub error: Option<&'a str>,
    pub steps_json: &'a str,
    /// The migration report (JSON), when the site moved in this run.
    pub migration_json: Option<&'a str>,
}

/// A site's last recorded apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteRunRecord {
    pub run_id: i64,
    pub kind: String,
    pub started_unix: i64,
    pub site: String,
    pub server: String,
    pub ok: bool,
    pub millis: i64,
    pub error: Option<String>,
    pub steps_json: String,
    pub migration_json: Option<String>,
}

/// The store, on SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub enum StateStore {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl StateStore {
    /// Opens (and migrates) the store at a path, `sqlite:` URL or `postgres://` URL.
    pub async fn open(location: &str) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open {
            location: location.to_owned(),
            source,
        };
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .connect(location)
                .await
                .map_err(open_error)?;
            POSTGRES_MIGRATIONS.run(&pool).await?;
            return Ok(StateStore::Postgres(pool));
        }
        let path = location
            .strip_prefix("sqlite://")
            .or_else(|| location.strip_prefix("sqlite:"))
            .unwrap_or(location);
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Directory(parent.display().to_string(), e))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(open_error)?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        Ok(StateStore::Sqlite(pool))
    }

    /// Records a run; returns its id.
    pub async fn record_run(&self, run: &NewRun<'_>) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO runs (kind, started_unix, spec_hash, observed_fingerprint, outcome, summary, plan_json) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
        let id = match self {
            StateStore::Sqlite(pool) => bind_run(sqlx::query(SQL), run)
                .fetch_one(pool)
                .await?
                .try_get::<i64, _>(0)?,
            StateStore::Postgres(pool) => bind_run(sqlx::query(SQL), run)
                .fetch_one(pool)
                .await?
                .try_get::<i64, _>(0)?,
        };
        Ok(id)
    }

    /// Records a site's part of a run.
    pub async fn record_site_run(
        &self,
        run_id: i64,
        site: &NewSiteRun<'_>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO site_runs (run_id, site, server, ok, millis, error, steps_json, migration_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        macro_rules! run {
            ($pool:expr) => {
                sqlx::query(SQL)
                    .bind(run_id)
                    .bind(site.site)
                    .bind(site.server)
                    .bind(site.ok)
                    .bind(site.millis)
                    .bind(site.error)
                    .bind(site.steps_json)
                    .bind(site.migration_json)
                    .execute($pool)
                    .await?
            };
        }
        match self {
            StateStore::Sqlite(pool) => {
                run!(pool);
            }
            StateStore::Postgres(pool) => {
                run!(pool);
            }
        }
        Ok(())
    }

    /// The last applies of a site, newest first.
    pub async fn site_history(
        &self,
        site: &str,
        limit: i64,
    ) -> Result<Vec<SiteRunRecord>, StoreError> {
        const SQL: &str = "SELECT s.run_id, r.kind, r.started_unix, s.site, s.server, s.ok, s.millis, s.error, s.steps_json, s.migration_json \
                           FROM site_runs s JOIN runs r ON r.id = s.run_id WHERE s.site = $1 ORDER BY s.id DESC LIMIT $2";
        macro_rules! rows {
            ($pool:expr) => {
                sqlx::query(SQL)
                    .bind(site)
                    .bind(limit)
                    .fetch_all($pool)
                    .await?
                    .iter()
                    .map(|row| {
                        Ok::<_, sqlx::Error>(SiteRunRecord {
                            run_id: row.try_get(0)?,
                            kind: row.try_get(1)?,
                            started_unix: row.try_get(2)?,
                            site: row.try_get(3)?,
                            server: row.try_get(4)?,
                            ok: row.try_get(5)?,
                            millis: row.try_get(6)?,
                            error: row.try_get(7)?,
                            steps_json: row.try_get(8)?,
                            migration_json: row.try_get(9)?,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
        }
        Ok(match self {
            StateStore::Sqlite(pool) => rows!(pool),
            StateStore::Postgres(pool) => rows!(pool),
        })
    }

    /// Every text column of every table, for audits (the secret canary test).
    pub async fn dump_text(&self) -> Result<String, StoreError> {
        const SQL: &str = "SELECT kind || summary || plan_json FROM runs UNION ALL SELECT site || COALESCE(error, '') || steps_json || COALESCE(migration_json, '') FROM site_runs UNION ALL SELECT site || reason || message FROM site_conditions UNION ALL SELECT site || suspend_reason || drift_json FROM sites";
        let rows: Vec<String> = match self {
            StateStore::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await?,
            StateStore::Postgres(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await?,
        };
        Ok(rows.join("\n"))
    }
}

fn bind_run<'q, DB: sqlx::Database>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    run: &NewRun<'q>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(run.kind)
        .bind(now())
        .bind(run.spec_hash)
        .bind(run.observed_fingerprint)
        .bind(run.outcome)
        .bind(run.summary)
        .bind(run.plan_json)
}
