//! Public key authentication from a key file or an ssh-agent.

use std::path::Path;
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use tokio::io::{AsyncRead, AsyncWrite};

use super::client::Client;
use super::{Identity, SshError, SshTarget};

/// Logs in as `target.user` with `target.identity`.
pub(super) async fn authenticate(
    handle: &mut Handle<Client>,
    target: &SshTarget,
    endpoint: &str,
) -> Result<(), SshError> {
    let login = Login {
        user: &target.user,
        endpoint,
    };
    let accepted = match &target.identity {
        Identity::File(path) => login.with_file(handle, path).await?,
        Identity::Agent => {
            if std::env::var_os("SSH_AUTH_SOCK").is_none() {
                return Err(SshError::NoAgent);
            }
            let agent = AgentClient::connect_env().await.map_err(agent_error)?;
            login.with_agent(handle, agent).await?
        }
        Identity::AgentAt(socket) => {
            let agent = AgentClient::connect_uds(socket)
                .await
                .map_err(agent_error)?;
            login.with_agent(handle, agent).await?
        }
    };
    if accepted {
        return Ok(());
    }
    Err(SshError::AuthFailed {
        user: target.user.clone(),
        endpoint: endpoint.to_owned(),
        identity: target.identity.describe(),
    })
}

struct Login<'a> {
    user: &'a str,
    endpoint: &'a str,
}

impl Login<'_> {
    async fn with_file(&self, handle: &mut Handle<Client>, path: &Path) -> Result<bool, SshError> {
        let key = match load_key(path) {
            Err(SshError::KeyEncrypted { path }) => {
                return self.with_file_in_agent(handle, &path).await;
            }
            loaded => loaded?,
        };
        let hash = self.rsa_hash(handle, key.algorithm().is_rsa()).await?;
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        let result = handle.authenticate_publickey(self.user, key).await;
        Ok(result
            .map_err(|source| self.protocol_error(source))?
            .success())
    }

    /// An encrypted key file: signed with by the ssh-agent that holds it (as OpenSSH does with
    /// an `IdentityFile` whose key is in the agent); siteward never asks for passphrases.
    async fn with_file_in_agent(
        &self,
        handle: &mut Handle<Client>,
        path: &Path,
    ) -> Result<bool, SshError> {
        let encrypted = || SshError::KeyEncrypted {
            path: path.to_owned(),
        };
        let Some(public) = public_key_of(path) else {
            return Err(encrypted());
        };
        if std::env::var_os("SSH_AUTH_SOCK").is_none() {
            return Err(encrypted());
        }
        let mut agent = AgentClient::connect_env().await.map_err(agent_error)?;
        let identities = agent.request_identities().await.map_err(agent_error)?;
        let held = identities.into_iter().any(|identity| {
            matches!(identity, AgentIdentity::PublicKey { key, .. } if key.key_data() == public.key_data())
        });
        if !held {
            return Err(encrypted());
        }
        self.with_agent_key(handle, &mut agent, public).await
    }

    async fn with_agent<S>(
        &self,
        handle: &mut Handle<Client>,
        mut agent: AgentClient<S>,
    ) -> Result<bool, SshError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let identities = agent.request_identities().await.map_err(agent_error)?;
        for identity in identities {
            // Certificates would need the server to trust their CA; plain keys are what siteward uses.
            let AgentIdentity::PublicKey { key, .. } = identity else {
                continue;
            };
            if self.with_agent_key(handle, &mut agent, key).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn with_agent_key<S>(
        &self,
        handle: &mut Handle<Client>,
        agent: &mut AgentClient<S>,
        key: PublicKey,
    ) -> Result<bool, SshError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let hash = self.rsa_hash(handle, key.algorithm().is_rsa()).await?;
        let result = handle
            .authenticate_publickey_with(self.user, key, hash, agent)
            .await;
        let result = result.map_err(|source| SshError::AgentSign {
            endpoint: self.endpoint.to_owned(),
            source: Box::new(source),
        })?;
        Ok(matches!(result, AuthResult::Success))
    }

    /// The RSA signature hash the server prefers; SHA-256 when it does not say (never SHA-1 by default).
    async fn rsa_hash(
        &self,
        handle: &Handle<Client>,
        is_rsa: bool,
    ) -> Result<Option<HashAlg>, SshError> {
        if !is_rsa {
            return Ok(None);
        }
        let best = handle.best_supported_rsa_hash().await;
        Ok(best
            .map_err(|source| self.protocol_error(source))?
            .unwrap_or(Some(HashAlg::Sha256)))
    }

    fn protocol_error(&self, source: russh::Error) -> SshError {
        SshError::Auth {
            user: self.user.to_owned(),
            endpoint: self.endpoint.to_owned(),
            source: Box::new(source),
        }
    }
}

fn load_key(path: &Path) -> Result<PrivateKey, SshError> {
    russh::keys::load_secret_key(path, None).map_err(|source| match source {
        russh::keys::Error::KeyIsEncrypted => SshError::KeyEncrypted {
            path: path.to_owned(),
        },
        source => SshError::KeyLoad {
            path: path.to_owned(),
            source: Box::new(source),
        },
    })
}

/// The public half of a key file: stored in the clear in OpenSSH's format even when the private
/// half is encrypted, or in the `.pub` file beside it.
fn public_key_of(path: &Path) -> Option<PublicKey> {
    let text = std::fs::read_to_string(path).ok()?;
    if let Ok(key) = russh::keys::ssh_key::PrivateKey::from_openssh(&text) {
        return Some(key.public_key().clone());
    }
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    russh::keys::load_public_key(public).ok()
}

fn agent_error(source: russh::keys::Error) -> SshError {
    SshError::Agent {
        source: Box::new(source),
    }
}
