//! What a reconcile looks at: every server once at the start (where each site is recorded),
//! then the site's own servers, or every server for a site just taken over from another daemon.

use std::collections::BTreeMap;

use super::{Daemon, ReconcileError, admin_secrets};
use crate::apply::error_text;
use crate::daemon::specs::Snapshot;
use crate::observe::{self, ObservedServer};
use crate::spec::Site;
use crate::spec::secret::ResolvedSecrets;
use crate::transport::SshSession;

impl Daemon {
    /// Observes every server once (all the sites on it) to learn where each site is recorded,
    /// before the first reconciles; unreachable servers are learned from later.
    pub async fn survey(&self) {
        let snapshot = self.specs.current();
        let surveys = snapshot.loaded.servers.iter().map(|located| {
            let server = &located.item;
            let snapshot = &snapshot;
            async move {
                let session = self.connections.get(server).await?;
                let request =
                    observe::connect::probe_request(&snapshot.loaded, server.name.as_str());
                let secrets = admin_secrets(snapshot, &[]);
                let observed = observe::connect::observe(server, &session, &request, &secrets)
                    .await
                    .map_err(|error| ReconcileError::Observe {
                        server: server.name.to_string(),
                        reason: error_text(&error),
                    })?;
                Ok::<_, ReconcileError>((server.name.to_string(), observed))
            }
        });
        for result in futures::future::join_all(surveys).await {
            match result {
                Ok((server, observed)) => self.placements.learn(&server, &observed, None),
                Err(error) => tracing::warn!("survey: {error}"),
            }
        }
    }

    /// Whether `site`'s lease is new to this daemon since its last run of the site.
    pub(super) fn taken_over(&self, site: &str) -> bool {
        let Ok(Some(fence)) = self.owner.fence(site) else {
            return false;
        };
        let mut seen = self.fences_seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(site.to_owned(), fence) != Some(fence)
    }

    /// Connects to the site's servers and observes the site on each, in one probe each.
    pub(super) async fn observe(
        &self,
        snapshot: &Snapshot,
        site: &Site,
        secrets: &ResolvedSecrets,
        everywhere: bool,
    ) -> Result<
        (
            BTreeMap<String, SshSession>,
            BTreeMap<String, ObservedServer>,
        ),
        ReconcileError,
    > {
        let mut sessions = BTreeMap::new();
        let mut observed = BTreeMap::new();
        let placed_on = site.spec.server.as_str();
        let mut servers = self.placements.servers_of(site.name.as_str(), placed_on);
        if everywhere {
            servers.extend(
                snapshot
                    .loaded
                    .servers
                    .iter()
                    .map(|s| s.item.name.to_string()),
            );
        }
        let known = self.placements.servers_of(site.name.as_str(), placed_on);
        for name in servers {
            let Some(server) = snapshot.server(&name) else {
                continue;
            };
            // A server looked at only to find the site (not its own, not where it is known to
            // be) that cannot be reached is skipped.
            let optional = !known.contains(&name);
            let session = match self.connections.get(server).await {
                Ok(session) => session,
                Err(error) if optional => {
                    tracing::warn!(site = %site.name, server = %name, "not looked at: {error}");
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            // The site's health on its own server only (a source is not checked).
            let health = name == placed_on;
            let request = observe::ProbeRequest {
                only_requested: true,
                ..observe::connect::probe_request_for(&snapshot.loaded, &name, &[site], health)
            };
            let answer = observe::connect::observe(server, &session, &request, secrets).await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(error) if optional => {
                    tracing::warn!(site = %site.name, server = %name, "not looked at: {}", error_text(&error));
                    continue;
                }
                Err(error) => {
                    self.connections.count_error(&name);
                    if session.is_closed() {
                        self.connections.forget(&name).await;
                    }
                    return Err(ReconcileError::Observe {
                        server: name,
                        reason: error_text(&error),
                    });
                }
            };
            self.placements
                .learn(&name, &answer, Some(site.name.as_str()));
            if optional && !answer.sites.contains_key(site.name.as_str()) {
                continue;
            }
            sessions.insert(name.clone(), session);
            observed.insert(name, answer);
        }
        Ok((sessions, observed))
    }
}
