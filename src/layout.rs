//! The on-server layout: where each site's pieces live. A contract operators rely on.
//!
//! ```text
//! /home/<user>/<domain>/            site root
//!   releases/<id>/                  one per deploy (strategy `releases`)
//!   current -> releases/<id>        the live release
//!   shared/.env, shared/<storage>   linked into every release
//! /etc/nginx/conf.d/siteward-<site>.conf
//! /etc/php/<v>/fpm/pool.d/siteward-<site>.conf   socket /run/php/siteward-<site>.sock
//! /etc/cron.d/siteward-<site>
//! /etc/supervisor/conf.d/siteward-<site>-<worker>.conf
//! /var/lib/siteward/sites/<site>/   siteward's records: spec hash, release, journal, lock
//! ```

/// Where siteward keeps its records on a server.
pub const STATE_ROOT: &str = "/var/lib/siteward";

/// The directory of one site's records.
pub fn record_dir(site: &str) -> String {
    format!("{STATE_ROOT}/sites/{site}")
}

/// The site's root directory.
pub fn site_root(user: &str, domain: &str) -> String {
    format!("/home/{user}/{domain}")
}

/// The releases directory.
pub fn releases_dir(root: &str) -> String {
    format!("{root}/releases")
}

/// The `current` symlink.
pub fn current_link(root: &str) -> String {
    format!("{root}/current")
}

/// The shared directory (`.env`, storage).
pub fn shared_dir(root: &str) -> String {
    format!("{root}/shared")
}

/// The nginx vhost file.
pub fn vhost_path(site: &str) -> String {
    format!("/etc/nginx/conf.d/siteward-{site}.conf")
}

/// The PHP-FPM pool file.
pub fn pool_path(php: &str, site: &str) -> String {
    format!("/etc/php/{php}/fpm/pool.d/siteward-{site}.conf")
}

/// The PHP version of `path` when it is a pool file of `site` (`/etc/php/<version>/fpm/pool.d/
/// siteward-<site>.conf`), whatever the version.
pub fn pool_version<'a>(path: &'a str, site: &str) -> Option<&'a str> {
    let (version, _) = path.strip_prefix("/etc/php/")?.split_once('/')?;
    (!version.is_empty() && pool_path(version, site) == path).then_some(version)
}

/// The PHP-FPM socket.
pub fn fpm_socket(site: &str) -> String {
    format!("/run/php/siteward-{site}.sock")
}

/// The cron file.
pub fn cron_path(site: &str) -> String {
    format!("/etc/cron.d/siteward-{site}")
}

/// The supervisor program name of a worker.
pub fn program_name(site: &str, worker: &str) -> String {
    format!("siteward-{site}-{worker}")
}

/// The supervisor program file of a worker.
pub fn program_path(site: &str, worker: &str) -> String {
    format!("/etc/supervisor/conf.d/{}.conf", program_name(site, worker))
}

/// Where a site's paused jobs wait: its cron and supervisor files, under their live names.
///
/// Cron ignores files here and supervisor does not include them, so a job whose file sits
/// here runs nowhere on this server.
pub fn paused_dir(site: &str) -> String {
    format!("{}/paused", record_dir(site))
}

/// The paused place of a live job file (`/etc/cron.d/siteward-shop` →
/// `/var/lib/siteward/sites/shop/paused/siteward-shop`): same file name, under [`paused_dir`].
pub fn paused_path(site: &str, live_path: &str) -> String {
    let name = live_path.rsplit('/').next().unwrap_or(live_path);
    format!("{}/{name}", paused_dir(site))
}

/// The start of every program file path of a site: `/etc/supervisor/conf.d/siteward-<site>-`.
pub fn program_prefix(site: &str) -> String {
    program_path(site, "").trim_end_matches(".conf").to_owned()
}

/// Where a site's backup settings, secrets and script live on a server (root only).
pub fn backup_dir(site: &str) -> String {
    format!("/etc/siteward/backup/{site}")
}

/// The backup cron file: `_` keeps it apart from a site's own cron file, since site names
/// never hold one.
pub fn backup_cron_path(site: &str) -> String {
    format!("/etc/cron.d/siteward-backup_{site}")
}

/// The site whose backup file `path` is, given the site names.
pub fn backup_owner<'a>(path: &str, names: &'a [String]) -> Option<&'a String> {
    names.iter().find(|name| {
        path == backup_cron_path(name)
            || path
                .strip_prefix(&backup_dir(name))
                .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/'))
    })
}

/// Where a site's certificate and key from secrets live (`fullchain.pem` 0644, `privkey.pem`
/// 0600, root only).
pub fn tls_dir(site: &str) -> String {
    format!("/etc/siteward/tls/{site}")
}

/// certbot's lineage of a site's ACME certificate (`--cert-name <site>`).
pub fn acme_live_dir(site: &str) -> String {
    format!("/etc/letsencrypt/live/{site}")
}

/// The renewal cron file of a site's ACME certificate.
pub fn tls_cron_path(site: &str) -> String {
    format!("/etc/cron.d/siteward-tls_{site}")
}

/// The site whose TLS file `path` is, given the site names.
pub fn tls_owner<'a>(path: &str, names: &'a [String]) -> Option<&'a String> {
    names.iter().find(|name| {
        path == tls_cron_path(name)
            || path
                .strip_prefix(&tls_dir(name))
                .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/'))
    })
}

/// Mozilla's "intermediate" TLS settings, shared by every site's vhost on a server.
pub const TLS_SNIPPET: &str = "/etc/nginx/snippets/siteward-tls.conf";

/// The webroot certbot writes HTTP-01 challenges into; every ACME site serves
/// `/.well-known/acme-challenge/` from it.
pub const ACME_WEBROOT: &str = "/var/www/siteward-acme";
