//! The SSH transport over russh: one authenticated connection per server, strict host keys, timeouts on everything.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use russh::Disconnect;
use russh::client::Handle;
use tokio::io::AsyncWrite;
use tokio::time::{Instant, timeout_at};

use super::{Exit, Stdin, Transport, TransportError};
use channels::Channels;
pub use channels::{ChannelSlot, Patience};
use connect::handshake;
pub use error::SshError;
use exec::{Running, abandon, remote_command, summarize};
pub use target::{Become, HostKeyPolicy, Identity, SshTarget, Timeouts};

mod auth;
mod channels;
mod client;
mod config;
mod connect;
mod error;
mod exec;
mod sudo;
mod target;

/// An authenticated connection to one server, shared by every command of a run.
///
/// Cheap to clone: clones share the connection and the exec counter. The connection closes
/// when the last clone is dropped, or on [`SshSession::close`].
#[derive(Clone)]
pub struct SshSession {
    inner: Arc<Inner>,
    exec_timeout: Duration,
    /// Rewrites every command of this clone (a fenced run's guard), when set.
    guard: Option<Arc<CommandGuard>>,
}

/// Rewrites a command line into a guarded one (see [`SshSession::guarded`]).
pub type CommandGuard = dyn Fn(&str) -> Result<String, crate::transport::QuoteError> + Send + Sync;

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
        let mut handle = handshake(target, &endpoint, deadline).await?;
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
            guard: None,
        }
    }

    /// A clone sharing this connection whose commands get `bound` instead (long dumps, transfers).
    pub fn with_exec_timeout(&self, bound: Duration) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            exec_timeout: bound,
            guard: self.guard.clone(),
        }
    }

    /// A clone sharing this connection whose every command is first rewritten by `guard` (the
    /// fence of a daemon's migration: each command runs only while the site's lock is still
    /// the run's).
    pub fn guarded(&self, guard: Arc<CommandGuard>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            exec_timeout: self.exec_timeout,
            guard: Some(guard),
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
        let guarded = match &self.guard {
            Some(guard) => guard(command)?,
            None => command.to_owned(),
        };
        let wrapped = remote_command(&guarded, self.inner.become_root, self.exec_timeout)?;
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
        let mut slot = slot;
        let (channel, open) = match slot.take_opened() {
            Some(opened) => opened,
            None => {
                let channel = self.open_channel(summary, deadline, Patience::Wait).await?;
                (channel, self.inner.channels.opened())
            }
        };
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

    /// Opens the channel `slot` holds now, unless it is open already: one end of a stream
    /// opens its channel before the other end's, and gives it up when that one is refused
    /// ([`crate::transport::reserve_pair`]).
    ///
    /// # Errors
    /// As [`SshSession::run`]; with [`Patience::Once`], [`SshError::SessionsBusy`] when the
    /// server has no session free.
    pub async fn open_in(
        &self,
        slot: &mut ChannelSlot,
        patience: Patience,
    ) -> Result<(), SshError> {
        if slot.is_opened() {
            return Ok(());
        }
        let deadline = Instant::now() + self.exec_timeout;
        let channel = self.open_channel("(a stream)", deadline, patience).await?;
        slot.hold_opened(channel, self.inner.channels.opened());
        Ok(())
    }

    /// Opens a session channel; a refusal (sshd's `MaxSessions`, or a session still closing on
    /// the server) is retried within `deadline` (once only, with [`Patience::Once`]), and one
    /// that persists after the server has read everything sent before it lowers this
    /// connection's limit to the channels open.
    async fn open_channel(
        &self,
        summary: &str,
        deadline: Instant,
        patience: Patience,
    ) -> Result<russh::Channel<russh::client::Msg>, SshError> {
        let started = Instant::now();
        let mut retry = channels::Retry::default();
        loop {
            // Channels that close while the request is on its way were still counted by the
            // server when it refused: the limit learned is the most open at any point of it.
            let open_when_asked = self.inner.channels.open();
            let opened = timeout_at(deadline, self.inner.handle.channel_open_session())
                .await
                .map_err(|_| self.exec_timeout(summary))?;
            let reason = match opened {
                Ok(channel) => return Ok(channel),
                Err(russh::Error::ChannelOpenFailure(reason)) => reason,
                Err(source) => return Err(self.channel_error(source)),
            };
            let open = self.inner.channels.open().max(open_when_asked);
            let flushed = retry.refused(open, Instant::now());
            if flushed && self.inner.channels.lower_to(open) {
                tracing::warn!(
                    endpoint = %self.inner.endpoint, channels = self.inner.channels.limit(),
                    "the server refuses more SSH sessions per connection (sshd MaxSessions): commands wait for one of these"
                );
            }
            if flushed && patience == Patience::Once {
                return Err(SshError::SessionsBusy {
                    endpoint: self.inner.endpoint.clone(),
                });
            }
            let Some(pause) = retry.next_pause(Instant::now()) else {
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

    async fn open_channel_in(
        &self,
        slot: &mut ChannelSlot,
        patience: Patience,
    ) -> Result<(), TransportError> {
        Ok(self.open_in(slot, patience).await?)
    }

    fn connection_id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    fn exec_bound(&self) -> Duration {
        self.exec_timeout
    }
}
