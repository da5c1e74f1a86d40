//! The state store on SQLite and on PostgreSQL (a throwaway server this test starts on the
//! machine): migrations, runs, site runs, conditions, history, and status writes guarded by a
//! site's lease.

mod support;

use anyhow::{Context, Result, ensure};
use siteward::conditions::{Condition, ConditionType, SiteStatus};
use siteward::store::leases::LeaseGuard;
use siteward::store::{NewRun, NewSiteRun, StateStore};
use support::postgres::ThrowawayPostgres;

async fn exercise(store: &StateStore) -> Result<()> {
    let run_id = store
        .record_run(&NewRun {
            kind: "apply",
            spec_hash: "abc",
            observed_fingerprint: "def",
            outcome: "applied",
            summary: "Plan: 1 to create",
            plan_json: "{}",
        })
        .await?;
    for (site, ok) in [("shop", true), ("blog", false)] {
        store
            .record_site_run(
                run_id,
                &NewSiteRun {
                    site,
                    server: "web-1",
                    ok,
                    millis: 42,
                    error: (!ok).then_some("boom"),
                    steps_json: "[]",
                    migration_json: ok.then_some(r#"{"site":"shop"}"#),
                },
            )
            .await?;
    }
    // A condition keeps its transition time while its status stays; a change of status moves it.
    let drifted = Condition::new(
        ConditionType::Drifted,
        true,
        "DriftDetected",
        "2 resources differ",
    );
    let mut status = SiteStatus {
        site: "shop".into(),
        server: "web-1".into(),
        deployed_commit: "c0ffee".into(),
        ..SiteStatus::default()
    };
    status.set(drifted.clone(), "abc", "rev1");
    status.set(
        Condition::new(ConditionType::Ready, false, "ChangesPending", "2 differ"),
        "abc",
        "rev1",
    );
    store.update_site(&status).await?;
    let first = store
        .site_status("shop")
        .await?
        .context("the site is stored")?;
    let since = first
        .condition(ConditionType::Drifted)
        .context("Drifted")?
        .last_transition_unix;
    assert!(since > 0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    status.set(
        Condition::new(
            ConditionType::Drifted,
            true,
            "DriftDetected",
            "1 resource differs",
        ),
        "abc",
        "rev2",
    );
    status.set(
        Condition::new(ConditionType::Ready, true, "Applied", "applied"),
        "abc",
        "rev2",
    );
    status.server = "web-2".into();
    status.deployed_commit = String::new();
    store.update_site(&status).await?;
    let second = store
        .site_status("shop")
        .await?
        .context("the site is stored")?;
    let drifted = second
        .condition(ConditionType::Drifted)
        .context("Drifted")?;
    assert_eq!(
        (drifted.last_transition_unix, drifted.message.as_str()),
        (since, "1 resource differs")
    );
    let ready = second.condition(ConditionType::Ready).context("Ready")?;
    assert!(
        ready.holds() && ready.last_transition_unix > since,
        "{ready:?}"
    );
    assert_eq!(ready.git_revision, "rev2");
    assert_eq!(
        (second.server.as_str(), second.deployed_commit.as_str()),
        ("web-2", "c0ffee"),
        "an unknown commit keeps the known one"
    );

    store
        .set_suspended("shop", "web-2", Some("hotfix by hand"))
        .await?;
    let held = store.site_status("shop").await?.context("stored")?;
    assert!(held.suspended && held.holds(ConditionType::Suspended));
    assert_eq!(held.suspend_reason, "hotfix by hand");
    store.set_suspended("shop", "web-2", None).await?;
    assert!(
        !store
            .site_status("shop")
            .await?
            .context("stored")?
            .suspended
    );
    assert_eq!(store.site_statuses().await?.len(), 1, "one row per site");
    store.heartbeat().await?;

    let history = store.site_history("blog", 5).await?;
    assert_eq!(history.len(), 1);
    assert!(!history[0].ok);
    assert_eq!(history[0].error.as_deref(), Some("boom"));
    assert_eq!(history[0].run_id, run_id);
    assert_eq!(history[0].migration_json, None);
    let shop = store.site_history("shop", 5).await?;
    assert_eq!(
        shop[0].migration_json.as_deref(),
        Some(r#"{"site":"shop"}"#)
    );
    assert!(store.dump_text().await?.contains("Plan: 1 to create"));
    Ok(())
}

#[tokio::test]
async fn the_store_works_on_sqlite_and_survives_reopening() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nested/state.db").display().to_string();
    let store = StateStore::open(&path).await?;
    exercise(&store).await?;
    let reopened = StateStore::open(&format!("sqlite:{path}")).await?;
    assert_eq!(
        reopened.site_statuses().await?.len(),
        1,
        "migrations run once; data kept"
    );
    Ok(())
}

#[tokio::test]
async fn the_store_works_on_postgresql() -> Result<()> {
    let postgres = ThrowawayPostgres::start()?;
    let store = StateStore::open(&postgres.url()).await?;
    exercise(&store).await?;
    let reopened = StateStore::open(&postgres.url()).await?;
    assert_eq!(reopened.site_history("shop", 5).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_postgresql_store_is_a_clear_error() {
    let error = StateStore::open("postgres://nobody@localhost/none?host=/nonexistent")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("cannot open the state store"),
        "{error}"
    );
}

/// The status a daemon writes of `shop`, with its last result and a Ready condition.
fn status_of(result: &str) -> SiteStatus {
    let mut status = SiteStatus {
        site: "shop".into(),
        server: "web-1".into(),
        last_result: result.into(),
        ..SiteStatus::default()
    };
    status.set(
        Condition::new(ConditionType::Ready, true, "Applied", result),
        "abc",
        "rev1",
    );
    status
}

async fn last_result(store: &StateStore) -> Result<String> {
    let status = store.site_status("shop").await?.context("shop is stored")?;
    let ready = status.condition(ConditionType::Ready).context("Ready")?;
    ensure!(
        ready.message == status.last_result,
        "the site and its condition were written together: {status:?}"
    );
    Ok(status.last_result)
}

#[tokio::test]
async fn a_status_write_lands_only_while_its_writer_holds_the_sites_lease() -> Result<()> {
    let postgres = ThrowawayPostgres::start()?;
    let store = StateStore::open(&postgres.url()).await?;
    let sites = ["shop".to_owned()];
    let taken = store.acquire_leases("daemon-a", &sites, 1.0, 0.0).await?;
    let a = LeaseGuard {
        holder: "daemon-a".into(),
        fence: taken[0].1,
    };
    ensure!(store.update_site_held(&status_of("by a"), Some(&a)).await?);
    assert_eq!(last_result(&store).await?, "by a");

    // A's lease ends (a paused daemon): its writes no longer land, even before anyone takes it.
    std::thread::sleep(std::time::Duration::from_millis(1300));
    ensure!(
        !store
            .update_site_held(&status_of("late a"), Some(&a))
            .await?
    );
    let late = [Condition::new(
        ConditionType::Degraded,
        true,
        "Late",
        "late",
    )];
    ensure!(
        !store
            .update_conditions_held("shop", &late, Some(&a))
            .await?
    );
    let taken = store.acquire_leases("daemon-b", &sites, 30.0, 0.0).await?;
    let b = LeaseGuard {
        holder: "daemon-b".into(),
        fence: taken[0].1,
    };
    ensure!(b.fence > a.fence, "a new holder has a newer fence");
    ensure!(
        !store
            .update_site_held(&status_of("stale a"), Some(&a))
            .await?
    );
    // The same holder name with an old fence is stale too (a daemon that lost and took again).
    let old_fence = LeaseGuard {
        holder: "daemon-b".into(),
        fence: a.fence,
    };
    ensure!(
        !store
            .update_site_held(&status_of("old fence"), Some(&old_fence))
            .await?
    );
    assert_eq!(last_result(&store).await?, "by a");
    let status = store.site_status("shop").await?.context("shop")?;
    ensure!(
        status.condition(ConditionType::Degraded).is_none(),
        "{status:?}"
    );

    ensure!(store.update_site_held(&status_of("by b"), Some(&b)).await?);
    assert_eq!(last_result(&store).await?, "by b");
    // Without a lease (`siteward apply`, one daemon) a write lands as before.
    ensure!(store.update_site_held(&status_of("by apply"), None).await?);
    assert_eq!(last_result(&store).await?, "by apply");
    Ok(())
}
