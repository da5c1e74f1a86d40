//! The backup resource of a site: its settings, secrets, script and cron file on its server.

use super::settings::{self, BackupSettings, SiteLayout};
use crate::layout;
use crate::observe::ObservedSite;
use crate::plan::step::Reload;
use crate::plan::{Action, Change, ResourceKind, Step};
use crate::resources::file::{ManagedFile, removal, sha256_hex};
use crate::spec::secret::ResolvedSecrets;
use crate::spec::{Loaded, Site};
use std::collections::BTreeMap;

/// What a site's backups should look like on its server.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupDesired {
    pub layout: SiteLayout,
    /// `None`: the site has no backups (what a server holds of them is removed).
    pub settings: Option<BackupSettings>,
}

impl BackupDesired {
    /// The settings file's text.
    pub fn config(&self) -> String {
        settings::config_text(&self.layout, self.settings.as_ref())
    }
}

/// Every site's backups as the specs say, by site name. A site whose settings are incomplete
/// (the checks report it) has none.
pub fn desired_all(loaded: &Loaded) -> BTreeMap<String, BackupDesired> {
    desired_for(loaded, loaded.sites.iter().map(|located| &located.item))
}

/// The backups of `sites` only (the daemon's run of one site asks for its own).
pub fn desired_for<'a>(
    loaded: &Loaded,
    sites: impl IntoIterator<Item = &'a Site>,
) -> BTreeMap<String, BackupDesired> {
    sites
        .into_iter()
        .map(|site| {
            let server = crate::migrate::launch::server_spec(loaded, site.spec.server.as_str());
            let desired = BackupDesired {
                layout: SiteLayout::new(site, site.spec.server.as_str(), server),
                settings: settings::effective(site, server).and_then(Result::ok),
            };
            (site.name.to_string(), desired)
        })
        .collect()
}

fn config_path(site: &str) -> String {
    format!("{}/config", layout::backup_dir(site))
}

fn secrets_path(site: &str) -> String {
    format!("{}/secrets", layout::backup_dir(site))
}

/// Where the script is installed for cron.
pub fn script_path(site: &str) -> String {
    format!("{}/siteward-backup", layout::backup_dir(site))
}

fn root_file(path: String, content: String, mode: u32) -> ManagedFile {
    ManagedFile {
        mode,
        ..ManagedFile::system(path, content, Reload::Nothing)
    }
}

/// # Guarantees
/// Each file is written only when it differs (the secrets file is compared by hash: its values
/// never leave the machine running siteward but on stdin), in an order that never lets cron run
/// the script before its settings are in place; a site without backups loses them, cron first.
pub fn diff(
    site: &str,
    desired: Option<&BackupDesired>,
    observed: &ObservedSite,
    secrets: &ResolvedSecrets,
) -> Vec<Change> {
    let wanted = desired.and_then(|d| d.settings.as_ref().map(|s| (d, s)));
    let Some((desired, backup)) = wanted else {
        return removals(site, observed);
    };
    let config = root_file(config_path(site), desired.config(), 0o600);
    let script = root_file(script_path(site), settings::SCRIPT.to_owned(), 0o700);
    let cron = ManagedFile::system(
        layout::backup_cron_path(site),
        settings::cron_text(site, backup),
        Reload::Nothing,
    );
    let mut script_change = script.diff(ResourceKind::Backup, &script.path, observed);
    // The script is siteward's own: its text changes with siteward, not with the spec.
    script_change.diff = None;
    let entries = settings::secret_entries(&desired.layout, Some(backup));
    vec![
        config.diff(ResourceKind::Backup, &config.path, observed),
        secrets_change(site, &entries, observed, secrets),
        script_change,
        cron.diff(ResourceKind::Backup, &cron.path, observed),
    ]
}

fn secrets_change(
    site: &str,
    entries: &[(&'static str, crate::spec::secret::SecretRef)],
    observed: &ObservedSite,
    secrets: &ResolvedSecrets,
) -> Change {
    let path = secrets_path(site);
    let wanted =
        settings::secrets_text(entries, secrets).map(|s| sha256_hex(s.expose().as_bytes()));
    let step = Step::WriteSecrets {
        path: path.clone(),
        entries: entries
            .iter()
            .map(|(name, reference)| ((*name).to_owned(), reference.clone()))
            .collect(),
    };
    let (action, reason) = match observed.files.get(&path) {
        None => (Action::Create, format!("{path} does not exist")),
        Some(file) if file.mode != 0o600 || file.owner != "root" => (
            Action::Update,
            format!(
                "{path} is {}:{} {:04o}, want root:root 0600",
                file.owner, file.group, file.mode
            ),
        ),
        Some(file) if Some(&file.sha256) != wanted.as_ref() => (
            Action::Update,
            format!("{path} holds other secrets than the spec references"),
        ),
        Some(_) => return Change::no_op(ResourceKind::Backup, path),
    };
    Change::new(ResourceKind::Backup, path, action, reason).step(step)
}

/// Everything a server holds of a site's backups, cron file first.
fn removals(site: &str, observed: &ObservedSite) -> Vec<Change> {
    [
        layout::backup_cron_path(site),
        script_path(site),
        config_path(site),
        secrets_path(site),
    ]
    .iter()
    .filter_map(|path| removal(ResourceKind::Backup, path, path, observed, Reload::Nothing))
    .map(|mut change| {
        change.reason = format!("{}: the spec has no backups", change.name);
        if change.name.ends_with("/secrets") {
            change.diff = None;
        }
        change
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::ObservedFile;
    use crate::spec::backup::Keep;
    use crate::spec::secret::{Secret, SecretRef};

    fn desired() -> BackupDesired {
        BackupDesired {
            layout: SiteLayout {
                site: "shop".into(),
                server: "a".into(),
                shared: "/home/shop/shop.test/shared".into(),
                paths: vec!["storage".into(), ".env".into()],
                owner: "shop".into(),
                database: None,
            },
            settings: Some(BackupSettings {
                repository: "s3:http://s3.test/b/shop".into(),
                password: SecretRef {
                    secret: "env:PW".into(),
                },
                credentials: None,
                host_key: None,
                schedule: "0 3 * * *".into(),
                check: "0 4 * * 0".into(),
                keep: Keep::default(),
            }),
        }
    }

    fn resolved(value: &str) -> ResolvedSecrets {
        let mut secrets = ResolvedSecrets::default();
        let reference = SecretRef {
            secret: "env:PW".into(),
        };
        secrets.insert(&reference, Secret::new(value.into()));
        secrets
    }

    fn holding(changes: &[Change]) -> ObservedSite {
        let mut site = ObservedSite::default();
        for change in changes {
            for step in &change.steps {
                let (path, content, mode) = match step {
                    Step::WriteFile {
                        path,
                        content,
                        mode,
                        ..
                    } => (path.clone(), content.clone(), *mode),
                    Step::WriteSecrets { path, .. } => {
                        (path.clone(), "password=c2VjcmV0\n".to_owned(), 0o600)
                    }
                    _ => continue,
                };
                site.files.insert(
                    path,
                    ObservedFile {
                        sha256: sha256_hex(content.as_bytes()),
                        owner: "root".into(),
                        group: "root".into(),
                        mode,
                        content: Some(content),
                    },
                );
            }
        }
        site
    }

    #[test]
    fn a_new_backup_writes_settings_secrets_script_then_cron() {
        let wanted = desired();
        let changes = diff(
            "shop",
            Some(&wanted),
            &ObservedSite::default(),
            &resolved("secret"),
        );
        let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "/etc/siteward/backup/shop/config",
                "/etc/siteward/backup/shop/secrets",
                "/etc/siteward/backup/shop/siteward-backup",
                "/etc/cron.d/siteward-backup_shop"
            ]
        );
        assert!(changes.iter().all(|c| c.action == Action::Create));
        let plan = serde_json::to_string(&changes).unwrap();
        assert!(!plan.contains("hunter2-value"), "no value in the plan");
        assert!(
            !plan.contains("aHVudGVyMi12YWx1ZQ"),
            "no encoded value in the plan"
        );
    }

    #[test]
    fn a_second_plan_is_empty_and_a_changed_secret_rewrites_only_the_secrets() {
        let wanted = desired();
        let first = diff(
            "shop",
            Some(&wanted),
            &ObservedSite::default(),
            &resolved("secret"),
        );
        let observed = holding(&first);
        let again = diff("shop", Some(&wanted), &observed, &resolved("secret"));
        assert!(again.iter().all(|c| c.action == Action::NoOp), "{again:?}");
        let rotated = diff("shop", Some(&wanted), &observed, &resolved("rotated"));
        let pending: Vec<&str> = rotated
            .iter()
            .filter(|c| c.action != Action::NoOp)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(pending, ["/etc/siteward/backup/shop/secrets"]);
    }

    #[test]
    fn a_site_without_backups_loses_them_cron_first() {
        let wanted = desired();
        let first = diff(
            "shop",
            Some(&wanted),
            &ObservedSite::default(),
            &resolved("secret"),
        );
        let observed = holding(&first);
        let gone = diff("shop", None, &observed, &resolved("secret"));
        assert_eq!(gone[0].name, "/etc/cron.d/siteward-backup_shop");
        assert_eq!(gone.len(), 4);
        assert!(gone.iter().all(|c| c.action == Action::Delete));
    }
}
