//! One SSH connection per server, kept between reconciles and made again when it is gone or the Server's spec changed; a server that cannot be reached is tried again only after a backoff of its own, so its sites fail fast meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::apply::error_text;
use crate::observe;
use crate::spec::Server;
use crate::transport::SshSession;

/// The first wait after a server could not be reached, and the longest.
const RECONNECT_BASE: Duration = Duration::from_secs(1);
const RECONNECT_CAP: Duration = Duration::from_secs(30);

/// Why no connection could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    #[error("could not connect to server `{server}`: {reason}")]
    Failed { server: String, reason: String },
    #[error(
        "server `{server}` was unreachable {ago:?} ago ({reason}); tried again in {retry_in:?}"
    )]
    Waiting {
        server: String,
        reason: String,
        ago: Duration,
        retry_in: Duration,
    },
}

#[derive(Default)]
struct Pooled {
    /// What the connection was made from: a changed Server spec makes a new one.
    made_from: String,
    session: Option<SshSession>,
    failures: u32,
    last_failure: Option<(Instant, String)>,
    retry_at: Option<Instant>,
}

/// The connections, by server name.
#[derive(Default)]
pub struct Connections {
    servers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Pooled>>>>,
    /// Failed connection attempts, by server (a metric).
    errors: Mutex<HashMap<String, u64>>,
}

impl Connections {
    /// A connection to `server`: the kept one when it is alive and made from the same spec,
    /// else a new one (one attempt at a time per server; none while its backoff runs).
    ///
    /// # Errors
    /// The server could not be reached, now or at the last attempt.
    pub async fn get(&self, server: &Server) -> Result<SshSession, ConnectError> {
        let name = server.name.to_string();
        let slot = self.slot(&name);
        let mut pooled = slot.lock().await;
        let made_from = serde_json::to_string(&server.spec).unwrap_or_default();
        if pooled.made_from == made_from
            && let Some(session) = pooled.session.as_ref().filter(|s| !s.is_closed())
        {
            return Ok(session.clone());
        }
        let now = Instant::now();
        if pooled.made_from == made_from
            && let (Some(retry_at), Some((at, reason))) = (pooled.retry_at, &pooled.last_failure)
            && now < retry_at
        {
            return Err(ConnectError::Waiting {
                server: name,
                reason: reason.clone(),
                ago: now - *at,
                retry_in: retry_at - now,
            });
        }
        pooled.made_from = made_from;
        pooled.session = None;
        let target = observe::connect::target(server, false);
        match SshSession::connect(&target).await {
            Ok(session) => {
                pooled.session = Some(session.clone());
                pooled.failures = 0;
                pooled.retry_at = None;
                pooled.last_failure = None;
                Ok(session)
            }
            Err(error) => {
                let reason = error_text(&error);
                let wait = RECONNECT_BASE
                    .saturating_mul(2u32.saturating_pow(pooled.failures.min(10)))
                    .min(RECONNECT_CAP);
                pooled.failures += 1;
                pooled.retry_at = Some(Instant::now() + wait);
                pooled.last_failure = Some((Instant::now(), reason.clone()));
                *self.lock_errors().entry(name.clone()).or_default() += 1;
                Err(ConnectError::Failed {
                    server: name,
                    reason,
                })
            }
        }
    }

    /// Forgets the connection to `server` (a command found it broken): the next `get` makes one.
    pub async fn forget(&self, server: &str) {
        let slot = self.slot(server);
        let mut pooled = slot.lock().await;
        if let Some(session) = pooled.session.take() {
            session.close().await;
        }
    }

    /// Failed connection attempts so far, by server.
    pub fn error_counts(&self) -> Vec<(String, u64)> {
        let errors = self.lock_errors();
        let mut counts: Vec<(String, u64)> = errors.iter().map(|(k, v)| (k.clone(), *v)).collect();
        counts.sort();
        counts
    }

    /// Counts a failure that was not a connect (a command on a broken connection).
    pub fn count_error(&self, server: &str) {
        *self.lock_errors().entry(server.to_owned()).or_default() += 1;
    }

    /// Closes every connection.
    pub async fn close_all(&self) {
        let slots: Vec<_> = self.lock_servers().values().cloned().collect();
        for slot in slots {
            if let Some(session) = slot.lock().await.session.take() {
                session.close().await;
            }
        }
    }

    fn slot(&self, server: &str) -> Arc<tokio::sync::Mutex<Pooled>> {
        Arc::clone(self.lock_servers().entry(server.to_owned()).or_default())
    }

    fn lock_servers(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<Pooled>>>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_errors(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.errors.lock().unwrap_or_else(|e| e.into_inner())
    }
}
