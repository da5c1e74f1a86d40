//! Migration: moving a site's data between servers.

pub mod database;
pub mod files;
pub mod handover;
pub mod measure;
pub mod preflight;
pub mod progress;
pub mod report;
pub mod run;
pub mod validate;

/// Whether the site still runs on the source while it is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// The source serves and runs jobs: what changes during the copy is named, not compared.
    Live,
    /// The source is in maintenance with its jobs stopped: everything must match.
    Quiet,
}
