//! Recording plans and applies in the state store. A store failure is logged, never fatal:
//! the servers are the truth, the store is history.

use super::Context;
use crate::apply::SiteOutcome;
use crate::plan::{Plan, render};
use crate::spec::secret::ResolvedSecrets;
use crate::store::{Condition, NewRun, NewSiteRun, StateStore};

/// Records a plan, and each site's condition as the plan saw it.
pub fn plan_made(ctx: &Context, plan: &Plan) {
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
        for site in &plan.sites {
            let pending = site.pending().count();
            let condition = Condition {
                site: site.site.clone(),
                server: site.server.clone(),
                ready: pending == 0,
                drifted: pending > 0,
                reason: if pending == 0 {
                    "InSync".into()
                } else {
                    "Drifted".into()
                },
                message: format!("{pending} resources differ from the spec"),
                spec_hash: plan.spec_hash.clone(),
                updated_unix: 0,
            };
            store.set_condition(&condition).await?;
        }
        Ok::<_, crate::store::StoreError>(())
    };
    run_quietly(work);
}

/// Records an apply with every site's steps and outcome.
pub fn apply_done(ctx: &Context, plan: &Plan, outcomes: &[SiteOutcome], secrets: &ResolvedSecrets) {
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
            let steps_json =
                scrub.scrub(&serde_json::to_string(&outcome.steps).unwrap_or_default());
            let error = outcome.error.as_deref().map(|e| scrub.scrub(e));
            let migration_json = outcome
                .migration
                .as_ref()
                .and_then(|m| serde_json::to_string(m).ok())
                .map(|json| scrub.scrub(&json));
            let site_run = NewSiteRun {
                site: &outcome.site,
                server: &outcome.server,
                ok: outcome.ok,
                millis: outcome.millis as i64,
                error: error.as_deref(),
                steps_json: &steps_json,
                migration_json: migration_json.as_deref(),
            };
            store.record_site_run(run_id, &site_run).await?;
            let condition = Condition {
                site: outcome.site.clone(),
                server: outcome.server.clone(),
                ready: outcome.ok,
                drifted: false,
                reason: if outcome.ok {
                    "Applied".into()
                } else {
                    "ApplyFailed".into()
                },
                message: error.unwrap_or_else(|| format!("{} steps applied", outcome.steps.len())),
                spec_hash: spec_hash.clone(),
                updated_unix: 0,
            };
            store.set_condition(&condition).await?;
        }
        Ok::<_, crate::store::StoreError>(())
    };
    run_quietly(work);
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
