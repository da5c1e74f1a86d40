//! `siteward rollback SITE`: switch a site's `current` back to its previous good release.

use super::reconcile::{PrepareOptions, prepare, runtime};
use super::{Context, Exit, hinted};
use crate::apply::lock::LockOwner;
use crate::apply::{all_ok, apply_site};
use crate::cli::{ReportFormat, RollbackArgs};
use crate::plan::{Plan, SiteDisposition, SitePlan};
use crate::resources::code::rollback_change;
use crate::resources::desired::DesiredSite;

/// Shows the rollback as a plan, asks (or takes `--auto-approve`), then switches under the
/// site's lock, reloads PHP-FPM and restarts the site's workers, as a deploy does.
pub fn run(ctx: &Context, args: RollbackArgs) -> anyhow::Result<Exit> {
    runtime()?.block_on(run_async(ctx, args))
}

async fn run_async(ctx: &Context, args: RollbackArgs) -> anyhow::Result<Exit> {
    let sites = [args.site.clone()];
    let prepared = prepare(
        ctx,
        PrepareOptions {
            specs: &args.specs.specs,
            sites: &sites,
            accept_new_host_keys: args.accept_new_host_keys,
            prune: false,
        },
    )
    .await?;
    let plan = rollback_plan(&prepared, &args.site)?;
    print!(
        "{}",
        super::plan::render_plan(
            &plan,
            ReportFormat::Text,
            ctx.color_stdout,
            &prepared.secrets
        )
    );
    super::apply::confirm(args.auto_approve)?;
    let site_plan = &plan.sites[0];
    let server = prepared
        .loaded
        .servers
        .iter()
        .find(|s| s.item.name.as_str() == site_plan.server)
        .ok_or_else(|| anyhow::anyhow!("no Server spec named `{}`", site_plan.server))?;
    let session = prepared
        .sessions
        .get(&site_plan.server)
        .ok_or_else(|| anyhow::anyhow!("not connected to `{}`", site_plan.server))?;
    let owner = LockOwner::this_process("siteward rollback");
    let outcome = apply_site(
        session,
        site_plan,
        &server.item.spec,
        &prepared.secrets,
        &owner,
        &crate::apply::wave::Wave::default(),
    )
    .await;
    let outcomes = [outcome];
    super::apply::report(&outcomes, &prepared);
    super::record::apply_done(ctx, &prepared, &plan, &outcomes);
    if all_ok(&outcomes) {
        Ok(Exit::Success)
    } else {
        Err(hinted(
            "the rollback failed",
            "see the error above; `siteward observe` shows the releases on the server",
        ))
    }
}

/// A plan with one change: `current` to the previous good release.
fn rollback_plan(prepared: &super::reconcile::Prepared, name: &str) -> anyhow::Result<Plan> {
    let site = prepared
        .loaded
        .sites
        .iter()
        .map(|s| &s.item)
        .find(|s| s.name.as_str() == name)
        .ok_or_else(|| anyhow::anyhow!("no spec names site `{name}`"))?;
    let server = site.spec.server.to_string();
    let observed = prepared
        .observed
        .get(&server)
        .and_then(|s| s.sites.get(name))
        .cloned()
        .unwrap_or_default();
    let desired = DesiredSite::new(site);
    let change = rollback_change(&desired, &observed).map_err(|error| {
        hinted(
            format!("cannot roll back: {error}"),
            "`siteward observe` lists the site's releases; a bad release is never rolled back to",
        )
    })?;
    let mut plan = prepared.plan.clone();
    plan.sites = vec![SitePlan {
        site: name.to_owned(),
        server,
        disposition: SiteDisposition::Reconcile,
        detect_only: false,
        blocked_by: Vec::new(),
        warnings: Vec::new(),
        changes: vec![change],
        migration: None,
        restore: None,
    }];
    Ok(plan)
}
