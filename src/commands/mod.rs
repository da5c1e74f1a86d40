//! One module per verb; each `run(ctx, args)` returns the process exit status.

mod apply;
mod backup;
mod bundle;
mod discover;
mod observe;
mod plan;
pub mod reconcile;
pub(crate) mod record;
mod rollback;
mod schema;
mod status;
mod validate;
mod watch;

use crate::cli::{ColorChoice, Command};
use std::fmt;
use std::io::IsTerminal;

/// Process exit statuses, documented in README.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success; for `plan --detailed-exitcode`, nothing would change.
    Success = 0,
    /// An error, or invalid specs, or a stale schema.
    Failure = 1,
    /// `plan --detailed-exitcode`: something would change; `discover`: some site has things
    /// its spec cannot express.
    Changes = 2,
    /// The command line itself was wrong.
    Usage = 64,
}

/// What every command may need: output settings.
#[derive(Clone, Debug)]
pub struct Context {
    /// Whether stdout gets colour.
    pub color_stdout: bool,
    /// Whether stderr gets colour.
    pub color_stderr: bool,
    /// The state store URL or path.
    pub state: String,
}

impl Context {
    /// Builds the context from the global flags and the environment (`NO_COLOR`).
    pub fn new(color: ColorChoice, state: String) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let decide = |terminal: bool| match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !no_color,
        };
        Context {
            color_stdout: decide(std::io::stdout().is_terminal()),
            color_stderr: decide(std::io::stderr().is_terminal()),
            state,
        }
    }
}

/// An error that carries a hint telling the user how to fix it.
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// Builds an error with a hint.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

/// Runs the chosen verb.
pub fn run(ctx: &Context, command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Validate(args) => validate::run(ctx, args),
        Command::Schema(args) => schema::run(ctx, args),
        Command::Plan(args) => plan::run(ctx, args),
        Command::Apply(args) => apply::run(ctx, args),
        Command::Status(args) => status::status(ctx, args),
        Command::Watch(args) => watch::run(ctx, args),
        Command::Report(args) => status::report(ctx, args),
        Command::Observe(args) => observe::run(ctx, args),
        Command::Rollback(args) => rollback::run(ctx, args),
        Command::Discover(args) => discover::run(ctx, args),
        Command::Backup(args) => backup::backup(ctx, args),
        Command::Backups(args) => backup::backups(ctx, args),
        Command::Restore(args) => backup::restore(ctx, args),
        Command::Export(args) => bundle::export(ctx, args),
        Command::Import(args) => bundle::import(ctx, args),
    }
}

/// Colours text for a stream when colour is on.
pub fn paint(enabled: bool, text: &str, style: owo_colors::Style) -> String {
    use owo_colors::OwoColorize;
    if enabled {
        text.style(style).to_string()
    } else {
        text.to_owned()
    }
}
