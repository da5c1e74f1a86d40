//! `siteward schema`: write the JSON Schema files, or check that they are current.

use super::{Context, Exit, hinted};
use crate::cli::SchemaArgs;
use crate::spec::schema::schema_files;
use anyhow::Context as _;

/// Writes or checks the schema files.
pub fn run(_ctx: &Context, args: SchemaArgs) -> anyhow::Result<Exit> {
    let files: Vec<(&str, String)> = schema_files()
        .into_iter()
        .map(|(name, value)| (name, render(&value)))
        .collect();
    if args.check {
        return check(&args, &files);
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("failed to create `{}`", args.dir.display()))?;
    for (name, text) in &files {
        let path = args.dir.join(name);
        std::fs::write(&path, text)
            .with_context(|| format!("failed to write `{}`", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(Exit::Success)
}

fn check(args: &SchemaArgs, files: &[(&str, String)]) -> anyhow::Result<Exit> {
    let stale: Vec<String> = files
        .iter()
        .filter(|(name, text)| {
            std::fs::read_to_string(args.dir.join(name)).ok().as_deref() != Some(text.as_str())
        })
        .map(|(name, _)| args.dir.join(name).display().to_string())
        .collect();
    if stale.is_empty() {
        println!("schemas in {} are current", args.dir.display());
        return Ok(Exit::Success);
    }
    Err(hinted(
        format!("the schema files are stale: {}", stale.join(", ")),
        format!(
            "run `siteward schema --dir {}` and commit the result",
            args.dir.display()
        ),
    ))
}

/// Pretty JSON with a final newline, as checked in.
pub fn render(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}
