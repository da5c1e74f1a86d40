//! Sites whose last server does not answer: a re-pointed site that no server that answers
//! holds is restored from its latest backup when that backup was made on a server that does not
//! answer; without one, it is not planned (it may still live there).

use super::remote::Remote;
use super::resource::BackupDesired;
use super::restore::{RestorePlan, choose};
use super::snapshots::Run;
use crate::migrate::progress::Progress;
use crate::observe::ObservedServer;
use crate::plan::Plan;
use crate::spec::Site;
use crate::spec::secret::ResolvedSecrets;
use crate::transport::Transport;
use std::collections::BTreeMap;

/// What finding lost sites needs.
pub struct LostSites<'a, T> {
    /// The sites planned.
    pub sites: &'a [&'a Site],
    pub observed: &'a BTreeMap<String, ObservedServer>,
    /// Servers that did not answer, with why.
    pub unreachable: &'a BTreeMap<String, String>,
    pub sessions: &'a BTreeMap<String, T>,
    pub backups: &'a BTreeMap<String, BackupDesired>,
    pub secrets: &'a ResolvedSecrets,
}

impl<T: Transport> LostSites<'_, T> {
    /// Marks the plan of each lost site: a restore of its latest backup, or why it cannot be
    /// planned. Returns the runs to restore, by site. Nothing to do while every server answers.
    pub async fn plan_restores(&self, plan: &mut Plan) -> BTreeMap<String, Run> {
        let mut runs = BTreeMap::new();
        if self.unreachable.is_empty() {
            return runs;
        }
        for site in self.sites {
            if !self.lost(site) {
                continue;
            }
            let verdict = self.latest_run(site).await;
            let (name, server) = (site.name.as_str(), site.spec.server.as_str());
            let Some(entry) = plan
                .sites
                .iter_mut()
                .find(|p| p.site == name && p.server == server)
            else {
                continue;
            };
            match verdict {
                Ok(Some(run)) if self.unreachable.contains_key(&run.server) => {
                    let reason = format!(
                        "`{}` does not answer and no server that answers holds the site: its latest backup is restored on `{server}`",
                        run.server
                    );
                    entry.restore = Some(RestorePlan::of(&run, reason));
                    runs.insert(name.to_owned(), run);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    let why = verdict
                        .err()
                        .unwrap_or_else(|| "it has no backup".to_owned());
                    entry.blocked_by.push(format!(
                        "site `{name}` is on no server that answers, and {} did not: it may live there, and {why} to restore it from (bring the server back, or remove it from the specs to create the site anew)",
                        self.unreachable_list()
                    ));
                    entry.changes.clear();
                }
            }
        }
        runs
    }

    /// Whether no server that answered holds the site while its own server answered.
    fn lost(&self, site: &Site) -> bool {
        let name = site.name.as_str();
        self.observed.contains_key(site.spec.server.as_str())
            && !self
                .observed
                .values()
                .any(|server| server.recorded_sites.iter().any(|r| r == name))
    }

    fn unreachable_list(&self) -> String {
        let names: Vec<String> = self.unreachable.keys().map(|n| format!("`{n}`")).collect();
        names.join(", ")
    }

    /// The site's latest complete run, listed through its new server; why not, as words.
    async fn latest_run(&self, site: &Site) -> Result<Option<Run>, String> {
        let name = site.name.as_str();
        let server = site.spec.server.as_str();
        let desired = self.backups.get(name).ok_or("it has no backups")?;
        let settings = desired.settings.as_ref().ok_or("it has no backups")?;
        let transport = self
            .sessions
            .get(server)
            .ok_or("its server is not connected")?;
        let remote = Remote {
            transport,
            server,
            layout: &desired.layout,
            settings: Some(settings),
            secrets: self.secrets,
            progress: Progress::Off,
        };
        let runs = remote.runs().await.map_err(|e| {
            format!(
                "its backups could not be listed ({})",
                crate::apply::error_text(&e)
            )
        })?;
        let with_database = desired.layout.database.is_some();
        Ok(choose(&runs, None, with_database).cloned())
    }
}
