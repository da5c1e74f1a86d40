//! Measuring what a migration will carry, on its source: the storage paths' bytes and files.
//! One round trip; the database's size comes from the probe.

use crate::plan::migration::MoveSizes;
use crate::transport::{Command, QuoteError, Stdin, Transport, TransportError};

const MEASURE: &str = include_str!("scripts/measure_storage.sh");

/// Why the storage could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("the storage paths cannot be part of a command")]
    Quote(#[from] QuoteError),
    #[error("measuring the storage on {endpoint} failed")]
    Transport {
        endpoint: String,
        #[source]
        source: TransportError,
    },
    #[error("measuring the storage on {endpoint} gave an unexpected answer: {answer:?}")]
    Answer { endpoint: String, answer: String },
}

/// Sums the regular files under `paths` (relative to `root`); paths that do not exist count 0.
///
/// # Errors
/// A command that cannot be built or run, or an answer that is not two numbers.
pub async fn measure_storage(
    transport: &impl Transport,
    root: &str,
    paths: &[String],
) -> Result<MoveSizes, MeasureError> {
    let command = Command::script(MEASURE)
        .arg(root)
        .args(paths.iter().cloned())
        .render()?;
    let output = transport
        .exec(&command, Stdin::Empty)
        .await
        .map_err(|source| MeasureError::Transport {
            endpoint: transport.endpoint().to_owned(),
            source,
        })?;
    let answer = output.stdout_lossy();
    parse(&answer).ok_or_else(|| MeasureError::Answer {
        endpoint: transport.endpoint().to_owned(),
        answer: format!("{} {}", answer.trim(), output.stderr_lossy().trim()),
    })
}

fn parse(answer: &str) -> Option<MoveSizes> {
    let mut numbers = answer.split_whitespace().map(str::parse::<u64>);
    let files = numbers.next()?.ok()?;
    let bytes = numbers.next()?.ok()?;
    Some(MoveSizes {
        database_bytes: 0,
        storage_bytes: bytes,
        storage_files: files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_files_then_bytes() {
        let sizes = parse("50000 1073741824\n").unwrap();
        assert_eq!(
            (sizes.storage_files, sizes.storage_bytes),
            (50_000, 1 << 30)
        );
        assert_eq!(parse("oops"), None);
    }
}
