//! A small ordered YAML writer for the specs discovery writes: fields in the spec's own order,
//! defaults left out, every scalar plain where YAML reads it back as the same string.

/// A YAML node.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Str(String),
    Int(u64),
    Bool(bool),
}

impl Node {
    /// An empty mapping to push fields into.
    pub fn map() -> Self {
        Node::Map(Vec::new())
    }

    /// Adds a field (maps only).
    pub fn with(mut self, key: &str, value: Node) -> Self {
        if let Node::Map(fields) = &mut self {
            fields.push((key.to_owned(), value));
        }
        self
    }

    /// Adds a field when there is a value.
    pub fn with_some(self, key: &str, value: Option<Node>) -> Self {
        match value {
            Some(value) => self.with(key, value),
            None => self,
        }
    }

    /// A string node.
    pub fn str(text: impl Into<String>) -> Self {
        Node::Str(text.into())
    }

    /// A sequence of strings.
    pub fn strs<'a>(items: impl IntoIterator<Item = &'a String>) -> Self {
        Node::Seq(items.into_iter().map(|s| Node::str(s.as_str())).collect())
    }
}

/// The document's text: `key: value` lines, two spaces a level.
pub fn render(node: &Node) -> String {
    let mut out = String::new();
    write_block(node, 0, &mut out);
    out
}

fn write_block(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Map(fields) => {
            for (key, value) in fields {
                out.push_str(&format!("{pad}{}:", scalar(key)));
                write_value(value, indent, out);
            }
        }
        Node::Seq(items) => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                match item {
                    Node::Map(fields) if !fields.is_empty() => {
                        let mut inner = String::new();
                        write_block(item, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(inner.trim_start());
                    }
                    _ => write_value(item, indent, out),
                }
            }
        }
        _ => {
            out.push_str(&pad);
            out.push_str(&inline(node));
            out.push('\n');
        }
    }
}

fn write_value(value: &Node, indent: usize, out: &mut String) {
    match value {
        Node::Map(fields) if fields.is_empty() => out.push_str(" {}\n"),
        Node::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        Node::Map(fields) if is_secret_ref(fields) => {
            out.push_str(&format!(" {{secret: {}}}\n", inline(&fields[0].1)));
        }
        Node::Map(_) => {
            out.push('\n');
            write_block(value, indent + 2, out);
        }
        Node::Seq(items) if items.iter().all(is_short_scalar) => {
            let parts: Vec<String> = items.iter().map(inline).collect();
            out.push_str(&format!(" [{}]\n", parts.join(", ")));
        }
        Node::Seq(_) => {
            out.push('\n');
            write_block(value, indent + 2, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&inline(value));
            out.push('\n');
        }
    }
}

fn is_secret_ref(fields: &[(String, Node)]) -> bool {
    matches!(fields, [(key, Node::Str(_))] if key == "secret")
}

fn is_short_scalar(node: &Node) -> bool {
    match node {
        Node::Str(text) => text.len() <= 40 && !text.contains('\n'),
        Node::Int(_) | Node::Bool(_) => true,
        _ => false,
    }
}

fn inline(node: &Node) -> String {
    match node {
        Node::Str(text) => scalar(text),
        Node::Int(number) => number.to_string(),
        Node::Bool(value) => value.to_string(),
        Node::Map(_) | Node::Seq(_) => String::new(),
    }
}

/// A string as a YAML scalar: plain when YAML reads it back as this string, else in double
/// quotes with JSON's escapes (a subset of YAML's).
pub fn scalar(text: &str) -> String {
    if is_plain_safe(text) {
        text.to_owned()
    } else {
        serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
    }
}

fn is_plain_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/_.-@+=~$(){}".contains(c);
    let inner_ok = text
        .chars()
        .all(|c| allowed(c) || c == ' ' || c == ':' || c == ',');
    inner_ok
        && (first.is_ascii_alphanumeric() || "/_.$".contains(first))
        && !text.ends_with(' ')
        && !text.ends_with(':')
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.contains(',')
        && !looks_special(text)
}

/// Words and numbers YAML 1.1 or 1.2 would read as something else than a string.
fn looks_special(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~",
    ];
    let lower = text.to_ascii_lowercase();
    WORDS.contains(&lower.as_str())
        || lower.parse::<f64>().is_ok()
        || lower.starts_with("0x")
        || lower.starts_with("0o")
        || lower.starts_with(".inf")
        || lower.starts_with(".nan")
        || text
            .chars()
            .all(|c| c.is_ascii_digit() || c == '_' || c == ':' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_that_yaml_would_read_otherwise_are_quoted() {
        assert_eq!(scalar("shop.example.com"), "shop.example.com");
        assert_eq!(
            scalar("php artisan schedule:run"),
            "php artisan schedule:run"
        );
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("6379"), "\"6379\"");
        assert_eq!(scalar("8.2"), "\"8.2\"");
        assert_eq!(scalar("null"), "\"null\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("* * * * *"), "\"* * * * *\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(
            scalar("Siteward \"Test\" App"),
            "\"Siteward \\\"Test\\\" App\""
        );
        assert_eq!(scalar("line\nbreak"), "\"line\\nbreak\"");
        assert_eq!(scalar("12:30"), "\"12:30\"");
        assert_eq!(scalar("#x"), "\"#x\"");
    }

    #[test]
    fn nested_maps_sequences_and_secret_references_render_in_order() {
        let node = Node::map()
            .with("b", Node::str("first"))
            .with("a", Node::map().with("secret", Node::str("env:A_KEY")))
            .with("list", Node::strs(&["x".to_owned(), "y z".to_owned()]))
            .with(
                "jobs",
                Node::Seq(vec![
                    Node::map()
                        .with("name", Node::str("q"))
                        .with("count", Node::Int(2)),
                ]),
            )
            .with("empty", Node::Seq(vec![]));
        assert_eq!(
            render(&node),
            "b: first\na: {secret: env:A_KEY}\nlist: [x, y z]\njobs:\n  - name: q\n    count: 2\nempty: []\n"
        );
    }
}
