//! Reaching a server: TCP, the SSH handshake with its host key checked, tried again when the server drops the connection before it (sshd's `MaxStartups`).

use std::sync::Arc;
use std::time::Duration;

use russh::client::{self as russh_client, Handle};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::config::client_config;
use super::{SshError, SshTarget, client};

/// TCP and the SSH handshake (host key checked) within `deadline`. A server that closes the
/// connection before the handshake is tried again, with pauses from 100 ms to 1 s: sshd drops
/// connections beyond `MaxStartups` (10 being set up at once, by default, then 30% of those past
/// it) until some of them are authenticated.
pub(super) async fn handshake(
    target: &SshTarget,
    endpoint: &str,
    deadline: Instant,
) -> Result<Handle<client::Client>, SshError> {
    let connect_timeout = || SshError::ConnectTimeout {
        endpoint: endpoint.to_owned(),
        bound: target.timeouts.connect,
    };
    let mut pause = Duration::from_millis(100);
    for attempt in 1.. {
        let stream = timeout_at(deadline, tcp_connect(target, endpoint))
            .await
            .map_err(|_| connect_timeout())??;
        let config = Arc::new(client_config(target));
        let client = client::Client::new(target);
        let error = match timeout_at(
            deadline,
            russh_client::connect_stream(config, stream, client),
        )
        .await
        {
            Err(_) => return Err(connect_timeout()),
            Ok(Ok(handle)) => return Ok(handle),
            Ok(Err(error)) => error.into_ssh_error(endpoint),
        };
        if !closed_before_handshake(&error) {
            return Err(error);
        }
        if Instant::now() + pause >= deadline {
            return Err(SshError::ClosedBeforeHandshake {
                endpoint: endpoint.to_owned(),
                attempts: attempt,
                bound: target.timeouts.connect,
            });
        }
        tracing::debug!(%endpoint, attempt, ?pause, "the server closed the connection before the handshake (sshd MaxStartups?): trying again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
    unreachable!("the attempts above return")
}

/// Whether the server closed the connection before the handshake completed (sshd past
/// `MaxStartups`), rather than refusing something in it.
fn closed_before_handshake(error: &SshError) -> bool {
    let SshError::Handshake { source, .. } = error else {
        return false;
    };
    match &**source {
        russh::Error::Disconnect | russh::Error::HUP => true,
        russh::Error::IO(io) => matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
        ),
        _ => false,
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
