//! A throwaway OpenSSH server on 127.0.0.1 with host keys and settings a test controls, its
//! client keys, and an ssh-agent: for transport tests that need sshd configured in ways a fleet
//! host is not.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use siteward::transport::{
    Become, HostKeyPolicy, Identity, SshError, SshSession, SshTarget, Timeouts,
};
use tempfile::TempDir;

/// A key made by ssh-keygen: its private key file, its public line and OpenSSH's fingerprint.
pub struct Key {
    pub private: PathBuf,
    pub public_line: String,
    pub fingerprint: String,
}

pub fn run(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .expect(program);
    assert!(output.status.success(), "{program} {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

pub fn make_key(dir: &Path, name: &str, kind: &str, passphrase: &str) -> Key {
    let private = dir.join(name);
    let path = private.to_str().unwrap();
    let bits: &[&str] = if kind == "rsa" { &["-b", "2048"] } else { &[] };
    let mut args = vec!["-q", "-t", kind, "-N", passphrase, "-C", "", "-f", path];
    args.extend_from_slice(bits);
    run("ssh-keygen", &args);
    let public = std::fs::read_to_string(format!("{path}.pub")).unwrap();
    let public_line = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let listing = run(
        "ssh-keygen",
        &["-l", "-E", "sha256", "-f", &format!("{path}.pub")],
    );
    let fingerprint = listing.split_whitespace().nth(1).unwrap().to_owned();
    Key {
        private,
        public_line,
        fingerprint,
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An sshd on 127.0.0.1 that lets root in with `client_key`, stopped when dropped.
pub struct Sshd {
    pub dir: TempDir,
    pub port: u16,
    child: Option<Child>,
    pub host_keys: Vec<Key>,
    pub client_key: Key,
}

impl Sshd {
    pub fn start(host_key_kinds: &[&str]) -> Self {
        Self::start_with(host_key_kinds, "")
    }

    pub fn start_with(host_key_kinds: &[&str], extra_config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let client_key = make_key(dir.path(), "client", "ed25519", "");
        std::fs::write(
            dir.path().join("authorized_keys"),
            format!("{}\n", client_key.public_line),
        )
        .unwrap();
        let mut sshd = Self {
            port: free_port(),
            child: None,
            host_keys: Vec::new(),
            client_key,
            dir,
        };
        sshd.replace_host_keys(host_key_kinds, extra_config);
        sshd
    }

    /// Stops sshd and starts it again on the same port with new host keys.
    pub fn replace_host_keys(&mut self, kinds: &[&str], extra_config: &str) {
        self.stop();
        let generation = self.host_keys.len();
        self.host_keys = kinds
            .iter()
            .map(|kind| {
                make_key(
                    self.dir.path(),
                    &format!("host-{generation}-{kind}"),
                    kind,
                    "",
                )
            })
            .collect();
        let config = self.config(extra_config);
        let config_path = self.dir.path().join("sshd_config");
        std::fs::write(&config_path, config).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = std::fs::File::create(self.dir.path().join("sshd.log")).unwrap();
        let child = std::process::Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        self.child = Some(child);
        self.wait_until_listening();
    }

    pub fn config(&self, extra_config: &str) -> String {
        let host_keys: String = self
            .host_keys
            .iter()
            .map(|key| format!("HostKey {}\n", key.private.display()))
            .collect();
        // sshd keeps the first value of a keyword: the extra lines come first to override.
        format!(
            "{extra_config}\nPort {port}\nListenAddress 127.0.0.1\n{host_keys}PidFile none\n\
             AuthorizedKeysFile {dir}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nLogLevel VERBOSE\n",
            port = self.port,
            dir = self.dir.path().display(),
        )
    }

    pub fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "sshd did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn host_name(&self) -> String {
        format!("[127.0.0.1]:{}", self.port)
    }

    /// A known_hosts line for this server with `key`.
    pub fn known_line(&self, key: &Key) -> String {
        format!("{} {}", self.host_name(), key.public_line)
    }

    /// A target that knows nothing about this server's host keys (an empty known_hosts).
    pub fn target(&self) -> SshTarget {
        SshTarget {
            address: "127.0.0.1".to_owned(),
            port: self.port,
            user: "root".to_owned(),
            identity: Identity::File(self.client_key.private.clone()),
            host_keys: HostKeyPolicy {
                pinned: None,
                known_hosts: self.path("known_hosts"),
                accept_new: false,
            },
            become_root: Become::Direct,
            timeouts: quick_timeouts(),
        }
    }

    /// A target whose known_hosts holds this server's current host keys.
    pub fn trusted_target(&self) -> SshTarget {
        let lines: String = self
            .host_keys
            .iter()
            .map(|key| self.known_line(key) + "\n")
            .collect();
        std::fs::write(self.path("known_hosts"), lines).unwrap();
        self.target()
    }

    pub async fn session(&self) -> SshSession {
        SshSession::connect(&self.trusted_target())
            .await
            .expect("connects")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn quick_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        auth: Duration::from_secs(5),
        exec: Duration::from_secs(30),
        keepalive: Duration::from_secs(5),
    }
}

pub async fn connect_error(target: &SshTarget) -> SshError {
    SshSession::connect(target)
        .await
        .expect_err("the connection must be refused")
}

/// An ssh-agent holding one key, stopped when dropped.
pub struct Agent {
    pub socket: PathBuf,
    child: Child,
}

impl Agent {
    pub fn start(dir: &Path, key: &Path) -> Self {
        let socket = dir.join("agent.sock");
        let child = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent starts");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let added = std::process::Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .unwrap();
        assert!(added.status.success(), "{added:?}");
        Self { socket, child }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
