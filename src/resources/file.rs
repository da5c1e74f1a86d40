//! Managed files: compare rendered text with what the server holds, and show a diff.

use crate::observe::ObservedSite;
use crate::plan::step::Reload;
use crate::plan::{Action, Change, ResourceKind, Step};
use sha2::{Digest, Sha256};

/// A file siteward renders and owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedFile {
    pub path: String,
    pub content: String,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    pub reload: Reload,
}

/// The hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ManagedFile {
    /// A root-owned 0644 file.
    pub fn system(path: String, content: String, reload: Reload) -> Self {
        ManagedFile {
            path,
            content,
            owner: "root".into(),
            group: "root".into(),
            mode: 0o644,
            reload,
        }
    }

    /// The change that brings the server's copy of this file (in `site`) to this file. A file
    /// that is right but that its service has not loaded yet (an apply was cut off between
    /// writing and reloading) is written again, which reloads.
    pub fn diff(&self, resource: ResourceKind, name: &str, site: &ObservedSite) -> Change {
        let Some(observed) = site.files.get(&self.path) else {
            return Change::new(
                resource,
                name,
                Action::Create,
                format!("{} does not exist", self.path),
            )
            .with_diff(Some(unified_diff(&self.path, "", &self.content)))
            .step(self.write_step());
        };
        let content_differs = observed.sha256 != sha256_hex(self.content.as_bytes());
        let attributes_differ = observed.owner != self.owner
            || observed.group != self.group
            || observed.mode != self.mode;
        if !content_differs && !attributes_differ {
            return match self.reload.service() {
                Some(service) if site.unloaded.contains(&self.path) => Change::new(
                    resource,
                    name,
                    Action::Update,
                    format!(
                        "{} is written but {service} has not loaded it (an apply stopped before the reload)",
                        self.path
                    ),
                )
                .step(self.write_step()),
                _ => Change::no_op(resource, name),
            };
        }
        let reason = if content_differs {
            format!("{} differs from the spec", self.path)
        } else {
            format!(
                "{} is {}:{} {:04o}, want {}:{} {:04o}",
                self.path,
                observed.owner,
                observed.group,
                observed.mode,
                self.owner,
                self.group,
                self.mode
            )
        };
        let diff = content_differs.then(|| {
            unified_diff(
                &self.path,
                observed.content.as_deref().unwrap_or(""),
                &self.content,
            )
        });
        Change::new(resource, name, Action::Update, reason)
            .with_diff(diff)
            .step(self.write_step())
    }

    /// The step that writes this file.
    pub fn write_step(&self) -> Step {
        Step::WriteFile {
            path: self.path.clone(),
            content: self.content.clone(),
            owner: self.owner.clone(),
            group: self.group.clone(),
            mode: self.mode,
            reload: self.reload.clone(),
        }
    }
}

/// The change that removes a managed file the spec no longer wants, or `None` when it is gone
/// and its service has loaded that. A file removed whose service was not reloaded afterwards
/// (an apply was cut off) is removed again, which reloads.
pub fn removal(
    resource: ResourceKind,
    name: &str,
    path: &str,
    site: &ObservedSite,
    reload: Reload,
) -> Option<Change> {
    let step = Step::RemoveFile {
        path: path.to_owned(),
        reload: reload.clone(),
    };
    if let Some(observed) = site.files.get(path) {
        let old = observed.content.as_deref().unwrap_or("");
        return Some(
            Change::new(
                resource,
                name,
                Action::Delete,
                format!("{path} is no longer in the spec"),
            )
            .with_diff(Some(unified_diff(path, old, "")))
            .step(step),
        );
    }
    let service = reload.service()?;
    site.unloaded.contains(path).then(|| {
        Change::new(
            resource,
            name,
            Action::Delete,
            format!("{path} is removed but {service} has not reloaded since (an apply stopped before the reload)"),
        )
        .step(step)
    })
}

/// A unified diff between two texts, labelled with the path.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} (server)"), &format!("{path} (spec)"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::ObservedFile;

    /// A site whose server holds `/etc/x` with `content`.
    fn holding(content: &str) -> ObservedSite {
        let mut site = ObservedSite::default();
        site.files.insert(
            "/etc/x".into(),
            ObservedFile {
                sha256: sha256_hex(content.as_bytes()),
                owner: "root".into(),
                group: "root".into(),
                mode: 0o644,
                content: Some(content.into()),
            },
        );
        site
    }

    fn unloaded(mut site: ObservedSite) -> ObservedSite {
        site.unloaded.insert("/etc/x".into());
        site
    }

    #[test]
    fn an_identical_file_is_a_no_op() {
        let file = ManagedFile::system("/etc/x".into(), "a\nb\n".into(), Reload::Nothing);
        let change = file.diff(ResourceKind::Cron, "x", &holding("a\nb\n"));
        assert_eq!(change.action, Action::NoOp);
        assert!(change.steps.is_empty());
    }

    #[test]
    fn a_changed_line_shows_in_the_diff() {
        let file = ManagedFile::system("/etc/x".into(), "a\nc\n".into(), Reload::Nothing);
        let change = file.diff(ResourceKind::Cron, "x", &holding("a\nb\n"));
        assert_eq!(change.action, Action::Update);
        let diff = change.diff.unwrap();
        assert!(diff.contains("-b\n") && diff.contains("+c\n"), "{diff}");
    }

    #[test]
    fn a_wrong_mode_is_an_update_without_a_text_diff() {
        let file = ManagedFile {
            mode: 0o600,
            ..ManagedFile::system("/etc/x".into(), "a\n".into(), Reload::Nothing)
        };
        let change = file.diff(ResourceKind::Cron, "x", &holding("a\n"));
        assert_eq!(change.action, Action::Update);
        assert!(change.diff.is_none());
        assert!(change.reason.contains("0600"), "{}", change.reason);
    }

    #[test]
    fn an_identical_file_its_service_has_not_loaded_is_written_again() {
        let file = ManagedFile::system("/etc/x".into(), "a\n".into(), Reload::Nginx);
        let change = file.diff(ResourceKind::Vhost, "x", &unloaded(holding("a\n")));
        assert_eq!(change.action, Action::Update);
        assert_eq!(
            change.reason,
            "/etc/x is written but nginx has not loaded it (an apply stopped before the reload)"
        );
        assert_eq!(change.steps, vec![file.write_step()]);
        assert!(change.diff.is_none());
    }

    #[test]
    fn a_marker_on_a_file_no_service_reads_changes_nothing() {
        let file = ManagedFile::system("/etc/x".into(), "a\n".into(), Reload::Nothing);
        let change = file.diff(ResourceKind::Cron, "x", &unloaded(holding("a\n")));
        assert_eq!(change.action, Action::NoOp);
    }

    #[test]
    fn a_removed_file_is_removed_again_only_while_its_service_has_not_reloaded() {
        let fpm = Reload::PhpFpm {
            version: "8.2".into(),
        };
        let gone = ObservedSite::default();
        let removal_of =
            |site: &ObservedSite| removal(ResourceKind::FpmPool, "x", "/etc/x", site, fpm.clone());
        assert_eq!(removal_of(&gone), None, "gone and reloaded: nothing to do");
        let change = removal_of(&unloaded(gone)).expect("a reload is owed");
        assert_eq!(change.action, Action::Delete);
        assert!(
            change.reason.contains("php-fpm8.2 has not reloaded"),
            "{}",
            change.reason
        );
        let present = removal_of(&holding("a\n")).expect("the file is there");
        assert_eq!(present.reason, "/etc/x is no longer in the spec");
    }
}
