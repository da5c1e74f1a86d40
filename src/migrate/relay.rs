//! A stream between two servers through this process: one command's stdout on the source into
//! another's stdin on the target, counted as it goes. The servers never talk to each other.

use super::progress::{Meter, MeteredWriter};
use crate::transport::{Exit, Stdin, Transport, TransportError};

/// The in-memory pipe between the two ends.
const PIPE_BUFFER: usize = 1 << 20;

/// What a relay did: both ends' exits, what went through, and what the target printed.
pub struct Relayed {
    pub sent: Result<Exit, TransportError>,
    pub received: Result<Exit, TransportError>,
    /// Bytes that went from the source to the target.
    pub bytes: u64,
    /// Newlines among them.
    pub lines: u64,
    /// The receiving command's stdout.
    pub output: Vec<u8>,
}

/// Runs `send` on `source` and `receive` on `target` at once, `send`'s stdout feeding
/// `receive`'s stdin (which ends when `send` does, whatever happened to it), the bytes counted
/// into `meter`. The channels are taken as a pair ([`crate::transport::reserve_pair`]).
///
/// # Errors
/// The channels could not be opened; each end's own failure is in [`Relayed`].
pub async fn relay(
    (source, send): (&impl Transport, &str),
    (target, receive): (&impl Transport, &str),
    meter: &Meter,
) -> Result<Relayed, TransportError> {
    let (writer, reader) = tokio::io::duplex(PIPE_BUFFER);
    let (source_slot, target_slot) = crate::transport::reserve_pair(source, target).await?;
    let sending = async move {
        let mut counted = MeteredWriter::new(writer, meter);
        let exit = source
            .exec_streaming_in(source_slot, send, Stdin::Empty, &mut counted)
            .await;
        (exit, counted.bytes, counted.lines)
        // `counted` drops here: the target's stdin reaches its end.
    };
    let receiving = async {
        let mut output = Vec::new();
        let exit = target
            .exec_streaming_in(target_slot, receive, Stdin::reader(reader), &mut output)
            .await;
        (exit, output)
    };
    let ((sent, bytes, lines), (received, output)) = tokio::join!(sending, receiving);
    Ok(Relayed {
        sent,
        received,
        bytes,
        lines,
        output,
    })
}
