//! Reading the sites a server already runs (set up by Forge, Vito, Deployer or by hand) into
//! specs whose plan is only their takeover, with secret references in place of every secret.
//!
//! One read-only probe per server (`probe.sh`) gathers the raw facts ([`answer`]); parsers per
//! source ([`nginx`], [`fpm`], [`supervisor`], [`cron`], [`dotenv`]) read them; [`sites`] ties
//! them to sites; [`output`] writes the specs, `secrets.env.example` and the report.

pub mod answer;
pub mod cron;
pub mod database;
pub mod dotenv;
pub mod fpm;
pub mod jobs;
pub mod nginx;
pub mod output;
pub mod sites;
pub mod supervisor;
pub mod yaml;

use serde::Serialize;

use crate::spec::adopt::AdoptedFrom;
use crate::spec::site::SiteSpec;

/// The probe script, sent on stdin to `sh -s`.
pub const PROBE_SCRIPT: &str = include_str!("probe.sh");

/// What one server runs, as specs.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    /// The Server spec's name.
    pub server: String,
    /// The host name the server reports.
    pub host: String,
    pub sites: Vec<Found>,
    /// Server-wide findings: jobs no site claims, a panel's access, unreadable sources.
    pub items: Vec<Item>,
}

/// One site found.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    pub name: String,
    pub panel: AdoptedFrom,
    #[serde(skip)]
    pub spec: SiteSpec,
    /// What was found, and where.
    pub facts: Vec<Fact>,
    /// What the spec cannot express.
    pub items: Vec<Item>,
    /// The secret references the spec holds, and where each value lives on the server.
    pub secrets: Vec<SecretSource>,
}

/// A fact and where it came from (`FILE:LINE`, a file, or a command).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fact {
    pub what: String,
    pub value: String,
    pub source: String,
}

/// Something the spec cannot express, named by a stable `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A secret reference's name and where its value lives: `SERVER:PATH KEY`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretSource {
    pub name: String,
    pub path: String,
    pub key: String,
}

impl Found {
    fn fact(&mut self, what: &str, value: impl Into<String>, source: impl Into<String>) {
        self.facts.push(Fact {
            what: what.to_owned(),
            value: value.into(),
            source: source.into(),
        });
    }

    fn item(&mut self, kind: &'static str, message: impl Into<String>, source: Option<String>) {
        self.items.push(Item {
            kind,
            message: message.into(),
            source,
        });
    }
}

impl Item {
    /// Items that say what discovery left out on purpose (sites siteward or the specs already
    /// have), not something a spec cannot express.
    pub fn is_notice(&self) -> bool {
        matches!(self.kind, "siteward-site" | "already-managed")
    }
}

impl Discovery {
    /// Whether every site round-trips: nothing found that its spec cannot express.
    pub fn round_trips(&self) -> bool {
        self.items.iter().all(Item::is_notice) && self.sites.iter().all(|s| s.items.is_empty())
    }
}
