//! `siteward status` and `siteward report`: read the state store.

use super::reconcile::runtime;
use super::{Context, Exit, hinted};
use crate::cli::{OutputFormat, ReportArgs, ReportFormat, StatusArgs};
use crate::migrate::report::MigrationReport;
use crate::store::StateStore;
use std::fmt::Write as _;

/// Prints each site's last known condition.
pub fn status(ctx: &Context, args: StatusArgs) -> anyhow::Result<Exit> {
    let conditions = runtime()?.block_on(async {
        let store = StateStore::open(&ctx.state).await?;
        store.conditions().await
    })?;
    let conditions: Vec<_> = conditions
        .into_iter()
        .filter(|c| args.site.as_ref().is_none_or(|s| &c.site == s))
        .collect();
    if args.format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&conditions)?);
        return Ok(Exit::Success);
    }
    if conditions.is_empty() {
        println!(
            "No site has been planned or applied with this state store ({}).",
            ctx.state
        );
        return Ok(Exit::Success);
    }
    println!(
        "{:<20} {:<16} {:<6} {:<8} {:<14} MESSAGE",
        "SITE", "SERVER", "READY", "DRIFTED", "REASON"
    );
    for c in conditions {
        println!(
            "{:<20} {:<16} {:<6} {:<8} {:<14} {}",
            c.site, c.server, c.ready, c.drifted, c.reason, c.message
        );
    }
    Ok(Exit::Success)
}

/// Prints a site's last apply.
pub fn report(ctx: &Context, args: ReportArgs) -> anyhow::Result<Exit> {
    let history = runtime()?.block_on(async {
        let store = StateStore::open(&ctx.state).await?;
        store.site_history(&args.site, 1).await
    })?;
    let Some(last) = history.into_iter().next() else {
        return Err(hinted(
            format!("no apply of site `{}` is recorded", args.site),
            "run `siteward apply` first, with the same `--state`",
        ));
    };
    if let Some(report) = last
        .migration_json
        .as_deref()
        .and_then(|json| serde_json::from_str::<MigrationReport>(json).ok())
    {
        match args.format {
            ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            ReportFormat::Text | ReportFormat::Markdown => print!("{}", report.markdown()),
        }
        return Ok(Exit::Success);
    }
    let steps: serde_json::Value = serde_json::from_str(&last.steps_json).unwrap_or_default();
    match args.format {
        ReportFormat::Json => {
            let mut value = serde_json::to_value(&last)?;
            value["steps"] = steps;
            if let Some(object) = value.as_object_mut() {
                object.remove("stepsJson");
                object.remove("migrationJson");
            }
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        ReportFormat::Text | ReportFormat::Markdown => print!(
            "{}",
            report_text(&last, &steps, args.format == ReportFormat::Markdown)
        ),
    }
    Ok(Exit::Success)
}

fn report_text(
    last: &crate::store::SiteRunRecord,
    steps: &serde_json::Value,
    markdown: bool,
) -> String {
    let mut out = String::new();
    let state = if last.ok { "applied" } else { "failed" };
    let heading = if markdown { "### " } else { "" };
    let _ = writeln!(
        out,
        "{heading}site {} on {}: {state} in {} ms (run {})\n",
        last.site, last.server, last.millis, last.run_id
    );
    for step in steps.as_array().into_iter().flatten() {
        let ok = step["ok"].as_bool().unwrap_or(false);
        let mark = if ok { "ok  " } else { "FAIL" };
        let _ = writeln!(
            out,
            "{}{mark} {} ({} ms)",
            if markdown { "- " } else { "  " },
            step["what"].as_str().unwrap_or("?"),
            step["millis"]
        );
    }
    if let Some(error) = &last.error {
        let _ = writeln!(out, "\nerror: {error}");
    }
    out
}
