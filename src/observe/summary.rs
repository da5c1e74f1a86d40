//! A readable summary of an observation, for `siteward observe` (two-space indented lines).

use std::fmt::Write as _;

use super::{ObservedServer, ObservedSite, PathKind, SiteRecord};

/// The server-wide lines: PHP, services, disks, recorded sites.
pub fn server_lines(observed: &ObservedServer) -> String {
    let mut out = String::new();
    let php: Vec<String> = observed
        .php
        .iter()
        .map(|php| {
            let state = if php.fpm_running {
                "FPM running"
            } else {
                "FPM stopped"
            };
            format!("{} ({state})", php.version)
        })
        .collect();
    line(&mut out, 2, "php", &list_or_none(&php));
    let services: Vec<String> = observed
        .services
        .iter()
        .map(|(name, state)| match (state.installed, state.running) {
            (_, true) => format!("{name} running"),
            // certbot is a program cron and timers run, not a service.
            (true, false) if name == "certbot" => format!("{name} installed"),
            (true, false) => format!("{name} stopped"),
            (false, false) => format!("{name} missing"),
        })
        .collect();
    line(&mut out, 2, "services", &list_or_none(&services));
    let disks: Vec<String> = observed
        .disks
        .iter()
        .map(|disk| {
            format!(
                "{} {} free of {}",
                disk.path,
                bytes(disk.available_bytes),
                bytes(disk.total_bytes)
            )
        })
        .collect();
    line(&mut out, 2, "disk", &list_or_none(&disks));
    line(
        &mut out,
        2,
        "recorded sites",
        &list_or_none(&observed.recorded_sites),
    );
    out
}

/// The lines of one site.
pub fn site_lines(site: &ObservedSite) -> String {
    let mut out = String::new();
    line(
        &mut out,
        4,
        "record",
        &site.record.as_ref().map_or("none".into(), record),
    );
    let user = site.user.as_ref().map_or("missing".into(), |user| {
        format!(
            "{} (uid {}, gid {}, home {})",
            user.name, user.uid, user.gid, user.home
        )
    });
    line(&mut out, 4, "user", &user);
    for (source, certificate) in &site.certificates {
        let text = format!(
            "{} ({source}), issued by {}, expires on {}",
            certificate.names.join(", "),
            certificate.issuer,
            crate::resources::tls::date(certificate.not_after)
        );
        line(&mut out, 4, "certificate", &text);
    }
    for (path, observed) in &site.paths {
        let target = observed
            .target
            .as_deref()
            .map(|t| format!(" -> {t}"))
            .unwrap_or_default();
        let kind = kind_name(observed.kind);
        let text = format!(
            "{path} {kind} {}:{} {:04o}{target}",
            observed.owner, observed.group, observed.mode
        );
        line(&mut out, 4, "path", &text);
    }
    line(&mut out, 4, "releases", &releases(site));
    if let Some(git) = &site.git {
        let mut text = git.commit.clone();
        for extra in [&git.branch, &git.remote].into_iter().flatten() {
            let _ = write!(text, " {extra}");
        }
        line(&mut out, 4, "git", &text);
    }
    let env = site
        .env
        .as_ref()
        .map_or("none".into(), |keys| format!("{} keys", keys.len()));
    line(&mut out, 4, ".env", &env);
    for (path, file) in &site.files {
        let text = format!(
            "{path} sha256 {} {}:{} {:04o}",
            &file.sha256[..12.min(file.sha256.len())],
            file.owner,
            file.group,
            file.mode
        );
        line(&mut out, 4, "file", &text);
    }
    for path in &site.unloaded {
        let text = format!("{path} (its service has not loaded it since it changed)");
        line(&mut out, 4, "unloaded", &text);
    }
    line(&mut out, 4, "database", &database(site));
    let processes: Vec<String> = site
        .processes
        .iter()
        .map(|p| format!("{} {}", p.process, p.state))
        .collect();
    if !processes.is_empty() {
        line(&mut out, 4, "processes", &processes.join(", "));
    }
    line(
        &mut out,
        4,
        "user crontab",
        &format!("{} entries", site.user_crontab_lines),
    );
    out
}

/// What could not be observed.
pub fn problem_lines(observed: &ObservedServer) -> String {
    let mut out = String::new();
    for problem in &observed.problems {
        let site = problem
            .site
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        line(
            &mut out,
            2,
            "problem",
            &format!("{}{site}: {}", problem.topic, problem.message),
        );
    }
    out
}

fn record(record: &SiteRecord) -> String {
    let mut text: Vec<String> = ["specHash", "release"]
        .iter()
        .filter_map(|key| Some(format!("{key} {}", record.facts.get(*key)?)))
        .collect();
    if let Some(lock) = &record.lock {
        text.push(format!(
            "locked by {} on {} (pid {}) until unix {}",
            lock.owner, lock.machine, lock.pid, lock.expires_unix
        ));
    }
    if !record.journal.is_empty() {
        text.push(format!("journal {} lines", record.journal.len()));
    }
    list_or_none(&text).replace(", ", "; ")
}

fn releases(site: &ObservedSite) -> String {
    let text: Vec<String> = site
        .releases
        .iter()
        .map(|release| {
            let mut notes = Vec::new();
            if site.current_release.as_deref() == Some(release.id.as_str()) {
                notes.push("current".to_owned());
            }
            if let Some(commit) = &release.commit {
                notes.push(commit.chars().take(12).collect());
            }
            if release.bad {
                notes.push("bad".to_owned());
            }
            match notes.is_empty() {
                true => release.id.clone(),
                false => format!("{} ({})", release.id, notes.join(", ")),
            }
        })
        .collect();
    list_or_none(&text)
}

fn database(site: &ObservedSite) -> String {
    let Some(db) = &site.database else {
        return "none".into();
    };
    let users: Vec<String> = site
        .database_users
        .values()
        .map(|user| format!("{} ({})", user.name, user.privileges.join(" ")))
        .collect();
    let mut text = format!(
        "{} {} ({}, {}, {})",
        db.engine,
        db.name,
        db.charset,
        db.collation,
        bytes(db.size_bytes)
    );
    if !users.is_empty() {
        let _ = write!(text, "; users {}", users.join(", "));
    }
    text
}

fn kind_name(kind: PathKind) -> &'static str {
    match kind {
        PathKind::File => "file",
        PathKind::Directory => "directory",
        PathKind::Symlink => "symlink",
        PathKind::Other => "other",
    }
}

fn line(out: &mut String, indent: usize, label: &str, text: &str) {
    let _ = writeln!(out, "{:indent$}{label}: {text}", "");
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Bytes in binary units, one decimal.
fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{ObservedCertificate, ServiceState};

    #[test]
    fn certificates_show_names_issuer_and_expiry_and_certbot_is_installed_not_stopped() {
        let mut site = ObservedSite::default();
        site.certificates.insert(
            "acme".into(),
            ObservedCertificate {
                names: vec!["shop.test".into(), "www.shop.test".into()],
                issuer: "CN=Pebble".into(),
                not_after: 1_828_080_000,
                sha256: String::new(),
            },
        );
        let text = site_lines(&site);
        assert!(
            text.contains("certificate: shop.test, www.shop.test (acme), issued by CN=Pebble, expires on 2027-12-06"),
            "{text}"
        );
        let mut server = ObservedServer::default();
        let installed = ServiceState {
            installed: true,
            running: false,
        };
        server.services.insert("certbot".into(), installed);
        assert!(server_lines(&server).contains("services: certbot installed"));
    }
}
