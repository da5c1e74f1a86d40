//! Where each site is recorded, learned from every probe's answer: a site whose spec names another server than these is a migration from them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::observe::ObservedServer;
use crate::plan::build::MOVED_TO_FACT;

/// The servers each site is recorded on (and has not moved away from).
#[derive(Debug, Default)]
pub struct Placements {
    sites: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl Placements {
    /// Learns from `server`'s answer about `only` one site, or about all its sites.
    pub fn learn(&self, server: &str, observed: &ObservedServer, only: Option<&str>) {
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        for (site, servers) in sites.iter_mut() {
            if only.is_none_or(|name| name == site) && !observed.sites.contains_key(site) {
                servers.remove(server);
            }
        }
        for (site, seen) in &observed.sites {
            if only.is_some_and(|name| name != site) {
                continue;
            }
            // A record that says where the site went is a former home, not a place to move from.
            let lives_here = seen
                .record
                .as_ref()
                .is_some_and(|record| !record.facts.contains_key(MOVED_TO_FACT));
            let servers = sites.entry(site.clone()).or_default();
            if lives_here {
                servers.insert(server.to_owned());
            } else {
                servers.remove(server);
            }
        }
    }

    /// `site` now lives on `server` (an apply or a migration there succeeded).
    pub fn settled(&self, site: &str, server: &str) {
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        sites
            .entry(site.to_owned())
            .or_default()
            .insert(server.to_owned());
    }

    /// The servers to observe for `site`: `placed_on` (its spec's) and those it is recorded on.
    pub fn servers_of(&self, site: &str, placed_on: &str) -> BTreeSet<String> {
        let sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let mut servers = sites.get(site).cloned().unwrap_or_default();
        servers.insert(placed_on.to_owned());
        servers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::ObservedSite;
    use crate::observe::model::SiteRecord;

    fn answer(sites: &[(&str, Option<&str>)]) -> ObservedServer {
        let mut observed = ObservedServer::default();
        for (site, moved_to) in sites {
            let mut facts = BTreeMap::new();
            if let Some(target) = moved_to {
                facts.insert(MOVED_TO_FACT.to_owned(), (*target).to_owned());
            }
            let record = SiteRecord {
                facts,
                lock: None,
                journal: Vec::new(),
            };
            let seen = ObservedSite {
                record: Some(record),
                ..ObservedSite::default()
            };
            observed.sites.insert((*site).to_owned(), seen);
        }
        observed
    }

    fn servers(placements: &Placements, site: &str, placed_on: &str) -> Vec<String> {
        placements.servers_of(site, placed_on).into_iter().collect()
    }

    #[test]
    fn a_site_recorded_elsewhere_is_observed_there_until_it_moved_away() {
        let placements = Placements::default();
        placements.learn("a", &answer(&[("shop", None), ("blog", None)]), None);
        assert_eq!(
            servers(&placements, "shop", "b"),
            ["a", "b"],
            "a re-pointed shop moves from a"
        );
        placements.learn(
            "a",
            &answer(&[("shop", Some("b")), ("blog", None)]),
            Some("shop"),
        );
        assert_eq!(servers(&placements, "shop", "b"), ["b"], "a former home");
        assert_eq!(servers(&placements, "blog", "a"), ["a"]);
        placements.learn("a", &answer(&[]), None);
        assert_eq!(servers(&placements, "blog", "c"), ["c"], "gone from a");
    }
}
