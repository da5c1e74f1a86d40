//! Migration: moving a site's data between servers.

pub mod compat;
pub mod database;
pub mod files;
pub mod handover;
pub mod launch;
pub mod measure;
pub mod preflight;
pub mod progress;
pub mod redis;
pub mod relay;
pub mod report;
pub mod run;
pub mod validate;

/// How a stream (a database dump, a storage archive) is compressed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `zstd`, when both servers have it.
    Zstd,
    /// `gzip -1` otherwise.
    Gzip,
}

impl Compression {
    /// zstd when both ends have it, else gzip (every server has gzip).
    pub fn shared(source_has_zstd: bool, target_has_zstd: bool) -> Self {
        if source_has_zstd && target_has_zstd {
            Self::Zstd
        } else {
            Self::Gzip
        }
    }

    /// The word the scripts take.
    pub fn word(self) -> &'static str {
        match self {
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }
}

/// Whether the site still runs on the source while it is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// The source serves and runs jobs: what changes during the copy is named, not compared.
    Live,
    /// The source is in maintenance with its jobs stopped: everything must match.
    Quiet,
}
