//! The pipeline `plan` and `apply` share: load specs, resolve secrets, connect, observe, plan.

use super::{Context, hinted};
use crate::observe::{self, ObservedServer};
use crate::plan::Plan;
use crate::plan::build::{PlanInputs, build_plan, migration_sources};
use crate::plan::migration::MoveSizes;
use crate::resources::DesiredSite;
use crate::spec::secret::{ResolvedSecrets, SecretRef};
use crate::spec::site::DeployStrategy;
use crate::spec::site::EnvValue;
use crate::spec::{self, Loaded, Site, diagnostic};
use crate::transport::SshSession;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Loads and checks the specs; invalid specs print their diagnostics and fail.
pub fn load_specs(ctx: &Context, paths: &[PathBuf]) -> anyhow::Result<Loaded> {
    let loaded = spec::load_and_check(paths);
    if loaded.diagnostics.is_empty() {
        return Ok(loaded);
    }
    let text = diagnostic::render_text(&loaded.diagnostics, &loaded.sources);
    eprint!(
        "{}",
        super::validate::colour_diagnostics(ctx.color_stderr, &text)
    );
    Err(hinted(
        "the specs are invalid",
        "fix the errors above; `siteward validate` checks specs without touching servers",
    ))
}

/// The sites to work on: all, or those named with `--site`.
pub fn select_sites<'a>(loaded: &'a Loaded, names: &[String]) -> anyhow::Result<Vec<&'a Site>> {
    let all: Vec<&Site> = loaded.sites.iter().map(|s| &s.item).collect();
    if names.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::new();
    for name in names {
        match all.iter().find(|s| s.name.as_str() == name) {
            Some(site) => out.push(*site),
            None => {
                let known: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
                return Err(hinted(
                    format!("no spec names site `{name}`"),
                    format!("the sites are: {}", known.join(", ")),
                ));
            }
        }
    }
    Ok(out)
}

/// Every secret reference of these sites and of the servers they are on.
pub fn secret_references<'a>(loaded: &'a Loaded, sites: &[&'a Site]) -> Vec<&'a SecretRef> {
    let mut out = Vec::new();
    for site in sites {
        for value in site.spec.env.values() {
            if let EnvValue::Secret(reference) = value {
                out.push(reference);
            }
        }
        if let Some(database) = &site.spec.database {
            out.extend(database.users.iter().map(|u| &u.password));
        }
        if let Some(backup) = &site.spec.backup {
            out.extend(backup.secret_references());
        }
        if let Some(tls) = &site.spec.tls {
            out.extend(tls.secret_references());
        }
    }
    for server in &loaded.servers {
        let spec = &server.item.spec;
        out.extend(
            spec.mysql
                .iter()
                .chain(spec.postgres.iter())
                .filter_map(|a| a.admin_password.as_ref()),
        );
        if let Some(backup) = &spec.backup {
            out.extend(backup.secret_references());
        }
    }
    out
}

/// Resolves the secrets; every missing one is named at once.
pub fn resolve_secrets(loaded: &Loaded, sites: &[&Site]) -> anyhow::Result<ResolvedSecrets> {
    ResolvedSecrets::resolve(secret_references(loaded, sites)).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        hinted(
            format!("{} secret(s) could not be read:\n  {}", list.len(), list.join("\n  ")),
            "export the variables (or create the files) the specs reference before running siteward",
        )
    })
}

/// The servers to observe: every Server in the specs, or those of the selected sites.
pub fn servers_to_observe(loaded: &Loaded, sites: &[&Site], all: bool) -> Vec<String> {
    let mut names: Vec<String> = if all {
        loaded
            .servers
            .iter()
            .map(|s| s.item.name.to_string())
            .collect()
    } else {
        sites.iter().map(|s| s.spec.server.to_string()).collect()
    };
    names.sort();
    names.dedup();
    names
}

/// Connects to every named server, concurrently. A server that does not answer (refused,
/// timed out, cut before the handshake) is left out with why; any other failure (a changed host
/// key, a refused login) fails.
pub async fn connect_all(
    loaded: &Loaded,
    names: &[String],
    accept_new: bool,
) -> anyhow::Result<(BTreeMap<String, SshSession>, BTreeMap<String, String>)> {
    use crate::transport::SshError;
    let mut tasks = tokio::task::JoinSet::new();
    for name in names {
        let server = loaded
            .servers
            .iter()
            .find(|s| s.item.name.as_str() == name)
            .map(|s| s.item.clone());
        let Some(server) = server else { continue };
        let target = observe::connect::target(&server, accept_new);
        let name = name.clone();
        tasks.spawn(async move { (name, SshSession::connect(&target).await) });
    }
    let mut sessions = BTreeMap::new();
    let mut unreachable = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (name, session) = joined.context("a connection task failed")?;
        match session {
            Ok(session) => {
                sessions.insert(name, session);
            }
            Err(
                error @ (SshError::ConnectRefused { .. }
                | SshError::ConnectTimeout { .. }
                | SshError::Connect { .. }
                | SshError::ClosedBeforeHandshake { .. }),
            ) => {
                let why = crate::apply::error_text(&error);
                tracing::warn!(server = %name, "the server does not answer: {why}");
                unreachable.insert(name, why);
            }
            Err(error) => {
                return Err(anyhow::Error::new(error))
                    .with_context(|| format!("failed to connect to server `{name}`"));
            }
        }
    }
    Ok((sessions, unreachable))
}

/// Observes every connected server with one probe each, concurrently.
pub async fn observe_all(
    loaded: &Loaded,
    sessions: &BTreeMap<String, SshSession>,
) -> anyhow::Result<BTreeMap<String, ObservedServer>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (name, session) in sessions {
        let Some(server) = loaded
            .servers
            .iter()
            .find(|s| s.item.name.as_str() == name)
            .map(|s| s.item.clone())
        else {
            continue;
        };
        let request = observe::connect::probe_request(loaded, name);
        let secrets = resolve_admin_secrets(&server);
        let session = session.clone();
        let name = name.clone();
        tasks.spawn(async move {
            let started = std::time::Instant::now();
            let before = session.exec_count();
            let observed = observe::connect::observe(&server, &session, &request, &secrets)
                .await
                .with_context(|| format!("failed to observe server `{name}`"));
            let execs = session.exec_count() - before;
            let millis = started.elapsed().as_millis() as u64;
            tracing::info!(server = %name, execs, millis, sites = request.sites.len(), "observed");
            (name, observed)
        });
    }
    let mut observed = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (name, result) = joined.context("an observation task failed")?;
        observed.insert(name, result?);
    }
    Ok(observed)
}

fn resolve_admin_secrets(server: &crate::spec::Server) -> ResolvedSecrets {
    let spec = &server.spec;
    let references = spec
        .mysql
        .iter()
        .chain(spec.postgres.iter())
        .filter_map(|a| a.admin_password.as_ref());
    ResolvedSecrets::resolve(references).unwrap_or_default()
}

/// Everything a plan was made from, kept for applying it.
pub struct Prepared {
    /// Where the specs were read from.
    pub spec_paths: Vec<PathBuf>,
    pub loaded: Loaded,
    pub secrets: ResolvedSecrets,
    pub sessions: BTreeMap<String, SshSession>,
    pub observed: BTreeMap<String, ObservedServer>,
    /// Servers that did not answer, with why.
    pub unreachable: BTreeMap<String, String>,
    /// The backup run each site to restore gets back (a re-pointed site whose last server
    /// does not answer).
    pub restores: BTreeMap<String, crate::backup::snapshots::Run>,
    pub plan: Plan,
}

/// Options of the pipeline.
pub struct PrepareOptions<'a> {
    pub specs: &'a [PathBuf],
    pub sites: &'a [String],
    pub accept_new_host_keys: bool,
    pub prune: bool,
}

/// Loads, resolves, connects, observes and plans.
pub async fn prepare(ctx: &Context, options: PrepareOptions<'_>) -> anyhow::Result<Prepared> {
    let loaded = load_specs(ctx, options.specs)?;
    let (secrets, server_names) = {
        let sites = select_sites(&loaded, options.sites)?;
        let secrets = resolve_secrets(&loaded, &sites)?;
        // Every server: placement is observed, and a site's old home can be any of them.
        (secrets, servers_to_observe(&loaded, &sites, true))
    };
    let (sessions, unreachable) =
        connect_all(&loaded, &server_names, options.accept_new_host_keys).await?;
    let observed = observe_all(&loaded, &sessions).await?;
    let (storage_sizes, move_facts) = {
        let sites = select_sites(&loaded, options.sites)?;
        tokio::join!(
            measure_migrations(&sites, &observed, &sessions),
            gather_move_facts(&sites, &observed, &sessions)
        )
    };
    let backups = crate::backup::resource::desired_all(&loaded);
    let plan = {
        let sites = select_sites(&loaded, options.sites)?;
        let inputs = PlanInputs {
            sites,
            all_site_names: loaded.sites.iter().map(|s| s.item.name.as_str()).collect(),
            observed: &observed,
            secrets: &secrets,
            prune: options.prune,
            storage_sizes: &storage_sizes,
            move_facts: &move_facts,
            backups: &backups,
            now: chrono::Utc::now().timestamp(),
        };
        build_plan(&inputs)
    };
    let mut plan = plan;
    let restores = {
        let sites = select_sites(&loaded, options.sites)?;
        let lost = crate::backup::lost::LostSites {
            sites: &sites,
            observed: &observed,
            unreachable: &unreachable,
            sessions: &sessions,
            backups: &backups,
            secrets: &secrets,
        };
        lost.plan_restores(&mut plan).await
    };
    annotate_deploys(&mut plan, &sessions).await;
    Ok(Prepared {
        spec_paths: options.specs.to_vec(),
        loaded,
        secrets,
        sessions,
        observed,
        unreachable,
        restores,
        plan,
    })
}

/// Measures the storage each migration will carry, on its source: one round trip per
/// migration (none when nothing moves). A source that does not answer leaves the size unknown.
pub async fn measure_migrations(
    sites: &[&Site],
    observed: &BTreeMap<String, ObservedServer>,
    sessions: &BTreeMap<String, SshSession>,
) -> BTreeMap<String, MoveSizes> {
    let mut sizes = BTreeMap::new();
    for site in sites {
        let [source] = migration_sources(site, observed)[..] else {
            continue;
        };
        let Some(session) = sessions.get(source) else {
            continue;
        };
        let facts = observed
            .get(source)
            .and_then(|s| s.sites.get(site.name.as_str()))
            .and_then(|s| s.record.as_ref())
            .map(|r| r.facts.clone())
            .unwrap_or_default();
        let desired = DesiredSite::new(site);
        let root = facts
            .get("root")
            .cloned()
            .unwrap_or_else(|| desired.root.clone());
        let shared = match site.spec.deploy.strategy {
            DeployStrategy::Releases => crate::layout::shared_dir(&root),
            DeployStrategy::InPlace => root,
        };
        let paths = crate::migrate::run::outermost_paths(&desired.storage);
        match crate::migrate::measure::measure_storage(session, &shared, &paths).await {
            Ok(measured) => {
                sizes.insert(site.name.to_string(), measured);
            }
            Err(error) => tracing::warn!(
                site = %site.name,
                "the storage to move could not be measured: {}",
                crate::apply::error_text(&error)
            ),
        }
    }
    sizes
}

/// What each migration's source and target offer (database servers, `max_allowed_packet`,
/// PHP modules) and what the site's composer files require: one round trip a side, for the
/// sites that move. A side that does not answer leaves the facts unknown (no reason given).
pub async fn gather_move_facts(
    sites: &[&Site],
    observed: &BTreeMap<String, ObservedServer>,
    sessions: &BTreeMap<String, SshSession>,
) -> BTreeMap<String, crate::migrate::compat::MoveFacts> {
    use crate::migrate::compat::{MoveFacts, gather};
    let mut facts = BTreeMap::new();
    for site in sites {
        let [source] = migration_sources(site, observed)[..] else {
            continue;
        };
        let (Some(from), Some(to)) = (
            sessions.get(source),
            sessions.get(site.spec.server.as_str()),
        ) else {
            continue;
        };
        let root = observed
            .get(source)
            .and_then(|s| s.sites.get(site.name.as_str()))
            .and_then(|s| s.record.as_ref())
            .and_then(|r| r.facts.get("root").cloned())
            .unwrap_or_else(|| DesiredSite::new(site).root.clone());
        let code = match site.spec.deploy.strategy {
            DeployStrategy::Releases => format!("{root}/current"),
            DeployStrategy::InPlace => root,
        };
        let php = site.spec.php.as_deref();
        let (source_facts, target_facts) =
            tokio::join!(gather(from, php, Some(&code)), gather(to, php, None));
        match (source_facts, target_facts) {
            (Ok(source), Ok(target)) => {
                facts.insert(site.name.to_string(), MoveFacts { source, target });
            }
            (Err(error), _) | (_, Err(error)) => tracing::warn!(
                site = %site.name,
                "what the servers of the move offer could not be read: {}",
                crate::apply::error_text(&error)
            ),
        }
    }
    facts
}

const SUBJECT: &str = include_str!("../apply/scripts/subject.sh");

/// Adds the subject line of each commit a deploy would check out to the change's reason:
/// one round trip per planned deploy (none when nothing is to be deployed).
async fn annotate_deploys(plan: &mut Plan, sessions: &BTreeMap<String, SshSession>) {
    use crate::plan::Step;
    use crate::transport::{Command, Stdin, Transport};
    for site in &mut plan.sites {
        let Some(session) = sessions.get(&site.server) else {
            continue;
        };
        for change in &mut site.changes {
            let Some(Step::Deploy(deploy)) = change.steps.first() else {
                continue;
            };
            let reference = deploy.branch.clone().unwrap_or_else(|| change.name.clone());
            let command = Command::script(SUBJECT)
                .args([
                    deploy.repository.as_str(),
                    &reference,
                    &deploy.revision,
                    &deploy.user,
                ])
                .render();
            let Ok(command) = command else { continue };
            match session.exec(&command, Stdin::Empty).await {
                Ok(output) if output.success() && !output.stdout.is_empty() => {
                    let subject = output.stdout_lossy().trim().to_owned();
                    change.reason = format!("{}: {subject}", change.reason);
                }
                Ok(output) => {
                    tracing::debug!(site = %site.site, "no commit subject: {}", output.stderr_lossy())
                }
                Err(error) => tracing::debug!(site = %site.site, "no commit subject: {error}"),
            }
        }
    }
}

/// A multi-threaded runtime for a command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}
