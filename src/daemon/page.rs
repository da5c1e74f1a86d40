//! The status pages, rendered on the server (maud, every value escaped): one row per site, and a page per site with its conditions, drift, last applies and migration report. Readable without colour: every badge says its condition in words.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::http::SiteView;
use crate::conditions::{ConditionStatus, SiteStatus, age};

const STYLE: &str = "
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; } h2 { font-size: 1.1rem; margin-top: 1.75rem; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #ddd; vertical-align: top; }
th { font-weight: 600; background: #f5f5f7; } td:first-child { white-space: nowrap; } code, pre { font: 13px/1.4 ui-monospace, monospace; }
pre { background: #f5f5f7; padding: .6rem; overflow-x: auto; white-space: pre-wrap; }
.badge { display: inline-block; border: 1px solid; border-radius: 3px; padding: 0 .35rem; margin: 0 .2rem .2rem 0; font-size: 12px; font-weight: 600; }
.Ready { color: #1a7f37; } .Drifted { color: #9a6700; } .Progressing { color: #0969da; }
.Degraded, .Unreachable { color: #cf222e; } .Suspended, .Orphaned, .Unknown { color: #57606a; }
.muted { color: #57606a; } .warning { border: 1px solid #cf222e; padding: .5rem; color: #cf222e; }
";

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · siteward" }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

/// The conditions that hold, as badges (the summary first).
fn badges(status: &SiteStatus) -> Markup {
    let holding: Vec<&str> = status
        .conditions
        .iter()
        .filter(|c| c.holds())
        .map(|c| c.kind.name())
        .collect();
    html! {
        @if holding.is_empty() {
            span class="badge Unknown" { "Unknown" }
        }
        @for name in holding {
            span class={ "badge " (name) } { (name) }
        }
    }
}

fn plural(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

fn when(unix: i64, now: i64) -> String {
    match unix {
        0 => "never".into(),
        unix => format!("{} ago", age(now - unix)),
    }
}

/// The page at `/`: one row per site.
pub fn index(sites: &[SiteView], daemon: &serde_json::Value, now: i64) -> Markup {
    let revision = daemon["specsRevision"].as_str().unwrap_or_default();
    let shared = daemon["shared"].is_object();
    layout(
        "sites",
        html! {
            h1 { "siteward" }
            p class="muted" {
                (plural(sites.len(), "site")) " on " (plural(daemon["servers"].as_u64().unwrap_or(0) as usize, "server"))
                @if !revision.is_empty() { " · specs at " code { (short(revision)) } }
                @if let Some(fetched) = daemon["git"]["lastResult"].as_str() { " · last git fetch: " (fetched) }
            }
            @if let Some(refused) = daemon["specsRefused"].as_str() {
                div class="warning" { "The specs on disk are invalid; the last valid ones stay in force." pre { (refused) } }
            }
            @if let Some(error) = daemon["git"]["error"].as_str() {
                div class="warning" { "The specs' checkout is not updated: " (error) }
            }
            @if let Some(message) = daemon["store"]["message"].as_str() {
                div class="warning" data-condition="StoreUnreachable" { "Unreachable: " (message) }
            }
            @if let Some(me) = daemon["shared"]["daemon"].as_str() {
                p class="muted" { "This daemon: " code { (me) } " · holding " (daemon["shared"]["holding"].as_u64().unwrap_or(0)) " of the sites" }
            }
            table {
                thead { tr {
                    th { "Site" } th { "Conditions" } th { "Server" } @if shared { th { "Held by" } } th { "Deployed" } th { "Wanted" }
                    th { "Last result" } th { "Reconciled" } th { "Next run" } th { "Message" }
                } }
                tbody {
                    @for site in sites {
                        tr data-site=(site.status.site) {
                            td { a href={ "/sites/" (site.status.site) } { (site.status.site) } }
                            td { (badges(&site.status)) @if site.running { span class="badge Progressing" { "running" } } }
                            td { (site.status.server) }
                            @if shared { td { @match &site.held_by { Some(held) => code { (held.holder) }, None => "nobody" } } }
                            td { code { (short(&site.status.deployed_commit)) } }
                            td { code { (short(&site.status.desired_commit)) } }
                            td { (site.status.last_result) }
                            td { (when(site.status.last_reconcile_unix, now)) }
                            td { @match site.next_run_in_seconds { Some(s) => { "in " (age(s as i64)) }, None => { "on change" } } }
                            td { (site.status.summary_message()) }
                        }
                    }
                }
            }
        },
    )
}

/// The page at `/sites/NAME`.
pub fn site(detail: &serde_json::Value, now: i64) -> Markup {
    let view: SiteStatus = serde_json::from_value(detail["site"].clone()).unwrap_or_default();
    let summary = detail["site"]["summary"].as_str().unwrap_or("Unknown");
    layout(
        &view.site,
        html! {
            p { a href="/" { "← all sites" } }
            h1 { (view.site) " " span class={ "badge " (summary) } { (summary) } }
            p class="muted" {
                "on " (view.server)
                @if !view.deployed_commit.is_empty() { " · deployed " code { (short(&view.deployed_commit)) } }
                @if !view.desired_commit.is_empty() { " · wanted " code { (short(&view.desired_commit)) } }
                @if view.suspended { " · suspended: " (view.suspend_reason) }
                @if let Some(holder) = detail["site"]["heldBy"]["holder"].as_str() { " · held by " code { (holder) } }
            }
            h2 { "Conditions" }
            table {
                thead { tr { th { "Condition" } th { "Status" } th { "Reason" } th { "Since" } th { "Message" } } }
                tbody {
                    @for condition in &view.conditions {
                        tr {
                            td { span class={ "badge " @if condition.status == ConditionStatus::True { (condition.kind.name()) } @else { "Unknown" } } { (condition.kind.name()) } }
                            td { (condition.status.name()) }
                            td { (condition.reason) }
                            td { (when(condition.last_transition_unix, now)) }
                            td { (condition.message) }
                        }
                    }
                }
            }
            h2 { "Drift" }
            @if view.drift.is_empty() { p class="muted" { "Nothing differs from the spec." } }
            @for drifted in &view.drift {
                h3 { (drifted.action) " " (drifted.resource) " " code { (drifted.name) } }
                p { (drifted.reason) }
                @if let Some(diff) = &drifted.diff { pre { (diff) } }
            }
            h2 { "Last applies" }
            (applies(detail, now))
            h2 { "Last migration" }
            @match detail["migration"].is_null() {
                true => { p class="muted" { "The site has not moved." } },
                false => { (migration(detail)) },
            }
        },
    )
}

fn applies(detail: &serde_json::Value, now: i64) -> Markup {
    let runs = detail["applies"].as_array().cloned().unwrap_or_default();
    html! {
        @if runs.is_empty() { p class="muted" { "None recorded." } }
        @else {
            table {
                thead { tr { th { "When" } th { "By" } th { "Server" } th { "Result" } th { "Steps" } th { "Error" } } }
                tbody {
                    @for run in &runs {
                        tr {
                            td { (when(run["startedUnix"].as_i64().unwrap_or(0), now)) }
                            td { (run["kind"].as_str().unwrap_or_default()) }
                            td { (run["server"].as_str().unwrap_or_default()) }
                            td { @if run["ok"] == true { "applied" } @else { "failed" } " in " (run["millis"]) " ms" }
                            td { (run["steps"].as_array().map_or(0, Vec::len)) }
                            td { (run["error"].as_str().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

fn migration(detail: &serde_json::Value) -> Markup {
    let report: Option<crate::migrate::report::MigrationReport> =
        serde_json::from_value(detail["migration"].clone()).ok();
    html! {
        @match report {
            Some(report) => { pre { (report.markdown()) } },
            None => { pre { (detail["migration"].to_string()) } },
        }
    }
}

/// The page for a site no one knows.
pub fn missing(name: &str) -> Markup {
    layout(
        "not found",
        html! {
            p { a href="/" { "← all sites" } }
            h1 { "No site " code { (name) } }
            p { "No spec names it and the state store does not know it." }
        },
    )
}
