//! Located spec errors: file:line:column, a caret under the place, and a hint for the fix.

use super::yaml::Position;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One problem found in the specs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file, as the user named it.
    pub file: PathBuf,
    /// Where in the file (1-based); line 0 means the file as a whole.
    pub line: u32,
    pub column: u32,
    /// JSON pointer into the document (`/spec/crons/0/schedule`), empty for the document.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at a position in a file.
    pub fn at(file: &Path, position: Position, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: position.line,
            column: position.column,
            pointer: String::new(),
            message: message.into(),
            hint: None,
        }
    }

    /// Adds the JSON pointer of the offending value.
    pub fn pointer(mut self, pointer: &[String]) -> Self {
        self.pointer = pointer_text(pointer);
        self
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Renders a path as a JSON pointer.
pub fn pointer_text(pointer: &[String]) -> String {
    pointer
        .iter()
        .map(|segment| format!("/{}", segment.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// The text of every file read, for snippets.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    texts: BTreeMap<PathBuf, Arc<str>>,
}

impl Sources {
    /// Remembers a file's text.
    pub fn insert(&mut self, file: &Path, text: Arc<str>) {
        self.texts.insert(file.to_path_buf(), text);
    }

    /// A line of a file (1-based).
    pub fn line(&self, file: &Path, line: u32) -> Option<&str> {
        let text = self.texts.get(file)?;
        text.lines().nth(line.checked_sub(1)? as usize)
    }
}

/// Renders diagnostics for a terminal: `error:` line, location, snippet with caret, hint.
pub fn render_text(diagnostics: &[Diagnostic], sources: &Sources) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        render_one(&mut out, diagnostic, sources);
    }
    let count = diagnostics.len();
    let plural = if count == 1 { "" } else { "s" };
    let _ = writeln!(out, "{count} error{plural} found in the specs");
    out
}

fn render_one(out: &mut String, diagnostic: &Diagnostic, sources: &Sources) {
    let _ = writeln!(out, "error: {}", diagnostic.message);
    let file = diagnostic.file.display();
    if diagnostic.line == 0 {
        let _ = writeln!(out, "  --> {file}");
    } else {
        let _ = writeln!(
            out,
            "  --> {file}:{}:{}",
            diagnostic.line, diagnostic.column
        );
        render_snippet(out, diagnostic, sources);
    }
    if let Some(hint) = &diagnostic.hint {
        let _ = writeln!(out, "  = hint: {hint}");
    }
    out.push('\n');
}

fn render_snippet(out: &mut String, diagnostic: &Diagnostic, sources: &Sources) {
    let Some(line) = sources.line(&diagnostic.file, diagnostic.line) else {
        return;
    };
    let number = diagnostic.line.to_string();
    let gutter = " ".repeat(number.len());
    let shown: String = line.chars().take(200).collect();
    let caret_at = (diagnostic.column.max(1) - 1) as usize;
    let padding: String = shown
        .chars()
        .take(caret_at)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(out, "{gutter} |");
    let _ = writeln!(out, "{number} | {shown}");
    let _ = writeln!(out, "{gutter} | {padding}^");
}

/// Renders diagnostics as a JSON document for machines.
pub fn render_json(diagnostics: &[Diagnostic]) -> String {
    let document = serde_json::json!({
        "formatVersion": 1,
        "valid": diagnostics.is_empty(),
        "errors": diagnostics,
    });
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

/// The closest candidate to a misspelt name, when one is close enough to suggest.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wrong_lower = wrong.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            let score = strsim::jaro_winkler(&wrong_lower, &candidate.to_lowercase());
            (score, candidate)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_suggests_the_field_that_was_meant() {
        let fields = ["domain", "aliases", "webDirectory", "workers"];
        assert_eq!(closest("domian", fields), Some("domain"));
        assert_eq!(closest("webdir", fields), Some("webDirectory"));
        assert_eq!(closest("zzz", fields), None);
    }

    #[test]
    fn snippet_puts_a_caret_under_the_column() {
        let mut sources = Sources::default();
        let file = Path::new("specs/site.yaml");
        sources.insert(file, Arc::from("kind: Site\nspec:\n  domian: x\n"));
        let diagnostic = Diagnostic::at(file, Position { line: 3, column: 3 }, "unknown field")
            .hint("did you mean `domain`?");
        let text = render_text(&[diagnostic], &sources);
        assert!(text.contains("--> specs/site.yaml:3:3"), "{text}");
        assert!(text.contains("3 |   domian: x\n  |   ^\n"), "{text}");
        assert!(text.contains("hint: did you mean `domain`?"), "{text}");
    }
}
