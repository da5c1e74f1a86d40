//! Conditions: what `siteward status` and the daemon say of each site (Ready, Drifted, Progressing, Degraded, Unreachable, Suspended, Orphaned), computed from plans and apply outcomes.
//!
//! A condition has a status (`True`, `False`, `Unknown`), a machine-readable reason, a message
//! for people, the time its status last changed, and the spec hash and git revision it was
//! computed from — as Kubernetes conditions have. Computing them is pure; the state store keeps
//! them (`crate::store`), and keeps a condition's transition time while its status stays.

mod derive;

pub use derive::{after_apply, after_plan, progressing};

use serde::{Deserialize, Serialize};

/// The kinds of condition a site has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConditionType {
    /// The site is as its spec says and healthy.
    Ready,
    /// The server differs from the spec (which resources, since when).
    Drifted,
    /// An apply or a migration is running (with its phase).
    Progressing,
    /// Something is wrong that a plan alone does not fix: a failing health check, a worker not
    /// running, a failed apply, a known-bad release.
    Degraded,
    /// The site's server could not be reached or observed.
    Unreachable,
    /// Held for manual applies: the daemon leaves it alone.
    Suspended,
    /// Recorded on a server, named by no spec.
    Orphaned,
}

impl ConditionType {
    /// Every type, in the order they are shown.
    pub const ALL: [ConditionType; 7] = [
        ConditionType::Ready,
        ConditionType::Drifted,
        ConditionType::Progressing,
        ConditionType::Degraded,
        ConditionType::Unreachable,
        ConditionType::Suspended,
        ConditionType::Orphaned,
    ];

    /// The name stored and shown (`Ready`, `Drifted`, …).
    pub fn name(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Drifted => "Drifted",
            ConditionType::Progressing => "Progressing",
            ConditionType::Degraded => "Degraded",
            ConditionType::Unreachable => "Unreachable",
            ConditionType::Suspended => "Suspended",
            ConditionType::Orphaned => "Orphaned",
        }
    }

    /// The type named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// Whether a condition holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    /// `True`, `False` or `Unknown`.
    pub fn name(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }

    /// The status named `name` (`Unknown` for anything else).
    pub fn parse(name: &str) -> Self {
        match name {
            "True" => ConditionStatus::True,
            "False" => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        }
    }

    fn of(holds: bool) -> Self {
        if holds {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// One condition of a site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: ConditionType,
    pub status: ConditionStatus,
    /// A word for machines: `UpToDate`, `DriftDetected`, `ApplyFailed`, …
    pub reason: String,
    /// A sentence for people.
    pub message: String,
    /// When the status last changed (unix seconds); set by the store.
    pub last_transition_unix: i64,
    /// The hash of the site's spec the condition was computed from.
    pub spec_hash: String,
    /// The git revision of the specs, when they are a checkout.
    pub git_revision: String,
}

impl Condition {
    /// A condition of `kind` that holds or not, for `reason` and `message`.
    pub fn new(
        kind: ConditionType,
        holds: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Condition {
            kind,
            status: ConditionStatus::of(holds),
            reason: reason.into(),
            message: message.into(),
            last_transition_unix: 0,
            spec_hash: String::new(),
            git_revision: String::new(),
        }
    }

    /// A condition whose status is not known (the site could not be observed).
    pub fn unknown(
        kind: ConditionType,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Condition {
            status: ConditionStatus::Unknown,
            ..Condition::new(kind, false, reason, message)
        }
    }

    /// Whether the condition holds.
    pub fn holds(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// A resource that differs from the spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftedResource {
    /// The resource kind, as plans name it (`vhost`, `worker`, …).
    pub resource: String,
    pub name: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    pub reason: String,
    /// The unified diff of a file, secrets redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// What is known of one site: where it lives, its conditions, its drift, its code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteStatus {
    pub site: String,
    pub server: String,
    pub conditions: Vec<Condition>,
    pub drift: Vec<DriftedResource>,
    /// The commit live on the server, when known.
    #[serde(default)]
    pub deployed_commit: String,
    /// The commit the spec asks for (branch tip or pin), when known.
    #[serde(default)]
    pub desired_commit: String,
    /// `applied`, `failed`, `in-sync`, `changes`, `detected`…
    #[serde(default)]
    pub last_result: String,
    /// When the site was last reconciled (unix seconds).
    #[serde(default)]
    pub last_reconcile_unix: i64,
    /// Held for manual applies, with why.
    #[serde(default)]
    pub suspended: bool,
    #[serde(default)]
    pub suspend_reason: String,
}

impl SiteStatus {
    /// The condition of `kind`, when there is one.
    pub fn condition(&self, kind: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// Whether the condition of `kind` holds.
    pub fn holds(&self, kind: ConditionType) -> bool {
        self.condition(kind).is_some_and(Condition::holds)
    }

    /// Sets (or replaces) the condition of its kind, stamped with the spec hash and revision.
    pub fn set(&mut self, mut condition: Condition, spec_hash: &str, git_revision: &str) {
        condition.spec_hash = spec_hash.to_owned();
        condition.git_revision = git_revision.to_owned();
        match self
            .conditions
            .iter_mut()
            .find(|c| c.kind == condition.kind)
        {
            Some(existing) => *existing = condition,
            None => self.conditions.push(condition),
        }
        self.conditions.sort_by_key(|c| c.kind);
    }

    /// The one word that sums the site up for lists: the first of `Suspended`, `Unreachable`,
    /// `Degraded`, `Progressing`, `Drifted`, `Ready` that holds, else `Unknown`.
    pub fn summary(&self) -> &'static str {
        use ConditionType::*;
        [
            Suspended,
            Orphaned,
            Unreachable,
            Degraded,
            Progressing,
            Drifted,
            Ready,
        ]
        .into_iter()
        .find(|kind| self.holds(*kind))
        .map_or("Unknown", ConditionType::name)
    }

    /// The message of the condition [`SiteStatus::summary`] names.
    pub fn summary_message(&self) -> &str {
        ConditionType::parse(self.summary())
            .and_then(|kind| self.condition(kind))
            .map_or("", |c| c.message.as_str())
    }
}

/// A duration for people: `42s`, `5m`, `3h`, `2d`.
pub fn age(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_told_in_the_largest_unit_that_reads_well() {
        assert_eq!(
            [age(-3), age(42), age(300), age(3 * 3600), age(3 * 86_400)],
            ["0s", "42s", "5m", "3h", "3d"]
        );
    }

    #[test]
    fn a_condition_set_again_replaces_the_one_of_its_kind() {
        let mut status = SiteStatus::default();
        status.set(
            Condition::new(ConditionType::Ready, false, "ChangesPending", "2 resources"),
            "h1",
            "r1",
        );
        status.set(
            Condition::new(ConditionType::Drifted, true, "DriftDetected", "vhost"),
            "h1",
            "r1",
        );
        status.set(
            Condition::new(ConditionType::Ready, true, "UpToDate", "in sync"),
            "h2",
            "r2",
        );
        assert_eq!(status.conditions.len(), 2);
        let ready = status.condition(ConditionType::Ready).unwrap();
        assert_eq!(
            (ready.reason.as_str(), ready.spec_hash.as_str()),
            ("UpToDate", "h2")
        );
        assert_eq!(
            status.conditions[0].kind,
            ConditionType::Ready,
            "sorted by kind"
        );
    }

    #[test]
    fn the_summary_names_the_most_urgent_condition_that_holds() {
        let mut status = SiteStatus::default();
        assert_eq!(status.summary(), "Unknown");
        status.set(
            Condition::new(ConditionType::Ready, true, "UpToDate", ""),
            "",
            "",
        );
        assert_eq!(status.summary(), "Ready");
        status.set(
            Condition::new(
                ConditionType::Degraded,
                true,
                "WorkerFailing",
                "queue FATAL",
            ),
            "",
            "",
        );
        assert_eq!(
            (status.summary(), status.summary_message()),
            ("Degraded", "queue FATAL")
        );
        status.set(
            Condition::new(ConditionType::Suspended, true, "Suspended", "held"),
            "",
            "",
        );
        assert_eq!(status.summary(), "Suspended");
    }

    #[test]
    fn types_and_statuses_round_trip_through_their_names() {
        for kind in ConditionType::ALL {
            assert_eq!(ConditionType::parse(kind.name()), Some(kind));
        }
        for status in [
            ConditionStatus::True,
            ConditionStatus::False,
            ConditionStatus::Unknown,
        ] {
            assert_eq!(ConditionStatus::parse(status.name()), status);
        }
    }
}
