//! The daemon's Prometheus metrics (prometheus-client): sites and their conditions, reconciles, git fetches, the queue and SSH errors; a removed site's series go away with it.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::conditions::{ConditionStatus, ConditionType, SiteStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabel {
    site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteServer {
    site: String,
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteCondition {
    site: String,
    #[prometheus(flatten)]
    condition: ConditionLabels,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    r#type: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteResult {
    site: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabel {
    server: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Every metric the daemon serves at `/metrics`.
pub struct Metrics {
    registry: Registry,
    site_info: Family<SiteServer, Gauge>,
    site_condition: Family<SiteCondition, Gauge>,
    reconcile_duration: Histogram,
    reconciles: Family<SiteResult, Counter>,
    drifted: Family<SiteLabel, Gauge>,
    last_reconcile: Family<SiteLabel, FloatGauge>,
    git_fetches: Family<ResultLabel, Counter>,
    queue_depth: Gauge,
    in_flight: Gauge,
    store_up: Gauge,
    leases_held: Gauge,
    ssh_errors: Family<ServerLabel, Counter>,
    /// The server each site's info series names, to remove it when the site moves or goes.
    placed: Mutex<std::collections::BTreeMap<String, String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics {
            site_info: Family::default(),
            site_condition: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            reconciles: Family::default(),
            drifted: Family::default(),
            last_reconcile: Family::default(),
            git_fetches: Family::default(),
            queue_depth: Gauge::default(),
            in_flight: Gauge::default(),
            store_up: Gauge::default(),
            leases_held: Gauge::default(),
            ssh_errors: Family::default(),
            placed: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "siteward_site_info",
            "A site the specs name, on the server they place it on (always 1)",
            metrics.site_info.clone(),
        );
        registry.register(
            "siteward_site_condition",
            "1 for the status each condition of a site has, 0 for the others",
            metrics.site_condition.clone(),
        );
        registry.register(
            "siteward_reconcile_duration_seconds",
            "How long reconciles take",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "siteward_reconcile",
            "Reconciles by site and result",
            metrics.reconciles.clone(),
        );
        registry.register(
            "siteward_drifted_resources",
            "Resources of a site that differ from its spec",
            metrics.drifted.clone(),
        );
        registry.register(
            "siteward_last_reconcile_timestamp_seconds",
            "When a site was last reconciled (unix time)",
            metrics.last_reconcile.clone(),
        );
        registry.register(
            "siteward_git_fetch",
            "Fetches of the specs' git remote by result",
            metrics.git_fetches.clone(),
        );
        registry.register(
            "siteward_queue_depth",
            "Reconciles due and not started",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "siteward_reconciles_in_flight",
            "Reconciles running",
            metrics.in_flight.clone(),
        );
        registry.register(
            "siteward_store_up",
            "Whether the state store answered the last round of leases (1) or not (0)",
            metrics.store_up.clone(),
        );
        registry.register(
            "siteward_leases_held",
            "Sites whose lease this daemon holds (daemons sharing a PostgreSQL store)",
            metrics.leases_held.clone(),
        );
        registry.register(
            "siteward_ssh_errors",
            "Failed connections and commands by server",
            metrics.ssh_errors.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Shows a site's status: where it is, its conditions, its drift.
    pub fn site(&self, status: &SiteStatus) {
        let mut placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(before) = placed.insert(status.site.clone(), status.server.clone())
            && before != status.server
        {
            self.site_info.remove(&SiteServer {
                site: status.site.clone(),
                server: before,
            });
        }
        self.site_info
            .get_or_create(&SiteServer {
                site: status.site.clone(),
                server: status.server.clone(),
            })
            .set(1);
        for condition in &status.conditions {
            for value in [
                ConditionStatus::True,
                ConditionStatus::False,
                ConditionStatus::Unknown,
            ] {
                let labels = condition_labels(&status.site, condition.kind, value);
                self.site_condition
                    .get_or_create(&labels)
                    .set(i64::from(condition.status == value));
            }
        }
        let site = SiteLabel {
            site: status.site.clone(),
        };
        self.drifted
            .get_or_create(&site)
            .set(status.drift.len() as i64);
    }

    /// Counts a reconcile that ended with `result` after `seconds`.
    pub fn reconciled(&self, site: &str, result: &str, seconds: f64, at_unix: f64) {
        self.reconcile_duration.observe(seconds);
        let labels = SiteResult {
            site: site.to_owned(),
            result: result.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.last_reconcile
            .get_or_create(&SiteLabel {
                site: site.to_owned(),
            })
            .set(at_unix);
    }

    /// Removes every series of a site the specs no longer name.
    pub fn forget_site(&self, site: &str) {
        let mut placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = placed.remove(site) {
            self.site_info.remove(&SiteServer {
                site: site.to_owned(),
                server,
            });
        }
        for kind in ConditionType::ALL {
            for value in [
                ConditionStatus::True,
                ConditionStatus::False,
                ConditionStatus::Unknown,
            ] {
                self.site_condition
                    .remove(&condition_labels(site, kind, value));
            }
        }
        let label = SiteLabel {
            site: site.to_owned(),
        };
        self.drifted.remove(&label);
        self.last_reconcile.remove(&label);
        for result in ["ok", "error"] {
            self.reconciles.remove(&SiteResult {
                site: site.to_owned(),
                result: result.to_owned(),
            });
        }
    }

    /// Counts a git fetch.
    pub fn git_fetched(&self, result: &str) {
        self.git_fetches
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// The queue's state now.
    pub fn queue(&self, depth: usize, in_flight: usize) {
        self.queue_depth.set(depth as i64);
        self.in_flight.set(in_flight as i64);
    }

    /// Whether the store answers and how many leases this daemon holds.
    pub fn store(&self, up: bool, leases: usize) {
        self.store_up.set(i64::from(up));
        self.leases_held.set(leases as i64);
    }

    /// The SSH errors so far of each server.
    pub fn ssh_errors(&self, counts: &[(String, u64)]) {
        for (server, count) in counts {
            let counter = self.ssh_errors.get_or_create(&ServerLabel {
                server: server.clone(),
            });
            let seen = counter.get();
            if *count > seen {
                counter.inc_by(count - seen);
            }
        }
    }

    /// Everything, in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

fn condition_labels(site: &str, kind: ConditionType, status: ConditionStatus) -> SiteCondition {
    SiteCondition {
        site: site.to_owned(),
        condition: ConditionLabels {
            r#type: kind.name().to_owned(),
            status: status.name().to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::Condition;

    fn shop(server: &str) -> SiteStatus {
        let mut status = SiteStatus {
            site: "shop".into(),
            server: server.into(),
            ..SiteStatus::default()
        };
        status.set(
            Condition::new(ConditionType::Ready, true, "UpToDate", ""),
            "h",
            "",
        );
        status
    }

    #[test]
    fn a_sites_series_follow_it_and_go_away_with_it() {
        let metrics = Metrics::new();
        metrics.site(&shop("web-1"));
        metrics.reconciled("shop", "ok", 0.3, 1_700_000_000.0);
        let text = metrics.render();
        assert!(
            text.contains(r#"siteward_site_info{site="shop",server="web-1"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"siteward_site_condition{site="shop",type="Ready",status="True"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"siteward_site_condition{site="shop",type="Ready",status="False"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"siteward_reconcile_total{site="shop",result="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("siteward_reconcile_duration_seconds_count 1"),
            "{text}"
        );

        metrics.site(&shop("web-2"));
        let text = metrics.render();
        assert!(
            !text.contains(r#"server="web-1""#),
            "the old placement is gone: {text}"
        );
        metrics.forget_site("shop");
        let text = metrics.render();
        assert!(!text.contains(r#"site="shop""#), "{text}");
    }
}
