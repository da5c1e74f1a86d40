//! The `siteward` binary: parse, set up logging, run the verb, map the outcome to an exit code.

use clap::Parser;
use siteward::cli::{Cli, LogFormat};
use siteward::commands::{self, Context, Exit, Hinted};
use std::process::ExitCode;

/// mimalloc gives freed memory back to the system: the daemon's runs allocate and free a great
/// deal, and glibc's allocator kept about twice the live heap resident (`scripts/bench-watch`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
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
    for hint in error.chain().filter_map(|e| e.downcast_ref::<Hinted>()) {
        let label = commands::paint(ctx.color_stderr, "hint:", Style::new().cyan().bold());
        out.push_str(&format!("\n{label} {}\n", hint.hint));
    }
    out
}
