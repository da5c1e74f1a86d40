//! Hashes that bind a saved plan to the specs and to what was observed.

use crate::observe::ObservedServer;
use crate::spec::Site;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Hash of one site's spec (name, placement and every field).
pub fn site_spec_hash(site: &Site) -> String {
    let json = serde_json::json!({"name": site.name.as_str(), "spec": &site.spec});
    hex::encode(Sha256::digest(json.to_string().as_bytes()))
}

/// Hash of every site spec in the plan.
pub fn spec_hash<'a>(sites: impl IntoIterator<Item = &'a Site>) -> String {
    let mut hashes: Vec<String> = sites.into_iter().map(site_spec_hash).collect();
    hashes.sort();
    hex::encode(Sha256::digest(hashes.join("\n").as_bytes()))
}

/// Hash of everything observed on every server (by server name) that a plan depends on.
///
/// What moves on its own is left out: free disk, locks (held by the apply itself) and
/// process states (a worker between STARTING and RUNNING). A saved plan is stale when
/// anything else changed.
pub fn observed_fingerprint(observed: &BTreeMap<String, ObservedServer>) -> String {
    let mut stable = observed.clone();
    for server in stable.values_mut() {
        server.disks.clear();
        for site in server.sites.values_mut() {
            site.processes.clear();
            // Backups run on their own schedule: their status is no reason to refuse a plan.
            site.backup = None;
            if let Some(record) = site.record.as_mut() {
                record.lock = None;
            }
        }
    }
    let json = serde_json::to_string(&stable).unwrap_or_default();
    hex::encode(Sha256::digest(json.as_bytes()))
}
