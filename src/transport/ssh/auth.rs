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
        let key = load_key(path)?;
        let hash = self.rsa_hash(handle, key.algorithm().is_rsa()).await?;
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        let result = handle.authenticate_publickey(self.user, key).await;
        Ok(result
            .map_err(|source| self.protocol_error(source))?
            .success())
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

fn agent_error(source: russh::keys::Error) -> SshError {
    SshError::Agent {
        source: Box::new(source),
    }
}
