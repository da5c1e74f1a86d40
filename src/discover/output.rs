//! Discovery's output: one spec per site and the Server spec (minimal, in the spec's field
//! order, each with its `yaml-language-server` line), `secrets.env.example`, and the report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::yaml::{Node, render};
use super::{Discovery, Found};
use crate::spec::secret::SecretRef;
use crate::spec::server::{DatabaseAdmin, Server};
use crate::spec::site::{
    Cron, Database, Deploy, DeployStrategy, EnvValue, SiteSpec, Source, Worker,
};

/// A file to write, relative to the output directory.
pub struct OutputFile {
    pub relative: PathBuf,
    pub content: String,
}

/// Every file of a discovery: `servers/SERVER.yaml`, `sites/SITE.yaml`, `secrets.env.example`.
pub fn files(
    discovery: &Discovery,
    server: &Server,
    php: &[String],
    schema: &str,
) -> Vec<OutputFile> {
    let mut out = vec![OutputFile {
        relative: PathBuf::from(format!("servers/{}.yaml", server.name)),
        content: document(
            &format!("../{schema}"),
            "Server",
            server.name.as_str(),
            server_node(&with_database_admins(server, discovery), php),
        ),
    }];
    for site in &discovery.sites {
        out.push(OutputFile {
            relative: PathBuf::from(format!("sites/{}.yaml", site.name)),
            content: document(
                &format!("../{schema}"),
                "Site",
                &site.name,
                site_node(&site.spec),
            ),
        });
    }
    out.push(OutputFile {
        relative: PathBuf::from("secrets.env.example"),
        content: secrets_example(discovery),
    });
    out
}

fn document(schema: &str, kind: &str, name: &str, spec: Node) -> String {
    let node = Node::map()
        .with("apiVersion", Node::str("siteward.dev/v1"))
        .with("kind", Node::str(kind))
        .with("metadata", Node::map().with("name", Node::str(name)))
        .with("spec", spec);
    format!(
        "# yaml-language-server: $schema={schema}\n{}",
        render(&node)
    )
}

/// `NAME=` lines, each after where its value lives on the server; never a value.
pub fn secrets_example(discovery: &Discovery) -> String {
    let mut out = String::from(
        "# The values of the secret references in the discovered specs: fill each from the file\n\
         # and key named above it (on the server), then export them before `siteward plan`.\n",
    );
    for site in &discovery.sites {
        if site.secrets.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n# site {}", site.name);
        for secret in &site.secrets {
            let _ = writeln!(
                out,
                "# {}:{} {}\n{}=",
                discovery.server, secret.path, secret.key, secret.name
            );
        }
    }
    out
}

fn secret(reference: &SecretRef) -> Node {
    Node::map().with("secret", Node::str(reference.secret.as_str()))
}

/// A Site spec with its defaults left out.
pub fn site_node(spec: &SiteSpec) -> Node {
    Node::map()
        .with("server", Node::str(spec.server.as_str()))
        .with("type", Node::str(site_type(spec)))
        .with("domain", Node::str(spec.domain.as_str()))
        .with_some(
            "aliases",
            (!spec.aliases.is_empty()).then(|| Node::strs(&spec.aliases)),
        )
        .with("user", Node::str(spec.user.as_str()))
        .with_some("php", spec.php.as_deref().map(Node::str))
        .with_some("webDirectory", spec.web_directory.as_deref().map(Node::str))
        .with_some("source", spec.source.as_ref().map(source_node))
        .with_some("deploy", deploy_node(&spec.deploy))
        .with_some("env", (!spec.env.is_empty()).then(|| env_node(spec)))
        .with_some("database", spec.database.as_ref().map(database_node))
        .with_some(
            "redis",
            spec.redis
                .as_ref()
                .filter(|r| r.required)
                .map(|_| Node::map().with("required", Node::Bool(true))),
        )
        .with_some(
            "crons",
            (!spec.crons.is_empty()).then(|| Node::Seq(spec.crons.iter().map(cron_node).collect())),
        )
        .with_some(
            "workers",
            (!spec.workers.is_empty())
                .then(|| Node::Seq(spec.workers.iter().map(worker_node).collect())),
        )
        .with_some(
            "storage",
            (!spec.storage.is_empty()).then(|| Node::strs(&spec.storage)),
        )
        .with_some(
            "laravel",
            spec.laravel
                .as_ref()
                .filter(|l| !l.scheduler)
                .map(|_| Node::map().with("scheduler", Node::Bool(false))),
        )
        .with_some("tls", spec.tls.as_ref().map(tls_node))
        .with_some("adopt", spec.adopt.as_ref().map(adopt_node))
}

fn site_type(spec: &SiteSpec) -> &'static str {
    match spec.site_type {
        crate::spec::site::SiteType::Laravel => "laravel",
        crate::spec::site::SiteType::Php => "php",
        crate::spec::site::SiteType::Static => "static",
    }
}

fn source_node(source: &Source) -> Node {
    Node::map()
        .with("repository", Node::str(source.repository.as_str()))
        .with_some("branch", source.branch.as_deref().map(Node::str))
        .with_some("revision", source.revision.as_deref().map(Node::str))
}

fn deploy_node(deploy: &Deploy) -> Option<Node> {
    let defaults = Deploy::default();
    let mut node = Node::map();
    if deploy.strategy == DeployStrategy::InPlace {
        node = node.with("strategy", Node::str("in-place"));
    }
    if deploy.keep_releases != defaults.keep_releases {
        node = node.with("keepReleases", Node::Int(u64::from(deploy.keep_releases)));
    }
    node = node.with_some("script", deploy.script.as_deref().map(Node::str));
    (node != Node::map()).then_some(node)
}

fn env_node(spec: &SiteSpec) -> Node {
    let mut node = Node::map();
    for (key, value) in &spec.env {
        let value = match value {
            EnvValue::Secret(reference) => secret(reference),
            EnvValue::Text(text) => Node::str(text.as_str()),
            EnvValue::Number(number) => Node::str(number.to_string()),
            EnvValue::Bool(value) => Node::str(value.to_string()),
        };
        node = node.with(key.as_str(), value);
    }
    node
}

fn database_node(database: &Database) -> Node {
    let engine = match database.engine {
        crate::spec::site::DatabaseEngine::Mysql => "mysql",
        crate::spec::site::DatabaseEngine::Mariadb => "mariadb",
        crate::spec::site::DatabaseEngine::Postgres => "postgres",
    };
    let users = database.users.iter().map(|user| {
        let all = user.privileges == [crate::spec::site::Privilege::All];
        let privileges = user
            .privileges
            .iter()
            .map(|p| {
                serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>();
        Node::map()
            .with("name", Node::str(user.name.as_str()))
            .with("password", secret(&user.password))
            .with_some("privileges", (!all).then(|| Node::strs(&privileges)))
    });
    Node::map()
        .with("engine", Node::str(engine))
        .with("name", Node::str(database.name.as_str()))
        .with_some("charset", database.charset.as_deref().map(Node::str))
        .with_some("collation", database.collation.as_deref().map(Node::str))
        .with_some(
            "users",
            (!database.users.is_empty()).then(|| Node::Seq(users.collect())),
        )
}

fn cron_node(cron: &Cron) -> Node {
    Node::map()
        .with("name", Node::str(cron.name.as_str()))
        .with("schedule", Node::str(cron.schedule.as_str()))
        .with("command", Node::str(cron.command.as_str()))
        .with_some("user", cron.user.as_ref().map(|u| Node::str(u.as_str())))
}

fn worker_node(worker: &Worker) -> Node {
    Node::map()
        .with("name", Node::str(worker.name.as_str()))
        .with("command", Node::str(worker.command.as_str()))
        .with_some(
            "processes",
            (worker.processes != 1).then_some(Node::Int(u64::from(worker.processes))),
        )
        .with_some(
            "stopWaitSeconds",
            (worker.stop_wait_seconds != 60)
                .then_some(Node::Int(u64::from(worker.stop_wait_seconds))),
        )
        .with_some("user", worker.user.as_ref().map(|u| Node::str(u.as_str())))
}

fn tls_node(tls: &crate::spec::tls::TlsSpec) -> Node {
    Node::map()
        .with_some("certificate", tls.certificate.as_ref().map(secret))
        .with_some("key", tls.key.as_ref().map(secret))
        .with_some("redirect", tls.redirect.then_some(Node::Bool(true)))
}

fn adopt_node(adopt: &crate::spec::adopt::Adopt) -> Node {
    let from = serde_json::to_value(adopt.from)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let crons = adopt.crons.iter().map(|cron| {
        Node::map()
            .with("file", Node::str(cron.file.as_str()))
            .with_some("line", cron.line.as_deref().map(Node::str))
    });
    Node::map()
        .with("from", Node::str(from))
        .with_some(
            "vhosts",
            (!adopt.vhosts.is_empty()).then(|| Node::strs(&adopt.vhosts)),
        )
        .with_some(
            "pools",
            (!adopt.pools.is_empty()).then(|| Node::strs(&adopt.pools)),
        )
        .with_some(
            "programs",
            (!adopt.programs.is_empty()).then(|| Node::strs(&adopt.programs)),
        )
        .with_some(
            "crons",
            (!adopt.crons.is_empty()).then(|| Node::Seq(crons.collect())),
        )
}

/// The Server with the database admin sections its sites need (socket and peer authentication
/// as root and postgres, the stock setup) when it has none.
fn with_database_admins(server: &Server, discovery: &Discovery) -> Server {
    use crate::spec::site::DatabaseEngine;
    let mut server = server.clone();
    let engines: Vec<DatabaseEngine> = discovery
        .sites
        .iter()
        .filter_map(|s| s.spec.database.as_ref().map(|d| d.engine))
        .collect();
    let socket = |user: &str| {
        Some(DatabaseAdmin {
            admin_user: user.to_owned(),
            admin_password: None,
        })
    };
    if server.spec.mysql.is_none() && engines.iter().any(|e| *e != DatabaseEngine::Postgres) {
        server.spec.mysql = socket("root");
    }
    if server.spec.postgres.is_none() && engines.contains(&DatabaseEngine::Postgres) {
        server.spec.postgres = socket("postgres");
    }
    server
}

/// A Server spec with its defaults left out, its PHP versions as found.
pub fn server_node(server: &Server, php: &[String]) -> Node {
    let spec = &server.spec;
    let admin = |admin: &DatabaseAdmin| {
        Node::map()
            .with("adminUser", Node::str(admin.admin_user.as_str()))
            .with_some("adminPassword", admin.admin_password.as_ref().map(secret))
    };
    let php = if php.is_empty() {
        spec.php.clone()
    } else {
        php.to_vec()
    };
    Node::map()
        .with("address", Node::str(spec.address.as_str()))
        .with_some(
            "port",
            (spec.port != 22).then_some(Node::Int(u64::from(spec.port))),
        )
        .with_some(
            "user",
            (spec.user != "root").then(|| Node::str(spec.user.as_str())),
        )
        .with_some("identityFile", spec.identity_file.as_deref().map(Node::str))
        .with_some("hostKey", spec.host_key.as_deref().map(Node::str))
        .with_some(
            "knownHostsFile",
            spec.known_hosts_file.as_deref().map(Node::str),
        )
        .with_some("php", (!php.is_empty()).then(|| Node::strs(&php)))
        .with_some("mysql", spec.mysql.as_ref().map(admin))
        .with_some("postgres", spec.postgres.as_ref().map(admin))
        .with_some(
            "redis",
            spec.redis
                .as_ref()
                .map(|r| Node::map().with("url", Node::str(r.url.as_str()))),
        )
        .with_some(
            "keepaliveSeconds",
            spec.keepalive_seconds.map(|s| Node::Int(u64::from(s))),
        )
}

/// Whether a vhost directive is one siteward's own vhost has, or an equivalent: everything
/// else is reported as something the spec cannot express.
pub fn covered_directive(name: &str, args: &[String], _context: &[String]) -> bool {
    const COVERED: &[&str] = &[
        "listen",
        "server_name",
        "root",
        "index",
        "charset",
        "location",
        "try_files",
        "include",
        "fastcgi_pass",
        "fastcgi_split_path_info",
        "fastcgi_index",
        "fastcgi_param",
        "fastcgi_hide_header",
        "deny",
        "allow",
        "return",
        "http2",
        "access_log",
        "error_log",
        "log_not_found",
        "ssl_certificate",
        "ssl_certificate_key",
        "ssl_protocols",
        "ssl_ciphers",
        "ssl_prefer_server_ciphers",
        "ssl_session_cache",
        "ssl_session_timeout",
        "ssl_session_tickets",
        "ssl_dhparam",
        "ssl_stapling",
        "ssl_stapling_verify",
        "ssl_ecdh_curve",
        "ssl",
        "server_tokens",
    ];
    match name {
        "client_max_body_size" => args.first().is_some_and(|v| v.eq_ignore_ascii_case("64m")),
        "error_page" => {
            args.first().is_some_and(|c| c == "404")
                && args.last().is_some_and(|p| p == "/index.php")
        }
        _ => COVERED.contains(&name),
    }
}

/// The files that `sites-enabled` links among `files` point at (removed with the link).
pub fn enabled_links(
    answer: &super::answer::Answer,
    files: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| answer.nginx_links.get(f))
        .filter(|t| t.starts_with("/etc/nginx/") && !files.contains(*t))
        .cloned()
        .collect()
}

/// The report as text: per site what was found and where, and what the spec cannot express.
pub fn report_text(discovery: &Discovery, out: &Path) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "server {} ({}): {} site(s) found",
        discovery.server,
        discovery.host,
        discovery.sites.len()
    );
    for site in &discovery.sites {
        site_report(&mut text, site, out);
    }
    if !discovery.items.is_empty() {
        let _ = writeln!(text, "\nserver-wide:");
        for item in &discovery.items {
            item_line(&mut text, item);
        }
    }
    let _ = writeln!(text, "\nspecs written to {}", out.display());
    text
}

/// `  ! MESSAGE [KIND] (SOURCE)`.
fn item_line(text: &mut String, item: &super::Item) {
    let source = item
        .source
        .as_ref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let _ = writeln!(text, "  ! {} [{}]{source}", item.message, item.kind);
}

fn site_report(text: &mut String, site: &Found, out: &Path) {
    let _ = writeln!(
        text,
        "\nsite {} — set up by {} → {}",
        site.name,
        site.panel.title(),
        out.join(format!("sites/{}.yaml", site.name)).display()
    );
    for fact in &site.facts {
        let _ = writeln!(
            text,
            "  {:<14} {}  ({})",
            fact.what, fact.value, fact.source
        );
    }
    for item in &site.items {
        item_line(text, item);
    }
    if site.items.is_empty() {
        let _ = writeln!(text, "  everything found is in the spec");
    }
}
