//! From the raw facts to sites: each nginx server block that serves code is a site; its root,
//! layout, PHP, user, code, `.env`, database, jobs and certificate are found from there.

use std::collections::{BTreeMap, BTreeSet};

use super::answer::{Answer, RootFacts};
use super::nginx::{NginxConfig, ServerBlock};
use super::{Discovery, Found, Item, SecretSource, database, dotenv, fpm, jobs, nginx};
use crate::spec::adopt::{Adopt, AdoptedFrom};
use crate::spec::names::{EnvKey, LinuxUser, ServerName};
use crate::spec::secret::SecretRef;
use crate::spec::site::{
    Deploy, DeployStrategy, DriftPolicy, EnvValue, Migration, SiteSpec, SiteType, Source,
};

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
pub fn discover(server: &str, answer: &Answer, only: &[String]) -> Discovery {
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
        let Some(found) = build_site(&parsed, &group, &mut claimed) else {
            continue;
        };
        if only.is_empty() || only.contains(&found.name) {
            discovery.sites.push(found);
        }
    }
    shared_users(&mut discovery);
    if only.is_empty() {
        discovery
            .items
            .extend(parsed.jobs.unclaimed(&claimed, server));
    }
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

impl Building<'_, '_> {
    fn names(&mut self, group: &Group<'_>, main: &ServerBlock, domain: &str) {
        let at = format!("{}:{}", main.at.file, main.at.line);
        self.found.fact("domain", domain, at.clone());
        let mut aliases: Vec<String> = Vec::new();
        for block in &group.blocks {
            for name in &block.names {
                if name == domain || aliases.contains(name) {
                    continue;
                }
                if usable_name(name) {
                    aliases.push(name.clone());
                } else if name != "_" {
                    let source = format!("{}:{}", block.at.file, block.at.line);
                    self.found.item("server-name", format!("server_name `{name}` (a wildcard or regular expression) is not a host name siteward can serve"), Some(source));
                }
            }
        }
        for block in self
            .parsed
            .nginx
            .servers
            .iter()
            .filter(|b| b.is_redirect_only())
        {
            let Some((_, url, _)) = &block.redirect else {
                continue;
            };
            if redirect_host(url) != Some(domain) {
                continue;
            }
            for name in block.names.iter().map(|n| stripped(n)) {
                if name != domain && !aliases.iter().any(|a| a == name) && usable_name(name) {
                    aliases.push(name.to_owned());
                    let source = format!("{}:{}", block.at.file, block.at.line);
                    self.found.item(
                        "redirect-alias",
                        format!(
                            "{name} redirects to {domain}: siteward serves it as an alias instead"
                        ),
                        Some(source),
                    );
                }
            }
        }
        if !aliases.is_empty() {
            self.found.fact("aliases", aliases.join(", "), at);
        }
        self.found.spec.aliases = aliases;
    }

    fn web(&mut self, group: &Group<'_>, main: &ServerBlock) {
        let Some((web_root, at)) = &main.root else {
            return;
        };
        let source = format!("{}:{}", at.file, at.line);
        self.found.fact("root", web_root, source.clone());
        let base = if self.live.ends_with("/current") {
            self.live.clone()
        } else {
            self.root.clone()
        };
        let relative = web_root
            .trim_end_matches('/')
            .strip_prefix(&base)
            .map(|r| r.trim_start_matches('/').to_owned());
        match relative {
            Some(dir) if !dir.is_empty() => self.found.spec.web_directory = Some(dir),
            Some(_) => {}
            None => self.found.item(
                "web-root",
                format!("nginx serves {web_root}, outside the live code at {base}"),
                Some(source),
            ),
        }
        let Some((socket, at)) = main.fastcgi_pass.first() else {
            self.found.fact(
                "php",
                "none (no fastcgi_pass)",
                format!("{}:{}", main.at.file, main.at.line),
            );
            return;
        };
        self.php(socket, &format!("{}:{}", at.file, at.line));
        let _ = group;
    }

    /// The PHP version behind the socket: the pool that listens on it, else the socket's name.
    fn php(&mut self, socket: &str, source: &str) {
        let socket = normalise_socket(socket);
        let pool = self
            .parsed
            .pools
            .iter()
            .find(|p| p.listen.as_deref().map(normalise_socket) == Some(socket.clone()));
        let version = pool
            .and_then(|p| p.version.clone())
            .or_else(|| version_in(&socket));
        self.found.site_type_php();
        match &version {
            Some(version) => {
                self.found.spec.php = Some(version.clone());
                let from = pool.map_or_else(
                    || source.to_owned(),
                    |p| format!("{}:{}", p.at.file, p.at.line),
                );
                self.found
                    .fact("php", format!("{version} (socket {socket})"), from);
            }
            None => self.found.item(
                "php-version",
                format!("the PHP version behind {socket} is unknown"),
                Some(source.to_owned()),
            ),
        }
        if let Some(pool) = pool {
            if pool.user.as_deref().is_some_and(|u| u != self.facts.owner) {
                self.found.item("pool-user", format!("pool `{}` runs as `{}`, the site's files belong to `{}`: siteward's pool runs as the site user", pool.name, pool.user.as_deref().unwrap_or_default(), self.facts.owner), Some(format!("{}:{}", pool.at.file, pool.at.line)));
            }
            self.adopt_pool(pool);
        }
    }

    /// A pool no other vhost uses is taken over (removed once the vhost uses siteward's).
    fn adopt_pool(&mut self, pool: &fpm::Pool) {
        let listen = pool.listen.as_deref().map(normalise_socket);
        let users = self.parsed.nginx.servers.iter().filter(|b| {
            b.fastcgi_pass
                .iter()
                .any(|(s, _)| Some(normalise_socket(s)) == listen)
                && b.root.as_ref().is_some_and(|(r, _)| {
                    !r.starts_with(&format!("{}/", self.root)) && r != &self.root
                })
        });
        let same_file = self
            .parsed
            .pools
            .iter()
            .filter(|p| p.at.file == pool.at.file)
            .count();
        if users.count() == 0 && same_file == 1 && !pool.at.file.ends_with("/www.conf") {
            if let Some(adopt) = self.found.spec.adopt.as_mut() {
                adopt.pools.push(pool.at.file.clone());
            }
        } else {
            self.found.fact(
                "pool kept",
                format!("`{}` serves other sites too: it stays", pool.name),
                pool.at.file.clone(),
            );
        }
    }

    fn code(&mut self, releases: bool) {
        let laravel = self.laravel(releases);
        if laravel {
            self.found.spec.site_type = SiteType::Laravel;
        }
        if releases {
            self.release_source();
        } else {
            self.git_source();
        }
    }

    fn laravel(&mut self, releases: bool) -> bool {
        let (artisan, lock) = if releases {
            let id = self.parsed.answer.release_artisan.get(&self.root);
            let lock = self.release_file("composer.lock");
            (id.is_some(), lock)
        } else {
            (
                self.facts.has_file("artisan"),
                self.parsed
                    .answer
                    .files
                    .get(&format!("{}/composer.lock", self.root))
                    .cloned(),
            )
        };
        let framework = lock.as_deref().and_then(framework_version);
        match (&framework, artisan) {
            (Some(version), true) => self.found.fact(
                "laravel",
                version.clone(),
                format!("{}/composer.lock", self.live),
            ),
            (None, true) => self.found.fact(
                "laravel",
                "artisan (no laravel/framework in composer.lock)",
                format!("{}/artisan", self.live),
            ),
            _ => {}
        }
        artisan
    }

    fn release_file(&self, name: &str) -> Option<String> {
        let target = self.facts.link("current")?;
        let id = target.trim_end_matches('/').rsplit('/').next()?;
        self.parsed
            .answer
            .files
            .get(&format!("{}/releases/{id}/{name}", self.root))
            .cloned()
    }

    fn git_source(&mut self) {
        let files = &self.parsed.answer.files;
        let git = format!("{}/.git", self.root);
        let Some(config) = files.get(&format!("{git}/config")) else {
            if !self.facts.has_dir(".git") {
                self.found.item("no-source", format!("{} is no git checkout: the spec has no `source`, siteward deploys nothing until one is added", self.root), None);
            }
            return;
        };
        let Some(url) = origin_url(config) else {
            self.found.item(
                "no-source",
                format!("{git}/config names no remote `origin`"),
                Some(format!("{git}/config")),
            );
            return;
        };
        let head = files
            .get(&format!("{git}/HEAD"))
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let source = match head.strip_prefix("ref: refs/heads/") {
            Some(branch) => Source {
                repository: url.clone(),
                branch: Some(branch.to_owned()),
                revision: None,
            },
            None if is_commit(&head) => Source {
                repository: url.clone(),
                branch: None,
                revision: Some(head.clone()),
            },
            None => {
                return self.found.item(
                    "no-source",
                    format!("{git}/HEAD is neither a branch nor a commit"),
                    Some(format!("{git}/HEAD")),
                );
            }
        };
        self.found.fact(
            "source",
            format!(
                "{url} {}",
                source
                    .branch
                    .as_deref()
                    .or(source.revision.as_deref())
                    .unwrap_or_default()
            ),
            format!("{git}/config, {git}/HEAD"),
        );
        self.found.spec.source = Some(source);
    }

    /// Deployer: the mirror in `.dep/repo` names the repository, `releases_log` the branch, the
    /// live release's `REVISION` the commit.
    fn release_source(&mut self) {
        let files = &self.parsed.answer.files;
        let dep = format!("{}/.dep", self.root);
        let url = files
            .get(&format!("{dep}/repo/config"))
            .and_then(|c| origin_url(c));
        let revision = self
            .release_file("REVISION")
            .map(|r| r.trim().to_owned())
            .filter(|r| is_commit(r));
        let branch = files
            .get(&format!("{dep}/releases_log"))
            .and_then(|log| last_target(log));
        self.found.spec.deploy.keep_releases = (self.facts.releases.len() as u32).clamp(5, 100);
        let Some(url) = url else {
            self.found.item(
                "no-source",
                format!(
                    "no repository found for {} (no .dep/repo/config)",
                    self.root
                ),
                None,
            );
            return;
        };
        let source = match (branch, revision) {
            (Some(branch), _) => Source {
                repository: url.clone(),
                branch: Some(branch),
                revision: None,
            },
            (None, Some(revision)) => Source {
                repository: url.clone(),
                branch: None,
                revision: Some(revision),
            },
            (None, None) => {
                return self.found.item(
                    "no-source",
                    "neither the branch nor the live commit of the releases is known",
                    None,
                );
            }
        };
        self.found.fact(
            "source",
            format!(
                "{url} {}",
                source
                    .branch
                    .as_deref()
                    .or(source.revision.as_deref())
                    .unwrap_or_default()
            ),
            format!("{dep}/repo/config, {dep}/releases_log"),
        );
        self.found.spec.source = Some(source);
        if let Some(id) = self.facts.link("current") {
            self.found
                .fact("live release", id, format!("{}/current", self.root));
        }
    }

    fn env_file(&mut self) {
        let path = format!("{}/.env", self.shared);
        let Some(text) = self.parsed.answer.files.get(&path) else {
            if self.found.spec.site_type == SiteType::Laravel {
                self.found.item(
                    "no-env",
                    format!("no readable .env at {path} (missing, or a symlink)"),
                    None,
                );
            }
            return;
        };
        for entry in dotenv::parse(text) {
            let Ok(key) = EnvKey::new(&entry.key) else {
                self.found.item(
                    "env-key",
                    format!("`.env` key `{}` is not one siteward can write", entry.key),
                    Some(format!("{path}:{}", entry.line)),
                );
                continue;
            };
            let value = if dotenv::is_secret(&entry.key, &entry.value) {
                EnvValue::Secret(self.secret(&path, &entry.key))
            } else {
                EnvValue::Text(entry.value.clone())
            };
            self.env.insert(entry.key.clone(), entry.value);
            self.found.spec.env.insert(key, value);
        }
        self.found.fact(
            ".env",
            format!("{} keys", self.found.spec.env.len()),
            path.clone(),
        );
        self.env_path = Some(path);
    }

    /// A reference for the value of `key` in `path`, named after the site (one name a value).
    fn secret(&mut self, path: &str, key: &str) -> SecretRef {
        let name = secret_name(&self.found.name, key);
        if !self.found.secrets.iter().any(|s| s.name == name) {
            self.found.secrets.push(SecretSource {
                name: name.clone(),
                path: path.to_owned(),
                key: key.to_owned(),
            });
        }
        SecretRef {
            secret: format!("env:{name}"),
        }
    }

    fn database(&mut self) {
        let env = self.env.clone();
        let Some(path) = self.env_path.clone() else {
            return;
        };
        let reference = env
            .get("DB_PASSWORD")
            .filter(|p| !p.is_empty())
            .map(|_| self.secret(&path, "DB_PASSWORD"));
        match database::site_database(&self.parsed.databases, &env, reference, &path) {
            Ok(Some((database, facts))) => {
                for (what, value, source) in facts {
                    self.found.fact(what, value, source);
                }
                self.found.spec.database = Some(database);
            }
            Ok(None) => {}
            Err(item) => self.found.items.push(item),
        }
    }

    fn redis(&mut self) {
        let uses = [
            "QUEUE_CONNECTION",
            "CACHE_DRIVER",
            "CACHE_STORE",
            "SESSION_DRIVER",
            "BROADCAST_DRIVER",
            "BROADCAST_CONNECTION",
        ]
        .iter()
        .filter_map(|k| self.env.get(*k).map(|v| (*k, v)))
        .filter(|(_, v)| v.as_str() == "redis")
        .map(|(k, _)| k)
        .collect::<Vec<_>>();
        if !uses.is_empty() {
            self.found.spec.redis = Some(crate::spec::site::RedisRequirement { required: true });
            let source = self.env_path.clone().unwrap_or_default();
            self.found
                .fact("redis", format!("used by {}", uses.join(", ")), source);
        }
    }

    fn storage(&mut self, releases: bool) {
        let paths: Vec<String> = if releases {
            self.facts
                .shared
                .iter()
                .filter(|n| n.as_str() != ".env")
                .cloned()
                .collect()
        } else if self.found.spec.site_type == SiteType::Laravel {
            self.facts
                .storage
                .iter()
                .filter(|p| p.as_str() == "storage/app")
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        if !paths.is_empty() {
            self.found.fact(
                "storage",
                paths.join(", "),
                if releases {
                    format!("{}/shared", self.root)
                } else {
                    self.root.clone()
                },
            );
        }
        self.found.spec.storage = paths;
    }

    fn tls(&mut self, group: &Group<'_>) {
        let https = group.blocks.iter().find(|b| b.serves_https());
        let Some(block) = https else { return };
        let Some((certificate, at)) = &block.ssl_certificate else {
            return;
        };
        let Some((key, _)) = &block.ssl_certificate_key else {
            return;
        };
        let described = self
            .parsed
            .answer
            .certificates
            .get(certificate)
            .map(|d| summary(d))
            .unwrap_or_default();
        self.found.fact(
            "certificate",
            format!("{certificate} {described}"),
            format!("{}:{}", at.file, at.line),
        );
        let domain = self.found.spec.domain.clone();
        let redirect = self.parsed.nginx.servers.iter().any(|b| {
            b.is_redirect_only()
                && !b.serves_https()
                && b.names.iter().any(|n| stripped(n) == domain)
                && b.redirect
                    .as_ref()
                    .is_some_and(|(_, url, _)| url.starts_with("https://"))
        });
        let certificate_ref = self.secret(certificate, "certificate");
        let key_ref = self.secret(key, "key");
        self.found.spec.tls = Some(crate::spec::tls::TlsSpec {
            acme: None,
            certificate: Some(certificate_ref),
            key: Some(key_ref),
            redirect,
            hsts: None,
        });
        self.found.item_if_acme(&described, certificate);
    }

    /// Directives of the vhost that siteward's own vhost does not write.
    fn vhost_leftovers(&mut self, group: &Group<'_>) {
        for block in &group.blocks {
            for directive in block
                .directives
                .iter()
                .filter(|d| !is_stock_file(&d.at.file))
            {
                if !super::output::covered_directive(
                    &directive.name,
                    &directive.args,
                    &directive.context,
                ) {
                    let text = format!("{} {}", directive.name, directive.args.join(" "));
                    let source = format!("{}:{}", directive.at.file, directive.at.line);
                    self.found.item(
                        "nginx-directive",
                        format!("`{}` is not in siteward's vhost", text.trim()),
                        Some(source),
                    );
                }
            }
        }
    }

    /// The files that served the site: the vhost files of its blocks and their twins.
    fn adopt_files(&mut self, group: &Group<'_>) {
        let spec = &self.found.spec;
        let names: BTreeSet<&str> = group
            .blocks
            .iter()
            .flat_map(|b| b.names.iter().map(|n| stripped(n)))
            .chain(std::iter::once(spec.domain.as_str()))
            .chain(spec.aliases.iter().map(String::as_str))
            .collect();
        let mut files: BTreeSet<String> =
            group.blocks.iter().flat_map(|b| block_files(b)).collect();
        for block in &self.parsed.nginx.servers {
            if block.is_redirect_only() && block.names.iter().any(|n| names.contains(stripped(n))) {
                files.extend(block_files(block));
            }
        }
        let enabled_links = super::output::enabled_links(self.parsed.answer, &files);
        if let Some(adopt) = self.found.spec.adopt.as_mut() {
            adopt.from = self.found.panel;
            adopt.vhosts = enabled_links.into_iter().chain(files).collect();
        }
    }
}

/// `.shop.test` (a name and its subdomains) as `shop.test`.
fn stripped(name: &str) -> &str {
    name.strip_prefix('.').unwrap_or(name)
}

/// The host a redirect's URL sends to (`https://shop.test$request_uri` → `shop.test`).
fn redirect_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '$', ':', '?']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|host| !host.is_empty())
}

/// Files the distribution ships (Debian's PHP snippet, the FastCGI parameters): their
/// directives are the standard PHP handling, which siteward's vhost does its own way.
fn is_stock_file(file: &str) -> bool {
    [
        "/etc/nginx/snippets/fastcgi-php.conf",
        "/etc/nginx/fastcgi.conf",
        "/etc/nginx/fastcgi_params",
        "/etc/nginx/mime.types",
    ]
    .contains(&file)
}

fn block_files(block: &ServerBlock) -> Vec<String> {
    let mut files = vec![block.at.file.clone()];
    files.extend(block.directives.iter().map(|d| d.at.file.clone()));
    files.retain(|f| {
        f != "/etc/nginx/nginx.conf"
            && !f.ends_with("fastcgi_params")
            && !f.ends_with("fastcgi.conf")
            && !f.ends_with("mime.types")
            && !f.starts_with("/etc/nginx/snippets/")
    });
    files
}

impl Found {
    fn site_type_php(&mut self) {
        if self.spec.site_type == SiteType::Static {
            self.spec.site_type = SiteType::Php;
        }
    }

    fn item_if_acme(&mut self, described: &str, certificate: &str) {
        if described.contains("Let's Encrypt")
            || described.contains("R3")
            || described.contains("E5")
        {
            self.item("certificate-renewal", format!("{certificate} is renewed by its issuer's client there: the spec carries it as files; switch to `tls.acme` to have siteward renew it"), None);
        }
    }
}

fn summary(openssl: &str) -> String {
    openssl
        .lines()
        .filter(|l| l.starts_with("notAfter=") || l.starts_with("issuer="))
        .collect::<Vec<_>>()
        .join(", ")
}

fn normalise_socket(socket: &str) -> String {
    let path = socket.strip_prefix("unix:").unwrap_or(socket);
    path.strip_prefix("/var/run/")
        .map_or_else(|| path.to_owned(), |rest| format!("/run/{rest}"))
}

fn version_in(socket: &str) -> Option<String> {
    socket.match_indices("php").find_map(|(at, _)| {
        let rest = &socket[at + 3..];
        let version: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        (version.contains('.') && !version.ends_with('.')).then_some(version)
    })
}

fn framework_version(lock: &str) -> Option<String> {
    let mut lines = lock.lines();
    lines.find(|l| l.contains("\"laravel/framework\""))?;
    let version = lines.find(|l| l.contains("\"version\""))?;
    let value = version.split('"').nth(3)?;
    Some(format!("laravel/framework {value}"))
}

/// The `url` of `[remote "origin"]` in a git config.
fn origin_url(config: &str) -> Option<String> {
    let mut in_origin = false;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_origin = line.replace(' ', "") == "[remote\"origin\"]";
            continue;
        }
        if in_origin
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "url"
        {
            return Some(value.trim().to_owned());
        }
    }
    None
}

fn is_commit(text: &str) -> bool {
    text.len() >= 7 && text.len() <= 64 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// The branch of the newest entry of Deployer's `releases_log` (JSON lines), when a branch.
fn last_target(log: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| !l.trim().is_empty())?;
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let target = value.get("target")?.as_str()?;
    (target != "HEAD" && !is_commit(target) && !target.is_empty()).then(|| target.to_owned())
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

    #[test]
    fn sockets_versions_and_git_facts_are_read() {
        assert_eq!(
            normalise_socket("unix:/var/run/php/php8.2-fpm.sock"),
            "/run/php/php8.2-fpm.sock"
        );
        assert_eq!(
            version_in("/run/php/php8.2-fpm-vito.sock").as_deref(),
            Some("8.2")
        );
        assert_eq!(version_in("/run/php/app.sock"), None);
        let config = "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = git://10.77.0.1/app.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n";
        assert_eq!(
            origin_url(config).as_deref(),
            Some("git://10.77.0.1/app.git")
        );
        assert!(is_commit("0123abc") && !is_commit("main"));
        let log = "{\"created_at\":\"2024-01-01T00:00:00+0000\",\"release_name\":\"1\",\"target\":\"HEAD\"}\n{\"release_name\":\"2\",\"target\":\"main\"}\n";
        assert_eq!(last_target(log).as_deref(), Some("main"));
        assert_eq!(
            redirect_host("https://shop.test$request_uri"),
            Some("shop.test")
        );
        assert_eq!(redirect_host("https://$host$request_uri"), None);
        assert_eq!(stripped(".shop.test"), "shop.test");
        let lock =
            "            \"name\": \"laravel/framework\",\n            \"version\": \"v11.9.2\",\n";
        assert_eq!(
            framework_version(lock).as_deref(),
            Some("laravel/framework v11.9.2")
        );
    }
}
