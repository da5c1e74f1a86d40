//! A site's code and data: Laravel, the git source (a checkout's `.git`, Deployer's mirror and
//! releases), `.env` with its secrets as references, the database, Redis, storage, deploys.

use super::super::{SecretSource, database, dotenv};
use super::{Building, secret_name};
use crate::spec::adopt::AdoptedFrom;
use crate::spec::names::EnvKey;
use crate::spec::secret::SecretRef;
use crate::spec::site::{EnvValue, SiteType, Source};

impl Building<'_, '_> {
    pub(super) fn code(&mut self, releases: bool) {
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

    pub(super) fn laravel(&mut self, releases: bool) -> bool {
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

    pub(super) fn release_file(&self, name: &str) -> Option<String> {
        let target = self.facts.link("current")?;
        let id = target.trim_end_matches('/').rsplit('/').next()?;
        self.parsed
            .answer
            .files
            .get(&format!("{}/releases/{id}/{name}", self.root))
            .cloned()
    }

    pub(super) fn git_source(&mut self) {
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
        self.set_source(source, format!("{git}/config, {git}/HEAD"));
    }

    /// The spec's source, and the fact saying where it came from.
    fn set_source(&mut self, source: Source, from: String) {
        let reference = source
            .branch
            .as_deref()
            .or(source.revision.as_deref())
            .unwrap_or_default();
        self.found
            .fact("source", format!("{} {reference}", source.repository), from);
        self.found.spec.source = Some(source);
    }

    /// Deployer: the mirror in `.dep/repo` names the repository, `releases_log` the branch, the
    /// live release's `REVISION` the commit.
    pub(super) fn release_source(&mut self) {
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
        self.set_source(source, format!("{dep}/repo/config, {dep}/releases_log"));
        if let Some(id) = self.facts.link("current") {
            self.found
                .fact("live release", id, format!("{}/current", self.root));
        }
    }

    pub(super) fn env_file(&mut self) {
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
    pub(super) fn secret(&mut self, path: &str, key: &str) -> SecretRef {
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

    pub(super) fn database(&mut self) {
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

    pub(super) fn redis(&mut self) {
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

    pub(super) fn storage(&mut self, releases: bool) {
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

    /// The deploy steps live outside the server: said, so the spec's `deploy.script` gets them.
    pub(super) fn deploy_script(&mut self) {
        let panel = self.found.panel;
        let message = match panel {
            AdoptedFrom::Forge | AdoptedFrom::Vito | AdoptedFrom::Ploi => format!(
                "{} keeps the site's deploy script in its own database, not on the server: copy it into `deploy.script` (siteward runs it in each new release)",
                panel.title()
            ),
            AdoptedFrom::Deployer => "Deployer's recipe (deploy.php, in the repository) is not read: put its steps (migrations, caches) into `deploy.script`".to_owned(),
            AdoptedFrom::Manual => return,
        };
        self.found.item("deploy-script", message, None);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_facts_deployer_logs_and_the_framework_are_read() {
        let config = "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = git://10.77.0.1/app.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n";
        assert_eq!(
            origin_url(config).as_deref(),
            Some("git://10.77.0.1/app.git")
        );
        assert!(is_commit("0123abc") && !is_commit("main"));
        let log = "{\"created_at\":\"2024-01-01T00:00:00+0000\",\"release_name\":\"1\",\"target\":\"HEAD\"}\n{\"release_name\":\"2\",\"target\":\"main\"}\n";
        assert_eq!(last_target(log).as_deref(), Some("main"));
        let lock =
            "            \"name\": \"laravel/framework\",\n            \"version\": \"v11.9.2\",\n";
        assert_eq!(
            framework_version(lock).as_deref(),
            Some("laravel/framework v11.9.2")
        );
    }
}
