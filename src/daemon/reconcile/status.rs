//! What a reconcile leaves in the store: the site's status and conditions, its history, the
//! conditions an error leaves, and nothing at all from a run that outlived its lease.

use super::{Daemon, ReconcileError};
use crate::apply::{SiteOutcome, error_text};
use crate::commands::record::record_site_outcome;
use crate::conditions::{Condition, ConditionType, SiteStatus};
use crate::daemon::queue::Start;
use crate::plan::render;
use crate::spec::secret::ResolvedSecrets;
use crate::store::NewRun;
use crate::store::leases::LeaseGuard;

impl Daemon {
    /// Keeps a site's status in the store and the metrics; a store failure is logged.
    /// The store checks the lease again in the write's transaction: a daemon paused between
    /// its own check and the write writes nothing once another holds the site.
    pub(super) async fn keep(&self, status: &SiteStatus) {
        let Some(lease) = self.lease(&status.site) else {
            return;
        };
        match self.store.update_site_held(status, lease.as_ref()).await {
            Ok(true) => self.metrics.site(status),
            Ok(false) => lease_lost(&status.site),
            Err(error) => {
                tracing::warn!(site = %status.site, "the state store was not updated: {}", error_text(&error));
            }
        }
    }

    pub(super) async fn keep_conditions(&self, site: &str, conditions: &[Condition]) {
        let Some(lease) = self.lease(site) else {
            return;
        };
        match self
            .store
            .update_conditions_held(site, conditions, lease.as_ref())
            .await
        {
            Ok(true) => {}
            Ok(false) => return lease_lost(site),
            Err(error) => tracing::warn!(
                site,
                "the state store was not updated: {}",
                error_text(&error)
            ),
        }
        if let Ok(Some(status)) = self.store.site_status(site).await {
            self.metrics.site(&status);
        }
    }

    /// The lease this daemon speaks for `site` under (`Some(None)` without leases); `None`
    /// when a run outlived its lease: the site's status and history are left to the daemon
    /// holding it now.
    fn lease(&self, site: &str) -> Option<Option<LeaseGuard>> {
        let lease = self.owner.lease(site).ok();
        if lease.is_none() {
            lease_lost(site);
        }
        lease
    }

    /// Whether this daemon may still speak for `site` (always, without leases).
    pub(super) fn still_holds(&self, site: &str) -> bool {
        self.lease(site).is_some()
    }

    /// The site is named by no spec any more: its status says so, its series go.
    pub(super) async fn forget(&self, site: &str) {
        let condition = Condition::new(
            ConditionType::Orphaned,
            true,
            "NoSpec",
            "no spec names this site any more; the daemon leaves it as it is (`siteward apply --prune` removes it)",
        );
        if let Err(error) = self.store.update_conditions(site, &[condition]).await {
            tracing::warn!(
                site,
                "the state store was not updated: {}",
                error_text(&error)
            );
        }
        self.metrics.forget_site(site);
        self.backoff_reset(site);
    }

    /// Keeps the run in the store's history, as `siteward apply` does.
    pub(super) async fn record(
        &self,
        plan: &crate::plan::Plan,
        outcome: &SiteOutcome,
        secrets: &ResolvedSecrets,
    ) {
        if !self.still_holds(&outcome.site) {
            return;
        }
        let summary = secrets.scrub(&render::summary(plan));
        let plan_json = secrets.scrub(&render::json(plan));
        let run = NewRun {
            kind: "watch",
            spec_hash: &plan.spec_hash,
            observed_fingerprint: &plan.observed_fingerprint,
            outcome: if outcome.ok { "applied" } else { "failed" },
            summary: &summary,
            plan_json: &plan_json,
        };
        let recorded = async {
            let run_id = self.store.record_run(&run).await?;
            record_site_outcome(&self.store, run_id, outcome, secrets).await
        };
        if let Err(error) = recorded.await {
            tracing::warn!(site = %outcome.site, "the run was not recorded: {}", error_text(&error));
        }
    }

    /// The conditions an error leaves: unreachable, not planned, secrets missing.
    pub(super) async fn keep_error(&self, start: &Start, error: &ReconcileError) {
        let message = error.to_string();
        let conditions = match error {
            ReconcileError::Connect(_) | ReconcileError::Observe { .. } => vec![
                Condition::new(
                    ConditionType::Unreachable,
                    true,
                    "ServerUnreachable",
                    message.clone(),
                ),
                Condition::unknown(ConditionType::Ready, "ServerUnreachable", message),
            ],
            ReconcileError::Secrets(_) => vec![
                Condition::new(
                    ConditionType::Degraded,
                    true,
                    "SecretMissing",
                    message.clone(),
                ),
                Condition::new(ConditionType::Ready, false, "SecretMissing", message),
            ],
            ReconcileError::Blocked(_)
            | ReconcileError::Apply(_)
            | ReconcileError::WorkerFailing(_) => {
                return;
            }
        };
        let snapshot = self.specs.current();
        let hash = snapshot
            .site_hashes
            .get(&start.site)
            .cloned()
            .unwrap_or_default();
        let stamped: Vec<Condition> = conditions
            .into_iter()
            .map(|mut c| {
                c.spec_hash = hash.clone();
                c.git_revision = snapshot.revision.clone();
                c
            })
            .collect();
        self.keep_conditions(&start.site, &stamped).await;
    }
}

/// The status after an apply, with what the plan knew and the apply does not: the commits
/// (the wanted one is live after a successful apply) and, after a failure, the drift.
pub(super) fn carried_over(mut after: SiteStatus, planned: &SiteStatus, ok: bool) -> SiteStatus {
    after.desired_commit = planned.desired_commit.clone();
    after.deployed_commit = match ok {
        true if !planned.desired_commit.is_empty() => planned.desired_commit.clone(),
        _ => planned.deployed_commit.clone(),
    };
    if !ok {
        after.drift = planned.drift.clone();
    }
    after
}

/// Says that a run outlived the lease of `site` and leaves its status alone.
fn lease_lost(site: &str) {
    tracing::info!(
        site,
        "the site's lease is gone: its status is left to its holder"
    );
}
