//! The daemon's work queue: when each site is due, which are running, and what to run next within the concurrency bounds — with kube-runtime's guarantees: one reconcile of a site at a time, and a trigger during a run queues exactly one more run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

/// Why a site is reconciled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trigger {
    /// The daemon started.
    Start,
    /// The site's spec (or its Server's) changed on disk.
    SpecChanged,
    /// A git fetch brought a commit that changed the site's spec.
    GitCommit,
    /// Someone asked (`POST …/reconcile`).
    Requested,
    /// The periodic resync.
    Resync,
    /// A retry after a failure, once its backoff passed.
    Retry,
    /// This daemon took the site's lease (from a daemon that stopped or handed it over).
    Acquired,
}

impl Trigger {
    /// The word logs and metrics use.
    pub fn word(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::SpecChanged => "spec-changed",
            Trigger::GitCommit => "git-commit",
            Trigger::Requested => "requested",
            Trigger::Resync => "resync",
            Trigger::Retry => "retry",
            Trigger::Acquired => "lease-acquired",
        }
    }

    /// Whether a run for this reason may start again a worker that keeps crashing: when someone
    /// asked, when the spec changed, or when the backoff of the last failure passed.
    pub fn restarts_failing(self) -> bool {
        !matches!(self, Trigger::Resync)
    }

    /// Which due runs start first (lower first): what someone changed or asked for, then the
    /// first runs, then retries and resyncs, so that an edit never waits behind a backlog of
    /// periodic work.
    fn urgency(self) -> u8 {
        match self {
            Trigger::SpecChanged | Trigger::GitCommit | Trigger::Requested => 0,
            Trigger::Start | Trigger::Acquired => 1,
            Trigger::Retry | Trigger::Resync => 2,
        }
    }

    /// Of two reasons for one run, the one that allows more (see [`Trigger::restarts_failing`]).
    fn merge(self, other: Trigger) -> Trigger {
        if self.restarts_failing() { self } else { other }
    }
}

/// What a reconcile asks for next (kube-runtime's `Action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run again after this long (the resync period, or a backoff).
    Requeue(Duration, Trigger),
    /// Nothing to do until something changes (a suspended site, a site the specs dropped).
    AwaitChange,
}

impl Action {
    /// Run again after `after`, as the periodic resync.
    pub fn requeue(after: Duration) -> Self {
        Action::Requeue(after, Trigger::Resync)
    }

    /// Run again after `after`, as a retry of a failure.
    pub fn retry(after: Duration) -> Self {
        Action::Requeue(after, Trigger::Retry)
    }
}

#[derive(Clone, Debug)]
enum State {
    /// Waiting for its time (`None`: for a change).
    Waiting(Option<(Instant, Trigger)>),
    /// Running; a trigger meanwhile asks for one more run at once.
    Running { again: Option<Trigger> },
}

/// A run the queue let start: the site, its server, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub site: String,
    pub server: String,
    pub trigger: Trigger,
}

/// The sites, their states and the bounds.
#[derive(Debug)]
pub struct Queue {
    sites: BTreeMap<String, (String, State)>,
    /// Sites whose run must not be followed by another (they left the specs meanwhile).
    dropped: BTreeSet<String>,
    concurrency: usize,
    per_server: usize,
}

impl Queue {
    /// An empty queue running at most `concurrency` reconciles at once, `per_server` of them on
    /// any one server.
    pub fn new(concurrency: usize, per_server: usize) -> Self {
        Queue {
            sites: BTreeMap::new(),
            dropped: BTreeSet::new(),
            concurrency: concurrency.max(1),
            per_server: per_server.max(1),
        }
    }

    /// Adds a site (or moves it to `server`), due now for `trigger` when it is new.
    pub fn track(&mut self, site: &str, server: &str, trigger: Trigger, now: Instant) {
        self.dropped.remove(site);
        match self.sites.get_mut(site) {
            Some((placed, _)) => *placed = server.to_owned(),
            None => {
                let state = State::Waiting(Some((now, trigger)));
                self.sites
                    .insert(site.to_owned(), (server.to_owned(), state));
            }
        }
    }

    /// Removes a site; one running finishes, and is not run again.
    pub fn drop_site(&mut self, site: &str) {
        match self.sites.get(site) {
            Some((_, State::Running { .. })) => _ = self.dropped.insert(site.to_owned()),
            Some(_) => _ = self.sites.remove(site),
            None => {}
        }
    }

    /// Asks for a run of `site` now. A running site runs exactly once more after this run,
    /// however many triggers arrive meanwhile.
    pub fn trigger(&mut self, site: &str, trigger: Trigger, now: Instant) -> bool {
        let Some((_, state)) = self.sites.get_mut(site) else {
            return false;
        };
        *state = match state {
            State::Running { again } => State::Running {
                again: Some(again.map_or(trigger, |earlier| earlier.merge(trigger))),
            },
            State::Waiting(due) => {
                let merged = due.map_or(trigger, |(_, earlier)| earlier.merge(trigger));
                State::Waiting(Some((now, merged)))
            }
        };
        true
    }

    /// The runs that may start at `now`: due sites, the most urgent triggers first (see
    /// [`Trigger::urgency`]), then the earliest, within the bounds, and `owned` (the seam for
    /// several daemons sharing the sites). They are marked running.
    pub fn start_due(&mut self, now: Instant, owned: impl Fn(&str) -> bool) -> Vec<Start> {
        let mut running = self.running_per_server();
        let mut total: usize = running.values().sum();
        let mut due: Vec<(u8, Instant, String)> = self
            .sites
            .iter()
            .filter_map(|(site, (_, state))| match state {
                State::Waiting(Some((at, trigger))) if *at <= now => {
                    Some((trigger.urgency(), *at, site.clone()))
                }
                _ => None,
            })
            .collect();
        due.sort();
        let mut starts = Vec::new();
        for (_, _, site) in due {
            if total >= self.concurrency {
                break;
            }
            let (server, state) = self.sites.get_mut(&site).expect("a due site is tracked");
            let on_server = running.entry(server.clone()).or_default();
            if *on_server >= self.per_server || !owned(&site) {
                continue;
            }
            let State::Waiting(Some((_, trigger))) = *state else {
                continue;
            };
            *state = State::Running { again: None };
            *on_server += 1;
            total += 1;
            starts.push(Start {
                site: site.clone(),
                server: server.clone(),
                trigger,
            });
        }
        starts
    }

    /// A run of `site` ended asking for `action`: it waits for that, or runs at once when a
    /// trigger came during the run.
    pub fn finished(&mut self, site: &str, action: Action, now: Instant) {
        if self.dropped.remove(site) {
            self.sites.remove(site);
            return;
        }
        let Some((_, state)) = self.sites.get_mut(site) else {
            return;
        };
        let again = match state {
            State::Running { again } => *again,
            State::Waiting(_) => None,
        };
        *state = match (again, action) {
            (Some(trigger), _) => State::Waiting(Some((now, trigger))),
            (None, Action::Requeue(after, trigger)) => State::Waiting(Some((now + after, trigger))),
            (None, Action::AwaitChange) => State::Waiting(None),
        };
    }

    /// When the next waiting site is due, if any is.
    pub fn next_due(&self) -> Option<Instant> {
        self.sites
            .values()
            .filter_map(|(_, state)| match state {
                State::Waiting(Some((at, _))) => Some(*at),
                _ => None,
            })
            .min()
    }

    /// When `site` is due next (`None`: running, waiting for a change, or unknown).
    pub fn due(&self, site: &str) -> Option<Instant> {
        match self.sites.get(site) {
            Some((_, State::Waiting(Some((at, _))))) => Some(*at),
            _ => None,
        }
    }

    /// Whether `site` is running.
    pub fn is_running(&self, site: &str) -> bool {
        matches!(self.sites.get(site), Some((_, State::Running { .. })))
    }

    /// Sites due now or earlier that have not started.
    pub fn depth(&self, now: Instant) -> usize {
        self.sites
            .values()
            .filter(|(_, state)| matches!(state, State::Waiting(Some((at, _))) if *at <= now))
            .count()
    }

    /// Runs in flight.
    pub fn in_flight(&self) -> usize {
        self.running_per_server().values().sum()
    }

    /// The sites tracked.
    pub fn sites(&self) -> impl Iterator<Item = &str> {
        self.sites.keys().map(String::as_str)
    }

    fn running_per_server(&self) -> BTreeMap<String, usize> {
        let mut running = BTreeMap::new();
        for (server, state) in self.sites.values() {
            if matches!(state, State::Running { .. }) {
                *running.entry(server.clone()).or_default() += 1;
            }
        }
        running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_of(sites: &[(&str, &str)], now: Instant) -> Queue {
        let mut queue = Queue::new(4, 2);
        for (site, server) in sites {
            queue.track(site, server, Trigger::Start, now);
        }
        queue
    }

    fn names(starts: &[Start]) -> Vec<&str> {
        starts.iter().map(|s| s.site.as_str()).collect()
    }

    #[test]
    fn triggers_during_a_run_give_exactly_one_more_run() {
        let now = Instant::now();
        let mut queue = queue_of(&[("shop", "web-1")], now);
        assert_eq!(names(&queue.start_due(now, |_| true)), vec!["shop"]);
        assert!(
            queue.start_due(now, |_| true).is_empty(),
            "never twice at once"
        );
        queue.trigger("shop", Trigger::SpecChanged, now);
        queue.trigger("shop", Trigger::Requested, now);
        queue.trigger("shop", Trigger::Resync, now);
        queue.finished("shop", Action::requeue(Duration::from_secs(600)), now);
        let again = queue.start_due(now, |_| true);
        assert_eq!(names(&again), vec!["shop"]);
        assert_eq!(
            again[0].trigger,
            Trigger::SpecChanged,
            "the first reason that allows most"
        );
        queue.finished("shop", Action::requeue(Duration::from_secs(600)), now);
        assert!(
            queue.start_due(now, |_| true).is_empty(),
            "exactly one more, not three"
        );
        assert_eq!(queue.due("shop"), Some(now + Duration::from_secs(600)));
    }

    #[test]
    fn runs_stay_within_the_bounds_overall_and_per_server() {
        let now = Instant::now();
        let sites = [
            ("a1", "a"),
            ("a2", "a"),
            ("a3", "a"),
            ("b1", "b"),
            ("b2", "b"),
            ("c1", "c"),
        ];
        let mut queue = queue_of(&sites, now);
        let first = queue.start_due(now, |_| true);
        assert_eq!(
            names(&first),
            vec!["a1", "a2", "b1", "b2"],
            "2 per server, 4 in all"
        );
        assert_eq!(queue.in_flight(), 4);
        queue.finished("b1", Action::AwaitChange, now);
        assert_eq!(
            names(&queue.start_due(now, |_| true)),
            vec!["c1"],
            "a is still full"
        );
        queue.finished("a1", Action::AwaitChange, now);
        assert_eq!(names(&queue.start_due(now, |_| true)), vec!["a3"]);
    }

    #[test]
    fn a_waiting_site_is_due_at_its_requeue_time_or_at_once_when_triggered() {
        let now = Instant::now();
        let mut queue = queue_of(&[("shop", "web-1")], now);
        queue.start_due(now, |_| true);
        queue.finished("shop", Action::retry(Duration::from_secs(20)), now);
        assert!(
            queue
                .start_due(now + Duration::from_secs(19), |_| true)
                .is_empty()
        );
        assert_eq!(queue.next_due(), Some(now + Duration::from_secs(20)));
        let later = now + Duration::from_secs(20);
        assert_eq!(queue.start_due(later, |_| true)[0].trigger, Trigger::Retry);
        queue.finished("shop", Action::AwaitChange, later);
        assert_eq!(queue.next_due(), None);
        queue.trigger("shop", Trigger::Requested, later);
        assert_eq!(names(&queue.start_due(later, |_| true)), vec!["shop"]);
    }

    #[test]
    fn a_site_dropped_while_it_runs_is_not_run_again_and_sites_not_owned_wait() {
        let now = Instant::now();
        let mut queue = queue_of(&[("shop", "web-1"), ("blog", "web-1")], now);
        assert_eq!(
            names(&queue.start_due(now, |site| site == "shop")),
            vec!["shop"]
        );
        queue.trigger("shop", Trigger::SpecChanged, now);
        queue.drop_site("shop");
        queue.finished("shop", Action::requeue(Duration::ZERO), now);
        assert!(!queue.sites().any(|s| s == "shop"));
        assert_eq!(queue.depth(now), 1, "blog waits for its owner");
        assert!(queue.start_due(now, |site| site == "shop").is_empty());
    }

    #[test]
    fn an_edit_starts_before_a_backlog_of_resyncs_and_first_runs() {
        let now = Instant::now();
        let mut queue = Queue::new(1, 1);
        for site in ["r1", "r2", "r3"] {
            queue.track(site, "a", Trigger::Start, now);
            queue.start_due(now, |_| true);
            queue.finished(site, Action::requeue(Duration::ZERO), now);
        }
        queue.track("new", "a", Trigger::Start, now);
        let later = now + Duration::from_secs(1);
        queue.trigger("r3", Trigger::SpecChanged, later);
        assert_eq!(names(&queue.start_due(later, |_| true)), vec!["r3"]);
        queue.finished("r3", Action::requeue(Duration::from_secs(600)), later);
        assert_eq!(names(&queue.start_due(later, |_| true)), vec!["new"]);
        queue.finished("new", Action::requeue(Duration::from_secs(600)), later);
        assert_eq!(
            names(&queue.start_due(later, |_| true)),
            vec!["r1"],
            "then the resyncs, the earliest first"
        );
    }

    #[test]
    fn only_resyncs_leave_a_crashing_worker_alone() {
        assert!(!Trigger::Resync.restarts_failing());
        for trigger in [
            Trigger::Start,
            Trigger::SpecChanged,
            Trigger::GitCommit,
            Trigger::Requested,
            Trigger::Retry,
        ] {
            assert!(trigger.restarts_failing(), "{trigger:?}");
        }
        assert_eq!(Trigger::Resync.merge(Trigger::Retry), Trigger::Retry);
    }
}
