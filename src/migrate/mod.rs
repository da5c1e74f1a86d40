//! Migration: moving a site's data between servers.

pub mod database;
pub mod files;
pub mod preflight;
