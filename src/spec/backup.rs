//! The `backup` section of a Site (or a Server's default for its sites): restic to S3.

use super::secret::SecretRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Backups with restic, run by the server itself on a schedule. On a Server, every field is a
/// default for the sites on it; a Site's own fields win.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSpec {
    /// `false` turns backups off for this site (a Server default applies otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The restic repository: `s3:https://host/bucket/path` on any S3-compatible store. On a
    /// Server, the base under which each site gets `<repository>/<site>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^s3:https?://[^\s]+$"))]
    pub repository: Option<String>,
    /// The S3 access key pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<S3Credentials>,
    /// The repository's encryption password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// When the server backs the site up: five cron fields or a macro (default: daily at a
    /// minute after 02:00 that depends on the site's name, so that sites spread out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// When the server checks the repository (`restic check`; default: weekly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// How many snapshots are kept (`restic forget --prune` after every backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<Keep>,
}

/// S3 credentials, as secret references.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: SecretRef,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: SecretRef,
}

/// Retention: the last snapshot of each of the last N days, weeks and months.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Keep {
    #[serde(default = "default_daily")]
    #[schemars(range(min = 0, max = 3650))]
    pub daily: u32,
    #[serde(default = "default_weekly")]
    #[schemars(range(min = 0, max = 520))]
    pub weekly: u32,
    #[serde(default = "default_monthly")]
    #[schemars(range(min = 0, max = 1200))]
    pub monthly: u32,
}

impl Default for Keep {
    fn default() -> Self {
        Keep {
            daily: default_daily(),
            weekly: default_weekly(),
            monthly: default_monthly(),
        }
    }
}

fn default_daily() -> u32 {
    7
}

fn default_weekly() -> u32 {
    4
}

fn default_monthly() -> u32 {
    6
}

impl BackupSpec {
    /// Every secret reference of the section.
    pub fn secret_references(&self) -> Vec<&SecretRef> {
        let mut out: Vec<&SecretRef> = self.password.iter().collect();
        if let Some(credentials) = &self.credentials {
            out.push(&credentials.access_key_id);
            out.push(&credentials.secret_access_key);
        }
        out
    }
}
