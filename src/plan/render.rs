//! Rendering a plan: text for terminals (colour optional), JSON for machines, Markdown for
//! pull-request comments. Secrets never reach a plan; the caller scrubs resolved values too.

use super::migration::{MigrationPlan, human_duration, mode_word};
use super::{Action, Change, Plan, SiteDisposition, SitePlan};
use crate::migrate::preflight::human_bytes;
use crate::spec::site::OnSource;
use owo_colors::{OwoColorize, Style};
use std::fmt::Write as _;

fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Delete => "-",
        Action::NoOp => " ",
    }
}

fn word(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
        Action::NoOp => "no-op",
    }
}

fn action_style(action: Action) -> Style {
    match action {
        Action::Create => Style::new().green(),
        Action::Update => Style::new().yellow(),
        Action::Delete => Style::new().red(),
        Action::NoOp => Style::new().dimmed(),
    }
}

fn paint(color: bool, text: &str, style: Style) -> String {
    if color {
        text.style(style).to_string()
    } else {
        text.to_owned()
    }
}

/// The plan as text.
pub fn text(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    for site in &plan.sites {
        site_text(&mut out, site, color);
    }
    out.push_str(&summary(plan));
    out.push('\n');
    out
}

fn site_heading(site: &SitePlan) -> String {
    let note = match site.disposition {
        SiteDisposition::Reconcile if site.detect_only => {
            " (driftPolicy: detect — reported, not corrected)"
        }
        SiteDisposition::Reconcile => "",
        SiteDisposition::Orphaned if site.detect_only => {
            " (orphaned — removed only with `apply --prune`)"
        }
        SiteDisposition::Orphaned => " (orphaned — removed by this apply)",
        SiteDisposition::Migration => match &site.migration {
            Some(migration) => {
                return format!(
                    "site {} moves from {} to {}",
                    site.site, migration.source, migration.target
                );
            }
            None => " (migration source)",
        },
    };
    format!("site {} on {}{note}", site.site, site.server)
}

/// The lines of a migration: what moves, how long it may take, and each phase.
fn migration_lines(migration: &MigrationPlan) -> Vec<String> {
    let sizes = &migration.sizes;
    let storage = if migration.sizes_measured {
        format!(
            "storage {} in {} files",
            human_bytes(sizes.storage_bytes),
            sizes.storage_files
        )
    } else {
        "storage of unknown size (the source could not measure it)".to_owned()
    };
    let mut lines = vec![
        format!(
            "mode {}, on the source: {}",
            mode_word(migration.mode),
            match migration.on_source {
                OnSource::Keep => "keep",
                OnSource::Stop => "stop",
                OnSource::Remove => "remove",
            }
        ),
        format!(
            "moves database {}, {storage}; estimate about {}",
            human_bytes(sizes.database_bytes),
            human_duration(migration.estimate_seconds)
        ),
    ];
    if let Some(started) = migration.resumed_from_unix {
        lines.push(format!(
            "resumes the migration started at unix time {started} from its journal"
        ));
    }
    for (index, phase) in migration.phases.iter().enumerate() {
        let mark = if phase.done { "done" } else { "todo" };
        lines.push(format!(
            "{:>2}. [{mark}] {}: {}",
            index + 1,
            phase.phase.word(),
            phase.what
        ));
    }
    lines
}

fn site_text(out: &mut String, site: &SitePlan, color: bool) {
    let pending: Vec<&Change> = site.pending().collect();
    let unchanged = site.changes.len() - pending.len();
    let _ = writeln!(
        out,
        "{}",
        paint(color, &site_heading(site), Style::new().bold())
    );
    for reason in &site.blocked_by {
        let _ = writeln!(
            out,
            "  {} {reason}",
            paint(color, "cannot plan:", Style::new().red())
        );
    }
    for warning in &site.warnings {
        let _ = writeln!(
            out,
            "  {} {warning}",
            paint(color, "warning:", Style::new().yellow().bold())
        );
    }
    if let Some(migration) = &site.migration {
        for line in migration_lines(migration) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if let Some(restore) = &site.restore {
        let head = paint(color, "restore:", Style::new().yellow().bold());
        for line in restore.lines() {
            let _ = writeln!(out, "  {head} {line}");
        }
    }
    if !site.blocked_by.is_empty() {
        let _ = writeln!(out, "  not planned until the above is fixed\n");
        return;
    }
    if pending.is_empty() && site.restore.is_none() {
        let _ = writeln!(out, "  up to date ({unchanged} resources)\n");
        return;
    }
    for change in pending {
        let head = format!(
            "{} {} {}",
            symbol(change.action),
            change.resource.label(),
            change.name
        );
        let default = match (change.default, change.restarts_failing) {
            (true, _) => " [laravel default]",
            (_, true) => {
                " [health: it crashes at each start; apply starts it again, the daemon when its backoff allows]"
            }
            _ => "",
        };
        let _ = writeln!(
            out,
            "  {}{default}: {}",
            paint(color, &head, action_style(change.action)),
            change.reason
        );
        if let Some(diff) = &change.diff {
            diff_text(out, diff, color);
        }
    }
    if unchanged > 0 {
        let _ = writeln!(out, "  ({unchanged} resources unchanged)");
    }
    out.push('\n');
}

fn diff_text(out: &mut String, diff: &str, color: bool) {
    for line in diff.lines() {
        let style = match line.chars().next() {
            Some('+') if !line.starts_with("+++") => Style::new().green(),
            Some('-') if !line.starts_with("---") => Style::new().red(),
            Some('@') => Style::new().cyan(),
            _ => Style::new(),
        };
        let _ = writeln!(out, "      {}", paint(color, line, style));
    }
}

/// `Plan: 3 to create, 2 to update, 1 to delete; 14 steps.`
pub fn summary(plan: &Plan) -> String {
    let count = |action| {
        plan.sites
            .iter()
            .filter(|s| !s.detect_only)
            .flat_map(|s| s.pending())
            .filter(|c| c.action == action)
            .count()
    };
    let detected: usize = plan
        .sites
        .iter()
        .filter(|s| s.detect_only)
        .map(|s| s.pending().count())
        .sum();
    let migrations = plan
        .sites
        .iter()
        .filter(|s| s.migration.as_ref().is_some_and(|m| m.pending()))
        .count();
    let mut line = if plan.has_changes() {
        let mut line = format!(
            "Plan: {} to create, {} to update, {} to delete; {} steps.",
            count(Action::Create),
            count(Action::Update),
            count(Action::Delete),
            plan.step_count()
        );
        if migrations > 0 {
            let _ = write!(line, " {migrations} site(s) to move between servers.");
        }
        let restores = plan.sites.iter().filter(|s| s.restore.is_some()).count();
        if restores > 0 {
            let _ = write!(line, " {restores} site(s) to restore from a backup.");
        }
        line
    } else {
        "No changes: the servers match the specs.".to_owned()
    };
    if detected > 0 {
        let _ = write!(
            line,
            " {detected} differences reported only (detect, orphaned or migration)."
        );
    }
    line
}

/// The plan as JSON (format version in `formatVersion`).
pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).unwrap_or_default()
}

/// The plan as Markdown, for a pull-request comment.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::from("### siteward plan\n\n");
    let _ = writeln!(out, "**{}**\n", summary(plan));
    for site in &plan.sites {
        let _ = writeln!(out, "#### {}\n", site_heading(site));
        for reason in &site.blocked_by {
            let _ = writeln!(out, "**Cannot plan:** {reason}\n");
        }
        for warning in &site.warnings {
            let _ = writeln!(out, "**Warning:** {warning}\n");
        }
        if let Some(migration) = &site.migration {
            for line in migration_lines(migration) {
                let _ = writeln!(out, "- {line}");
            }
            out.push('\n');
        }
        if let Some(restore) = &site.restore {
            for line in restore.lines() {
                let _ = writeln!(out, "- **restore:** {line}");
            }
            out.push('\n');
        }
        let pending: Vec<&Change> = site.pending().collect();
        if pending.is_empty() {
            out.push_str("Up to date.\n\n");
            continue;
        }
        out.push_str("| | resource | name | reason |\n|---|---|---|---|\n");
        for change in &pending {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} |",
                word(change.action),
                change.resource.label(),
                change.name,
                change.reason.replace('|', "\\|")
            );
        }
        out.push('\n');
        for change in pending.iter().filter(|c| c.diff.is_some()) {
            let diff = change.diff.as_deref().unwrap_or_default();
            let _ = writeln!(
                out,
                "<details><summary>{} <code>{}</code></summary>\n\n```diff\n{}```\n</details>\n",
                change.resource.label(),
                change.name,
                diff
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::migration::{MigrationPlan, MoveSizes};
    use crate::spec::site::{Migration, MigrationMode};

    fn migration_plan(blocked_by: Vec<String>) -> Plan {
        let migration = MigrationPlan::new(
            "web-1",
            "web-2",
            &Migration {
                mode: MigrationMode::FinalSync,
                on_source: OnSource::Remove,
            },
            Some(MoveSizes {
                database_bytes: 3 << 30,
                storage_bytes: 512 << 20,
                storage_files: 1200,
            }),
            None,
        );
        Plan {
            format_version: crate::plan::FORMAT_VERSION,
            spec_hash: String::new(),
            observed_fingerprint: String::new(),
            sites: vec![SitePlan {
                site: "shop".into(),
                server: "web-2".into(),
                disposition: SiteDisposition::Migration,
                detect_only: false,
                blocked_by,
                warnings: Vec::new(),
                changes: Vec::new(),
                migration: Some(migration),
                restore: None,
            }],
        }
    }

    #[test]
    fn a_migration_shows_its_sizes_estimate_and_phases() {
        let plan = migration_plan(Vec::new());
        let text = text(&plan, false);
        assert!(
            text.contains("site shop moves from web-1 to web-2"),
            "{text}"
        );
        assert!(
            text.contains("mode final-sync, on the source: remove"),
            "{text}"
        );
        assert!(
            text.contains(
                "moves database 3.0 GiB, storage 512.0 MiB in 1200 files; estimate about"
            ),
            "{text}"
        );
        assert!(text.contains(" 1. [todo] provision:"), "{text}");
        assert!(text.contains("12. [todo] done:"), "{text}");
        assert!(text.contains("1 site(s) to move between servers"), "{text}");
        let markdown = markdown(&plan);
        assert!(
            markdown.contains("-  2. [todo] database-copied:"),
            "{markdown}"
        );
    }

    #[test]
    fn a_refused_migration_says_why_and_is_not_called_up_to_date() {
        let plan = migration_plan(vec!["preflight: `web-2`: PHP 8.3 is not installed".into()]);
        let text = text(&plan, false);
        assert!(
            text.contains("cannot plan: preflight: `web-2`: PHP 8.3 is not installed"),
            "{text}"
        );
        assert!(
            text.contains("not planned until the above is fixed"),
            "{text}"
        );
        assert!(!text.contains("up to date"), "{text}");
    }
}
