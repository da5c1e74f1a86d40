//! Restores: a site's database, storage and `.env` brought back from a backup run, onto its
//! server as it is or onto a new one (provisioned first). Nothing in use changes until the run
//! is staged whole on the server.

use super::remote::Remote;
use super::settings::{BackupSettings, SiteLayout};
use super::snapshots::Run;
use crate::apply::commands::StepContext;
use crate::apply::lock::{self, LockOwner};
use crate::apply::{SiteOutcome, StepOutcome, error_text, run_steps};
use crate::migrate::handover::{self, Maintenance};
use crate::migrate::progress::Progress;
use crate::observe::ObservedSite;
use crate::plan::{ResourceKind, SitePlan, Step};
use crate::resources::{DesiredSite, database, env_file};
use crate::spec::Site;
use crate::spec::secret::ResolvedSecrets;
use crate::spec::server::ServerSpec;
use crate::spec::site::SiteType;
use crate::transport::Transport;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A restore in a plan: the run it brings back, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePlan {
    /// The run's tag (its start, unix seconds).
    pub run: String,
    /// When it was made (RFC 3339).
    pub time: String,
    /// The server it was made on.
    pub from_server: String,
    /// Its snapshots: `3f2a9c1d (database) + 77b0e412 (files)`.
    pub snapshots: String,
    pub bytes: u64,
    /// Why the plan restores.
    pub reason: String,
}

impl RestorePlan {
    /// The plan of restoring `run`.
    pub fn of(run: &Run, reason: impl Into<String>) -> Self {
        RestorePlan {
            run: run.run.clone(),
            time: run.time.clone(),
            from_server: run.server.clone(),
            snapshots: run.label(),
            bytes: run.bytes(),
            reason: reason.into(),
        }
    }

    /// What the plan shows.
    pub fn lines(&self) -> Vec<String> {
        vec![
            self.reason.clone(),
            format!(
                "from the backup of {} on `{}`: {}, {}",
                self.time,
                self.from_server,
                self.snapshots,
                crate::migrate::preflight::human_bytes(self.bytes)
            ),
            "the database is made again from the dump, the storage paths and `.env` are replaced (the spec's keys set on top), after the whole run is staged on the server".to_owned(),
        ]
    }
}

/// The run `wanted` names (a snapshot id of either half), or the latest complete one.
pub fn choose<'r>(runs: &'r [Run], wanted: Option<&str>, with_database: bool) -> Option<&'r Run> {
    match wanted {
        Some(id) => runs.iter().find(|run| run.named_by(id)),
        None => runs.iter().rev().find(|run| run.complete(with_database)),
    }
}

/// Everything a restore needs.
pub struct RestoreJob<'a, T> {
    pub transport: &'a T,
    pub server_name: &'a str,
    pub server: &'a ServerSpec,
    pub site: &'a Site,
    /// The site's plan, with its `restore`.
    pub plan: &'a SitePlan,
    /// What the probe saw of the site on this server.
    pub observed: &'a ObservedSite,
    /// Where the data comes from.
    pub source: Source<'a>,
    /// The site's backups, when it has them (an import needs none).
    pub settings: Option<&'a BackupSettings>,
    pub secrets: &'a ResolvedSecrets,
    pub owner: &'a LockOwner,
    pub progress: Progress,
}

/// Where a restore's data comes from.
pub enum Source<'a> {
    /// A backup run in the site's repository.
    Backup(&'a Run),
    /// A verified bundle's members, on this machine.
    Bundle(&'a BundleData),
}

/// What an import sends: the members' files and the `.env` with its references resolved.
pub struct BundleData {
    pub label: String,
    pub database: Option<std::path::PathBuf>,
    pub storage: Option<std::path::PathBuf>,
    /// The `.env`, secret values in place (it travels on stdin only).
    pub env: crate::spec::secret::Secret,
}

impl Source<'_> {
    fn label(&self) -> String {
        match self {
            Source::Backup(run) => run.label(),
            Source::Bundle(bundle) => bundle.label.clone(),
        }
    }
}

/// Why a restore stopped.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the site's lock could not be taken")]
    Lock(#[source] lock::LockError),
    #[error("the steps before or after the restore failed")]
    Steps(#[source] crate::apply::ApplyError),
    #[error(transparent)]
    Backup(#[from] super::remote::BackupError),
    #[error("the site could not be quiesced or brought back")]
    Handover(#[source] handover::HandoverError),
    #[error("the bundle's member {0} cannot be read")]
    Member(String, #[source] std::io::Error),
}

/// Provisions what the site lacks, restores the run, then deploys and starts what is left.
///
/// # Guarantees
/// The run is staged whole on the server before anything in use changes: a wrong password, an
/// unreachable store or a missing snapshot fails with nothing changed. A site that serves is in
/// maintenance with its jobs paused while its data is replaced, and comes back after.
pub async fn restore_site<T: Transport>(job: &RestoreJob<'_, T>) -> SiteOutcome {
    let started = Instant::now();
    let mut steps = Vec::new();
    let result = locked(job, &mut steps).await;
    let error = result.err().map(|e| job.secrets.scrub(&error_text(&e)));
    SiteOutcome {
        site: job.site.name.to_string(),
        server: job.server_name.to_owned(),
        ok: error.is_none(),
        millis: started.elapsed().as_millis() as u64,
        steps,
        error,
        migration: None,
    }
}

async fn locked<T: Transport>(
    job: &RestoreJob<'_, T>,
    steps: &mut Vec<StepOutcome>,
) -> Result<(), RestoreError> {
    let site = job.site.name.as_str();
    lock::acquire(job.transport, site, job.owner)
        .await
        .map_err(RestoreError::Lock)?;
    let result = restore(job, steps).await;
    if let Err(error) = lock::release(job.transport, site, job.owner).await {
        tracing::warn!(site, "could not release the lock: {error}");
    }
    result
}

const BEFORE: &[ResourceKind] = &[
    ResourceKind::User,
    ResourceKind::Directory,
    ResourceKind::Env,
    ResourceKind::Database,
    ResourceKind::DatabaseUser,
    ResourceKind::FpmPool,
    ResourceKind::Vhost,
];

async fn restore<T: Transport>(
    job: &RestoreJob<'_, T>,
    outcomes: &mut Vec<StepOutcome>,
) -> Result<(), RestoreError> {
    let desired = DesiredSite::new(job.site);
    let layout = SiteLayout::new(job.site, job.server_name, Some(job.server));
    let remote = Remote {
        transport: job.transport,
        server: job.server_name,
        layout: &layout,
        settings: job.settings,
        secrets: job.secrets,
        progress: job.progress,
    };
    run(job, planned(job.plan, BEFORE), outcomes).await?;
    let step = Instant::now();
    let label = job.source.label();
    job.progress
        .say(&format!("restore of {} | staging {label}", job.site.name));
    if let Err(error) = stage(&remote, &job.source, job.progress).await {
        let _ = remote.discard_stage().await;
        return Err(error);
    }
    record(outcomes, format!("stage {label}"), step);
    let live = job.observed.current_release.is_some() || job.observed.git.is_some();
    if live {
        quiesce(job, &desired).await?;
    }
    let step = Instant::now();
    job.progress.say(&format!(
        "restore of {} | putting the data in place",
        job.site.name
    ));
    let applied = remote.apply_stage().await;
    let printed = applied
        .as_ref()
        .map(|text| text.trim().to_owned())
        .unwrap_or_default();
    if let Err(error) = applied {
        if live {
            let _ = wake(job, &desired).await;
        }
        return Err(error.into());
    }
    outcomes.push(StepOutcome {
        what: format!("restore {label}"),
        ok: true,
        millis: step.elapsed().as_millis() as u64,
        queued_millis: 0,
        output: printed,
        error: None,
    });
    run(job, after_restore(&desired, job.secrets), outcomes).await?;
    if live {
        wake(job, &desired).await?;
    }
    let rest = [
        ResourceKind::Code,
        ResourceKind::Cron,
        ResourceKind::Worker,
        ResourceKind::Backup,
        ResourceKind::Record,
    ];
    run(job, planned(job.plan, &rest), outcomes).await
}

/// The data put into the site's staging directory on its server: a backup run restored there,
/// or a bundle's members sent there (bytes, rate and ETA shown as they go).
async fn stage<T: Transport>(
    remote: &Remote<'_, T>,
    source: &Source<'_>,
    progress: Progress,
) -> Result<(), RestoreError> {
    let bundle = match source {
        Source::Backup(run) => return Ok(remote.fetch(run).await?),
        Source::Bundle(bundle) => bundle,
    };
    remote.discard_stage().await?;
    let parts = [
        ("receive-database", "import database", &bundle.database),
        ("receive-files", "import storage", &bundle.storage),
    ];
    for (action, label, path) in parts {
        let Some(path) = path else { continue };
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| RestoreError::Member(path.display().to_string(), e))?;
        let size = file.metadata().await.map(|m| m.len()).ok();
        let meter = std::sync::Arc::new(progress.meter(label, size));
        let counted = Counted {
            inner: file,
            meter: meter.clone(),
        };
        let sent = remote.receive(action, Box::pin(counted)).await;
        drop(meter);
        sent?;
    }
    let env = std::io::Cursor::new(bundle.env.expose().as_bytes().to_vec());
    Ok(remote.receive("receive-env", Box::pin(env)).await?)
}

/// A reader that counts its bytes into a meter.
struct Counted<R> {
    inner: R,
    meter: std::sync::Arc<crate::migrate::progress::Meter>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.meter.add(read as u64);
        polled
    }
}

/// `.env` gets the spec's keys again on top of the restored file, and the database users
/// their grants on the database made again.
fn after_restore(desired: &DesiredSite, secrets: &ResolvedSecrets) -> Vec<Step> {
    let nothing = ObservedSite::default();
    let mut changes = vec![env_file::diff(desired, &nothing, secrets)];
    changes.extend(database::diff_users(desired, &nothing, secrets, &[]));
    changes
        .into_iter()
        .flat_map(|change| change.steps)
        .collect()
}

fn planned(plan: &SitePlan, kinds: &[ResourceKind]) -> Vec<Step> {
    plan.pending()
        .filter(|change| kinds.contains(&change.resource))
        .flat_map(|change| change.steps.iter().cloned())
        .collect()
}

async fn run<T: Transport>(
    job: &RestoreJob<'_, T>,
    steps: Vec<Step>,
    outcomes: &mut Vec<StepOutcome>,
) -> Result<(), RestoreError> {
    let ctx = StepContext {
        fence: None,
        server: job.server,
        secrets: job.secrets,
        wave: None,
    };
    run_steps(job.transport, steps.iter(), &ctx, outcomes)
        .await
        .map_err(RestoreError::Steps)
}

fn record(outcomes: &mut Vec<StepOutcome>, what: String, started: Instant) {
    outcomes.push(StepOutcome {
        what,
        ok: true,
        millis: started.elapsed().as_millis() as u64,
        queued_millis: 0,
        output: String::new(),
        error: None,
    });
}

const CRON_DRAIN: Duration = Duration::from_secs(90);

/// Maintenance on (Laravel) and the site's jobs paused while its data is replaced.
async fn quiesce<T: Transport>(
    job: &RestoreJob<'_, T>,
    desired: &DesiredSite<'_>,
) -> Result<(), RestoreError> {
    if job.site.spec.site_type == SiteType::Laravel {
        handover::maintenance(job.transport, &desired.live, desired.user, Maintenance::On)
            .await
            .map_err(RestoreError::Handover)?;
    }
    let mut users: Vec<String> = desired.crons.iter().map(|c| c.user.clone()).collect();
    users.sort();
    users.dedup();
    handover::pause_jobs(job.transport, desired.name, &users, CRON_DRAIN)
        .await
        .map(|_| ())
        .map_err(RestoreError::Handover)
}

/// The site's jobs resumed and its maintenance ended.
async fn wake<T: Transport>(
    job: &RestoreJob<'_, T>,
    desired: &DesiredSite<'_>,
) -> Result<(), RestoreError> {
    handover::resume_jobs(job.transport, desired.name, handover::START_WAIT)
        .await
        .map_err(RestoreError::Handover)?;
    if job.site.spec.site_type == SiteType::Laravel {
        handover::maintenance(job.transport, &desired.live, desired.user, Maintenance::Off)
            .await
            .map_err(RestoreError::Handover)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::snapshots::Part;

    fn run(tag: &str, with_files: bool) -> Run {
        let part = |id: &str| Part {
            id: format!("{id}{tag}"),
            short_id: format!("{id}{tag}"),
            bytes: Some(10),
            paths: vec!["/shop.sql".into()],
            shared: None,
        };
        Run {
            run: tag.into(),
            time: "2024-05-01T02:17:00Z".into(),
            server: "web-1".into(),
            database: Some(part("aaaa")),
            files: with_files.then(|| part("bbbb")),
        }
    }

    #[test]
    fn the_latest_complete_run_is_chosen_unless_one_is_named() {
        let runs = vec![run("1", true), run("2", true), run("3", false)];
        assert_eq!(choose(&runs, None, true).unwrap().run, "2");
        assert_eq!(choose(&runs, Some("bbbb1"), true).unwrap().run, "1");
        assert_eq!(choose(&runs, Some("cccc"), true), None);
    }

    #[test]
    fn a_restore_plan_names_the_run_its_server_and_size() {
        let plan = RestorePlan::of(&run("2", true), "siteward restore");
        let lines = plan.lines().join("\n");
        assert!(
            lines.contains("on `web-1`: aaaa2 (database) + bbbb2 (files), 20 B"),
            "{lines}"
        );
    }
}
