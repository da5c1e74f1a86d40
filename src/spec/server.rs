//! The `Server` kind: how to reach a machine and what it offers.

use super::names::ServerName;
use super::secret::SecretRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A machine that hosts sites.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSpec {
    /// Host name or IP address siteward connects to over SSH.
    pub address: String,
    /// SSH port.
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// SSH user: `root`, or a user with passwordless `sudo -n`.
    #[serde(default = "default_ssh_user")]
    pub user: String,
    /// Private key file; ssh-agent (`SSH_AUTH_SOCK`) is used when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<String>,
    /// Pinned host key fingerprint (`SHA256:…`, as `ssh-keygen -lf` prints it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^SHA256:[A-Za-z0-9+/=.]+$"))]
    pub host_key: Option<String>,
    /// known_hosts file checked when no `hostKey` is pinned (default `~/.ssh/known_hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_file: Option<String>,
    /// PHP versions expected on the server (checked, not assumed).
    #[serde(default)]
    pub php: Vec<String>,
    /// MySQL or MariaDB administration access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql: Option<DatabaseAdmin>,
    /// PostgreSQL administration access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<DatabaseAdmin>,
    /// The Redis the server's sites use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisAccess>,
    /// Process manager for workers.
    #[serde(default)]
    pub process_manager: ProcessManager,
    /// Web server for vhosts.
    #[serde(default)]
    pub web_server: WebServer,
    /// Seconds between SSH keepalives while the server is silent; after three unanswered ones
    /// the connection counts as cut (a long copy then fails and the next apply resumes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub keepalive_seconds: Option<u16>,
    /// Backup defaults for the sites on this server; a site's own `backup` fields win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<super::backup::BackupSpec>,
}

/// Administration access to a database server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseAdmin {
    /// Administrative user; socket (peer) authentication when no password is given.
    pub admin_user: String,
    /// Reference to the administrative password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<SecretRef>,
}

/// Where the server's Redis listens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisAccess {
    /// `redis://host:port` as seen from the server.
    #[schemars(regex(pattern = r"^rediss?://"))]
    pub url: String,
}

/// The process manager that runs workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessManager {
    #[default]
    Supervisor,
}

/// The web server that serves sites.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WebServer {
    #[default]
    Nginx,
}

fn default_ssh_port() -> u16 {
    22
}

fn default_ssh_user() -> String {
    "root".to_owned()
}

/// A named server, as loaded from a spec document.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub name: ServerName,
    pub spec: ServerSpec,
}
