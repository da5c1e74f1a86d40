//! `siteward status` and `siteward report`: read the state store.

use super::reconcile::runtime;
use super::{Context, Exit, hinted};
use crate::cli::{OutputFormat, ReportArgs, ReportFormat, StatusArgs};
use crate::conditions::{ConditionType, SiteStatus, age};
use crate::migrate::report::MigrationReport;
use crate::store::StateStore;
use std::fmt::Write as _;

/// Prints each site's conditions, as the last plan, apply or daemon run left them.
pub fn status(ctx: &Context, args: StatusArgs) -> anyhow::Result<Exit> {
    let (statuses, holders) = runtime()?.block_on(async {
        let store = StateStore::open(&ctx.state).await?;
        let statuses = store.site_statuses().await?;
        Ok::<_, crate::store::StoreError>((statuses, store.lease_holders().await?))
    })?;
    let statuses: Vec<SiteStatus> = statuses
        .into_iter()
        .filter(|s| args.site.as_ref().is_none_or(|name| &s.site == name))
        .collect();
    if args.format == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&with_holders(&statuses, &holders)?)?
        );
        return Ok(Exit::Success);
    }
    match (&args.site, statuses.first()) {
        (Some(name), None) => Err(hinted(
            format!("the state store knows no site `{name}`"),
            format!(
                "run `siteward plan` or `siteward apply` first, with the same `--state` ({})",
                ctx.state
            ),
        )),
        (None, None) => {
            println!(
                "No site has been planned or applied with this state store ({}).",
                ctx.state
            );
            Ok(Exit::Success)
        }
        (Some(_), Some(status)) => {
            print!(
                "{}",
                status_text(status, holders.get(&status.site), now_unix())
            );
            Ok(Exit::Success)
        }
        (None, Some(_)) => {
            print!("{}", status_table(&statuses, &holders, now_unix()));
            Ok(Exit::Success)
        }
    }
}

/// The statuses as JSON, each with the daemon holding its lease (`heldBy`) when one does.
fn with_holders(
    statuses: &[SiteStatus],
    holders: &Holders,
) -> serde_json::Result<Vec<serde_json::Value>> {
    statuses
        .iter()
        .map(|status| {
            let mut value = serde_json::to_value(status)?;
            if let (Some(holder), Some(object)) = (holders.get(&status.site), value.as_object_mut())
            {
                object.insert("heldBy".into(), serde_json::to_value(holder)?);
            }
            Ok(value)
        })
        .collect()
}

/// One line per site: the condition that sums it up, since when, and why (and which daemon
/// holds it, when several share the sites).
fn status_table(statuses: &[SiteStatus], holders: &Holders, now: i64) -> String {
    let shared = !holders.is_empty();
    let mut out = format!(
        "{:<20} {:<16} {:<12} {:>8}  {}MESSAGE\n",
        "SITE",
        "SERVER",
        "STATUS",
        "SINCE",
        if shared {
            format!("{:<28} ", "HELD BY")
        } else {
            String::new()
        }
    );
    for status in statuses {
        let since = ConditionType::parse(status.summary())
            .and_then(|kind| status.condition(kind))
            .map_or_else(|| "-".to_owned(), |c| age(now - c.last_transition_unix));
        let held = match holders.get(&status.site) {
            Some(holder) if shared => format!("{:<28} ", holder.holder),
            None if shared => format!("{:<28} ", "-"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<16} {:<12} {:>8}  {held}{}",
            status.site,
            status.server,
            status.summary(),
            since,
            one_line(status.summary_message(), 100)
        );
    }
    out
}

type Holders = std::collections::BTreeMap<String, crate::store::leases::LeaseHolder>;

/// Every condition of one site, its drift and its commits.
fn status_text(
    status: &SiteStatus,
    holder: Option<&crate::store::leases::LeaseHolder>,
    now: i64,
) -> String {
    let mut out = format!(
        "site {} on {}: {}\n",
        status.site,
        status.server,
        status.summary()
    );
    if let Some(holder) = holder {
        let _ = writeln!(
            out,
            "  held by daemon {} (fence {}, lease ends in {:.0} s)",
            holder.holder, holder.fence, holder.expires_in
        );
    }
    if status.suspended {
        let _ = writeln!(out, "  suspended: {}", status.suspend_reason);
    }
    if !status.deployed_commit.is_empty() || !status.desired_commit.is_empty() {
        let _ = writeln!(
            out,
            "  commit: {} deployed, {} wanted",
            short(&status.deployed_commit),
            short(&status.desired_commit)
        );
    }
    let _ = writeln!(
        out,
        "\n  {:<12} {:<8} {:<18} {:>8}  MESSAGE",
        "CONDITION", "STATUS", "REASON", "SINCE"
    );
    for condition in &status.conditions {
        let _ = writeln!(
            out,
            "  {:<12} {:<8} {:<18} {:>8}  {}",
            condition.kind.name(),
            condition.status.name(),
            condition.reason,
            age(now - condition.last_transition_unix),
            one_line(&condition.message, 200)
        );
    }
    if !status.drift.is_empty() {
        let _ = writeln!(out, "\n  drift:");
        for drifted in &status.drift {
            let _ = writeln!(
                out,
                "    ~ {} {}: {}",
                drifted.resource, drifted.name, drifted.reason
            );
        }
    }
    out
}

fn short(commit: &str) -> &str {
    match commit {
        "" => "-",
        commit => &commit[..commit.len().min(12)],
    }
}

/// `text` on one line, cut to `limit` characters.
fn one_line(text: &str, limit: usize) -> String {
    let flat = text.replace('\n', " ");
    match flat.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
