//! The `adopt` section: what a site's first apply takes over from whoever set the site up.
//!
//! `siteward discover` writes it. Each listed file or crontab line is replaced by siteward's own
//! in the same step that installs it (the old one kept under the site's record on the server),
//! so nginx never serves a name from two files and a cron job never runs twice. Once taken
//! over, the section describes nothing that exists and plans nothing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What siteward takes over from the site's previous setup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Adopt {
    /// Who set the site up (the plan warns while a panel may still rewrite its files).
    pub from: AdoptedFrom,
    /// nginx files that served the site: removed when siteward's vhost goes in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vhosts: Vec<String>,
    /// PHP-FPM pool files only this site used: removed once the vhost uses siteward's pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
    /// Supervisor program files of the site's workers: removed when siteward's programs go in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<String>,
    /// Cron entries of the site: removed when siteward's cron file goes in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crons: Vec<AdoptedCron>,
}

/// Who set a site up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AdoptedFrom {
    Forge,
    Vito,
    Ploi,
    Deployer,
    #[default]
    Manual,
}

impl AdoptedFrom {
    /// The name people know it by.
    pub fn title(self) -> &'static str {
        match self {
            AdoptedFrom::Forge => "Laravel Forge",
            AdoptedFrom::Vito => "VitoDeploy",
            AdoptedFrom::Ploi => "Ploi",
            AdoptedFrom::Deployer => "Deployer",
            AdoptedFrom::Manual => "a hand-made setup",
        }
    }

    /// Whether it is a panel that keeps rewriting the server's files while attached.
    pub fn is_panel(self) -> bool {
        matches!(
            self,
            AdoptedFrom::Forge | AdoptedFrom::Vito | AdoptedFrom::Ploi
        )
    }
}

/// A cron entry to take over: a whole file (`/etc/cron.d/NAME`), or one line of a file that
/// holds other entries too (`/etc/crontab`, `/var/spool/cron/crontabs/USER`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdoptedCron {
    /// The file.
    pub file: String,
    /// The line, exactly as written; absent: the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
}

/// Why a path cannot be taken over: it is not where that kind of file lives.
pub fn path_problem(kind: AdoptKind, path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains("/../") || path.ends_with("/..") {
        return Some(format!("`{path}` must be an absolute path without `..`"));
    }
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Some(format!("`{path}` holds blanks or control characters"));
    }
    let fits = match kind {
        AdoptKind::Vhost => path.starts_with("/etc/nginx/"),
        AdoptKind::Pool => path.starts_with("/etc/php/") && path.contains("/fpm/pool.d/"),
        AdoptKind::Program => path.starts_with("/etc/supervisor/conf.d/"),
        AdoptKind::Cron => {
            path == "/etc/crontab"
                || path.starts_with("/etc/cron.d/")
                || path.starts_with("/var/spool/cron/crontabs/")
        }
    };
    (!fits).then(|| format!("`{path}` is not {}", kind.place()))
}

/// The kinds of files `adopt` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdoptKind {
    Vhost,
    Pool,
    Program,
    Cron,
}

impl AdoptKind {
    fn place(self) -> &'static str {
        match self {
            AdoptKind::Vhost => "under /etc/nginx/",
            AdoptKind::Pool => "a pool file under /etc/php/<version>/fpm/pool.d/",
            AdoptKind::Program => "under /etc/supervisor/conf.d/",
            AdoptKind::Cron => "/etc/crontab, in /etc/cron.d/ or in /var/spool/cron/crontabs/",
        }
    }
}

impl Adopt {
    /// Every listed path with its kind.
    pub fn paths(&self) -> impl Iterator<Item = (AdoptKind, &str)> {
        let vhosts = self.vhosts.iter().map(|p| (AdoptKind::Vhost, p.as_str()));
        let pools = self.pools.iter().map(|p| (AdoptKind::Pool, p.as_str()));
        let programs = self
            .programs
            .iter()
            .map(|p| (AdoptKind::Program, p.as_str()));
        let crons = self
            .crons
            .iter()
            .map(|c| (AdoptKind::Cron, c.file.as_str()));
        vhosts.chain(pools).chain(programs).chain(crons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_their_kinds_place_are_refused() {
        assert_eq!(
            path_problem(AdoptKind::Vhost, "/etc/nginx/sites-enabled/a.test"),
            None
        );
        assert!(path_problem(AdoptKind::Vhost, "/etc/passwd").is_some());
        assert!(path_problem(AdoptKind::Vhost, "/etc/nginx/../passwd").is_some());
        assert!(path_problem(AdoptKind::Pool, "/etc/php/8.2/fpm/pool.d/www.conf").is_none());
        assert!(path_problem(AdoptKind::Pool, "/etc/php/8.2/cli/php.ini").is_some());
        assert!(path_problem(AdoptKind::Cron, "/etc/crontab").is_none());
        assert!(path_problem(AdoptKind::Cron, "/var/spool/cron/crontabs/vito").is_none());
        assert!(path_problem(AdoptKind::Cron, "/etc/cron.daily/x").is_some());
        assert!(path_problem(AdoptKind::Program, "relative.conf").is_some());
        assert!(path_problem(AdoptKind::Program, "/etc/supervisor/conf.d/a b.conf").is_some());
    }
}
