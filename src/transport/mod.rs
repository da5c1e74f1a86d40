//! Reaching servers: the SSH transport, the one quoting function, atomic file writes.
//!
//! The [`Transport`] trait is the few primitives everything else is built on (colmena's `Host`):
//! run a command with stdin streamed in and stdout collected or streamed out, read a file, write
//! a file atomically. [`ssh::SshSession`] implements it over one russh connection per server.

pub mod known_hosts;
pub mod quote;
pub mod ssh;
mod write;

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

pub use quote::{Command, IdentifierKind, QuoteError, quote, validate_identifier};
pub use ssh::{
    Become, ChannelSlot, HostKeyPolicy, Identity, Patience, SshError, SshSession, SshTarget,
    Timeouts,
};
pub use write::WriteOutcome;

/// A remote operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The SSH layer failed (connection, host key, authentication, timeout).
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// A value could not be made part of a command.
    #[error(transparent)]
    Quote(#[from] QuoteError),
    /// A command ran and exited with a non-zero status.
    #[error("{what} failed on {endpoint} with status {status}: {stderr}")]
    Failed {
        /// What was being done, e.g. "reading `/etc/hosts`".
        what: String,
        /// The server.
        endpoint: String,
        /// The exit status.
        status: u32,
        /// The command's stderr, trimmed and lossily decoded.
        stderr: String,
    },
    /// A command answered something siteward's own script never prints.
    #[error("{what} on {endpoint} gave an unexpected answer: {answer:?}")]
    UnexpectedAnswer {
        /// What was being done.
        what: String,
        /// The server.
        endpoint: String,
        /// The answer, lossily decoded.
        answer: String,
    },
    /// A file mode outside `0..=0o7777`.
    #[error("file mode {mode:#o} is not a permission mode (at most 0o7777)")]
    InvalidMode {
        /// The rejected mode.
        mode: u32,
    },
}

/// What a remote command reads on its stdin.
pub enum Stdin<'a> {
    /// Nothing: stdin is closed at once.
    Empty,
    /// These bytes.
    Bytes(&'a [u8]),
    /// Everything this reader yields, streamed as it is read (large inputs are never held whole).
    Reader(Pin<Box<dyn AsyncRead + Send + 'a>>),
}

impl<'a> Stdin<'a> {
    /// Streams `reader` into the command.
    pub fn reader(reader: impl AsyncRead + Send + 'a) -> Self {
        Self::Reader(Box::pin(reader))
    }
}

impl<'a> From<&'a [u8]> for Stdin<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Self::Bytes(bytes)
    }
}

impl<'a> From<&'a str> for Stdin<'a> {
    fn from(text: &'a str) -> Self {
        Self::Bytes(text.as_bytes())
    }
}

impl<'a> From<&'a Vec<u8>> for Stdin<'a> {
    fn from(bytes: &'a Vec<u8>) -> Self {
        Self::Bytes(bytes)
    }
}

/// How a remote command ended, when its stdout went to a writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
    /// The exit status; `128 + n` when killed by signal `n`, like a shell's `$?`.
    pub status: u32,
    /// The signal name (`KILL`, `TERM`, …) when the command was killed by one.
    pub signal: Option<String>,
}

/// The output of a remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
    /// The exit status; `128 + n` when killed by signal `n`, like a shell's `$?`.
    pub status: u32,
    /// The signal name when the command was killed by one.
    pub signal: Option<String>,
}

impl ExecOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status == 0 && self.signal.is_none()
    }

    /// Stdout, lossily decoded.
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr, lossily decoded and trimmed, for error messages (see [`stderr_excerpt`]).
    pub fn stderr_lossy(&self) -> String {
        stderr_excerpt(&self.stderr)
    }
}

/// The most lines of a command's stderr an error message carries: its last ones.
const STDERR_LINES: usize = 20;
/// The most characters of one stderr line an error message carries.
const STDERR_LINE_CHARS: usize = 300;

/// A command's stderr for an error message: decoded lossily, trimmed, its last lines only, each
/// cut short. A client that echoes the statement it failed on (a megabyte `INSERT`) or a tool
/// that prints thousands of warnings must not bury the cause, which comes last.
pub fn stderr_excerpt(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.trim().lines().collect();
    let skipped = lines.len().saturating_sub(STDERR_LINES);
    let mut excerpt: Vec<String> = Vec::with_capacity(STDERR_LINES + 1);
    if skipped > 0 {
        excerpt.push(format!("[{skipped} earlier lines left out]"));
    }
    for line in &lines[skipped..] {
        excerpt.push(match line.char_indices().nth(STDERR_LINE_CHARS) {
            Some((cut, _)) => format!("{}… [{} bytes]", &line[..cut], line.len()),
            None => (*line).to_owned(),
        });
    }
    excerpt.join("\n")
}

/// The primitives every remote operation is built on.
///
/// Commands are POSIX shell command lines; build them with [`quote::Command`] or [`quote()`].
/// Implementations run them as root (directly or through `sudo -n`, as the server says).
pub trait Transport: Send + Sync {
    /// The server, as `address:port`, for messages.
    fn endpoint(&self) -> &str;

    /// Runs `command` with `stdin` streamed in and its stdout streamed to `stdout`.
    fn exec_streaming<W>(
        &self,
        command: &str,
        stdin: Stdin<'_>,
        stdout: &mut W,
    ) -> impl Future<Output = Result<Exit, TransportError>> + Send
    where
        W: AsyncWrite + Unpin + Send + ?Sized;

    /// Waits for a free channel of this connection and holds it for one command
    /// ([`Transport::exec_streaming_in`]).
    fn reserve_channel(&self) -> impl Future<Output = ChannelSlot> + Send;

    /// Like [`Transport::exec_streaming`], on the channel `slot` holds.
    fn exec_streaming_in<W>(
        &self,
        slot: ChannelSlot,
        command: &str,
        stdin: Stdin<'_>,
        stdout: &mut W,
    ) -> impl Future<Output = Result<Exit, TransportError>> + Send
    where
        W: AsyncWrite + Unpin + Send + ?Sized;

    /// Opens the channel `slot` holds ahead of its command (see [`reserve_pair`]).
    fn open_channel_in(
        &self,
        slot: &mut ChannelSlot,
        patience: Patience,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Tells connections apart: the same for every clone of one connection.
    fn connection_id(&self) -> usize;

    /// How long each command may take.
    fn exec_bound(&self) -> std::time::Duration;

    /// Runs `command` with `stdin` streamed in, collecting stdout and stderr. One round trip.
    fn exec(
        &self,
        command: &str,
        stdin: Stdin<'_>,
    ) -> impl Future<Output = Result<ExecOutput, TransportError>> + Send {
        async move {
            let slot = self.reserve_channel().await;
            self.exec_in(slot, command, stdin).await
        }
    }

    /// Like [`Transport::exec`], on the channel `slot` holds.
    fn exec_in(
        &self,
        slot: ChannelSlot,
        command: &str,
        stdin: Stdin<'_>,
    ) -> impl Future<Output = Result<ExecOutput, TransportError>> + Send {
        async move {
            let mut stdout = Vec::new();
            let exit = self
                .exec_streaming_in(slot, command, stdin, &mut stdout)
                .await?;
            Ok(ExecOutput {
                stdout,
                stderr: exit.stderr,
                status: exit.status,
                signal: exit.signal,
            })
        }
    }

    /// Like [`Transport::exec`], but a non-zero status is a [`TransportError::Failed`] naming `what`.
    fn exec_checked(
        &self,
        what: &str,
        command: &str,
        stdin: Stdin<'_>,
    ) -> impl Future<Output = Result<ExecOutput, TransportError>> + Send {
        async move {
            let output = self.exec(command, stdin).await?;
            if output.success() {
                return Ok(output);
            }
            Err(TransportError::Failed {
                what: what.to_owned(),
                endpoint: self.endpoint().to_owned(),
                status: output.status,
                stderr: output.stderr_lossy(),
            })
        }
    }

    /// The contents of the regular file at `path`, or `None` when nothing exists there.
    /// One round trip.
    fn read_file(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, TransportError>> + Send {
        async move { write::read_file(self, path).await }
    }

    /// Writes `contents` to `path` atomically, owned by `owner:group` with `mode`. One round trip.
    ///
    /// # Guarantees
    /// - When the file already has this content (same sha256), it is not written and its mtime
    ///   is kept; only a differing owner, group or mode is corrected.
    /// - Otherwise the content goes to a temporary file in the same directory, is checked
    ///   against its sha256, fsynced, given its owner and mode, then renamed over `path`: a
    ///   reader sees the old file or the new one, never a partial one, even after a crash.
    /// - Owner and group must pass [`validate_identifier`]; they are never interpreted.
    fn write_file_atomic(
        &self,
        path: &str,
        contents: &[u8],
        owner: &str,
        group: &str,
        mode: u32,
    ) -> impl Future<Output = Result<WriteOutcome, TransportError>> + Send {
        async move {
            write::write_file_atomic(
                self,
                path,
                contents,
                write::Attributes { owner, group, mode },
            )
            .await
        }
    }
}

/// An open channel on each of two connections, for two commands that must run at the same time
/// (the ends of a stream: the first's output is the second's input). No stream holds a channel
/// on one server while it waits for one on the other: with few sessions per connection (sshd's
/// `MaxSessions`), streams doing so could each hold what another waits for. So the slots are
/// taken in one order for any two connections, the first channel is opened (waiting for the
/// server as long as a command may), and the second is tried once: when its server has no
/// session free, both are given back and the pair tried again after a pause.
///
/// # Errors
/// A channel that cannot be opened; the servers staying busy for longer than a command may take.
pub async fn reserve_pair(
    first: &impl Transport,
    second: &impl Transport,
) -> Result<(ChannelSlot, ChannelSlot), TransportError> {
    let deadline = std::time::Instant::now() + first.exec_bound().min(second.exec_bound());
    let mut pause = std::time::Duration::from_millis(20);
    let in_order = first.connection_id() <= second.connection_id();
    loop {
        let opened = if in_order {
            open_both(first, second).await
        } else {
            open_both(second, first).await.map(|(b, a)| (a, b))
        };
        match opened {
            Err(TransportError::Ssh(SshError::SessionsBusy { .. }))
                if std::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(jittered(pause)).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
            opened => return opened,
        }
    }
}

/// The slots of `first` then `second`; `first`'s channel opened, then `second`'s tried once.
async fn open_both(
    first: &impl Transport,
    second: &impl Transport,
) -> Result<(ChannelSlot, ChannelSlot), TransportError> {
    let mut first_slot = first.reserve_channel().await;
    let mut second_slot = second.reserve_channel().await;
    first
        .open_channel_in(&mut first_slot, Patience::Wait)
        .await?;
    second
        .open_channel_in(&mut second_slot, Patience::Once)
        .await?;
    Ok((first_slot, second_slot))
}

/// `pause` give or take half of it, so that streams backing off do not retry in step.
fn jittered(pause: std::time::Duration) -> std::time::Duration {
    use std::hash::BuildHasher;
    let noise = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    pause / 2 + pause.mul_f64((noise % 1000) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::stderr_excerpt;

    #[test]
    fn a_short_stderr_is_kept_whole_and_trimmed() {
        assert_eq!(stderr_excerpt(b"  one\ntwo\n\n"), "one\ntwo");
    }

    #[test]
    fn a_long_stderr_keeps_its_last_lines_each_cut_short() {
        let statement = format!("INSERT INTO t VALUES (0x{})", "AB".repeat(5000));
        let mut stderr = String::new();
        for n in 0..30 {
            stderr.push_str(&format!("line {n}\n"));
        }
        stderr.push_str(&statement);
        stderr.push_str("\nERROR 1064 (42000) at line 9: syntax error\n");
        let excerpt = stderr_excerpt(stderr.as_bytes());
        let lines: Vec<&str> = excerpt.lines().collect();
        assert_eq!(lines[0], "[12 earlier lines left out]");
        assert_eq!(lines.len(), 21);
        assert_eq!(lines[20], "ERROR 1064 (42000) at line 9: syntax error");
        assert!(lines[19].starts_with("INSERT INTO t VALUES (0xABAB"));
        assert!(lines[19].ends_with(&format!("… [{} bytes]", statement.len())));
        assert!(excerpt.len() < 2000, "{} characters", excerpt.len());
    }
}
