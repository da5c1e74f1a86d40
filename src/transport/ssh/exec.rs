//! One command on its own channel: stdin streamed in, output collected, the exec bound enforced on both ends.

use std::time::Duration;

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Become, SshError};
use crate::transport::quote::{QuoteError, quote_words};
use crate::transport::{Exit, Stdin};

/// Seconds the server-side kill waits past the exec bound, so the client reports the timeout first.
const REMOTE_KILL_GRACE_SECS: u64 = 2;

/// One command in flight on its channel.
pub(super) struct Running<'a> {
    pub(super) endpoint: &'a str,
    pub(super) summary: &'a str,
}

impl Running<'_> {
    pub(super) async fn drive<W>(
        &self,
        reader: &mut ChannelReadHalf,
        writer: &ChannelWriteHalf<Msg>,
        command: &str,
        stdin: Stdin<'_>,
        stdout: &mut W,
    ) -> Result<Exit, SshError>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        writer
            .exec(true, command)
            .await
            .map_err(|source| self.channel_error(source))?;
        let collecting = self.collect(reader, stdout);
        tokio::pin!(collecting);
        // A command may exit without reading all its input: then the output side finishes
        // first and the rest of the input is dropped instead of waiting for window space.
        tokio::select! {
            biased;
            exit = &mut collecting => return exit,
            sent = self.send_stdin(writer, stdin) => sent?,
        }
        collecting.await
    }

    async fn send_stdin(
        &self,
        writer: &ChannelWriteHalf<Msg>,
        stdin: Stdin<'_>,
    ) -> Result<(), SshError> {
        let sent = match stdin {
            Stdin::Empty => Ok(()),
            Stdin::Bytes(bytes) => writer.data(bytes).await,
            Stdin::Reader(mut source) => return self.send_reader(writer, &mut source).await,
        };
        if let Err(error) = sent.and(writer.eof().await) {
            tracing::debug!(%error, "the command stopped taking input");
        }
        Ok(())
    }

    async fn send_reader(
        &self,
        writer: &ChannelWriteHalf<Msg>,
        source: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<(), SshError> {
        let mut buffer = vec![0; 32 * 1024];
        loop {
            let read = source
                .read(&mut buffer)
                .await
                .map_err(|source| SshError::StdinRead {
                    command: self.summary.to_owned(),
                    source,
                })?;
            let sent = match read {
                0 => writer.eof().await,
                read => writer.data_bytes(buffer[..read].to_vec()).await,
            };
            if let Err(error) = sent {
                tracing::debug!(%error, "the command stopped taking input");
                return Ok(());
            }
            if read == 0 {
                return Ok(());
            }
        }
    }

    async fn collect<W>(
        &self,
        reader: &mut ChannelReadHalf,
        stdout: &mut W,
    ) -> Result<Exit, SshError>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        let write_error = |source| SshError::StdoutWrite {
            command: self.summary.to_owned(),
            source,
        };
        let mut exit = Exit {
            stderr: Vec::new(),
            status: u32::MAX,
            signal: None,
        };
        let mut status = None;
        while let Some(message) = reader.wait().await {
            match message {
                ChannelMsg::Data { data } => stdout.write_all(&data).await.map_err(write_error)?,
                ChannelMsg::ExtendedData { data, ext: 1 } => exit.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    status = Some(128 + signal_number(&signal_name));
                    exit.signal = Some(signal_name_of(&signal_name));
                }
                ChannelMsg::Failure => return Err(self.refused()),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        stdout.flush().await.map_err(write_error)?;
        exit.status = status.ok_or_else(|| SshError::NoExitStatus {
            endpoint: self.endpoint.to_owned(),
            command: self.summary.to_owned(),
        })?;
        Ok(exit)
    }

    fn channel_error(&self, source: russh::Error) -> SshError {
        SshError::Channel {
            endpoint: self.endpoint.to_owned(),
            source: Box::new(source),
        }
    }

    fn refused(&self) -> SshError {
        SshError::ExecRefused {
            endpoint: self.endpoint.to_owned(),
            command: self.summary.to_owned(),
        }
    }
}

/// Ties a command to its connection (`watchdog.sh`, its comments left out of every command
/// line): killed when the connection goes away.
static WATCHDOG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    include_str!("watchdog.sh")
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect()
});

/// `command` as sent: killed with its process group by the server shortly past `bound`
/// (the `signal` request alone does not reach root sessions on OpenSSH) or when the connection
/// goes away, run as root per `become_root`.
pub(super) fn remote_command(
    command: &str,
    become_root: Become,
    bound: Duration,
) -> Result<String, QuoteError> {
    let rounded_up = bound.as_secs() + u64::from(bound.subsec_nanos() > 0);
    let limit = format!("{}s", rounded_up + REMOTE_KILL_GRACE_SECS);
    let mut words = match become_root {
        Become::Direct => vec![],
        Become::SudoN => vec!["sudo", "-n", "--"],
    };
    words.extend([
        "timeout", "-s", "KILL", &limit, "sh", "-c", &WATCHDOG, "siteward", command,
    ]);
    quote_words(words)
}

/// Stops a command whose result is no longer wanted: SIGKILL (which OpenSSH honours for
/// non-root logins only; root commands die by the server-side `timeout`), then close the channel.
pub(super) async fn abandon(writer: &ChannelWriteHalf<Msg>) {
    let _ = writer.signal(Sig::KILL).await;
    let _ = writer.close().await;
}

/// Keeps `held` (an abandoned command's channel slot and count) until the server has killed the
/// command (its `timeout`, just past `deadline`): the server counts the session until then.
/// russh forgets a channel once the client closed it, so the server's own close is not seen.
pub(super) async fn hold_until_killed<T: Send>(deadline: tokio::time::Instant, held: T) {
    let killed = deadline + Duration::from_secs(REMOTE_KILL_GRACE_SECS + 1);
    tokio::time::sleep_until(killed).await;
    drop(held);
}

/// The first line of a command, shortened, for messages.
pub(super) fn summarize(command: &str) -> String {
    let first_line = command.lines().next().unwrap_or_default();
    let mut summary: String = first_line.chars().take(80).collect();
    if summary.len() < command.len() {
        summary.push('…');
    }
    summary
}

fn signal_number(signal: &Sig) -> u32 {
    match signal {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => 0,
    }
}

fn signal_name_of(signal: &Sig) -> String {
    match signal {
        Sig::Custom(name) => name.clone(),
        known => format!("{known:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_bounded_on_the_server_and_wrapped_for_sudo() {
        let bound = Duration::from_millis(1500);
        let watchdog = quote_words([WATCHDOG.as_str()]).unwrap();
        let direct = remote_command("echo hi there", Become::Direct, bound).unwrap();
        assert_eq!(
            direct,
            format!("timeout -s KILL 4s sh -c {watchdog} siteward 'echo hi there'")
        );
        let sudo = remote_command("id", Become::SudoN, Duration::from_secs(60)).unwrap();
        assert_eq!(
            sudo,
            format!("sudo -n -- timeout -s KILL 62s sh -c {watchdog} siteward id")
        );
    }

    #[test]
    fn summaries_keep_the_first_line_only() {
        assert_eq!(summarize("set -eu\nrm -rf x"), "set -eu…");
        assert_eq!(summarize("true"), "true");
    }
}
