//! Storage migration: a site's storage paths copied A → B as one verified stream through siteward.
//!
//! A and B never talk to each other: `tar` runs on A, its compressed archive flows through this
//! process into `tar -x` on B, into a staging directory beside the live paths. The staged tree is
//! listed (type, mode, size, BLAKE2b-256 or symlink target per entry, NUL-safe) and compared with
//! A's listing before it is moved over the live paths, so nothing unverified ever goes live. Names
//! are bytes end to end: spaces, newlines and bytes that are not UTF-8 survive.

mod manifest;
mod paths;

use std::time::{Duration, Instant};

use super::progress::Meter;
use super::{Compression, SourceState};
use crate::transport::quote::Command;
use crate::transport::{Exit, QuoteError, Stdin, Transport, TransportError};
use manifest::{Manifest, display};
use paths::validate_paths;

const SCAN: &str = include_str!("scripts/files_scan.sh");
const SEND: &str = include_str!("scripts/files_send.sh");
const RECEIVE: &str = include_str!("scripts/files_receive.sh");
const LIST: &str = include_str!("scripts/files_list.sh");
const SWAP: &str = include_str!("scripts/files_swap.sh");
const CHANGED: &str = include_str!("scripts/files_changed.sh");

/// The staging directory under the target root; a cut-off run's leftovers are dropped by the next.
pub const STAGING_DIR: &str = ".siteward-files-incoming";

/// How many differing paths an error names (the count says how many there are in all).
const NAMED_MISMATCHES: usize = 20;

/// Why storage paths could not be copied or verified.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A storage path is not a plain relative path under the site root.
    #[error("storage path {path:?} cannot be copied: {reason}")]
    InvalidPath {
        /// The path, as given.
        path: String,
        /// The rule it broke.
        reason: &'static str,
    },
    /// Storage paths that do not exist on the source.
    #[error("storage paths missing on {endpoint}: {}", paths.join(", "))]
    Missing {
        /// The source server.
        endpoint: String,
        /// The paths, relative to the source root.
        paths: Vec<String>,
    },
    /// Symlinks whose targets lie outside the site root: copying them would hand B a link into
    /// whatever happens to be at that place on B.
    #[error("symlinks pointing outside the site root on {endpoint}: {}", links.join(", "))]
    OutsideSymlinks {
        /// The source server.
        endpoint: String,
        /// The links, relative to the source root.
        links: Vec<String>,
    },
    /// A value could not be made part of a command.
    #[error("a storage migration command cannot be built")]
    Quote(#[from] QuoteError),
    /// A command could not run, or failed.
    #[error("{what} on {endpoint} failed")]
    Transport {
        /// What was being done.
        what: &'static str,
        /// The server.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<TransportError>,
    },
    /// One end of the stream exited with an error.
    #[error("{what} on {endpoint} exited with status {status}: {stderr}")]
    Stream {
        /// `sending the storage archive` or `receiving the storage archive`.
        what: &'static str,
        /// The server.
        endpoint: String,
        /// The exit status.
        status: u32,
        /// The command's stderr, trimmed.
        stderr: String,
    },
    /// A listing siteward's own script printed could not be read.
    #[error("the storage listing from {endpoint} is unreadable: {reason}")]
    Listing {
        /// The server.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The target's tree differs from the source's.
    #[error(
        "verification failed: {count} path(s) differ between {source_endpoint} and {target_endpoint}: {}",
        paths.join(", ")
    )]
    Mismatch {
        /// The source server.
        source_endpoint: String,
        /// The target server.
        target_endpoint: String,
        /// How many paths differ.
        count: usize,
        /// The first differing paths, relative to the roots, lossily decoded and quoted.
        paths: Vec<String>,
    },
}

/// What a listing of storage paths holds, summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Regular files.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Directories, the paths themselves included.
    pub directories: u64,
    /// sha256 (hex) of the sorted listing: path, type, mode, size, content BLAKE2b-256 or link
    /// target.
    pub checksums: String,
}

/// What a copy moved, and how it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesCopyReport {
    /// Regular files copied.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Symlinks copied.
    pub symlinks: u64,
    /// Directories copied.
    pub directories: u64,
    /// Compressed bytes that went through siteward.
    pub wire_bytes: u64,
    /// The compression used on the wire.
    pub codec: Compression,
    /// sha256 (hex) of the sorted listing of the target (equal to the source's, but for the
    /// paths in `changed_on_source`).
    pub checksums: String,
    /// Paths of a live source that changed while they were copied (listed relative to the root).
    pub changed_on_source: Vec<String>,
    /// From the first check to the swap.
    pub duration: Duration,
    /// Whether B's tree was compared with A's and found equal (always, when `Ok`).
    pub verified: bool,
}

/// Copies `paths` (relative to the roots) from `source` to `target`, owned by `owner` on B.
///
/// # Guarantees
/// - One stream through siteward: `tar` on A, zstd (or gzip -1) on the wire, `tar -x` on B.
/// - Modes are kept, symlinks stay symlinks; a symlink resolving outside `source_root` refuses
///   the copy before anything is sent ([`FilesError::OutsideSymlinks`]).
/// - The stream lands in [`STAGING_DIR`] under `target_root`, is verified against A's listing,
///   and only then replaces each live path (rename aside, rename in): a cut-off copy never
///   leaves a half-written tree live, and running again converges (files deleted on A vanish
///   from B, nothing is duplicated).
///
/// # Errors
/// [`FilesError::Mismatch`] naming the differing files when B's tree is not A's.
pub async fn copy_paths(
    source: &impl Transport,
    target: &impl Transport,
    source_root: &str,
    target_root: &str,
    paths: &[String],
    owner: &str,
) -> Result<FilesCopyReport, FilesError> {
    let meter = Meter::none();
    copy_paths_metered(
        (source, target),
        (source_root, target_root),
        paths,
        owner,
        SourceState::Quiet,
        &meter,
    )
    .await
}

/// [`copy_paths`], counting the bytes on the wire into `meter` as they go.
///
/// With a [`SourceState::Live`] source (the site still runs there), a path that differs is
/// accepted only when it changed on the source after the copy began (modified since, or
/// gone): it is named in `changed_on_source`, and a copy from the quiet source compares it
/// again. Every other path must match exactly.
///
/// # Errors
/// As [`copy_paths`].
pub async fn copy_paths_metered(
    (source, target): (&impl Transport, &impl Transport),
    (source_root, target_root): (&str, &str),
    paths: &[String],
    owner: &str,
    source_state: SourceState,
    meter: &Meter,
) -> Result<FilesCopyReport, FilesError> {
    let started = Instant::now();
    validate_paths(paths)?;
    let codec = preflight(source, target, source_root, paths).await?;
    let since = match source_state {
        SourceState::Live => Some(source_clock(source).await?),
        SourceState::Quiet => None,
    };
    let stage = format!("{}/{STAGING_DIR}", target_root.trim_end_matches('/'));
    let ends = (source, target);
    // A is listed while it streams: a file that changes between its listing and its reading
    // differs on B, and is then told apart by its time like any other change during the copy.
    let (streamed, listed_source) = tokio::join!(
        stream(ends, source_root, &stage, (codec, owner), paths, meter),
        list(source, source_root, paths),
    );
    let wire_bytes = streamed?;
    tracing::debug!(elapsed = ?started.elapsed(), wire_bytes, "storage streamed and listed on the source");
    let listed_target = list(target, &stage, paths).await?;
    tracing::debug!(elapsed = ?started.elapsed(), "storage listed on the target");
    let (verification, changed_on_source) =
        explain_differences(ends, source_root, (listed_source?, listed_target), since).await?;
    let swap = Command::script(SWAP)
        .arg(target_root)
        .arg(&stage)
        .args(paths.iter().cloned());
    run(
        target,
        "moving the verified storage in",
        &swap,
        Stdin::Empty,
    )
    .await?;
    Ok(FilesCopyReport {
        files: verification.files,
        bytes: verification.bytes,
        symlinks: verification.symlinks,
        directories: verification.directories,
        wire_bytes,
        codec,
        checksums: verification.checksums,
        changed_on_source,
        duration: started.elapsed(),
        verified: true,
    })
}

/// The source's clock, one second early (file times have that resolution on some systems).
async fn source_clock(source: &impl Transport) -> Result<u64, FilesError> {
    let clock = Command::script("date +%s");
    let answer = run(source, "reading the clock", &clock, Stdin::Empty).await?;
    String::from_utf8_lossy(&answer)
        .trim()
        .parse::<u64>()
        .map(|seconds| seconds.saturating_sub(1))
        .map_err(|_| FilesError::Listing {
            endpoint: source.endpoint().to_owned(),
            reason: format!("the clock answered {:?}", String::from_utf8_lossy(&answer)),
        })
}

/// The two listings compared, where a live source's paths that changed since `since` are
/// named, not compared; any other difference is a mismatch.
async fn explain_differences(
    (source, target): (&impl Transport, &impl Transport),
    source_root: &str,
    (listed_source, listed_target): (Manifest, Manifest),
    since: Option<u64>,
) -> Result<(Verification, Vec<String>), FilesError> {
    let differing = listed_source.differing_paths(&listed_target);
    if differing.is_empty() {
        return Ok((listed_source.summary(), Vec::new()));
    }
    let changed = match since {
        Some(since) => changed_since(source, source_root, &differing, since).await?,
        None => Vec::new(),
    };
    let unexplained: Vec<&Vec<u8>> = differing.iter().filter(|p| !changed.contains(p)).collect();
    if !unexplained.is_empty() {
        return Err(FilesError::Mismatch {
            source_endpoint: source.endpoint().to_owned(),
            target_endpoint: target.endpoint().to_owned(),
            count: unexplained.len(),
            paths: unexplained
                .into_iter()
                .take(NAMED_MISMATCHES)
                .map(|p| display(p))
                .collect(),
        });
    }
    Ok((
        listed_target.summary(),
        changed.iter().map(|p| display(p)).collect(),
    ))
}

/// Which of `paths` (listing keys, relative to `root`) changed on the source since `since`.
async fn changed_since(
    source: &impl Transport,
    root: &str,
    paths: &[Vec<u8>],
    since: u64,
) -> Result<Vec<Vec<u8>>, FilesError> {
    let command = Command::script(CHANGED).arg(root).arg(since.to_string());
    let mut input = Vec::new();
    for path in paths {
        input.extend_from_slice(path);
        input.push(0);
    }
    let answer = run(
        source,
        "finding what changed on the source",
        &command,
        Stdin::Bytes(&input),
    )
    .await?;
    Ok(answer
        .split(|byte| *byte == 0)
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// Compares the live `paths` under both roots, as a copy does before its swap.
///
/// # Errors
/// [`FilesError::Mismatch`] naming the differing files.
pub async fn verify_paths(
    source: &impl Transport,
    target: &impl Transport,
    source_root: &str,
    target_root: &str,
    paths: &[String],
) -> Result<Verification, FilesError> {
    validate_paths(paths)?;
    compare(source, target, source_root, target_root, paths).await
}

/// Refuses missing paths and outside symlinks on A; picks the codec both sides have.
async fn preflight(
    source: &impl Transport,
    target: &impl Transport,
    source_root: &str,
    paths: &[String],
) -> Result<Compression, FilesError> {
    let scan = Command::script(SCAN)
        .arg(source_root)
        .arg("zstd")
        .args(paths.iter().cloned());
    let probe = Command::script("command -v zstd >/dev/null 2>&1 && echo zstd || echo gzip");
    let (scanned, probed) = tokio::join!(
        run(source, "checking the storage paths", &scan, Stdin::Empty),
        run(target, "looking for zstd", &probe, Stdin::Empty),
    );
    let (scanned, probed) = (scanned?, probed?);
    let endpoint = source.endpoint().to_owned();
    let mut missing = Vec::new();
    let mut outside = Vec::new();
    let mut source_zstd = false;
    for record in scanned.split(|byte| *byte == 0).filter(|r| !r.is_empty()) {
        let text = display(&record[1..]);
        match record[0] {
            b'M' => missing.push(text),
            b'O' => outside.push(text),
            _ => source_zstd |= record == b"Czstd",
        }
    }
    if !missing.is_empty() {
        return Err(FilesError::Missing {
            endpoint,
            paths: missing,
        });
    }
    if !outside.is_empty() {
        return Err(FilesError::OutsideSymlinks {
            endpoint,
            links: outside,
        });
    }
    let target_zstd = probed.starts_with(b"zstd");
    Ok(Compression::shared(source_zstd, target_zstd))
}

/// Pipes `tar` on A into `tar -x` on B through this process; returns the compressed bytes.
async fn stream(
    (source, target): (&impl Transport, &impl Transport),
    source_root: &str,
    stage: &str,
    (codec, owner): (Compression, &str),
    paths: &[String],
    meter: &Meter,
) -> Result<u64, FilesError> {
    let send = Command::script(SEND)
        .arg(source_root)
        .arg(codec.word())
        .args(paths.iter().cloned())
        .render()?;
    let receive = Command::script(RECEIVE)
        .arg(stage)
        .arg(codec.word())
        .arg(owner)
        .render()?;
    let relayed = super::relay::relay((source, &send), (target, &receive), meter)
        .await
        .map_err(|error| FilesError::Transport {
            what: "opening the channels of the storage stream",
            endpoint: format!("{} and {}", source.endpoint(), target.endpoint()),
            source: Box::new(error),
        })?;
    let (sent, received, wire_bytes) = (relayed.sent, relayed.received, relayed.bytes);
    check_exit(source, "sending the storage archive", sent)?;
    check_exit(target, "receiving the storage archive", received)?;
    Ok(wire_bytes)
}

fn check_exit(
    transport: &impl Transport,
    what: &'static str,
    exit: Result<Exit, TransportError>,
) -> Result<(), FilesError> {
    let endpoint = transport.endpoint().to_owned();
    let exit = exit.map_err(|source| FilesError::Transport {
        what,
        endpoint: endpoint.clone(),
        source: Box::new(source),
    })?;
    if exit.status == 0 && exit.signal.is_none() {
        return Ok(());
    }
    Err(FilesError::Stream {
        what,
        endpoint,
        status: exit.status,
        stderr: crate::transport::stderr_excerpt(&exit.stderr),
    })
}

/// Lists both sides at once and compares them entry by entry.
async fn compare(
    source: &impl Transport,
    target: &impl Transport,
    source_root: &str,
    target_root: &str,
    paths: &[String],
) -> Result<Verification, FilesError> {
    let (listed_source, listed_target) = tokio::join!(
        list(source, source_root, paths),
        list(target, target_root, paths),
    );
    let (listed_source, listed_target) = (listed_source?, listed_target?);
    let differing = listed_source.differences(&listed_target);
    if !differing.is_empty() {
        return Err(FilesError::Mismatch {
            source_endpoint: source.endpoint().to_owned(),
            target_endpoint: target.endpoint().to_owned(),
            count: differing.len(),
            paths: differing.into_iter().take(NAMED_MISMATCHES).collect(),
        });
    }
    Ok(listed_source.summary())
}

async fn list(
    transport: &impl Transport,
    root: &str,
    paths: &[String],
) -> Result<Manifest, FilesError> {
    let command = Command::script(LIST).arg(root).args(paths.iter().cloned());
    let listing = run(transport, "listing the storage", &command, Stdin::Empty).await?;
    Manifest::parse(&listing).map_err(|reason| FilesError::Listing {
        endpoint: transport.endpoint().to_owned(),
        reason,
    })
}

/// Runs `command`, failing on a non-zero status; returns its stdout.
async fn run(
    transport: &impl Transport,
    what: &'static str,
    command: &Command,
    stdin: Stdin<'_>,
) -> Result<Vec<u8>, FilesError> {
    let rendered = command.render()?;
    let output = transport
        .exec_checked(what, &rendered, stdin)
        .await
        .map_err(|source| FilesError::Transport {
            what,
            endpoint: transport.endpoint().to_owned(),
            source: Box::new(source),
        })?;
    Ok(output.stdout)
}
