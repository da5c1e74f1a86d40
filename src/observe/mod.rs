//! Observation: one probe per server gathers everything the plan needs, in one round trip.

pub mod connect;
pub mod model;
pub mod probe;
pub mod summary;

pub use connect::{ObserveError, observe, probe_access, probe_request, probe_requests, target};
pub use model::*;
pub use probe::{AdminLogin, ProbeAccess, ProbeError, ProbeScript};

use serde::{Deserialize, Serialize};

/// What the probe is asked to look at on one server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRequest {
    /// Sites the specs place on this server (sites recorded on the server are added by the
    /// probe itself, from their records).
    pub sites: Vec<SiteProbe>,
    /// Where the server's Redis answers `PING`; `127.0.0.1:6379` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisEndpoint>,
    /// Examine the requested sites only: the other sites recorded on the server are listed by
    /// name, not examined (a run of one site on a server of hundreds costs as much as one site).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_requested: bool,
}

/// The facts the probe needs about one site.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteProbe {
    pub name: String,
    pub user: String,
    pub domain: String,
    /// PHP version, for the FPM pool path.
    pub php: Option<String>,
    /// `mysql`/`mariadb`/`postgres` and the database name.
    pub database: Option<(String, String)>,
    /// Database users to look up.
    pub database_users: Vec<String>,
    /// Storage paths relative to the site.
    pub storage: Vec<String>,
    /// The repository and the branch (or tag) to resolve with `git ls-remote`, for
    /// [`ObservedSite::source_tip`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<(String, String)>,
    /// The health check to make now, when asked (the daemon's resyncs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthProbe>,
    /// Files the site's `adopt` section takes over: observed as the site's while they exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adopted: Vec<String>,
}

/// A site's health check, as the probe makes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthProbe {
    pub path: String,
    pub expect_status: u16,
    pub expect_body: Option<String>,
    pub timeout_seconds: u32,
    /// Over HTTPS to the server itself (the site has `tls`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub https: bool,
}

/// A Redis server's TCP address, as seen from the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedisEndpoint {
    pub host: String,
    pub port: u16,
}

impl Default for RedisEndpoint {
    fn default() -> Self {
        RedisEndpoint {
            host: "127.0.0.1".to_owned(),
            port: 6379,
        }
    }
}
