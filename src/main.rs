//! The `siteward` binary: parse, set up logging, run the verb, map the outcome to an exit code.

use clap::Parser;
use siteward::cli::{Cli, LogFormat};
use siteward::commands::{self, Context, Exit, Hinted};
use std::process::ExitCode;

/// mimalloc gives freed memory back to the system: the daemon's runs allocate and free a great
/// deal, and glibc's allocator kept about twice the live heap resident (`scripts/bench-watch`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` (`mi_option_t` 15 in mimalloc.h, v2; the sys crate exports no
/// constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    return_freed_memory_at_once();
    keep_sqlite_in_one_arena();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    init_tracing(&cli);
    let ctx = Context::new(cli.global.color, cli.global.state.clone());
    match commands::run(&ctx, cli.command) {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(error) => {
            eprint!("{}", render_error(&ctx, &error));
            ExitCode::from(Exit::Failure as u8)
        }
    }
}

/// By default mimalloc purges freed pages 10 ms later, on that thread's next allocation, so an
/// idle tokio worker keeps what it freed resident: the daemon at 1,000 sites held 72 MB after
/// serving its API, 44 MB when freed pages go back at once (`scripts/bench-watch`). The
/// `MIMALLOC_PURGE_DELAY` variable, when set, still decides.
fn return_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: called first thing in `main`, before any other thread exists (mimalloc's option
    // setters are not thread-safe); the option index is mimalloc v2's `mi_option_purge_delay`.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// SQLite is C and allocates with glibc's malloc, on one thread per pooled connection; glibc
/// gives each thread an arena of its own and keeps what they freed. One arena for them all took
/// the daemon at 1,000 sites from 53 MB to 46 MB resident (`scripts/bench-watch`). `MALLOC_ARENA_MAX`, when set,
/// still decides.
fn keep_sqlite_in_one_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: called at the start of `main`, before any other thread exists; mallopt only sets
    // a limit that glibc reads when a thread first allocates.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn usage_error(error: clap::Error) -> ExitCode {
    let informational = matches!(
        error.kind(),
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
    );
    let _ = error.print();
    if informational {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(Exit::Usage as u8)
    }
}

fn init_tracing(cli: &Cli) {
    // The daemon tells what it does by default; a verb run by hand only what goes wrong.
    let daemon = matches!(cli.command, siteward::cli::Command::Watch(_));
    let level = match (cli.global.quiet, cli.global.verbose) {
        (2.., _) => "off",
        (1, _) => "error",
        (_, 0) if daemon => "info",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SITEWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("siteward={level},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.with_ansi(color_logs(cli)).init(),
    }
}

fn color_logs(cli: &Cli) -> bool {
    Context::new(cli.global.color, String::new()).color_stderr
}

/// `error: …`, then `Caused by:` lines, then `hint:` lines.
fn render_error(ctx: &Context, error: &anyhow::Error) -> String {
    use owo_colors::Style;
    let mut out = format!(
        "{} {error}\n",
        commands::paint(ctx.color_stderr, "error:", Style::new().red().bold())
    );
    let causes: Vec<String> = error.chain().skip(1).map(ToString::to_string).collect();
    if !causes.is_empty() {
        out.push_str("\nCaused by:\n");
        for cause in causes {
            out.push_str(&format!("  {cause}\n"));
        }
    }
    for hint in hints(error) {
        let label = commands::paint(ctx.color_stderr, "hint:", Style::new().cyan().bold());
        out.push_str(&format!("\n{label} {}\n", hint.hint));
    }
    out
}

/// Every hint of an error: one attached as its outermost context (`.context(Hinted { … })`,
/// which `chain()` does not downcast), then those in its chain, each once.
fn hints(error: &anyhow::Error) -> Vec<&Hinted> {
    let mut out: Vec<&Hinted> = error.downcast_ref::<Hinted>().into_iter().collect();
    for hint in error.chain().filter_map(|e| e.downcast_ref::<Hinted>()) {
        if !out.iter().any(|seen| std::ptr::eq(*seen, hint)) {
            out.push(hint);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_given_as_context_is_printed_once_after_the_causes() {
        let hinted = |message: &str| Hinted {
            message: message.into(),
            hint: "check the address".into(),
        };
        let cause = std::io::Error::other("no route to host");
        let error = anyhow::Error::new(cause).context(hinted("failed to connect"));
        let ctx = Context::new(siteward::cli::ColorChoice::Never, String::new());
        let text = render_error(&ctx, &error);
        assert!(text.starts_with("error: failed to connect\n"), "{text}");
        assert!(text.contains("Caused by:\n  no route to host\n"), "{text}");
        assert_eq!(text.matches("hint: check the address").count(), 1, "{text}");
        let root = anyhow::Error::new(hinted("no such server"));
        assert_eq!(render_error(&ctx, &root).matches("hint:").count(), 1);
    }

    #[test]
    fn freed_memory_goes_back_at_once_unless_the_environment_says_otherwise() {
        #[allow(unsafe_code)]
        // SAFETY: reading an option is a plain load; the index is mimalloc v2's purge delay.
        let read = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(
            read(),
            10,
            "index 15 is purge_delay, whose default is 10 ms"
        );
        return_freed_memory_at_once();
        assert_eq!(read(), 0);
    }
}
