//! Portable site bundles: one tar archive holding a manifest (format version, the site's spec,
//! every member's size and SHA-256), then the database dump, the storage and the `.env` with
//! every secret value replaced by a reference. No secret value goes in; references are resolved
//! at import, and every checksum is verified before anything changes.

use crate::spec::secret::{ResolvedSecrets, SecretRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The bundle format this siteward writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's member name, first in the archive.
pub const MANIFEST: &str = "manifest.json";
/// The database dump (gzip), when the site has a database.
pub const DATABASE: &str = "database.gz";
/// The storage paths (a gzipped tar, relative to `shared`).
pub const STORAGE: &str = "storage.tar.gz";
/// The `.env`, secret values replaced by references.
pub const ENV: &str = "env";

/// What a bundle says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format_version: u32,
    pub site: String,
    /// The server it was exported from.
    pub server: String,
    /// Unix seconds.
    pub created_unix: u64,
    /// The `Site` document (`apiVersion`, `kind`, `metadata`, `spec`), as the specs had it.
    pub spec: serde_json::Value,
    /// Every member after the manifest, in order.
    pub members: Vec<Member>,
    /// The references the `.env` holds in place of secret values: set them before importing.
    pub secrets: Vec<String>,
}

/// One member of the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// Why a bundle could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle {path} cannot be read or written")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the bundle {path} has no manifest first: it is not a siteward bundle")]
    NoManifest { path: PathBuf },
    #[error("the bundle's manifest cannot be read")]
    Manifest(#[source] serde_json::Error),
    #[error("the bundle uses format version {found}, this siteward reads {FORMAT_VERSION}")]
    Version { found: u32 },
    #[error("member `{member}` of the bundle is damaged: {why}")]
    /// `member` is the member's name, or `after <name>` when the archive breaks after it.
    Damaged { member: String, why: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Counts and hashes what goes through it.
pub struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The member this was: its name, size and checksum.
    pub fn member(self, name: &str) -> (Member, W) {
        let member = Member {
            name: name.to_owned(),
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        };
        (member, self.inner)
    }

    /// Bytes so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the bundle: the manifest, then each member from its file, atomically (a temporary
/// file beside `path`, renamed).
pub fn write(
    path: &Path,
    manifest: &Manifest,
    members: &[(String, PathBuf)],
) -> Result<(), BundleError> {
    let tmp = path.with_extension("partial");
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut archive = tar::Builder::new(std::io::BufWriter::new(file));
    let json = serde_json::to_vec_pretty(manifest).map_err(BundleError::Manifest)?;
    append(&mut archive, MANIFEST, json.len() as u64, json.as_slice()).map_err(io(&tmp))?;
    for (name, source) in members {
        let file = std::fs::File::open(source).map_err(io(source))?;
        let size = file.metadata().map_err(io(source))?.len();
        append(&mut archive, name, size, file).map_err(io(&tmp))?;
    }
    let mut writer = archive.into_inner().map_err(io(&tmp))?;
    writer.flush().map_err(io(&tmp))?;
    writer
        .into_inner()
        .map_err(|e| io(&tmp)(e.into_error()))?
        .sync_all()
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn append<W: Write>(
    archive: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    archive.append_data(&mut header, name, data)
}

/// Reads the manifest and checks every member against it, each copied into `dir`: a member
/// whose size or checksum differs, one missing, or one the manifest does not list refuses the
/// whole bundle, naming the member.
pub fn verify(
    path: &Path,
    dir: &Path,
) -> Result<(Manifest, BTreeMap<String, PathBuf>), BundleError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut entries = archive.entries().map_err(io(path))?;
    let manifest = read_manifest(path, &mut entries)?;
    let mut found = BTreeMap::new();
    let mut last = MANIFEST.to_owned();
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(&format!("after {last}"), &e.to_string()))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(listed) = manifest.members.iter().find(|m| m.name == name) else {
            return Err(damaged(&name, "the manifest does not list it"));
        };
        let target = dir.join(member_file(&name)?);
        let out = std::fs::File::create(&target).map_err(io(&target))?;
        let mut hashing = Hashing::new(out);
        std::io::copy(&mut entry, &mut hashing).map_err(|e| damaged(&name, &e.to_string()))?;
        let (member, _) = hashing.member(&name);
        if member.size != listed.size {
            return Err(damaged(
                &name,
                &format!("{} bytes, the manifest says {}", member.size, listed.size),
            ));
        }
        if member.sha256 != listed.sha256 {
            return Err(damaged(&name, "its SHA-256 is not the manifest's"));
        }
        last.clone_from(&name);
        found.insert(name, target);
    }
    if let Some(missing) = manifest
        .members
        .iter()
        .find(|m| !found.contains_key(&m.name))
    {
        return Err(damaged(&missing.name, "it is missing from the archive"));
    }
    Ok((manifest, found))
}

fn read_manifest<R: Read>(
    path: &Path,
    entries: &mut tar::Entries<'_, R>,
) -> Result<Manifest, BundleError> {
    let no_manifest = || BundleError::NoManifest {
        path: path.to_owned(),
    };
    let mut first = entries
        .next()
        .ok_or_else(no_manifest)?
        .map_err(|_| no_manifest())?;
    if first.path_bytes().as_ref() != MANIFEST.as_bytes() {
        return Err(no_manifest());
    }
    let mut text = Vec::new();
    first.read_to_end(&mut text).map_err(io(path))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(BundleError::Manifest)?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(BundleError::Version {
            found: manifest.format_version,
        });
    }
    Ok(manifest)
}

/// The local file name of a member: only the names a bundle has.
fn member_file(name: &str) -> Result<&'static str, BundleError> {
    [DATABASE, STORAGE, ENV]
        .into_iter()
        .find(|known| *known == name)
        .ok_or_else(|| damaged(name, "no bundle has such a member"))
}

fn damaged(member: &str, why: &str) -> BundleError {
    BundleError::Damaged {
        member: member.to_owned(),
        why: why.to_owned(),
    }
}

/// Whether a `.env` key's name says it holds a secret.
pub fn secret_name(key: &str) -> bool {
    const WORDS: [&str; 10] = [
        "KEY",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASS",
        "TOKEN",
        "PRIVATE",
        "CREDENTIAL",
        "SALT",
        "DSN",
    ];
    let upper = key.to_ascii_uppercase();
    WORDS
        .iter()
        .any(|word| upper.split('_').any(|part| part == *word) || upper.ends_with(word))
}

/// A `.env` with every secret value replaced by a reference: the keys the spec gives as
/// secrets get the spec's reference, any other key whose value is a known secret value gets
/// that secret's reference, and keys whose names say secret get `env:<SITE>_<KEY>`. Returns the
/// text and the references it holds.
pub fn redact_env(
    text: &str,
    site: &str,
    spec_secrets: &BTreeMap<String, SecretRef>,
    secrets: &ResolvedSecrets,
    known: &[&SecretRef],
) -> (String, Vec<String>) {
    let prefix = site.to_ascii_uppercase().replace('-', "_");
    let mut out = String::new();
    let mut references = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = env_pair(line) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let by_value = known.iter().find(|r| {
            secrets
                .get(r)
                .is_some_and(|s| !s.expose().is_empty() && unquoted(value) == s.expose())
        });
        let reference = spec_secrets
            .get(key)
            .map(|r| r.secret.clone())
            .or_else(|| by_value.map(|r| r.secret.clone()))
            .or_else(|| {
                secret_name(key).then(|| format!("env:{prefix}_{}", key.to_ascii_uppercase()))
            });
        match reference {
            Some(reference) => {
                out.push_str(&format!("{key}={{secret: {reference}}}\n"));
                if !references.contains(&reference) {
                    references.push(reference);
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    (out, references)
}

/// `KEY=value` (with an optional `export `), or `None` for comments and blank lines.
fn env_pair(line: &str) -> Option<(&str, &str)> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') {
        return None;
    }
    let trimmed = trimmed.strip_prefix("export ").unwrap_or(trimmed);
    let (key, value) = trimmed.split_once('=')?;
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    valid.then_some((key, value.trim()))
}

fn unquoted(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// The references a redacted `.env` holds.
pub fn env_references(text: &str) -> Vec<SecretRef> {
    text.lines()
        .filter_map(env_pair)
        .filter_map(|(_, value)| reference_of(value))
        .collect()
}

fn reference_of(value: &str) -> Option<SecretRef> {
    let inner = value.strip_prefix("{secret: ")?.strip_suffix('}')?;
    Some(SecretRef {
        secret: inner.to_owned(),
    })
}

/// The `.env` with its references resolved (values quoted as siteward writes them).
pub fn resolve_env(text: &str, secrets: &ResolvedSecrets) -> Option<String> {
    let mut out = String::new();
    for line in text.lines() {
        let reference = env_pair(line).and_then(|(key, value)| Some((key, reference_of(value)?)));
        match reference {
            Some((key, reference)) => {
                let value = secrets.get(&reference)?;
                out.push_str(&format!(
                    "{key}={}\n",
                    crate::apply::commands::env_value(value.expose())
                ));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::secret::Secret;

    fn reference(name: &str) -> SecretRef {
        SecretRef {
            secret: format!("env:{name}"),
        }
    }

    fn resolved(pairs: &[(&str, &str)]) -> ResolvedSecrets {
        let mut secrets = ResolvedSecrets::default();
        for (name, value) in pairs {
            secrets.insert(&reference(name), Secret::new((*value).into()));
        }
        secrets
    }

    #[test]
    fn a_redacted_env_holds_references_and_no_secret_value() {
        let env = "APP_NAME=shop\nAPP_KEY=base64:c2VjcmV0\nDB_PASSWORD=\"db-canary\"\n# a comment\nMAIL_PASSWORD=mail-canary\nCOPY_OF_DB=db-canary\nAPP_DEBUG=false\n";
        let spec: BTreeMap<String, SecretRef> =
            [("APP_KEY".to_owned(), reference("SHOP_APP_KEY"))].into();
        let db = reference("SHOP_DB_PASSWORD");
        let secrets = resolved(&[
            ("SHOP_APP_KEY", "base64:c2VjcmV0"),
            ("SHOP_DB_PASSWORD", "db-canary"),
        ]);
        let (text, references) = redact_env(env, "shop", &spec, &secrets, &[&db]);
        for canary in ["c2VjcmV0", "db-canary", "mail-canary"] {
            assert!(!text.contains(canary), "{canary} in {text}");
        }
        assert!(
            text.contains("APP_NAME=shop\n") && text.contains("APP_DEBUG=false\n"),
            "{text}"
        );
        assert!(
            text.contains("MAIL_PASSWORD={secret: env:SHOP_MAIL_PASSWORD}"),
            "{text}"
        );
        assert!(
            text.contains("COPY_OF_DB={secret: env:SHOP_DB_PASSWORD}"),
            "{text}"
        );
        assert_eq!(
            references,
            [
                "env:SHOP_APP_KEY",
                "env:SHOP_DB_PASSWORD",
                "env:SHOP_MAIL_PASSWORD"
            ]
        );
        let back = resolve_env(
            &text,
            &resolved(&[
                ("SHOP_APP_KEY", "base64:c2VjcmV0"),
                ("SHOP_DB_PASSWORD", "db-canary"),
                ("SHOP_MAIL_PASSWORD", "mail canary"),
            ]),
        )
        .unwrap();
        assert!(back.contains("MAIL_PASSWORD='mail canary'\n"), "{back}");
        assert!(back.contains("APP_KEY=base64:c2VjcmV0\n"), "{back}");
    }

    #[test]
    fn names_that_say_secret_are_told_apart_from_others() {
        for key in [
            "APP_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "STRIPE_TOKEN",
            "DB_PASSWORD",
            "SENTRY_DSN",
        ] {
            assert!(secret_name(key), "{key}");
        }
        for key in ["APP_NAME", "DB_HOST", "CACHE_DRIVER", "KEYBOARD_LAYOUT"] {
            assert!(!secret_name(key), "{key}");
        }
    }

    fn bundle(dir: &Path) -> PathBuf {
        let data = dir.join("data");
        std::fs::write(&data, b"the dump").unwrap();
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            site: "shop".into(),
            server: "a".into(),
            created_unix: 1,
            spec: serde_json::json!({"kind": "Site"}),
            members: vec![Member {
                name: DATABASE.into(),
                size: 8,
                sha256: hex::encode(Sha256::digest(b"the dump")),
            }],
            secrets: Vec::new(),
        };
        let path = dir.join("shop.bundle");
        write(&path, &manifest, &[(DATABASE.into(), data)]).unwrap();
        path
    }

    #[test]
    fn a_bundle_reads_back_with_its_members_verified() {
        let dir = tempfile::tempdir().unwrap();
        let path = bundle(dir.path());
        let out = tempfile::tempdir().unwrap();
        let (manifest, members) = verify(&path, out.path()).unwrap();
        assert_eq!(manifest.site, "shop");
        assert_eq!(std::fs::read(&members[DATABASE]).unwrap(), b"the dump");
    }

    #[test]
    fn a_flipped_byte_refuses_the_bundle_naming_the_member() {
        let dir = tempfile::tempdir().unwrap();
        let path = bundle(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(8).position(|w| w == b"the dump").unwrap();
        bytes[at + 2] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let out = tempfile::tempdir().unwrap();
        let error = verify(&path, out.path()).unwrap_err().to_string();
        assert_eq!(
            error,
            "member `database.gz` of the bundle is damaged: its SHA-256 is not the manifest's"
        );
    }
}
