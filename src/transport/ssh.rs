//! The SSH transport over russh: one authenticated connection per server, strict host keys, timeouts on everything.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use russh::client::{self as russh_client, Handle};
use russh::keys::Algorithm;
use russh::{Disconnect, Preferred};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::known_hosts::{KnownHosts, KnownHostsError, host_name};
use super::quote::QuoteError;
use super::{Exit, Stdin, Transport, TransportError};
pub use channels::ChannelSlot;
use channels::Channels;
use exec::{Running, abandon, remote_command, summarize};
use target::endpoint_of;
pub use target::{Become, HostKeyPolicy, Identity, SshTarget, Timeouts};

mod auth;
mod channels;
mod client;
mod exec;
mod sudo;
mod target;

/// Everything that can go wrong talking to a server over SSH.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// Nothing listens on the port.
    #[error("connection to {endpoint} refused")]
    ConnectRefused {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection or the SSH handshake did not complete in time.
    #[error(
        "could not connect to {endpoint} within {bound:?} (host down, unreachable, or not an SSH server)"
    )]
    ConnectTimeout {
        /// `address:port`.
        endpoint: String,
        /// The configured bound.
        bound: Duration,
    },
    /// The TCP connection failed otherwise (unreachable, unknown host name).
    #[error("could not connect to {endpoint}")]
    Connect {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The SSH handshake failed.
    #[error("SSH handshake with {endpoint} failed")]
    Handshake {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<russh::Error>,
    },
    /// The host key is not in known_hosts.
    #[error(
        "host key of {} is unknown: it presented {fingerprint}, and {} holds no key for it; \
         hint: check the fingerprint out of band, then add it with `ssh-keyscan -p {port} {address} >> {}`, \
         run with `--accept-new-host-keys`, or pin it in the Server spec as `hostKey: {fingerprint}`",
        endpoint_of(address, *port), known_hosts.display(), known_hosts.display()
    )]
    HostKeyUnknown {
        /// The address as given.
        address: String,
        /// The port.
        port: u16,
        /// The presented key's `SHA256:` fingerprint.
        fingerprint: String,
        /// The file consulted.
        known_hosts: PathBuf,
    },
    /// Another key of the same type is recorded for the host.
    #[error(
        "host key of {} has CHANGED: it presented {fingerprint}, but {}:{line} holds {known_fingerprint}; \
         this is a reinstalled server or someone intercepting the connection; \
         hint: if the change is expected, remove the old key with `ssh-keygen -R '{}' -f {}` \
         and add the new one after checking it, or pin it as `hostKey: {fingerprint}`",
        endpoint_of(address, *port), known_hosts.display(), host_name(address, *port), known_hosts.display()
    )]
    HostKeyChanged {
        /// The address as given.
        address: String,
        /// The port.
        port: u16,
        /// The presented key's fingerprint.
        fingerprint: String,
        /// The recorded key's fingerprint.
        known_fingerprint: String,
        /// The file holding the old key.
        known_hosts: PathBuf,
        /// 1-based line of the old key.
        line: usize,
    },
    /// Only keys of other types are recorded for the host, and the server offers none of them.
    #[error(
        "host key of {} is of type {presented_type} ({fingerprint}), but {}:{line} holds a {known_type} key \
         for it and the server did not offer that type; hint: if the server's keys were replaced, \
         remove the old entry with `ssh-keygen -R '{}' -f {}` and add the new key after checking it",
        endpoint_of(address, *port), known_hosts.display(), host_name(address, *port), known_hosts.display()
    )]
    HostKeyOtherType {
        /// The address as given.
        address: String,
        /// The port.
        port: u16,
        /// The presented key's fingerprint.
        fingerprint: String,
        /// The presented key's type.
        presented_type: &'static str,
        /// The recorded key's type.
        known_type: &'static str,
        /// The file.
        known_hosts: PathBuf,
        /// 1-based line of the recorded key.
        line: usize,
    },
    /// The key is marked `@revoked`.
    #[error("host key of {endpoint} ({fingerprint}) is marked @revoked at {}:{line}", known_hosts.display())]
    HostKeyRevoked {
        /// `address:port`.
        endpoint: String,
        /// The presented key's fingerprint.
        fingerprint: String,
        /// The file.
        known_hosts: PathBuf,
        /// 1-based line of the `@revoked` entry.
        line: usize,
    },
    /// The host is vouched for by a certificate authority, which siteward does not verify.
    #[error(
        "host {endpoint} is listed under @cert-authority at {}:{line}, but siteward does not verify host \
         certificates; hint: pin the host key as `hostKey: {fingerprint}` after checking it",
        known_hosts.display()
    )]
    HostKeyCertAuthority {
        /// `address:port`.
        endpoint: String,
        /// The presented key's fingerprint.
        fingerprint: String,
        /// The file.
        known_hosts: PathBuf,
        /// 1-based line of the `@cert-authority` entry.
        line: usize,
    },
    /// The key does not match the pinned fingerprint.
    #[error(
        "host key of {endpoint} does not match the pinned fingerprint: it presented {fingerprint}, \
         the Server spec pins {pinned}; hint: if the server was reinstalled, check the new key and update `hostKey`"
    )]
    HostKeyPinMismatch {
        /// `address:port`.
        endpoint: String,
        /// The presented key's fingerprint.
        fingerprint: String,
        /// The pin.
        pinned: String,
    },
    /// The pin is not a `SHA256:` fingerprint.
    #[error(
        "pinned host key {pinned:?} is not a SHA256 fingerprint like `SHA256:` followed by 43 base64 characters"
    )]
    InvalidPin {
        /// The pin.
        pinned: String,
    },
    /// The known_hosts file could not be read or written.
    #[error("could not check the host key of {endpoint}")]
    KnownHosts {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: KnownHostsError,
    },
    /// The private key could not be loaded.
    #[error("could not load SSH key {}", path.display())]
    KeyLoad {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<russh::keys::Error>,
    },
    /// The private key is encrypted, and no ssh-agent holds it.
    #[error(
        "SSH key {} is encrypted and siteward never asks for passphrases; hint: load it into \
         ssh-agent (`eval \"$(ssh-agent)\"; ssh-add {}`) and run siteward with that agent's \
         SSH_AUTH_SOCK: the agent then signs with it", path.display(), path.display()
    )]
    KeyEncrypted {
        /// The key file.
        path: PathBuf,
    },
    /// sudo asks the login user for a password.
    #[error(
        "`{user}` on {endpoint} needs a password for sudo, and siteward runs every command \
         through `sudo -n`, which never asks; hint: allow it without one, as root on the server: \
         `echo '{user} ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/{user} && chmod 0440 \
         /etc/sudoers.d/{user} && visudo -c`, or log in as root (`user: root`)"
    )]
    SudoNeedsPassword {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
    },
    /// The server has no sudo.
    #[error(
        "{endpoint} has no `sudo`, and `{user}` is not root; hint: install it (`apt-get install \
         sudo`) and allow `{user}` passwordless sudo, or log in as root (`user: root`)"
    )]
    SudoMissing {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
    },
    /// sudo refused the login user.
    #[error(
        "`{user}` on {endpoint} may not run commands as root with `sudo -n`: {stderr}; hint: \
         allow it, as root on the server: `echo '{user} ALL=(ALL:ALL) NOPASSWD: ALL' > \
         /etc/sudoers.d/{user} && chmod 0440 /etc/sudoers.d/{user} && visudo -c`, or log in as \
         root (`user: root`)"
    )]
    SudoRefused {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
        /// What sudo said.
        stderr: String,
    },
    /// No key file is named and no ssh-agent is there to ask.
    #[error(
        "no `identityFile` is given, so siteward logs in with the keys of ssh-agent, but \
         SSH_AUTH_SOCK is not set; hint: name the key in the Server spec (`identityFile: \
         ~/.ssh/id_ed25519`), or start an agent and add the key: `eval \"$(ssh-agent)\"; ssh-add \
         ~/.ssh/id_ed25519`"
    )]
    NoAgent,
    /// The ssh-agent could not be reached or used.
    #[error(
        "could not use the ssh-agent at SSH_AUTH_SOCK; hint: check that the agent still runs \
         (`ssh-add -l`)"
    )]
    Agent {
        /// The cause.
        #[source]
        source: Box<russh::keys::Error>,
    },
    /// The ssh-agent failed while signing.
    #[error("ssh-agent failed to sign for {endpoint}")]
    AgentSign {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<russh::AgentAuthError>,
    },
    /// The server refused every key.
    #[error("authentication as `{user}` on {endpoint} failed with {identity}")]
    AuthFailed {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
        /// Which key(s) were tried.
        identity: String,
    },
    /// Authentication did not complete in time.
    #[error("authentication as `{user}` on {endpoint} did not complete within {bound:?}")]
    AuthTimeout {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
        /// The configured bound.
        bound: Duration,
    },
    /// The connection failed during authentication.
    #[error("authentication as `{user}` on {endpoint} failed")]
    Auth {
        /// The login user.
        user: String,
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<russh::Error>,
    },
    /// A channel could not be opened or used (the connection is probably gone).
    #[error("SSH channel to {endpoint} failed")]
    Channel {
        /// `address:port`.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<russh::Error>,
    },
    /// The server kept refusing to open a session channel on this connection.
    #[error(
        "{endpoint} refused to open another SSH session on this connection ({reason}) for {waited:?}, \
         with {open} of siteward's sessions open; sshd allows `MaxSessions` sessions per connection \
         (10 unless /etc/ssh/sshd_config or a `Match` block says otherwise) and siteward stays \
         under it; hint: make sure `MaxSessions` is at least 1 for this user, and that nothing \
         else on the server limits sessions (`sshd -T -C user=USER,host=HOST,addr=ADDR | grep -i maxsessions`)"
    )]
    SessionsRefused {
        /// `address:port`.
        endpoint: String,
        /// The server's reason.
        reason: String,
        /// siteward's channels open on the connection when it gave up.
        open: usize,
        /// How long it retried.
        waited: Duration,
    },
    /// The server refused to run the command.
    #[error("{endpoint} refused to run `{command}`")]
    ExecRefused {
        /// `address:port`.
        endpoint: String,
        /// The first line of the command.
        command: String,
    },
    /// The command did not finish in time; it was sent SIGKILL and its channel closed.
    #[error("`{command}` on {endpoint} did not finish within {bound:?}")]
    ExecTimeout {
        /// `address:port`.
        endpoint: String,
        /// The first line of the command.
        command: String,
        /// The configured bound.
        bound: Duration,
    },
    /// The channel closed without an exit status.
    #[error("`{command}` on {endpoint} ended without an exit status (connection lost?)")]
    NoExitStatus {
        /// `address:port`.
        endpoint: String,
        /// The first line of the command.
        command: String,
    },
    /// Reading the local stdin source failed.
    #[error("could not read the input for `{command}`")]
    StdinRead {
        /// The first line of the command.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the command's stdout to the local writer failed.
    #[error("could not write the output of `{command}`")]
    StdoutWrite {
        /// The first line of the command.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The command could not be wrapped for sudo.
    #[error("command cannot be sent")]
    Quote(#[from] QuoteError),
}

/// An authenticated connection to one server, shared by every command of a run.
///
/// Cheap to clone: clones share the connection and the exec counter. The connection closes
/// when the last clone is dropped, or on [`SshSession::close`].
#[derive(Clone)]
pub struct SshSession {
    inner: Arc<Inner>,
    exec_timeout: Duration,
}

struct Inner {
    handle: Handle<client::Client>,
    endpoint: String,
    become_root: Become,
    execs: AtomicU64,
    channels: Arc<Channels>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SshSession")
            .field("endpoint", &self.inner.endpoint)
            .field("execs", &self.exec_count())
            .finish_non_exhaustive()
    }
}

impl SshSession {
    /// Connects, verifies the host key and authenticates, each within its bound.
    ///
    /// # Errors
    /// Connection, host key and authentication failures, each naming the server.
    pub async fn connect(target: &SshTarget) -> Result<Self, SshError> {
        let endpoint = target.endpoint();
        let deadline = Instant::now() + target.timeouts.connect;
        let connect_timeout = || SshError::ConnectTimeout {
            endpoint: endpoint.clone(),
            bound: target.timeouts.connect,
        };
        let stream = timeout_at(deadline, tcp_connect(target, &endpoint))
            .await
            .map_err(|_| connect_timeout())??;
        let config = Arc::new(client_config(target));
        let client = client::Client::new(target);
        let mut handle = match timeout_at(
            deadline,
            russh_client::connect_stream(config, stream, client),
        )
        .await
        {
            Err(_) => return Err(connect_timeout()),
            Ok(result) => result.map_err(|error| error.into_ssh_error(&endpoint))?,
        };
        let auth_deadline = Instant::now() + target.timeouts.auth;
        timeout_at(
            auth_deadline,
            auth::authenticate(&mut handle, target, &endpoint),
        )
        .await
        .map_err(|_| SshError::AuthTimeout {
            user: target.user.clone(),
            endpoint: endpoint.clone(),
            bound: target.timeouts.auth,
        })??;
        tracing::debug!(%endpoint, user = %target.user, "SSH session established");
        let session = Self::from_handle(handle, target, endpoint);
        if target.become_root == Become::SudoN {
            session
                .with_exec_timeout(target.timeouts.auth)
                .check_sudo(&target.user)
                .await?;
        }
        Ok(session)
    }

    fn from_handle(handle: Handle<client::Client>, target: &SshTarget, endpoint: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                handle,
                endpoint,
                become_root: target.become_root,
                execs: AtomicU64::new(0),
                channels: Channels::new(channels::DEFAULT_LIMIT),
            }),
            exec_timeout: target.timeouts.exec,
        }
    }

    /// A clone sharing this connection whose commands get `bound` instead (long dumps, transfers).
    pub fn with_exec_timeout(&self, bound: Duration) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            exec_timeout: bound,
        }
    }

    /// How many commands this connection has run (each is one round trip).
    pub fn exec_count(&self) -> u64 {
        self.inner.execs.load(Ordering::Relaxed)
    }

    /// Whether the connection is gone (closed, or dropped after unanswered keepalives).
    pub fn is_closed(&self) -> bool {
        self.inner.handle.is_closed()
    }

    /// Closes the connection for every clone.
    pub async fn close(&self) {
        let _ = self
            .inner
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }

    /// Runs `command` (as root, per [`Become`]) with `stdin` streamed in, its stdout streamed
    /// to `stdout`, within the exec bound. The command waits for a free channel first (see
    /// [`SshSession::reserve`]); the bound starts once it has one.
    ///
    /// # Errors
    /// Channel failures, the exec timeout, local stdin or stdout I/O failures.
    pub async fn run<W>(
        &self,
        command: &str,
        stdin: Stdin<'_>,
        stdout: &mut W,
    ) -> Result<Exit, SshError>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        let slot = self.reserve().await;
        self.run_in(slot, command, stdin, stdout).await
    }

    /// Waits for one of this connection's channels and holds it for one command
    /// ([`SshSession::run_in`]). Commands that must run at the same time as a command on
    /// another server (the two ends of a stream) take both channels first, so that neither waits
    /// for a channel while its peer holds one: see [`crate::transport::reserve_pair`].
    pub async fn reserve(&self) -> ChannelSlot {
        self.inner.channels.acquire().await
    }

    /// Like [`SshSession::run`], on the channel `slot` holds.
    ///
    /// # Errors
    /// As [`SshSession::run`].
    pub async fn run_in<W>(
        &self,
        slot: ChannelSlot,
        command: &str,
        stdin: Stdin<'_>,
        stdout: &mut W,
    ) -> Result<Exit, SshError>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        let wrapped = remote_command(command, self.inner.become_root, self.exec_timeout)?;
        self.run_raw_as(slot, &wrapped, &summarize(command), stdin, stdout)
            .await
    }

    /// Runs `command` as it is: as the login user, not bounded or watched on the server.
    async fn run_raw<W>(
        &self,
        slot: ChannelSlot,
        command: &str,
        stdin: Stdin<'_>,
        stdout: &mut W,
    ) -> Result<Exit, SshError>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        self.run_raw_as(slot, command, &summarize(command), stdin, stdout)
            .await
    }

    async fn run_raw_as<W>(
        &self,
        slot: ChannelSlot,
        command: &str,
        summary: &str,
        stdin: Stdin<'_>,
        stdout: &mut W,
    ) -> Result<Exit, SshError>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        self.inner.execs.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.exec_timeout;
        let channel = self.open_channel(summary, deadline).await?;
        let open = self.inner.channels.opened();
        let (mut reader, writer) = channel.split();
        let running = Running {
            endpoint: &self.inner.endpoint,
            summary,
        };
        let driving = running.drive(&mut reader, &writer, command, stdin, stdout);
        let result = timeout_at(deadline, driving)
            .await
            .unwrap_or_else(|_| Err(self.exec_timeout(summary)));
        if result.is_err() {
            // Timed out, or our side failed (stdin source, stdout sink): stop the command. The
            // server counts the session until the command is gone, so its slot stays taken
            // until then.
            abandon(&writer).await;
            tokio::spawn(exec::hold_until_killed(deadline, (slot, open)));
        }
        result
    }

    /// Opens a session channel; a refusal (sshd's `MaxSessions`, or a session still closing on
    /// the server) is retried within `deadline`, and one that persists after the server has read
    /// everything sent before it lowers this connection's limit to the channels open.
    async fn open_channel(
        &self,
        summary: &str,
        deadline: Instant,
    ) -> Result<russh::Channel<russh::client::Msg>, SshError> {
        let started = Instant::now();
        let mut retry = channels::Retry::default();
        loop {
            let opened = timeout_at(deadline, self.inner.handle.channel_open_session())
                .await
                .map_err(|_| self.exec_timeout(summary))?;
            let reason = match opened {
                Ok(channel) => return Ok(channel),
                Err(russh::Error::ChannelOpenFailure(reason)) => reason,
                Err(source) => return Err(self.channel_error(source)),
            };
            let open = self.inner.channels.open();
            if retry.refused() && self.inner.channels.lower_to(open) {
                tracing::warn!(
                    endpoint = %self.inner.endpoint, channels = self.inner.channels.limit(),
                    "the server refuses more SSH sessions per connection (sshd MaxSessions): commands wait for one of these"
                );
            }
            let Some(pause) = retry.next_pause(open, started.elapsed()) else {
                return Err(SshError::SessionsRefused {
                    endpoint: self.inner.endpoint.clone(),
                    reason: format!("{reason:?}"),
                    open,
                    waited: started.elapsed(),
                });
            };
            tracing::debug!(endpoint = %self.inner.endpoint, ?reason, open, ?pause, "session refused, retrying");
            // The ping's reply comes once the server has read what was sent before it: CLOSEs
            // of channels that were still closing are then processed.
            let _ = timeout_at(deadline, self.inner.handle.send_ping()).await;
            if Instant::now() + pause >= deadline {
                return Err(self.exec_timeout(summary));
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// The channels this connection opens at once (lowered when the server refused more), and
    /// the most that were open at once.
    pub fn channel_usage(&self) -> (usize, usize) {
        (self.inner.channels.limit(), self.inner.channels.most_open())
    }

    fn exec_timeout(&self, summary: &str) -> SshError {
        SshError::ExecTimeout {
            endpoint: self.inner.endpoint.clone(),
            command: summary.to_owned(),
            bound: self.exec_timeout,
        }
    }

    fn channel_error(&self, source: russh::Error) -> SshError {
        SshError::Channel {
            endpoint: self.inner.endpoint.clone(),
            source: Box::new(source),
        }
    }
}

impl Transport for SshSession {
    fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    async fn exec_streaming<W>(
        &self,
        command: &str,
        stdin: Stdin<'_>,
        stdout: &mut W,
    ) -> Result<Exit, TransportError>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        Ok(self.run(command, stdin, stdout).await?)
    }

    async fn reserve_channel(&self) -> ChannelSlot {
        self.reserve().await
    }

    async fn exec_streaming_in<W>(
        &self,
        slot: ChannelSlot,
        command: &str,
        stdin: Stdin<'_>,
        stdout: &mut W,
    ) -> Result<Exit, TransportError>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        Ok(self.run_in(slot, command, stdin, stdout).await?)
    }

    fn connection_id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }
}

async fn tcp_connect(target: &SshTarget, endpoint: &str) -> Result<TcpStream, SshError> {
    let stream = TcpStream::connect((target.address.as_str(), target.port))
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::ConnectionRefused => SshError::ConnectRefused {
                endpoint: endpoint.to_owned(),
                source,
            },
            _ => SshError::Connect {
                endpoint: endpoint.to_owned(),
                source,
            },
        })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// russh's defaults, with keepalives, and the host key types known for this host asked for
/// first (as OpenSSH does), so a server with several host keys presents the recorded one.
fn client_config(target: &SshTarget) -> russh_client::Config {
    let known = match &target.host_keys.pinned {
        Some(_) => Vec::new(),
        None => KnownHosts::load(&target.host_keys.known_hosts)
            .map(|file| file.known_algorithms(&target.address, target.port))
            .unwrap_or_default(),
    };
    let mut preferred = Preferred::default();
    preferred.key = prefer_known(&preferred.key, &known).into();
    if aes_is_accelerated() {
        preferred.cipher = aes_gcm_first(&preferred.cipher).into();
    }
    russh_client::Config {
        preferred,
        limits: server_initiated_rekeys(),
        keepalive_interval: Some(target.timeouts.keepalive),
        keepalive_max: 3,
        inactivity_timeout: None,
        nodelay: true,
        ..russh_client::Config::default()
    }
}

/// Rekeying left to the server. A rekey russh starts while the server streams on several
/// channels (two database dumps and a tar archive from a migration's source) drops the
/// connection: russh bounds what may still arrive before the server sees its KEXINIT to two
/// channel windows, where each channel may have a window in flight. OpenSSH servers rekey by
/// themselves, by volume in both directions (`RekeyLimit`, 1-4 GB by default), and russh takes
/// a server's rekey in its stride; OpenSSH's own client sets no time limit either.
fn server_initiated_rekeys() -> russh::Limits {
    russh::Limits {
        rekey_write_limit: usize::MAX,
        rekey_read_limit: usize::MAX,
        rekey_time_limit: Duration::from_secs(100 * 365 * 24 * 3600),
    }
}

/// Whether this machine's CPU has AES instructions: AES-GCM then costs both ends less CPU per
/// byte than ChaCha20-Poly1305 (russh's first choice), which counts when a migration streams
/// gigabytes through this process.
fn aes_is_accelerated() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The ciphers offered, AES-256-GCM moved first (the others keep their order).
fn aes_gcm_first(offered: &[russh::cipher::Name]) -> Vec<russh::cipher::Name> {
    let gcm = russh::cipher::AES_256_GCM;
    std::iter::once(gcm)
        .chain(offered.iter().copied().filter(|name| *name != gcm))
        .collect()
}

fn prefer_known(offered: &[Algorithm], known: &[Algorithm]) -> Vec<Algorithm> {
    let is_known = |algorithm: &Algorithm| known.iter().any(|known| same_family(known, algorithm));
    let (first, rest): (Vec<_>, Vec<_>) = offered.iter().cloned().partition(is_known);
    first.into_iter().chain(rest).collect()
}

fn same_family(left: &Algorithm, right: &Algorithm) -> bool {
    match (left, right) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
        _ => left == right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_gcm_is_offered_first_and_nothing_is_lost() {
        let offered = Preferred::default().cipher.into_owned();
        let ordered = aes_gcm_first(&offered);
        assert_eq!(ordered[0], russh::cipher::AES_256_GCM);
        assert_eq!(ordered.len(), offered.len());
        assert!(offered.iter().all(|name| ordered.contains(name)));
    }

    #[test]
    fn known_host_key_types_are_asked_for_first() {
        let offered = Preferred::default().key.into_owned();
        let known = [Algorithm::Rsa { hash: None }];
        let ordered = prefer_known(&offered, &known);
        let rsa_first = ordered
            .iter()
            .take(3)
            .all(|algorithm| matches!(algorithm, Algorithm::Rsa { .. }));
        assert!(rsa_first, "{ordered:?}");
        assert_eq!(ordered.len(), offered.len());
    }
}
