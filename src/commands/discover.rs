//! `siteward discover`: read the sites a server runs into specs, `secrets.env.example` and a
//! report. Read-only on the server: one exec of the discovery probe.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Context, Exit, hinted};
use crate::cli::{DiscoverArgs, OutputFormat};
use crate::discover::{self, Discovery, Item, answer, output, sites};
use crate::observe;
use crate::spec::{self, Server, diagnostic};
use crate::transport::{SshSession, Stdin, Transport as _};

/// Discovers the sites of one server and writes their specs.
pub fn run(_ctx: &Context, args: DiscoverArgs) -> anyhow::Result<Exit> {
    let loaded = spec::load_and_check(&args.specs.specs);
    if !loaded.diagnostics.is_empty() {
        eprint!(
            "{}",
            diagnostic::render_text(&loaded.diagnostics, &loaded.sources)
        );
        return Ok(Exit::Failure);
    }
    let server = find_server(&loaded, &args.server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let answer = runtime.block_on(probe(&server, args.accept_new_host_keys))?;
    let mut discovery = sites::discover(server.name.as_str(), &answer);
    keep_only(&mut discovery, &args.sites)?;
    drop_managed(&mut discovery, &loaded);
    let schema = schema_path(&args.out);
    let files = output::files(&discovery, &server, &php_versions(&answer), &schema);
    write_all(&args.out, &files)?;
    match args.format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&discovery, &args.out))?
        ),
        _ => print!("{}", output::report_text(&discovery, &args.out)),
    }
    Ok(if discovery.round_trips() {
        Exit::Success
    } else {
        Exit::Changes
    })
}

fn find_server(loaded: &spec::Loaded, name: &str) -> anyhow::Result<Server> {
    let servers: Vec<&Server> = loaded.servers.iter().map(|l| &l.item).collect();
    servers
        .iter()
        .find(|s| s.name.as_str() == name)
        .map(|s| (*s).clone())
        .ok_or_else(|| {
            let known: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
            hinted(
                format!("no Server named `{name}` in the specs"),
                if known.is_empty() {
                    "write a Server document for it first (address, user, identity): discovery reads specs' servers only".to_owned()
                } else {
                    format!("servers in the specs: {}", known.join(", "))
                },
            )
        })
}

/// Runs the discovery probe with one exec.
async fn probe(server: &Server, accept_new: bool) -> anyhow::Result<answer::Answer> {
    let target = observe::target(server, accept_new);
    let session = SshSession::connect(&target).await.map_err(|error| {
        let hint = super::observe::ssh_hint(server, &error);
        let message = format!(
            "failed to connect to server `{}` ({})",
            server.name,
            target.endpoint()
        );
        anyhow::Error::new(error).context(super::Hinted { message, hint })
    })?;
    let command = crate::transport::quote::Command::new("sh")
        .arg("-s")
        .render()?;
    let output = session
        .exec(&command, Stdin::Bytes(discover::PROBE_SCRIPT.as_bytes()))
        .await
        .with_context(|| {
            format!(
                "the discovery probe could not run on server `{}`",
                server.name
            )
        });
    session.close().await;
    let output = output?;
    answer::parse(&output.stdout).with_context(|| {
        format!(
            "the discovery probe on server `{}` gave an unusable answer (exit status {}, stderr: {})",
            server.name,
            output.status,
            output.stderr_lossy()
        )
    })
}

fn php_versions(answer: &answer::Answer) -> Vec<String> {
    answer
        .php
        .iter()
        .filter_map(|dir| dir.strip_prefix("/etc/php/"))
        .map(str::to_owned)
        .collect()
}

/// The sites `--site` names (all when none), or an error naming those not found.
fn keep_only(discovery: &mut Discovery, only: &[String]) -> anyhow::Result<()> {
    if only.is_empty() {
        return Ok(());
    }
    let found: Vec<&str> = discovery.sites.iter().map(|s| s.name.as_str()).collect();
    let missing: Vec<&str> = only
        .iter()
        .map(String::as_str)
        .filter(|n| !found.contains(n))
        .collect();
    if !missing.is_empty() {
        return Err(hinted(
            format!(
                "no site named {} on server `{}`",
                missing.join(", "),
                discovery.server
            ),
            format!(
                "sites found there: {}",
                if found.is_empty() {
                    "none".to_owned()
                } else {
                    found.join(", ")
                }
            ),
        ));
    }
    discovery.sites.retain(|s| only.contains(&s.name));
    Ok(())
}

/// Sites whose domain a spec already serves are siteward's: not written again.
fn drop_managed(discovery: &mut Discovery, loaded: &spec::Loaded) {
    let managed: Vec<(String, String)> = loaded
        .sites
        .iter()
        .map(|l| {
            (
                l.item.spec.domain.to_ascii_lowercase(),
                l.item.name.to_string(),
            )
        })
        .collect();
    let mut kept = Vec::new();
    for site in std::mem::take(&mut discovery.sites) {
        let domain = site.spec.domain.to_ascii_lowercase();
        match managed.iter().find(|(d, _)| *d == domain) {
            Some((_, name)) => discovery.items.push(Item {
                kind: "already-managed",
                message: format!(
                    "{domain} is site `{name}` of the specs already: not written again"
                ),
                source: None,
            }),
            None => kept.push(site),
        }
    }
    discovery.sites = kept;
}

/// The schema's path relative to `out/<kind>/`: the nearest `schemas/siteward.json` above the
/// output directory, else the working directory's.
fn schema_path(out: &Path) -> String {
    let base = std::env::current_dir().unwrap_or_default();
    let absolute = base.join(out);
    let found = absolute
        .ancestors()
        .find(|dir| dir.join("schemas/siteward.json").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(base);
    let depth = absolute
        .strip_prefix(&found)
        .map(|rest| rest.components().count())
        .unwrap_or(0);
    format!("{}schemas/siteward.json", "../".repeat(depth))
}

/// Writes every file, or none when one exists already.
fn write_all(out: &Path, files: &[output::OutputFile]) -> anyhow::Result<()> {
    let existing: Vec<PathBuf> = files
        .iter()
        .map(|f| out.join(&f.relative))
        .filter(|p| p.exists())
        .collect();
    if !existing.is_empty() {
        let list: Vec<String> = existing.iter().map(|p| p.display().to_string()).collect();
        return Err(hinted(
            format!(
                "{} would be overwritten: discovery writes into a new directory",
                list.join(", ")
            ),
            "give another `--out` directory, or move these files away first",
        ));
    }
    for file in files {
        let path = out.join(&file.relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        let mut handle = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("failed to create {}", path.display()))?;
        std::io::Write::write_all(&mut handle, file.content.as_bytes())
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(())
}

fn report_json(discovery: &Discovery, out: &Path) -> serde_json::Value {
    serde_json::json!({
        "formatVersion": 1,
        "server": discovery.server,
        "host": discovery.host,
        "out": out.display().to_string(),
        "roundTrips": discovery.round_trips(),
        "sites": discovery.sites.iter().map(|site| serde_json::json!({
            "name": site.name,
            "panel": site.panel,
            "spec": out.join(format!("sites/{}.yaml", site.name)).display().to_string(),
            "facts": site.facts,
            "items": site.items,
            "secrets": site.secrets,
        })).collect::<Vec<_>>(),
        "items": discovery.items,
    })
}
