//! `siteward validate`: schema and semantic checks, every error located, all at once.

use super::{Context, Exit, paint};
use crate::cli::{OutputFormat, ValidateArgs};
use crate::spec::{self, diagnostic};
use owo_colors::Style;

/// Validates the specs under the given paths.
pub fn run(ctx: &Context, args: ValidateArgs) -> anyhow::Result<Exit> {
    let loaded = spec::load_and_check(&args.paths);
    let valid = loaded.diagnostics.is_empty();
    match args.format {
        OutputFormat::Json => println!("{}", diagnostic::render_json(&loaded.diagnostics)),
        OutputFormat::Text if valid => println!(
            "valid: {}, {} in {}",
            count(loaded.servers.len(), "server"),
            count(loaded.sites.len(), "site"),
            count(loaded.files, "file")
        ),
        OutputFormat::Text => {
            let text = diagnostic::render_text(&loaded.diagnostics, &loaded.sources);
            eprint!("{}", colour_diagnostics(ctx.color_stderr, &text));
        }
    }
    tracing::debug!(
        files = loaded.files,
        errors = loaded.diagnostics.len(),
        "validated specs"
    );
    Ok(if valid { Exit::Success } else { Exit::Failure })
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub(super) fn colour_diagnostics(enabled: bool, text: &str) -> String {
    if !enabled {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("error:") {
            out.push_str(&paint(true, "error:", Style::new().red().bold()));
            out.push_str(rest);
        } else if let Some(rest) = line.strip_prefix("  = hint:") {
            out.push_str(&paint(true, "  = hint:", Style::new().cyan().bold()));
            out.push_str(rest);
        } else if line.trim_start().starts_with('|') || line.trim_start().starts_with("-->") {
            out.push_str(&paint(true, line, Style::new().blue()));
        } else {
            out.push_str(line);
        }
    }
    out
}
