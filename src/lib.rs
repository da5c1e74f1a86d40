//! siteward: a declarative reconciler for PHP and Laravel sites on plain Linux servers.

pub mod cli;
pub mod commands;
pub mod spec;
pub mod transport;
