//! One site's reconcile as the daemon runs it: the current specs, a fresh observation of the site's server (and of any server it is still recorded on), its plan, then the apply or the migration — or only a report under `driftPolicy: detect` — with its conditions and history kept in the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::backoff::{self, Backoff};
use super::connections::{ConnectError, Connections};
use super::metrics::Metrics;
use super::placements::Placements;
use super::queue::{Action, Start};
use super::scheduler::Reconcile;
use super::specs::{Snapshot, Specs};
use crate::apply::lock::LockOwner;
use crate::apply::wave::Wave;
use crate::apply::{SiteOutcome, apply_site};
use crate::commands::reconcile::{gather_move_facts, measure_migrations, secret_references};
use crate::conditions::{self, ConditionType, SiteStatus};
use crate::migrate::launch::{Launch, migrate_planned};
use crate::migrate::progress::Progress;
use crate::observe::ObservedServer;
use crate::plan::SitePlan;
use crate::plan::build::{PlanInputs, build_plan};
use crate::spec::Site;
use crate::spec::secret::ResolvedSecrets;
use crate::store::StateStore;
use crate::transport::SshSession;

mod observation;
mod status;

use status::carried_over;

/// Why a reconcile did not bring the site to its spec.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("secrets of the site cannot be read: {0}")]
    Secrets(String),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("server `{server}` could not be observed: {reason}")]
    Observe { server: String, reason: String },
    #[error("the site could not be planned: {0}")]
    Blocked(String),
    #[error("{0}")]
    Apply(String),
    #[error("a worker keeps crashing (restarted when its backoff allows): {0}")]
    WorkerFailing(String),
}

/// The daemon's state shared by every reconcile.
pub struct Daemon {
    pub specs: Arc<Specs>,
    pub store: StateStore,
    pub connections: Connections,
    pub metrics: Metrics,
    /// How often each site is observed again.
    pub resync: Duration,
    owner: LockOwner,
    backoffs: Mutex<HashMap<String, Backoff>>,
    placements: Placements,
    /// Per server: the sites reconciled at once share config tests and reloads.
    waves: Mutex<HashMap<String, Arc<Wave>>>,
    /// The fence of each site's lease at this daemon's last run of it (sites shared through
    /// leases): a new fence means another daemon may have acted on the site meanwhile.
    fences_seen: Mutex<HashMap<String, i64>>,
}

impl Daemon {
    pub fn new(specs: Arc<Specs>, store: StateStore, resync: Duration) -> Self {
        Daemon {
            specs,
            store,
            connections: Connections::default(),
            metrics: Metrics::new(),
            resync,
            owner: LockOwner::this_process("siteward watch"),
            backoffs: Mutex::default(),
            placements: Placements::default(),
            waves: Mutex::default(),
            fences_seen: Mutex::default(),
        }
    }

    fn backoff_failed(&self, site: &str) -> Duration {
        let mut backoffs = self.backoffs.lock().unwrap_or_else(|e| e.into_inner());
        backoffs
            .entry(site.to_owned())
            .or_default()
            .failed(backoff::jitter())
    }

    fn backoff_reset(&self, site: &str) {
        let mut backoffs = self.backoffs.lock().unwrap_or_else(|e| e.into_inner());
        backoffs.remove(site);
    }

    /// Shares the sites with other daemons through `leases`: every lock carries the site's
    /// fence and every step is guarded by it.
    pub fn with_leases(mut self, leases: Arc<super::leases::Leases>) -> Self {
        self.owner = self.owner.clone().with_fences(leases);
        self
    }

    /// The identity of this daemon's runs (its locks' token).
    pub fn owner(&self) -> &LockOwner {
        &self.owner
    }

    async fn reconcile_site(&self, start: &Start) -> Result<Action, ReconcileError> {
        let snapshot = self.specs.current();
        let Some(site) = snapshot.site(&start.site) else {
            self.forget(&start.site).await;
            return Ok(Action::AwaitChange);
        };
        if self.suspended(&start.site).await {
            return Ok(Action::AwaitChange);
        }
        let secrets = site_secrets(&snapshot, site)?;
        // A site taken over from another daemon may be anywhere that daemon left it (half-way
        // through a migration, say): every server is looked at once.
        let everywhere = self.taken_over(&start.site);
        let (sessions, observed) = self.observe(&snapshot, site, &secrets, everywhere).await?;
        let moving = [site];
        let (sizes, move_facts) = tokio::join!(
            measure_migrations(&moving, &observed, &sessions),
            gather_move_facts(&moving, &observed, &sessions)
        );
        let all_names = snapshot.placements().map(|(name, _)| name).collect();
        let backups = crate::backup::resource::desired_for(&snapshot.loaded, [site]);
        let plan = build_plan(&PlanInputs {
            sites: vec![site],
            all_site_names: all_names,
            observed: &observed,
            secrets: &secrets,
            prune: false,
            storage_sizes: &sizes,
            move_facts: &move_facts,
            backups: &backups,
            now: chrono::Utc::now().timestamp(),
        });
        let server = site.spec.server.as_str();
        let Some(site_plan) = plan
            .sites
            .iter()
            .find(|p| p.site == start.site && p.server == server)
        else {
            return Err(ReconcileError::Blocked(
                "the plan has no entry for the site".into(),
            ));
        };
        let hash = snapshot
            .site_hashes
            .get(&start.site)
            .cloned()
            .unwrap_or_default();
        let observed_site = observed.get(server).and_then(|s| s.sites.get(&start.site));
        let status = conditions::after_plan(site_plan, observed_site, &hash, &snapshot.revision);
        self.keep(&status).await;
        if !site_plan.blocked_by.is_empty() {
            return Err(ReconcileError::Blocked(site_plan.blocked_by.join("; ")));
        }
        let site_plan = match start.trigger.restarts_failing() {
            true => site_plan.clone(),
            false => without_restarts(site_plan),
        };
        if !site_plan.has_work() {
            return self.nothing_to_apply(&status);
        }
        let run = Run {
            snapshot: &snapshot,
            sessions: &sessions,
            observed: &observed,
            secrets: &secrets,
        };
        let outcome = self.apply(&run, &site_plan).await;
        let after = conditions::after_apply(&outcome, &site_plan, &hash, &snapshot.revision);
        self.record(&plan, &outcome, &secrets).await;
        self.keep(&carried_over(after, &status, outcome.ok)).await;
        if outcome.ok {
            self.placements.settled(&start.site, server);
            self.backoff_reset(&start.site);
            return Ok(Action::requeue(backoff::jittered(self.resync)));
        }
        if outcome
            .error
            .as_deref()
            .is_some_and(|e| e.contains("shutting down"))
        {
            return Ok(Action::AwaitChange);
        }
        Err(ReconcileError::Apply(
            outcome.error.unwrap_or_else(|| "a step failed".into()),
        ))
    }

    /// Nothing to apply now: the site is in sync, only reported (`driftPolicy: detect`), or
    /// has a crashing worker this run may not restart (it is tried again after its backoff).
    fn nothing_to_apply(&self, status: &SiteStatus) -> Result<Action, ReconcileError> {
        if let Some(degraded) = status
            .condition(ConditionType::Degraded)
            .filter(|c| c.holds() && c.reason == "WorkerFailing")
        {
            return Err(ReconcileError::WorkerFailing(degraded.message.clone()));
        }
        self.backoff_reset(&status.site);
        Ok(Action::requeue(backoff::jittered(self.resync)))
    }

    async fn suspended(&self, site: &str) -> bool {
        match self.store.site_status(site).await {
            Ok(Some(status)) => status.suspended,
            _ => false,
        }
    }

    /// Applies the site's plan, or runs its migration, with `Progressing` kept meanwhile.
    async fn apply(&self, run: &Run<'_>, site_plan: &SitePlan) -> SiteOutcome {
        let what = match &site_plan.migration {
            Some(migration) => format!("migrating from `{}`", migration.source),
            None => format!("applying {} steps", site_plan.steps().count()),
        };
        self.keep_conditions(&site_plan.site, &[conditions::progressing(&what)])
            .await;
        if site_plan.migration.is_some() {
            return self.migrate(run, site_plan).await;
        }
        let (Some(session), Some(server)) = (
            run.sessions.get(&site_plan.server),
            run.snapshot.server(&site_plan.server),
        ) else {
            return failed(site_plan, "the site's server is not connected");
        };
        let wave = self.wave(&site_plan.server);
        apply_site(
            session,
            site_plan,
            &server.spec,
            run.secrets,
            &self.owner,
            &wave,
        )
        .await
    }

    /// The wave of `server`'s sites.
    fn wave(&self, server: &str) -> Arc<Wave> {
        let mut waves = self.waves.lock().unwrap_or_else(|e| e.into_inner());
        waves.entry(server.to_owned()).or_default().clone()
    }

    /// Runs the migration; each phase becomes the `Progressing` message as it starts.
    async fn migrate(&self, run: &Run<'_>, site_plan: &SitePlan) -> SiteOutcome {
        let (phases, mut told) = tokio::sync::mpsc::unbounded_channel::<String>();
        let on_phase = move |phase: &str| {
            let _ = phases.send(phase.to_owned());
        };
        let launch = Launch {
            loaded: &run.snapshot.loaded,
            sessions: run.sessions,
            observed: run.observed,
            secrets: run.secrets,
            owner: &self.owner,
            progress: Progress::Off,
            on_phase: Some(&on_phase),
        };
        let migrating = migrate_planned(&launch, site_plan);
        tokio::pin!(migrating);
        loop {
            tokio::select! {
                outcome = &mut migrating => return outcome,
                Some(phase) = told.recv() => {
                    let message = format!("migrating: {phase}");
                    self.keep_conditions(&site_plan.site, &[conditions::progressing(&message)]).await;
                }
            }
        }
    }
}

/// What one reconcile observed and holds.
struct Run<'r> {
    snapshot: &'r Snapshot,
    sessions: &'r BTreeMap<String, SshSession>,
    observed: &'r BTreeMap<String, ObservedServer>,
    secrets: &'r ResolvedSecrets,
}

impl Reconcile for Daemon {
    type Error = ReconcileError;

    async fn reconcile(self: Arc<Self>, start: Start) -> Result<Action, ReconcileError> {
        {
            let started = Instant::now();
            tracing::info!(site = %start.site, trigger = start.trigger.word(), "reconciling");
            let result = self.reconcile_site(&start).await;
            if let Err(error) = &result {
                self.keep_error(&start, error).await;
            }
            let word = if result.is_ok() { "ok" } else { "error" };
            let took = started.elapsed();
            // A site the specs dropped has no series any more (`forget`).
            if self.specs.current().site(&start.site).is_some() {
                let seconds = took.as_secs_f64();
                self.metrics
                    .reconciled(&start.site, word, seconds, now_unix());
            }
            tracing::info!(site = %start.site, result = word, millis = took.as_millis() as u64, "reconciled");
            result
        }
    }

    fn error_policy(&self, start: &Start, _error: &ReconcileError) -> Action {
        Action::retry(self.backoff_failed(&start.site))
    }
}

/// The plan without the restarts of workers that keep crashing (a resync leaves them to the
/// site's backoff).
fn without_restarts(site_plan: &SitePlan) -> SitePlan {
    let mut plan = site_plan.clone();
    plan.changes.retain(|change| !change.restarts_failing);
    plan
}

fn failed(site_plan: &SitePlan, why: &str) -> SiteOutcome {
    SiteOutcome {
        site: site_plan.site.clone(),
        server: site_plan.server.clone(),
        ok: false,
        millis: 0,
        steps: Vec::new(),
        error: Some(why.to_owned()),
        migration: None,
    }
}

/// The site's secrets and its servers' admin passwords.
fn site_secrets(snapshot: &Snapshot, site: &Site) -> Result<ResolvedSecrets, ReconcileError> {
    ResolvedSecrets::resolve(secret_references(&snapshot.loaded, &[site])).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        ReconcileError::Secrets(list.join("; "))
    })
}

/// The servers' admin passwords alone (for surveys), those that can be read.
fn admin_secrets(snapshot: &Snapshot, sites: &[&Site]) -> ResolvedSecrets {
    ResolvedSecrets::resolve(secret_references(&snapshot.loaded, sites)).unwrap_or_default()
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
