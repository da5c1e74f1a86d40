//! The stream between the servers: the dump's stdout into the restore's stdin through an
//! in-memory pipe, counted as it goes.

use super::*;

/// The two commands of a stream, each with what its stdin starts with (after the password
/// line, which the stream adds).
pub(super) struct Ends<'a> {
    pub(super) dump: &'a str,
    pub(super) dump_input: &'a [u8],
    pub(super) restore: &'a str,
    pub(super) restore_prelude: &'a [u8],
}

/// What went through a stream: its bytes, and what the restore printed.
pub(super) struct Streamed {
    pub(super) bytes: u64,
    pub(super) restore_output: Vec<u8>,
}

/// Runs the dump on the source and the restore on the target at once, the dump's stdout
/// feeding the restore's stdin through an in-memory pipe.
pub(super) async fn stream<S: Transport, T: Transport>(
    (source, source_admin, target, target_admin): (&S, &DbAdmin, &T, &DbAdmin),
    ends: Ends<'_>,
    name: &str,
    meter: &Meter,
) -> Result<Streamed, MigrateError> {
    let Ends {
        dump,
        dump_input,
        restore,
        restore_prelude,
    } = ends;
    let (writer, reader) = tokio::io::duplex(PIPE_BUFFER);
    let mut counter = crate::migrate::progress::MeteredWriter::new(writer, meter);
    let mut dump_password = source_admin.password_line();
    dump_password.extend_from_slice(dump_input);
    let mut prelude = target_admin.password_line();
    prelude.extend_from_slice(restore_prelude);
    let restore_input = std::io::Cursor::new(prelude).chain(reader);
    let (source_slot, target_slot) = crate::transport::reserve_pair(source, target)
        .await
        .map_err(|source_error| MigrateError::Transport {
            what: format!("opening the channels of the copy of database `{name}`"),
            endpoint: format!("{} and {}", source.endpoint(), target.endpoint()),
            source: Box::new(source_error),
        })?;
    let dumping = async {
        let exit = source
            .exec_streaming_in(
                source_slot,
                dump,
                Stdin::Bytes(&dump_password),
                &mut counter,
            )
            .await;
        // EOF for the restore, whatever happened to the dump.
        let _ = counter.shutdown().await;
        let bytes = counter.bytes;
        drop(counter);
        (exit, bytes)
    };
    let restoring = target.exec_in(target_slot, restore, Stdin::reader(restore_input));
    let ((dumped, bytes), restored) = tokio::join!(dumping, restoring);
    let dump_what = format!("the dump of database `{name}`");
    let restore_what = format!("the restore of database `{name}`");
    let dump_result = checked(source.endpoint(), &dump_what, dumped);
    let restore_result = checked(target.endpoint(), &restore_what, restored);
    match (dump_result, restore_result) {
        (Ok(_), Ok(restore_output)) => Ok(Streamed {
            bytes,
            restore_output,
        }),
        (Err(dump), Ok(_)) => Err(dump),
        (Ok(_), Err(restore)) => Err(restore),
        // A restore that stopped leaves the dump's output nowhere to go: the restore's error is
        // the cause.
        (Err(dump), Err(restore)) if lost_its_reader(&dump) => Err(restore),
        // Otherwise the dump failed or was cut off, truncating the restore's input: both are
        // told, the dump first.
        (Err(dump), Err(restore)) => Err(MigrateError::Both {
            dump: Box::new(dump),
            restore: Box::new(restore),
        }),
    }
}

/// Whether a dump failed only because what it printed could not be passed on.
pub(super) fn lost_its_reader(dump: &MigrateError) -> bool {
    matches!(
        dump,
        MigrateError::Transport { source, .. }
            if matches!(**source, TransportError::Ssh(crate::transport::SshError::StdoutWrite { .. }))
    )
}

/// Output of a finished command: what it printed, or why it failed.
pub(super) struct Outcome {
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
    pub(super) status: u32,
    pub(super) signal: Option<String>,
}

impl From<crate::transport::Exit> for Outcome {
    fn from(exit: crate::transport::Exit) -> Self {
        Self {
            stdout: Vec::new(),
            stderr: exit.stderr,
            status: exit.status,
            signal: exit.signal,
        }
    }
}

impl From<crate::transport::ExecOutput> for Outcome {
    fn from(output: crate::transport::ExecOutput) -> Self {
        Self {
            stdout: output.stdout,
            stderr: output.stderr,
            status: output.status,
            signal: output.signal,
        }
    }
}

/// The stdout of a command that ran and succeeded, or the error saying what failed where.
pub(super) fn checked<O: Into<Outcome>>(
    endpoint: &str,
    what: &str,
    result: Result<O, TransportError>,
) -> Result<Vec<u8>, MigrateError> {
    let outcome: Outcome = result
        .map_err(|source| MigrateError::Transport {
            what: what.to_owned(),
            endpoint: endpoint.to_owned(),
            source: Box::new(source),
        })?
        .into();
    if outcome.status == 0 && outcome.signal.is_none() {
        return Ok(outcome.stdout);
    }
    Err(MigrateError::Failed {
        what: what.to_owned(),
        endpoint: endpoint.to_owned(),
        status: outcome.status,
        stderr: crate::transport::stderr_excerpt(&outcome.stderr),
    })
}
