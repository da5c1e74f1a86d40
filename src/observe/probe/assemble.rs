//! From server-wide records to sites: which paths, files, rows and processes belong to which
//! site, following the on-server layout (`crate::layout`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use super::answer::{Answer, EngineRows, Stat};
use crate::layout;
use crate::observe::{
    LockRecord, ObservedBackup, ObservedCertificate, ObservedDatabase, ObservedDatabaseUser,
    ObservedFile, ObservedPath, ObservedProblem, ObservedServer, ObservedSite, PathKind,
    ProbeRequest, SiteProbe, SiteRecord,
};

/// Builds the observed server: every site of the request and every recorded site.
pub(super) fn assemble(mut answer: Answer, request: &ProbeRequest) -> ObservedServer {
    let contents = unpack_contents(&mut answer);
    let names = site_names(&answer, request);
    let owners = FileOwners::new(&names);
    let mut server = ObservedServer {
        hostname: std::mem::take(&mut answer.hostname),
        php: std::mem::take(&mut answer.php),
        services: std::mem::take(&mut answer.services),
        disks: std::mem::take(&mut answer.disks),
        recorded_sites: answer.recorded.clone(),
        ..ObservedServer::default()
    };
    for name in &names {
        let wanted = request.sites.iter().find(|site| &site.name == name);
        let site = observe_site(&mut answer, name, wanted);
        server.sites.insert(name.clone(), site);
    }
    attach_files(&mut server, &answer, &owners, contents);
    attach_processes(&mut server, &mut answer, &owners);
    server.problems = std::mem::take(&mut answer.problems);
    server
}

/// The sites of the request, then the recorded ones.
fn site_names(answer: &Answer, request: &ProbeRequest) -> Vec<String> {
    let mut names: Vec<String> = request.sites.iter().map(|s| s.name.clone()).collect();
    for recorded in &answer.recorded {
        if !names.contains(recorded) {
            names.push(recorded.clone());
        }
    }
    names
}

fn observe_site(answer: &mut Answer, name: &str, wanted: Option<&SiteProbe>) -> ObservedSite {
    let recorded = answer.facts.get(name).and_then(facts_to_probe);
    let recorded = recorded.filter(|facts| wanted.is_none_or(|wanted| !same_layout(facts, wanted)));
    let variants: Vec<SiteProbe> = wanted.cloned().into_iter().chain(recorded).collect();
    let mut site = ObservedSite {
        record: record(answer, name),
        ..ObservedSite::default()
    };
    let Some(primary) = variants.first() else {
        return site;
    };
    let root = layout::site_root(&primary.user, &primary.domain);
    site.user = answer.users.get(&primary.user).cloned();
    site.paths = paths(&answer.stats, &variants);
    site.env = answer
        .env_files
        .contains_key(name)
        .then(|| answer.env.remove(name).unwrap_or_default());
    site.releases = releases(answer, name);
    site.current_release = current_release(&answer.stats, &root);
    site.git = answer.git.remove(name);
    site.source_tip = wanted.and_then(|wanted| source_tip(answer, wanted));
    site.database = database(answer, primary);
    site.database_users = database_users(answer, primary, &variants);
    site.user_crontab_lines = answer.crontabs.get(&primary.user).copied().unwrap_or(0);
    site.health = answer.health.remove(name);
    site.backup = answer.backups.remove(name).map(|facts| ObservedBackup {
        facts,
        server_now: answer.clock,
    });
    for source in ["acme", "files"] {
        let lines = answer
            .certificates
            .remove(&(name.to_owned(), source.to_owned()));
        if let Some(certificate) = lines.and_then(|l| ObservedCertificate::from_openssl(&l)) {
            site.certificates.insert(source.to_owned(), certificate);
        }
    }
    site
}

/// Whether two sets of facts put the site in the same places.
fn same_layout(left: &SiteProbe, right: &SiteProbe) -> bool {
    (
        &left.user,
        &left.domain,
        &left.php,
        &left.database,
        &left.database_users,
        &left.storage,
    ) == (
        &right.user,
        &right.domain,
        &right.php,
        &right.database,
        &right.database_users,
        &right.storage,
    )
}

/// The facts a record keeps (`user`, `domain`, `php`, `dbEngine`, `dbName`, `dbUsers`,
/// `storage`) as the probe reads them; `None` without a user and a domain.
fn facts_to_probe(facts: &BTreeMap<String, String>) -> Option<SiteProbe> {
    let get = |key: &str| facts.get(key).filter(|value| !value.is_empty()).cloned();
    let list = |key: &str| {
        get(key).map_or_else(Vec::new, |value| {
            value
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    };
    Some(SiteProbe {
        name: String::new(),
        user: get("user")?,
        domain: get("domain")?,
        php: get("php"),
        database: get("dbEngine").zip(get("dbName")),
        database_users: list("dbUsers"),
        storage: list("storage"),
        source: None,
        health: None,
        adopted: Vec::new(),
    })
}

fn record(answer: &mut Answer, name: &str) -> Option<SiteRecord> {
    if !answer.recorded.iter().any(|recorded| recorded == name) {
        return None;
    }
    let lock = answer.locks.remove(name).and_then(|lines| {
        let lock = lock_record(&lines);
        if lock.is_none() {
            answer.problems.push(problem(
                name,
                "lock",
                "the lock file is unreadable: missing or non-numeric fields",
            ));
        }
        lock
    });
    Some(SiteRecord {
        facts: answer.facts.remove(name).unwrap_or_default(),
        lock,
        journal: answer.journals.remove(name).unwrap_or_default(),
    })
}

fn lock_record(lines: &BTreeMap<String, String>) -> Option<LockRecord> {
    let number = |key: &str| lines.get(key)?.trim().parse::<u64>().ok();
    Some(LockRecord {
        owner: lines.get("owner")?.clone(),
        machine: lines.get("machine")?.clone(),
        pid: u32::try_from(number("pid")?).ok()?,
        acquired_unix: number("acquired")?,
        expires_unix: number("expires")?,
    })
}

fn problem(site: &str, topic: &str, message: impl Into<String>) -> ObservedProblem {
    ObservedProblem {
        site: Some(site.to_owned()),
        topic: topic.to_owned(),
        message: message.into(),
    }
}

/// The paths of the layout, for every set of facts the site is known by (the spec's and the
/// record's may differ while a change is pending).
fn paths(stats: &BTreeMap<String, Stat>, variants: &[SiteProbe]) -> BTreeMap<String, ObservedPath> {
    let mut paths = BTreeMap::new();
    for facts in variants {
        for path in layout_paths(facts) {
            if let Some(stat) = stats.get(&path) {
                paths.insert(path, observed_path(stat));
            }
        }
    }
    paths
}

fn layout_paths(facts: &SiteProbe) -> Vec<String> {
    let root = layout::site_root(&facts.user, &facts.domain);
    let shared = layout::shared_dir(&root);
    let mut paths = vec![
        root.clone(),
        layout::releases_dir(&root),
        layout::current_link(&root),
        shared.clone(),
        format!("{shared}/.env"),
        format!("{root}/.env"),
    ];
    for storage in &facts.storage {
        paths.push(format!("{shared}/{storage}"));
        paths.push(format!("{root}/{storage}"));
    }
    paths
}

fn observed_path(stat: &Stat) -> ObservedPath {
    ObservedPath {
        kind: stat.kind,
        owner: stat.owner.clone(),
        group: stat.group.clone(),
        mode: stat.mode,
        target: stat.target.clone(),
    }
}

fn releases(answer: &mut Answer, name: &str) -> Vec<crate::observe::ObservedRelease> {
    let mut releases = answer.releases.remove(name).unwrap_or_default();
    for release in &mut releases {
        let key = (name.to_owned(), release.id.clone());
        release.commit = answer.revisions.remove(&key);
        release.bad_fingerprint = answer.bad.remove(&key);
    }
    releases
}

fn current_release(stats: &BTreeMap<String, Stat>, root: &str) -> Option<String> {
    let stat = stats.get(&layout::current_link(root))?;
    let target = stat
        .target
        .as_deref()
        .filter(|_| stat.kind == PathKind::Symlink)?;
    let name = target.trim_end_matches('/').rsplit('/').next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// The commit the spec's branch (or tag) points at, from the repository's `ls-remote` listing.
fn source_tip(answer: &Answer, wanted: &SiteProbe) -> Option<String> {
    let (repository, reference) = wanted.source.as_ref()?;
    let (index, _) = answer.sources.iter().find(|(_, url)| *url == repository)?;
    let refs = answer.refs.get(index)?;
    [
        format!("refs/heads/{reference}"),
        format!("refs/tags/{reference}^{{}}"),
        format!("refs/tags/{reference}"),
        reference.clone(),
    ]
    .iter()
    .find_map(|name| refs.get(name).cloned())
}

fn engine_rows<'a>(answer: &'a Answer, engine: &str) -> Option<&'a EngineRows> {
    match engine {
        "mysql" | "mariadb" => Some(&answer.mysql),
        "postgres" => Some(&answer.postgres),
        _ => None,
    }
}

fn database(answer: &Answer, facts: &SiteProbe) -> Option<ObservedDatabase> {
    let (engine, name) = facts.database.as_ref()?;
    let (charset, collation, size) = engine_rows(answer, engine)?.databases.get(name)?;
    Some(ObservedDatabase {
        engine: engine.clone(),
        name: name.clone(),
        charset: charset.clone(),
        collation: collation.clone(),
        size_bytes: *size,
    })
}

/// Users named by any set of facts that exist, with their privileges on the primary database.
fn database_users(
    answer: &Answer,
    primary: &SiteProbe,
    variants: &[SiteProbe],
) -> BTreeMap<String, ObservedDatabaseUser> {
    let mut users = BTreeMap::new();
    let Some((engine, database)) = primary.database.as_ref() else {
        return users;
    };
    let Some(rows) = engine_rows(answer, engine) else {
        return users;
    };
    let names: BTreeSet<&String> = variants.iter().flat_map(|v| &v.database_users).collect();
    for name in names {
        let Some(verifier) = rows.users.get(name) else {
            continue;
        };
        let user = ObservedDatabaseUser {
            name: name.clone(),
            privileges: privileges(rows, engine, name, database),
            password_verifier: verifier.clone(),
        };
        users.insert(name.clone(), user);
    }
    users
}

fn privileges(rows: &EngineRows, engine: &str, user: &str, database: &str) -> Vec<String> {
    let mysql = engine != "postgres";
    let matches = |(grantee, schema, _): &&(String, String, String)| {
        if mysql {
            mysql_grantee(grantee) == Some(user) && mysql_schema(schema) == database
        } else {
            grantee == user && schema == database
        }
    };
    let set: BTreeSet<String> = rows
        .grants
        .iter()
        .filter(matches)
        .map(|(_, _, privilege)| privilege.to_ascii_uppercase())
        .collect();
    set.into_iter().collect()
}

/// `'shop'@'localhost'` → `shop`; other hosts do not count.
fn mysql_grantee(grantee: &str) -> Option<&str> {
    let (user, host) = grantee.rsplit_once('@')?;
    let user = user.strip_prefix('\'')?.strip_suffix('\'')?;
    (host == "'localhost'").then_some(user)
}

/// A grant's `TABLE_SCHEMA` as `mysql --batch` prints it: the batch escapes undone, then the
/// `LIKE` escapes of `GRANT … ON shop\_db.*`.
fn mysql_schema(schema: &str) -> String {
    let batch = unescape(
        schema,
        &[('\\', '\\'), ('t', '\t'), ('n', '\n'), ('0', '\0')],
    );
    unescape(&batch, &[('_', '_'), ('%', '%'), ('\\', '\\')])
}

/// Replaces `\x` by the character `pairs` maps `x` to; other backslashes stay.
fn unescape(text: &str, pairs: &[(char, char)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let mapped = (c == '\\')
            .then(|| chars.clone().next())
            .flatten()
            .and_then(|next| pairs.iter().find(|(from, _)| *from == next));
        match mapped {
            Some((_, to)) => {
                chars.next();
                out.push(*to);
            }
            None => out.push(c),
        }
    }
    out
}

/// Which site a managed file or a supervisor program belongs to: the candidate name is read
/// off the path by the layout and looked up, so that attaching a server's files costs the same
/// for 10 sites as for 1,000 (comparing each file with every site's paths made the daemon's
/// per-site runs on a server of 250 sites spend their time formatting paths).
struct FileOwners<'a> {
    names: HashMap<&'a str, &'a String>,
}

impl<'a> FileOwners<'a> {
    fn new(names: &'a [String]) -> Self {
        FileOwners {
            names: names.iter().map(|name| (name.as_str(), name)).collect(),
        }
    }

    fn named(&self, candidate: &str) -> Option<&'a String> {
        self.names.get(candidate).copied()
    }

    /// The owner of `/etc/…` managed files by their layout name.
    fn of_path(&self, path: &str) -> Option<&'a String> {
        if let Some(program) = path
            .strip_prefix("/etc/supervisor/conf.d/")
            .and_then(|file| file.strip_suffix(".conf"))
        {
            return self.of_program(program);
        }
        let candidates = [
            backup_file_site(path),
            tls_file_site(path),
            path.strip_prefix("/etc/nginx/conf.d/siteward-")
                .and_then(|rest| rest.strip_suffix(".conf")),
            path.strip_prefix("/etc/cron.d/siteward-"),
            pool_file_site(path),
        ];
        candidates
            .into_iter()
            .flatten()
            .filter_map(|candidate| self.named(candidate))
            .find(|name| {
                layout::backup_owner(path, std::slice::from_ref(*name)).is_some()
                    || layout::tls_owner(path, std::slice::from_ref(*name)).is_some()
                    || path == layout::vhost_path(name)
                    || path == layout::cron_path(name)
                    || layout::pool_version(path, name).is_some()
            })
    }

    /// The site of program `siteward-<site>-<worker>`: the longest site name that fits, so that
    /// `siteward-shop-eu-horizon` goes to `shop-eu`, not to `shop`.
    fn of_program(&self, program: &str) -> Option<&'a String> {
        let rest = program.strip_prefix("siteward-")?;
        rest.match_indices('-')
            .rev()
            .filter(|(at, _)| rest.len() > at + 1)
            .find_map(|(at, _)| self.named(&rest[..at]))
    }
}

/// The site named by a TLS file's path: `/etc/cron.d/siteward-tls_<site>` or a file directly in
/// `/etc/siteward/tls/<site>/`.
fn tls_file_site(path: &str) -> Option<&str> {
    if let Some(site) = path.strip_prefix("/etc/cron.d/siteward-tls_") {
        return Some(site);
    }
    let (site, file) = path.strip_prefix("/etc/siteward/tls/")?.split_once('/')?;
    (!file.contains('/')).then_some(site)
}

/// The site named by a backup file's path: `/etc/cron.d/siteward-backup_<site>` or a file
/// directly in `/etc/siteward/backup/<site>/`.
fn backup_file_site(path: &str) -> Option<&str> {
    if let Some(site) = path.strip_prefix("/etc/cron.d/siteward-backup_") {
        return Some(site);
    }
    let (site, file) = path
        .strip_prefix("/etc/siteward/backup/")?
        .split_once('/')?;
    (!file.contains('/')).then_some(site)
}

/// The site named by a pool file's path: `/etc/php/<version>/fpm/pool.d/siteward-<site>.conf`.
fn pool_file_site(path: &str) -> Option<&str> {
    let (_, rest) = path.strip_prefix("/etc/php/")?.split_once('/')?;
    rest.strip_prefix("fpm/pool.d/siteward-")?
        .strip_suffix(".conf")
}

/// The contents of the files in the blob (a gzipped tar archive), each checked against its hash. A file
/// that changed while it was observed loses its content only, with a problem.
fn unpack_contents(answer: &mut Answer) -> BTreeMap<String, String> {
    let wanted: BTreeSet<String> = std::mem::take(&mut answer.contents).into_iter().collect();
    let mut contents = BTreeMap::new();
    let mut spoiled = BTreeSet::new();
    if wanted.is_empty() {
        return contents;
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(answer.blob.as_slice()));
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(error) => {
            answer
                .problems
                .push(files_problem("any file", &error.to_string()));
            return contents;
        }
    };
    for entry in entries {
        let (path, bytes) = match read_entry(entry) {
            Ok(Some(file)) => file,
            Ok(None) => continue,
            Err(error) => {
                answer.problems.push(files_problem(
                    "the remaining files",
                    &format!("the archive is cut: {error}"),
                ));
                break;
            }
        };
        if !wanted.contains(&path) {
            continue;
        }
        let digest = hex::encode(Sha256::digest(&bytes));
        let fault = match answer.hashes.get(&path) {
            None => continue,
            Some(sha256) if *sha256 != digest => "it changed while it was observed",
            Some(_) => match String::from_utf8(bytes) {
                Ok(text) => {
                    contents.insert(path, text);
                    continue;
                }
                Err(_) => "it is not UTF-8 text",
            },
        };
        answer.problems.push(files_problem(&path, fault));
        spoiled.insert(path);
    }
    for path in wanted {
        if answer.hashes.contains_key(&path)
            && !contents.contains_key(&path)
            && !spoiled.contains(&path)
        {
            let problem = files_problem(&path, "it went away while it was observed");
            answer.problems.push(problem);
        }
    }
    contents
}

/// The absolute path and bytes of a regular file in the archive; `None` for anything else.
fn read_entry(
    entry: std::io::Result<tar::Entry<'_, impl std::io::Read>>,
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    use std::io::Read as _;
    let mut entry = entry?;
    if !entry.header().entry_type().is_file() {
        return Ok(None);
    }
    let Ok(name) = String::from_utf8(entry.path_bytes().into_owned()) else {
        return Ok(None);
    };
    let path = if name.starts_with('/') {
        name
    } else {
        format!("/{name}")
    };
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes)?;
    Ok(Some((path, bytes)))
}

fn files_problem(path: &str, why: &str) -> ObservedProblem {
    ObservedProblem {
        site: None,
        topic: "files".to_owned(),
        message: format!("no content for {path}: {why}"),
    }
}

/// The files sites' `adopt` sections name, to those sites while they exist (a link too: an
/// enabled vhost is one).
fn attach_adopted(
    server: &mut ObservedServer,
    answer: &Answer,
    contents: &mut BTreeMap<String, String>,
) {
    for (site, path) in &answer.adopted {
        let (Some(stat), Some(observed)) = (answer.stats.get(path), server.sites.get_mut(site))
        else {
            continue;
        };
        let file = ObservedFile {
            sha256: answer.hashes.get(path).cloned().unwrap_or_default(),
            owner: stat.owner.clone(),
            group: stat.group.clone(),
            mode: stat.mode,
            content: contents.get(path).cloned(),
        };
        observed.files.entry(path.clone()).or_insert(file);
    }
}

/// Managed files (vhost, pools, cron file, supervisor programs) and `.env` files, to their sites.
fn attach_files(
    server: &mut ObservedServer,
    answer: &Answer,
    owners: &FileOwners<'_>,
    mut contents: BTreeMap<String, String>,
) {
    for (path, sha256) in &answer.hashes {
        let Some(stat) = answer.stats.get(path) else {
            continue;
        };
        let env_owner = answer.env_files.iter().find(|(_, file)| *file == path);
        let Some(site) = env_owner
            .map(|(site, _)| site)
            .or_else(|| owners.of_path(path))
        else {
            continue;
        };
        let file = ObservedFile {
            sha256: sha256.clone(),
            owner: stat.owner.clone(),
            group: stat.group.clone(),
            mode: stat.mode,
            content: if env_owner.is_some() {
                None
            } else {
                contents.remove(path)
            },
        };
        if let Some(observed) = server.sites.get_mut(site) {
            observed.files.insert(path.clone(), file);
        }
    }
    attach_adopted(server, answer, &mut contents);
    // The TLS snippet is every site's: each HTTPS vhost includes it.
    if let Some(file) = shared_snippet(answer, &contents) {
        for observed in server.sites.values_mut() {
            observed
                .files
                .insert(layout::TLS_SNIPPET.to_owned(), file.clone());
        }
    }
    for path in &answer.unloaded {
        if path == layout::TLS_SNIPPET {
            server
                .sites
                .values_mut()
                .for_each(|observed| _ = observed.unloaded.insert(path.clone()));
            continue;
        }
        let site = owners.of_path(path);
        if let Some(observed) = site.and_then(|site| server.sites.get_mut(site)) {
            observed.unloaded.insert(path.clone());
        }
    }
}

fn shared_snippet(answer: &Answer, contents: &BTreeMap<String, String>) -> Option<ObservedFile> {
    let path = layout::TLS_SNIPPET;
    let stat = answer.stats.get(path)?;
    Some(ObservedFile {
        sha256: answer.hashes.get(path)?.clone(),
        owner: stat.owner.clone(),
        group: stat.group.clone(),
        mode: stat.mode,
        content: contents.get(path).cloned(),
    })
}

fn attach_processes(server: &mut ObservedServer, answer: &mut Answer, owners: &FileOwners<'_>) {
    for process in std::mem::take(&mut answer.processes) {
        let site = owners.of_program(&process.program);
        if let Some(observed) = site.and_then(|site| server.sites.get_mut(site)) {
            observed.processes.push(process);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_managed_file_and_program_goes_to_its_site_by_the_layout() {
        let names: Vec<String> = ["shop", "shop-eu", "blog"].map(String::from).into();
        let owners = FileOwners::new(&names);
        let owner = |path: &str| owners.of_path(path).map(String::as_str);
        assert_eq!(
            owner("/etc/nginx/conf.d/siteward-shop-eu.conf"),
            Some("shop-eu")
        );
        assert_eq!(
            owner("/etc/php/8.3/fpm/pool.d/siteward-blog.conf"),
            Some("blog")
        );
        assert_eq!(owner("/etc/cron.d/siteward-shop"), Some("shop"));
        assert_eq!(owner("/etc/cron.d/siteward-backup_blog"), Some("blog"));
        assert_eq!(owner("/etc/siteward/backup/shop/settings"), Some("shop"));
        assert_eq!(
            owner("/etc/supervisor/conf.d/siteward-shop-eu-horizon.conf"),
            Some("shop-eu")
        );
        assert_eq!(
            owner("/etc/supervisor/conf.d/siteward-shop-queue-high.conf"),
            Some("shop")
        );
        for stranger in [
            "/etc/nginx/conf.d/siteward-wiki.conf",
            "/etc/nginx/conf.d/default.conf",
            "/etc/php/8.3/fpm/pool.d/www.conf",
            "/etc/php/8.3/cli/siteward-blog.conf",
            "/etc/siteward/backup/shop/deeper/file",
            "/etc/supervisor/conf.d/siteward-shop-.conf",
            "/etc/cron.d/siteward-",
        ] {
            assert_eq!(owner(stranger), None, "{stranger}");
        }
    }
}
