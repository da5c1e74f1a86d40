//! The russh client settings: keepalives, rekeys left to the server, the host key types known for the host first, AES-GCM first where the CPU has AES instructions.

use std::time::Duration;

use russh::Preferred;
use russh::client as russh_client;
use russh::keys::Algorithm;

use super::SshTarget;
use crate::transport::known_hosts::KnownHosts;

/// russh's defaults, with keepalives, and the host key types known for this host asked for
/// first (as OpenSSH does), so a server with several host keys presents the recorded one.
pub(super) fn client_config(target: &SshTarget) -> russh_client::Config {
    let known = match &target.host_keys.pinned {
        Some(_) => Vec::new(),
        None => KnownHosts::load(&target.host_keys.known_hosts)
            .map(|file| file.known_algorithms(&target.address, target.port))
            .unwrap_or_default(),
    };
    let mut preferred = Preferred::default();
    preferred.key = prefer_known(&preferred.key, &known).into();
    if aes_is_accelerated() {
        preferred.cipher = aes_gcm_first(&preferred.cipher).into();
    }
    russh_client::Config {
        preferred,
        limits: server_initiated_rekeys(),
        keepalive_interval: Some(target.timeouts.keepalive),
        keepalive_max: KEEPALIVE_MAX,
        inactivity_timeout: Some(silence_bound(target.timeouts.keepalive)),
        nodelay: true,
        ..russh_client::Config::default()
    }
}

/// Unanswered keepalives that count as a cut connection.
const KEEPALIVE_MAX: usize = 3;

/// How long the connection may go without a sign of life, which russh also bounds each write
/// with: a connection cut while siteward streams into it fills the socket's send buffer, and
/// russh, blocked in that write, sends no keepalive and notices nothing until TCP gives up
/// (about 15 minutes). As long as the keepalives take to notice an idle connection is gone.
fn silence_bound(keepalive: Duration) -> Duration {
    keepalive * (KEEPALIVE_MAX as u32 + 1)
}

/// Rekeying left to the server. A rekey russh starts while the server streams on several
/// channels (two database dumps and a tar archive from a migration's source) drops the
/// connection: russh bounds what may still arrive before the server sees its KEXINIT to two
/// channel windows, where each channel may have a window in flight. OpenSSH servers rekey by
/// themselves, by volume in both directions (`RekeyLimit`, 1-4 GB by default), and russh takes
/// a server's rekey in its stride; OpenSSH's own client sets no time limit either.
fn server_initiated_rekeys() -> russh::Limits {
    russh::Limits {
        rekey_write_limit: usize::MAX,
        rekey_read_limit: usize::MAX,
        rekey_time_limit: Duration::from_secs(100 * 365 * 24 * 3600),
    }
}

/// Whether this machine's CPU has AES instructions: AES-GCM then costs both ends less CPU per
/// byte than ChaCha20-Poly1305 (russh's first choice), which counts when a migration streams
/// gigabytes through this process.
fn aes_is_accelerated() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The ciphers offered, AES-256-GCM moved first (the others keep their order).
fn aes_gcm_first(offered: &[russh::cipher::Name]) -> Vec<russh::cipher::Name> {
    let gcm = russh::cipher::AES_256_GCM;
    std::iter::once(gcm)
        .chain(offered.iter().copied().filter(|name| *name != gcm))
        .collect()
}

fn prefer_known(offered: &[Algorithm], known: &[Algorithm]) -> Vec<Algorithm> {
    let is_known = |algorithm: &Algorithm| known.iter().any(|known| same_family(known, algorithm));
    let (first, rest): (Vec<_>, Vec<_>) = offered.iter().cloned().partition(is_known);
    first.into_iter().chain(rest).collect()
}

fn same_family(left: &Algorithm, right: &Algorithm) -> bool {
    match (left, right) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
        _ => left == right,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_given_up_after_as_long_as_its_keepalives_take() {
        assert_eq!(
            silence_bound(Duration::from_secs(15)),
            Duration::from_secs(60)
        );
        assert_eq!(
            silence_bound(Duration::from_secs(1)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn aes_gcm_is_offered_first_and_nothing_is_lost() {
        let offered = Preferred::default().cipher.into_owned();
        let ordered = aes_gcm_first(&offered);
        assert_eq!(ordered[0], russh::cipher::AES_256_GCM);
        assert_eq!(ordered.len(), offered.len());
        assert!(offered.iter().all(|name| ordered.contains(name)));
    }

    #[test]
    fn known_host_key_types_are_asked_for_first() {
        let offered = Preferred::default().key.into_owned();
        let known = [Algorithm::Rsa { hash: None }];
        let ordered = prefer_known(&offered, &known);
        let rsa_first = ordered
            .iter()
            .take(3)
            .all(|algorithm| matches!(algorithm, Algorithm::Rsa { .. }));
        assert!(rsa_first, "{ordered:?}");
        assert_eq!(ordered.len(), offered.len());
    }
}
