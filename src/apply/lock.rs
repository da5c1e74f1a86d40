//! Site locks on their servers: a CI apply and a daemon never act on one site at once, and
//! the expired lock of a killed run is taken over safely.

use crate::transport::quote::QuoteError;
use crate::transport::{Command, Stdin, Transport, TransportError};
use std::sync::Arc;
use std::time::Duration;

const LOCK: &str = include_str!("scripts/lock.sh");
const UNLOCK: &str = include_str!("scripts/unlock.sh");
const FENCE: &str = include_str!("scripts/fence.sh");

/// The exit status of a step refused by its fence (the lock is no longer the run's).
pub const FENCED_STATUS: u32 = 75;

/// Where a daemon sharing the sites finds the fence of each site it holds (its lease).
pub trait Fences: Send + Sync {
    /// The fence of `site`'s lease while this daemon holds it; `None` once it may have lost it.
    fn fence(&self, site: &str) -> Option<i64>;
    /// The name the leases are held under (the daemon's id in the store).
    fn holder(&self) -> &str;
}

/// The leases behind a [`LockOwner`] of a daemon that shares the sites with others.
#[derive(Clone)]
pub struct FenceSource(pub Arc<dyn Fences>);

impl std::fmt::Debug for FenceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FenceSource")
    }
}

/// How long a lock holds without being renewed.
pub const LEASE: Duration = Duration::from_secs(30 * 60);

/// Who is taking the lock.
#[derive(Clone, Debug)]
pub struct LockOwner {
    /// Unique per run.
    pub token: String,
    /// `siteward apply` by a user, or `siteward watch`.
    pub owner: String,
    pub machine: String,
    pub pid: u32,
    /// The leases of a daemon sharing the sites: each lock carries the site's fence, and
    /// every step checks on the server that the lock is still this run's.
    pub fences: Option<FenceSource>,
}

impl LockOwner {
    /// The owner record of this process.
    pub fn this_process(owner: &str) -> Self {
        let machine = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        let pid = std::process::id();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        LockOwner {
            token: format!("{machine}-{pid}-{nanos}"),
            owner: owner.to_owned(),
            machine,
            pid,
            fences: None,
        }
    }

    /// The same owner, its locks fenced by `fences`.
    pub fn with_fences(mut self, fences: Arc<dyn Fences>) -> Self {
        self.fences = Some(FenceSource(fences));
        self
    }

    /// The fence to bring to `site`'s lock: `Ok(None)` for an owner without leases, `Err(())`
    /// when this daemon may no longer hold the site's lease.
    #[allow(clippy::result_unit_err)]
    pub fn fence(&self, site: &str) -> Result<Option<i64>, ()> {
        let Some(fences) = &self.fences else {
            return Ok(None);
        };
        fences.0.fence(site).map(Some).ok_or(())
    }

    /// The lease a write to the store about `site` is made on behalf of: `Ok(None)` for an
    /// owner without leases, `Err(())` when this daemon may no longer hold the site's lease.
    #[allow(clippy::result_unit_err)]
    pub fn lease(&self, site: &str) -> Result<Option<crate::store::leases::LeaseGuard>, ()> {
        let Some(fences) = &self.fences else {
            return Ok(None);
        };
        let fence = fences.0.fence(site).ok_or(())?;
        Ok(Some(crate::store::leases::LeaseGuard {
            holder: fences.0.holder().to_owned(),
            fence,
        }))
    }
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("site `{site}` is locked on {endpoint} by {holder}")]
    Held {
        site: String,
        endpoint: String,
        holder: String,
        holder_token: Option<String>,
        holder_machine: String,
        holder_pid: Option<u32>,
    },
    #[error("this daemon no longer holds the lease of site `{site}`: it does not act on it")]
    LeaseLost { site: String },
    #[error(
        "site `{site}` on {endpoint} has a newer fence ({newest}) than this daemon's lease ({fence}): another daemon holds it now"
    )]
    Fenced {
        site: String,
        endpoint: String,
        fence: i64,
        newest: String,
    },
    #[error("could not lock site `{site}`")]
    Transport {
        site: String,
        #[source]
        source: TransportError,
    },
}

/// Takes the lock of a site on its server. A lock held by a run on this machine whose
/// process is gone (killed) is taken over at once; any other holder must let its lease end.
pub async fn acquire<T: Transport>(
    transport: &T,
    site: &str,
    owner: &LockOwner,
) -> Result<(), LockError> {
    match try_acquire(transport, site, owner, "").await {
        Err(LockError::Held {
            holder_token: Some(token),
            holder_machine,
            holder_pid: Some(pid),
            ..
        }) if holder_machine == owner.machine && pid != owner.pid && !process_alive(pid) => {
            tracing::info!(site, pid, "taking over the lock of a run that was killed");
            try_acquire(transport, site, owner, &token).await
        }
        other => other,
    }
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn try_acquire<T: Transport>(
    transport: &T,
    site: &str,
    owner: &LockOwner,
    stale: &str,
) -> Result<(), LockError> {
    let transport_error = |source| LockError::Transport {
        site: site.into(),
        source,
    };
    let fence = owner.fence(site).map_err(|()| lease_lost(site))?;
    let command = Command::script(LOCK)
        .args([
            site,
            &owner.token,
            &owner.owner,
            &owner.machine,
            &owner.pid.to_string(),
            &LEASE.as_secs().to_string(),
            stale,
            &fence.map(|f| f.to_string()).unwrap_or_default(),
        ])
        .render()
        .map_err(|e| transport_error(e.into()))?;
    let output = transport
        .exec(&command, Stdin::Empty)
        .await
        .map_err(transport_error)?;
    let stdout = output.stdout_lossy();
    if output.success() && stdout.trim() == "acquired" {
        return Ok(());
    }
    if output.status == 5
        && let Some(fence) = fence
    {
        return Err(LockError::Fenced {
            site: site.into(),
            endpoint: transport.endpoint().into(),
            fence,
            newest: stdout
                .lines()
                .find_map(|l| l.strip_prefix("fence="))
                .unwrap_or("?")
                .to_owned(),
        });
    }
    if output.status == 4 {
        let field = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_owned)
        };
        return Err(LockError::Held {
            site: site.into(),
            endpoint: transport.endpoint().into(),
            holder: describe_holder(&stdout),
            holder_token: field("token"),
            holder_machine: field("machine").unwrap_or_default(),
            holder_pid: field("pid").and_then(|p| p.parse().ok()),
        });
    }
    Err(transport_error(TransportError::Failed {
        what: format!("locking site {site}"),
        endpoint: transport.endpoint().into(),
        status: output.status,
        stderr: output.stderr_lossy(),
    }))
}

fn describe_holder(answer: &str) -> String {
    let field = |key: &str| {
        answer
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or("?")
            .to_owned()
    };
    let expires: u64 = field("expires").parse().unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{} on {} (pid {}), lease ends in {} s",
        field("owner"),
        field("machine"),
        field("pid"),
        expires.saturating_sub(now)
    )
}

/// Releases the lock when this run holds it.
pub async fn release<T: Transport>(
    transport: &T,
    site: &str,
    owner: &LockOwner,
) -> Result<(), TransportError> {
    let command = Command::script(UNLOCK)
        .args([site, &owner.token])
        .render()?;
    transport
        .exec_checked(&format!("unlocking site {site}"), &command, Stdin::Empty)
        .await?;
    Ok(())
}

fn lease_lost(site: &str) -> LockError {
    LockError::LeaseLost { site: site.into() }
}

/// `command` guarded by the site's fence: it runs only while the site's lock on the server is
/// still `owner`'s, holding the lock's guard (shared) meanwhile, and its start and end are logged
/// with the fence; refused with [`FENCED_STATUS`] otherwise.
///
/// # Errors
/// A NUL byte in a word.
pub fn fenced(
    site: &str,
    owner: &LockOwner,
    fence: i64,
    what: &str,
    command: &str,
) -> Result<String, QuoteError> {
    // The script's comments are left out of every command line.
    let guard: String = FENCE
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    let script = format!(
        "{guard}( eval \"$5\" ) 9>&-\nsw_fence_rc=$?\nrm -f \"$sw_fence_dir/running/$sw_fence_group.$$\"\nsw_fence_log end \"$2\" \"$3\" \"$4 rc=$sw_fence_rc\"\nexit $sw_fence_rc\n"
    );
    Command::script(script)
        .args([site, &owner.token, &fence.to_string(), what, command])
        .render()
}

/// Checks on the server that `site`'s lock is still `owner`'s (a fenced run between phases).
///
/// # Errors
/// [`LockError::LeaseLost`] or [`LockError::Fenced`]-like refusals, or the transport's error.
pub async fn check_fence<T: Transport>(
    transport: &T,
    site: &str,
    owner: &LockOwner,
    what: &str,
) -> Result<(), LockError> {
    let Some(fence) = owner.fence(site).map_err(|()| lease_lost(site))? else {
        return Ok(());
    };
    let transport_error = |source| LockError::Transport {
        site: site.into(),
        source,
    };
    let command =
        fenced(site, owner, fence, what, "true").map_err(|e| transport_error(e.into()))?;
    let output = transport
        .exec(&command, Stdin::Empty)
        .await
        .map_err(transport_error)?;
    if output.success() {
        return Ok(());
    }
    if output.status == FENCED_STATUS {
        return Err(LockError::LeaseLost { site: site.into() });
    }
    Err(transport_error(TransportError::Failed {
        what: format!("checking the fence of site {site}"),
        endpoint: transport.endpoint().into(),
        status: output.status,
        stderr: output.stderr_lossy(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_described_in_words() {
        let text = describe_holder(
            "held\ntoken=x\nowner=siteward apply\nmachine=ci-7\npid=42\nacquired=1\nexpires=2\n",
        );
        assert!(
            text.starts_with("siteward apply on ci-7 (pid 42)"),
            "{text}"
        );
    }
}
