//! Starting a planned migration from what a plan was made of: the site's spec, the connections to both servers, what the source's probe saw; shared by `siteward apply` and the daemon.

use std::collections::BTreeMap;
use std::time::Duration;

use super::progress::Progress;
use super::run::{Endpoint, MigrationJob, migrate_site};
use crate::apply::SiteOutcome;
use crate::apply::lock::LockOwner;
use crate::observe::ObservedServer;
use crate::plan::SitePlan;
use crate::spec::Loaded;
use crate::spec::secret::ResolvedSecrets;
use crate::spec::server::ServerSpec;
use crate::transport::SshSession;
use crate::transport::ssh::CommandGuard;
use std::sync::Arc;

/// How long one stream of a migration (a database dump, a storage archive) may run.
const STREAM_BOUND: Duration = Duration::from_secs(12 * 3600);

/// What a planned migration needs besides its plan.
pub struct Launch<'a> {
    pub loaded: &'a Loaded,
    pub sessions: &'a BTreeMap<String, SshSession>,
    pub observed: &'a BTreeMap<String, ObservedServer>,
    pub secrets: &'a ResolvedSecrets,
    pub owner: &'a LockOwner,
    pub progress: Progress,
    /// Told each phase as it starts (the daemon's `Progressing` condition).
    pub on_phase: Option<&'a (dyn Fn(&str) + Sync)>,
}

/// Runs (or resumes) the migration of a site to the server of its plan.
pub async fn migrate_planned(launch: &Launch<'_>, site_plan: &SitePlan) -> SiteOutcome {
    let failed = |error: String| SiteOutcome {
        site: site_plan.site.clone(),
        server: site_plan.server.clone(),
        ok: false,
        millis: 0,
        steps: Vec::new(),
        error: Some(error),
        migration: None,
    };
    let Some(migration) = &site_plan.migration else {
        return failed("no migration was planned".into());
    };
    let site = launch
        .loaded
        .sites
        .iter()
        .map(|s| &s.item)
        .find(|s| s.name.as_str() == site_plan.site);
    let sessions = (
        launch.sessions.get(&migration.source),
        launch.sessions.get(&migration.target),
    );
    let specs = (
        server_spec(launch.loaded, &migration.source),
        server_spec(launch.loaded, &migration.target),
    );
    let source_site = launch
        .observed
        .get(&migration.source)
        .and_then(|s| s.sites.get(&site_plan.site))
        .cloned()
        .unwrap_or_default();
    let (Some(site), (Some(source), Some(target)), (Some(source_spec), Some(target_spec))) =
        (site, sessions, specs)
    else {
        return failed("the site's servers are not connected".into());
    };
    let guard = match fence_guard(launch.owner, &site_plan.site) {
        Ok(guard) => guard,
        Err(error) => return failed(error),
    };
    let guarded = |session: &SshSession| match &guard {
        Some(guard) => session.guarded(Arc::clone(guard)),
        None => session.clone(),
    };
    let (source_short, target_short) = (guarded(source), guarded(target));
    let (source_stream, target_stream) = (
        source_short.with_exec_timeout(STREAM_BOUND),
        target_short.with_exec_timeout(STREAM_BOUND),
    );
    let job = MigrationJob {
        site,
        plan: site_plan,
        source: Endpoint {
            name: &migration.source,
            spec: source_spec,
            transport: &source_short,
            streaming: &source_stream,
            locking: source,
        },
        target: Endpoint {
            name: &migration.target,
            spec: target_spec,
            transport: &target_short,
            streaming: &target_stream,
            locking: target,
        },
        source_site: &source_site,
        secrets: launch.secrets,
        owner: launch.owner,
        progress: launch.progress,
        on_phase: launch.on_phase,
    };
    migrate_site(&job).await.0
}

/// For a daemon sharing the sites through leases: what guards each command of the site's
/// migration with the site's fence on its server; `None` for an owner without leases.
fn fence_guard(owner: &LockOwner, site: &str) -> Result<Option<Arc<CommandGuard>>, String> {
    let fence = match owner.fence(site) {
        Ok(Some(fence)) => fence,
        Ok(None) => return Ok(None),
        Err(()) => {
            return Err(format!(
                "this daemon no longer holds the lease of site `{site}`"
            ));
        }
    };
    let (owner, site) = (owner.clone(), site.to_owned());
    Ok(Some(Arc::new(move |command: &str| {
        crate::apply::lock::fenced(&site, &owner, fence, "migration", command)
    })))
}

/// The spec of the server named `name`.
pub fn server_spec<'l>(loaded: &'l Loaded, name: &str) -> Option<&'l ServerSpec> {
    loaded
        .servers
        .iter()
        .find(|s| s.item.name.as_str() == name)
        .map(|s| &s.item.spec)
}
