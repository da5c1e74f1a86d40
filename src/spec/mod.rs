//! The desired state: spec types, loading, validation and secret references.

pub mod adopt;
pub mod backup;
pub mod checks;
pub mod diagnostic;
pub mod document;
pub mod load;
pub mod names;
pub mod schema;
pub mod secret;
pub mod server;
pub mod site;
pub mod tls;
pub mod yaml;

pub use diagnostic::{Diagnostic, Sources};
pub use load::{Loaded, Located};
pub use server::{Server, ServerSpec};
pub use site::{Site, SiteSpec};

use std::path::PathBuf;

/// The first site of a specs text (a multi-document YAML), loaded and checked as files on disk
/// are; for unit tests. Panics on any diagnostic.
#[cfg(test)]
pub fn first_site_of(text: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("specs.yaml"), text).unwrap();
    let loaded = load_and_check(&[dir.path().to_path_buf()]);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    loaded.sites[0].item.clone()
}

/// Loads the specs under `paths` and runs every check: schema, then semantics.
///
/// Returns everything that loaded together with every problem found, so that one run
/// reports all errors at once.
pub fn load_and_check(paths: &[PathBuf]) -> Loaded {
    let mut loaded = load::load(paths);
    checks::check(&mut loaded);
    loaded
        .diagnostics
        .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    loaded
}
