//! Backups with restic to S3-compatible storage, restores onto the same or a new server, and
//! portable site bundles (`export`/`import`) that hold no secret value.

pub mod resource;
pub mod settings;
pub mod remote;
pub mod snapshots;
pub mod restore;
pub mod lost;
pub mod bundle;
