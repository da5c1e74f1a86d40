//! `siteward plan`: observe, diff and print what an apply would do.

use super::reconcile::{PrepareOptions, prepare, runtime};
use super::{Context, Exit};
use crate::cli::{PlanArgs, ReportFormat};
use crate::plan::{Plan, render};
use crate::spec::secret::ResolvedSecrets;
use anyhow::Context as _;

/// Makes and prints the plan.
pub fn run(ctx: &Context, args: PlanArgs) -> anyhow::Result<Exit> {
    let prepared = runtime()?.block_on(prepare(
        ctx,
        PrepareOptions {
            specs: &args.specs.specs,
            sites: &args.sites,
            accept_new_host_keys: args.accept_new_host_keys,
            prune: args.prune,
        },
    ))?;
    let plan = &prepared.plan;
    print!(
        "{}",
        render_plan(plan, args.format, ctx.color_stdout, &prepared.secrets)
    );
    if let Some(path) = &args.out {
        save(plan, path)?;
        eprintln!(
            "Saved the plan to {}; apply it with `siteward apply {}`.",
            path.display(),
            path.display()
        );
    }
    super::record::plan_made(ctx, &prepared, plan);
    refuse_blocked(plan)?;
    Ok(match (args.detailed_exitcode, plan.has_changes()) {
        (true, true) => Exit::Changes,
        _ => Exit::Success,
    })
}

/// The plan in the chosen format, with every resolved secret scrubbed.
pub fn render_plan(
    plan: &Plan,
    format: ReportFormat,
    color: bool,
    secrets: &ResolvedSecrets,
) -> String {
    let text = match format {
        ReportFormat::Text => render::text(plan, color),
        ReportFormat::Json => render::json(plan) + "\n",
        ReportFormat::Markdown => render::markdown(plan),
    };
    secrets.scrub(&text)
}

/// Sites that could not be observed well enough to plan make the command fail.
pub fn refuse_blocked(plan: &Plan) -> anyhow::Result<()> {
    let blocked: Vec<String> = plan
        .blocked()
        .map(|s| format!("{} ({})", s.site, s.blocked_by.join("; ")))
        .collect();
    if blocked.is_empty() {
        return Ok(());
    }
    let preflight = plan
        .blocked()
        .flat_map(|s| &s.blocked_by)
        .any(|reason| reason.starts_with("preflight:"));
    let hint = if preflight {
        "a migration's new server cannot take its site yet: install or start what the preflight names, free the disk or rename the clash, or point `server:` back; nothing was changed"
    } else {
        "make the services the probe names answer (`siteward observe` shows what it sees), then plan again"
    };
    Err(super::hinted(
        format!(
            "{} site(s) could not be planned: {}",
            blocked.len(),
            blocked.join(", ")
        ),
        hint,
    ))
}

/// Saves a plan for `apply FILE`.
pub fn save(plan: &Plan, path: &std::path::Path) -> anyhow::Result<()> {
    let text = render::json(plan);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("failed to write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("failed to write {}", path.display()))
}
