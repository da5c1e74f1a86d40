//! The server side of backups, restores and bundles: siteward's script run on a server with the
//! site's settings and secrets on stdin (never in an argument), its output read as it comes.

use super::settings::{self, BackupSettings, SiteLayout};
use super::snapshots::{self, ListingError, Run};
use crate::migrate::progress::{Meter, Progress};
use crate::spec::secret::{ResolvedSecrets, Secret};
use crate::transport::{Command, QuoteError, Stdin, Transport, TransportError};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};

/// Why a backup, a listing, a restore or a bundle's transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("site `{0}` has no backups: add `backup:` to its spec (or its Server's)")]
    NotConfigured(String),
    #[error("a secret of the site's backups was not resolved")]
    Unresolved,
    #[error(transparent)]
    Quote(#[from] QuoteError),
    #[error("{what} on `{server}` failed")]
    Remote {
        what: String,
        server: String,
        #[source]
        source: Box<TransportError>,
    },
    #[error(transparent)]
    Listing(#[from] ListingError),
    #[error("the backup on `{server}` ended without saying which snapshots it made")]
    NoResult { server: String },
    #[error("a local file failed")]
    Local(#[source] std::io::Error),
}

/// One site on one server, with what its script needs.
pub struct Remote<'a, T> {
    pub transport: &'a T,
    /// The server's name, for messages.
    pub server: &'a str,
    pub layout: &'a SiteLayout,
    pub settings: Option<&'a BackupSettings>,
    pub secrets: &'a ResolvedSecrets,
    pub progress: Progress,
}

/// What a backup made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupResult {
    pub run: String,
    pub database: Option<String>,
    pub files: Option<String>,
    pub bytes: u64,
}

impl BackupResult {
    /// `3f2a9c1d (database) + 77b0e412 (files)`.
    pub fn label(&self) -> String {
        let parts: Vec<String> = [("database", &self.database), ("files", &self.files)]
            .iter()
            .filter_map(|(kind, id)| id.as_ref().map(|id| format!("{id} ({kind})")))
            .collect();
        parts.join(" + ")
    }
}

impl<'a, T: Transport> Remote<'a, T> {
    fn settings(&self) -> Result<&'a BackupSettings, BackupError> {
        self.settings
            .ok_or_else(|| BackupError::NotConfigured(self.layout.site.clone()))
    }

    /// Settings and secrets, as the script reads them on stdin.
    fn header(&self) -> Result<Secret, BackupError> {
        let config = settings::config_text(self.layout, self.settings);
        let entries = settings::secret_entries(self.layout, self.settings);
        let secrets =
            settings::secrets_text(&entries, self.secrets).ok_or(BackupError::Unresolved)?;
        Ok(settings::stdin_header(&config, &secrets))
    }

    fn command(action: &str, args: &[&str]) -> Result<String, BackupError> {
        Ok(Command::script(settings::SCRIPT)
            .arg("--stdin")
            .arg(action)
            .args(args.iter().copied())
            .render()?)
    }

    fn failed(&self, what: &str, source: TransportError) -> BackupError {
        BackupError::Remote {
            what: what.to_owned(),
            server: self.server.to_owned(),
            source: Box::new(source),
        }
    }

    /// Runs an action with the settings on stdin (and `data` after them), its stdout to `out`.
    async fn run<W>(
        &self,
        what: &str,
        action: &str,
        args: &[&str],
        data: Option<Pin<Box<dyn AsyncRead + Send + '_>>>,
        out: &mut W,
    ) -> Result<(), BackupError>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        let command = Self::command(action, args)?;
        let header = self.header()?;
        let head = std::io::Cursor::new(header.expose().as_bytes().to_vec());
        let stdin = match data {
            Some(data) => Stdin::reader(head.chain(data)),
            None => Stdin::Bytes(header.expose().as_bytes()),
        };
        let exit = self
            .transport
            .exec_streaming(&command, stdin, out)
            .await
            .map_err(|source| self.failed(what, source))?;
        if exit.status == 0 && exit.signal.is_none() {
            return Ok(());
        }
        let stderr = self
            .secrets
            .scrub(&crate::transport::stderr_excerpt(&exit.stderr));
        Err(self.failed(
            what,
            TransportError::Failed {
                what: what.to_owned(),
                endpoint: self.transport.endpoint().to_owned(),
                status: exit.status,
                stderr,
            },
        ))
    }

    /// Backs the site up now, as its schedule would; `database_bytes` sizes the progress.
    pub async fn backup(&self, database_bytes: Option<u64>) -> Result<BackupResult, BackupError> {
        self.settings()?;
        let mut reader = ResticOutput::new(self.progress, database_bytes);
        self.run("the backup", "backup", &[], None, &mut reader)
            .await?;
        reader.finish();
        reader.result.ok_or_else(|| BackupError::NoResult {
            server: self.server.to_owned(),
        })
    }

    /// The site's backup runs in its repository, oldest first.
    pub async fn runs(&self) -> Result<Vec<Run>, BackupError> {
        self.settings()?;
        let mut out = Vec::new();
        self.run("listing the snapshots", "snapshots", &[], None, &mut out)
            .await?;
        Ok(snapshots::runs(&snapshots::parse(&out)?, &self.layout.site))
    }

    /// Checks the repository (`restic check`, reading every pack with `read_data`).
    pub async fn check(&self, read_data: bool) -> Result<String, BackupError> {
        self.settings()?;
        let mut out = Vec::new();
        let args: &[&str] = if read_data { &["--read-data"] } else { &[] };
        self.run("checking the repository", "check", args, None, &mut out)
            .await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Restores a run into the site's staging directory: nothing in use changes.
    pub async fn fetch(&self, run: &Run) -> Result<(), BackupError> {
        self.settings()?;
        let (db, db_path) = match &run.database {
            Some(part) => (
                part.id.as_str(),
                part.paths.first().map(String::as_str).unwrap_or("-"),
            ),
            None => ("-", "-"),
        };
        let (files, shared) = match &run.files {
            Some(part) => (part.id.as_str(), part.shared.as_deref().unwrap_or("-")),
            None => ("-", "-"),
        };
        let meter = self
            .progress
            .meter("restore", Some(run.bytes()).filter(|b| *b > 0));
        let mut out = Vec::new();
        let args = [db, db_path, files, shared];
        let stage = self.stage();
        let fetching = self.run(
            "restoring the snapshots into the staging directory",
            "fetch",
            &args,
            None,
            &mut out,
        );
        let watching = watch_growth(self.transport, &stage, &meter);
        let result = tokio::select! {
            result = fetching => result,
            () = watching => unreachable!("the watch ends only with the fetch"),
        };
        meter.finish();
        result
    }

    /// The staging directory of restores and imports.
    pub fn stage(&self) -> String {
        let parent = self
            .layout
            .shared
            .rsplit_once('/')
            .map_or("", |(parent, _)| parent);
        format!("{parent}/.siteward-restore.{}", self.layout.site)
    }

    /// Puts what is staged in place: the database loaded again, the paths swapped in.
    pub async fn apply_stage(&self) -> Result<String, BackupError> {
        let mut out = Vec::new();
        self.run(
            "putting the restored data in place",
            "apply-stage",
            &[],
            None,
            &mut out,
        )
        .await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Removes the staging directory.
    pub async fn discard_stage(&self) -> Result<(), BackupError> {
        let mut out = Vec::new();
        self.run(
            "removing the staging directory",
            "discard-stage",
            &[],
            None,
            &mut out,
        )
        .await
    }

    /// Streams a part of the site (`dump-database`, `dump-files`, `dump-env`) into `out`.
    pub async fn dump<W>(&self, action: &str, out: &mut W) -> Result<(), BackupError>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        self.run(&format!("`{action}`"), action, &[], None, out)
            .await
    }

    /// Streams `data` into a part of the staging directory (`receive-database`,
    /// `receive-files`, `receive-env`).
    pub async fn receive(
        &self,
        action: &str,
        data: Pin<Box<dyn AsyncRead + Send + '_>>,
    ) -> Result<(), BackupError> {
        let mut out = Vec::new();
        self.run(&format!("`{action}`"), action, &[], Some(data), &mut out)
            .await
    }
}

/// Shows how the staging directory grows while a restore fills it: `du` every second.
async fn watch_growth<T: Transport>(transport: &T, path: &str, meter: &Meter) {
    const LOOP: &str = "while :; do du -sb \"$1\" 2>/dev/null | cut -f1 || echo 0; sleep 1; done";
    let Ok(command) = Command::script(LOOP).arg(path).render() else {
        return std::future::pending().await;
    };
    let mut sink = SizeLines { meter, seen: 0 };
    let _ = transport
        .exec_streaming(&command, Stdin::Empty, &mut sink)
        .await;
    std::future::pending().await
}

/// `du` lines: each the staging directory's size, counted into a meter as it grows.
struct SizeLines<'m> {
    meter: &'m Meter,
    seen: u64,
}

impl AsyncWrite for SizeLines<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        for line in String::from_utf8_lossy(buf).lines() {
            if let Ok(size) = line.trim().parse::<u64>()
                && size > this.seen
            {
                this.meter.add(size - this.seen);
                this.seen = size;
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The backup's stdout: `part NAME` lines, restic's JSON (its status lines drive a progress
/// meter per part), and the final `result ok RUN DATABASE FILES BYTES`.
struct ResticOutput {
    progress: Progress,
    database_bytes: Option<u64>,
    meter: Option<Meter>,
    done: u64,
    pending: Vec<u8>,
    result: Option<BackupResult>,
}

impl ResticOutput {
    fn new(progress: Progress, database_bytes: Option<u64>) -> Self {
        ResticOutput {
            progress,
            database_bytes,
            meter: None,
            done: 0,
            pending: Vec::new(),
            result: None,
        }
    }

    fn line(&mut self, line: &str) {
        if let Some(part) = line.strip_prefix("part ") {
            self.finish();
            let expected = (part == "database")
                .then_some(self.database_bytes)
                .flatten();
            self.meter = Some(self.progress.meter(&format!("backup {part}"), expected));
            self.done = 0;
        } else if let Some(rest) = line.strip_prefix("result ok ") {
            self.result = parse_result(rest);
        } else if line.contains("\"message_type\":\"status\"") {
            self.status(line);
        }
    }

    fn status(&mut self, line: &str) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let done = value
            .get("bytes_done")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if let Some(meter) = &self.meter
            && done > self.done
        {
            meter.add(done - self.done);
            self.done = done;
        }
    }

    fn finish(&mut self) {
        if let Some(meter) = self.meter.take() {
            meter.finish();
        }
    }
}

fn parse_result(rest: &str) -> Option<BackupResult> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let [run, database, files, bytes] = words[..] else {
        return None;
    };
    let id = |word: &str| (word != "-" && !word.is_empty()).then(|| word.to_owned());
    Some(BackupResult {
        run: run.to_owned(),
        database: id(database),
        files: id(files),
        bytes: bytes.parse().unwrap_or(0),
    })
}

impl AsyncWrite for ResticOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.pending.extend_from_slice(buf);
        while let Some(end) = this.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = this.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            this.line(&text);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_names_the_snapshots_of_the_run() {
        let result = parse_result("1714529820 aaaa1111 - 2048").unwrap();
        assert_eq!(result.database.as_deref(), Some("aaaa1111"));
        assert_eq!(result.files, None);
        assert_eq!(result.label(), "aaaa1111 (database)");
        assert_eq!(parse_result("only two"), None);
    }

    #[test]
    fn restic_status_lines_count_bytes_per_part() {
        let mut output = ResticOutput::new(Progress::Off, None);
        output.line("part files");
        output.line(r#"{"message_type":"status","bytes_done":100,"total_bytes":300}"#);
        output.line(r#"{"message_type":"status","bytes_done":250,"total_bytes":300}"#);
        assert_eq!(output.meter.as_ref().unwrap().bytes(), 250);
        output.line("result ok 1 - bbbb2222 300");
        output.finish();
        assert_eq!(output.result.unwrap().files.as_deref(), Some("bbbb2222"));
    }
}
