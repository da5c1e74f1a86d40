//! A `siteward watch` daemon under test: started over a workspace's specs on a free port, asked over HTTP (curl), stopped with SIGTERM; killed if a test ends without stopping it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The bearer token of the API in tests.
pub const TOKEN: &str = "test-token-1f2e3d";
/// The webhook secret in tests.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret-9a8b";

/// A running daemon.
pub struct Watch {
    child: Option<Child>,
    pub port: u16,
    /// Where its stderr goes.
    pub log: PathBuf,
    pub state: PathBuf,
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

impl Watch {
    /// Starts `siteward watch SPECS` in `cwd` with `args` and `env`, and waits for `/readyz`.
    pub fn start(
        cwd: &Path,
        specs: &Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> Result<Watch> {
        let state = cwd.join(".siteward/state.db");
        Watch::start_with_state(cwd, specs, &state.display().to_string(), args, env)
    }

    /// Starts `siteward --state STATE watch SPECS` (a path or a `postgres://` URL).
    pub fn start_with_state(
        cwd: &Path,
        specs: &Path,
        state: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Result<Watch> {
        let port = free_port();
        let log = cwd.join(format!("watch-{port}.log"));
        let stderr = std::fs::File::create(&log)?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_siteward"));
        command
            .arg("--state")
            .arg(state)
            .args(["watch", "--listen", &format!("127.0.0.1:{port}")])
            .arg(specs)
            .args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env("SITEWARD_LOG", "siteward=debug,warn")
            .env("SITEWARD_API_TOKEN", TOKEN)
            .env("SITEWARD_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env_remove("SSH_AUTH_SOCK")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command.spawn().context("failed to start siteward watch")?;
        let mut watch = Watch {
            child: Some(child),
            port,
            log,
            state: PathBuf::from(state),
        };
        watch.wait_ready()?;
        Ok(watch)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("siteward watch exited with {status}:\n{}", self.log_text());
            }
            if self.get("/readyz").is_ok_and(|(code, _)| code == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("siteward watch did not become ready:\n{}", self.log_text())
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// The daemon's base URL.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET `path`: status and body.
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        curl(&[&self.url(path)], None)
    }

    /// POST `path` with `headers` and `body`: status and body.
    pub fn post(&self, path: &str, headers: &[&str], body: &[u8]) -> Result<(u16, String)> {
        let url = self.url(path);
        let mut args: Vec<&str> = vec!["-X", "POST", &url, "--data-binary", "@-"];
        for header in headers {
            args.push("-H");
            args.push(header);
        }
        curl(&args, Some(body))
    }

    /// POST `path` with the API token.
    pub fn post_api(&self, path: &str, body: &str) -> Result<(u16, String)> {
        let auth = format!("Authorization: Bearer {TOKEN}");
        self.post(
            path,
            &[&auth, "Content-Type: application/json"],
            body.as_bytes(),
        )
    }

    /// `GET /api/v1/sites/NAME` as JSON.
    pub fn site(&self, name: &str) -> Result<serde_json::Value> {
        let (code, body) = self.get(&format!("/api/v1/sites/{name}"))?;
        anyhow::ensure!(code == 200, "GET site {name}: {code} {body}");
        serde_json::from_str(&body).context("site JSON")
    }

    /// The status (`True`, `False`, `Unknown`) of condition `kind` of `site`, if it has one.
    pub fn condition(&self, site: &str, kind: &str) -> Result<Option<(String, String, String)>> {
        let detail = self.site(site)?;
        Ok(detail["site"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
            .map(|c| {
                let text = |key: &str| c[key].as_str().unwrap_or_default().to_owned();
                (text("status"), text("reason"), text("message"))
            }))
    }

    /// Whether condition `kind` of `site` holds.
    pub fn holds(&self, site: &str, kind: &str) -> bool {
        matches!(self.condition(site, kind), Ok(Some((status, _, _))) if status == "True")
    }

    /// The value of the metric line that starts with `series` (e.g.
    /// `siteward_reconcile_total{site="a",result="ok"}`), 0 when absent.
    pub fn metric(&self, series: &str) -> Result<f64> {
        let (_, text) = self.get("/metrics")?;
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0))
    }

    /// Reconciles of `site` so far, whatever their result.
    pub fn reconciles(&self, site: &str) -> Result<f64> {
        let ok = self.metric(&format!(
            "siteward_reconcile_total{{site=\"{site}\",result=\"ok\"}}"
        ))?;
        let error = self.metric(&format!(
            "siteward_reconcile_total{{site=\"{site}\",result=\"error\"}}"
        ))?;
        Ok(ok + error)
    }

    /// Waits until `check` holds, polling every 250 ms; fails with the daemon's log.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&Watch) -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        let mut last_error = None;
        while Instant::now() < deadline {
            match check(self) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(error) => last_error = Some(error),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let log = self.log_text();
        let tail: Vec<&str> = log
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!(
            "{what} did not happen within {limit:?} (last error: {last_error:?}); the daemon's log ends:\n{}",
            tail.join("\n")
        )
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, name: &str) -> Result<()> {
        let pid = self.child.as_ref().context("not running")?.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()?;
        anyhow::ensure!(status.success(), "kill -{name} {pid}");
        Ok(())
    }

    /// The daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`, and waits for the process to end.
    pub fn kill(&mut self) -> Result<()> {
        let mut child = self.child.take().context("not running")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits (at most `limit`) for the exit.
    pub fn stop(mut self, limit: Duration) -> Result<ExitStatus> {
        self.signal("TERM")?;
        let mut child = self.child.take().context("not running")?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "siteward watch did not stop within {limit:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs curl with `args` (stdin `body`): the HTTP status and the body.
fn curl(args: &[&str], body: Option<&[u8]>) -> Result<(u16, String)> {
    super::curl_response(&format!("curl {args:?}"), args, 30, body)
}
