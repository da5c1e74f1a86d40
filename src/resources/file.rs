//! Managed files: compare rendered text with what the server holds, and show a diff.

use crate::observe::ObservedFile;
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

    /// The change that brings `observed` to this file.
    pub fn diff(
        &self,
        resource: ResourceKind,
        name: &str,
        observed: Option<&ObservedFile>,
    ) -> Change {
        let Some(observed) = observed else {
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
            return Change::no_op(resource, name);
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

/// The change that removes a managed file the spec no longer wants.
pub fn removal(
    resource: ResourceKind,
    name: &str,
    path: &str,
    observed: &ObservedFile,
    reload: Reload,
) -> Change {
    Change::new(
        resource,
        name,
        Action::Delete,
        format!("{path} is no longer in the spec"),
    )
    .with_diff(Some(unified_diff(
        path,
        observed.content.as_deref().unwrap_or(""),
        "",
    )))
    .step(Step::RemoveFile {
        path: path.to_owned(),
        reload,
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

    fn observed(content: &str) -> ObservedFile {
        ObservedFile {
            sha256: sha256_hex(content.as_bytes()),
            owner: "root".into(),
            group: "root".into(),
            mode: 0o644,
            content: Some(content.into()),
        }
    }

    #[test]
    fn an_identical_file_is_a_no_op() {
        let file = ManagedFile::system("/etc/x".into(), "a\nb\n".into(), Reload::Nothing);
        let change = file.diff(ResourceKind::Cron, "x", Some(&observed("a\nb\n")));
        assert_eq!(change.action, Action::NoOp);
        assert!(change.steps.is_empty());
    }

    #[test]
    fn a_changed_line_shows_in_the_diff() {
        let file = ManagedFile::system("/etc/x".into(), "a\nc\n".into(), Reload::Nothing);
        let change = file.diff(ResourceKind::Cron, "x", Some(&observed("a\nb\n")));
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
        let change = file.diff(ResourceKind::Cron, "x", Some(&observed("a\n")));
        assert_eq!(change.action, Action::Update);
        assert!(change.diff.is_none());
        assert!(change.reason.contains("0600"), "{}", change.reason);
    }
}
