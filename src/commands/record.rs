//! Recording plans and applies in the state store, with each site's conditions. A store
//! failure is logged, never fatal: the servers are the truth, the store is history.

use std::collections::BTreeMap;

use super::Context;
use super::reconcile::Prepared;
use crate::apply::SiteOutcome;
use crate::conditions::{self, Condition, ConditionType, SiteStatus};
use crate::plan::fingerprint::site_spec_hash;
use crate::plan::{Plan, SiteDisposition, SitePlan, render};
use crate::store::{NewRun, NewSiteRun, StateStore};

/// Records a plan, and each site's status as the plan saw it.
pub fn plan_made(ctx: &Context, prepared: &Prepared, plan: &Plan) {
    let statuses = plan_statuses(prepared, plan);
    let state = ctx.state.clone();
    let plan = plan.clone();
    let work = async move {
        let store = StateStore::open(&state).await?;
        let json = render::json(&plan);
        let summary = render::summary(&plan);
        let run = NewRun {
            kind: "plan",
            spec_hash: &plan.spec_hash,
            observed_fingerprint: &plan.observed_fingerprint,
            outcome: if plan.has_changes() {
                "changes"
            } else {
                "in-sync"
            },
            summary: &summary,
            plan_json: &json,
        };
        store.record_run(&run).await?;
        for status in &statuses {
            store.update_site(status).await?;
        }
        Ok::<_, crate::store::StoreError>(())
    };
    run_quietly(work);
}

/// Records an apply with every site's steps and outcome, and each site's status after it.
pub fn apply_done(ctx: &Context, prepared: &Prepared, plan: &Plan, outcomes: &[SiteOutcome]) {
    let secrets = &prepared.secrets;
    let statuses = apply_statuses(prepared, plan, outcomes);
    let state = ctx.state.clone();
    let plan_json = secrets.scrub(&render::json(plan));
    let outcomes: Vec<SiteOutcome> = outcomes.to_vec();
    let spec_hash = plan.spec_hash.clone();
    let fingerprint = plan.observed_fingerprint.clone();
    let summary = secrets.scrub(&render::summary(plan));
    let scrub = secrets.clone();
    let work = async move {
        let store = StateStore::open(&state).await?;
        let ok = outcomes.iter().all(|o| o.ok);
        let run = NewRun {
            kind: "apply",
            spec_hash: &spec_hash,
            observed_fingerprint: &fingerprint,
            outcome: if ok { "applied" } else { "failed" },
            summary: &summary,
            plan_json: &plan_json,
        };
        let run_id = store.record_run(&run).await?;
        for outcome in &outcomes {
            record_site_outcome(&store, run_id, outcome, &scrub).await?;
        }
        for status in &statuses {
            store.update_site(&scrubbed(status, &scrub)).await?;
        }
        Ok::<_, crate::store::StoreError>(())
    };
    run_quietly(work);
}

/// Records one site's part of run `run_id`: its steps, error and migration report, scrubbed of
/// `secrets` (shared by `siteward apply` and the daemon).
pub async fn record_site_outcome(
    store: &StateStore,
    run_id: i64,
    outcome: &SiteOutcome,
    secrets: &crate::spec::secret::ResolvedSecrets,
) -> Result<(), crate::store::StoreError> {
    let steps_json = secrets.scrub(&serde_json::to_string(&outcome.steps).unwrap_or_default());
    let error = outcome.error.as_deref().map(|e| secrets.scrub(e));
    let migration_json = outcome
        .migration
        .as_ref()
        .and_then(|m| serde_json::to_string(m).ok())
        .map(|json| secrets.scrub(&json));
    let site_run = NewSiteRun {
        site: &outcome.site,
        server: &outcome.server,
        ok: outcome.ok,
        millis: outcome.millis as i64,
        error: error.as_deref(),
        steps_json: &steps_json,
        migration_json: migration_json.as_deref(),
    };
    store.record_site_run(run_id, &site_run).await
}

/// The spec hash of each site the specs name.
fn site_hashes(prepared: &Prepared) -> BTreeMap<String, String> {
    prepared
        .loaded
        .sites
        .iter()
        .map(|s| (s.item.name.to_string(), site_spec_hash(&s.item)))
        .collect()
}

/// Each site's status from the plan: its entry where its spec places it (not the entry of a
/// migration's source), and `Orphaned` for sites no spec names.
pub fn plan_statuses(prepared: &Prepared, plan: &Plan) -> Vec<SiteStatus> {
    let hashes = site_hashes(prepared);
    let revision = crate::daemon::git::revision(&prepared.spec_paths);
    plan.sites
        .iter()
        .filter_map(|site| {
            if site.disposition == SiteDisposition::Orphaned && !hashes.contains_key(&site.site) {
                return Some(orphaned(site, &revision));
            }
            let hash = placed_here(site, prepared).then(|| hashes.get(&site.site))??;
            let observed = prepared
                .observed
                .get(&site.server)
                .and_then(|server| server.sites.get(&site.site));
            Some(conditions::after_plan(site, observed, hash, &revision))
        })
        .collect()
}

/// Each applied site's status after the apply.
fn apply_statuses(prepared: &Prepared, plan: &Plan, outcomes: &[SiteOutcome]) -> Vec<SiteStatus> {
    let hashes = site_hashes(prepared);
    let revision = crate::daemon::git::revision(&prepared.spec_paths);
    outcomes
        .iter()
        .filter_map(|outcome| {
            let site = plan
                .sites
                .iter()
                .find(|s| s.site == outcome.site && s.server == outcome.server)?;
            let hash = hashes.get(&outcome.site)?;
            Some(conditions::after_apply(outcome, site, hash, &revision))
        })
        .collect()
}

/// Whether this plan entry is the site where its spec places it.
fn placed_here(site: &SitePlan, prepared: &Prepared) -> bool {
    prepared
        .loaded
        .sites
        .iter()
        .any(|s| s.item.name.as_str() == site.site && s.item.spec.server.as_str() == site.server)
}

fn orphaned(site: &SitePlan, revision: &str) -> SiteStatus {
    let mut status = SiteStatus {
        site: site.site.clone(),
        server: site.server.clone(),
        last_result: "orphaned".into(),
        ..SiteStatus::default()
    };
    let message = format!(
        "recorded on `{}`, named by no spec (`apply --prune` removes it)",
        site.server
    );
    status.set(
        Condition::new(ConditionType::Orphaned, true, "NoSpec", message),
        "",
        revision,
    );
    status
}

/// A status whose messages carry no secret value.
fn scrubbed(status: &SiteStatus, secrets: &crate::spec::secret::ResolvedSecrets) -> SiteStatus {
    let mut status = status.clone();
    for condition in &mut status.conditions {
        condition.message = secrets.scrub(&condition.message);
    }
    status
}

fn run_quietly(
    work: impl std::future::Future<Output = Result<(), crate::store::StoreError>> + Send + 'static,
) {
    let result = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(work))
    })
    .join();
    match result {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::warn!(
            "the state store was not updated: {}",
            crate::apply::error_text(&error)
        ),
        Ok(Err(error)) => tracing::warn!("the state store was not updated: {error}"),
        Err(_) => tracing::warn!("the state store was not updated"),
    }
}
