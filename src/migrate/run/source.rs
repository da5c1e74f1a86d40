//! Where the site lives on the source (its record's root, the shared and live directories),
//! who runs its crons, and which storage paths are copied.

use super::Run;
use crate::layout;
use crate::spec::site::{DeployStrategy, SiteType};
use crate::transport::Transport;

impl<'j, 'a, T: Transport> Run<'j, 'a, T> {
    pub(super) fn source_root(&self) -> String {
        self.job
            .source_site
            .record
            .as_ref()
            .and_then(|r| r.facts.get("root"))
            .cloned()
            .unwrap_or_else(|| self.desired.root.clone())
    }

    pub(super) fn source_shared(&self) -> String {
        match self.job.site.spec.deploy.strategy {
            DeployStrategy::Releases => layout::shared_dir(&self.source_root()),
            DeployStrategy::InPlace => self.source_root(),
        }
    }

    pub(super) fn source_live(&self) -> String {
        match self.job.site.spec.deploy.strategy {
            DeployStrategy::Releases => layout::current_link(&self.source_root()),
            DeployStrategy::InPlace => self.source_root(),
        }
    }

    /// The users the site's cron jobs run as (their processes are waited for when paused).
    pub(super) fn cron_users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.desired.crons.iter().map(|c| c.user.clone()).collect();
        users.sort();
        users.dedup();
        users
    }

    pub(super) fn is_laravel(&self) -> bool {
        self.job.site.spec.site_type == SiteType::Laravel
    }
}

/// The storage paths without those inside another (one copy per tree).
pub fn outermost_paths(paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = paths
        .iter()
        .filter(|path| {
            !paths
                .iter()
                .any(|other| other != *path && path.starts_with(&format!("{other}/")))
        })
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_storage_paths_are_copied_once_with_their_parent() {
        let paths = vec![
            "storage".to_owned(),
            "storage/app/public".to_owned(),
            "uploads".to_owned(),
            "storage-old".to_owned(),
        ];
        assert_eq!(
            outermost_paths(&paths),
            vec!["storage", "storage-old", "uploads"]
        );
    }
}
