//! The listing of storage paths on each side (type, mode, size, BLAKE2b-256 or symlink target per
//! entry, names as bytes) and how two listings differ.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::Verification;

/// A path of a listing for messages: `./` dropped, lossily decoded, quoted (newlines show).
pub(super) fn display(path: &[u8]) -> String {
    let relative = path.strip_prefix(b"./").unwrap_or(path);
    format!("{:?}", String::from_utf8_lossy(relative))
}

/// One entry of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Entry {
    /// find's `%y`: `f`, `d`, `l`, …
    kind: u8,
    /// find's `%m`, octal.
    mode: Vec<u8>,
    /// The size of a regular file; 0 for anything else (directory sizes differ between disks).
    size: u64,
    /// BLAKE2b-256 (hex) of a regular file, target of a symlink, empty otherwise.
    content: Vec<u8>,
}

/// A listing of storage paths, keyed by path bytes (`./shared/...`), sorted.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Manifest {
    entries: BTreeMap<Vec<u8>, Entry>,
}

impl Manifest {
    /// Reads `files_list.sh`'s output.
    pub(super) fn parse(listing: &[u8]) -> Result<Self, String> {
        let mut fields = listing.split(|byte| *byte == 0);
        let mut manifest = Self::default();
        loop {
            let record = fields.next().ok_or("the listing has no `=` record")?;
            if record == b"=" {
                break;
            }
            let link = fields.next().ok_or("an entry has no link field")?;
            let (path, entry) = parse_entry(record, link)?;
            manifest.entries.insert(path, entry);
        }
        for line in fields.filter(|line| !line.is_empty()) {
            manifest.add_checksum(line)?;
        }
        Ok(manifest)
    }

    pub(super) fn add_checksum(&mut self, line: &[u8]) -> Result<(), String> {
        let (hash, rest) = line
            .split_at_checked(64)
            .ok_or("a checksum line is short")?;
        let path = rest
            .strip_prefix(b"  ")
            .ok_or("a checksum line has no name")?;
        let entry = self
            .entries
            .get_mut(path)
            .filter(|entry| entry.kind == b'f')
            .ok_or_else(|| format!("a checksum names an unlisted file {}", display(path)))?;
        entry.content = hash.to_vec();
        Ok(())
    }

    /// The paths (for messages) whose entries differ, or exist on one side only.
    pub(super) fn differences(&self, other: &Self) -> Vec<String> {
        self.differing_paths(other)
            .iter()
            .map(|path| display(path))
            .collect()
    }

    /// The paths (as listed) whose entries differ or exist on one side only, sorted.
    pub(super) fn differing_paths(&self, other: &Self) -> Vec<Vec<u8>> {
        let mut paths: Vec<&Vec<u8>> = self.entries.keys().chain(other.entries.keys()).collect();
        paths.sort();
        paths.dedup();
        paths
            .into_iter()
            .filter(|path| self.entries.get(*path) != other.entries.get(*path))
            .cloned()
            .collect()
    }

    pub(super) fn summary(&self) -> Verification {
        let count = |kind| self.entries.values().filter(|e| e.kind == kind).count() as u64;
        Verification {
            files: count(b'f'),
            bytes: self.entries.values().map(|entry| entry.size).sum(),
            symlinks: count(b'l'),
            directories: count(b'd'),
            checksums: self.digest(),
        }
    }

    pub(super) fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for (path, entry) in &self.entries {
            for field in [path, &vec![entry.kind], &entry.mode, &entry.content] {
                hasher.update(field);
                hasher.update([0]);
            }
            hasher.update(entry.size.to_string());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }
}

/// `TYPE MODE SIZE ./path` and the link target.
fn parse_entry(record: &[u8], link: &[u8]) -> Result<(Vec<u8>, Entry), String> {
    let mut parts = record.splitn(4, |byte| *byte == b' ');
    let (Some(kind), Some(mode), Some(size), Some(path)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("an entry is malformed: {}", display(record)));
    };
    let kind = match kind {
        [kind] => *kind,
        _ => return Err(format!("an entry has no type: {}", display(record))),
    };
    let size = std::str::from_utf8(size)
        .ok()
        .and_then(|size| size.parse().ok())
        .ok_or_else(|| format!("an entry has no size: {}", display(record)))?;
    let entry = Entry {
        kind,
        mode: mode.to_vec(),
        size: if kind == b'f' { size } else { 0 },
        content: if kind == b'l' {
            link.to_vec()
        } else {
            Vec::new()
        },
    };
    Ok((path.to_vec(), entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &[u8] =
        b"d 755 4096 ./s\0\0f 600 3 ./s/a b\nc\xff\0\0l 777 5 ./s/link\0a b\nc\xff\0=\0\
        0000000000000000000000000000000000000000000000000000000000000000  ./s/a b\nc\xff\0";

    #[test]
    fn a_listing_keeps_names_as_bytes() {
        let manifest = Manifest::parse(LISTING).unwrap();
        let file = &manifest.entries[b"./s/a b\nc\xff".as_slice()];
        assert_eq!((file.kind, file.size, file.content.len()), (b'f', 3, 64));
        let link = &manifest.entries[b"./s/link".as_slice()];
        assert_eq!(link.content, b"a b\nc\xff");
        assert_eq!(manifest.entries[b"./s".as_slice()].size, 0);
    }

    #[test]
    fn a_changed_mode_is_a_difference_naming_the_file() {
        let source = Manifest::parse(LISTING).unwrap();
        let at = LISTING.windows(5).position(|w| w == b"f 600").unwrap();
        let mut changed = LISTING.to_vec();
        changed[at + 4] = b'4';
        let target = Manifest::parse(&changed).unwrap();
        assert_eq!(source.differences(&target).len(), 1);
        assert_ne!(source.digest(), target.digest());
    }

    #[test]
    fn a_listing_without_its_separator_is_unreadable() {
        assert!(Manifest::parse(b"f 644 1 ./x\0\0").is_err());
    }
}
