//! `siteward watch`: the daemon that keeps every site converged — a scheduler of per-site reconciles fed by spec changes, git fetches, webhooks, periodic resyncs and the API; conditions and metrics; the status page; a clean stop on SIGTERM.

pub mod backoff;
pub mod connections;
pub mod git;
pub mod http;
pub mod leases;
pub mod metrics;
pub mod page;
pub mod placements;
pub mod queue;
pub mod reconcile;
pub mod scheduler;
pub mod specs;
pub mod watchers;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::spec::secret::SecretRef;
use crate::store::StateStore;
use leases::{Identity, Leases};
use queue::{Queue, Trigger};
use reconcile::Daemon;
use scheduler::{Ownership, OwnsEverything, Scheduler};
use specs::Specs;
use watchers::GitWatch;

/// How the daemon runs (the flags of `siteward watch`).
#[derive(Clone, Debug)]
pub struct Settings {
    pub dir: PathBuf,
    pub listen: String,
    pub resync: Duration,
    pub git_interval: Duration,
    pub concurrency: usize,
    pub per_server: usize,
    /// `env:NAME` or `file:PATH` of the API's bearer token.
    pub api_token: Option<String>,
    /// `env:NAME` or `file:PATH` of the webhook secret.
    pub webhook_secret: Option<String>,
    pub state: String,
    /// With a PostgreSQL store: how long a lease of a site lasts unless renewed.
    pub lease: Duration,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the specs in {dir} are invalid:\n{diagnostics}")]
    Specs { dir: String, diagnostics: String },
    #[error("the spec directory {dir} cannot be read")]
    Dir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the state store cannot be opened")]
    Store(#[source] crate::store::StoreError),
    #[error("{0}")]
    Listen(String),
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} `{reference}` cannot be read: {reason}")]
    Secret {
        what: &'static str,
        reference: String,
        reason: String,
    },
    #[error("the spec watcher could not start")]
    Watch(#[source] notify::Error),
}

/// Runs the daemon until SIGTERM or SIGINT (a second one aborts at once).
///
/// # Errors
/// What keeps it from starting: invalid specs, a store that cannot be opened, an address in use.
pub async fn run(settings: Settings) -> Result<(), StartError> {
    // Before anything that takes time: a signal from then on stops the daemon cleanly.
    let signals = Signals::listen();
    let dir = std::fs::canonicalize(&settings.dir).map_err(|source| StartError::Dir {
        dir: settings.dir.display().to_string(),
        source,
    })?;
    let specs = Specs::load(vec![dir.clone()]).map_err(|diagnostics| StartError::Specs {
        dir: dir.display().to_string(),
        diagnostics,
    })?;
    let store = StateStore::open(&settings.state)
        .await
        .map_err(StartError::Store)?;
    let address = http::parse_listen(&settings.listen).map_err(StartError::Listen)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind {
            address: address.to_string(),
            source,
        })?;
    let api_token = read_secret(
        "API token",
        settings.api_token.as_deref(),
        "SITEWARD_API_TOKEN",
    )?;
    let webhook_secret = read_secret(
        "webhook secret",
        settings.webhook_secret.as_deref(),
        "SITEWARD_WEBHOOK_SECRET",
    )?;

    let specs = Arc::new(specs);
    let mut daemon = Daemon::new(Arc::clone(&specs), store.clone(), settings.resync);
    let leases = shared_sites(&daemon, &store, &address.to_string(), settings.lease);
    if let Some(leases) = &leases {
        daemon = daemon.with_leases(Arc::clone(leases));
    }
    let daemon = Arc::new(daemon);
    let ownership: Box<dyn Ownership> = match &leases {
        Some(leases) => Box::new(Arc::clone(leases)),
        None => Box::new(OwnsEverything),
    };
    let scheduler = Scheduler::new(
        Queue::new(settings.concurrency, settings.per_server),
        ownership,
    );
    let shutdown = CancellationToken::new();
    // Leases are kept until the runs in flight have ended, after the shutdown.
    let leases_kept = CancellationToken::new();
    if let Some(leases) = &leases {
        tokio::spawn(Arc::clone(leases).keep(
            store.clone(),
            Arc::clone(&specs),
            Arc::clone(&scheduler),
            leases_kept.clone(),
        ));
    }
    let git = git::Checkout::detect(&dir).await.map(GitWatch::new);
    let heartbeat = Arc::new(AtomicI64::new(crate::store::now()));
    let shared = http::Shared {
        daemon: Arc::clone(&daemon),
        scheduler: Arc::clone(&scheduler),
        git: git.clone(),
        api_token: api_token.map(Arc::new),
        webhook_secret: webhook_secret.map(Arc::new),
        heartbeat: Arc::clone(&heartbeat),
        leases: leases.clone(),
    };
    tracing::info!(%address, specs = %dir.display(), git = git.is_some(), "siteward watch starting");
    let serving = tokio::spawn(http::serve(listener, shared, shutdown.clone()));

    daemon.survey().await;
    track_all(&daemon, &scheduler);
    let watching = tokio::spawn(watchers::watch_files(
        vec![dir],
        Arc::clone(&daemon),
        Arc::clone(&scheduler),
        shutdown.clone(),
    ));
    if let Some(git) = &git {
        tokio::spawn(Arc::clone(git).run(
            settings.git_interval,
            Arc::clone(&daemon),
            Arc::clone(&scheduler),
            shutdown.clone(),
        ));
    }
    if leases.is_some() {
        tokio::spawn(leases::listen(
            store.clone(),
            Arc::clone(&scheduler),
            git.clone(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(beat(Arc::clone(&scheduler), heartbeat, shutdown.clone()));
    tokio::spawn(signals.stop_on_them(shutdown.clone()));
    Arc::clone(&scheduler)
        .run(Arc::clone(&daemon), shutdown.clone())
        .await;

    leases_kept.cancel();
    if let Some(leases) = &leases {
        leases.release_all(&store).await;
    }
    tracing::info!("the runs in flight have ended; closing the connections");
    daemon.connections.close_all().await;
    let _ = serving.await;
    match watching.await {
        Ok(Err(error)) => Err(StartError::Watch(error)),
        _ => Ok(()),
    }
}

/// With a PostgreSQL store, the leases through which this daemon shares the sites with others.
fn shared_sites(
    daemon: &Daemon,
    store: &StateStore,
    listen: &str,
    length: Duration,
) -> Option<Arc<Leases>> {
    store.postgres()?;
    let owner = daemon.owner();
    let me = Identity {
        id: owner.token.clone(),
        machine: owner.machine.clone(),
        pid: owner.pid,
        listen: listen.to_owned(),
    };
    tracing::info!(daemon = %me.id, lease = ?length, "sharing the sites with the other daemons of the store");
    Some(Leases::new(me, length))
}

/// Queues every site the specs name, for a first reconcile now.
fn track_all(daemon: &Daemon, scheduler: &Scheduler) {
    let snapshot = daemon.specs.current();
    let now = tokio::time::Instant::now();
    let mut queue = scheduler.queue();
    for (site, server) in snapshot.placements() {
        queue.track(site, server, Trigger::Start, now);
    }
    drop(queue);
    scheduler.wake();
}

/// Shows the loop alive (`/healthz`): the queue answers within the beat.
async fn beat(scheduler: Arc<Scheduler>, heartbeat: Arc<AtomicI64>, shutdown: CancellationToken) {
    loop {
        drop(scheduler.queue());
        heartbeat.store(crate::store::now(), Ordering::Relaxed);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// SIGTERM and SIGINT, listened for from the start.
struct Signals {
    terminate: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            terminate: signal(SignalKind::terminate()).ok(),
            interrupt: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn next(&mut self) {
        async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => _ = signal.recv().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(&mut self.terminate) => {}
            () = recv(&mut self.interrupt) => {}
        }
    }

    /// The first signal stops new work and lets running steps finish; a second aborts.
    async fn stop_on_them(mut self, shutdown: CancellationToken) {
        if self.terminate.is_none() || self.interrupt.is_none() {
            tracing::error!("cannot listen for SIGTERM and SIGINT");
        }
        self.next().await;
        tracing::warn!(
            "stopping: no new work; running steps finish and release their locks (a second signal aborts)"
        );
        crate::apply::interrupt();
        shutdown.cancel();
        self.next().await;
        tracing::error!("a second signal: aborting now");
        std::process::exit(130);
    }
}

/// A secret given as `env:NAME` / `file:PATH`, else the environment variable `fallback`.
fn read_secret(
    what: &'static str,
    reference: Option<&str>,
    fallback: &str,
) -> Result<Option<String>, StartError> {
    let Some(reference) = reference else {
        return Ok(std::env::var(fallback).ok().filter(|v| !v.is_empty()));
    };
    let parsed = SecretRef {
        secret: reference.to_owned(),
    };
    parsed
        .resolve()
        .map(|secret| Some(secret.expose().to_owned()))
        .map_err(|error| StartError::Secret {
            what,
            reference: reference.to_owned(),
            reason: error.to_string(),
        })
}
