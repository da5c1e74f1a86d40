//! Progress of the long copies: a bar with bytes, rate and ETA on a terminal, a line on stderr
//! every few seconds otherwise (CI logs, the daemon).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::preflight::human_bytes;

/// How often a log line is written when there is no terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// How often a bar is redrawn.
const DRAW_EVERY: Duration = Duration::from_millis(200);

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Bars on stderr.
    Bars,
    /// A line on stderr every few seconds.
    Lines,
    /// Nothing (tests, benchmarks of the library).
    Off,
}

impl Progress {
    /// Bars when stderr is a terminal, lines otherwise.
    pub fn detect() -> Progress {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() && std::env::var_os("SITEWARD_NO_PROGRESS").is_none() {
            Progress::Bars
        } else {
            Progress::Lines
        }
    }

    /// Prints a line of the run's story on stderr (above the bars on a terminal).
    pub fn say(self, line: &str) {
        match self {
            Progress::Off => tracing::debug!("{line}"),
            Progress::Bars => {
                if bars().println(format!("  {line}")).is_err() {
                    eprintln!("  {line}");
                }
            }
            Progress::Lines => eprintln!("  {line}"),
        }
    }

    /// Starts showing one copy; `expected` is the size measured on the source, when known.
    pub fn meter(self, label: &str, expected: Option<u64>) -> Meter {
        let counter = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let shown = match self {
            Progress::Off => None,
            Progress::Bars => Some(spawn_bar(label, expected, &counter, &done)),
            Progress::Lines => Some(spawn_lines(label, expected, &counter, &done)),
        };
        Meter {
            counter,
            done,
            shown,
        }
    }
}

/// Counts the bytes of one copy while it runs.
pub struct Meter {
    counter: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    shown: Option<std::thread::JoinHandle<()>>,
}

impl Meter {
    /// A meter that shows nothing.
    pub fn none() -> Meter {
        Progress::Off.meter("", None)
    }

    /// Adds bytes that went through.
    pub fn add(&self, bytes: u64) {
        self.counter.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes so far.
    pub fn bytes(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }

    /// Stops showing progress.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.shown.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The bars of copies running at once share the terminal's lines.
fn bars() -> &'static MultiProgress {
    static BARS: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

fn spawn_bar(
    label: &str,
    expected: Option<u64>,
    counter: &Arc<AtomicU64>,
    done: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let bar = match expected {
        Some(total) if total > 0 => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(
                    "{prefix:>18} [{bar:30}] {bytes}/~{total_bytes} on the wire  {bytes_per_sec}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
        _ => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{prefix:>18} {spinner} {bytes} on the wire  {bytes_per_sec}  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    let bar = bars().add(bar);
    bar.set_prefix(label.to_owned());
    let (counter, done) = (counter.clone(), done.clone());
    std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            bar.set_position(counter.load(Ordering::Relaxed));
            std::thread::sleep(DRAW_EVERY);
        }
        bar.set_position(counter.load(Ordering::Relaxed));
        bar.finish_and_clear();
    })
}

fn spawn_lines(
    label: &str,
    expected: Option<u64>,
    counter: &Arc<AtomicU64>,
    done: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let label = label.to_owned();
    let (counter, done) = (counter.clone(), done.clone());
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut next = started + LOG_EVERY;
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if Instant::now() < next {
                continue;
            }
            next += LOG_EVERY;
            let bytes = counter.load(Ordering::Relaxed);
            Progress::Lines.say(&progress_line(&label, bytes, expected, started.elapsed()));
        }
    })
}

/// `storage: 120.0 MiB on the wire of ~1.0 GiB, 24.0 MiB/s, ETA 37 s`.
pub fn progress_line(label: &str, bytes: u64, expected: Option<u64>, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(0.001);
    let rate = bytes as f64 / seconds;
    let mut line = format!("{label}: {} on the wire", human_bytes(bytes));
    if let Some(total) = expected.filter(|t| *t > 0) {
        line.push_str(&format!(" of ~{}", human_bytes(total)));
    }
    line.push_str(&format!(", {}/s", human_bytes(rate as u64)));
    if let Some(total) = expected.filter(|t| *t > bytes)
        && rate > 0.0
    {
        let eta = ((total - bytes) as f64 / rate).ceil() as u64;
        line.push_str(&format!(
            ", ETA {}",
            crate::plan::migration::human_duration(eta)
        ));
    }
    line
}

/// A writer that passes bytes on, counting them (and the lines they end) into a [`Meter`] as
/// they go: the sending end of every stream between two servers.
pub struct MeteredWriter<'m, W> {
    inner: W,
    /// Bytes passed on so far.
    pub bytes: u64,
    /// Newlines among them.
    pub lines: u64,
    meter: &'m Meter,
}

impl<'m, W> MeteredWriter<'m, W> {
    pub fn new(inner: W, meter: &'m Meter) -> Self {
        MeteredWriter {
            inner,
            bytes: 0,
            lines: 0,
            meter,
        }
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for MeteredWriter<'_, W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(written)) = &poll {
            let written = *written;
            self.bytes += written as u64;
            self.lines += buf[..written].iter().filter(|b| **b == b'\n').count() as u64;
            self.meter.add(written as u64);
        }
        poll
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_has_bytes_rate_and_eta() {
        let line = progress_line("storage", 10 << 20, Some(30 << 20), Duration::from_secs(5));
        assert_eq!(
            line,
            "storage: 10.0 MiB on the wire of ~30.0 MiB, 2.0 MiB/s, ETA 10 s"
        );
    }

    #[test]
    fn without_a_size_there_is_no_eta() {
        let line = progress_line("database shop", 2048, None, Duration::from_secs(1));
        assert_eq!(line, "database shop: 2.0 KiB on the wire, 2.0 KiB/s");
    }

    #[test]
    fn a_meter_counts_what_goes_through() {
        let meter = Progress::Off.meter("x", None);
        meter.add(5);
        meter.add(7);
        assert_eq!(meter.bytes(), 12);
        meter.finish();
    }
}
