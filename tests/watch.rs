//! `siteward watch` against real servers: it converges sites on two hosts, reconciles only what
//! a spec edit touched, applies commits pushed to the specs' remote (on its clock and at once on
//! a signed webhook), repairs drift at the resync (only reports it under `driftPolicy:
//! detect`), degrades a site whose health check fails, keeps going when a host is cut off,
//! degrades a crashing worker, stops cleanly on SIGTERM, migrates a re-pointed site, and shows
//! it all on its status page (headless Chromium). Hosts: `t-watch-a`, `t-watch-b`, `t-watch-c`
//! (cut off), `t-watch-d`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use support::daemon::Watch;
use support::git;
use support::site::{APP_KEY, Shape, clean_site, site_spec};
use support::{Fleet, Host, Workspace};

/// A workspace of sites for a daemon: Servers, site specs and their secrets.
struct Specs {
    workspace: Workspace,
    env: Vec<(String, String)>,
}

impl Specs {
    fn new(servers: &[(&str, &Host)]) -> Result<Specs> {
        Ok(Specs {
            workspace: Workspace::with_servers(servers)?,
            env: Vec::new(),
        })
    }

    /// Writes site `name` on `server` (a clean start on `host`), with `extra` spec lines.
    fn site(&mut self, host: &Host, name: &str, server: &str, extra: &str) -> Result<PathBuf> {
        clean_site(host, name)?;
        self.write(name, server, extra)
    }

    fn write(&mut self, name: &str, server: &str, extra: &str) -> Result<PathBuf> {
        let shape = Shape {
            branch: "main",
            script: "php artisan migrate --force",
            keep: 2,
        };
        let spec =
            site_spec(name, &shape).replace("  server: web\n", &format!("  server: {server}\n"));
        let upper = name.to_uppercase().replace('-', "_");
        for (key, value) in [
            (format!("{upper}_APP_KEY"), APP_KEY.to_owned()),
            (format!("{upper}_DB_PASSWORD"), format!("pw-{name}")),
        ] {
            if !self.env.iter().any(|(k, _)| *k == key) {
                self.env.push((key, value));
            }
        }
        self.workspace
            .write_spec(&format!("sites/{name}.yaml"), &format!("{spec}{extra}"))
    }

    fn watch(&self, args: &[&str]) -> Result<Watch> {
        Watch::start(
            self.workspace.root(),
            &self.workspace.specs_dir(),
            args,
            &self.env,
        )
    }
}

fn ready(watch: &Watch, site: &str) -> Result<bool> {
    Ok(watch.holds(site, "Ready"))
}

fn wait_ready(watch: &Watch, sites: &[&str], limit: Duration) -> Result<()> {
    watch.wait_for(&format!("{sites:?} Ready"), limit, |w| {
        for site in sites {
            if !ready(w, site)? {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

fn env_line(host: &Host, site: &str, key: &str) -> Result<String> {
    let user = site.replace('-', "_");
    let env = host.read_file(&format!("/home/{user}/{site}.test/shared/.env"))?;
    Ok(env
        .lines()
        .find(|l| l.starts_with(&format!("{key}=")))
        .unwrap_or_default()
        .to_owned())
}

#[test]
fn a_daemon_converges_sites_on_two_hosts_and_a_spec_edit_reconciles_only_that_site() -> Result<()> {
    let (a, b) = (Fleet::host("t-watch-a")?, Fleet::host("t-watch-b")?);
    let mut specs = Specs::new(&[("a", &a), ("b", &b)])?;
    specs.site(&a, "wconv-1", "a", "")?;
    specs.site(&a, "wconv-2", "a", "")?;
    specs.site(&b, "wconv-3", "b", "")?;
    let watch = specs.watch(&["--resync", "10m"])?;
    wait_ready(
        &watch,
        &["wconv-1", "wconv-2", "wconv-3"],
        Duration::from_secs(180),
    )?;
    for (host, site) in [(&a, "wconv-1"), (&a, "wconv-2"), (&b, "wconv-3")] {
        let (status, body) = host.http_get(&format!("{site}.test"), "/up")?;
        ensure!(
            (status, body.trim()) == (200, "OK"),
            "{site}: {status} {body}"
        );
    }
    let before: Vec<f64> = ["wconv-1", "wconv-2", "wconv-3"]
        .iter()
        .map(|s| watch.reconciles(s))
        .collect::<Result<_>>()?;

    let spec = std::fs::read_to_string(specs.workspace.specs_dir().join("sites/wconv-2.yaml"))?;
    let edited = spec.replace("APP_NAME: wconv-2", "APP_NAME: wconv-2-renamed");
    specs.workspace.write_spec("sites/wconv-2.yaml", &edited)?;
    watch.wait_for("the edit applied", Duration::from_secs(30), |_| {
        Ok(env_line(&a, "wconv-2", "APP_NAME")? == "APP_NAME=wconv-2-renamed")
    })?;
    wait_ready(&watch, &["wconv-2"], Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(2));
    let after: Vec<f64> = ["wconv-1", "wconv-2", "wconv-3"]
        .iter()
        .map(|s| watch.reconciles(s))
        .collect::<Result<_>>()?;
    ensure!(
        after[1] > before[1],
        "wconv-2 was reconciled: {before:?} → {after:?}"
    );
    ensure!(
        after[0] == before[0] && after[2] == before[2],
        "only wconv-2: {before:?} → {after:?}"
    );

    // A site the specs drop is left as it is, reported orphaned, and its series go.
    std::fs::remove_file(specs.workspace.specs_dir().join("sites/wconv-3.yaml"))?;
    watch.wait_for("wconv-3 orphaned", Duration::from_secs(30), |w| {
        let (_, metrics) = w.get("/metrics")?;
        Ok(w.holds("wconv-3", "Orphaned") && !metrics.contains("site=\"wconv-3\""))
    })?;
    let (status, _) = b.http_get("wconv-3.test", "/up")?;
    ensure!(status == 200, "an orphaned site keeps running");
    let status = watch.stop(Duration::from_secs(30))?;
    ensure!(status.success(), "exit {status}");
    Ok(())
}

/// A bare repository holding `specs`, and a clone of it for the daemon to watch.
fn specs_repository(specs: &Specs) -> Result<(PathBuf, PathBuf)> {
    let bare = git::publish(&specs.workspace)?;
    Ok((bare, git::clone(&specs.workspace, "checkout")?))
}

/// Commits `edit` (file, old, new) to the bare repository through the workspace's checkout.
fn push_edit(specs: &Specs, bare: &Path, file: &str, old: &str, new: &str) -> Result<()> {
    git::push_edit(&specs.workspace, bare, file, old, new)
}

#[test]
fn commits_pushed_to_the_specs_remote_are_applied_on_the_interval_and_on_a_signed_webhook()
-> Result<()> {
    let a = Fleet::host("t-watch-a")?;
    let mut specs = Specs::new(&[("a", &a)])?;
    specs.site(&a, "wgit", "a", "")?;
    let (bare, checkout) = specs_repository(&specs)?;
    let watch = Watch::start(
        specs.workspace.root(),
        &checkout,
        &["--git-interval", "3s", "--resync", "10m"],
        &specs.env,
    )?;
    wait_ready(&watch, &["wgit"], Duration::from_secs(120))?;
    push_edit(
        &specs,
        &bare,
        "sites/wgit.yaml",
        "APP_NAME: wgit",
        "APP_NAME: wgit-fetched",
    )?;
    watch.wait_for("the pushed commit applied", Duration::from_secs(40), |_| {
        Ok(env_line(&a, "wgit", "APP_NAME")? == "APP_NAME=wgit-fetched")
    })?;
    ensure!(watch.metric("siteward_git_fetch_total{result=\"forwarded\"}")? >= 1.0);
    watch.stop(Duration::from_secs(30))?;

    // On a long interval only a webhook brings the next commit at once.
    let watch = Watch::start(
        specs.workspace.root(),
        &checkout,
        &["--git-interval", "10m", "--resync", "10m"],
        &specs.env,
    )?;
    push_edit(
        &specs,
        &bare,
        "sites/wgit.yaml",
        "APP_NAME: wgit-fetched",
        "APP_NAME: wgit-hooked",
    )?;
    let body = br#"{"ref":"refs/heads/main"}"#;
    let (unsigned, _) = watch.post("/hooks/git", &[], body)?;
    let wrong = format!("X-Hub-Signature-256: sha256={}", "00".repeat(32));
    let (forged, _) = watch.post("/hooks/git", &[&wrong], body)?;
    ensure!(
        (unsigned, forged) == (401, 401),
        "unsigned {unsigned}, forged {forged}"
    );
    std::thread::sleep(Duration::from_secs(5));
    ensure!(
        env_line(&a, "wgit", "APP_NAME")? == "APP_NAME=wgit-fetched",
        "a refused hook changed nothing"
    );
    let signed = format!("X-Hub-Signature-256: sha256={}", git::hmac_hex(body));
    let (code, answer) = watch.post("/hooks/git", &[&signed, "X-GitHub-Event: push"], body)?;
    ensure!(code == 202, "{code} {answer}");
    watch.wait_for("the hooked commit applied", Duration::from_secs(30), |_| {
        Ok(env_line(&a, "wgit", "APP_NAME")? == "APP_NAME=wgit-hooked")
    })?;
    watch.stop(Duration::from_secs(30))?;
    Ok(())
}

#[test]
fn drift_by_hand_is_repaired_at_the_resync_and_only_reported_under_detect() -> Result<()> {
    let b = Fleet::host("t-watch-b")?;
    let mut specs = Specs::new(&[("b", &b)])?;
    specs.site(&b, "wfix", "b", "")?;
    specs.site(&b, "wdetect", "b", "  driftPolicy: detect\n")?;
    let watch = specs.watch(&["--resync", "4s"])?;
    // A new site is made whatever its policy; detect leaves what changes afterwards.
    wait_ready(&watch, &["wfix", "wdetect"], Duration::from_secs(120))?;
    let detected = "/etc/nginx/conf.d/siteward-wdetect.conf";
    let edited = format!("{}\n# edited by hand\n", b.read_file(detected)?);
    b.write_file(detected, &edited)?;
    watch.wait_for("wdetect drifted", Duration::from_secs(30), |w| {
        Ok(w.holds("wdetect", "Drifted"))
    })?;
    let (_, _, message) = watch.condition("wdetect", "Drifted")?.context("Drifted")?;
    ensure!(message.contains("nginx vhost"), "{message}");
    ensure!(watch.metric("siteward_drifted_resources{site=\"wdetect\"}")? >= 1.0);

    let vhost = "/etc/nginx/conf.d/siteward-wfix.conf";
    let original = b.read_file(vhost)?;
    b.write_file(vhost, &format!("{original}\n# edited by hand\n"))?;
    b.exec("supervisorctl stop 'siteward-wfix-queue:*'")?;
    b.exec("rm -f /etc/cron.d/siteward-wfix")?;
    watch.wait_for("the drift repaired", Duration::from_secs(60), |_| {
        let running = b
            .exec("supervisorctl status 'siteward-wfix-queue:*'; true")?
            .contains("RUNNING");
        Ok(b.read_file(vhost)? == original && running && b.exists("/etc/cron.d/siteward-wfix")?)
    })?;
    ensure!(
        b.read_file(detected)? == edited,
        "the detect site's drift was only reported"
    );
    ensure!(watch.holds("wdetect", "Drifted"));

    // A site whose health check fails (here: put in maintenance by hand, so it answers 503) is
    // Degraded and not Ready until it answers again; nothing in its spec can repair that.
    let down = "/home/wfix/wfix.test/shared/storage/framework/down";
    b.exec(&format!("touch {down}"))?;
    watch.wait_for(
        "wfix degraded by its health check",
        Duration::from_secs(30),
        |w| {
            Ok(w.condition("wfix", "Degraded")?
                .is_some_and(|(status, reason, _)| {
                    status == "True" && reason == "HealthCheckFailing"
                }))
        },
    )?;
    let (_, _, message) = watch.condition("wfix", "Degraded")?.context("Degraded")?;
    ensure!(message.contains("status 503"), "{message}");
    ensure!(!watch.holds("wfix", "Ready"));
    b.exec(&format!("rm {down}"))?;
    wait_ready(&watch, &["wfix"], Duration::from_secs(30))?;
    ensure!(!watch.holds("wfix", "Degraded"));
    watch.stop(Duration::from_secs(30))?;
    Ok(())
}

#[test]
fn a_cut_off_host_makes_only_its_sites_unreachable_and_they_heal() -> Result<()> {
    let (c, d) = (Fleet::up("t-watch-c")?, Fleet::host("t-watch-d")?);
    let mut specs = Specs::new(&[("c", &c), ("d", &d)])?;
    for (host, server) in [(&c, "c"), (&d, "d")] {
        let path = specs
            .workspace
            .specs_dir()
            .join(format!("servers/{server}.yaml"));
        let text = std::fs::read_to_string(&path)?;
        specs.workspace.write_spec(
            &format!("servers/{server}.yaml"),
            &format!("{text}  keepaliveSeconds: 2\n"),
        )?;
        let _ = host;
    }
    specs.site(&c, "wcut-c", "c", "")?;
    specs.site(&d, "wcut-d", "d", "")?;
    let watch = specs.watch(&["--resync", "3s"])?;
    wait_ready(&watch, &["wcut-c", "wcut-d"], Duration::from_secs(150))?;
    c.cut_network()?;
    let cut = watch.wait_for("wcut-c unreachable", Duration::from_secs(90), |w| {
        Ok(w.holds("wcut-c", "Unreachable"))
    });
    let during = watch.reconciles("wcut-d")?;
    std::thread::sleep(Duration::from_secs(8));
    let still = (
        watch.reconciles("wcut-d")?,
        watch.holds("wcut-d", "Ready"),
        watch.holds("wcut-d", "Unreachable"),
    );
    c.heal_network()?;
    cut?;
    ensure!(
        still.0 > during && still.1 && !still.2,
        "wcut-d kept reconciling: {during} → {still:?}"
    );
    watch.wait_for("wcut-c back", Duration::from_secs(120), |w| {
        Ok(w.holds("wcut-c", "Ready") && !w.holds("wcut-c", "Unreachable"))
    })?;
    watch.stop(Duration::from_secs(30))?;
    Ok(())
}

#[test]
fn a_worker_that_exits_at_once_fails_the_apply_with_its_log_and_is_degraded() -> Result<()> {
    let d = Fleet::host("t-watch-d")?;
    let mut specs = Specs::new(&[("d", &d)])?;
    specs.site(&d, "wcrash", "d", "")?;
    let path = specs.workspace.specs_dir().join("sites/wcrash.yaml");
    let spec = std::fs::read_to_string(&path)?.replace(
        "command: php artisan queue:work",
        "command: \"sh -c 'echo the queue broke, no broker; exit 3'\"",
    );
    specs.workspace.write_spec("sites/wcrash.yaml", &spec)?;
    let env: Vec<(&str, &str)> = specs
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let applied = specs
        .workspace
        .siteward_with_env(&["apply", "--auto-approve"], &env)?;
    applied.assert_code(1);
    ensure!(
        applied.stderr.contains("siteward-wcrash-queue"),
        "{applied}"
    );
    ensure!(
        applied.stderr.contains("the queue broke, no broker"),
        "its log lines: {applied}"
    );

    let watch = specs.watch(&["--resync", "3s"])?;
    watch.wait_for("wcrash Degraded", Duration::from_secs(90), |w| {
        Ok(w.condition("wcrash", "Degraded")?
            .is_some_and(|(status, _, message)| {
                status == "True" && message.contains("the queue broke")
            }))
    })?;
    let status = specs.workspace.siteward(&["status", "wcrash"])?;
    ensure!(status.stdout.contains("Degraded"), "{status}");
    watch.stop(Duration::from_secs(60))?;
    Ok(())
}

#[test]
fn sigterm_during_an_apply_lets_the_step_finish_and_releases_the_lock() -> Result<()> {
    let d = Fleet::host("t-watch-d")?;
    let mut specs = Specs::new(&[("d", &d)])?;
    specs.site(&d, "wterm", "d", "")?;
    let path = specs.workspace.specs_dir().join("sites/wterm.yaml");
    let spec = std::fs::read_to_string(&path)?.replace(
        "php artisan migrate --force",
        "sleep 6; php artisan migrate --force",
    );
    specs.workspace.write_spec("sites/wterm.yaml", &spec)?;
    let watch = specs.watch(&["--resync", "10m"])?;
    watch.wait_for("the deploy running", Duration::from_secs(90), |_| {
        Ok(d.exec("pgrep -f '^sleep 6$' >/dev/null && echo yes; true")?
            .contains("yes"))
    })?;
    let log = watch.log.clone();
    let status = watch.stop(Duration::from_secs(60))?;
    let log = std::fs::read_to_string(log)?;
    ensure!(status.success(), "exit {status}: {log}");
    ensure!(
        !d.exists("/var/lib/siteward/sites/wterm/lock")?,
        "the lock is released"
    );
    let live = d.exec("readlink /home/wterm/wterm.test/current; true")?;
    ensure!(
        live.contains("releases/"),
        "the deploy step finished: {live}\n{log}"
    );
    ensure!(
        !d.exists("/etc/cron.d/siteward-wterm")?,
        "the steps after it did not run (the next start goes on from there)"
    );
    Ok(())
}

#[test]
fn a_re_pointed_site_migrates_and_status_names_its_new_server() -> Result<()> {
    let (a, b) = (Fleet::host("t-watch-a")?, Fleet::host("t-watch-b")?);
    let mut specs = Specs::new(&[("a", &a), ("b", &b)])?;
    clean_site(&b, "wmove")?;
    specs.site(
        &a,
        "wmove",
        "a",
        "  migration:\n    mode: final-sync\n    onSource: stop\n",
    )?;
    let watch = specs.watch(&["--resync", "10m"])?;
    wait_ready(&watch, &["wmove"], Duration::from_secs(120))?;
    let path = specs.workspace.specs_dir().join("sites/wmove.yaml");
    let spec = std::fs::read_to_string(&path)?.replace("  server: a\n", "  server: b\n");
    specs.workspace.write_spec("sites/wmove.yaml", &spec)?;
    watch.wait_for("wmove Ready on b", Duration::from_secs(240), |w| {
        let detail = w.site("wmove")?;
        Ok(detail["site"]["server"] == "b" && w.holds("wmove", "Ready"))
    })?;
    let (status, body) = b.http_get("wmove.test", "/up")?;
    ensure!((status, body.trim()) == (200, "OK"), "{status} {body}");
    watch.stop(Duration::from_secs(60))?;
    let state = format!(
        "{}",
        specs.workspace.root().join(".siteward/state.db").display()
    );
    let listed = specs.workspace.siteward(&["--state", &state, "status"])?;
    let line = listed
        .stdout
        .lines()
        .find(|l| l.starts_with("wmove"))
        .context("wmove listed")?
        .to_owned();
    ensure!(line.split_whitespace().nth(1) == Some("b"), "{listed}");
    Ok(())
}

#[test]
fn triggers_during_a_run_give_exactly_one_more_run_and_suspended_sites_are_left_alone() -> Result<()>
{
    let b = Fleet::host("t-watch-b")?;
    let branch = "t-watch-b/twice";
    let first = support::site::version_commit(branch, "twice-1", None)?;
    let mut specs = Specs::new(&[("b", &b)])?;
    specs.site(&b, "wtwice", "b", "")?;
    let path = specs.workspace.specs_dir().join("sites/wtwice.yaml");
    let spec = std::fs::read_to_string(&path)?
        .replace("branch: main", &format!("branch: {branch}"))
        .replace(
            "php artisan migrate --force",
            "sleep 4; php artisan migrate --force",
        );
    specs.workspace.write_spec("sites/wtwice.yaml", &spec)?;
    let watch = specs.watch(&["--resync", "10m"])?;
    wait_ready(&watch, &["wtwice"], Duration::from_secs(120))?;
    // A new commit nothing tells the daemon about: the run asked for deploys it, slowly.
    support::site::version_commit(branch, "twice-2", Some(&first))?;
    let before = watch.reconciles("wtwice")?;
    let (asked, _) = watch.post_api("/api/v1/sites/wtwice/reconcile", "")?;
    ensure!(asked == 202);
    watch.wait_for("the deploy running", Duration::from_secs(30), |_| {
        Ok(b.exec("pgrep -f '^sleep 4' >/dev/null && echo yes; true")?
            .contains("yes"))
    })?;
    let (first, _) = watch.post_api("/api/v1/sites/wtwice/reconcile", "")?;
    let (second, _) = watch.post_api("/api/v1/sites/wtwice/reconcile", "")?;
    ensure!((first, second) == (202, 202));
    watch.wait_for("the runs done", Duration::from_secs(60), |w| {
        Ok(
            w.site("wtwice")?["site"]["running"] == false
                && w.reconciles("wtwice")? >= before + 2.0,
        )
    })?;
    std::thread::sleep(Duration::from_secs(3));
    let runs = watch.reconciles("wtwice")? - before;
    ensure!(
        runs == 2.0,
        "{runs} runs: the one asked for, and exactly one more"
    );
    ensure!(
        b.http_get("wtwice.test", "/")?.1.contains("twice-2"),
        "the new commit is live"
    );

    let (unauthorized, _) = watch.post("/api/v1/sites/wtwice/suspend", &[], b"{}")?;
    ensure!(unauthorized == 401);
    let (code, _) = watch.post_api(
        "/api/v1/sites/wtwice/suspend",
        r#"{"reason":"hotfix by hand"}"#,
    )?;
    ensure!(code == 200);
    ensure!(watch.holds("wtwice", "Suspended"));
    let (refused, _) = watch.post_api("/api/v1/sites/wtwice/reconcile", "")?;
    ensure!(
        refused == 409,
        "a suspended site is not reconciled on request"
    );
    let (code, _) = watch.post_api("/api/v1/sites/wtwice/resume", "")?;
    ensure!(code == 200 && !watch.holds("wtwice", "Suspended"));
    watch.stop(Duration::from_secs(30))?;
    Ok(())
}

/// Headless Chromium as root, with nothing reaching out to the network.
fn chromium(args: &[&str]) -> Result<std::process::Output> {
    let profile = tempfile::tempdir()?;
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .context("failed to run chromium")?;
    Ok(output)
}

#[test]
fn the_status_page_shows_each_site_in_chromium() -> Result<()> {
    let a = Fleet::host("t-watch-a")?;
    let mut specs = Specs::new(&[("a", &a)])?;
    specs.site(&a, "wpage-1", "a", "")?;
    specs.site(&a, "wpage-2", "a", "  driftPolicy: detect\n")?;
    let watch = specs.watch(&["--resync", "10m"])?;
    wait_ready(&watch, &["wpage-1", "wpage-2"], Duration::from_secs(120))?;
    let vhost = "/etc/nginx/conf.d/siteward-wpage-2.conf";
    a.write_file(
        vhost,
        &format!("{}\n# edited by hand\n", a.read_file(vhost)?),
    )?;
    let (code, _) = watch.post_api("/api/v1/sites/wpage-2/reconcile", "")?;
    ensure!(code == 202);
    watch.wait_for("wpage-2 drifted", Duration::from_secs(60), |w| {
        Ok(w.holds("wpage-2", "Drifted"))
    })?;
    let dom = chromium(&["--dump-dom", &watch.url("/")])?;
    ensure!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let html = String::from_utf8_lossy(&dom.stdout);
    for expected in ["wpage-1", "wpage-2", ">Ready<", ">Drifted<", ">a<"] {
        ensure!(html.contains(expected), "the page shows {expected}: {html}");
    }
    let detail = chromium(&["--dump-dom", &watch.url("/sites/wpage-2")])?;
    let html = String::from_utf8_lossy(&detail.stdout);
    ensure!(
        html.contains("Drift") && html.contains("siteward-wpage-2.conf"),
        "{html}"
    );
    let shot = support::repo_root().join("target/watch-status.png");
    let taken = chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1400,500",
        &watch.url("/"),
    ])?;
    ensure!(
        taken.status.success() && shot.exists(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    watch.stop(Duration::from_secs(30))?;
    Ok(())
}

#[test]
fn the_systemd_unit_verifies_as_written() -> Result<()> {
    let unit = support::repo_root().join("examples/systemd/siteward-watch.service");
    let work = tempfile::tempdir()?;
    // The unit runs /usr/local/bin/siteward as user `siteward`: both exist in a private mount
    // namespace for the check, the machine is left as it is (the checkout may itself live
    // under /tmp, so /tmp is not mounted over).
    let script = format!(
        "set -e; mount -t tmpfs tmpfs /usr/local/bin; cp {bin} /usr/local/bin/siteward; \
         cp /etc/passwd /etc/group {work}/; cp {unit} {work}/siteward-watch.service; \
         echo 'siteward:x:990:990::/var/lib/siteward:/usr/sbin/nologin' >> {work}/passwd; \
         echo 'siteward:x:990:' >> {work}/group; \
         mount --bind {work}/passwd /etc/passwd; mount --bind {work}/group /etc/group; \
         SYSTEMD_LOG_LEVEL=warning systemd-analyze verify {work}/siteward-watch.service",
        work = work.path().display(),
        bin = env!("CARGO_BIN_EXE_siteward"),
        unit = unit.display(),
    );
    let output = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
    Ok(())
}
