//! The document envelope shared by every kind: `apiVersion`, `kind`, `metadata`, `spec`.

use super::names::{ServerName, SiteName};
use super::server::ServerSpec;
use super::site::SiteSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The one API version this release understands.
pub const API_VERSION: &str = "siteward.dev/v1";

/// The kinds this release understands.
pub const KINDS: [&str; 2] = ["Server", "Site"];

/// `apiVersion: siteward.dev/v1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "siteward.dev/v1")]
    V1,
}

/// `kind: Server`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServerKind {
    Server,
}

/// `kind: Site`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SiteKind {
    Site,
}

/// Object metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata<N> {
    /// Name, unique per kind.
    pub name: N,
    /// Free-form labels for people and tooling.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A `Server` document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "siteward Server")]
pub struct ServerDocument {
    pub api_version: ApiVersion,
    pub kind: ServerKind,
    pub metadata: Metadata<ServerName>,
    pub spec: ServerSpec,
}

/// A `Site` document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "siteward Site")]
pub struct SiteDocument {
    pub api_version: ApiVersion,
    pub kind: SiteKind,
    pub metadata: Metadata<SiteName>,
    pub spec: SiteSpec,
}
