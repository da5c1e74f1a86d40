//! From the raw facts to sites: each nginx server block that serves code is a site; its root,
//! layout, PHP, user, code, `.env`, database, jobs and certificate are found from there.

mod code;
mod web;

use std::collections::BTreeMap;

use super::answer::{Answer, RootFacts};
use super::nginx::{NginxConfig, ServerBlock};
use super::{Discovery, Found, Item, database, fpm, jobs, nginx};
use crate::spec::adopt::{Adopt, AdoptedFrom};
use crate::spec::names::{LinuxUser, ServerName};
use crate::spec::site::{Deploy, DeployStrategy, DriftPolicy, Migration, SiteSpec, SiteType};

/// Everything parsed once per server, shared by its sites.
pub struct Parsed<'a> {
    pub server: &'a str,
    pub answer: &'a Answer,
    pub nginx: NginxConfig,
    pub pools: Vec<fpm::Pool>,
    pub jobs: jobs::ServerJobs,
    pub databases: database::ServerDatabases,
}

/// Reads every site of the answer.
pub fn discover(server: &str, answer: &Answer) -> Discovery {
    let mut discovery = Discovery {
        server: server.to_owned(),
        host: answer.host.clone(),
        sites: Vec::new(),
        items: Vec::new(),
    };
    let Some(dump) = answer.nginx.as_deref() else {
        discovery.items.push(item(
            "no-nginx",
            "nginx is not installed or `nginx -T` failed: no sites to read",
            None,
        ));
        return discovery;
    };
    let config = match nginx::parse(dump) {
        Ok(config) => config,
        Err(error) => {
            discovery.items.push(item(
                "nginx-unreadable",
                format!("nginx's configuration could not be read: {error}"),
                None,
            ));
            return discovery;
        }
    };
    let parsed = Parsed {
        server,
        answer,
        nginx: config,
        pools: pools(answer),
        jobs: jobs::ServerJobs::parse(answer),
        databases: database::ServerDatabases::parse(answer),
    };
    let mut claimed = jobs::Claimed::default();
    for group in group_blocks(&parsed) {
        if let Some(name) = siteward_site(&group) {
            discovery.items.push(item(
                "siteward-site",
                format!("{} is site `{name}` of siteward already (its vhost is siteward's): not written again; its spec lives where it was applied from", group.root),
                None,
            ));
            continue;
        }
        if let Some(found) = build_site(&parsed, &group, &mut claimed) {
            discovery.sites.push(found);
        }
    }
    shared_users(&mut discovery);
    discovery
        .items
        .extend(parsed.jobs.unclaimed(&claimed, server));
    discovery.items.extend(attached_panels(answer));
    discovery
}

fn item(kind: &'static str, message: impl Into<String>, source: Option<String>) -> Item {
    Item {
        kind,
        message: message.into(),
        source,
    }
}

fn pools(answer: &Answer) -> Vec<fpm::Pool> {
    answer
        .pools
        .iter()
        .flat_map(|(path, text)| fpm::parse(path, text))
        .collect()
}

/// The server blocks of one site: those sharing its site root.
pub struct Group<'a> {
    pub root: String,
    pub web_root: String,
    pub blocks: Vec<&'a ServerBlock>,
}

fn group_blocks<'a>(parsed: &'a Parsed<'_>) -> Vec<Group<'a>> {
    let mut groups: BTreeMap<String, Group<'a>> = BTreeMap::new();
    for block in &parsed.nginx.servers {
        let Some((web_root, _)) = &block.root else {
            continue;
        };
        if block.is_redirect_only() {
            continue;
        }
        let Some(root) = site_root(parsed.answer, web_root) else {
            continue;
        };
        groups
            .entry(root.clone())
            .or_insert_with(|| Group {
                root,
                web_root: web_root.clone(),
                blocks: Vec::new(),
            })
            .blocks
            .push(block);
    }
    groups.into_values().collect()
}

/// The site a group's vhost says siteward manages (`/etc/nginx/conf.d/siteward-<site>.conf`).
fn siteward_site(group: &Group<'_>) -> Option<String> {
    group.blocks.iter().find_map(|block| {
        let rest = block.at.file.strip_prefix("/etc/nginx/conf.d/siteward-")?;
        rest.strip_suffix(".conf").map(str::to_owned)
    })
}

/// Whether a file is one siteward writes (never listed for a takeover).
pub fn is_siteward_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("siteward-")
}

/// The highest candidate directory above (or at) the web root that looks like a site.
fn site_root(answer: &Answer, web_root: &str) -> Option<String> {
    let web_root = web_root.trim_end_matches('/');
    answer
        .roots
        .iter()
        .filter(|(dir, facts)| {
            (web_root == dir.as_str() || web_root.starts_with(&format!("{dir}/")))
                && facts.looks_like_site()
        })
        .map(|(dir, _)| dir.clone())
        .min_by_key(String::len)
}

/// A site name from its domain: `shop.example.com` → `shop-example-com`.
pub fn site_name(domain: &str) -> String {
    let name: String = domain
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name.trim_matches('-').to_owned()
}

/// A secret reference's variable name: `SHOP_EXAMPLE_COM_DB_PASSWORD`.
pub fn secret_name(site: &str, key: &str) -> String {
    let mut name: String = format!("{site}_{key}")
        .to_ascii_uppercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// A site under construction, with what it needs to finish.
struct Building<'p, 'a> {
    parsed: &'p Parsed<'a>,
    root: String,
    facts: &'p RootFacts,
    found: Found,
    /// Where the live code is (`root/current` resolved, or the root).
    live: String,
    /// Where `.env` and storage live.
    shared: String,
    env: BTreeMap<String, String>,
    env_path: Option<String>,
}

fn build_site(
    parsed: &Parsed<'_>,
    group: &Group<'_>,
    claimed: &mut jobs::Claimed,
) -> Option<Found> {
    let facts = parsed.answer.roots.get(&group.root)?;
    let main = main_block(group);
    let domain = main.names.iter().find(|n| usable_name(n))?.clone();
    let name = site_name(&domain);
    let releases = facts
        .link("current")
        .is_some_and(|t| t.trim_end_matches('/').contains("releases/"));
    let (live, shared) = if releases {
        (
            format!("{}/current", group.root),
            format!("{}/shared", group.root),
        )
    } else {
        (group.root.clone(), group.root.clone())
    };
    let user = facts.owner.clone();
    let spec = skeleton(parsed.server, &domain, &user, releases)?;
    let mut building = Building {
        parsed,
        root: group.root.clone(),
        facts,
        found: Found {
            name,
            panel: panel(parsed.answer, &group.root, facts),
            spec,
            facts: Vec::new(),
            items: Vec::new(),
            secrets: Vec::new(),
        },
        live,
        shared,
        env: BTreeMap::new(),
        env_path: None,
    };
    building.names(group, main, &domain);
    building.web(group, main);
    building.code(releases);
    building.env_file();
    building.database();
    building.redis();
    jobs::attach(
        &mut building.found,
        &parsed.jobs,
        &building.root,
        &user,
        claimed,
    );
    building.storage(releases);
    building.tls(group);
    building.vhost_leftovers(group);
    building.adopt_files(group);
    building.deploy_script();
    Some(building.found)
}

/// The block that serves the code: HTTPS first, then the one with PHP.
fn main_block<'a>(group: &Group<'a>) -> &'a ServerBlock {
    group
        .blocks
        .iter()
        .max_by_key(|b| (b.serves_https(), !b.fastcgi_pass.is_empty()))
        .copied()
        .unwrap_or(group.blocks[0])
}

fn usable_name(name: &str) -> bool {
    name != "_"
        && !name.starts_with('~')
        && !name.contains('*')
        && name.contains('.')
        && crate::spec::checks::check_host(name).is_ok()
}

fn skeleton(server: &str, domain: &str, user: &str, releases: bool) -> Option<SiteSpec> {
    Some(SiteSpec {
        server: ServerName::new(server).ok()?,
        site_type: SiteType::Static,
        domain: domain.to_owned(),
        aliases: Vec::new(),
        user: LinuxUser::new(user).ok()?,
        php: None,
        web_directory: None,
        source: None,
        deploy: Deploy {
            strategy: if releases {
                DeployStrategy::Releases
            } else {
                DeployStrategy::InPlace
            },
            ..Deploy::default()
        },
        env: BTreeMap::new(),
        database: None,
        redis: None,
        crons: Vec::new(),
        workers: Vec::new(),
        storage: Vec::new(),
        health: None,
        migration: Migration::default(),
        drift_policy: DriftPolicy::default(),
        laravel: None,
        backup: None,
        tls: None,
        adopt: Some(Adopt::default()),
    })
}

/// Who set the site up, from the marks each tool leaves.
fn panel(answer: &Answer, root: &str, facts: &RootFacts) -> AdoptedFrom {
    let forge = answer
        .panel_dirs
        .iter()
        .any(|d| d == "/etc/nginx/forge-conf" || d == "/home/forge/.forge");
    if root.starts_with("/home/forge/") && forge {
        return AdoptedFrom::Forge;
    }
    if facts.has_dir(".dep") {
        return AdoptedFrom::Deployer;
    }
    let owner_logs = format!("/home/{}/.logs/workers", facts.owner);
    if answer.panel_dirs.contains(&owner_logs) {
        return AdoptedFrom::Vito;
    }
    AdoptedFrom::Manual
}

/// Sites that share a Linux user: siteward gives each its own.
fn shared_users(discovery: &mut Discovery) {
    let mut by_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for site in &discovery.sites {
        by_user
            .entry(site.spec.user.to_string())
            .or_default()
            .push(site.name.clone());
    }
    for (user, names) in by_user.into_iter().filter(|(_, n)| n.len() > 1) {
        let first = names[0].clone();
        for site in discovery
            .sites
            .iter_mut()
            .filter(|s| names[1..].contains(&s.name))
        {
            site.item("shared-user", format!("runs as `{user}` like site `{first}`: siteward gives each site its own user; give this spec another `user` (adopting it then moves it like a migration) or adopt one site at a time with --site"), None);
        }
    }
}

/// A panel that still has a key on the server may rewrite the files siteward takes over.
fn attached_panels(answer: &Answer) -> Vec<Item> {
    let mut out = Vec::new();
    for (file, lines) in &answer.keys {
        for line in lines.lines() {
            let (number, comment) = line.split_once('\t').unwrap_or((line, ""));
            let lower = comment.to_ascii_lowercase();
            let panel = if lower.contains("forge") {
                Some("Laravel Forge")
            } else if lower.contains("vito") {
                Some("VitoDeploy")
            } else if lower.contains("ploi") {
                Some("Ploi")
            } else {
                None
            };
            if let Some(panel) = panel {
                out.push(item("panel-attached", format!("{panel} can still log in (key `{comment}`): detach the server in {panel} or remove the key before adopting, or it may rewrite vhosts and crontabs"), Some(format!("{file}:{number}"))));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_secret_names_come_from_the_domain() {
        assert_eq!(site_name("Shop.Example.com"), "shop-example-com");
        assert_eq!(
            secret_name("shop-example-com", "DB_PASSWORD"),
            "SHOP_EXAMPLE_COM_DB_PASSWORD"
        );
        assert_eq!(secret_name("1shop", "key"), "_1SHOP_KEY");
    }
}
