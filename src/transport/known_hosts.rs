//! OpenSSH known_hosts files: plain, hashed and `[host]:port` entries, wildcards, markers, and recording new keys.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Algorithm, PublicKey};

/// A known_hosts file that could not be read or appended to.
#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    /// Reading the file failed (a missing file is not an error: it holds no keys).
    #[error("could not read known_hosts file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Recording a new key failed.
    #[error("could not record a host key in known_hosts file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What a known_hosts file says about the key a host presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is recorded for this host at `line`.
    Trusted {
        /// 1-based line number.
        line: usize,
    },
    /// Nothing at all is recorded for this host.
    Unknown,
    /// The key was unknown and has just been recorded at `line` (accept-new).
    Recorded {
        /// 1-based line number of the new entry.
        line: usize,
    },
    /// Another key of the same type is recorded for this host at `line`.
    Changed {
        /// 1-based line number of the old key.
        line: usize,
        /// The old key.
        known: Box<PublicKey>,
    },
    /// Only keys of other types are recorded for this host; the first is at `line`.
    OtherType {
        /// 1-based line number.
        line: usize,
        /// The type of the recorded key.
        known: Algorithm,
    },
    /// The key is marked `@revoked` at `line`.
    Revoked {
        /// 1-based line number.
        line: usize,
    },
    /// The host is vouched for by a `@cert-authority` line, which siteward does not verify.
    CertAuthority {
        /// 1-based line number.
        line: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    marker: Marker,
    hosts: String,
    key: PublicKey,
}

/// The parsed entries of one known_hosts file.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    entries: Vec<Entry>,
}

/// The name a host goes by in known_hosts: `host` on port 22, `[host]:port` otherwise.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

impl KnownHosts {
    /// Reads `path`; a file that does not exist holds no entries.
    ///
    /// # Errors
    /// [`KnownHostsError::Read`] when the file exists but cannot be read.
    pub fn load(path: &Path) -> Result<Self, KnownHostsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(path, &text)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Self::parse(path, "")),
            Err(source) => Err(KnownHostsError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses the text of a known_hosts file; lines that do not parse are skipped, as OpenSSH does.
    pub fn parse(path: &Path, text: &str) -> Self {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(index, line)| parse_line(index + 1, line))
            .collect();
        Self {
            path: path.to_owned(),
            entries,
        }
    }

    /// The file these entries came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What this file says about `key` presented by `host` on `port`.
    pub fn verdict(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        let name = host_name(host, port);
        let matching: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|entry| hosts_match(&entry.hosts, &name))
            .collect();
        judge(&matching, key.key_data())
    }

    /// The key types recorded for `host` on `port`, so the handshake can ask for those first.
    pub fn known_algorithms(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let name = host_name(host, port);
        self.entries
            .iter()
            .filter(|entry| entry.marker == Marker::None && hosts_match(&entry.hosts, &name))
            .map(|entry| entry.key.algorithm())
            .collect()
    }
}

fn judge(matching: &[&Entry], presented: &KeyData) -> Verdict {
    let with_marker = |marker: Marker| matching.iter().filter(move |entry| entry.marker == marker);
    if let Some(entry) =
        with_marker(Marker::Revoked).find(|entry| entry.key.key_data() == presented)
    {
        return Verdict::Revoked { line: entry.line };
    }
    let mut plain = with_marker(Marker::None);
    if let Some(entry) = plain
        .clone()
        .find(|entry| entry.key.key_data() == presented)
    {
        return Verdict::Trusted { line: entry.line };
    }
    let same_type = |entry: &&&Entry| entry.key.key_data().algorithm() == presented.algorithm();
    if let Some(entry) = plain.clone().find(same_type) {
        let known = Box::new(entry.key.clone());
        return Verdict::Changed {
            line: entry.line,
            known,
        };
    }
    if let Some(entry) = plain.next() {
        let known = entry.key.algorithm();
        return Verdict::OtherType {
            line: entry.line,
            known,
        };
    }
    match with_marker(Marker::CertAuthority).next() {
        Some(entry) => Verdict::CertAuthority { line: entry.line },
        None => Verdict::Unknown,
    }
}

fn parse_line(line: usize, text: &str) -> Option<Entry> {
    let mut fields = text.split_whitespace().peekable();
    let marker = match fields.peek()? {
        first if first.starts_with('#') => return None,
        &"@revoked" => Marker::Revoked,
        &"@cert-authority" => Marker::CertAuthority,
        first if first.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        fields.next();
    }
    let hosts = fields.next()?.to_owned();
    let key_type = fields.next()?;
    let key_base64 = fields.next()?;
    let key = PublicKey::from_openssh(&format!("{key_type} {key_base64}"));
    match key {
        Ok(key) => Some(Entry {
            line,
            marker,
            hosts,
            key,
        }),
        Err(error) => {
            tracing::debug!(line, %error, "skipping a known_hosts line whose key does not parse");
            None
        }
    }
}

/// OpenSSH's rule: the line matches when some pattern matches and no negated pattern does.
fn hosts_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if pattern_matches(negated, name) {
                return false;
            }
        } else if pattern_matches(pattern, name) {
            matched = true;
        }
    }
    matched
}

fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("|1|") {
        Some(hashed) => hashed_matches(hashed, name),
        None => glob_matches(
            pattern.to_ascii_lowercase().as_bytes(),
            name.to_ascii_lowercase().as_bytes(),
        ),
    }
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, as written by `ssh-keygen -H`.
fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, name.as_bytes(), &hash).is_ok()
}

/// `*` matches any run of characters, `?` any one character.
fn glob_matches(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| glob_matches(rest, &name[skip..])),
        Some((&first, rest)) => match name.split_first() {
            Some((&byte, name_rest)) if first == b'?' || first == byte => {
                glob_matches(rest, name_rest)
            }
            _ => false,
        },
    }
}

/// Records `key` for `host` on `port` unless anything is already known for that host.
///
/// The file is locked while it is read again and appended to, so two siteward processes
/// meeting a new host at once record it once; the line is appended with a single write.
/// Returns [`Verdict::Recorded`] when the key was appended, otherwise what the file already
/// said (which the caller refuses unless it is [`Verdict::Trusted`]).
///
/// # Errors
/// [`KnownHostsError::Write`] when the file cannot be created, locked, read or appended to.
pub fn accept_new(
    path: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<Verdict, KnownHostsError> {
    let write_error = |source| KnownHostsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = open_locked(path).map_err(write_error)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(write_error)?;
    let verdict = KnownHosts::parse(path, &text).verdict(host, port, key);
    if verdict != Verdict::Unknown {
        return Ok(verdict);
    }
    let line = append_entry(&mut file, &text, &host_name(host, port), key).map_err(write_error)?;
    Ok(Verdict::Recorded { line })
}

fn open_locked(path: &Path) -> io::Result<File> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    file.lock()?;
    Ok(file)
}

fn append_entry(file: &mut File, existing: &str, name: &str, key: &PublicKey) -> io::Result<usize> {
    let mut key = key.clone();
    key.set_comment("");
    let encoded = key.to_openssh().map_err(io::Error::other)?;
    let separator = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let entry = format!("{separator}{name} {}\n", encoded.trim_end());
    file.seek(SeekFrom::End(0))?;
    file.write_all(entry.as_bytes())?;
    file.sync_data()?;
    Ok(existing.lines().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICvJbN6l/f0Y6DDTNkLtd61hASuV4Qxa9z1CgclADOQZ";
    const ED25519_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ5y/VbbXTa3xRN6uVUOGvnUKK+FLbKnwm5yJEd2Ci/r";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBBEU64cdacNq0u61fB1tSHH1kn+QC+7t/pNriCuTXuHBmsHDDau1VeeuNLMKBuwDEM7DiJpoGj/lQXqr40cSvIQ=";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    fn verdict(text: &str, host: &str, port: u16, presented: &str) -> Verdict {
        KnownHosts::parse(Path::new("kh"), text).verdict(host, port, &key(presented))
    }

    #[test]
    fn a_recorded_key_is_trusted_on_its_line() {
        let text = format!("# comment\n\nweb-1,10.0.0.1 {ED25519_A}\n");
        assert_eq!(
            verdict(&text, "10.0.0.1", 22, ED25519_A),
            Verdict::Trusted { line: 3 }
        );
    }

    #[test]
    fn a_non_standard_port_uses_the_bracketed_form() {
        let text = format!("[10.0.0.1]:2222 {ED25519_A}\n");
        assert_eq!(
            verdict(&text, "10.0.0.1", 2222, ED25519_A),
            Verdict::Trusted { line: 1 }
        );
        assert_eq!(verdict(&text, "10.0.0.1", 22, ED25519_A), Verdict::Unknown);
    }

    #[test]
    fn another_key_of_the_same_type_is_a_change() {
        let text = format!("10.0.0.1 {ED25519_A}\n");
        let found = verdict(&text, "10.0.0.1", 22, ED25519_B);
        assert!(
            matches!(found, Verdict::Changed { line: 1, .. }),
            "{found:?}"
        );
    }

    #[test]
    fn a_key_of_another_type_is_reported_as_such() {
        let text = format!("10.0.0.1 {ECDSA}\n");
        let found = verdict(&text, "10.0.0.1", 22, ED25519_A);
        assert!(
            matches!(found, Verdict::OtherType { line: 1, .. }),
            "{found:?}"
        );
    }

    #[test]
    fn revoked_keys_are_refused_even_when_also_recorded() {
        let text = format!("10.0.0.1 {ED25519_A}\n@revoked * {ED25519_A}\n");
        assert_eq!(
            verdict(&text, "10.0.0.1", 22, ED25519_A),
            Verdict::Revoked { line: 2 }
        );
    }

    #[test]
    fn wildcards_and_negations_follow_openssh() {
        let text = format!("*.example.com,!bad.example.com {ED25519_A}\n");
        assert_eq!(
            verdict(&text, "web.example.com", 22, ED25519_A),
            Verdict::Trusted { line: 1 }
        );
        assert_eq!(
            verdict(&text, "bad.example.com", 22, ED25519_A),
            Verdict::Unknown
        );
        assert_eq!(
            verdict(&text, "example.com", 22, ED25519_A),
            Verdict::Unknown
        );
    }

    #[test]
    fn hashed_entries_match_their_host_only() {
        // `ssh-keygen -H` output for "10.0.0.1" with a fixed salt.
        let salt = [7u8; 20];
        let mac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let hash = ring::hmac::sign(&mac_key, b"10.0.0.1");
        let text = format!(
            "|1|{}|{} {ED25519_A}\n",
            STANDARD.encode(salt),
            STANDARD.encode(hash.as_ref())
        );
        assert_eq!(
            verdict(&text, "10.0.0.1", 22, ED25519_A),
            Verdict::Trusted { line: 1 }
        );
        assert_eq!(verdict(&text, "10.0.0.2", 22, ED25519_A), Verdict::Unknown);
    }

    #[test]
    fn accept_new_records_an_unknown_host_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, "# siteward\nother ".to_owned() + ECDSA).unwrap();
        let first = accept_new(&path, "10.0.0.1", 2222, &key(ED25519_A)).unwrap();
        assert_eq!(first, Verdict::Recorded { line: 3 });
        let second = accept_new(&path, "10.0.0.1", 2222, &key(ED25519_A)).unwrap();
        assert_eq!(second, Verdict::Trusted { line: 3 });
        let third = accept_new(&path, "10.0.0.1", 2222, &key(ECDSA)).unwrap();
        assert!(
            matches!(third, Verdict::OtherType { line: 3, .. }),
            "{third:?}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().nth(2),
            Some(format!("[10.0.0.1]:2222 {ED25519_A}").as_str())
        );
    }
}
