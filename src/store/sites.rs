//! Each site's state and conditions in the store: written by plans, applies and the daemon, read by `siteward status` and the daemon's API and page.

use std::collections::BTreeMap;

use sqlx::Row;

use super::leases::LeaseGuard;
use super::{StateStore, StoreError, now};
use crate::conditions::{Condition, ConditionStatus, ConditionType, SiteStatus};

const UPSERT_CONDITION: &str = "INSERT INTO site_conditions \
    (site, type, status, reason, message, last_transition_unix, spec_hash, git_revision, updated_unix) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $6) \
    ON CONFLICT (site, type) DO UPDATE SET \
    last_transition_unix = CASE WHEN site_conditions.status = excluded.status \
        THEN site_conditions.last_transition_unix ELSE excluded.last_transition_unix END, \
    status = excluded.status, reason = excluded.reason, message = excluded.message, \
    spec_hash = excluded.spec_hash, git_revision = excluded.git_revision, \
    updated_unix = excluded.updated_unix";

const UPSERT_SITE: &str = "INSERT INTO sites \
    (site, server, drift_json, deployed_commit, desired_commit, last_result, last_reconcile_unix, updated_unix) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
    ON CONFLICT (site) DO UPDATE SET server = excluded.server, drift_json = excluded.drift_json, \
    deployed_commit = CASE WHEN excluded.deployed_commit = '' THEN sites.deployed_commit ELSE excluded.deployed_commit END, \
    desired_commit = CASE WHEN excluded.desired_commit = '' THEN sites.desired_commit ELSE excluded.desired_commit END, \
    last_result = excluded.last_result, last_reconcile_unix = excluded.last_reconcile_unix, \
    updated_unix = excluded.updated_unix";

const SUSPEND: &str = "INSERT INTO sites (site, server, suspended, suspend_reason, updated_unix) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (site) DO UPDATE SET suspended = excluded.suspended, \
    suspend_reason = excluded.suspend_reason, updated_unix = excluded.updated_unix";

const SITES: &str = "SELECT site, server, suspended, suspend_reason, drift_json, deployed_commit, \
    desired_commit, last_result, last_reconcile_unix FROM sites ORDER BY site";

const CONDITIONS: &str = "SELECT site, type, status, reason, message, last_transition_unix, \
    spec_hash, git_revision FROM site_conditions ORDER BY site, type";

const SITE: &str = "SELECT site, server, suspended, suspend_reason, drift_json, deployed_commit, \
    desired_commit, last_result, last_reconcile_unix FROM sites WHERE site = $1";

const SITE_CONDITIONS: &str = "SELECT site, type, status, reason, message, \
    last_transition_unix, spec_hash, git_revision FROM site_conditions WHERE site = $1 ORDER BY type";

/// Upserts a site's row (`UPSERT_SITE`) through an executor.
macro_rules! upsert_site {
    ($executor:expr, $status:expr) => {{
        let status: &SiteStatus = $status;
        let drift = serde_json::to_string(&status.drift).unwrap_or_else(|_| "[]".into());
        sqlx::query(UPSERT_SITE)
            .bind(&status.site)
            .bind(&status.server)
            .bind(&drift)
            .bind(&status.deployed_commit)
            .bind(&status.desired_commit)
            .bind(&status.last_result)
            .bind(now())
            .execute($executor)
            .await?;
    }};
}

/// Upserts conditions of a site (`UPSERT_CONDITION`) through an executor.
macro_rules! upsert_conditions {
    ($executor:expr, $site:expr, $conditions:expr) => {{
        let at = now();
        for condition in $conditions {
            sqlx::query(UPSERT_CONDITION)
                .bind($site)
                .bind(condition.kind.name())
                .bind(condition.status.name())
                .bind(&condition.reason)
                .bind(&condition.message)
                .bind(at)
                .bind(&condition.spec_hash)
                .bind(&condition.git_revision)
                .execute(&mut *$executor)
                .await?;
        }
    }};
}

impl StateStore {
    /// Records what a plan, an apply or the daemon found of a site: where it lives, its drift,
    /// its commits (kept when unknown now), its last result, and each condition it carries
    /// (a condition keeps its transition time while its status stays the same).
    pub async fn update_site(&self, status: &SiteStatus) -> Result<(), StoreError> {
        self.update_site_held(status, None).await.map(drop)
    }

    /// As [`StateStore::update_site`], on behalf of the holder of the site's lease when `lease`
    /// is given: the write lands only while the store says that holder holds the lease with
    /// that fence (checked in the write's transaction, the lease's row locked against a
    /// takeover until it commits). Whether it landed.
    pub async fn update_site_held(
        &self,
        status: &SiteStatus,
        lease: Option<&LeaseGuard>,
    ) -> Result<bool, StoreError> {
        match (self, lease) {
            (StateStore::Postgres(pool), Some(lease)) => {
                let mut tx = pool.begin().await?;
                if !lease.holds(&mut tx, &status.site).await? {
                    return Ok(false);
                }
                upsert_site!(&mut *tx, status);
                upsert_conditions!(tx, &status.site, &status.conditions);
                tx.commit().await?;
            }
            (StateStore::Postgres(pool), None) => {
                let mut connection = pool.acquire().await?;
                upsert_site!(&mut *connection, status);
                upsert_conditions!(connection, &status.site, &status.conditions);
            }
            (StateStore::Sqlite(pool), _) => {
                let mut connection = pool.acquire().await?;
                upsert_site!(&mut *connection, status);
                upsert_conditions!(connection, &status.site, &status.conditions);
            }
        }
        Ok(true)
    }

    /// Records these conditions of `site`, leaving its others as they are.
    pub async fn update_conditions(
        &self,
        site: &str,
        conditions: &[Condition],
    ) -> Result<(), StoreError> {
        self.update_conditions_held(site, conditions, None)
            .await
            .map(drop)
    }

    /// As [`StateStore::update_conditions`], on behalf of the holder of the site's lease when
    /// `lease` is given (see [`StateStore::update_site_held`]). Whether it landed.
    pub async fn update_conditions_held(
        &self,
        site: &str,
        conditions: &[Condition],
        lease: Option<&LeaseGuard>,
    ) -> Result<bool, StoreError> {
        match (self, lease) {
            (StateStore::Postgres(pool), Some(lease)) => {
                let mut tx = pool.begin().await?;
                if !lease.holds(&mut tx, site).await? {
                    return Ok(false);
                }
                upsert_conditions!(tx, site, conditions);
                tx.commit().await?;
            }
            (StateStore::Postgres(pool), None) => {
                let mut connection = pool.acquire().await?;
                upsert_conditions!(connection, site, conditions);
            }
            (StateStore::Sqlite(pool), _) => {
                let mut connection = pool.acquire().await?;
                upsert_conditions!(connection, site, conditions);
            }
        }
        Ok(true)
    }

    /// Holds a site for manual applies (`Some(reason)`), or lets the daemon have it again.
    pub async fn set_suspended(
        &self,
        site: &str,
        server: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        macro_rules! run {
            ($pool:expr) => {
                sqlx::query(SUSPEND)
                    .bind(site)
                    .bind(server)
                    .bind(reason.is_some())
                    .bind(reason.unwrap_or_default())
                    .bind(now())
                    .execute($pool)
                    .await?
            };
        }
        match self {
            StateStore::Sqlite(pool) => _ = run!(pool),
            StateStore::Postgres(pool) => _ = run!(pool),
        }
        let condition = match reason {
            Some(reason) => Condition::new(ConditionType::Suspended, true, "Suspended", reason),
            None => Condition::new(
                ConditionType::Suspended,
                false,
                "Resumed",
                "reconciled by the daemon",
            ),
        };
        self.update_conditions(site, &[condition]).await
    }

    /// Every site the store knows, with its conditions, by name.
    pub async fn site_statuses(&self) -> Result<Vec<SiteStatus>, StoreError> {
        let (sites, conditions) = match self {
            StateStore::Sqlite(pool) => (
                rows_to_sites(sqlx::query(SITES).fetch_all(pool).await?)?,
                rows_to_conditions(sqlx::query(CONDITIONS).fetch_all(pool).await?)?,
            ),
            StateStore::Postgres(pool) => (
                rows_to_sites(sqlx::query(SITES).fetch_all(pool).await?)?,
                rows_to_conditions(sqlx::query(CONDITIONS).fetch_all(pool).await?)?,
            ),
        };
        Ok(with_conditions(sites, conditions))
    }

    /// One site's state, when the store knows it (read by its name: the daemon asks at every
    /// run, and reading every site's rows made each run cost as much as all sites together).
    pub async fn site_status(&self, site: &str) -> Result<Option<SiteStatus>, StoreError> {
        let (sites, conditions) = match self {
            StateStore::Sqlite(pool) => (
                rows_to_sites(sqlx::query(SITE).bind(site).fetch_all(pool).await?)?,
                rows_to_conditions(
                    sqlx::query(SITE_CONDITIONS)
                        .bind(site)
                        .fetch_all(pool)
                        .await?,
                )?,
            ),
            StateStore::Postgres(pool) => (
                rows_to_sites(sqlx::query(SITE).bind(site).fetch_all(pool).await?)?,
                rows_to_conditions(
                    sqlx::query(SITE_CONDITIONS)
                        .bind(site)
                        .fetch_all(pool)
                        .await?,
                )?,
            ),
        };
        Ok(with_conditions(sites, conditions).into_iter().next())
    }

    /// Writes the daemon's heartbeat: succeeds only when the store takes writes.
    pub async fn heartbeat(&self) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO daemon_heartbeat (id, at_unix) VALUES (1, $1) \
                           ON CONFLICT (id) DO UPDATE SET at_unix = excluded.at_unix";
        match self {
            StateStore::Sqlite(pool) => _ = sqlx::query(SQL).bind(now()).execute(pool).await?,
            StateStore::Postgres(pool) => _ = sqlx::query(SQL).bind(now()).execute(pool).await?,
        }
        Ok(())
    }

    /// Forgets a site no spec names and no server has any more.
    pub async fn forget_site(&self, site: &str) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM site_conditions WHERE site = $1",
            "DELETE FROM sites WHERE site = $1",
        ] {
            match self {
                StateStore::Sqlite(pool) => _ = sqlx::query(sql).bind(site).execute(pool).await?,
                StateStore::Postgres(pool) => _ = sqlx::query(sql).bind(site).execute(pool).await?,
            }
        }
        Ok(())
    }
}

/// Each site with its conditions, in the order of their types.
fn with_conditions(
    mut sites: BTreeMap<String, SiteStatus>,
    conditions: Vec<(String, Condition)>,
) -> Vec<SiteStatus> {
    for (site, condition) in conditions {
        if let Some(status) = sites.get_mut(&site) {
            status.conditions.push(condition);
        }
    }
    let mut out: Vec<SiteStatus> = sites.into_values().collect();
    for status in &mut out {
        status.conditions.sort_by_key(|c| c.kind);
    }
    out
}

fn rows_to_sites<R: Row>(rows: Vec<R>) -> Result<BTreeMap<String, SiteStatus>, StoreError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut out = BTreeMap::new();
    for row in rows {
        let drift: String = row.try_get(4)?;
        let status = SiteStatus {
            site: row.try_get(0)?,
            server: row.try_get(1)?,
            suspended: row.try_get(2)?,
            suspend_reason: row.try_get(3)?,
            drift: serde_json::from_str(&drift).unwrap_or_default(),
            deployed_commit: row.try_get(5)?,
            desired_commit: row.try_get(6)?,
            last_result: row.try_get(7)?,
            last_reconcile_unix: row.try_get(8)?,
            conditions: Vec::new(),
        };
        out.insert(status.site.clone(), status);
    }
    Ok(out)
}

fn rows_to_conditions<R: Row>(rows: Vec<R>) -> Result<Vec<(String, Condition)>, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut out = Vec::new();
    for row in rows {
        let kind: String = row.try_get(1)?;
        let Some(kind) = ConditionType::parse(&kind) else {
            continue;
        };
        let status: String = row.try_get(2)?;
        out.push((
            row.try_get(0)?,
            Condition {
                kind,
                status: ConditionStatus::parse(&status),
                reason: row.try_get(3)?,
                message: row.try_get(4)?,
                last_transition_unix: row.try_get(5)?,
                spec_hash: row.try_get(6)?,
                git_revision: row.try_get(7)?,
            },
        ));
    }
    Ok(out)
}
