//! The specs the daemon works from: loaded whole, kept as an immutable snapshot while they are valid, and compared with the last one to find the sites a change touches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use crate::plan::fingerprint::site_spec_hash;
use crate::spec::{self, Loaded, Server, Site, diagnostic};

/// Valid specs as loaded at one moment, with the hashes that tell what changed.
pub struct Snapshot {
    pub loaded: Loaded,
    /// The specs' git revision, when their directory is a checkout.
    pub revision: String,
    /// Each site's spec hash (what its record on the server says was applied).
    pub site_hashes: BTreeMap<String, String>,
    server_hashes: BTreeMap<String, String>,
}

impl Snapshot {
    /// A snapshot of `loaded`, which has no diagnostics.
    pub fn new(loaded: Loaded, revision: String) -> Self {
        let site_hashes = loaded
            .sites
            .iter()
            .map(|s| (s.item.name.to_string(), site_spec_hash(&s.item)))
            .collect();
        let server_hashes = loaded
            .servers
            .iter()
            .map(|s| (s.item.name.to_string(), server_hash(&s.item)))
            .collect();
        Snapshot {
            loaded,
            revision,
            site_hashes,
            server_hashes,
        }
    }

    /// The site named `name`.
    pub fn site(&self, name: &str) -> Option<&Site> {
        self.loaded
            .sites
            .iter()
            .map(|s| &s.item)
            .find(|s| s.name.as_str() == name)
    }

    /// The server named `name`.
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.loaded
            .servers
            .iter()
            .map(|s| &s.item)
            .find(|s| s.name.as_str() == name)
    }

    /// Every site with the server its spec places it on.
    pub fn placements(&self) -> impl Iterator<Item = (&str, &str)> {
        self.loaded
            .sites
            .iter()
            .map(|s| (s.item.name.as_str(), s.item.spec.server.as_str()))
    }

    /// The sites whose document changed from `earlier` (or is new), and every site of a server
    /// whose document changed; and the sites `earlier` had that this one does not.
    pub fn changes_since(&self, earlier: &Snapshot) -> SpecChanges {
        let servers_changed: BTreeSet<&str> = self
            .server_hashes
            .iter()
            .filter(|(name, hash)| earlier.server_hashes.get(*name) != Some(hash))
            .map(|(name, _)| name.as_str())
            .collect();
        let changed = self
            .placements()
            .filter(|(site, server)| {
                earlier.site_hashes.get(*site) != self.site_hashes.get(*site)
                    || servers_changed.contains(server)
            })
            .map(|(site, _)| site.to_owned())
            .collect();
        let removed = earlier
            .site_hashes
            .keys()
            .filter(|site| !self.site_hashes.contains_key(*site))
            .cloned()
            .collect();
        SpecChanges { changed, removed }
    }
}

/// What a new snapshot changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SpecChanges {
    /// Sites to reconcile: their document, or their server's, changed (or they are new).
    pub changed: BTreeSet<String>,
    /// Sites no spec names any more.
    pub removed: BTreeSet<String>,
}

fn server_hash(server: &Server) -> String {
    let json = serde_json::json!({"name": server.name.as_str(), "spec": &server.spec});
    hex::encode(Sha256::digest(json.to_string().as_bytes()))
}

/// The current snapshot, replaced as a whole when the specs change; and why the last load
/// was refused, if it was.
pub struct Specs {
    paths: Vec<PathBuf>,
    current: RwLock<Arc<Snapshot>>,
    refused: RwLock<Option<String>>,
}

impl Specs {
    /// Loads the specs at `paths`; invalid specs are an error with their diagnostics.
    pub fn load(paths: Vec<PathBuf>) -> Result<Self, String> {
        let snapshot = load_snapshot(&paths)?;
        Ok(Specs {
            paths,
            current: RwLock::new(Arc::new(snapshot)),
            refused: RwLock::new(None),
        })
    }

    /// The snapshot in force.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Why the specs on disk are not in force (they are invalid), if they are not.
    pub fn refused(&self) -> Option<String> {
        self.refused
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where the specs are read from.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Loads the specs again: when they are valid they replace the snapshot and the changes
    /// are returned; when not, the snapshot in force stays and the diagnostics are kept.
    pub fn reload(&self) -> Result<SpecChanges, String> {
        let snapshot = match load_snapshot(&self.paths) {
            Ok(snapshot) => snapshot,
            Err(diagnostics) => {
                *self.refused.write().unwrap_or_else(|e| e.into_inner()) =
                    Some(diagnostics.clone());
                return Err(diagnostics);
            }
        };
        *self.refused.write().unwrap_or_else(|e| e.into_inner()) = None;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let changes = snapshot.changes_since(&current);
        *current = Arc::new(snapshot);
        Ok(changes)
    }
}

fn load_snapshot(paths: &[PathBuf]) -> Result<Snapshot, String> {
    let loaded = spec::load_and_check(paths);
    if !loaded.diagnostics.is_empty() {
        return Err(diagnostic::render_text(
            &loaded.diagnostics,
            &loaded.sources,
        ));
    }
    let revision = super::git::revision(paths);
    Ok(Snapshot::new(loaded, revision))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "apiVersion: siteward.dev/v1\nkind: Server\nmetadata:\n  name: web-1\nspec:\n  address: 10.0.0.1\n  php: [\"8.2\"]\n";

    fn site(name: &str, domain: &str) -> String {
        format!(
            "apiVersion: siteward.dev/v1\nkind: Site\nmetadata:\n  name: {name}\nspec:\n  server: web-1\n  type: php\n  domain: {domain}\n  user: {name}\n  php: \"8.2\"\n"
        )
    }

    fn snapshot_of(dir: &std::path::Path, files: &[(&str, String)]) -> Snapshot {
        for entry in std::fs::read_dir(dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let loaded = spec::load_and_check(&[dir.to_path_buf()]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        Snapshot::new(loaded, String::new())
    }

    #[test]
    fn only_the_sites_whose_documents_changed_are_reconciled_and_all_of_a_changed_server() {
        let dir = tempfile::tempdir().unwrap();
        let before = snapshot_of(
            dir.path(),
            &[
                ("server.yaml", SERVER.into()),
                ("a.yaml", site("alpha", "a.test")),
                ("b.yaml", site("beta", "b.test")),
            ],
        );
        let edited = snapshot_of(
            dir.path(),
            &[
                ("server.yaml", SERVER.into()),
                ("a.yaml", site("alpha", "a2.test")),
                ("b.yaml", site("beta", "b.test")),
            ],
        );
        let changes = edited.changes_since(&before);
        assert_eq!(
            changes.changed.into_iter().collect::<Vec<_>>(),
            vec!["alpha"]
        );
        assert!(changes.removed.is_empty());

        let server = SERVER.replace("10.0.0.1", "10.0.0.2");
        let moved = snapshot_of(
            dir.path(),
            &[
                ("server.yaml", server),
                ("a.yaml", site("alpha", "a2.test")),
            ],
        );
        let changes = moved.changes_since(&edited);
        assert_eq!(
            changes.changed.into_iter().collect::<Vec<_>>(),
            vec!["alpha"],
            "its server changed"
        );
        assert_eq!(
            changes.removed.into_iter().collect::<Vec<_>>(),
            vec!["beta"]
        );
        assert_eq!(moved.changes_since(&moved), SpecChanges::default());
    }
}
