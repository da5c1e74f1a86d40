//! A site's conditions from what siteward saw and did: its plan and observation, an apply's outcome, a run in progress.

use super::{Condition, ConditionType, DriftedResource, SiteStatus};
use crate::apply::SiteOutcome;
use crate::observe::ObservedSite;
use crate::plan::{SiteDisposition, SitePlan};

/// Processes in these states are not doing their job: supervisor gave up on them, or keeps
/// restarting them.
const FAILING_STATES: [&str; 2] = ["FATAL", "BACKOFF"];

/// The site's status as a plan sees it: observed or not, drifted or not (which resources),
/// healthy or not (its workers, a known-bad release). `observed` is the site on its server.
pub fn after_plan(
    plan: &SitePlan,
    observed: Option<&ObservedSite>,
    spec_hash: &str,
    git_revision: &str,
) -> SiteStatus {
    let mut status = SiteStatus {
        site: plan.site.clone(),
        server: plan.server.clone(),
        ..SiteStatus::default()
    };
    let stamp = (spec_hash, git_revision);
    if !plan.blocked_by.is_empty() {
        let why = plan.blocked_by.join("; ");
        status.set(
            Condition::new(ConditionType::Unreachable, true, "NotObserved", why),
            stamp.0,
            stamp.1,
        );
        status.set(
            Condition::unknown(
                ConditionType::Ready,
                "NotObserved",
                "the site could not be observed",
            ),
            stamp.0,
            stamp.1,
        );
        status.set(
            Condition::unknown(
                ConditionType::Drifted,
                "NotObserved",
                "the site could not be observed",
            ),
            stamp.0,
            stamp.1,
        );
        status.last_result = "not-observed".into();
        return status;
    }
    status.set(
        Condition::new(ConditionType::Unreachable, false, "Observed", "observed"),
        stamp.0,
        stamp.1,
    );
    status.drift = drift(plan);
    let changed_since_apply = observed
        .and_then(|site| site.record.as_ref())
        .and_then(|record| record.facts.get("specHash"))
        .is_none_or(|recorded| recorded != spec_hash);
    let (drifted, ready) = drift_conditions(plan, &status.drift, changed_since_apply);
    let degraded = health(plan, observed);
    status.set(drifted, stamp.0, stamp.1);
    status.set(not_ready_when(ready, &degraded), stamp.0, stamp.1);
    status.set(degraded, stamp.0, stamp.1);
    if let Some(site) = observed {
        status.deployed_commit = site
            .git
            .as_ref()
            .map(|g| g.commit.clone())
            .unwrap_or_default();
        status.desired_commit = site.source_tip.clone().unwrap_or_default();
    }
    status.last_result = if status.drift.is_empty() {
        "in-sync"
    } else {
        "changes"
    }
    .into();
    status
}

/// The resources an apply would change.
fn drift(plan: &SitePlan) -> Vec<DriftedResource> {
    plan.pending()
        .map(|change| DriftedResource {
            resource: change.resource.label().to_owned(),
            name: change.name.clone(),
            action: action_word(change.action).to_owned(),
            reason: change.reason.clone(),
            diff: change.diff.clone(),
        })
        .collect()
}

fn action_word(action: crate::plan::Action) -> &'static str {
    match action {
        crate::plan::Action::Create => "create",
        crate::plan::Action::Update => "update",
        crate::plan::Action::Delete => "delete",
        crate::plan::Action::NoOp => "no-op",
    }
}

/// `Drifted` and `Ready` from the changes: a spec changed since the last apply is
/// `SpecChanged`, a server changed by hand `DriftDetected`; a move is `MigrationPending`.
fn drift_conditions(
    plan: &SitePlan,
    drift: &[DriftedResource],
    changed_since_apply: bool,
) -> (Condition, Condition) {
    if let Some(migration) = plan.migration.as_ref().filter(|_| plan.has_work()) {
        let message = format!("to move from `{}`", migration.source);
        return (
            Condition::new(
                ConditionType::Drifted,
                true,
                "MigrationPending",
                message.clone(),
            ),
            Condition::new(ConditionType::Ready, false, "MigrationPending", message),
        );
    }
    if drift.is_empty() {
        return (
            Condition::new(
                ConditionType::Drifted,
                false,
                "InSync",
                "the server matches the spec",
            ),
            Condition::new(
                ConditionType::Ready,
                true,
                "UpToDate",
                "the server matches the spec",
            ),
        );
    }
    let listed: Vec<String> = drift.iter().map(described).collect();
    let count = match drift.len() {
        1 => "1 resource differs".to_owned(),
        n => format!("{n} resources differ"),
    };
    let message = format!("{count}: {}", listed.join("; "));
    let reason = if changed_since_apply {
        "SpecChanged"
    } else {
        "DriftDetected"
    };
    let ready_reason = if plan.detect_only {
        "DriftReported"
    } else {
        "ChangesPending"
    };
    (
        Condition::new(ConditionType::Drifted, true, reason, message.clone()),
        Condition::new(ConditionType::Ready, false, ready_reason, message),
    )
}

/// One drifted resource in a sentence: its kind, its name, and why, the name said once when the
/// reason starts with it.
fn described(drifted: &DriftedResource) -> String {
    let DriftedResource {
        resource,
        name,
        reason,
        ..
    } = drifted;
    match reason.strip_prefix(name.as_str()) {
        Some(rest) => format!("{resource} {name}{rest}"),
        None => format!("{resource} {name} ({reason})"),
    }
}

/// `Ready` as the changes say it, unless something fails: a site in sync whose health check or
/// worker fails is not ready.
fn not_ready_when(ready: Condition, degraded: &Condition) -> Condition {
    match ready.holds() && degraded.holds() {
        true => Condition::new(
            ConditionType::Ready,
            false,
            degraded.reason.clone(),
            degraded.message.clone(),
        ),
        false => ready,
    }
}

/// `Degraded` from the site's workers, health check and releases as observed.
fn health(plan: &SitePlan, observed: Option<&ObservedSite>) -> Condition {
    let Some(site) = observed else {
        return Condition::new(ConditionType::Degraded, false, "Healthy", "nothing failing");
    };
    let failing: Vec<String> = site
        .processes
        .iter()
        .filter(|p| FAILING_STATES.contains(&p.state.as_str()))
        .map(|p| match p.log_tail.is_empty() {
            true => format!("{} {}", p.process, p.state),
            false => format!("{} {}: {}", p.process, p.state, p.log_tail.join(" / ")),
        })
        .collect();
    if !failing.is_empty() {
        return Condition::new(
            ConditionType::Degraded,
            true,
            "WorkerFailing",
            failing.join("; "),
        );
    }
    if let Some(health) = site.health.as_ref().filter(|h| !h.ok) {
        let answer = match health.status {
            0 => "no answer in time".to_owned(),
            status => format!("status {status}"),
        };
        let message = format!("the health check got {answer}, not what the spec expects");
        return Condition::new(ConditionType::Degraded, true, "HealthCheckFailing", message);
    }
    let bad_live = site
        .releases
        .iter()
        .any(|r| r.bad && site.current_release.as_deref() == Some(r.id.as_str()));
    let bad_tip = plan.pending().any(|c| c.reason.contains("marked bad"));
    match (bad_live, bad_tip) {
        (true, _) => Condition::new(
            ConditionType::Degraded,
            true,
            "BadRelease",
            "the live release failed its health check",
        ),
        (_, true) => Condition::new(
            ConditionType::Degraded,
            true,
            "BadRelease",
            "the commit to deploy failed its health check before: it is not deployed again until the branch moves or the spec changes",
        ),
        _ => backup_health(site),
    }
}

/// `Degraded` when the site's last backup failed, its repository check failed, or its last
/// good backup is older than its schedule allows.
fn backup_health(site: &ObservedSite) -> Condition {
    let healthy = || certificate_health(site, chrono::Utc::now().timestamp());
    let Some(backup) = &site.backup else {
        return healthy();
    };
    if let Some(message) = backup.failure() {
        let message = format!("the last backup failed: {message}");
        return Condition::new(ConditionType::Degraded, true, "BackupFailing", message);
    }
    if backup.check_failed() {
        let message = format!(
            "the backup repository's check failed: {}",
            backup
                .facts
                .get("check_message")
                .map_or("see the server's backup log", String::as_str)
        );
        return Condition::new(ConditionType::Degraded, true, "BackupFailing", message);
    }
    if let Some(age) = backup.stale_by() {
        let message = format!(
            "the last good backup is {} old, more than its schedule allows",
            crate::plan::migration::human_duration(age)
        );
        return Condition::new(ConditionType::Degraded, true, "BackupStale", message);
    }
    healthy()
}

/// A certificate with fewer days left than this is one whose renewal (due at 30) is not working.
const CERTIFICATE_ALARM_DAYS: i64 = 14;

/// `Degraded` when the site's certificate expired or its renewal is overdue; otherwise healthy,
/// saying when the certificate expires.
fn certificate_health(site: &ObservedSite, now: i64) -> Condition {
    let Some(certificate) = site.certificates.values().min_by_key(|c| c.not_after) else {
        return Condition::new(ConditionType::Degraded, false, "Healthy", "nothing failing");
    };
    let names = certificate.names.join(", ");
    let date = crate::resources::tls::date(certificate.not_after);
    let days = (certificate.not_after - now).div_euclid(86400);
    if certificate.not_after <= now {
        let message = format!("the certificate for {names} expired on {date}");
        return Condition::new(ConditionType::Degraded, true, "CertificateExpired", message);
    }
    let message = format!("the certificate for {names} expires on {date} (in {days} days)");
    if days < CERTIFICATE_ALARM_DAYS {
        let message = format!(
            "{message}: its renewal is overdue (see /var/log/letsencrypt on the server, or apply)"
        );
        return Condition::new(
            ConditionType::Degraded,
            true,
            "CertificateExpiring",
            message,
        );
    }
    let message = format!("nothing failing; {message}");
    Condition::new(ConditionType::Degraded, false, "Healthy", message)
}

/// The site's status after an apply or migration ran: applied (on the server it ran on,
/// the new one after a move) or failed, and why.
pub fn after_apply(
    outcome: &SiteOutcome,
    plan: &SitePlan,
    spec_hash: &str,
    git_revision: &str,
) -> SiteStatus {
    let mut status = SiteStatus {
        site: outcome.site.clone(),
        server: outcome.server.clone(),
        ..SiteStatus::default()
    };
    let stamp = (spec_hash, git_revision);
    status.set(
        Condition::new(ConditionType::Progressing, false, "Idle", "nothing running"),
        stamp.0,
        stamp.1,
    );
    status.set(
        Condition::new(ConditionType::Unreachable, false, "Observed", "reached"),
        stamp.0,
        stamp.1,
    );
    let moved = plan.disposition == SiteDisposition::Migration;
    if outcome.ok {
        let message = match (&outcome.migration, moved) {
            (Some(report), _) => format!("moved from `{}`", report.source),
            _ => format!("{} steps applied", outcome.steps.len()),
        };
        let reason = if moved { "Migrated" } else { "Applied" };
        status.set(
            Condition::new(ConditionType::Ready, true, reason, message),
            stamp.0,
            stamp.1,
        );
        status.set(
            Condition::new(ConditionType::Drifted, false, "InSync", "applied"),
            stamp.0,
            stamp.1,
        );
        status.set(
            Condition::new(
                ConditionType::Degraded,
                false,
                "Healthy",
                "the apply succeeded",
            ),
            stamp.0,
            stamp.1,
        );
        status.last_result = "applied".into();
    } else {
        let error = outcome
            .error
            .clone()
            .unwrap_or_else(|| "a step failed".into());
        status.set(
            Condition::new(ConditionType::Ready, false, "ApplyFailed", error.clone()),
            stamp.0,
            stamp.1,
        );
        status.set(
            Condition::new(ConditionType::Degraded, true, "ApplyFailed", error),
            stamp.0,
            stamp.1,
        );
        status.last_result = "failed".into();
    }
    status
}

/// The `Progressing` condition of a run that starts: an apply, or a migration's phase.
pub fn progressing(what: &str) -> Condition {
    Condition::new(ConditionType::Progressing, true, "Reconciling", what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backed_up(facts: &[(&str, &str)], now: u64) -> ObservedSite {
        ObservedSite {
            backup: Some(crate::observe::ObservedBackup {
                facts: facts
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                server_now: now,
            }),
            ..ObservedSite::default()
        }
    }

    #[test]
    fn a_failed_or_stale_backup_degrades_the_site_and_a_recent_one_does_not() {
        let plan = plan_with(vec![]);
        let fresh = backed_up(
            &[
                ("result", "ok"),
                ("last_ok", "1000"),
                ("stale_after", "500"),
            ],
            1400,
        );
        assert!(!health(&plan, Some(&fresh)).holds());
        let stale = backed_up(
            &[
                ("result", "ok"),
                ("last_ok", "1000"),
                ("stale_after", "500"),
            ],
            1600,
        );
        let condition = health(&plan, Some(&stale));
        assert_eq!(
            (condition.reason.as_str(), condition.holds()),
            ("BackupStale", true)
        );
        let failed = backed_up(&[("result", "failed"), ("message", "wrong password")], 1600);
        let condition = health(&plan, Some(&failed));
        assert_eq!(condition.reason, "BackupFailing");
        assert!(
            condition.message.contains("wrong password"),
            "{}",
            condition.message
        );
    }
    #[test]
    fn a_certificate_close_to_expiry_or_expired_degrades_the_site() {
        let now = 1_800_000_000;
        let with = |days: i64| {
            let mut site = ObservedSite::default();
            site.certificates.insert(
                "acme".into(),
                crate::observe::ObservedCertificate {
                    names: vec!["shop.test".into()],
                    issuer: "CN=CA".into(),
                    not_after: now + days * 86400,
                    sha256: String::new(),
                },
            );
            certificate_health(&site, now)
        };
        let fine = with(60);
        assert!(!fine.holds());
        assert!(
            fine.message.contains("shop.test expires on") && fine.message.contains("(in 60 days)"),
            "{}",
            fine.message
        );
        let soon = with(5);
        assert_eq!(
            (soon.reason.as_str(), soon.holds()),
            ("CertificateExpiring", true)
        );
        let gone = with(-1);
        assert_eq!(
            (gone.reason.as_str(), gone.holds()),
            ("CertificateExpired", true)
        );
        assert!(gone.message.contains("expired on"), "{}", gone.message);
    }

    use crate::observe::model::{ObservedProcess, SiteRecord};
    use crate::plan::{Action, Change, ResourceKind};

    fn plan_with(changes: Vec<Change>) -> SitePlan {
        SitePlan {
            site: "shop".into(),
            server: "web-1".into(),
            disposition: SiteDisposition::Reconcile,
            detect_only: false,
            blocked_by: Vec::new(),
            warnings: Vec::new(),
            changes,
            migration: None,
            restore: None,
        }
    }

    fn recorded(spec_hash: &str) -> ObservedSite {
        let mut facts = std::collections::BTreeMap::new();
        facts.insert("specHash".to_owned(), spec_hash.to_owned());
        ObservedSite {
            record: Some(SiteRecord {
                facts,
                lock: None,
                journal: Vec::new(),
            }),
            ..ObservedSite::default()
        }
    }

    fn vhost_edited() -> Change {
        Change::new(
            ResourceKind::Vhost,
            "/etc/nginx/conf.d/siteward-shop.conf",
            Action::Update,
            "content differs",
        )
    }

    #[test]
    fn a_drift_message_names_each_resource_once() {
        let mut edited = vhost_edited();
        edited.reason = format!("{} differs from the spec", edited.name);
        let status = after_plan(&plan_with(vec![edited]), Some(&recorded("h")), "h", "");
        assert_eq!(
            status.condition(ConditionType::Drifted).unwrap().message,
            "1 resource differs: nginx vhost /etc/nginx/conf.d/siteward-shop.conf differs from the spec"
        );
        let other = after_plan(
            &plan_with(vec![vhost_edited()]),
            Some(&recorded("h")),
            "h",
            "",
        );
        assert!(
            other
                .condition(ConditionType::Drifted)
                .unwrap()
                .message
                .ends_with("nginx vhost /etc/nginx/conf.d/siteward-shop.conf (content differs)")
        );
    }

    #[test]
    fn a_plan_without_changes_is_ready_and_in_sync() {
        let status = after_plan(&plan_with(vec![]), Some(&recorded("h")), "h", "r1");
        assert!(status.holds(ConditionType::Ready));
        assert!(!status.holds(ConditionType::Drifted));
        assert_eq!(
            status.condition(ConditionType::Ready).unwrap().git_revision,
            "r1"
        );
    }

    #[test]
    fn a_change_by_hand_is_drift_and_a_changed_spec_is_not() {
        let observed = recorded("h");
        let by_hand = after_plan(&plan_with(vec![vhost_edited()]), Some(&observed), "h", "");
        let drifted = by_hand.condition(ConditionType::Drifted).unwrap();
        assert_eq!(
            (drifted.holds(), drifted.reason.as_str()),
            (true, "DriftDetected")
        );
        assert!(
            drifted.message.contains("nginx vhost"),
            "{}",
            drifted.message
        );
        assert_eq!(by_hand.drift.len(), 1);
        let new_spec = after_plan(&plan_with(vec![vhost_edited()]), Some(&observed), "h2", "");
        assert_eq!(
            new_spec.condition(ConditionType::Drifted).unwrap().reason,
            "SpecChanged"
        );
        assert!(!new_spec.holds(ConditionType::Ready));
    }

    #[test]
    fn a_worker_that_gave_up_degrades_the_site_with_its_log() {
        let mut observed = recorded("h");
        observed.processes.push(ObservedProcess {
            program: "siteward-shop-queue".into(),
            process: "siteward-shop-queue_00".into(),
            state: "FATAL".into(),
            log_tail: vec!["PHP Fatal error: boom".into()],
        });
        let status = after_plan(&plan_with(vec![]), Some(&observed), "h", "");
        let degraded = status.condition(ConditionType::Degraded).unwrap();
        assert_eq!(
            (degraded.holds(), degraded.reason.as_str()),
            (true, "WorkerFailing")
        );
        assert!(
            degraded.message.contains("FATAL: PHP Fatal error: boom"),
            "{}",
            degraded.message
        );
        assert_eq!(status.summary(), "Degraded");
    }

    #[test]
    fn a_failing_health_check_degrades_a_site_in_sync_and_it_is_not_ready() {
        let mut observed = recorded("h");
        observed.health = Some(crate::observe::model::ObservedHealth {
            status: 502,
            ok: false,
        });
        let status = after_plan(&plan_with(vec![]), Some(&observed), "h", "");
        let degraded = status.condition(ConditionType::Degraded).unwrap();
        assert_eq!(
            (degraded.holds(), degraded.reason.as_str()),
            (true, "HealthCheckFailing")
        );
        assert!(
            degraded.message.contains("status 502"),
            "{}",
            degraded.message
        );
        let ready = status.condition(ConditionType::Ready).unwrap();
        assert_eq!(
            (ready.holds(), ready.reason.as_str()),
            (false, "HealthCheckFailing")
        );
        observed.health = Some(crate::observe::model::ObservedHealth {
            status: 0,
            ok: false,
        });
        let silent = after_plan(&plan_with(vec![]), Some(&observed), "h", "");
        assert!(silent.summary_message().contains("no answer in time"));
        observed.health = Some(crate::observe::model::ObservedHealth {
            status: 200,
            ok: true,
        });
        let healthy = after_plan(&plan_with(vec![]), Some(&observed), "h", "");
        assert_eq!(healthy.summary(), "Ready");
    }

    #[test]
    fn a_site_that_could_not_be_observed_is_unreachable_and_not_known_ready() {
        let mut plan = plan_with(vec![]);
        plan.blocked_by
            .push("the database server did not answer".into());
        let status = after_plan(&plan, None, "h", "");
        assert!(status.holds(ConditionType::Unreachable));
        assert_eq!(
            status.condition(ConditionType::Ready).unwrap().status,
            super::super::ConditionStatus::Unknown
        );
    }

    #[test]
    fn a_migrated_site_is_ready_on_its_new_server() {
        let mut plan = plan_with(vec![]);
        plan.disposition = SiteDisposition::Migration;
        let outcome = SiteOutcome {
            site: "shop".into(),
            server: "web-2".into(),
            ok: true,
            millis: 10,
            steps: Vec::new(),
            error: None,
            migration: None,
        };
        let status = after_apply(&outcome, &plan, "h", "");
        assert_eq!(status.server, "web-2");
        assert_eq!(
            status.condition(ConditionType::Ready).unwrap().reason,
            "Migrated"
        );
        let failed = after_apply(
            &SiteOutcome {
                ok: false,
                error: Some("step boom failed".into()),
                ..outcome
            },
            &plan,
            "h",
            "",
        );
        assert!(failed.holds(ConditionType::Degraded));
        assert_eq!(
            failed.condition(ConditionType::Ready).unwrap().message,
            "step boom failed"
        );
    }
}
