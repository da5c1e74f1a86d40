//! The JSON Schema of the specs: generated from the Rust types, checked in, and used to
//! validate every document with errors located in the YAML.

use super::diagnostic::{Diagnostic, closest};
use super::document::{ServerDocument, SiteDocument};
use super::names::ALL_RULES;
use super::yaml::Node;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;
use std::path::Path;
use std::sync::OnceLock;

/// The schema files written into `schemas/`, by file name.
pub fn schema_files() -> Vec<(&'static str, Value)> {
    vec![
        ("server.json", server_schema().clone()),
        ("site.json", site_schema().clone()),
        ("siteward.json", combined_schema()),
    ]
}

fn settings() -> schemars::generate::SchemaSettings {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.transforms.push(Box::new(optional_is_not_null));
    settings
}

/// Optional fields are written by leaving them out, not with `null`: dropping the `null`
/// alternative keeps editor and validation messages about the value itself.
fn optional_is_not_null(schema: &mut schemars::Schema) {
    schemars::transform::transform_subschemas(&mut optional_is_not_null, schema);
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types[0].clone();
            object.insert("type".into(), only);
        }
    }
    let Some(Value::Array(any_of)) = object.get("anyOf") else {
        return;
    };
    let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
    if any_of.len() == 2 && any_of.iter().any(is_null) {
        let Some(Value::Object(kept)) = any_of.iter().find(|v| !is_null(v)).cloned() else {
            return;
        };
        object.remove("anyOf");
        for (key, value) in kept {
            object.entry(key).or_insert(value);
        }
    }
}

fn generate<T: schemars::JsonSchema>(id: &str) -> Value {
    let generator = settings().into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert("$id".into(), Value::String(id.into()));
    }
    schema
}

/// The schema of a `Server` document.
pub fn server_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| generate::<ServerDocument>("https://siteward.dev/schemas/v1/server.json"))
}

/// The schema of a `Site` document.
pub fn site_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| generate::<SiteDocument>("https://siteward.dev/schemas/v1/site.json"))
}

/// One schema for any siteward document, chosen by `kind`: the one editors point at.
/// It is self-contained, so that editors need nothing but this file.
pub fn combined_schema() -> Value {
    let mut generator = settings().into_generator();
    let server = generator.subschema_for::<ServerDocument>().to_value();
    let site = generator.subschema_for::<SiteDocument>().to_value();
    let definitions = generator.take_definitions(true);
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://siteward.dev/schemas/v1/siteward.json",
        "title": "siteward spec document",
        "description": "A Server or Site document (apiVersion siteward.dev/v1).",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"kind": {"enum": ["Server", "Site"]}},
        "allOf": [
            {"if": {"properties": {"kind": {"const": "Server"}}}, "then": server},
            {"if": {"properties": {"kind": {"const": "Site"}}}, "then": site}
        ],
        "$defs": definitions
    })
}

fn validator(schema: &'static Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .expect("the generated schema is valid")
}

fn server_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| validator(server_schema()))
}

fn site_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| validator(site_schema()))
}

/// Which kind's schema to check a document against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentKind {
    Server,
    Site,
}

/// Validates a document against its kind's schema; every error is located in the YAML.
pub fn validate_document(
    file: &Path,
    node: &Node,
    json: &Value,
    kind: DocumentKind,
) -> Vec<Diagnostic> {
    let (validator, schema) = match kind {
        DocumentKind::Server => (server_validator(), server_schema()),
        DocumentKind::Site => (site_validator(), site_schema()),
    };
    let mut diagnostics: Vec<Diagnostic> = validator
        .iter_errors(json)
        .flat_map(|error| describe(file, node, schema, &error))
        .collect();
    drop_missing_explained_by_misspelling(&mut diagnostics);
    diagnostics.sort_by_key(|d| (d.line, d.column));
    diagnostics.dedup_by(|a, b| a.line == b.line && a.column == b.column && a.message == b.message);
    diagnostics
}

/// `domian:` yields both "unknown field `domian`" (hint: `domain`) and "missing field
/// `domain`"; the first says it all.
fn drop_missing_explained_by_misspelling(diagnostics: &mut Vec<Diagnostic>) {
    let suggested: Vec<(String, String)> = diagnostics
        .iter()
        .filter_map(|d| {
            let hint = d
                .hint
                .as_deref()?
                .strip_prefix("did you mean `")?
                .strip_suffix("`?")?;
            let parent = d.pointer.rsplit_once('/').map(|(p, _)| p.to_owned())?;
            Some((parent, hint.to_owned()))
        })
        .collect();
    diagnostics.retain(|d| {
        let Some(name) = d
            .message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        else {
            return true;
        };
        !suggested
            .iter()
            .any(|(parent, hint)| parent == &d.pointer && hint == name)
    });
}

fn segments(location: &jsonschema::paths::Location) -> Vec<String> {
    location.iter().map(|segment| segment.to_string()).collect()
}

fn describe(
    file: &Path,
    node: &Node,
    schema: &Value,
    error: &jsonschema::ValidationError<'_>,
) -> Vec<Diagnostic> {
    let pointer = segments(error.instance_path());
    let here = node.locate(&pointer, false);
    let field = pointer.last().cloned().unwrap_or_else(|| "document".into());
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_properties(schema, &segments(error.schema_path()));
            unexpected
                .iter()
                .map(|name| unknown_field(file, node, &pointer, name, &allowed))
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let where_ = if pointer.is_empty() {
                "the document".to_owned()
            } else {
                format!("`{field}`")
            };
            vec![
                Diagnostic::at(file, here, format!("missing field `{name}` in {where_}"))
                    .pointer(&pointer)
                    .hint(format!(
                        "add `{name}:`; see the spec reference in README.md"
                    )),
            ]
        }
        ValidationErrorKind::Pattern { pattern } => vec![pattern_error(
            file,
            here,
            &pointer,
            &field,
            error.instance(),
            pattern,
        )],
        ValidationErrorKind::Enum { options } => {
            let choices = enum_choices(options);
            let found = scalar_text(error.instance());
            let mut diagnostic = Diagnostic::at(
                file,
                here,
                format!(
                    "`{field}` must be one of {}, not `{found}`",
                    choices.join(", ")
                ),
            )
            .pointer(&pointer);
            let plain: Vec<&str> = choices.iter().map(|c| c.trim_matches('`')).collect();
            if let Some(best) = closest(&found, plain.iter().copied()) {
                diagnostic = diagnostic.hint(format!("did you mean `{best}`?"));
            }
            vec![diagnostic]
        }
        ValidationErrorKind::Type { kind } => {
            let found = node_at(node, &pointer)
                .map(Node::type_name)
                .unwrap_or("something else");
            let expected = type_words(kind);
            let mut diagnostic = Diagnostic::at(
                file,
                here,
                format!("`{field}` must be {expected}, found {found}"),
            )
            .pointer(&pointer);
            if found == "a string" && expected.contains("boolean") {
                diagnostic = diagnostic.hint(
                    "booleans are `true` or `false` (YAML 1.1 `yes`/`no`/`on`/`off` are text here)",
                );
            }
            vec![diagnostic]
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            match most_specific_branch(context, &pointer) {
                Some(branch) => branch
                    .iter()
                    .flat_map(|e| describe(file, node, schema, e))
                    .collect(),
                None => vec![
                    Diagnostic::at(file, here, format!("`{field}`: {}", plain_message(error)))
                        .pointer(&pointer),
                ],
            }
        }
        _ => vec![
            Diagnostic::at(file, here, format!("`{field}`: {}", plain_message(error)))
                .pointer(&pointer),
        ],
    }
}

/// Of the alternatives of an `anyOf`, the one whose errors reach deepest into the value:
/// the alternative the author most likely meant.
fn most_specific_branch<'e>(
    context: &'e [Vec<jsonschema::ValidationError<'static>>],
    pointer: &[String],
) -> Option<&'e Vec<jsonschema::ValidationError<'static>>> {
    let depth = |branch: &Vec<jsonschema::ValidationError<'static>>| {
        branch
            .iter()
            .map(|e| e.instance_path().iter().count())
            .max()
            .unwrap_or(0)
    };
    context
        .iter()
        .filter(|branch| !branch.is_empty() && depth(branch) > pointer.len())
        .max_by_key(|branch| depth(branch))
}

fn unknown_field(
    file: &Path,
    node: &Node,
    parent: &[String],
    name: &str,
    allowed: &[String],
) -> Diagnostic {
    let mut path = parent.to_vec();
    path.push(name.to_owned());
    let position = node.locate(&path, true);
    let within = parent
        .last()
        .map(|p| format!(" in `{p}`"))
        .unwrap_or_default();
    let diagnostic =
        Diagnostic::at(file, position, format!("unknown field `{name}`{within}")).pointer(&path);
    match closest(name, allowed.iter().map(String::as_str)) {
        Some(best) => diagnostic.hint(format!("did you mean `{best}`?")),
        None if allowed.is_empty() => diagnostic,
        None => diagnostic.hint(format!("valid fields here: {}", allowed.join(", "))),
    }
}

/// Follows a schema path (as jsonschema reports it, `$ref` included) and lists the
/// `properties` of the object schema that holds the failing `additionalProperties`.
fn allowed_properties(root: &Value, schema_path: &[String]) -> Vec<String> {
    let mut current = root;
    let parent = &schema_path[..schema_path.len().saturating_sub(1)];
    for segment in parent {
        current = resolve_ref(root, current);
        current = match current {
            Value::Object(map) => match map.get(segment) {
                Some(next) => next,
                None => return Vec::new(),
            },
            Value::Array(items) => match segment.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(next) => next,
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        };
    }
    current = resolve_ref(root, current);
    current
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

fn resolve_ref<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) if reference.starts_with("#/") => {
            root.pointer(&reference[1..]).unwrap_or(schema)
        }
        _ => schema,
    }
}

fn pattern_error(
    file: &Path,
    position: super::yaml::Position,
    pointer: &[String],
    field: &str,
    instance: &Value,
    pattern: &str,
) -> Diagnostic {
    let found = scalar_text(instance);
    let rule = ALL_RULES.iter().find(|rule| rule.pattern == pattern);
    if field == "secret" {
        let reference = super::secret::SecretRef {
            secret: found.clone(),
        };
        if let Err(problem) = reference.source() {
            return Diagnostic::at(file, position, problem.to_string())
                .pointer(pointer)
                .hint(pattern_hint(field));
        }
    }
    match rule {
        Some(rule) => Diagnostic::at(
            file,
            position,
            format!("`{found}` is not a valid {}", rule.what),
        )
        .pointer(pointer)
        .hint(format!("use {}", rule.allowed)),
        None => Diagnostic::at(
            file,
            position,
            format!("`{field}` has an invalid value `{found}`"),
        )
        .pointer(pointer)
        .hint(pattern_hint(field)),
    }
}

fn pattern_hint(field: &str) -> String {
    match field {
        "secret" => "write `env:NAME` or `file:PATH`, for example `{secret: env:SHOP_DB_PASSWORD}`".into(),
        "hostKey" => "pin the fingerprint `ssh-keygen -lf` prints, for example `SHA256:Jz5Q…` (43 characters after `SHA256:`)".into(),
        "url" => "write `redis://HOST:PORT`".into(),
        _ => "see the spec reference in README.md".into(),
    }
}

fn enum_choices(options: &Value) -> Vec<String> {
    options
        .as_array()
        .map(|values| {
            values
                .iter()
                .map(|v| format!("`{}`", scalar_text(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn type_words(kind: &jsonschema::error::TypeKind) -> String {
    use jsonschema::error::TypeKind;
    let word = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "object" => "a mapping".to_owned(),
        "array" => "a list".to_owned(),
        "string" => "a string".to_owned(),
        "integer" => "a whole number".to_owned(),
        "number" => "a number".to_owned(),
        "boolean" => "a boolean".to_owned(),
        "null" => "null".to_owned(),
        other => other.to_owned(),
    };
    match kind {
        TypeKind::Single(t) => word(t),
        TypeKind::Multiple(types) => types
            .iter()
            .map(|t| word(&t))
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn node_at<'a>(node: &'a Node, pointer: &[String]) -> Option<&'a Node> {
    let mut current = node;
    for segment in pointer {
        current = match &current.value {
            super::yaml::NodeValue::Mapping(_) => current.get(segment)?,
            super::yaml::NodeValue::Sequence(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn plain_message(error: &jsonschema::ValidationError<'_>) -> String {
    match error.kind() {
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
        ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
            format!(
                "`{}` is not a valid value here",
                scalar_text(error.instance())
            )
        }
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_properties_follow_refs() {
        let path: Vec<String> = ["$defs", "SiteSpec", "additionalProperties"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let allowed = allowed_properties(site_schema(), &path);
        assert!(allowed.contains(&"domain".to_owned()), "{allowed:?}");
    }
}
