//! The site's code: which revision is live, and the deploy that changes it.

use super::desired::DesiredSite;
use crate::observe::ObservedSite;
use crate::plan::step::DeployStep;
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
    let step = Step::Deploy(Box::new(deploy_step(desired, revision)));
    Some(Change::new(ResourceKind::Code, name, action, reason).step(step))
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
    }
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
