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
