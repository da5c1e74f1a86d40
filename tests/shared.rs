//! Several `siteward watch` daemons sharing the sites through a real PostgreSQL (a throwaway
//! server on this machine): every site is reconciled by one daemon at a time — the steps each
//! run logs on the server, with its holder, fence and times, never overlap — a killed daemon's
//! sites are taken over, a paused one is fenced, the store going away stops all mutation and
//! nothing is done twice when it is back, and a migration whose daemon is killed is finished by
//! another. Hosts: `t-share-a`, `t-share-b`, `t-share-c`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use siteward::apply::lock::{self, LockOwner};
use siteward::transport::quote::quote;
use support::daemon::Watch;
use support::git;
use support::postgres::ThrowawayPostgres;
use support::site::{APP_KEY, Shape, clean_site, site_spec};
use support::{Fleet, Host, Workspace};

/// The lease of the daemons under test: short, so that takeovers come quickly.
const LEASE: &str = "6s";

/// Specs and secrets for daemons sharing one PostgreSQL store.
struct Team {
    workspace: Workspace,
    env: Vec<(String, String)>,
    postgres: ThrowawayPostgres,
}

impl Team {
    fn new(servers: &[(&str, &Host)]) -> Result<Team> {
        Ok(Team {
            workspace: Workspace::with_servers(servers)?,
            env: Vec::new(),
            postgres: ThrowawayPostgres::start()?,
        })
    }

    /// Writes site `name` on `server` (a clean start on `host`); `script` is its deploy script.
    fn site(
        &mut self,
        host: &Host,
        name: &str,
        server: &str,
        script: &str,
        extra: &str,
    ) -> Result<()> {
        clean_site(host, name)?;
        let shape = Shape {
            branch: "main",
            script,
            keep: 2,
        };
        let spec =
            site_spec(name, &shape).replace("  server: web\n", &format!("  server: {server}\n"));
        let upper = name.to_uppercase().replace('-', "_");
        self.env
            .push((format!("{upper}_APP_KEY"), APP_KEY.to_owned()));
        self.env
            .push((format!("{upper}_DB_PASSWORD"), format!("pw-{name}")));
        self.workspace
            .write_spec(&format!("sites/{name}.yaml"), &format!("{spec}{extra}"))?;
        Ok(())
    }

    fn daemon(&self) -> Result<Watch> {
        self.daemon_on(&self.workspace.specs_dir())
    }

    /// A daemon watching `specs` (a checkout of its own, say) with the team's store.
    fn daemon_on(&self, specs: &std::path::Path) -> Result<Watch> {
        Watch::start_with_state(
            self.workspace.root(),
            specs,
            &self.postgres.url(),
            &["--resync", "10m", "--lease", LEASE, "--git-interval", "10m"],
            &self.env,
        )
    }
}

/// The id a daemon goes by in the store.
fn daemon_id(watch: &Watch) -> Result<String> {
    let (_, body) = watch.get("/api/v1/sites")?;
    let json: serde_json::Value = serde_json::from_str(&body)?;
    json["daemon"]["shared"]["daemon"]
        .as_str()
        .map(str::to_owned)
        .context("the daemon shares the sites")
}

/// Which daemon holds each site's lease, as `watch`'s API says (from the store).
fn holders(watch: &Watch) -> Result<BTreeMap<String, String>> {
    let (_, body) = watch.get("/api/v1/sites")?;
    let json: serde_json::Value = serde_json::from_str(&body)?;
    Ok(json["sites"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|site| {
            Some((
                site["site"].as_str()?.to_owned(),
                site["heldBy"]["holder"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

fn all_ready(watch: &Watch, sites: &[String]) -> Result<bool> {
    for site in sites {
        if !watch.holds(site, "Ready") {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One line of a site's `steps.log` on its server.
#[derive(Debug)]
struct StepLine {
    at: f64,
    begins: bool,
    holder: String,
    fence: i64,
    what: String,
}

fn step_log(host: &Host, site: &str) -> Result<Vec<StepLine>> {
    let text = host.exec(&format!(
        "cat /var/lib/siteward/sites/{site}/steps.log 2>/dev/null; true"
    ))?;
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.splitn(5, ' ').collect();
            ensure!(words.len() == 5, "a step line: {line}");
            Ok(StepLine {
                at: words[0].parse()?,
                begins: words[1] == "begin",
                holder: words[2].to_owned(),
                fence: words[3].trim_start_matches("fence=").parse()?,
                what: words[4].to_owned(),
            })
        })
        .collect()
}

/// A line of a site's `locks.log`: who took or gave up the lock, when.
#[derive(Debug)]
struct LockLine {
    at: f64,
    acquired: bool,
    holder: String,
}

fn lock_log(host: &Host, site: &str) -> Result<Vec<LockLine>> {
    let text = host.exec(&format!(
        "cat /var/lib/siteward/sites/{site}/locks.log 2>/dev/null; true"
    ))?;
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            ensure!(words.len() >= 3, "a lock line: {line}");
            let acquired = words[1] == "acquired";
            let holder = if acquired {
                words[words.len() - 2]
            } else {
                words[2]
            };
            Ok(LockLine {
                at: words[0].parse()?,
                acquired,
                holder: holder.to_owned(),
            })
        })
        .collect()
}

/// Checks, from the server's own records, that every step ran while its run held the site's
/// lock, that no step of one holder began while a step of another ran, and that fences only
/// grow; returns the steps. (A step cut off with its connection logs no end: the next holder
/// could only take the lock once its guard was gone, so taking the lock closes it.)
fn never_overlapping(host: &Host, site: &str) -> Result<Vec<StepLine>> {
    let steps = step_log(host, site)?;
    let locks = lock_log(host, site)?;
    enum Event<'a> {
        Lock(&'a LockLine),
        Step(&'a StepLine),
    }
    let mut events: Vec<(f64, Event)> = locks
        .iter()
        .map(|l| (l.at, Event::Lock(l)))
        .chain(steps.iter().map(|s| (s.at, Event::Step(s))))
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut holder: Option<&str> = None;
    let mut running: Option<&StepLine> = None;
    let mut fence = 0;
    for (_, event) in &events {
        match event {
            Event::Lock(lock) if lock.acquired => {
                holder = Some(&lock.holder);
                running = running.filter(|r| r.holder == lock.holder);
            }
            Event::Lock(_) => holder = None,
            Event::Step(step) => {
                ensure!(
                    step.fence >= fence,
                    "{site}: fence {} after fence {fence}: {steps:#?}",
                    step.fence
                );
                fence = step.fence;
                if !step.begins {
                    running = running.filter(|r| r.holder != step.holder);
                    continue;
                }
                ensure!(
                    holder == Some(step.holder.as_str()),
                    "{site}: {} began `{}` while the lock was {holder:?}'s",
                    step.holder,
                    step.what
                );
                if let Some(other) = running {
                    ensure!(
                        other.holder == step.holder,
                        "{site}: {} began `{}` while {} ran `{}`",
                        step.holder,
                        step.what,
                        other.holder,
                        other.what
                    );
                }
                running = Some(step);
            }
        }
    }
    Ok(steps)
}

#[test]
fn a_stale_fence_is_refused_on_the_server_and_a_newer_one_takes_the_lock_over() -> Result<()> {
    let host = Fleet::host("t-share-c")?;
    let site = "shfence";
    host.exec(&format!("rm -rf /var/lib/siteward/sites/{site}"))?;
    let owner = |token: &str| LockOwner {
        token: token.into(),
        owner: "siteward watch".into(),
        machine: "elsewhere".into(),
        pid: 1,
        fences: None,
    };
    let (old, new) = (owner("daemon-old"), owner("daemon-new"));
    let lock_with = |owner: &LockOwner, fence: i64| -> Result<(u32, String)> {
        let script = include_str!("../src/apply/scripts/lock.sh");
        let output = host.run(
            &format!(
                "sh -s {site} {} watch elsewhere 1 1800 '' {fence}",
                owner.token
            ),
            Some(script.as_bytes()),
        )?;
        Ok((output.status.code().unwrap_or(-1) as u32, output.stdout))
    };
    let step = |owner: &LockOwner, fence: i64| -> Result<u32> {
        let command = lock::fenced(site, owner, fence, "touch", "echo ran >>/tmp/shfence-ran")?;
        Ok(host.run(&command, None)?.status.code().unwrap_or(-1) as u32)
    };
    host.exec("rm -f /tmp/shfence-ran")?;
    ensure!(lock_with(&old, 5)?.0 == 0, "the first daemon locks");
    ensure!(step(&old, 5)? == 0, "its step runs");
    let (status, answer) = lock_with(&new, 6)?;
    ensure!(
        status == 0,
        "a newer fence takes the unexpired lock over: {answer}"
    );
    ensure!(
        step(&old, 5)? == lock::FENCED_STATUS,
        "the old holder's next step is refused"
    );
    let (status, answer) = lock_with(&old, 5)?;
    ensure!(
        status == 5 && answer.contains("fence=6"),
        "the old holder cannot lock again: {status} {answer}"
    );
    ensure!(step(&new, 6)? == 0, "the new holder's step runs");
    let ran = host.read_file("/tmp/shfence-ran")?;
    ensure!(ran.lines().count() == 2, "two steps ran, not three: {ran}");

    // A step still running when a newer fence comes (its run lost its lease: paused, say) is
    // waited for a while, then stopped; the newer holder never runs beside it.
    let long = lock::fenced(
        site,
        &new,
        6,
        "long",
        "sleep 40; echo late >>/tmp/shfence-ran",
    )?;
    // In its own process group, as every command is under the server-side `timeout`.
    let long = format!("setsid -w sh -c {}", quote(&long)?);
    let runner = Fleet::host("t-share-c")?;
    let running = std::thread::spawn(move || runner.run(&long, None));
    let begun = || -> Result<bool> {
        Ok(step_log(&host, site)?
            .iter()
            .any(|l| l.what == "long" && l.begins))
    };
    while !begun()? {
        std::thread::sleep(Duration::from_millis(100));
    }
    let asked = std::time::Instant::now();
    let (status, answer) = lock_with(&owner("daemon-newest"), 7)?;
    let waited = asked.elapsed();
    ensure!(
        status == 0,
        "the newest fence takes the lock over: {answer}"
    );
    ensure!(
        waited >= Duration::from_secs(9),
        "it waited for the step before stopping it: {waited:?}"
    );
    let stopped = running
        .join()
        .map_err(|_| anyhow::anyhow!("the runner panicked"))??;
    ensure!(!stopped.status.success(), "the long step was stopped");
    std::thread::sleep(Duration::from_secs(1));
    let ran = host.read_file("/tmp/shfence-ran")?;
    ensure!(
        ran.lines().count() == 2,
        "the stopped step did not finish: {ran}"
    );
    let lines = never_overlapping(&host, site)?;
    ensure!(lines.len() == 5, "{lines:#?}");
    Ok(())
}

#[test]
fn three_daemons_share_eight_sites_and_a_killed_ones_sites_are_taken_over() -> Result<()> {
    let (a, b) = (Fleet::host("t-share-a")?, Fleet::host("t-share-b")?);
    let mut team = Team::new(&[("a", &a), ("b", &b)])?;
    let sites: Vec<String> = (1..=8).map(|i| format!("shared-{i}")).collect();
    let host_of = |site: &str| -> (&Host, &str) {
        let n: usize = site.trim_start_matches("shared-").parse().unwrap_or(0);
        if n <= 4 { (&a, "a") } else { (&b, "b") }
    };
    for site in &sites {
        let (host, server) = host_of(site);
        team.site(host, site, server, "php artisan migrate --force", "")?;
    }
    let mut daemons = vec![team.daemon()?, team.daemon()?, team.daemon()?];
    let ids: Vec<String> = daemons.iter().map(daemon_id).collect::<Result<_>>()?;
    daemons[0].wait_for("all eight sites Ready", Duration::from_secs(420), |w| {
        all_ready(w, &sites)
    })?;
    // Spread and settled: the same holders over more than a round (hand-overs are done).
    let mut last = BTreeMap::new();
    daemons[0].wait_for(
        "the sites spread over the daemons",
        Duration::from_secs(90),
        |w| {
            let held = holders(w)?;
            let distinct: BTreeSet<&String> = held.values().collect();
            let settled = held == last;
            last = held.clone();
            std::thread::sleep(Duration::from_secs(3));
            Ok(settled
                && held.len() == 8
                && distinct.len() >= 2
                && distinct.iter().all(|h| ids.contains(h)))
        },
    )?;
    let held = holders(&daemons[0])?;
    let listed = team
        .workspace
        .siteward(&["--state", &team.postgres.url(), "status"])?;
    for (site, holder) in &held {
        ensure!(
            listed
                .stdout
                .lines()
                .any(|l| l.starts_with(site.as_str()) && l.contains(holder.as_str())),
            "siteward status names {site}'s holder: {}",
            listed.stdout
        );
    }
    for site in &sites {
        let lines = never_overlapping(host_of(site).0, site)?;
        ensure!(!lines.is_empty(), "{site}: its steps are logged");
    }

    // A run asked of a daemon that does not hold the site reaches the one that does.
    let holder = ids
        .iter()
        .position(|id| held["shared-2"] == *id)
        .context("a holder")?;
    let asked = (holder + 1) % 3;
    let before = daemons[holder].reconciles("shared-2")?;
    let asked_before = daemons[asked].reconciles("shared-2")?;
    let (status, body) = daemons[asked].post_api("/api/v1/sites/shared-2/reconcile", "")?;
    ensure!(status == 202, "{status} {body}");
    daemons[holder].wait_for("the holder runs the site", Duration::from_secs(30), |w| {
        Ok(w.reconciles("shared-2")? > before)
    })?;
    ensure!(
        daemons[asked].reconciles("shared-2")? == asked_before,
        "the daemon asked did not run it itself"
    );

    // kill -9 the holder of shared-1: its sites go to the others, which repair their drift.
    let victim = ids
        .iter()
        .position(|id| held["shared-1"] == *id)
        .context("shared-1's holder is a daemon")?;
    let lost: Vec<String> = held
        .iter()
        .filter(|(_, h)| **h == ids[victim])
        .map(|(s, _)| s.clone())
        .collect();
    daemons[victim].kill()?;
    for site in &lost {
        host_of(site)
            .0
            .exec(&format!("rm -f /etc/cron.d/siteward-{site}"))?;
    }
    let survivor = &daemons[(victim + 1) % 3];
    survivor.wait_for(
        "the killed daemon's sites taken over and repaired",
        Duration::from_secs(120),
        |w| {
            let now = holders(w)?;
            for site in &lost {
                let taken = now.get(site).is_some_and(|h| *h != ids[victim]);
                if !taken
                    || !host_of(site)
                        .0
                        .exists(&format!("/etc/cron.d/siteward-{site}"))?
                {
                    return Ok(false);
                }
            }
            all_ready(w, &sites)
        },
    )?;
    for site in &lost {
        let lines = never_overlapping(host_of(site).0, site)?;
        let last = lines.last().context("steps after the takeover")?;
        ensure!(
            last.holder != ids[victim],
            "{site}: repaired by another daemon"
        );
    }

    // SIGTERM: the survivors give their leases up.
    for (index, daemon) in daemons.into_iter().enumerate() {
        if index != victim {
            let status = daemon.stop(Duration::from_secs(60))?;
            ensure!(status.success(), "exit {status}");
        }
    }
    let left = team
        .postgres
        .query("SELECT count(*) FROM site_leases l JOIN daemons d ON d.id = l.holder")?;
    ensure!(left == "0", "no lease of a stopped daemon is left: {left}");
    Ok(())
}

#[test]
fn a_webhook_to_one_daemon_has_the_holder_of_the_changed_site_apply_it() -> Result<()> {
    let b = Fleet::host("t-share-b")?;
    let mut team = Team::new(&[("b", &b)])?;
    team.site(&b, "shhook", "b", "php artisan migrate --force", "")?;
    let bare = git::publish(&team.workspace)?;
    let checkouts = [
        git::clone(&team.workspace, "checkout-1")?,
        git::clone(&team.workspace, "checkout-2")?,
    ];
    let daemons = [
        team.daemon_on(&checkouts[0])?,
        team.daemon_on(&checkouts[1])?,
    ];
    let ids: Vec<String> = daemons.iter().map(daemon_id).collect::<Result<_>>()?;
    // Ready, and held by the same daemon over more than a round (hand-overs are done).
    let mut last = None;
    daemons[0].wait_for("shhook Ready and settled", Duration::from_secs(180), |w| {
        let holder = holders(w)?.get("shhook").cloned();
        let settled = holder.is_some() && holder == last;
        last = holder;
        std::thread::sleep(Duration::from_secs(3));
        Ok(settled && w.holds("shhook", "Ready"))
    })?;
    let holder = ids
        .iter()
        .position(|id| {
            holders(&daemons[0])
                .ok()
                .and_then(|h| h.get("shhook").cloned())
                == Some(id.clone())
        })
        .context("shhook's holder is a daemon")?;
    let asked = &daemons[1 - holder];
    git::push_edit(
        &team.workspace,
        &bare,
        "sites/shhook.yaml",
        "APP_NAME: shhook",
        "APP_NAME: shhook-hooked",
    )?;
    let body = br#"{"ref":"refs/heads/main"}"#;
    let signed = format!("X-Hub-Signature-256: sha256={}", git::hmac_hex(body));
    let (code, answer) = asked.post("/hooks/git", &[&signed, "X-GitHub-Event: push"], body)?;
    ensure!(code == 202, "{code} {answer}");
    daemons[holder].wait_for(
        "the holder applies the pushed commit",
        Duration::from_secs(60),
        |_| {
            let env = b.read_file("/home/shhook/shhook.test/shared/.env")?;
            Ok(env.lines().any(|l| l == "APP_NAME=shhook-hooked"))
        },
    )?;
    Ok(())
}

#[test]
fn a_paused_daemon_is_fenced_and_without_its_store_no_daemon_acts() -> Result<()> {
    let c = Fleet::host("t-share-c")?;
    let mut team = Team::new(&[("c", &c)])?;
    let sites = vec!["shpause".to_owned(), "shstore".to_owned()];
    team.site(
        &c,
        "shpause",
        "c",
        "sleep 8; php artisan migrate --force",
        "",
    )?;
    team.site(&c, "shstore", "c", "php artisan migrate --force", "")?;

    // The first daemon is paused in the middle of a deploy step; the second takes the site.
    let first = team.daemon()?;
    let first_id = daemon_id(&first)?;
    first.wait_for("the slow deploy running", Duration::from_secs(120), |_| {
        Ok(c.exec("pgrep -f '^sleep 8$' >/dev/null && echo yes; true")?
            .contains("yes"))
    })?;
    first.signal("STOP")?;
    let paused_at = now();
    let second = team.daemon()?;
    let second_id = daemon_id(&second)?;
    second.wait_for(
        "the second daemon converges both sites",
        Duration::from_secs(180),
        |w| {
            let held = holders(w)?;
            Ok(sites.iter().all(|s| held.get(s) == Some(&second_id)) && all_ready(w, &sites)?)
        },
    )?;
    first.signal("CONT")?;
    first.wait_for(
        "the first daemon notices it lost the sites",
        Duration::from_secs(60),
        |w| {
            Ok(w.log_text().contains("lease of site `shpause`")
                || w.log_text()
                    .contains("the site's lease is another daemon's now"))
        },
    )?;
    std::thread::sleep(Duration::from_secs(4));
    let lines = never_overlapping(&c, "shpause")?;
    let taken_at = lines
        .iter()
        .find(|l| l.holder == second_id)
        .context("the second daemon ran steps")?
        .at;
    ensure!(
        lines
            .iter()
            .all(|l| l.holder != first_id || l.at < taken_at),
        "the paused daemon acted after the takeover: {lines:#?}"
    );
    ensure!(paused_at < taken_at + 60.0, "sanity: times are comparable");

    // The store goes away: both stop acting once their leases end, say so, and come back.
    for site in &sites {
        c.exec(&format!("rm -f /etc/cron.d/siteward-{site}"))?;
        let (status, body) = first.post_api(&format!("/api/v1/sites/{site}/reconcile"), "")?;
        ensure!(status == 202, "{status} {body}");
    }
    team.postgres.stop()?;
    let stopped_at = now();
    for daemon in [&first, &second] {
        daemon.wait_for(
            "the store reported unreachable",
            Duration::from_secs(30),
            |w| {
                let (_, body) = w.get("/api/v1/sites")?;
                let json: serde_json::Value = serde_json::from_str(&body)?;
                Ok(json["daemon"]["store"]["reachable"] == false)
            },
        )?;
    }
    let (status, page) = second.get("/")?;
    ensure!(
        status == 200 && page.contains("Unreachable"),
        "the status page says so: {page}"
    );
    // Once the leases' time is up, drift and requests to both daemons change nothing.
    let leases_over = stopped_at + 8.0;
    std::thread::sleep(Duration::from_secs_f64((leases_over - now()).max(0.0)));
    for site in &sites {
        c.exec(&format!("rm -f /etc/cron.d/siteward-{site}"))?;
        for daemon in [&first, &second] {
            let (status, body) = daemon.post_api(&format!("/api/v1/sites/{site}/reconcile"), "")?;
            ensure!(status == 202, "{status} {body}");
        }
    }
    std::thread::sleep(Duration::from_secs(6));
    for site in &sites {
        ensure!(
            !c.exists(&format!("/etc/cron.d/siteward-{site}"))?,
            "{site}: repaired while no daemon could hold its lease"
        );
        let lines = step_log(&c, site)?;
        ensure!(
            lines.iter().all(|l| !l.begins || l.at < leases_over),
            "{site}: a step began after the leases ended: {lines:#?}"
        );
    }
    team.postgres.start_again()?;
    let repaired = second.wait_for(
        "both sites repaired once the store is back",
        Duration::from_secs(120),
        |w| {
            Ok(sites.iter().all(|s| {
                c.exists(&format!("/etc/cron.d/siteward-{s}"))
                    .unwrap_or(false)
            }) && all_ready(w, &sites)?)
        },
    );
    if let Err(error) = repaired {
        let (_, body) = second.get("/api/v1/sites")?;
        anyhow::bail!(
            "{error}\nthe API: {body}\nthe first daemon's log: {}",
            first.log_text()
        );
    }
    for site in &sites {
        let lines = never_overlapping(&c, site)?;
        let mut done = BTreeSet::new();
        for line in lines.iter().filter(|l| !l.begins && l.at > leases_over) {
            if line.what.ends_with("rc=0") {
                ensure!(
                    done.insert(line.what.clone()),
                    "{site}: `{}` done twice: {lines:#?}",
                    line.what
                );
            }
        }
    }
    Ok(())
}

#[test]
fn a_migration_whose_daemon_is_killed_is_finished_verified_by_another() -> Result<()> {
    let (d, e) = (Fleet::host("t-share-c")?, Fleet::host("t-share-a")?);
    let mut team = Team::new(&[("d", &d), ("e", &e)])?;
    clean_site(&e, "shmove")?;
    team.site(
        &d,
        "shmove",
        "d",
        "php artisan migrate --force",
        "  migration:\n    mode: final-sync\n    onSource: stop\n",
    )?;
    let mut daemons = vec![team.daemon()?, team.daemon()?];
    let ids: Vec<String> = daemons.iter().map(daemon_id).collect::<Result<_>>()?;
    daemons[0].wait_for("shmove Ready", Duration::from_secs(180), |w| {
        Ok(w.holds("shmove", "Ready"))
    })?;
    let path = team.workspace.specs_dir().join("sites/shmove.yaml");
    let spec = std::fs::read_to_string(&path)?
        .replace("  server: d\n", "  server: e\n")
        .replace(
            "      php artisan migrate --force",
            "      sleep 8; php artisan migrate --force",
        );
    ensure!(
        spec.contains("sleep 8"),
        "the deploy script is slowed: {spec}"
    );
    team.workspace.write_spec("sites/shmove.yaml", &spec)?;
    daemons[0].wait_for(
        "the migration installing on e",
        Duration::from_secs(180),
        |_| {
            Ok(e.exec("pgrep -f '^sleep 8$' >/dev/null && echo yes; true")?
                .contains("yes"))
        },
    )?;
    let held = holders(&daemons[0])?;
    let victim = ids
        .iter()
        .position(|id| held.get("shmove") == Some(id))
        .context("shmove's holder is a daemon")?;
    daemons[victim].kill()?;
    let other = &daemons[1 - victim];
    other.wait_for(
        "the migration finished by the other daemon",
        Duration::from_secs(300),
        |w| {
            let detail = w.site("shmove")?;
            Ok(detail["site"]["server"] == "e" && w.holds("shmove", "Ready"))
        },
    )?;
    let detail = other.site("shmove")?;
    ensure!(
        detail["site"]["heldBy"]["holder"] == ids[1 - victim].as_str(),
        "held by the survivor: {detail}"
    );
    let migration = &detail["migration"];
    ensure!(
        migration["ok"] == true,
        "the migration report: {migration}\n{detail}\n{}",
        other.log_text()
    );
    let verified = migration["database"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|copy| copy["tables"].as_array().is_some_and(|t| !t.is_empty()));
    ensure!(
        verified,
        "the tables were compared on both servers: {migration}"
    );
    let (status, body) = e.http_get("shmove.test", "/up")?;
    ensure!((status, body.trim()) == (200, "OK"), "{status} {body}");
    never_overlapping(&e, "shmove")?;
    drop(daemons);
    Ok(())
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
