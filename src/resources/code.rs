//! The site's code: which revision is live, and the deploy that changes it.

use super::desired::DesiredSite;
use crate::observe::{ObservedRelease, ObservedSite};
use crate::plan::step::{DeployStep, HealthCheck, RollbackStep};
use crate::plan::{Action, Change, ResourceKind, Step};

/// The revision the spec wants: the branch tip the server resolved, or the pin.
pub fn wanted_revision(desired: &DesiredSite, observed: &ObservedSite) -> Option<String> {
    let source = desired.site.spec.source.as_ref()?;
    match (&source.revision, &source.branch) {
        (Some(pin), _) => Some(observed.source_tip.clone().unwrap_or_else(|| pin.clone())),
        (None, Some(_)) => observed.source_tip.clone(),
        (None, None) => None,
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// The plan shows `old → new`. The probe's one cheap look at the repository (`git
/// ls-remote`) lists commit ids only, so the new commit's subject line is added after the
/// plan is built, with one shallow fetch per planned deploy (`commands::reconcile`); the
/// deploy prints it again after checkout, into the step's output.
///
/// # Guarantees
/// A deploy is planned only when no release is live or the live commit is not the wanted
/// one: with no new commit and no spec change, apply deploys nothing.
pub fn diff(desired: &DesiredSite, observed: &ObservedSite) -> Option<Change> {
    let source = desired.site.spec.source.as_ref()?;
    let name = source
        .branch
        .clone()
        .or_else(|| source.revision.clone())
        .unwrap_or_default();
    let Some(revision) = wanted_revision(desired, observed) else {
        let reason = format!(
            "the tip of `{name}` in {} could not be resolved on the server",
            source.repository
        );
        return Some(Change::new(
            ResourceKind::Code,
            name,
            Action::Update,
            reason,
        ));
    };
    let live = observed.git.as_ref().map(|g| g.commit.as_str());
    let action = match live {
        Some(commit)
            if commit.starts_with(&revision)
                || revision.starts_with(commit) && commit.len() >= 7 =>
        {
            return Some(Change::no_op(ResourceKind::Code, name));
        }
        Some(_) => Action::Update,
        None => Action::Create,
    };
    let reason = match live {
        Some(commit) => format!("{} → {}", short(commit), short(&revision)),
        None => format!("first deploy of {}", short(&revision)),
    };
    let step = deploy_step(desired, revision);
    if let Some(bad) = known_bad(observed, &step) {
        let reason = format!(
            "the tip {} is release {bad}, marked bad by a failed health check: not deploying \
             it again (push a fix or change the spec; `siteward rollback` goes back further)",
            short(&step.revision)
        );
        return Some(Change::new(
            ResourceKind::Code,
            name,
            Action::Update,
            reason,
        ));
    }
    Some(Change::new(ResourceKind::Code, name, action, reason).step(Step::Deploy(Box::new(step))))
}

/// The release that already failed with this revision and these deploy settings.
fn known_bad<'a>(observed: &'a ObservedSite, step: &DeployStep) -> Option<&'a str> {
    let fingerprint = step.fingerprint();
    observed
        .releases
        .iter()
        .filter(|r| r.bad && r.bad_fingerprint.as_deref() == Some(fingerprint.as_str()))
        .find(|r| r.commit.as_deref() == Some(step.revision.as_str()))
        .map(|r| r.id.as_str())
}

/// The deploy of a revision.
pub fn deploy_step(desired: &DesiredSite, revision: String) -> DeployStep {
    let spec = &desired.site.spec;
    let source = spec.source.as_ref();
    let mut shared = vec![".env".to_owned()];
    shared.extend(top_level_storage(&desired.storage));
    DeployStep {
        site: desired.name.to_owned(),
        user: desired.user.to_owned(),
        root: desired.root.clone(),
        repository: source.map(|s| s.repository.clone()).unwrap_or_default(),
        branch: source.and_then(|s| s.branch.clone()),
        revision,
        strategy: spec.deploy.strategy,
        keep_releases: spec.deploy.keep_releases,
        script: spec.deploy.script.clone(),
        php_binary: desired.php_binary(),
        domain: desired.domain.to_owned(),
        shared,
        storage_link: desired.laravel.as_ref().is_some_and(|l| l.storage_link),
        restart: restart_commands(desired),
        programs: restarted_programs(desired),
        health: spec.health.as_ref().map(|h| HealthCheck {
            path: h.path.clone(),
            expect_status: h.expect_status,
            expect_body: h.expect_body.clone(),
            timeout_seconds: h.timeout_seconds,
            https: desired.tls.is_some(),
        }),
    }
}

/// Whether a restart command already restarts this worker (Laravel-managed).
fn laravel_managed(desired: &DesiredSite, command: &str) -> bool {
    let restarts = restart_commands(desired);
    let told = |what: &str| restarts.iter().any(|r| r.contains(what));
    (command.contains("horizon") && told("horizon:terminate"))
        || ((command.contains("queue:work") || command.contains("queue:listen"))
            && told("queue:restart"))
}

/// This site's supervisor programs that no restart command restarts: supervisor restarts
/// them after the switch (`siteward-<site>-<worker>`, never another site's).
pub fn restarted_programs(desired: &DesiredSite) -> Vec<String> {
    desired
        .workers
        .iter()
        .filter(|w| !laravel_managed(desired, &w.command))
        .map(|w| desired.program(w.name.as_str()))
        .collect()
}

/// After a switch, Laravel workers are told to restart (supervisor starts them again in the
/// new release): `horizon:terminate` for Horizon, `queue:restart` for `queue:work`.
pub fn restart_commands(desired: &DesiredSite) -> Vec<String> {
    let Some(laravel) = &desired.laravel else {
        return Vec::new();
    };
    if !laravel.restart_workers {
        return Vec::new();
    }
    let mut out = Vec::new();
    let commands = desired.workers.iter().map(|w| w.command.as_str());
    if commands.clone().any(|c| c.contains("horizon")) {
        out.push("php artisan horizon:terminate".to_owned());
    }
    if commands
        .clone()
        .any(|c| c.contains("queue:work") || c.contains("queue:listen"))
    {
        out.push("php artisan queue:restart".to_owned());
    }
    out
}

/// The storage paths linked into releases: the shortest distinct prefixes, so that
/// `storage/app/public` and `storage/logs` link one `storage`.
fn top_level_storage(storage: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in storage {
        let top = match path.split_once('/') {
            Some((first, _)) if first == "storage" => first.to_owned(),
            _ => path.clone(),
        };
        if !out.contains(&top) {
            out.push(top);
        }
    }
    out
}

/// Why a site cannot be rolled back.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RollbackError {
    #[error("site `{0}` has no live release (`current` points nowhere)")]
    NoLiveRelease(String),
    #[error("site `{site}` has no good release older than the live one ({live})")]
    NothingOlder { site: String, live: String },
}

/// The change that switches `current` to the newest good release older than the live one.
pub fn rollback_change(
    desired: &DesiredSite,
    observed: &ObservedSite,
) -> Result<Change, RollbackError> {
    let site = desired.name.to_owned();
    let live = observed
        .current_release
        .clone()
        .ok_or_else(|| RollbackError::NoLiveRelease(site.clone()))?;
    let target =
        previous_good(&observed.releases, &live).ok_or_else(|| RollbackError::NothingOlder {
            site: site.clone(),
            live: live.clone(),
        })?;
    let commit = |id: &str| {
        let release = observed.releases.iter().find(|r| r.id == id);
        short(release.and_then(|r| r.commit.as_deref()).unwrap_or("?")).to_owned()
    };
    let reason = format!(
        "release {live} ({}) → release {} ({})",
        commit(&live),
        target.id,
        commit(&target.id)
    );
    let step = RollbackStep {
        site,
        user: desired.user.to_owned(),
        root: desired.root.clone(),
        from: live,
        to: target.id.clone(),
        php_binary: desired.php_binary(),
        restart: restart_commands(desired),
        programs: restarted_programs(desired),
    };
    Ok(
        Change::new(ResourceKind::Code, "current", Action::Update, reason)
            .step(Step::Rollback(Box::new(step))),
    )
}

/// The newest release older than `live` that is finished (its commit recorded, which a deploy
/// does last before switching) and not marked bad (ids sort by time). A release a killed
/// deploy left half built has no commit and is never a target.
fn previous_good<'a>(releases: &'a [ObservedRelease], live: &str) -> Option<&'a ObservedRelease> {
    releases
        .iter()
        .filter(|r| r.id.as_str() < live && !r.bad && r.commit.is_some())
        .max_by(|a, b| a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(id: &str, bad: bool) -> ObservedRelease {
        ObservedRelease {
            id: id.into(),
            commit: Some("c0ffee".into()),
            bad,
            bad_fingerprint: None,
        }
    }

    #[test]
    fn rollback_skips_bad_releases_and_newer_ones() {
        let releases = [
            release("20260101000001", false),
            release("20260101000002", true),
            release("20260101000003", false),
            release("20260101000004", false),
        ];
        let found = previous_good(&releases, "20260101000003").map(|r| r.id.as_str());
        assert_eq!(found, Some("20260101000001"));
    }

    #[test]
    fn rollback_skips_a_release_left_unfinished() {
        let unfinished = ObservedRelease {
            commit: None,
            ..release("20260101000002", false)
        };
        let releases = [
            release("20260101000001", false),
            unfinished,
            release("20260101000003", false),
        ];
        let found = previous_good(&releases, "20260101000003").map(|r| r.id.as_str());
        assert_eq!(found, Some("20260101000001"));
    }

    #[test]
    fn rollback_finds_nothing_before_the_first_release() {
        let releases = [release("20260101000001", false)];
        assert_eq!(previous_good(&releases, "20260101000001"), None);
    }
}
