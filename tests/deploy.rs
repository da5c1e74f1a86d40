//! Code deployment against real servers: releases, deploy scripts, the health gate, rollback,
//! pruning, worker restarts and zero-downtime switches. Hosts: `t-deploy-*`.

mod support;

use anyhow::{Context, Result, ensure};
use std::time::Duration;
use support::Fleet;
use support::site::{Shape, SiteUnderTest as Site, site_spec, version_commit, wait_for};

impl Site {
    /// What a deploy killed while it built leaves: a release directory `id` with code in it,
    /// no record of its commit, never switched to.
    fn leave_unfinished_release(&self, id: &str) -> Result<()> {
        let dir = format!("{}/releases/{id}", self.root());
        let user = self.name.replace('-', "_");
        self.host.exec(&format!(
            "mkdir -p {dir}/public && echo '<?php echo \"half built\";' > {dir}/public/index.php && chown -R {user}:{user} {dir}"
        ))?;
        Ok(())
    }

    fn worker_pids(&self) -> Result<String> {
        self.host.exec(&format!(
            "supervisorctl status 'siteward-{}-queue:*' | awk '$2 == \"RUNNING\" {{ print $4 }}' | sort | tr '\\n' ' '",
            self.name
        ))
    }
}

#[test]
fn a_first_deploy_serves_and_a_new_commit_on_the_branch_is_deployed_and_served() -> Result<()> {
    let host = Fleet::host("t-deploy-a")?;
    let branch = "t-deploy-a/first";
    let first = version_commit(branch, "first-1", None)?;
    let site = Site::following(&host, "dfirst", branch)?;
    site.apply()?.assert_success();
    let page = site.page()?;
    assert_eq!(page["version"], "first-1", "{page}");
    let release = site.current()?;
    assert_eq!(page["release"], release.as_str(), "{page}");

    let second = version_commit(branch, "first-2", Some(&first))?;
    let plan = site.siteward(&["plan"])?;
    plan.assert_success();
    let arrow = format!("{} → {}: Release first-2", &first[..12], &second[..12]);
    assert!(
        plan.stdout.contains(&arrow),
        "the plan shows {arrow}: {plan}"
    );
    site.apply()?.assert_success();
    let page = site.page()?;
    assert_eq!(page["version"], "first-2", "{page}");
    assert_ne!(page["release"], release.as_str(), "a new release: {page}");
    let report = site.siteward(&["report", "dfirst", "--format", "json"])?;
    assert!(
        report.stdout.contains("Release first-2"),
        "the deploy output names the subject: {report}"
    );
    let again = site.apply()?;
    again.assert_success();
    assert!(again.stdout.contains("No changes"), "{again}");
    Ok(())
}

#[test]
fn a_failing_deploy_script_leaves_the_old_release_serving() -> Result<()> {
    let host = Fleet::host("t-deploy-a")?;
    let branch = "t-deploy-a/script";
    let first = version_commit(branch, "script-1", None)?;
    let site = Site::following(&host, "dscript", branch)?;
    site.apply()?.assert_success();
    let live = site.current()?;
    version_commit(branch, "script-2", Some(&first))?;
    site.write(&Shape {
        branch,
        script: "echo broken >&2; exit 7",
        keep: 5,
    })?;
    let run = site.apply()?;
    run.assert_code(1);
    assert!(run.stderr.contains("deploy script"), "{run}");
    assert!(
        run.stderr.contains("| broken"),
        "the script's output streamed: {run}"
    );
    let report = site.siteward(&["report", "dscript", "--format", "json"])?;
    assert!(
        report.stdout.contains("broken"),
        "and is kept in the store: {report}"
    );
    assert_eq!(site.current()?, live);
    assert_eq!(site.page()?["version"], "script-1");
    assert_eq!(
        site.releases()?,
        vec![live],
        "the failed release is removed"
    );
    Ok(())
}

#[test]
fn a_commit_that_breaks_the_health_check_is_rolled_back_and_marked_bad() -> Result<()> {
    let host = Fleet::host("t-deploy-a")?;
    let branch = "t-deploy-a/health";
    let good = version_commit(branch, "health-1", None)?;
    let site = Site::following(&host, "dhealth", branch)?;
    site.apply()?.assert_success();
    site.wait_for_worker()?;
    let live = site.current()?;
    let breaking = "echo health-2 > VERSION; sed -i \"s|respond(200, 'text/plain; charset=utf-8', 'OK');|respond(500, 'text/plain; charset=utf-8', 'broken');|\" public/index.php; grep -q 'respond(500' public/index.php";
    let bad = support::git_commit(branch, "Break the health check", Some(&good), breaking)?;
    let run = site.apply()?;
    run.assert_code(1);
    assert!(run.stderr.contains("health check"), "{run}");
    assert_eq!(site.current()?, live, "switched back");
    assert_eq!(site.page()?["version"], "health-1");
    let releases = site.releases()?;
    let failed = releases
        .iter()
        .find(|r| **r != live)
        .context("the failed release")?;
    let marker = format!("{}/releases/{failed}/.siteward-bad", site.root());
    assert!(host.exists(&marker)?, "the failed release is marked bad");

    let plan = site.siteward(&["plan"])?;
    plan.assert_success();
    assert!(plan.stdout.contains("marked bad"), "{plan}");
    let again = site.apply()?;
    again.assert_success();
    assert_eq!(site.releases()?.len(), 2, "not deployed again: {again}");
    assert!(bad.len() >= 12);
    Ok(())
}

#[test]
fn rollback_goes_back_one_good_release_and_pruning_keeps_keep_releases() -> Result<()> {
    let host = Fleet::host("t-deploy-a")?;
    let branch = "t-deploy-a/rollback";
    let site = Site::following(&host, "droll", branch)?;
    site.write(&Shape {
        branch,
        script: "php artisan migrate --force",
        keep: 2,
    })?;
    let mut base: Option<String> = None;
    let mut served = Vec::new();
    // The release id one second after `id` (ids are UTC timestamps, YYYYMMDDHHMMSS).
    let next_id = |id: &str| -> Result<String> { Ok((id.parse::<u64>()? + 1).to_string()) };
    for n in 1..=3 {
        let commit = version_commit(branch, &format!("roll-{n}"), base.as_deref())?;
        site.apply()?.assert_success();
        served.push(site.current()?);
        base = Some(commit);
        if n == 2 {
            // Newer than the live release: pruning alone would keep it as "the one before".
            site.leave_unfinished_release(&next_id(&served[1])?)?;
            // So that the next release's id leaves room for one between the two.
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    assert_eq!(site.page()?["version"], "roll-3");
    assert_eq!(
        site.releases()?,
        served[1..].to_vec(),
        "keepReleases: 2, and the unfinished release removed by the next deploy"
    );
    // Between the two kept releases: never a rollback target.
    let unfinished = next_id(&served[1])?;
    assert!(
        unfinished < served[2],
        "{unfinished} sorts before {}",
        served[2]
    );
    site.leave_unfinished_release(&unfinished)?;

    let refused = site.siteward(&["rollback", "droll"])?;
    refused.assert_code(1);
    assert_eq!(
        site.current()?,
        served[2],
        "no rollback without confirmation"
    );
    let run = site.siteward(&["rollback", "droll", "--auto-approve"])?;
    run.assert_success();
    assert!(
        run.stdout.contains(&served[1]),
        "the plan names the release: {run}"
    );
    assert_eq!(site.current()?, served[1]);
    assert_eq!(site.page()?["version"], "roll-2");
    let nothing = site.siteward(&["rollback", "droll", "--auto-approve"])?;
    nothing.assert_code(1);
    assert!(
        nothing.stderr.contains("no good release older"),
        "{nothing}"
    );
    Ok(())
}

#[test]
fn two_sites_on_one_host_deploy_without_touching_each_others_workers() -> Result<()> {
    let host = Fleet::host("t-deploy-b")?;
    let branch = "t-deploy-b/pair";
    let first = version_commit(branch, "pair-1", None)?;
    let one = Site::following(&host, "dpair-one", branch)?;
    let other = Site::following(&host, "dpair-two", "main")?;
    one.apply()?.assert_success();
    other.apply()?.assert_success();
    one.wait_for_worker()?;
    other.wait_for_worker()?;
    std::thread::sleep(Duration::from_secs(2));
    let before = other.worker_pids()?;
    ensure!(!before.is_empty(), "the other site's worker runs");
    let one_before = one.worker_pids()?;
    version_commit(branch, "pair-2", Some(&first))?;
    one.apply()?.assert_success();
    wait_for(
        "the deployed site's worker restarting",
        Duration::from_secs(20),
        || Ok(one.worker_pids()? != one_before && !one.worker_pids()?.contains(" 0 ")),
    )?;
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        other.worker_pids()?,
        before,
        "the other site's workers untouched"
    );
    assert_eq!(other.page()?["version"], "v2");
    Ok(())
}

#[test]
fn after_a_deploy_the_workers_run_the_new_code() -> Result<()> {
    let host = Fleet::host("t-deploy-b")?;
    let branch = "t-deploy-b/jobs";
    let first = version_commit(branch, "jobs-1", None)?;
    let site = Site::following(&host, "djobs", branch)?;
    site.apply()?.assert_success();
    site.wait_for_worker()?;
    version_commit(branch, "jobs-2", Some(&first))?;
    site.apply()?.assert_success();
    let release = site.current()?;
    let log = "/var/log/supervisor/siteward-djobs-queue.log";
    wait_for(
        "a worker started on the new release",
        Duration::from_secs(30),
        || {
            Ok(host
                .read_file(log)?
                .contains(&format!("release {release})")))
        },
    )?;
    let id = format!("job-{release}");
    host.exec(&format!(
        "cd {}/current && runuser -u {} -- php artisan queue:push {id}",
        site.root(),
        site.user()
    ))?;
    let query = format!("SELECT release_dir FROM djobs.jobs_done WHERE job_id = '{id}'");
    let mut done = String::new();
    wait_for("the job done", Duration::from_secs(20), || {
        done = host.mysql(&query)?;
        Ok(!done.is_empty())
    })?;
    assert!(done.ends_with(&format!("/releases/{release}")), "{done}");
    Ok(())
}

#[test]
fn requests_running_across_a_deploy_never_fail() -> Result<()> {
    let host = Fleet::host("t-deploy-c")?;
    let branch = "t-deploy-c/loop";
    let first = version_commit(branch, "loop-1", None)?;
    let site = Site::following(&host, "dloop", branch)?;
    site.apply()?.assert_success();
    version_commit(branch, "loop-2", Some(&first))?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (failures, requests) = std::thread::scope(|scope| {
        let looping = scope.spawn(|| {
            let (mut failures, mut requests) = (Vec::new(), 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && requests < 5000 {
                requests += 1;
                match host.http_get("dloop.test", "/up") {
                    Ok((200, _)) => {}
                    other => failures.push(format!("{other:?}")),
                }
            }
            (failures, requests)
        });
        let run = site.apply();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        run.map(|r| {
            r.assert_success();
        })
        .and_then(|()| {
            looping
                .join()
                .map_err(|_| anyhow::anyhow!("the loop panicked"))
        })
    })?;
    assert!(requests > 10, "the loop ran: {requests}");
    assert_eq!(failures, Vec::<String>::new(), "of {requests} requests");
    assert_eq!(site.page()?["version"], "loop-2");
    Ok(())
}

#[test]
fn workers_without_laravel_restarts_are_restarted_by_supervisor_alone() -> Result<()> {
    let host = Fleet::host("t-deploy-b")?;
    let branch = "t-deploy-b/plain-workers";
    let first = version_commit(branch, "plain-1", None)?;
    let site = Site::following(&host, "dplain", branch)?;
    let neighbour = Site::following(&host, "dplain-nb", "main")?;
    let shape = |branch| Shape {
        branch,
        script: "php artisan migrate --force",
        keep: 5,
    };
    let spec = site_spec("dplain", &shape(branch)).replace(
        "  health:",
        "  laravel:\n    restartWorkers: false\n  health:",
    );
    site.workspace.write_spec("sites/dplain.yaml", &spec)?;
    site.apply()?.assert_success();
    neighbour.apply()?.assert_success();
    site.wait_for_worker()?;
    neighbour.wait_for_worker()?;
    std::thread::sleep(Duration::from_secs(2));
    let (before, neighbour_before) = (site.worker_pids()?, neighbour.worker_pids()?);
    ensure!(
        !before.trim().is_empty() && !neighbour_before.trim().is_empty(),
        "both workers run"
    );
    version_commit(branch, "plain-2", Some(&first))?;
    site.apply()?.assert_success();
    wait_for(
        "the worker restarted by supervisor",
        Duration::from_secs(20),
        || {
            let now = site.worker_pids()?;
            Ok(!now.trim().is_empty() && now != before)
        },
    )?;
    assert_eq!(
        neighbour.worker_pids()?,
        neighbour_before,
        "the neighbour's worker untouched"
    );
    Ok(())
}
