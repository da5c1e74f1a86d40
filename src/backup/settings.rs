//! A site's effective backup settings (its own `backup` over its Server's default), and the
//! settings and secrets files the server-side script reads. Pure.

use super::repository::Store;
use crate::layout;
use crate::resources::DesiredSite;
use crate::spec::Site;
use crate::spec::backup::{BackupCredentials, BackupSpec, Keep};
use crate::spec::secret::{ResolvedSecrets, Secret, SecretRef};
use crate::spec::server::ServerSpec;
use crate::spec::site::DatabaseEngine;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::fmt::Write as _;

/// The script the server runs (and siteward sends for its own runs).
pub const SCRIPT: &str = include_str!("scripts/siteward-backup.sh");

/// The line that ends the settings and secrets on a script's stdin; data follows it.
pub const END_OF_SETTINGS: &str = "--end--";

/// A site's backups as they are in force.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupSettings {
    pub repository: String,
    pub password: SecretRef,
    pub credentials: Option<BackupCredentials>,
    /// The pinned host key of an `sftp:` repository's server.
    pub host_key: Option<String>,
    pub schedule: String,
    pub check: String,
    pub keep: Keep,
}

impl BackupSettings {
    /// Every secret these settings need.
    pub fn secret_references(&self) -> Vec<&SecretRef> {
        let mut out = vec![&self.password];
        if let Some(credentials) = &self.credentials {
            out.extend(credentials.fields().into_iter().map(|(_, r)| r));
        }
        out
    }

    /// What of these settings the repository's store cannot use, each with its field and fix.
    pub fn store_problems(&self) -> Vec<StoreProblem> {
        let store = match Store::of(&self.repository) {
            Ok(store) => store,
            Err(why) => {
                return vec![StoreProblem::new(
                    "repository",
                    format!("the repository `{}` cannot be used: {why}", self.repository),
                    "write `s3:https://host/bucket/path`, `sftp:user@host:/path` or `sftp://user@host:port//path`",
                )];
            }
        };
        let credentials = self.credentials.clone().unwrap_or_default();
        let mut out = Vec::new();
        match store {
            Store::S3 => {
                if credentials.ssh_key.is_some() {
                    out.push(StoreProblem::new(
                        "credentials",
                        "`credentials.sshKey` is for `sftp:` repositories, and this one is on S3"
                            .into(),
                        "remove `sshKey`, or point `repository` at `sftp:user@host:/path`",
                    ));
                }
                if self.host_key.is_some() {
                    out.push(StoreProblem::new(
                        "hostKey",
                        "`hostKey` is for `sftp:` repositories, and this one is on S3".into(),
                        "remove `hostKey`",
                    ));
                }
                if credentials.access_key_id.is_some() != credentials.secret_access_key.is_some() {
                    out.push(StoreProblem::new(
                        "credentials",
                        "S3 credentials need both `accessKeyId` and `secretAccessKey`".into(),
                        "add the missing one as `{secret: env:NAME}`",
                    ));
                }
            }
            Store::Sftp(target) => {
                if credentials.access_key_id.is_some() || credentials.secret_access_key.is_some() {
                    out.push(StoreProblem::new(
                        "credentials",
                        "`accessKeyId` and `secretAccessKey` are for S3, and this repository is on SFTP".into(),
                        "give `credentials: {sshKey: {secret: file:/path/to/key}}` instead",
                    ));
                }
                if credentials.ssh_key.is_none() {
                    out.push(StoreProblem::new(
                        "credentials",
                        format!(
                            "the SFTP repository needs the SSH key the server logs in to {} with",
                            target.login()
                        ),
                        "add `credentials: {sshKey: {secret: file:/path/to/private_key}}`",
                    ));
                }
                if self.host_key.is_none() {
                    out.push(StoreProblem::new(
                        "hostKey",
                        format!("the SFTP repository needs the host key of {} (host keys are checked, never trusted on first use)", target.host),
                        "add `hostKey: ssh-ed25519 AAAA…` as in the store's /etc/ssh/ssh_host_ed25519_key.pub (`ssh-keyscan` shows it; compare it out of band)",
                    ));
                }
            }
        }
        out
    }
}

/// A setting the repository's store cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreProblem {
    /// The field of the `backup` section.
    pub field: &'static str,
    pub message: String,
    pub hint: &'static str,
}

impl StoreProblem {
    fn new(field: &'static str, message: String, hint: &'static str) -> Self {
        StoreProblem {
            field,
            message,
            hint,
        }
    }
}

/// What is missing from a site's backup settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    Repository,
    Password,
}

/// The site's backup settings: `None` when it has none (or `enabled: false`); the fields the
/// site and its server together leave out otherwise.
pub fn effective(
    site: &Site,
    server: Option<&ServerSpec>,
) -> Option<Result<BackupSettings, Vec<Missing>>> {
    let own = site.spec.backup.as_ref();
    let default = server.and_then(|s| s.backup.as_ref());
    if own.and_then(|b| b.enabled) == Some(false) || (own.is_none() && default.is_none()) {
        return None;
    }
    if own.is_none() && default.and_then(|b| b.enabled) == Some(false) {
        return None;
    }
    let repository = own.and_then(|b| b.repository.clone()).or_else(|| {
        default
            .and_then(|b| b.repository.as_ref())
            .map(|base| format!("{}/{}", base.trim_end_matches('/'), site.name))
    });
    let password = pick(own, default, |b| b.password.as_ref());
    let mut missing = Vec::new();
    if repository.is_none() {
        missing.push(Missing::Repository);
    }
    if password.is_none() {
        missing.push(Missing::Password);
    }
    let (Some(repository), Some(password)) = (repository, password) else {
        return Some(Err(missing));
    };
    let name = site.name.as_str();
    Some(Ok(BackupSettings {
        repository,
        password: password.clone(),
        credentials: pick(own, default, |b| b.credentials.as_ref()).cloned(),
        host_key: pick(own, default, |b| b.host_key.as_ref()).cloned(),
        schedule: pick(own, default, |b| b.schedule.as_ref())
            .cloned()
            .unwrap_or_else(|| default_schedule(name)),
        check: pick(own, default, |b| b.check.as_ref())
            .cloned()
            .unwrap_or_else(|| default_check(name)),
        keep: own
            .and_then(|b| b.keep)
            .or(default.and_then(|b| b.keep))
            .unwrap_or_default(),
    }))
}

/// The site's field, else the server's.
fn pick<'a, T>(
    own: Option<&'a BackupSpec>,
    default: Option<&'a BackupSpec>,
    field: impl Fn(&'a BackupSpec) -> Option<&'a T>,
) -> Option<&'a T> {
    own.and_then(&field).or_else(|| default.and_then(&field))
}

/// A minute of the site's own (from its name), so that sites on a server do not all start at
/// once.
fn spread_minute(site: &str) -> u32 {
    site.bytes().fold(2166136261u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(16777619)
    }) % 60
}

/// Daily, at a minute after 02:00 that depends on the site's name.
pub fn default_schedule(site: &str) -> String {
    format!("{} 2 * * *", spread_minute(site))
}

/// Weekly, on Sunday at a minute after 04:00 that depends on the site's name.
pub fn default_check(site: &str) -> String {
    format!("{} 4 * * 0", spread_minute(site))
}

/// How old the last good backup may get before it counts as stale: twice the longest gap
/// between two runs of the schedule, plus an hour (for the run itself).
pub fn stale_after_seconds(schedule: &str) -> u64 {
    let gap = longest_gap(schedule).unwrap_or(86_400);
    gap * 2 + 3600
}

fn longest_gap(schedule: &str) -> Option<u64> {
    use chrono::TimeZone as _;
    let expanded = match schedule.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    let cron: croner::Cron = expanded.parse().ok()?;
    let start = chrono::Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single()?;
    let times: Vec<i64> = cron
        .iter_after(start)
        .take(40)
        .map(|t| t.timestamp())
        .collect();
    times
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).max(0) as u64)
        .max()
}

/// What the script needs to know of the site, besides the backup settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteLayout {
    pub site: String,
    pub server: String,
    /// `shared/` (releases) or the root (in-place): where `.env` and the storage are.
    pub shared: String,
    /// Paths under `shared` that a backup holds: the outermost storage paths and `.env`.
    pub paths: Vec<String>,
    pub owner: String,
    pub database: Option<DatabaseLayout>,
}

/// The site's database, and how the server's administrator logs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseLayout {
    pub engine: &'static str,
    pub name: String,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub admin_user: String,
    /// The administrator's password, when the server's spec gives one (socket auth otherwise).
    pub admin_password: Option<SecretRef>,
    /// The role that owns the restored objects (PostgreSQL): the site's first user.
    pub owner: Option<String>,
}

impl SiteLayout {
    /// The layout of `site` on a server with `server`'s spec.
    pub fn new(site: &Site, server_name: &str, server: Option<&ServerSpec>) -> Self {
        let desired = DesiredSite::new(site);
        let mut paths = crate::migrate::run::outermost_paths(&desired.storage);
        paths.push(".env".to_owned());
        let database = site.spec.database.as_ref().map(|db| {
            let (engine, admin) = match db.engine {
                DatabaseEngine::Mysql | DatabaseEngine::Mariadb => {
                    ("mysql", server.and_then(|s| s.mysql.as_ref()))
                }
                DatabaseEngine::Postgres => ("postgres", server.and_then(|s| s.postgres.as_ref())),
            };
            DatabaseLayout {
                engine,
                name: db.name.to_string(),
                charset: db.charset.clone(),
                collation: db.collation.clone(),
                admin_user: admin.map_or_else(
                    || {
                        if engine == "mysql" {
                            "root"
                        } else {
                            "postgres"
                        }
                        .to_owned()
                    },
                    |a| a.admin_user.clone(),
                ),
                admin_password: admin.and_then(|a| a.admin_password.clone()),
                owner: db.users.first().map(|u| u.name.to_string()),
            }
        });
        SiteLayout {
            site: site.name.to_string(),
            server: server_name.to_owned(),
            shared: desired.shared.clone(),
            paths,
            owner: desired.user.to_owned(),
            database,
        }
    }

    /// Secret references the script's secrets file holds besides the backup's own.
    pub fn secret_references(&self) -> Vec<&SecretRef> {
        self.database
            .iter()
            .filter_map(|d| d.admin_password.as_ref())
            .collect()
    }
}

/// The settings file (`/etc/siteward/backup/<site>/config`): no secret in it.
pub fn config_text(layout: &SiteLayout, settings: Option<&BackupSettings>) -> String {
    let mut out = format!(
        "# Managed by siteward for site `{}`: edits here are overwritten by the next apply.\n",
        layout.site
    );
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{key}={value}");
    };
    line("site", &layout.site);
    line("server", &layout.server);
    line("shared", &layout.shared);
    line("paths", &layout.paths.join(","));
    line("owner", &layout.owner);
    if let Some(db) = &layout.database {
        line("engine", db.engine);
        line("database", &db.name);
        line("charset", db.charset.as_deref().unwrap_or(""));
        line("collation", db.collation.as_deref().unwrap_or(""));
        line("admin_user", &db.admin_user);
        let auth = if db.admin_password.is_some() {
            "password"
        } else {
            "socket"
        };
        line("admin_auth", auth);
        line("db_owner", db.owner.as_deref().unwrap_or(""));
    }
    if let Some(settings) = settings {
        line("repository", &settings.repository);
        if let Ok(Store::Sftp(target)) = Store::of(&settings.repository) {
            line("sftp_login", &target.login());
            line("sftp_port", &target.port.to_string());
            if let Some(key) = &settings.host_key {
                line("sftp_known_host", &target.known_hosts_line(key));
            }
        }
        line("keep_daily", &settings.keep.daily.to_string());
        line("keep_weekly", &settings.keep.weekly.to_string());
        line("keep_monthly", &settings.keep.monthly.to_string());
        line(
            "stale_after",
            &stale_after_seconds(&settings.schedule).to_string(),
        );
    }
    out
}

/// The secrets file's entries: name → reference (the values, base64, are written at apply time).
pub fn secret_entries(
    layout: &SiteLayout,
    settings: Option<&BackupSettings>,
) -> Vec<(&'static str, SecretRef)> {
    let mut out = Vec::new();
    if let Some(settings) = settings {
        out.push(("password", settings.password.clone()));
        if let Some(credentials) = &settings.credentials {
            for (field, reference) in credentials.fields() {
                let entry = match field {
                    "accessKeyId" => "aws_access_key_id",
                    "secretAccessKey" => "aws_secret_access_key",
                    _ => "ssh_key",
                };
                out.push((entry, reference.clone()));
            }
        }
    }
    if let Some(reference) = layout
        .database
        .as_ref()
        .and_then(|d| d.admin_password.as_ref())
    {
        out.push(("admin_password", reference.clone()));
    }
    out
}

/// The secrets file's text, from the resolved values; `None` when one is not resolved.
/// Lines come in the order of their names, as the step that writes the file has them.
pub fn secrets_text(entries: &[(&str, SecretRef)], secrets: &ResolvedSecrets) -> Option<Secret> {
    let mut out = String::new();
    let mut sorted: Vec<&(&str, SecretRef)> = entries.iter().collect();
    sorted.sort_by_key(|(name, _)| *name);
    for (name, reference) in sorted {
        let value = secrets.get(reference)?;
        let _ = writeln!(out, "{name}={}", STANDARD.encode(value.expose()));
    }
    Some(Secret::new(out))
}

/// What a script sent by siteward reads on stdin before any data: settings, secrets, the end.
pub fn stdin_header(config: &str, secrets: &Secret) -> Secret {
    Secret::new(format!("{config}{}{END_OF_SETTINGS}\n", secrets.expose()))
}

/// The cron file that runs the site's backups and checks on the server.
pub fn cron_text(site: &str, settings: &BackupSettings) -> String {
    let script = format!("{}/siteward-backup", layout::backup_dir(site));
    format!(
        "# Managed by siteward for site `{site}`: backups with restic (log: /var/log/siteward/backup-{site}.log).\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n# backup\n{} root {script} scheduled-backup\n# check\n{} root {script} scheduled-check\n",
        settings.schedule, settings.check
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site_with(server_backup: &str, site_backup: &str) -> (Site, ServerSpec) {
        let (site, server, problems) = checked(server_backup, site_backup);
        assert!(problems.is_empty(), "{problems:?}");
        (site, server)
    }

    /// The site, its server and what the checks say of them.
    fn checked(server_backup: &str, site_backup: &str) -> (Site, ServerSpec, Vec<String>) {
        let text = format!(
            "apiVersion: siteward.dev/v1\nkind: Server\nmetadata: {{name: a}}\nspec: {{address: 192.0.2.1{server_backup}}}\n---\n\
             apiVersion: siteward.dev/v1\nkind: Site\nmetadata: {{name: shop}}\n\
             spec: {{server: a, type: static, domain: shop.test, user: shop{site_backup}}}\n"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("specs.yaml"), &text).unwrap();
        let loaded = crate::spec::load_and_check(&[dir.path().to_path_buf()]);
        let problems = loaded
            .diagnostics
            .iter()
            .map(|d| d.message.clone())
            .collect();
        (
            loaded.sites[0].item.clone(),
            loaded.servers[0].item.spec.clone(),
            problems,
        )
    }

    #[test]
    fn a_server_default_gives_each_site_its_own_repository_under_its_base() {
        let (site, server) = site_with(
            ", backup: {repository: 's3:http://s3.test/backups/', password: {secret: env:PW}}",
            "",
        );
        let settings = effective(&site, Some(&server)).unwrap().unwrap();
        assert_eq!(settings.repository, "s3:http://s3.test/backups/shop");
        assert_eq!(settings.password.secret, "env:PW");
        assert_eq!(settings.keep, Keep::default());
    }

    #[test]
    fn a_sites_own_fields_win_over_the_default_and_enabled_false_turns_it_off() {
        let (site, server) = site_with(
            ", backup: {repository: 's3:http://s3.test/b', password: {secret: env:PW}, keep: {daily: 3}}",
            ", backup: {schedule: '0 1 * * *', keep: {daily: 9}}",
        );
        let settings = effective(&site, Some(&server)).unwrap().unwrap();
        assert_eq!(settings.schedule, "0 1 * * *");
        assert_eq!(settings.keep.daily, 9);
        let (site, server) = site_with(
            ", backup: {repository: 's3:http://s3.test/b', password: {secret: env:PW}}",
            ", backup: {enabled: false}",
        );
        assert_eq!(effective(&site, Some(&server)), None);
    }

    #[test]
    fn a_site_without_a_repository_or_password_is_missing_them() {
        let (site, server, problems) = checked("", ", backup: {schedule: '@daily'}");
        assert_eq!(
            problems,
            [
                "the site's backups have no `repository`",
                "the site's backups have no `password`"
            ]
        );
        assert_eq!(
            effective(&site, Some(&server)),
            Some(Err(vec![Missing::Repository, Missing::Password]))
        );
    }

    #[test]
    fn an_sftp_store_needs_its_key_and_host_key_and_no_s3_keys() {
        let (_, _, problems) = checked(
            "",
            ", backup: {repository: 'sftp:backup@store.test:/srv/r', password: {secret: env:PW}, \
             credentials: {accessKeyId: {secret: env:K}, secretAccessKey: {secret: env:S}}}",
        );
        let says = |problems: &[String], text: &str| problems.iter().any(|p| p.contains(text));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(says(&problems, "are for S3"), "{problems:?}");
        assert!(
            says(&problems, "logs in to backup@store.test"),
            "{problems:?}"
        );
        assert!(says(&problems, "host key of store.test"), "{problems:?}");
        let (_, _, problems) = checked(
            "",
            ", backup: {repository: 's3:http://s3.test/b', password: {secret: env:PW}, \
             hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5', credentials: {sshKey: {secret: env:K}}}",
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            says(&problems, "`credentials.sshKey` is for `sftp:`"),
            "{problems:?}"
        );
        assert!(says(&problems, "`hostKey` is for `sftp:`"), "{problems:?}");
        let (_, _, problems) = checked(
            "",
            ", backup: {repository: 'sftp:store.test:/r', password: {secret: env:PW}}",
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("name the login"), "{problems:?}");
    }

    #[test]
    fn an_sftp_store_gets_its_login_and_pinned_key_in_the_config_and_the_key_as_a_secret() {
        let (site, server) = site_with(
            ", backup: {repository: 'sftp://backup@store.test:2222//srv/restic', password: {secret: env:PW}, \
             credentials: {sshKey: {secret: file:/keys/backup}}, hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 root@store'}",
            "",
        );
        let settings = effective(&site, Some(&server)).unwrap().unwrap();
        assert_eq!(
            settings.repository,
            "sftp://backup@store.test:2222//srv/restic/shop"
        );
        let layout = SiteLayout::new(&site, "a", Some(&server));
        let config = config_text(&layout, Some(&settings));
        assert!(
            config.contains("\nsftp_login=backup@store.test\nsftp_port=2222\n"),
            "{config}"
        );
        assert!(
            config
                .contains("\nsftp_known_host=[store.test]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\n"),
            "{config}"
        );
        assert!(!config.contains("/keys/backup"), "{config}");
        let entries = secret_entries(&layout, Some(&settings));
        let names: Vec<&str> = entries.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["password", "ssh_key"]);
        assert_eq!(entries[1].1.secret, "file:/keys/backup");
    }

    #[test]
    fn the_default_schedule_spreads_sites_over_the_hour_and_stays_put() {
        assert_eq!(default_schedule("shop"), default_schedule("shop"));
        let minutes: std::collections::BTreeSet<String> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|s| default_schedule(s))
            .collect();
        assert!(minutes.len() > 3, "{minutes:?}");
    }

    #[test]
    fn a_backup_is_stale_after_twice_its_longest_gap_and_an_hour() {
        assert_eq!(stale_after_seconds("0 3 * * *"), 2 * 86_400 + 3600);
        assert_eq!(stale_after_seconds("@weekly"), 2 * 7 * 86_400 + 3600);
        assert_eq!(stale_after_seconds("*/15 * * * *"), 2 * 900 + 3600);
    }

    #[test]
    fn the_secrets_text_holds_base64_values_and_never_prints_them() {
        let reference = SecretRef {
            secret: "env:SITEWARD_TEST_SETTINGS_PW".into(),
        };
        let secrets = {
            let mut resolved = ResolvedSecrets::default();
            resolved.insert(&reference, Secret::new("pa ss\nword".into()));
            resolved
        };
        let text = secrets_text(&[("password", reference)], &secrets).unwrap();
        assert_eq!(text.expose(), "password=cGEgc3MKd29yZA==\n");
        assert_eq!(format!("{text:?}"), "Secret(***)");
    }
}
