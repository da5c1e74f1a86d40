//! Reading spec files: directory trees or single files, several documents per file.

use super::diagnostic::{Diagnostic, Sources, closest};
use super::document::{API_VERSION, KINDS, ServerDocument, SiteDocument};
use super::schema::{DocumentKind, validate_document};
use super::server::Server;
use super::site::Site;
use super::yaml::{Node, NodeValue, Position, parse_documents};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Spec files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A value loaded from a document, with where it came from.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub item: T,
    pub file: PathBuf,
    pub node: Node,
}

impl<T> Located<T> {
    /// The position of a path inside this document (a key's position when `key` is set).
    pub fn position(&self, pointer: &[&str], key: bool) -> Position {
        let owned: Vec<String> = pointer.iter().map(|s| s.to_string()).collect();
        self.node.locate(&owned, key)
    }
}

/// Every document that loaded with a valid shape.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub servers: Vec<Located<Server>>,
    pub sites: Vec<Located<Site>>,
    pub sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
    /// How many files were read.
    pub files: usize,
}

/// Lists the spec files under the given paths: directories are walked for `*.yaml` and
/// `*.yml` (hidden entries skipped, sorted); files are taken as named.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|error| {
            Diagnostic::at(
                path,
                Position::default(),
                format!("cannot read `{}`: {error}", path.display()),
            )
            .hint(
                "pass a spec directory or file that exists, for example `siteward validate specs`",
            )
        })?;
        if metadata.is_dir() {
            walk(path, &mut files).map_err(|error| {
                Diagnostic::at(
                    path,
                    Position::default(),
                    format!("cannot list `{}`: {error}", path.display()),
                )
            })?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(directory: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(directory)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, files)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

/// Loads every document of every file, collecting all problems rather than stopping at one.
pub fn load(paths: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    let files = match discover(paths) {
        Ok(files) => files,
        Err(diagnostic) => {
            loaded.diagnostics.push(diagnostic);
            return loaded;
        }
    };
    if files.is_empty() {
        let place = paths.first().cloned().unwrap_or_else(|| PathBuf::from("."));
        loaded.diagnostics.push(
            Diagnostic::at(
                &place,
                Position::default(),
                "no spec files (`*.yaml`, `*.yml`) found",
            )
            .hint("specs live in a directory such as `specs/`; see examples/ for a start"),
        );
    }
    loaded.files = files.len();
    for file in files {
        load_file(&file, &mut loaded);
    }
    loaded
}

fn load_file(file: &Path, loaded: &mut Loaded) {
    let text = match read_text(file) {
        Ok(text) => text,
        Err(diagnostic) => return loaded.diagnostics.push(diagnostic),
    };
    loaded.sources.insert(file, Arc::from(text.as_str()));
    let documents = match parse_documents(&text) {
        Ok(documents) => documents,
        Err(error) => return loaded.diagnostics.push(yaml_error(file, &text, &error)),
    };
    if documents.is_empty() {
        loaded.diagnostics.push(
            Diagnostic::at(file, Position::default(), "the file holds no spec documents")
                .hint("write a document with `apiVersion`, `kind`, `metadata` and `spec`, or delete the file"),
        );
    }
    for node in documents {
        load_document(file, node, loaded);
    }
}

fn read_text(file: &Path) -> Result<String, Diagnostic> {
    let whole = Position::default();
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        return Err(Diagnostic::at(
            file,
            whole,
            format!("the file is {size} bytes; spec files are limited to {MAX_FILE_BYTES}"),
        )
        .hint("split the specs into several files"));
    }
    let bytes = std::fs::read(file)
        .map_err(|error| Diagnostic::at(file, whole, format!("cannot read the file: {error}")))?;
    if bytes.contains(&0) {
        return Err(
            Diagnostic::at(file, whole, "the file is binary, not YAML text")
                .hint("spec files are UTF-8 YAML text; remove this file from the spec directory"),
        );
    }
    String::from_utf8(bytes).map_err(|error| {
        Diagnostic::at(
            file,
            whole,
            format!(
                "the file is not UTF-8 text (invalid byte at offset {})",
                error.utf8_error().valid_up_to()
            ),
        )
        .hint("save the file as UTF-8")
    })
}

fn yaml_error(file: &Path, text: &str, error: &serde_saphyr::Error) -> Diagnostic {
    let position = error
        .location()
        .map(|l| Position {
            line: l.line() as u32,
            column: l.column() as u32,
        })
        .unwrap_or(Position { line: 1, column: 1 });
    let options = serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off };
    let rendered = error.render_with_options(options);
    let message = strip_location_suffix(rendered.lines().next().unwrap_or_default());
    let lower = message.to_lowercase();
    let line = text
        .lines()
        .nth(position.line.saturating_sub(1) as usize)
        .unwrap_or_default();
    let message = if lower.contains("depth") {
        format!("nesting is deeper than {} levels", super::yaml::MAX_DEPTH)
    } else {
        message
    };
    let hint = if line.contains("secret:") {
        "a secret reference reads `{secret: env:NAME}` or `{secret: file:PATH}`, with a name or path after the colon"
    } else if lower.contains("duplicate") {
        "each key may appear once per mapping; remove or rename the repeated key"
    } else if lower.contains("budget")
        || lower.contains("alias")
        || lower.contains("depth")
        || lower.contains("limit")
    {
        "specs are limited in nesting, aliases and size; write the values out plainly"
    } else {
        "check the YAML syntax at this place (indentation, quotes, `:` after keys)"
    };
    Diagnostic::at(file, position, format!("invalid YAML: {message}")).hint(hint)
}

fn strip_location_suffix(message: &str) -> String {
    match message.find(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

fn load_document(file: &Path, node: Node, loaded: &mut Loaded) {
    let NodeValue::Mapping(_) = &node.value else {
        let found = node.type_name();
        return loaded.diagnostics.push(
            Diagnostic::at(
                file,
                node.position,
                format!("a spec document must be a mapping, found {found}"),
            )
            .hint("start the document with `apiVersion: siteward.dev/v1` and `kind:`"),
        );
    };
    let Some(kind) = document_kind(file, &node, &mut loaded.diagnostics) else {
        return;
    };
    let json = node.to_json();
    let errors = validate_document(file, &node, &json, kind);
    if !errors.is_empty() {
        return loaded.diagnostics.extend(errors);
    }
    let result = match kind {
        DocumentKind::Server => serde_json::from_value::<ServerDocument>(json).map(|doc| {
            let item = Server {
                name: doc.metadata.name,
                spec: doc.spec,
            };
            loaded.servers.push(Located {
                item,
                file: file.to_path_buf(),
                node: node.clone(),
            });
        }),
        DocumentKind::Site => serde_json::from_value::<SiteDocument>(json).map(|doc| {
            let item = Site {
                name: doc.metadata.name,
                spec: doc.spec,
            };
            loaded.sites.push(Located {
                item,
                file: file.to_path_buf(),
                node: node.clone(),
            });
        }),
    };
    if let Err(error) = result {
        loaded.diagnostics.push(Diagnostic::at(
            file,
            node.position,
            format!("invalid document: {error}"),
        ));
    }
}

/// Reads `apiVersion` and `kind`, reporting what is missing or unknown.
fn document_kind(
    file: &Path,
    node: &Node,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<DocumentKind> {
    let mut ok = true;
    match node.get("apiVersion") {
        None => {
            ok = false;
            diagnostics.push(
                Diagnostic::at(file, node.position, "missing field `apiVersion`")
                    .hint(format!("add `apiVersion: {API_VERSION}`")),
            );
        }
        Some(value) if value.as_str() != Some(API_VERSION) => {
            ok = false;
            let found = value.as_str().unwrap_or("(not text)");
            diagnostics.push(
                Diagnostic::at(
                    file,
                    value.position,
                    format!("unknown apiVersion `{found}`"),
                )
                .pointer(&["apiVersion".to_owned()])
                .hint(format!(
                    "this siteward understands `apiVersion: {API_VERSION}`"
                )),
            );
        }
        Some(_) => {}
    }
    let kind = match node.get("kind") {
        None => {
            diagnostics.push(
                Diagnostic::at(file, node.position, "missing field `kind`")
                    .hint("add `kind: Server` or `kind: Site`"),
            );
            None
        }
        Some(value) => match value.as_str() {
            Some("Server") => Some(DocumentKind::Server),
            Some("Site") => Some(DocumentKind::Site),
            other => {
                let found = other.unwrap_or("(not text)");
                let hint = match closest(found, KINDS) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "the kinds are `Server` and `Site`".to_owned(),
                };
                diagnostics.push(
                    Diagnostic::at(file, value.position, format!("unknown kind `{found}`"))
                        .pointer(&["kind".to_owned()])
                        .hint(hint),
                );
                None
            }
        },
    };
    if ok { kind } else { None }
}
