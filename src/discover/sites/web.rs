//! A site's web side: its names, root and web directory, PHP (socket → pool → version),
//! certificate, the vhost directives siteward's own vhost lacks, and the files to take over.

use std::collections::BTreeSet;

use super::super::nginx::ServerBlock;
use super::super::{Found, fpm};
use super::{Building, Group, usable_name};
use crate::spec::site::SiteType;

impl Building<'_, '_> {
    pub(super) fn names(&mut self, group: &Group<'_>, main: &ServerBlock, domain: &str) {
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

    pub(super) fn web(&mut self, group: &Group<'_>, main: &ServerBlock) {
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
    pub(super) fn php(&mut self, socket: &str, source: &str) {
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
    pub(super) fn adopt_pool(&mut self, pool: &fpm::Pool) {
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
        if users.count() == 0
            && same_file == 1
            && !pool.at.file.ends_with("/www.conf")
            && !super::is_siteward_file(&pool.at.file)
        {
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

    pub(super) fn tls(&mut self, group: &Group<'_>) {
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
    pub(super) fn vhost_leftovers(&mut self, group: &Group<'_>) {
        for block in &group.blocks {
            for directive in block
                .directives
                .iter()
                .filter(|d| !is_stock_file(&d.at.file))
            {
                if !super::super::output::covered_directive(
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
    pub(super) fn adopt_files(&mut self, group: &Group<'_>) {
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
        let enabled_links = super::super::output::enabled_links(self.parsed.answer, &files);
        if let Some(adopt) = self.found.spec.adopt.as_mut() {
            adopt.from = self.found.panel;
            adopt.vhosts = enabled_links
                .into_iter()
                .chain(files)
                .filter(|f| !super::is_siteward_file(f))
                .collect();
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
    pub(super) fn site_type_php(&mut self) {
        if self.spec.site_type == SiteType::Static {
            self.spec.site_type = SiteType::Php;
        }
    }

    pub(super) fn item_if_acme(&mut self, described: &str, certificate: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_versions_and_redirect_targets_are_read() {
        assert_eq!(
            normalise_socket("unix:/var/run/php/php8.2-fpm.sock"),
            "/run/php/php8.2-fpm.sock"
        );
        assert_eq!(
            version_in("/run/php/php8.2-fpm-vito.sock").as_deref(),
            Some("8.2")
        );
        assert_eq!(version_in("/run/php/app.sock"), None);
        assert_eq!(
            redirect_host("https://shop.test$request_uri"),
            Some("shop.test")
        );
        assert_eq!(redirect_host("https://$host$request_uri"), None);
        assert_eq!(stripped(".shop.test"), "shop.test");
    }
}
