//! Several daemons sharing the sites through PostgreSQL: each site is held by one daemon at a
//! time through a lease in the store (renewed every third of its length, expiry by the
//! database's clock), spread over the live daemons by rendezvous hashing, taken over once a
//! dead daemon's leases end, and given up on SIGTERM. A daemon acts on a site only while its
//! own clock says the lease holds, and the lease's fence guards every step on the server.

pub mod spread;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::queue::Trigger;
use super::scheduler::{Ownership, Scheduler};
use super::specs::Specs;
use crate::apply::lock::Fences;
use crate::store::leases::DaemonRecord;
use crate::store::{StateStore, StoreError};

/// The `NOTIFY` channel on which a daemon asks for a run of a site (whoever holds it runs it).
pub const TRIGGER_CHANNEL: &str = "siteward_site_wanted";
/// The `NOTIFY` channel on which a daemon that got a git webhook asks the others to fetch.
pub const FETCH_CHANNEL: &str = "siteward_fetch";

/// The default length of a lease.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// This daemon among the others.
#[derive(Clone, Debug)]
pub struct Identity {
    pub id: String,
    pub machine: String,
    pub pid: u32,
    pub listen: String,
}

/// A lease this daemon holds.
#[derive(Clone, Copy, Debug)]
struct Held {
    fence: i64,
    /// When this daemon stops counting on it: the renewal's send time plus nine tenths of the
    /// lease (the store's expiry is later).
    until: Instant,
}

/// Whether the store answers, for the status page, the API and the metrics.
#[derive(Debug, Default)]
pub struct StoreHealth {
    state: Mutex<Option<(i64, String)>>,
}

impl StoreHealth {
    /// `None` while the store answers; else since when (unix seconds) and why not.
    pub fn unreachable(&self) -> Option<(i64, String)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn answered(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.take().is_some() {
            tracing::info!("the state store answers again");
        }
    }

    fn failed(&self, error: &StoreError) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let reason = crate::apply::error_text(error);
        if state.is_none() {
            tracing::error!(
                "the state store does not answer: {reason}; acting on no site until it does"
            );
        }
        let since = state
            .as_ref()
            .map_or_else(crate::store::now, |(since, _)| *since);
        *state = Some((since, reason));
    }
}

/// The leases of this daemon.
pub struct Leases {
    pub me: Identity,
    length: Duration,
    held: Mutex<BTreeMap<String, Held>>,
    /// Rounds done: the first only shows this daemon to the others (daemons started together
    /// then see each other before any takes a site).
    rounds: std::sync::atomic::AtomicU64,
    pub health: StoreHealth,
}

impl Leases {
    /// No leases yet; `length` is the lease time.
    pub fn new(me: Identity, length: Duration) -> Arc<Self> {
        Arc::new(Leases {
            me,
            length,
            held: Mutex::default(),
            rounds: std::sync::atomic::AtomicU64::new(0),
            health: StoreHealth::default(),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn valid(&self, site: &str) -> Option<Held> {
        self.held()
            .get(site)
            .copied()
            .filter(|held| held.until > Instant::now())
    }

    /// The sites held now, with their fences.
    pub fn holding(&self) -> BTreeMap<String, i64> {
        let now = Instant::now();
        self.held()
            .iter()
            .filter(|(_, held)| held.until > now)
            .map(|(site, held)| (site.clone(), held.fence))
            .collect()
    }

    /// Renews, takes and hands over leases every third of the lease until `shutdown`.
    pub async fn keep(
        self: Arc<Self>,
        store: StateStore,
        specs: Arc<Specs>,
        scheduler: Arc<Scheduler>,
        shutdown: CancellationToken,
    ) {
        let period = self.length / 3;
        loop {
            self.round(&store, &specs, &scheduler).await;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
        }
    }

    /// One round: heartbeat, renewals, hand-overs, claims; the sites taken are queued at once.
    pub async fn round(&self, store: &StateStore, specs: &Specs, scheduler: &Scheduler) {
        let sent = Instant::now();
        let until = sent + self.length.mul_f64(0.9);
        let sites: BTreeSet<String> = specs
            .current()
            .placements()
            .map(|(site, _)| site.to_owned())
            .collect();
        match self.exchange(store, &sites, scheduler).await {
            Ok((renewed, acquired)) => {
                self.health.answered();
                self.settle(renewed, &acquired, until);
                for (site, fence) in &acquired {
                    tracing::info!(site, fence, "took the site's lease");
                    scheduler.trigger(site, Trigger::Acquired);
                }
                // Sites due while their lease could not be renewed start now.
                scheduler.wake();
            }
            Err(error) => self.health.failed(&error),
        }
    }

    /// The store's part of a round: the leases renewed and those newly taken.
    async fn exchange(
        &self,
        store: &StateStore,
        sites: &BTreeSet<String>,
        scheduler: &Scheduler,
    ) -> Result<(BTreeMap<String, i64>, Vec<(String, i64)>), StoreError> {
        let seconds = self.length.as_secs_f64();
        let record = DaemonRecord {
            id: &self.me.id,
            machine: &self.me.machine,
            pid: self.me.pid,
            listen: &self.me.listen,
        };
        let live = store.daemon_heartbeat(&record, seconds).await?;
        let mut renewed: BTreeMap<String, i64> = store
            .renew_leases(&self.me.id, seconds)
            .await?
            .into_iter()
            .collect();
        let running: BTreeSet<String> = {
            let queue = scheduler.queue();
            renewed
                .keys()
                .filter(|site| queue.is_running(site))
                .cloned()
                .collect()
        };
        let mut plan = spread::round(&self.me.id, sites, &live, &renewed, &running);
        if self
            .rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            plan.claim.clear();
            plan.rescue.clear();
        }
        if !plan.hand_over.is_empty() {
            // Not ours from now on, before the store lets another daemon take them.
            {
                let mut held = self.held();
                for site in &plan.hand_over {
                    held.remove(site);
                }
            }
            store
                .release_leases(&self.me.id, Some(&plan.hand_over))
                .await?;
            for site in &plan.hand_over {
                tracing::info!(site, "handed the site's lease over");
                renewed.remove(site);
            }
        }
        let mut acquired = store
            .acquire_leases(&self.me.id, &plan.claim, seconds, 0.0)
            .await?;
        acquired.extend(
            store
                .acquire_leases(&self.me.id, &plan.rescue, seconds, seconds)
                .await?,
        );
        Ok((renewed, acquired))
    }

    /// Keeps what the store says this daemon holds, each until `until`; logs the leases lost.
    fn settle(&self, renewed: BTreeMap<String, i64>, acquired: &[(String, i64)], until: Instant) {
        let mut held = self.held();
        for site in held.keys() {
            if !renewed.contains_key(site) && !acquired.iter().any(|(s, _)| s == site) {
                tracing::warn!(site, "the site's lease is another daemon's now");
            }
        }
        *held = renewed
            .into_iter()
            .chain(acquired.iter().cloned())
            .map(|(site, fence)| (site, Held { fence, until }))
            .collect();
    }

    /// Gives every lease up and leaves the daemons' list (on SIGTERM, once no run is left).
    pub async fn release_all(&self, store: &StateStore) {
        self.held().clear();
        let released = store.release_leases(&self.me.id, None).await;
        let gone = store.daemon_gone(&self.me.id).await;
        match released.and(gone) {
            Ok(()) => tracing::info!("gave every site's lease up"),
            Err(error) => tracing::warn!(
                "could not give the leases up (they end on their own): {}",
                crate::apply::error_text(&error)
            ),
        }
    }

    /// How long a lease lasts.
    pub fn length(&self) -> Duration {
        self.length
    }
}

impl Ownership for Leases {
    fn owns(&self, site: &str) -> bool {
        self.valid(site).is_some()
    }
}

impl Fences for Leases {
    fn fence(&self, site: &str) -> Option<i64> {
        self.valid(site).map(|held| held.fence)
    }

    fn holder(&self) -> &str {
        &self.me.id
    }
}

/// Listens for the other daemons' requests (`NOTIFY`): runs of sites and git fetches, until
/// `shutdown`; reconnects on its own when the store comes back.
pub async fn listen(
    store: StateStore,
    scheduler: Arc<Scheduler>,
    git: Option<Arc<super::watchers::GitWatch>>,
    shutdown: CancellationToken,
) {
    let Some(pool) = store.postgres().cloned() else {
        return;
    };
    loop {
        let listened = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener
                .listen_all([TRIGGER_CHANNEL, FETCH_CHANNEL])
                .await?;
            loop {
                let notice = listener.recv().await?;
                match notice.channel() {
                    TRIGGER_CHANNEL => {
                        scheduler.trigger(notice.payload(), Trigger::Requested);
                    }
                    _ => {
                        if let Some(git) = &git {
                            git.fetch_now();
                        }
                    }
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            result = listened => if let Err(error) = result {
                tracing::debug!("the store's notices were cut off: {error}");
            },
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
