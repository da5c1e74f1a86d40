//! siteward: a declarative reconciler for PHP and Laravel sites on plain Linux servers.

pub mod apply;
pub mod backup;
pub mod cli;
pub mod commands;
pub mod conditions;
pub mod daemon;
pub mod discover;
pub mod layout;
pub mod migrate;
pub mod observe;
pub mod plan;
pub mod resources;
pub mod spec;
pub mod store;
pub mod transport;
