//! Leases of sites among several `siteward watch` daemons (PostgreSQL only): each daemon's row
//! renewed as its heartbeat, one lease per site with a fence that grows with every new holder.
//! Every expiry is computed by the database's clock, never a daemon's.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::PgPool;

use super::{StateStore, StoreError};

/// A daemon as the others see it.
#[derive(Clone, Debug)]
pub struct DaemonRecord<'a> {
    pub id: &'a str,
    pub machine: &'a str,
    pub pid: u32,
    pub listen: &'a str,
}

/// Who holds a site's lease now.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseHolder {
    pub holder: String,
    pub fence: i64,
    /// The holder's address (`--listen`), when it is alive.
    pub listen: Option<String>,
    /// Seconds until the lease ends unless renewed (negative: it has ended).
    pub expires_in: f64,
}

/// The lease a write is made on behalf of: it lands only while `holder` holds the site's lease
/// with `fence` and the lease has not ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseGuard {
    pub holder: String,
    pub fence: i64,
}

impl LeaseGuard {
    /// Whether the lease of `site` is still this one, its row locked (`FOR SHARE`) until the
    /// transaction ends, so that no daemon takes it over meanwhile.
    pub(super) async fn holds(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        site: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT 1 FROM site_leases WHERE site = $1 AND holder = $2 \
                           AND fence = $3 AND expires_at > now() FOR SHARE";
        let found: Option<i32> = sqlx::query_scalar(SQL)
            .bind(site)
            .bind(&self.holder)
            .bind(self.fence)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(found.is_some())
    }
}

/// Why leases cannot be kept in this store.
pub const LEASES_NEED_POSTGRES: &str =
    "several daemons share sites only through a PostgreSQL store (`--state postgres://…`)";

impl StateStore {
    /// The PostgreSQL pool, when the store is PostgreSQL.
    pub fn postgres(&self) -> Option<&PgPool> {
        match self {
            StateStore::Postgres(pool) => Some(pool),
            StateStore::Sqlite(_) => None,
        }
    }

    fn lease_pool(&self) -> Result<&PgPool, StoreError> {
        self.postgres()
            .ok_or_else(|| StoreError::Unsupported(LEASES_NEED_POSTGRES))
    }

    /// Renews this daemon's row for `seconds`; returns the ids of every live daemon (itself
    /// included), sorted.
    pub async fn daemon_heartbeat(
        &self,
        daemon: &DaemonRecord<'_>,
        seconds: f64,
    ) -> Result<Vec<String>, StoreError> {
        const SQL: &str = "WITH beat AS ( \
              INSERT INTO daemons (id, machine, pid, listen, expires_at) \
              VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) \
              ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at, listen = EXCLUDED.listen \
              RETURNING id) \
            SELECT id FROM daemons WHERE expires_at > now() AND id <> $1 \
            UNION SELECT id FROM beat ORDER BY 1";
        let ids = sqlx::query_scalar(SQL)
            .bind(daemon.id)
            .bind(daemon.machine)
            .bind(i64::from(daemon.pid))
            .bind(daemon.listen)
            .bind(seconds)
            .fetch_all(self.lease_pool()?)
            .await?;
        Ok(ids)
    }

    /// Renews every lease `holder` has, whether or not it ended (nobody took an ended one
    /// that is still `holder`'s): the sites and their fences.
    pub async fn renew_leases(
        &self,
        holder: &str,
        seconds: f64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        const SQL: &str = "UPDATE site_leases SET expires_at = now() + make_interval(secs => $2) \
                           WHERE holder = $1 RETURNING site, fence";
        let rows = sqlx::query(SQL)
            .bind(holder)
            .bind(seconds)
            .fetch_all(self.lease_pool()?)
            .await?;
        pairs(&rows)
    }

    /// Takes the leases of `sites` that nobody holds or whose lease ended more than `ended_for`
    /// seconds ago, each with a new fence: the sites taken and their fences. A fence is the
    /// database's clock in microseconds (and above the site's last one), so fences keep growing
    /// on the servers even across a store made anew.
    pub async fn acquire_leases(
        &self,
        holder: &str,
        sites: &[String],
        seconds: f64,
        ended_for: f64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        if sites.is_empty() {
            return Ok(Vec::new());
        }
        const SQL: &str = "INSERT INTO site_leases (site, holder, fence, acquired_at, expires_at) \
              SELECT s, $2, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, now(), \
                now() + make_interval(secs => $3) \
              FROM unnest($1::text[]) AS s \
            ON CONFLICT (site) DO UPDATE SET holder = EXCLUDED.holder, \
              fence = GREATEST(EXCLUDED.fence, site_leases.fence + 1), \
              acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at \
            WHERE site_leases.expires_at <= now() - make_interval(secs => $4) \
            RETURNING site, fence";
        let rows = sqlx::query(SQL)
            .bind(sites)
            .bind(holder)
            .bind(seconds)
            .bind(ended_for)
            .fetch_all(self.lease_pool()?)
            .await?;
        pairs(&rows)
    }

    /// Gives up `holder`'s leases of `sites` (all of them when `None`).
    pub async fn release_leases(
        &self,
        holder: &str,
        sites: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        let pool = self.lease_pool()?;
        let done = match sites {
            Some(sites) => {
                sqlx::query("DELETE FROM site_leases WHERE holder = $1 AND site = ANY($2)")
                    .bind(holder)
                    .bind(sites)
                    .execute(pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM site_leases WHERE holder = $1")
                    .bind(holder)
                    .execute(pool)
                    .await?
            }
        };
        Ok(done.rows_affected())
    }

    /// Removes a stopping daemon's row.
    pub async fn daemon_gone(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM daemons WHERE id = $1")
            .bind(id)
            .execute(self.lease_pool()?)
            .await?;
        Ok(())
    }

    /// Every site's lease holder; empty for a SQLite store (one daemon holds everything).
    pub async fn lease_holders(&self) -> Result<BTreeMap<String, LeaseHolder>, StoreError> {
        let Some(pool) = self.postgres() else {
            return Ok(BTreeMap::new());
        };
        const SQL: &str = "SELECT l.site, l.holder, l.fence, \
              CASE WHEN d.expires_at > now() THEN d.listen END, \
              EXTRACT(EPOCH FROM l.expires_at - now())::float8 \
            FROM site_leases l LEFT JOIN daemons d ON d.id = l.holder";
        let rows = sqlx::query(SQL).fetch_all(pool).await?;
        rows.iter()
            .map(|row| {
                let holder = LeaseHolder {
                    holder: row.try_get(1)?,
                    fence: row.try_get(2)?,
                    listen: row.try_get(3)?,
                    expires_in: row.try_get(4)?,
                };
                Ok((row.try_get(0)?, holder))
            })
            .collect()
    }

    /// Tells every daemon listening on `channel` (PostgreSQL `NOTIFY`).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(self.lease_pool()?)
            .await?;
        Ok(())
    }
}

fn pairs(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<(String, i64)>, StoreError> {
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}
