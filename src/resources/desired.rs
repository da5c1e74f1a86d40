//! The desired state of one site, derived from its spec with the defaults filled in.

use crate::layout;
use crate::spec::names::JobName;
use crate::spec::site::{Cron, DeployStrategy, LaravelDefaults, Site, SiteType, Worker};

/// Everything the resources need to know about a site, defaults applied.
#[derive(Clone, Debug)]
pub struct DesiredSite<'a> {
    pub site: &'a Site,
    pub name: &'a str,
    pub user: &'a str,
    pub domain: &'a str,
    /// `/home/<user>/<domain>`.
    pub root: String,
    /// Where the live code is: `root/current` (releases) or `root` (in-place).
    pub live: String,
    /// Where `.env` and storage live: `root/shared` (releases) or `root` (in-place).
    pub shared: String,
    pub php: Option<&'a str>,
    pub laravel: Option<LaravelDefaults>,
    /// Crons with defaults (the Laravel scheduler) added.
    pub crons: Vec<DesiredCron>,
    /// Workers as the spec says.
    pub workers: Vec<&'a Worker>,
    /// Storage paths, with the Laravel ones added.
    pub storage: Vec<String>,
    /// HTTPS, when the spec's `tls` names one source of certificates.
    pub tls: Option<&'a crate::spec::tls::TlsSpec>,
}

/// A cron job, and whether it came from a default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCron {
    pub name: String,
    pub schedule: String,
    pub command: String,
    pub user: String,
    /// Set when siteward added it (the Laravel scheduler); the plan says so.
    pub default: bool,
}

impl<'a> DesiredSite<'a> {
    /// Derives the desired state of a site.
    pub fn new(site: &'a Site) -> Self {
        let spec = &site.spec;
        let root = layout::site_root(spec.user.as_str(), &spec.domain);
        let (live, shared) = match spec.deploy.strategy {
            DeployStrategy::Releases => (layout::current_link(&root), layout::shared_dir(&root)),
            DeployStrategy::InPlace => (root.clone(), root.clone()),
        };
        let laravel = match spec.site_type {
            SiteType::Laravel => Some(spec.laravel.clone().unwrap_or_default()),
            _ => None,
        };
        let mut desired = DesiredSite {
            site,
            name: site.name.as_str(),
            user: spec.user.as_str(),
            domain: &spec.domain,
            root,
            live,
            shared,
            php: spec.php.as_deref(),
            laravel,
            crons: Vec::new(),
            workers: spec.workers.iter().collect(),
            storage: Vec::new(),
            tls: spec.tls.as_ref().filter(|tls| tls.source().is_some()),
        };
        desired.crons = desired.build_crons(&spec.crons);
        desired.storage = desired.build_storage(&spec.storage);
        desired
    }

    /// The PHP binary of the site's version (`/usr/bin/php8.2`).
    pub fn php_binary(&self) -> Option<String> {
        self.php.map(|v| format!("/usr/bin/php{v}"))
    }

    /// A command with a leading `php ` replaced by the site's PHP binary.
    pub fn with_php_binary(&self, command: &str) -> String {
        match (command.strip_prefix("php "), self.php_binary()) {
            (Some(rest), Some(binary)) => format!("{binary} {rest}"),
            _ => command.to_owned(),
        }
    }

    fn build_crons(&self, crons: &[Cron]) -> Vec<DesiredCron> {
        let mut out: Vec<DesiredCron> = crons
            .iter()
            .map(|cron| DesiredCron {
                name: cron.name.to_string(),
                schedule: cron.schedule.clone(),
                command: cron.command.clone(),
                user: cron
                    .user
                    .as_ref()
                    .map_or(self.user, |u| u.as_str())
                    .to_owned(),
                default: false,
            })
            .collect();
        let wants_scheduler = self.laravel.as_ref().is_some_and(|l| l.scheduler);
        let has_scheduler = out.iter().any(|c| c.command.contains("schedule:run"));
        if wants_scheduler && !has_scheduler {
            out.push(DesiredCron {
                name: JobName::new("scheduler")
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                schedule: "* * * * *".into(),
                command: "php artisan schedule:run".into(),
                user: self.user.to_owned(),
                default: true,
            });
        }
        out
    }

    fn build_storage(&self, storage: &[String]) -> Vec<String> {
        let mut out: Vec<String> = storage.to_vec();
        if self.laravel.as_ref().is_some_and(|l| l.writable_paths) {
            for path in LARAVEL_STORAGE {
                if !out.iter().any(|p| p == path) {
                    out.push((*path).to_owned());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The worker's supervisor program name.
    pub fn program(&self, worker: &str) -> String {
        layout::program_name(self.name, worker)
    }
}

/// The directories a Laravel application writes to; shared between releases.
pub const LARAVEL_STORAGE: &[&str] = &[
    "storage/app/public",
    "storage/framework/cache/data",
    "storage/framework/sessions",
    "storage/framework/views",
    "storage/logs",
];
