//! Preflight of a migration target: every reason the new server cannot take the site, at once,
//! before anything changes. Pure: it reads what the probe observed on the target.

use crate::observe::{ObservedServer, ServiceState};
use crate::spec::Site;
use crate::spec::site::{DatabaseEngine, SiteType};

pub use crate::plan::migration::MoveSizes;

/// Every reason `target` cannot take `site` (empty when it can).
pub fn preflight(
    site: &Site,
    target_name: &str,
    target: &ObservedServer,
    sizes: MoveSizes,
) -> Vec<String> {
    let mut reasons = Vec::new();
    services(site, target, &mut reasons);
    php(site, target, &mut reasons);
    disk(target, sizes, &mut reasons);
    conflicts(site, target, &mut reasons);
    reasons
        .into_iter()
        .map(|r| format!("`{target_name}`: {r}"))
        .collect()
}

fn running(target: &ObservedServer, service: &str) -> bool {
    target
        .services
        .get(service)
        .is_some_and(|s: &ServiceState| s.installed && s.running)
}

fn services(site: &Site, target: &ObservedServer, reasons: &mut Vec<String>) {
    let spec = &site.spec;
    let mut need = vec![("nginx", "the web server nginx")];
    if let Some(database) = &spec.database {
        need.push(match database.engine {
            DatabaseEngine::Mysql | DatabaseEngine::Mariadb => ("mysql", "MariaDB/MySQL"),
            DatabaseEngine::Postgres => ("postgresql", "PostgreSQL"),
        });
    }
    if spec.redis.as_ref().is_some_and(|r| r.required) {
        need.push(("redis", "Redis"));
    }
    if !spec.workers.is_empty() {
        need.push(("supervisor", "the process manager supervisor"));
    }
    let has_crons = !spec.crons.is_empty() || spec.site_type == SiteType::Laravel;
    if has_crons {
        need.push(("cron", "cron"));
    }
    for (service, words) in need {
        if !running(target, service) {
            reasons.push(format!("{words} is not installed and running"));
        }
    }
}

fn php(site: &Site, target: &ObservedServer, reasons: &mut Vec<String>) {
    let Some(version) = site.spec.php.as_deref() else {
        return;
    };
    if site.spec.site_type == SiteType::Static {
        return;
    }
    match target.php.iter().find(|p| p.version == version) {
        None => reasons.push(format!("PHP {version} is not installed")),
        Some(php) if !php.fpm_running => reasons.push(format!("PHP-FPM {version} is not running")),
        Some(_) => {}
    }
}

/// Each file system the site's data lands on needs twice the database plus storage free:
/// room for the copy and for a second sync.
fn disk(target: &ObservedServer, sizes: MoveSizes, reasons: &mut Vec<String>) {
    let needed = 2 * (sizes.database_bytes + sizes.storage_bytes);
    for disk in &target.disks {
        if disk.available_bytes < needed {
            reasons.push(format!(
                "{} has {} free, the move needs {} (twice the database and storage)",
                disk.path,
                human_bytes(disk.available_bytes),
                human_bytes(needed)
            ));
        }
    }
}

fn conflicts(site: &Site, target: &ObservedServer, reasons: &mut Vec<String>) {
    let spec = &site.spec;
    for (name, other) in &target.sites {
        if name == site.name.as_str() {
            continue;
        }
        let Some(facts) = other.record.as_ref().map(|r| &r.facts) else {
            continue;
        };
        if facts
            .get("domain")
            .is_some_and(|d| d.eq_ignore_ascii_case(&spec.domain))
        {
            reasons.push(format!("site `{name}` already serves {}", spec.domain));
        }
        if facts.get("user").is_some_and(|u| u == spec.user.as_str()) {
            reasons.push(format!(
                "site `{name}` already uses the Linux user `{}`",
                spec.user
            ));
        }
    }
    let ours = target.sites.get(site.name.as_str());
    let recorded_here = ours.is_some_and(|s| s.record.is_some());
    if !recorded_here && ours.is_some_and(|s| s.user.is_some()) {
        reasons.push(format!(
            "the Linux user `{}` already exists and belongs to no siteward site",
            spec.user
        ));
    }
}

/// `1.5 GiB`, `512 MiB`, `900 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{Disk, ObservedPhp, ObservedSite, ObservedUser, SiteRecord};

    fn site() -> Site {
        let text = "apiVersion: siteward.dev/v1\nkind: Server\nmetadata: {name: b}\nspec: {address: 192.0.2.2, php: [\"8.2\"], mysql: {adminUser: root}}\n---\n\
                    apiVersion: siteward.dev/v1\nkind: Site\nmetadata: {name: shop}\n\
                    spec: {server: b, type: laravel, domain: shop.test, user: shop, php: \"8.2\", \
                    database: {engine: mariadb, name: shop}, redis: {required: true}, \
                    workers: [{name: queue, command: php artisan queue:work}]}\n";
        crate::spec::first_site_of(text)
    }

    fn ready_server() -> ObservedServer {
        let mut server = ObservedServer::default();
        for service in ["nginx", "mysql", "redis", "supervisor", "cron"] {
            server.services.insert(
                service.into(),
                ServiceState {
                    installed: true,
                    running: true,
                },
            );
        }
        server.php.push(ObservedPhp {
            version: "8.2".into(),
            fpm_running: true,
        });
        server.disks.push(Disk {
            path: "/home".into(),
            available_bytes: 10 << 30,
            total_bytes: 20 << 30,
        });
        server
    }

    const SIZES: MoveSizes = MoveSizes {
        database_bytes: 1 << 30,
        storage_bytes: 1 << 30,
        storage_files: 0,
    };

    #[test]
    fn a_ready_server_passes() {
        assert_eq!(
            preflight(&site(), "b", &ready_server(), SIZES),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_missing_piece_is_named_at_once() {
        let mut server = ready_server();
        server.services.remove("redis");
        server.services.insert(
            "mysql".into(),
            ServiceState {
                installed: true,
                running: false,
            },
        );
        server.php.clear();
        server.disks[0].available_bytes = 3 << 30;
        let reasons = preflight(&site(), "b", &server, SIZES);
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("MariaDB/MySQL is not installed and running"))
        );
        assert!(reasons.iter().any(|r| r.contains("Redis")));
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("PHP 8.2 is not installed"))
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("/home has 3.0 GiB free, the move needs 4.0 GiB"))
        );
        assert!(reasons.iter().all(|r| r.starts_with("`b`: ")));
    }

    #[test]
    fn another_site_with_the_domain_or_user_is_a_conflict() {
        let mut server = ready_server();
        let mut other = ObservedSite::default();
        let mut record = SiteRecord::default();
        record.facts.insert("domain".into(), "SHOP.test".into());
        record.facts.insert("user".into(), "shop".into());
        other.record = Some(record);
        server.sites.insert("old-shop".into(), other);
        let reasons = preflight(&site(), "b", &server, SIZES);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
    }

    #[test]
    fn a_linux_user_that_is_no_sites_is_a_conflict() {
        let mut server = ready_server();
        let ours = ObservedSite {
            user: Some(ObservedUser {
                name: "shop".into(),
                uid: 1001,
                gid: 1001,
                home: "/home/shop".into(),
                shell: "/bin/bash".into(),
            }),
            ..ObservedSite::default()
        };
        server.sites.insert("shop".into(), ours);
        let reasons = preflight(&site(), "b", &server, SIZES);
        assert!(
            reasons[0].contains("already exists and belongs to no siteward site"),
            "{reasons:?}"
        );
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(900), "900 B");
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
    }
}
