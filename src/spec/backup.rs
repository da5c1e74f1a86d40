//! The `backup` section of a Site (or a Server's default for its sites): restic to an S3 store
//! or to a path on another server over SFTP.

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
    /// The restic repository: `s3:https://host/bucket/path` on any S3-compatible store, or a
    /// path on another server over SFTP, `sftp:user@host:/path` (or `sftp://user@host:port//path`
    /// for another port). On a Server, the base under which each site gets `<repository>/<site>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(s3:https?://|sftp:)[^\s]+$"))]
    pub repository: Option<String>,
    /// How the server logs in to the store: the S3 key pair, or the SSH key of an `sftp:`
    /// repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<BackupCredentials>,
    /// The public host key of an `sftp:` repository's server, as in its
    /// `/etc/ssh/ssh_host_ed25519_key.pub` (`ssh-ed25519 AAAA…`): the only key the server
    /// accepts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+=*( [^\r\n]*)?$"
    ))]
    pub host_key: Option<String>,
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

/// How the server logs in to the repository's store, as secret references: `accessKeyId` and
/// `secretAccessKey` for S3, `sshKey` for SFTP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupCredentials {
    /// `AWS_ACCESS_KEY_ID` (S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<SecretRef>,
    /// `AWS_SECRET_ACCESS_KEY` (S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<SecretRef>,
    /// The private key (OpenSSH format) the server logs in to an `sftp:` repository with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<SecretRef>,
}

impl BackupCredentials {
    /// The references given, with their field names.
    pub fn fields(&self) -> Vec<(&'static str, &SecretRef)> {
        [
            ("accessKeyId", &self.access_key_id),
            ("secretAccessKey", &self.secret_access_key),
            ("sshKey", &self.ssh_key),
        ]
        .into_iter()
        .filter_map(|(name, reference)| reference.as_ref().map(|r| (name, r)))
        .collect()
    }
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
            out.extend(credentials.fields().into_iter().map(|(_, r)| r));
        }
        out
    }
}
