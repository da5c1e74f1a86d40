//! `siteward apply`: run the plan's steps, site by site, under each site's lock.

use super::reconcile::{PrepareOptions, Prepared, prepare, runtime};
use super::{Context, Exit, hinted};
use crate::apply::lock::LockOwner;
use crate::apply::wave::Wave;
use crate::apply::{SiteOutcome, all_ok, apply_site, sites_by_server};
use crate::cli::{ApplyArgs, ReportFormat};
use crate::migrate::launch::{Launch, migrate_planned, server_spec};
use crate::migrate::progress::Progress;
use crate::plan::{Plan, SitePlan, render};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};
use std::pin::Pin;

/// Applies a saved plan, or plans and applies.
pub fn run(ctx: &Context, args: ApplyArgs) -> anyhow::Result<Exit> {
    runtime()?.block_on(run_async(ctx, args))
}

async fn run_async(ctx: &Context, args: ApplyArgs) -> anyhow::Result<Exit> {
    let saved = args.plan_file.as_deref().map(load_saved).transpose()?;
    let prepared = prepare(
        ctx,
        PrepareOptions {
            specs: &args.specs.specs,
            sites: &args.sites,
            accept_new_host_keys: args.accept_new_host_keys,
            prune: args.prune,
        },
    )
    .await?;
    super::plan::refuse_blocked(&prepared.plan)?;
    let plan = match saved {
        Some(saved) => check_saved(saved, &prepared.plan)?,
        None => prepared.plan.clone(),
    };
    if !plan.has_changes() {
        println!("{}", render::summary(&plan));
        super::record::plan_made(ctx, &prepared, &plan);
        return Ok(Exit::Success);
    }
    if args.plan_file.is_none() {
        print!(
            "{}",
            super::plan::render_plan(
                &plan,
                ReportFormat::Text,
                ctx.color_stdout,
                &prepared.secrets
            )
        );
        confirm(args.auto_approve)?;
    }
    let outcomes = apply_all(&prepared, &plan).await;
    report(&outcomes, &prepared);
    super::record::apply_done(ctx, &prepared, &plan, &outcomes);
    print_migration_reports(&outcomes);
    if let Some(path) = &args.report {
        write_report(path, &outcomes, &prepared.secrets)?;
    }
    if all_ok(&outcomes) {
        Ok(Exit::Success)
    } else {
        Err(hinted(
            "some steps failed; the servers are partly applied",
            "fix the cause above and apply again: every step is safe to re-run",
        ))
    }
}

/// Each migration's report, in Markdown, on stdout.
fn print_migration_reports(outcomes: &[SiteOutcome]) {
    for report in outcomes.iter().filter_map(|o| o.migration.as_deref()) {
        println!("\n{}", report.markdown());
    }
}

/// `--report FILE`: Markdown when the file ends in `.md`, JSON otherwise.
fn write_report(
    path: &std::path::Path,
    outcomes: &[SiteOutcome],
    secrets: &crate::spec::secret::ResolvedSecrets,
) -> anyhow::Result<()> {
    let markdown = path.extension().is_some_and(|e| e == "md");
    let text = if markdown {
        let mut text = String::new();
        for outcome in outcomes {
            match &outcome.migration {
                Some(report) => text.push_str(&report.markdown()),
                None => text.push_str(&format!(
                    "## `{}` on `{}`: {} ({} steps, {} ms)\n\n",
                    outcome.site,
                    outcome.server,
                    if outcome.ok { "applied" } else { "FAILED" },
                    outcome.steps.len(),
                    outcome.millis
                )),
            }
        }
        text
    } else {
        serde_json::to_string_pretty(outcomes)?
    };
    std::fs::write(path, secrets.scrub(&text))
        .with_context(|| format!("failed to write {}", path.display()))
}

fn load_saved(path: &std::path::Path) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the plan {}", path.display()))?;
    let plan: Plan = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a siteward plan", path.display()))?;
    if plan.format_version != crate::plan::FORMAT_VERSION {
        return Err(hinted(
            format!(
                "the plan uses format version {}, this siteward reads {}",
                plan.format_version,
                crate::plan::FORMAT_VERSION
            ),
            "make the plan again with this siteward",
        ));
    }
    Ok(plan)
}

/// A saved plan applies only to the specs and server state it was made from.
fn check_saved(saved: Plan, fresh: &Plan) -> anyhow::Result<Plan> {
    if saved.spec_hash != fresh.spec_hash {
        return Err(hinted(
            "the specs changed since this plan was made",
            "run `siteward plan --out FILE` again and apply the new plan",
        ));
    }
    if saved.observed_fingerprint != fresh.observed_fingerprint {
        return Err(hinted(
            "the plan is stale: the servers changed since it was made",
            "run `siteward plan --out FILE` again and review the new plan",
        ));
    }
    Ok(saved)
}

pub(super) fn confirm(auto_approve: bool) -> anyhow::Result<()> {
    if auto_approve {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(hinted(
            "refusing to apply without confirmation",
            "pass `--auto-approve`, or apply a reviewed plan file: `siteward apply FILE`",
        ));
    }
    eprint!("Apply these changes? Only `yes` is accepted: ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(hinted("apply cancelled", "nothing was changed"))
    }
}

async fn apply_all(prepared: &Prepared, plan: &Plan) -> Vec<SiteOutcome> {
    let owner = LockOwner::this_process("siteward apply");
    let by_server = sites_by_server(plan);
    // One wave per server: its sites share config tests and reloads.
    let waves: BTreeMap<&String, Wave> = by_server.keys().map(|s| (s, Wave::default())).collect();
    let mut tasks: Vec<Pin<Box<dyn Future<Output = SiteOutcome> + Send + '_>>> = Vec::new();
    for (server_name, sites) in &by_server {
        let Some(session) = prepared.sessions.get(server_name) else {
            continue;
        };
        let Some(server) = server_spec(&prepared.loaded, server_name) else {
            continue;
        };
        let wave = &waves[server_name];
        for site in sites.iter().copied() {
            if site.restore.is_some() {
                tasks.push(Box::pin(super::backup::restore_planned(
                    prepared, site, &owner,
                )));
            } else if site.migration.is_some() {
                tasks.push(Box::pin(migrate(prepared, site, &owner)));
            } else {
                tasks.push(Box::pin(apply_site(
                    session,
                    site,
                    server,
                    &prepared.secrets,
                    &owner,
                    wave,
                )));
            }
        }
    }
    futures::future::join_all(tasks).await
}

/// Runs (or resumes) the migration of a site to the server of its plan.
async fn migrate(prepared: &Prepared, site_plan: &SitePlan, owner: &LockOwner) -> SiteOutcome {
    let launch = Launch {
        loaded: &prepared.loaded,
        sessions: &prepared.sessions,
        observed: &prepared.observed,
        secrets: &prepared.secrets,
        owner,
        progress: Progress::detect(),
        on_phase: None,
    };
    migrate_planned(&launch, site_plan).await
}

pub(super) fn report(outcomes: &[SiteOutcome], prepared: &Prepared) {
    for outcome in outcomes {
        let steps = outcome.steps.len();
        let state = if outcome.ok { "applied" } else { "FAILED" };
        eprintln!(
            "site {} on {}: {state} ({steps} steps, {} ms)",
            outcome.site, outcome.server, outcome.millis
        );
        if let Some(error) = &outcome.error {
            eprintln!("  error: {}", prepared.secrets.scrub(error));
        }
    }
    let steps: usize = outcomes.iter().map(|o| o.steps.len()).sum();
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    println!(
        "Apply complete: {} sites, {steps} steps, {failed} failed.",
        outcomes.len()
    );
}
