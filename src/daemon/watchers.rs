//! What triggers reconciles besides time: spec files changing on disk (notify, debounced), and the specs' git remote (fetched every interval, jittered, or at once on a webhook).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::backoff::jittered;
use super::git::{Checkout, Fetched};
use super::queue::Trigger;
use super::reconcile::Daemon;
use super::scheduler::Scheduler;

/// Spec events that follow each other within this are one change.
const QUIET: Duration = Duration::from_millis(300);
/// A change is acted on within this, even while events keep coming.
const AT_MOST: Duration = Duration::from_secs(1);

/// Reloads the specs and queues the sites the change touched; sites the specs dropped are
/// run once more (they are then reported as orphaned), new ones are tracked.
pub fn reload_and_trigger(daemon: &Daemon, scheduler: &Scheduler, trigger: Trigger) {
    let changes = match daemon.specs.reload() {
        Ok(changes) => changes,
        Err(diagnostics) => {
            tracing::error!(
                "the specs are invalid; the last valid ones stay in force:\n{diagnostics}"
            );
            return;
        }
    };
    let snapshot = daemon.specs.current();
    let now = tokio::time::Instant::now();
    {
        let mut queue = scheduler.queue();
        for (site, server) in snapshot.placements() {
            queue.track(site, server, trigger, now);
        }
        for site in &changes.changed {
            queue.trigger(site, trigger, now);
        }
        for site in &changes.removed {
            queue.trigger(site, trigger, now);
        }
    }
    if !changes.changed.is_empty() || !changes.removed.is_empty() {
        tracing::info!(changed = ?changes.changed, removed = ?changes.removed, "the specs changed");
    }
    scheduler.wake();
}

/// Watches the spec paths until `shutdown`: a burst of events becomes one reload once
/// [`QUIET`] passes without another (at most [`AT_MOST`] after the first).
pub async fn watch_files(
    paths: Vec<PathBuf>,
    daemon: Arc<Daemon>,
    scheduler: Arc<Scheduler>,
    shutdown: CancellationToken,
) -> notify::Result<()> {
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let roots = paths.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let touches_specs = |path: &PathBuf| {
            roots
                .iter()
                .any(|root| path.strip_prefix(root).is_ok_and(is_spec_path))
        };
        if let Ok(event) = event
            && changes_content(&event.kind)
            && event.paths.iter().any(touches_specs)
        {
            let _ = events.send(());
        }
    })?;
    for path in &paths {
        watcher.watch(path, RecursiveMode::Recursive)?;
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            event = received.recv() => if event.is_none() { return Ok(()) },
        }
        let first = tokio::time::Instant::now();
        loop {
            let quiet = tokio::time::sleep(QUIET);
            let limit = tokio::time::sleep_until(first + AT_MOST);
            tokio::select! {
                () = quiet => break,
                () = limit => break,
                _ = received.recv() => {}
            }
        }
        reload_and_trigger(&daemon, &scheduler, Trigger::SpecChanged);
    }
}

/// Whether an event can change what the specs say: files made, written, renamed or removed.
/// Reading them is not (inotify reports every open and close, and the reload reads every spec
/// file, so counting reads would reload the specs again and again).
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        // `Any` is what a watcher reports when it cannot tell: counted, to miss nothing.
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Access(access) => matches!(access, AccessKind::Close(AccessMode::Write)),
        EventKind::Other => false,
    }
}

/// A YAML file, or a directory (removed, renamed), outside `.git` and hidden entries; `path`
/// is relative to the watched directory.
fn is_spec_path(path: &Path) -> bool {
    let hidden = path
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
    if hidden {
        return false;
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => true,
        Some(_) => false,
        None => true,
    }
}

/// The specs' git checkout, fetched on its clock or when a webhook asks.
pub struct GitWatch {
    checkout: Checkout,
    now: Notify,
    state: Mutex<GitState>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GitState {
    /// `up-to-date`, `forwarded` or `error`, with when.
    pub last_result: Option<String>,
    pub last_fetch_unix: i64,
    /// Why the checkout is not updated (dirty, diverged, fetch failed).
    pub error: Option<String>,
}

impl GitWatch {
    pub fn new(checkout: Checkout) -> Arc<Self> {
        Arc::new(GitWatch {
            checkout,
            now: Notify::new(),
            state: Mutex::default(),
        })
    }

    /// Asks for a fetch now (a webhook came).
    pub fn fetch_now(&self) {
        self.now.notify_one();
    }

    /// The last fetch's outcome.
    pub fn state(&self) -> GitState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fetches every `interval` (jittered) or when asked, until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        daemon: Arc<Daemon>,
        scheduler: Arc<Scheduler>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(jittered(interval)) => {}
                () = self.now.notified() => {}
            }
            self.fetch(&daemon, &scheduler).await;
        }
    }

    async fn fetch(&self, daemon: &Daemon, scheduler: &Scheduler) {
        let result = self.checkout.fetch_and_forward().await;
        let (word, error) = match &result {
            Ok(Fetched::UpToDate(_)) => ("up-to-date", None),
            Ok(Fetched::Forwarded { from, to }) => {
                tracing::info!(from = %&from[..from.len().min(12)], to = %&to[..to.len().min(12)], "the specs moved forward");
                ("forwarded", None)
            }
            Err(error) => {
                tracing::warn!("the specs' checkout was not updated: {error}");
                ("error", Some(error.to_string()))
            }
        };
        daemon.metrics.git_fetched(word);
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = GitState {
            last_result: Some(word.to_owned()),
            last_fetch_unix: crate::store::now(),
            error,
        };
        if matches!(result, Ok(Fetched::Forwarded { .. })) {
            reload_and_trigger(daemon, scheduler, Trigger::GitCommit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_the_specs_is_not_a_change_and_writing_them_is() {
        use notify::event::{CreateKind, DataChange, ModifyKind, RemoveKind};
        for read in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Other,
        ] {
            assert!(!changes_content(&read), "{read:?}");
        }
        for write in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(changes_content(&write), "{write:?}");
        }
    }

    #[test]
    fn spec_files_and_directories_count_and_git_and_hidden_files_do_not() {
        assert!(is_spec_path(Path::new("sites/shop.yaml")));
        assert!(is_spec_path(Path::new("sites/blog.yml")));
        assert!(is_spec_path(Path::new("sites")));
        assert!(is_spec_path(Path::new("")), "the directory itself");
        assert!(!is_spec_path(Path::new(".git/index.lock")));
        assert!(!is_spec_path(Path::new("sites/.shop.yaml.swp")));
        assert!(!is_spec_path(Path::new("README.md")));
    }
}
