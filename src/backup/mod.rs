//! Backups with restic to S3-compatible storage or over SFTP to another server, restores onto the same or a new server, and
//! portable site bundles (`export`/`import`) that hold no secret value.

pub mod bundle;
pub mod lost;
pub mod remote;
pub mod repository;
pub mod resource;
pub mod restore;
pub mod settings;
pub mod snapshots;
