//! Site directories: root, releases, shared, and the storage paths, owned by the site user.

use super::desired::DesiredSite;
use crate::layout;
use crate::observe::{ObservedSite, PathKind};
use crate::plan::{Action, Change, ResourceKind, Step};
use crate::spec::site::DeployStrategy;

/// A directory the site needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredDirectory {
    pub path: String,
    pub mode: u32,
}

/// Every directory of the site, parents first.
pub fn desired_directories(desired: &DesiredSite) -> Vec<DesiredDirectory> {
    let mut out = vec![DesiredDirectory {
        path: desired.root.clone(),
        mode: 0o750,
    }];
    if desired.site.spec.deploy.strategy == DeployStrategy::Releases {
        out.push(DesiredDirectory {
            path: layout::releases_dir(&desired.root),
            mode: 0o755,
        });
        out.push(DesiredDirectory {
            path: desired.shared.clone(),
            mode: 0o755,
        });
    }
    for relative in storage_directories(&desired.storage) {
        out.push(DesiredDirectory {
            path: format!("{}/{relative}", desired.shared),
            mode: 0o775,
        });
    }
    out
}

/// Every storage path and each of its parents, parents first, without repeats
/// (`storage/app/public` gives `storage`, `storage/app`, `storage/app/public`).
pub fn storage_directories(storage: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in storage {
        let mut prefix = String::new();
        for component in path.split('/') {
            prefix = if prefix.is_empty() {
                component.to_owned()
            } else {
                format!("{prefix}/{component}")
            };
            if !out.contains(&prefix) {
                out.push(prefix.clone());
            }
        }
    }
    out
}

/// # Guarantees
/// `EnsureDirectories` creates missing directories and corrects owner and mode; directories
/// already right are not touched.
pub fn diff(desired: &DesiredSite, observed: &ObservedSite) -> Change {
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    let mut directories = Vec::new();
    for directory in desired_directories(desired) {
        let state = observed.paths.get(&directory.path);
        let right = state.is_some_and(|p| {
            p.kind == PathKind::Directory
                && p.owner == desired.user
                && p.group == desired.user
                && p.mode == directory.mode
        });
        if right {
            continue;
        }
        if state.is_none() {
            missing.push(directory.path.clone())
        } else {
            wrong.push(directory.path.clone())
        }
        directories.push((directory.path, directory.mode));
    }
    if directories.is_empty() {
        return Change::no_op(ResourceKind::Directory, &desired.root);
    }
    let action = if observed.paths.contains_key(&desired.root) {
        Action::Update
    } else {
        Action::Create
    };
    let mut reasons = Vec::new();
    if !missing.is_empty() {
        reasons.push(format!("missing: {}", missing.join(", ")));
    }
    if !wrong.is_empty() {
        reasons.push(format!("wrong owner or mode: {}", wrong.join(", ")));
    }
    let change = Change::new(
        ResourceKind::Directory,
        &desired.root,
        action,
        reasons.join("; "),
    );
    change.step(Step::EnsureDirectories {
        owner: desired.user.to_owned(),
        group: desired.user.to_owned(),
        directories,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_directories_list_parents_first_without_repeats() {
        let storage = vec![
            "storage/app/public".to_owned(),
            "storage/logs".to_owned(),
            "uploads".to_owned(),
        ];
        assert_eq!(
            storage_directories(&storage),
            [
                "storage",
                "storage/app",
                "storage/app/public",
                "storage/logs",
                "uploads"
            ]
        );
    }
}
