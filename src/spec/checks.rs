//! Semantic checks across documents: what the schema alone cannot say.

use super::diagnostic::{Diagnostic, closest};
use super::load::{Loaded, Located};
use super::names::RESERVED_USERS;
use super::secret::SecretRef;
use super::site::{EnvValue, Site, SiteType};
use super::yaml::Position;
use std::collections::{BTreeMap, HashMap};

/// Cron macros that `/etc/cron.d` understands.
pub const CRON_MACROS: [&str; 8] = [
    "@reboot",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Runs every semantic check and appends what it finds to `loaded.diagnostics`.
pub fn check(loaded: &mut Loaded) {
    let mut diagnostics = Vec::new();
    unique_names(
        &loaded.servers,
        |s| s.item.name.as_str(),
        "Server",
        &mut diagnostics,
    );
    unique_names(
        &loaded.sites,
        |s| s.item.name.as_str(),
        "Site",
        &mut diagnostics,
    );
    for server in &loaded.servers {
        check_server(server, &mut diagnostics);
    }
    let server_names: Vec<&str> = loaded
        .servers
        .iter()
        .map(|s| s.item.name.as_str())
        .collect();
    for site in &loaded.sites {
        check_site(site, &server_names, loaded, &mut diagnostics);
    }
    shared_across_sites(&loaded.sites, &mut diagnostics);
    loaded.diagnostics.extend(diagnostics);
}

fn error<T>(
    located: &Located<T>,
    pointer: &[&str],
    key: bool,
    message: impl Into<String>,
) -> Diagnostic {
    let owned: Vec<String> = pointer.iter().map(|s| s.to_string()).collect();
    Diagnostic::at(&located.file, located.position(pointer, key), message).pointer(&owned)
}

fn place<T>(located: &Located<T>, pointer: &[&str]) -> String {
    let position = located.position(pointer, false);
    format!(
        "{}:{}:{}",
        located.file.display(),
        position.line,
        position.column
    )
}

fn unique_names<T>(
    items: &[Located<T>],
    name: impl Fn(&Located<T>) -> &str,
    kind: &str,
    out: &mut Vec<Diagnostic>,
) {
    let mut first: HashMap<&str, &Located<T>> = HashMap::new();
    for item in items {
        let key = name(item);
        match first.get(key) {
            Some(earlier) => out.push(
                error(
                    item,
                    &["metadata", "name"],
                    false,
                    format!("{kind} `{key}` is defined twice"),
                )
                .hint(format!(
                    "names are unique per kind; the first `{key}` is at {}",
                    place(earlier, &["metadata", "name"])
                )),
            ),
            None => {
                first.insert(key, item);
            }
        }
    }
}

fn check_server(server: &Located<super::server::Server>, out: &mut Vec<Diagnostic>) {
    let spec = &server.item.spec;
    if let Err(message) = check_host(&spec.address) {
        out.push(
            error(
                server,
                &["spec", "address"],
                false,
                format!("address: {message}"),
            )
            .hint("use a host name or an IPv4/IPv6 address"),
        );
    }
    for (index, version) in spec.php.iter().enumerate() {
        let index = index.to_string();
        if !is_php_version(version) {
            out.push(
                error(
                    server,
                    &["spec", "php", &index],
                    false,
                    format!("`{version}` is not a PHP version"),
                )
                .hint("write versions as MAJOR.MINOR in quotes, for example \"8.2\""),
            );
        }
    }
    if let Some(backup) = &spec.backup {
        check_backup_fields(server, backup, out);
    }
    let admins = [("mysql", &spec.mysql), ("postgres", &spec.postgres)];
    for (section, admin) in admins {
        if let Some(reference) = admin.as_ref().and_then(|a| a.admin_password.as_ref()) {
            check_secret(
                server,
                &["spec", section, "adminPassword", "secret"],
                reference,
                out,
            );
        }
    }
}

fn check_site(site: &Located<Site>, servers: &[&str], loaded: &Loaded, out: &mut Vec<Diagnostic>) {
    let spec = &site.item.spec;
    check_placement(site, servers, loaded, out);
    if let Err(message) = check_host(&spec.domain) {
        out.push(error(site, &["spec", "domain"], false, format!("domain `{}`: {message}", spec.domain))
            .hint("a domain is labels of letters, digits and `-` joined by dots, like `shop.example.com`"));
    }
    for (index, alias) in spec.aliases.iter().enumerate() {
        if let Err(message) = check_host(alias) {
            out.push(
                error(
                    site,
                    &["spec", "aliases", &index.to_string()],
                    false,
                    format!("alias `{alias}`: {message}"),
                )
                .hint("an alias is a host name like `www.shop.example.com`"),
            );
        }
    }
    if RESERVED_USERS.contains(&spec.user.as_str()) {
        out.push(
            error(
                site,
                &["spec", "user"],
                false,
                format!("`{}` is a system account and cannot own a site", spec.user),
            )
            .hint("give each site its own user, for example the site's name"),
        );
    }
    check_php(site, out);
    check_relative_path_field(
        site,
        &["spec", "webDirectory"],
        spec.web_directory.as_deref(),
        out,
    );
    check_source(site, out);
    check_jobs(site, out);
    check_adopt(site, out);
    for (index, path) in spec.storage.iter().enumerate() {
        let index = index.to_string();
        check_relative_path_field(site, &["spec", "storage", &index], Some(path), out);
    }
    if let Some(health) = &spec.health
        && (!health.path.starts_with('/') || health.path.chars().any(char::is_whitespace))
    {
        out.push(
            error(
                site,
                &["spec", "health", "path"],
                false,
                format!(
                    "health path `{}` must start with `/` and hold no spaces",
                    health.path
                ),
            )
            .hint("for example `/up`"),
        );
    }
    check_site_secrets(site, out);
    check_backup(site, loaded, out);
    check_tls(site, out);
}

/// A site's `tls`: one source of certificates, a valid ACME account, names ACME can serve,
/// well-formed secret references.
fn check_tls(site: &Located<Site>, out: &mut Vec<Diagnostic>) {
    let spec = &site.item.spec;
    let Some(tls) = &spec.tls else { return };
    let names: Vec<&str> = std::iter::once(spec.domain.as_str())
        .chain(spec.aliases.iter().map(String::as_str))
        .collect();
    for found in super::tls::problems(tls, &names) {
        let pointer: Vec<&str> = ["spec", "tls"].into_iter().chain(found.pointer).collect();
        out.push(error(site, &pointer, found.key, found.message).hint(found.hint));
    }
    for (field, reference) in [("certificate", &tls.certificate), ("key", &tls.key)] {
        if let Some(reference) = reference {
            check_secret(site, &["spec", "tls", field, "secret"], reference, out);
        }
    }
}

/// A site's backups: complete once its server's default is added, schedules that parse,
/// well-formed secret references.
fn check_backup(site: &Located<Site>, loaded: &Loaded, out: &mut Vec<Diagnostic>) {
    use crate::backup::settings::{Missing, effective};
    if let Some(backup) = &site.item.spec.backup {
        check_backup_fields(site, backup, out);
    }
    let server = loaded
        .servers
        .iter()
        .find(|s| s.item.name == site.item.spec.server)
        .map(|s| &s.item.spec);
    let pointer: &[&str] = if site.item.spec.backup.is_some() {
        &["spec", "backup"]
    } else {
        &["spec"]
    };
    let missing = match effective(&site.item, server) {
        None => return,
        Some(Ok(settings)) => {
            for problem in settings.store_problems() {
                let mut at = pointer.to_vec();
                if site.item.spec.backup.is_some() {
                    at.push(problem.field);
                }
                out.push(error(site, &at, false, problem.message).hint(problem.hint));
            }
            return;
        }
        Some(Err(missing)) => missing,
    };
    for field in missing {
        let (name, hint) = match field {
            Missing::Repository => (
                "repository",
                "add `repository: s3:https://host/bucket/path` or `sftp:user@host:/path` (or a `repository` base to the Server's `backup`)",
            ),
            Missing::Password => (
                "password",
                "add `password: {secret: env:NAME}`: the repository's encryption password",
            ),
        };
        out.push(
            error(
                site,
                pointer,
                false,
                format!("the site's backups have no `{name}`"),
            )
            .hint(hint),
        );
    }
}

fn check_backup_fields<T>(
    located: &Located<T>,
    backup: &super::backup::BackupSpec,
    out: &mut Vec<Diagnostic>,
) {
    for (field, schedule) in [("schedule", &backup.schedule), ("check", &backup.check)] {
        let Some(schedule) = schedule else { continue };
        if let Err(message) = check_cron_schedule(schedule) {
            out.push(
                error(
                    located,
                    &["spec", "backup", field],
                    false,
                    format!("invalid cron schedule `{schedule}`: {message}"),
                )
                .hint("write five fields like `30 2 * * *`, or a macro like `@daily`"),
            );
        }
    }
    if let Some(reference) = &backup.password {
        check_secret(
            located,
            &["spec", "backup", "password", "secret"],
            reference,
            out,
        );
    }
    if let Some(credentials) = &backup.credentials {
        for (field, reference) in credentials.fields() {
            let pointer = ["spec", "backup", "credentials", field, "secret"];
            check_secret(located, &pointer, reference, out);
        }
    }
}

fn check_placement(
    site: &Located<Site>,
    servers: &[&str],
    loaded: &Loaded,
    out: &mut Vec<Diagnostic>,
) {
    let spec = &site.item.spec;
    let wanted = spec.server.as_str();
    let Some(server) = loaded
        .servers
        .iter()
        .find(|s| s.item.name.as_str() == wanted)
    else {
        let mut diagnostic = error(
            site,
            &["spec", "server"],
            false,
            format!("server `{wanted}` does not exist"),
        );
        diagnostic = match closest(wanted, servers.iter().copied()) {
            Some(best) => diagnostic.hint(format!("did you mean `{best}`?")),
            None if servers.is_empty() => {
                diagnostic.hint("add a `kind: Server` document with that name")
            }
            None => diagnostic.hint(format!("the servers are: {}", servers.join(", "))),
        };
        return out.push(diagnostic);
    };
    let offered = &server.item.spec.php;
    if let Some(php) = &spec.php
        && !offered.is_empty()
        && is_php_version(php)
        && !offered.contains(php)
    {
        out.push(error(site, &["spec", "php"], false, format!("server `{wanted}` does not offer PHP {php}"))
                .hint(format!("`{wanted}` lists PHP {}; add \"{php}\" to its `php:` once it is installed, or choose one of those", offered.join(", "))));
    }
    if let Some(database) = &spec.database {
        use super::site::DatabaseEngine::*;
        let (section, present) = match database.engine {
            Mysql | Mariadb => ("mysql", server.item.spec.mysql.is_some()),
            Postgres => ("postgres", server.item.spec.postgres.is_some()),
        };
        if !present {
            out.push(
                error(
                    site,
                    &["spec", "database", "engine"],
                    false,
                    format!("server `{wanted}` has no `{section}:` section for this database"),
                )
                .hint(format!(
                    "add `{section}: {{adminUser: …}}` to the Server `{wanted}`"
                )),
            );
        }
    }
}

fn check_php(site: &Located<Site>, out: &mut Vec<Diagnostic>) {
    let spec = &site.item.spec;
    match (&spec.php, spec.site_type) {
        (Some(php), _) if !is_php_version(php) => {
            out.push(
                error(
                    site,
                    &["spec", "php"],
                    false,
                    format!("`{php}` is not a PHP version"),
                )
                .hint("write MAJOR.MINOR in quotes, for example \"8.2\""),
            );
        }
        (None, SiteType::Laravel | SiteType::Php) => {
            out.push(
                error(site, &["spec"], false, "a PHP site needs `php:`")
                    .hint("add `php: \"8.2\"` (a version the server offers)"),
            );
        }
        _ => {}
    }
}

fn check_source(site: &Located<Site>, out: &mut Vec<Diagnostic>) {
    let Some(source) = &site.item.spec.source else {
        return;
    };
    match (&source.branch, &source.revision) {
        (Some(_), Some(_)) => out.push(
            error(
                site,
                &["spec", "source", "revision"],
                true,
                "set `branch` or `revision`, not both",
            )
            .hint("a pinned `revision` is deployed as is; a `branch` is followed to its tip"),
        ),
        (None, None) => out.push(
            error(
                site,
                &["spec", "source"],
                false,
                "the source names neither `branch` nor `revision`",
            )
            .hint("add `branch: main` to follow a branch, or `revision: <commit>` to pin one"),
        ),
        _ => {}
    }
    if source.repository.trim().is_empty() || source.repository.starts_with('-') {
        out.push(
            error(
                site,
                &["spec", "source", "repository"],
                false,
                "the repository URL is empty or starts with `-`",
            )
            .hint("write a git URL, like `https://git.example.com/acme/shop.git`"),
        );
    }
    for (field, value) in [("branch", &source.branch), ("revision", &source.revision)] {
        if let Some(value) = value
            && !is_git_ref(value)
        {
            out.push(
                error(
                    site,
                    &["spec", "source", field],
                    false,
                    format!("`{value}` is not a valid git {field}"),
                )
                .hint("use letters, digits, `/`, `.`, `_` and `-`, not starting with `-`"),
            );
        }
    }
}

fn check_jobs(site: &Located<Site>, out: &mut Vec<Diagnostic>) {
    let spec = &site.item.spec;
    let mut seen = HashMap::new();
    for (index, cron) in spec.crons.iter().enumerate() {
        let index = index.to_string();
        if let Err(message) = check_cron_schedule(&cron.schedule) {
            out.push(error(site, &["spec", "crons", &index, "schedule"], false, format!("invalid cron schedule `{}`: {message}", cron.schedule))
                .hint("write five fields (minute hour day-of-month month day-of-week) like `*/5 * * * *`, or a macro like `@daily`"));
        }
        if cron.command.contains('\n') || cron.command.trim().is_empty() {
            out.push(
                error(
                    site,
                    &["spec", "crons", &index, "command"],
                    false,
                    "a cron command must be one non-empty line",
                )
                .hint("put longer work into a script in the repository and call it"),
            );
        }
        if seen.insert(cron.name.as_str(), ()).is_some() {
            out.push(
                error(
                    site,
                    &["spec", "crons", &index, "name"],
                    false,
                    format!("cron `{}` is defined twice", cron.name),
                )
                .hint("give each cron job its own name"),
            );
        }
    }
    let mut seen = HashMap::new();
    for (index, worker) in spec.workers.iter().enumerate() {
        let index = index.to_string();
        if worker.command.contains('\n') || worker.command.trim().is_empty() {
            out.push(
                error(
                    site,
                    &["spec", "workers", &index, "command"],
                    false,
                    "a worker command must be one non-empty line",
                )
                .hint("put longer work into a script in the repository and call it"),
            );
        }
        if seen.insert(worker.name.as_str(), ()).is_some() {
            out.push(
                error(
                    site,
                    &["spec", "workers", &index, "name"],
                    false,
                    format!("worker `{}` is defined twice", worker.name),
                )
                .hint("give each worker its own name"),
            );
        }
    }
}

fn check_site_secrets(site: &Located<Site>, out: &mut Vec<Diagnostic>) {
    let spec = &site.item.spec;
    for (key, value) in &spec.env {
        if let EnvValue::Secret(reference) = value {
            check_secret(
                site,
                &["spec", "env", key.as_str(), "secret"],
                reference,
                out,
            );
        }
        if let EnvValue::Text(text) = value
            && text.contains('\n')
        {
            out.push(
                error(
                    site,
                    &["spec", "env", key.as_str()],
                    false,
                    format!("`.env` value of `{key}` spans several lines"),
                )
                .hint("`.env` values are single lines"),
            );
        }
    }
    if let Some(database) = &spec.database {
        for (index, user) in database.users.iter().enumerate() {
            let index = index.to_string();
            check_secret(
                site,
                &["spec", "database", "users", &index, "password", "secret"],
                &user.password,
                out,
            );
        }
    }
}

fn check_secret<T>(
    located: &Located<T>,
    pointer: &[&str],
    reference: &SecretRef,
    out: &mut Vec<Diagnostic>,
) {
    if let Err(problem) = reference.source() {
        out.push(error(located, pointer, false, problem.to_string())
            .hint("write `{secret: env:NAME}` or `{secret: file:PATH}`; the value itself never goes in a spec"));
    }
}

/// The files `adopt` takes over must be where their kind lives: a spec cannot make an apply
/// remove any other file.
fn check_adopt(site: &Located<Site>, out: &mut Vec<Diagnostic>) {
    use super::adopt::{AdoptKind, path_problem};
    let Some(adopt) = &site.item.spec.adopt else {
        return;
    };
    let lists: [(&str, AdoptKind, Vec<&str>); 4] = [
        (
            "vhosts",
            AdoptKind::Vhost,
            adopt.vhosts.iter().map(String::as_str).collect(),
        ),
        (
            "pools",
            AdoptKind::Pool,
            adopt.pools.iter().map(String::as_str).collect(),
        ),
        (
            "programs",
            AdoptKind::Program,
            adopt.programs.iter().map(String::as_str).collect(),
        ),
        (
            "crons",
            AdoptKind::Cron,
            adopt.crons.iter().map(|c| c.file.as_str()).collect(),
        ),
    ];
    for (field, kind, paths) in lists {
        for (index, path) in paths.into_iter().enumerate() {
            let Some(message) = path_problem(kind, path) else {
                continue;
            };
            let index = index.to_string();
            let mut pointer = vec!["spec", "adopt", field, index.as_str()];
            if kind == AdoptKind::Cron {
                pointer.push("file");
            }
            out.push(error(site, &pointer, false, message).hint(
                "`siteward discover` writes this section; list only the files that served this site",
            ));
        }
    }
}

fn check_relative_path_field(
    site: &Located<Site>,
    pointer: &[&str],
    path: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(path) = path else { return };
    if let Err(message) = check_relative_path(path) {
        out.push(
            error(site, pointer, false, format!("path `{path}` {message}")).hint(
                "paths are relative to the site, like `storage/app/public`, and stay inside it",
            ),
        );
    }
}

/// Sites sharing a server must not share a domain, a user or a database.
fn shared_across_sites(sites: &[Located<Site>], out: &mut Vec<Diagnostic>) {
    let mut domains: BTreeMap<String, &Located<Site>> = BTreeMap::new();
    for site in sites {
        let spec = &site.item.spec;
        let names = std::iter::once(&spec.domain).chain(spec.aliases.iter());
        for (index, name) in names.enumerate() {
            let key = name.to_lowercase();
            let pointer: Vec<String> = if index == 0 {
                vec!["domain".into()]
            } else {
                vec!["aliases".into(), (index - 1).to_string()]
            };
            let pointer: Vec<&str> = std::iter::once("spec")
                .chain(pointer.iter().map(String::as_str))
                .collect();
            if let Some(other) = domains.get(&key) {
                if other.item.name != site.item.name {
                    out.push(
                        error(
                            site,
                            &pointer,
                            false,
                            format!("`{name}` is also served by site `{}`", other.item.name),
                        )
                        .hint(format!(
                            "a host name belongs to one site; see {}",
                            place(other, &["spec", "domain"])
                        )),
                    );
                }
            } else {
                domains.insert(key, site);
            }
        }
    }
    let mut users: HashMap<(&str, &str), &Located<Site>> = HashMap::new();
    for site in sites {
        let key = (site.item.spec.server.as_str(), site.item.spec.user.as_str());
        if let Some(other) = users.insert(key, site) {
            out.push(
                error(
                    site,
                    &["spec", "user"],
                    false,
                    format!(
                        "user `{}` is also used by site `{}` on server `{}`",
                        key.1, other.item.name, key.0
                    ),
                )
                .hint("each site on a server needs its own Linux user"),
            );
        }
    }
}

/// Checks a host name (RFC 1123, with an optional leading `*.` wildcard) or an IP address.
pub fn check_host(name: &str) -> Result<(), String> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    let body = name.strip_prefix("*.").unwrap_or(name);
    for label in body.split('.') {
        check_label(label)?;
    }
    Ok(())
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("has an empty label (two dots in a row, or a dot at an end)".into());
    }
    if label.len() > 63 {
        return Err(format!("label `{label}` is longer than 63 characters"));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        let shown = if bad == ' ' {
            "a space".to_owned()
        } else {
            format!("`{bad}`")
        };
        return Err(format!(
            "contains {shown}; host names hold only letters, digits, `-` and dots"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label `{label}` starts or ends with `-`"));
    }
    Ok(())
}

/// Checks a cron schedule: five fields, or one of the macros cron.d knows.
pub fn check_cron_schedule(schedule: &str) -> Result<(), String> {
    let trimmed = schedule.trim();
    if trimmed.starts_with('@') {
        return if CRON_MACROS.contains(&trimmed.to_lowercase().as_str()) {
            Ok(())
        } else {
            Err(format!(
                "unknown macro; the macros are {}",
                CRON_MACROS.join(", ")
            ))
        };
    }
    let fields = trimmed.split_whitespace().count();
    if fields != 5 {
        return Err(format!("it has {fields} fields, cron needs 5"));
    }
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build();
    parser
        .parse(trimmed)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Checks that a path is relative and stays inside the site.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    if path.trim().is_empty() {
        return Err("is empty".into());
    }
    if path.starts_with('/') || path.starts_with('~') {
        return Err("is absolute; it must be relative to the site".into());
    }
    if path.contains('\\') || path.contains('\0') || path.contains('\n') {
        return Err("holds a backslash, NUL or newline".into());
    }
    for component in path.split('/') {
        match component {
            ".." => return Err("leaves the site through `..`".into()),
            "." | "" => return Err("holds an empty or `.` component".into()),
            _ => {}
        }
    }
    Ok(())
}

fn is_php_version(version: &str) -> bool {
    let Some((major, minor)) = version.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.chars().all(|c| c.is_ascii_digit());
    digits(major) && digits(minor) && major.len() == 1
}

fn is_git_ref(value: &str) -> bool {
    !value.is_empty()
        && !value.starts_with('-')
        && !value.contains("..")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
}

/// The position used for a whole document.
pub fn document_start() -> Position {
    Position { line: 1, column: 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_refuse_spaces_and_empty_labels() {
        assert!(check_host("shop.example.com").is_ok());
        assert!(check_host("10.77.1.2").is_ok());
        assert!(check_host("*.example.com").is_ok());
        assert!(
            check_host("shop example.com")
                .unwrap_err()
                .contains("a space")
        );
        assert!(check_host("shop..com").is_err());
        assert!(check_host("-shop.com").is_err());
    }

    #[test]
    fn cron_schedules_accept_fields_and_macros() {
        assert!(check_cron_schedule("* * * * *").is_ok());
        assert!(check_cron_schedule("*/5 2-4 * * MON-FRI").is_ok());
        assert!(check_cron_schedule("@daily").is_ok());
        assert!(check_cron_schedule("@reboot").is_ok());
        assert!(check_cron_schedule("@fortnightly").is_err());
        assert!(check_cron_schedule("61 * * * *").is_err());
        assert!(check_cron_schedule("* * * *").is_err());
        assert!(check_cron_schedule("0 * * * * *").is_err());
    }

    #[test]
    fn relative_paths_stay_inside_the_site() {
        assert!(check_relative_path("storage/app/public").is_ok());
        assert!(check_relative_path("../../etc").is_err());
        assert!(check_relative_path("/var/www").is_err());
        assert!(check_relative_path("storage/../../x").is_err());
        assert!(check_relative_path("~/x").is_err());
    }

    #[test]
    fn php_versions_are_major_dot_minor() {
        assert!(is_php_version("8.2"));
        assert!(is_php_version("7.4"));
        assert!(!is_php_version("8"));
        assert!(!is_php_version("8.2.1"));
        assert!(!is_php_version("latest"));
    }
}
