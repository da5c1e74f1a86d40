//! The scheduler: starts due reconciles from the queue within its bounds, feeds each one's `Action` back, wakes on triggers and timers, and on shutdown starts nothing new and waits for the runs in flight.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::queue::{Action, Queue, Start, Trigger};

/// What reconciles a site (kube-runtime's `reconcile` and `error_policy`).
pub trait Reconcile: Send + Sync + 'static {
    /// Why a reconcile failed.
    type Error: std::fmt::Display + Send + 'static;

    /// Brings the site to its spec (or reports why not), acting on what it observes now,
    /// never on what triggered it; says when to come back.
    fn reconcile(
        self: Arc<Self>,
        start: Start,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send + 'static;

    /// When to try again after `error` (the site's backoff).
    fn error_policy(&self, start: &Start, error: &Self::Error) -> Action;
}

/// Which sites this daemon may reconcile: all of them for one daemon; several daemons sharing
/// the sites answer from their leases.
pub trait Ownership: Send + Sync + 'static {
    /// Whether this daemon holds `site` now.
    fn owns(&self, site: &str) -> bool;
}

impl<T: Ownership> Ownership for std::sync::Arc<T> {
    fn owns(&self, site: &str) -> bool {
        T::owns(self, site)
    }
}

/// One daemon owns every site.
pub struct OwnsEverything;

impl Ownership for OwnsEverything {
    fn owns(&self, _site: &str) -> bool {
        true
    }
}

/// The queue shared by the scheduler's loop and whoever triggers runs (file watcher, git,
/// HTTP API).
pub struct Scheduler {
    queue: Mutex<Queue>,
    wake: Notify,
    ownership: Box<dyn Ownership>,
}

impl Scheduler {
    /// A scheduler over an empty queue.
    pub fn new(queue: Queue, ownership: Box<dyn Ownership>) -> Arc<Self> {
        Arc::new(Scheduler {
            queue: Mutex::new(queue),
            wake: Notify::new(),
            ownership,
        })
    }

    /// The queue, for reading or changing it; the loop is woken after a change.
    pub fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks for a run of `site` now; whether the site is known.
    pub fn trigger(&self, site: &str, trigger: Trigger) -> bool {
        let known = self.queue().trigger(site, trigger, Instant::now());
        self.wake.notify_one();
        known
    }

    /// Wakes the loop (after `track` or `drop_site`).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until `shutdown`: then starts nothing more and returns once the runs in flight have
    /// ended (each stops at its next safe point).
    pub async fn run<R: Reconcile>(
        self: Arc<Self>,
        reconciler: Arc<R>,
        shutdown: CancellationToken,
    ) {
        let mut running: JoinSet<(Start, Action)> = JoinSet::new();
        loop {
            self.start_due(&reconciler, &mut running);
            // Sites due already but not started wait for a run to end (the bounds), not a timer.
            let now = Instant::now();
            let next = self.queue().next_due().filter(|at| *at > now);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(done) = running.join_next(), if !running.is_empty() => self.done(done),
                () = self.wake.notified() => {}
                () = sleep_until(next) => {}
            }
        }
        while let Some(done) = running.join_next().await {
            self.done(done);
        }
    }

    fn start_due<R: Reconcile>(&self, reconciler: &Arc<R>, running: &mut JoinSet<(Start, Action)>) {
        let starts = self
            .queue()
            .start_due(Instant::now(), |site| self.ownership.owns(site));
        for start in starts {
            let reconciler = Arc::clone(reconciler);
            running.spawn(async move {
                let action = match Arc::clone(&reconciler).reconcile(start.clone()).await {
                    Ok(action) => action,
                    Err(error) => {
                        tracing::warn!(site = %start.site, trigger = start.trigger.word(), "reconcile failed: {error}");
                        reconciler.error_policy(&start, &error)
                    }
                };
                (start, action)
            });
        }
    }

    fn done(&self, joined: Result<(Start, Action), tokio::task::JoinError>) {
        match joined {
            Ok((start, action)) => self.queue().finished(&start.site, action, Instant::now()),
            Err(error) => tracing::error!("a reconcile task ended abnormally: {error}"),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::backoff::Backoff;
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// Records each run's start; sites named `bad-*` fail, others take `work` and succeed.
    #[derive(Default)]
    struct Recorder {
        runs: Mutex<Vec<(String, Trigger, Instant)>>,
        backoff: Mutex<BTreeMap<String, Backoff>>,
        work: Duration,
    }

    impl Recorder {
        fn runs_of(&self, site: &str) -> Vec<(Trigger, Instant)> {
            let runs = self.runs.lock().unwrap();
            runs.iter()
                .filter(|r| r.0 == site)
                .map(|r| (r.1, r.2))
                .collect()
        }
    }

    impl Reconcile for Recorder {
        type Error = String;

        async fn reconcile(self: Arc<Self>, start: Start) -> Result<Action, String> {
            {
                self.runs
                    .lock()
                    .unwrap()
                    .push((start.site.clone(), start.trigger, Instant::now()));
                tokio::time::sleep(self.work).await;
                if start.site.starts_with("bad-") {
                    return Err("unreachable".into());
                }
                self.backoff
                    .lock()
                    .unwrap()
                    .entry(start.site)
                    .or_default()
                    .reset();
                Ok(Action::requeue(Duration::from_secs(600)))
            }
        }

        fn error_policy(&self, start: &Start, _error: &String) -> Action {
            let mut backoff = self.backoff.lock().unwrap();
            Action::retry(backoff.entry(start.site.clone()).or_default().failed(1.0))
        }
    }

    fn scheduler(sites: &[(&str, &str)], concurrency: usize, per_server: usize) -> Arc<Scheduler> {
        let mut queue = Queue::new(concurrency, per_server);
        for (site, server) in sites {
            queue.track(site, server, Trigger::Start, Instant::now());
        }
        Scheduler::new(queue, Box::new(OwnsEverything))
    }

    fn spawn(scheduler: &Arc<Scheduler>, recorder: &Arc<Recorder>) -> CancellationToken {
        let shutdown = CancellationToken::new();
        tokio::spawn(Arc::clone(scheduler).run(Arc::clone(recorder), shutdown.clone()));
        shutdown
    }

    #[tokio::test(start_paused = true)]
    async fn two_triggers_during_one_run_give_exactly_one_more_run() {
        let scheduler = scheduler(&[("shop", "web-1")], 4, 2);
        let recorder = Arc::new(Recorder {
            work: Duration::from_secs(10),
            ..Recorder::default()
        });
        let _shutdown = spawn(&scheduler, &recorder);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(scheduler.trigger("shop", Trigger::SpecChanged));
        assert!(scheduler.trigger("shop", Trigger::Requested));
        tokio::time::sleep(Duration::from_secs(60)).await;
        let runs = recorder.runs_of("shop");
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!(runs[1].0, Trigger::SpecChanged);
        assert!(
            runs[1].1 - runs[0].1 >= Duration::from_secs(10),
            "after the first ended"
        );
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(recorder.runs_of("shop").len(), 3, "then the resync");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_site_backs_off_exponentially_without_holding_up_the_others() {
        let sites = [("bad-a", "down"), ("good-b", "up")];
        let scheduler = scheduler(&sites, 4, 1);
        let recorder = Arc::new(Recorder {
            work: Duration::from_secs(1),
            ..Recorder::default()
        });
        let _shutdown = spawn(&scheduler, &recorder);
        tokio::time::sleep(Duration::from_secs(200)).await;
        let starts: Vec<Instant> = recorder.runs_of("bad-a").iter().map(|r| r.1).collect();
        let gaps: Vec<u64> = starts.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        // Each run takes 1 s; the waits after it are 5, 10, 20, 40, 80 s.
        assert_eq!(gaps, vec![6, 11, 21, 41, 81], "{starts:?}");
        let good = recorder.runs_of("good-b");
        assert_eq!(good.len(), 1, "ran at once and waits for its resync");
        assert!(good[0].1 - starts[0] < Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_the_bound_runs_at_once_and_shutdown_waits_for_them() {
        let sites: Vec<(String, String)> = (0..10)
            .map(|n| (format!("s{n}"), format!("web-{}", n % 2)))
            .collect();
        let sites: Vec<(&str, &str)> = sites
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let scheduler = scheduler(&sites, 3, 2);
        let recorder = Arc::new(Recorder {
            work: Duration::from_secs(10),
            ..Recorder::default()
        });
        let shutdown = CancellationToken::new();
        let looping =
            tokio::spawn(Arc::clone(&scheduler).run(Arc::clone(&recorder), shutdown.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(scheduler.queue().in_flight(), 3);
        assert_eq!(recorder.runs.lock().unwrap().len(), 3);
        shutdown.cancel();
        looping.await.unwrap();
        assert_eq!(scheduler.queue().in_flight(), 0, "the runs in flight ended");
        assert_eq!(
            recorder.runs.lock().unwrap().len(),
            3,
            "and nothing new started"
        );
    }
}
