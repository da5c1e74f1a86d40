//! Test support for integration tests: sandboxed hosts of `scripts/fleet`, the test app's git
//! repository, temporary spec workspaces and a runner for the `siteward` binary.
//!
//! ```ignore
//! mod support;
//! let web = support::Fleet::host("t-obs-a")?;          // starts the host, or reuses it
//! assert_eq!(web.exec("hostname")?.trim(), "t-obs-a");
//! let workspace = support::Workspace::with_servers(&[("web-1", &web)])?;
//! let run = workspace.siteward(&["validate"])?;
//! ```
//!
//! # Conventions: tests run in parallel
//! cargo-nextest runs every test in its own process, all at once, and test files never share a
//! process. Hosts are shared state, so:
//! - every test file uses its own hosts, named `t-<file>-<letter>` (`tests/fleet.rs` uses
//!   `t-fleet-a`, `t-fleet-b`, ...; `tests/observe.rs` would use `t-obs-a`); never another
//!   file's hosts;
//! - tests of one file that share a host use disjoint resources on it (site names, users,
//!   domains, databases, paths): prefix them with the test's name;
//! - a test that stops, crashes or wipes a host owns that host alone;
//! - branches of the test app repository are named `<host>/<purpose>` (see [`git_commit`]).
//!
//! Hosts keep their disk state between runs (a second run starts warm); tests must therefore
//! not assume a fresh host: create what they need idempotently, or clean up first.
#![allow(dead_code)]

pub mod daemon;
pub mod git;
pub mod migration;
pub mod postgres;
pub mod site;
pub mod sshd;
pub mod tls;

use std::collections::HashSet;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `scripts/fleet`.
pub fn fleet_script() -> PathBuf {
    repo_root().join("scripts/fleet")
}

/// The fleet of sandboxed hosts (`scripts/fleet`).
pub struct Fleet;

/// Hosts this process has brought up (and not taken down) already.
fn hosts_up() -> MutexGuard<'static, HashSet<String>> {
    static UP: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let up = UP.get_or_init(Default::default);
    up.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Fleet {
    /// Starts host `name` (or reuses it when it runs) and returns how to reach it. Every
    /// service answers when this returns. Cold start takes seconds, a running host ~1 s.
    pub fn host(name: &str) -> Result<Host> {
        if !hosts_up().contains(name) {
            // Not holding the mutex: other threads start their hosts meanwhile, and two `up`s
            // of one host are safe (scripts/fleet locks per host).
            Self::run(&["up", name])
                .with_context(|| format!("failed to start fleet host `{name}`"))?;
            hosts_up().insert(name.to_owned());
        }
        Self::describe(name)
    }

    /// Runs `scripts/fleet up NAME` even if this process started the host before: after a
    /// crash, it brings back whatever is not running.
    pub fn up(name: &str) -> Result<Host> {
        hosts_up().remove(name);
        Self::host(name)
    }

    /// How to reach host `name`, without starting it.
    pub fn describe(name: &str) -> Result<Host> {
        let env = Self::run(&["env", name])?;
        Host::from_env(&env)
    }

    /// Stops host `name`; its disk state stays.
    pub fn down(name: &str) -> Result<()> {
        hosts_up().remove(name);
        Self::run(&["down", name]).map(drop)
    }

    /// Runs `scripts/fleet ARGS` and returns its stdout; an error carries its stderr.
    pub fn run(args: &[&str]) -> Result<String> {
        let output = Command::new(fleet_script())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("failed to run scripts/fleet")?;
        CommandOutput::from(output).into_stdout(&format!("scripts/fleet {}", args.join(" ")))
    }
}

/// A running fleet host: a "server" with its own address, sshd and services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    /// `10.77.N.2`
    pub address: String,
    /// The machine's side of the host's link, `10.77.N.1`.
    pub gateway: String,
    pub port: u16,
    /// The login user: root, unless [`Host::logged_in_as`] says otherwise.
    pub user: String,
    /// The user with passwordless sudo every host has (`deploy`), with the same key.
    pub sudo_user: String,
    /// The client key authorised for root (and the sudo user) on every host.
    pub key_path: PathBuf,
    /// known_hosts with every host's key, `10.77.N.2 ssh-ed25519 ...`.
    pub known_hosts: PathBuf,
    /// The host key's fingerprint, `SHA256:...` (for `hostKey` pins).
    pub host_key: String,
    /// The test app repository as the hosts reach it.
    pub git_url: String,
}

impl Host {
    fn from_env(env: &str) -> Result<Host> {
        let value = |key: &str| -> Result<String> {
            env.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
                .with_context(|| format!("`scripts/fleet env` printed no {key}"))
        };
        Ok(Host {
            name: value("FLEET_HOST")?,
            address: value("FLEET_ADDRESS")?,
            gateway: value("FLEET_GATEWAY")?,
            port: value("FLEET_PORT")?.parse().context("bad FLEET_PORT")?,
            user: value("FLEET_USER")?,
            sudo_user: value("FLEET_SUDO_USER")?,
            key_path: value("FLEET_KEY")?.into(),
            known_hosts: value("FLEET_KNOWN_HOSTS")?.into(),
            host_key: value("FLEET_HOST_KEY")?,
            git_url: value("FLEET_GIT_URL")?,
        })
    }

    /// The host's address, `10.77.N.2`.
    /// The SSH target of this host for siteward's own transport: root by the fleet key,
    /// strict known_hosts, exec commands bounded by `exec`.
    pub fn ssh_target(&self, exec: std::time::Duration) -> siteward::transport::SshTarget {
        use siteward::transport::{Become, HostKeyPolicy, Identity, SshTarget, Timeouts};
        SshTarget {
            address: self.address.clone(),
            port: self.port,
            user: self.user.clone(),
            identity: Identity::File(self.key_path.clone()),
            host_keys: HostKeyPolicy {
                pinned: None,
                known_hosts: self.known_hosts.clone(),
                accept_new: false,
            },
            become_root: if self.user == "root" {
                Become::Direct
            } else {
                Become::SudoN
            },
            timeouts: Timeouts {
                exec,
                ..Timeouts::default()
            },
        }
    }

    /// This host, reached as `user` (e.g. [`Host::sudo_user`]): Server specs and SSH targets
    /// made from it log in as that user.
    pub fn logged_in_as(&self, user: &str) -> Host {
        Host {
            user: user.to_owned(),
            ..self.clone()
        }
    }

    /// Gives the host's sshd settings of its own (`scripts/fleet sshd-config`), e.g.
    /// `PermitRootLogin no` or `MaxSessions 2`; `""` removes them. Connections made before
    /// keep theirs.
    pub fn set_sshd_config(&self, settings: &str) -> Result<()> {
        let mut command = Command::new(fleet_script());
        command.args(["sshd-config", &self.name]);
        run_with_stdin(command, Some(settings.as_bytes()))?
            .into_stdout(&format!("scripts/fleet sshd-config {}", self.name))
            .map(drop)
    }

    pub fn ip(&self) -> &str {
        &self.address
    }

    /// Runs shell command `cmd` as root inside the host (bash, no ssh) and returns its stdout;
    /// a non-zero exit is an error carrying stderr.
    pub fn exec(&self, cmd: &str) -> Result<String> {
        self.exec_with_stdin(cmd, None)
    }

    /// Like [`Host::exec`], feeding `stdin` to the command.
    pub fn exec_with_stdin(&self, cmd: &str, stdin: Option<&[u8]>) -> Result<String> {
        let what = format!("`{cmd}` on {}", self.name);
        self.run(cmd, stdin)?.into_stdout(&what)
    }

    /// Runs `cmd` inside the host and returns its exit status and output, for commands that are
    /// expected to fail.
    pub fn run(&self, cmd: &str, stdin: Option<&[u8]>) -> Result<CommandOutput> {
        let mut command = Command::new(fleet_script());
        command.args(["exec", &self.name, "bash", "-c", cmd]);
        run_with_stdin(command, stdin)
            .with_context(|| format!("failed to run `{cmd}` on {}", self.name))
    }

    /// Runs `cmd` over real SSH from the machine (the key and known_hosts of the fleet).
    pub fn ssh(&self, cmd: &str) -> Result<String> {
        let command = self.ssh_command(cmd);
        let what = format!("`{cmd}` over ssh on {}", self.name);
        run_with_stdin(command, None)?.into_stdout(&what)
    }

    /// Cuts the host off the network (`scripts/fleet cut`): every packet to and from it is
    /// silently dropped, so new connections time out and connections in flight stall, as on a
    /// real network cut. `exec` (no network) keeps working. Undone by [`Host::heal_network`],
    /// by `scripts/fleet up` and by stopping the host.
    pub fn cut_network(&self) -> Result<()> {
        Fleet::run(&["cut", &self.name]).map(drop)
    }

    /// Undoes [`Host::cut_network`]; a no-op when the host is not cut.
    pub fn heal_network(&self) -> Result<()> {
        Fleet::run(&["heal", &self.name]).map(drop)
    }

    /// Whether the host's network is cut (`FLEET_CUT` of `scripts/fleet env`).
    pub fn network_is_cut(&self) -> Result<bool> {
        let env = Fleet::run(&["env", &self.name])?;
        Ok(env.lines().any(|line| line == "FLEET_CUT=yes"))
    }

    /// An `ssh` command running `cmd` on the host with the options of [`Host::ssh`], to spawn
    /// (streams, commands interrupted by a test).
    pub fn ssh_command(&self, cmd: &str) -> Command {
        let mut command = Command::new("ssh");
        command
            .args(["-i".as_ref(), self.key_path.as_os_str()])
            .arg(format!(
                "-oUserKnownHostsFile={}",
                self.known_hosts.display()
            ))
            .args([
                "-oStrictHostKeyChecking=yes",
                "-oBatchMode=yes",
                "-oConnectTimeout=10",
            ])
            .args(["-p", &self.port.to_string()])
            .arg(format!("{}@{}", self.user, self.address))
            .arg(cmd);
        command
    }

    /// The content of file `path` on the host.
    pub fn read_file(&self, path: &str) -> Result<String> {
        self.exec(&format!("cat -- {}", shell_quote(path)))
    }

    /// Whether `path` exists on the host.
    pub fn exists(&self, path: &str) -> Result<bool> {
        Ok(self
            .run(&format!("test -e {}", shell_quote(path)), None)?
            .status
            .success())
    }

    /// Writes `contents` to `path` on the host (parent directories created), as root.
    pub fn write_file(&self, path: &str, contents: &str) -> Result<()> {
        let path = shell_quote(path);
        let cmd = format!("mkdir -p -- \"$(dirname -- {path})\" && cat > {path}");
        self.exec_with_stdin(&cmd, Some(contents.as_bytes()))
            .map(drop)
    }

    /// Runs SQL as MariaDB's root (socket auth); returns tab-separated rows, no header, without
    /// the final newline.
    pub fn mysql(&self, sql: &str) -> Result<String> {
        let out =
            self.exec_with_stdin("mariadb --batch --skip-column-names", Some(sql.as_bytes()))?;
        Ok(out.trim_end_matches('\n').to_owned())
    }

    /// Runs SQL as PostgreSQL's `postgres` superuser (peer auth); returns `|`-separated rows
    /// without the final newline.
    pub fn psql(&self, sql: &str) -> Result<String> {
        let cmd = "cd / && runuser -u postgres -- psql -X -A -t -q -v ON_ERROR_STOP=1";
        let out = self.exec_with_stdin(cmd, Some(sql.as_bytes()))?;
        Ok(out.trim_end_matches('\n').to_owned())
    }

    /// Runs `redis-cli ARGS` on the host; returns its output without the final newline.
    pub fn redis(&self, args: &str) -> Result<String> {
        let out = self.exec(&format!("redis-cli {args}"))?;
        Ok(out.trim_end_matches('\n').to_owned())
    }

    /// GET `http://ADDRESS{path}` from the machine with header `Host: {host_header}`;
    /// returns the status code and the body.
    pub fn http_get(&self, host_header: &str, path: &str) -> Result<(u16, String)> {
        let url = format!("http://{}{}", self.address, path);
        let host = format!("Host: {host_header}");
        let what = format!("GET {url} (Host: {host_header})");
        curl_response(&what, &["--header", &host, &url], 20, None)
    }
}

/// The test app repository (`tests/fixtures/app`, branch `main` = tag `v2`, tag `v1` = the
/// first commit) as `host` clones it.
pub fn app_repo_url(host: &Host) -> String {
    host.git_url.clone()
}

/// Sets branch `branch` of the test app repository to `base` (default `main`) plus one commit
/// made by the bash `script`, which runs in a checkout. Returns the commit id, which is the same
/// for the same base, script result and message (fixed dates), so reruns change nothing.
/// Name branches `<host>/<purpose>`, e.g. `t-deploy-a/broken`.
pub fn git_commit(branch: &str, message: &str, base: Option<&str>, script: &str) -> Result<String> {
    let mut command = Command::new(fleet_script());
    command.args(["git-commit", branch, message, base.unwrap_or("main")]);
    let out = run_with_stdin(command, Some(script.as_bytes()))?
        .into_stdout("scripts/fleet git-commit")?;
    Ok(out.trim().to_owned())
}

/// A `Server` spec document for `host`, named `name`.
pub fn server_spec(name: &str, host: &Host) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
    format!(
        "apiVersion: siteward.dev/v1\n\
         kind: Server\n\
         metadata:\n  name: {name}\n\
         spec:\n  address: {address}\n  port: {port}\n  user: {user}\n  \
         identityFile: {key}\n  knownHostsFile: {known_hosts}\n  php: [\"8.2\"]\n  \
         mysql:\n    adminUser: root\n  postgres:\n    adminUser: postgres\n  \
         redis:\n    url: redis://127.0.0.1:6379\n",
        address = quote(&host.address),
        port = host.port,
        user = quote(&host.user),
        key = quote(&host.key_path.to_string_lossy()),
        known_hosts = quote(&host.known_hosts.to_string_lossy()),
    )
}

/// A temporary GitOps repository: specs under `specs/`, and the working directory of the
/// `siteward` runs (so `.siteward/` lands here too). Deleted when dropped.
pub struct Workspace {
    dir: TempDir,
}

impl Workspace {
    pub fn new() -> Result<Workspace> {
        let dir = tempfile::Builder::new()
            .prefix("siteward-test-")
            .tempdir()?;
        std::fs::create_dir_all(dir.path().join("specs"))?;
        Ok(Workspace { dir })
    }

    /// A workspace with one `Server` spec per `(name, host)` in `specs/servers/NAME.yaml`.
    pub fn with_servers(servers: &[(&str, &Host)]) -> Result<Workspace> {
        let workspace = Workspace::new()?;
        for (name, host) in servers {
            workspace.add_server(name, host)?;
        }
        Ok(workspace)
    }

    /// Writes `specs/servers/NAME.yaml` pointing at `host`.
    pub fn add_server(&self, name: &str, host: &Host) -> Result<PathBuf> {
        self.write_spec(&format!("servers/{name}.yaml"), &server_spec(name, host))
    }

    /// Writes `contents` to `specs/RELATIVE` (directories created); returns the path.
    pub fn write_spec(&self, relative: &str, contents: &str) -> Result<PathBuf> {
        let path = self.specs_dir().join(relative);
        std::fs::create_dir_all(path.parent().expect("a spec path has a parent"))?;
        std::fs::write(&path, contents)
            .with_context(|| format!("failed to write {}", path.display()))?;
        Ok(path)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn specs_dir(&self) -> PathBuf {
        self.root().join("specs")
    }

    /// Runs `siteward ARGS` in the workspace's root.
    pub fn siteward(&self, args: &[&str]) -> Result<CommandOutput> {
        siteward_in(self.root(), args, &[])
    }

    /// Runs `siteward ARGS` in the workspace's root with extra environment variables (secrets).
    pub fn siteward_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<CommandOutput> {
        siteward_in(self.root(), args, env)
    }
}

/// Runs the `siteward` binary built for these tests in directory `cwd`, with `NO_COLOR`, the
/// variables `env` and no ssh-agent but one `env` names (the tests' keys are files).
pub fn siteward_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<CommandOutput> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_siteward"));
    command.args(args).current_dir(cwd).env("NO_COLOR", "1");
    command.env_remove("SSH_AUTH_SOCK");
    command.envs(env.iter().copied());
    run_with_stdin(command, None)
        .with_context(|| format!("failed to run siteward {}", args.join(" ")))
}

/// A finished command: exit status, stdout and stderr (lossy UTF-8).
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// The exit code; `None` when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with both outputs unless the command succeeded.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Panics with both outputs unless the command exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "unexpected exit code: {self}");
        self
    }

    fn into_stdout(self, what: &str) -> Result<String> {
        if !self.success() {
            bail!("{what} failed: {self}");
        }
        Ok(self.stdout)
    }
}

impl From<Output> for CommandOutput {
    fn from(output: Output) -> Self {
        CommandOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl fmt::Display for CommandOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for CommandOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `curl` from the machine (no proxy, at most `max_seconds`) with `args` and `body` on its
/// stdin: the HTTP status and the body. `what` names the request when curl fails.
pub fn curl_response(
    what: &str,
    args: &[&str],
    max_seconds: u32,
    body: Option<&[u8]>,
) -> Result<(u16, String)> {
    let mut command = Command::new("curl");
    command
        .args(["--noproxy", "*", "--silent", "--show-error"])
        .args(["--max-time", &max_seconds.to_string()])
        .args(["--output", "-", "--write-out", "\n%{http_code}"])
        .args(args);
    let out = run_with_stdin(command, body)?.into_stdout(what)?;
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    let status = status
        .trim()
        .parse()
        .with_context(|| format!("{what}: no status in {out:?}"))?;
    Ok((status, body.to_owned()))
}

pub fn run_with_stdin(mut command: Command, stdin: Option<&[u8]>) -> Result<CommandOutput> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to start {command:?}"))?;
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        // A thread, so a command that writes much before reading cannot deadlock us; one that
        // exits without reading all of its input is not an error here.
        std::thread::spawn(move || drop(pipe.write_all(&input)))
    });
    let output = child.wait_with_output()?;
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Ok(output.into())
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
