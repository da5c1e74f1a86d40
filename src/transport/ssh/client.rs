//! The russh client handler: host key verification, and refusal of every channel the server tries to open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use russh::client::{ChannelOpenHandle, Handler, Msg, Session};
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{Channel, ChannelOpenFailure};

use super::{HostKeyPolicy, SshError, SshTarget};
use crate::transport::known_hosts::{self, KnownHosts, Verdict};

/// Verifies the server's host key per the target's policy; accepts no channels from the server.
pub(super) struct Client {
    address: String,
    port: u16,
    endpoint: String,
    policy: HostKeyPolicy,
}

/// Why the handshake stopped: russh's own error, or a host key siteward refused.
#[derive(Debug)]
pub(super) enum ClientError {
    Russh(russh::Error),
    Refused(Box<SshError>),
}

impl From<russh::Error> for ClientError {
    fn from(error: russh::Error) -> Self {
        Self::Russh(error)
    }
}

impl ClientError {
    pub(super) fn into_ssh_error(self, endpoint: &str) -> SshError {
        match self {
            Self::Refused(error) => *error,
            Self::Russh(source) => SshError::Handshake {
                endpoint: endpoint.to_owned(),
                source: Box::new(source),
            },
        }
    }
}

impl Client {
    pub(super) fn new(target: &SshTarget) -> Self {
        Self {
            address: target.address.clone(),
            port: target.port,
            endpoint: target.endpoint(),
            policy: target.host_keys.clone(),
        }
    }

    fn verify(&self, presented: &PublicKey) -> Result<(), SshError> {
        let fingerprint = presented.fingerprint(HashAlg::Sha256).to_string();
        if let Some(pinned) = &self.policy.pinned {
            return self.check_pin(pinned, fingerprint);
        }
        let path = &self.policy.known_hosts;
        let verdict = if self.policy.accept_new {
            known_hosts::accept_new(path, &self.address, self.port, presented)
        } else {
            KnownHosts::load(path).map(|file| file.verdict(&self.address, self.port, presented))
        };
        let verdict = verdict.map_err(|source| SshError::KnownHosts {
            endpoint: self.endpoint.clone(),
            source,
        })?;
        self.judge(verdict, presented, fingerprint)
    }

    fn check_pin(&self, pinned: &str, fingerprint: String) -> Result<(), SshError> {
        let normalized = pinned.trim().trim_end_matches('=');
        let digest = normalized
            .strip_prefix("SHA256:")
            .map(|digest| STANDARD_NO_PAD.decode(digest));
        if !matches!(digest, Some(Ok(bytes)) if bytes.len() == 32) {
            return Err(SshError::InvalidPin {
                pinned: pinned.to_owned(),
            });
        }
        if normalized == fingerprint {
            return Ok(());
        }
        Err(SshError::HostKeyPinMismatch {
            endpoint: self.endpoint.clone(),
            fingerprint,
            pinned: pinned.to_owned(),
        })
    }

    fn judge(
        &self,
        verdict: Verdict,
        presented: &PublicKey,
        fingerprint: String,
    ) -> Result<(), SshError> {
        let endpoint = self.endpoint.clone();
        let known_hosts = self.policy.known_hosts.clone();
        let (address, port) = (self.address.clone(), self.port);
        Err(match verdict {
            Verdict::Trusted { .. } => return Ok(()),
            Verdict::Recorded { line } => {
                tracing::warn!(%endpoint, %fingerprint, file = %known_hosts.display(), line, "recorded a new host key");
                return Ok(());
            }
            Verdict::Unknown => SshError::HostKeyUnknown {
                address,
                port,
                fingerprint,
                known_hosts,
            },
            Verdict::Changed { line, known } => SshError::HostKeyChanged {
                address,
                port,
                fingerprint,
                known_fingerprint: known.fingerprint(HashAlg::Sha256).to_string(),
                known_hosts,
                line,
            },
            Verdict::OtherType { line, known } => SshError::HostKeyOtherType {
                address,
                port,
                fingerprint,
                presented_type: algorithm_name(&presented.algorithm()),
                known_type: algorithm_name(&known),
                known_hosts,
                line,
            },
            Verdict::Revoked { line } => SshError::HostKeyRevoked {
                endpoint,
                fingerprint,
                known_hosts,
                line,
            },
            Verdict::CertAuthority { line } => SshError::HostKeyCertAuthority {
                endpoint,
                fingerprint,
                known_hosts,
                line,
            },
        })
    }
}

/// The OpenSSH name of a host key type, for messages.
fn algorithm_name(algorithm: &Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Ed25519 => "ssh-ed25519",
        Algorithm::Ecdsa { curve } => match curve {
            EcdsaCurve::NistP256 => "ecdsa-sha2-nistp256",
            EcdsaCurve::NistP384 => "ecdsa-sha2-nistp384",
            EcdsaCurve::NistP521 => "ecdsa-sha2-nistp521",
        },
        Algorithm::Rsa { .. } => "ssh-rsa",
        Algorithm::Dsa => "ssh-dss",
        _ => "unusual",
    }
}

/// Channels opened by the server (agent, X11, forwarded TCP/IP, …) are never wanted: siteward
/// requests no forwarding, so any such request is refused.
async fn refuse(kind: &str, reply: ChannelOpenHandle) -> Result<(), ClientError> {
    tracing::warn!(kind, "refused a channel opened by the server");
    reply
        .reject(ChannelOpenFailure::AdministrativelyProhibited)
        .await;
    Ok(())
}

impl Handler for Client {
    type Error = ClientError;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Host certificates are never asked for; should one arrive, its key is checked as a plain key.
        let key = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(certificate) => {
                PublicKey::from(certificate.public_key().clone())
            }
        };
        self.verify(&key)
            .map_err(|error| ClientError::Refused(Box::new(error)))?;
        Ok(true)
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _connected_address: &str,
        _connected_port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse("forwarded-tcpip", reply).await
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse("forwarded-streamlocal", reply).await
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse("auth-agent", reply).await
    }

    async fn server_channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse("session", reply).await
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse("direct-tcpip", reply).await
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse("direct-streamlocal", reply).await
    }

    async fn server_channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse("x11", reply).await
    }
}
