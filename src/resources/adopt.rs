//! Adoption: the first apply of a discovered site replaces the files its previous setup left
//! (the spec's `adopt` section) in the steps that install siteward's own.
//!
//! The vhost's write becomes a switch that removes the old vhost files; the cron file's write
//! one that drops the old crontab lines; the old programs are stopped and forgotten just before
//! supervisor starts siteward's; old pools go once the vhost no longer uses them.

use super::desired::DesiredSite;
use crate::layout;
use crate::observe::ObservedSite;
use crate::plan::step::{Reload, TakeOverStep, TakeOverWrite};
use crate::plan::{Action, Change, ResourceKind, Step};
use crate::spec::adopt::Adopt;

/// Turns the site's changes into its takeover where the old files still exist.
///
/// # Guarantees
/// Only files the `adopt` section lists and the server still has are touched; once they are
/// gone (the takeover ran), this changes nothing and the plan is empty.
pub fn take_over(desired: &DesiredSite, observed: &ObservedSite, changes: &mut Vec<Change>) {
    let Some(adopt) = &desired.site.spec.adopt else {
        return;
    };
    let site = desired.name.to_owned();
    let present = |path: &String| observed.files.contains_key(path);
    let vhosts: Vec<String> = adopt
        .vhosts
        .iter()
        .filter(|p| present(p))
        .cloned()
        .collect();
    if !vhosts.is_empty() {
        let path = layout::vhost_path(desired.name);
        switch(
            changes,
            ResourceKind::Vhost,
            &path,
            &site,
            vhosts,
            Vec::new(),
            Reload::Nginx,
            adopt,
        );
        if observed.user.is_some() {
            close_after_switch(desired, changes);
        }
    }
    pools(desired, observed, adopt, changes);
    let (files, lines) = cron_entries(adopt, observed);
    if !files.is_empty() || !lines.is_empty() {
        let path = layout::cron_path(desired.name);
        switch(
            changes,
            ResourceKind::Cron,
            &path,
            &site,
            files,
            lines,
            Reload::Nothing,
            adopt,
        );
    }
    programs(desired, observed, adopt, changes);
}

/// Replaces the write of `path` in its change by a takeover that also removes `remove` and
/// drops `lines`; adds the change when siteward's file is in place already.
#[allow(clippy::too_many_arguments)]
fn switch(
    changes: &mut Vec<Change>,
    resource: ResourceKind,
    path: &str,
    site: &str,
    remove: Vec<String>,
    lines: Vec<(String, String)>,
    reload: Reload,
    adopt: &Adopt,
) {
    let what = describe(&remove, &lines);
    let mut take = TakeOverStep {
        site: site.to_owned(),
        write: None,
        remove,
        lines,
        reload,
        join: None,
    };
    let reason = format!("takes over from {}: {what}", adopt.from.title());
    if let Some(change) = changes.iter_mut().find(|c| c.resource == resource) {
        if let Some(index) = change.steps.iter().position(|s| writes(s, path)) {
            take.write = take_write(&change.steps[index]);
            change.steps[index] = Step::TakeOver(Box::new(take));
        } else {
            change.steps.push(Step::TakeOver(Box::new(take)));
        }
        change.reason = if change.action == Action::NoOp {
            reason
        } else {
            format!("{}; {reason}", change.reason)
        };
        if change.action == Action::NoOp {
            change.action = Action::Update;
        }
        return;
    }
    changes.push(
        Change::new(resource, path, Action::Update, reason).step(Step::TakeOver(Box::new(take))),
    );
}

/// The web server joins the site user's group in the vhost switch, before its reload; the user
/// and directory changes (which close the home and the root to others) move after it, so no
/// nginx worker without the group is ever refused a file.
fn close_after_switch(desired: &DesiredSite, changes: &mut Vec<Change>) {
    for change in changes
        .iter_mut()
        .filter(|c| c.resource == ResourceKind::Vhost)
    {
        for step in &mut change.steps {
            if let Step::TakeOver(take) = step {
                take.join = Some(desired.user.to_owned());
            }
        }
    }
    let moved: Vec<Change> = changes
        .extract_if(.., |c| {
            matches!(c.resource, ResourceKind::User | ResourceKind::Directory)
        })
        .collect();
    let at = changes
        .iter()
        .position(|c| c.resource == ResourceKind::Vhost)
        .map_or(changes.len(), |i| i + 1);
    for (offset, change) in moved.into_iter().enumerate() {
        changes.insert(at + offset, change);
    }
}

fn writes(step: &Step, path: &str) -> bool {
    matches!(step, Step::WriteFile { path: p, .. } if p == path)
}

fn take_write(step: &Step) -> Option<TakeOverWrite> {
    match step {
        Step::WriteFile {
            path,
            content,
            owner,
            group,
            mode,
            ..
        } => Some(TakeOverWrite {
            path: path.clone(),
            content: content.clone(),
            owner: owner.clone(),
            group: group.clone(),
            mode: *mode,
        }),
        _ => None,
    }
}

fn describe(remove: &[String], lines: &[(String, String)]) -> String {
    let mut parts: Vec<String> = remove.iter().map(|p| format!("removes {p}")).collect();
    parts.extend(
        lines
            .iter()
            .map(|(file, line)| format!("drops `{}` from {file}", line.trim())),
    );
    parts.join(", ")
}

/// Old crontab files still there, and old lines still in their files.
fn cron_entries(adopt: &Adopt, observed: &ObservedSite) -> (Vec<String>, Vec<(String, String)>) {
    let mut files = Vec::new();
    let mut lines = Vec::new();
    for cron in &adopt.crons {
        let Some(file) = observed.files.get(&cron.file) else {
            continue;
        };
        match &cron.line {
            None => files.push(cron.file.clone()),
            Some(line) => {
                let holds = file
                    .content
                    .as_deref()
                    .is_none_or(|text| text.lines().any(|l| l == line));
                if holds {
                    lines.push((cron.file.clone(), line.clone()));
                }
            }
        }
    }
    (files, lines)
}

/// Old pools go after the vhost switch (the vhost used them until then).
fn pools(desired: &DesiredSite, observed: &ObservedSite, adopt: &Adopt, changes: &mut Vec<Change>) {
    let at = changes
        .iter()
        .position(|c| c.resource == ResourceKind::Vhost)
        .map_or(changes.len(), |i| i + 1);
    let mut added = 0;
    for path in adopt
        .pools
        .iter()
        .filter(|p| observed.files.contains_key(*p))
    {
        let Some(version) = pool_version(path) else {
            continue;
        };
        let take = TakeOverStep {
            site: desired.name.to_owned(),
            write: None,
            remove: vec![path.clone()],
            lines: Vec::new(),
            reload: Reload::PhpFpm { version },
            join: None,
        };
        let change = Change::new(
            ResourceKind::FpmPool,
            path.as_str(),
            Action::Delete,
            format!(
                "takes over from {}: removes {path}, which only this site used",
                adopt.from.title()
            ),
        )
        .step(Step::TakeOver(Box::new(take)));
        changes.insert(at + added, change);
        added += 1;
    }
}

fn pool_version(path: &str) -> Option<String> {
    let (version, _) = path.strip_prefix("/etc/php/")?.split_once('/')?;
    Some(version.to_owned())
}

/// The old programs are stopped (gracefully) and forgotten right before supervisor starts
/// siteward's: a job is never handled by both.
fn programs(
    desired: &DesiredSite,
    observed: &ObservedSite,
    adopt: &Adopt,
    changes: &mut Vec<Change>,
) {
    let old: Vec<String> = adopt
        .programs
        .iter()
        .filter(|p| observed.files.contains_key(*p))
        .cloned()
        .collect();
    if old.is_empty() {
        return;
    }
    let take = Step::TakeOver(Box::new(TakeOverStep {
        site: desired.name.to_owned(),
        write: None,
        remove: old.clone(),
        lines: Vec::new(),
        reload: Reload::Supervisor,
        join: None,
    }));
    let reason = format!(
        "takes over from {}: {}",
        adopt.from.title(),
        describe(&old, &[])
    );
    let update = changes.iter_mut().rev().find_map(|c| {
        let index = c
            .steps
            .iter()
            .position(|s| matches!(s, Step::SupervisorUpdate { .. }))?;
        Some((c, index))
    });
    match update {
        Some((change, index)) => {
            change.steps.insert(index, take);
            change.reason = format!("{}; {reason}", change.reason);
        }
        None => changes
            .push(Change::new(ResourceKind::Worker, "takeover", Action::Update, reason).step(take)),
    }
}
