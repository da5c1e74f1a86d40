//! YAML parsing into a located tree: every node knows its line and column.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// A 1-based position in a source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    fn from_location(location: &serde_saphyr::Location) -> Self {
        Position {
            line: location.line() as u32,
            column: location.column() as u32,
        }
    }
}

/// A YAML node with the position it was written at.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub position: Position,
    pub value: NodeValue,
}

/// The value of a [`Node`]; mapping entries keep their order and the key's own position.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
    Sequence(Vec<Node>),
    Mapping(Vec<MappingEntry>),
}

/// One `key: value` pair of a mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct MappingEntry {
    pub key: String,
    pub key_position: Position,
    pub value: Node,
}

impl Node {
    /// Converts the tree into JSON for schema validation and typed deserialization.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Integer(i) => Value::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeValue::String(s) => Value::String(s.clone()),
            NodeValue::Sequence(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Mapping(entries) => Value::Object(
                entries
                    .iter()
                    .map(|entry| (entry.key.clone(), entry.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// The child of a mapping by key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|entry| &entry.value)
    }

    /// The entry of a mapping by key, with the key's position.
    pub fn entry(&self, key: &str) -> Option<&MappingEntry> {
        match &self.value {
            NodeValue::Mapping(entries) => entries.iter().find(|entry| entry.key == key),
            _ => None,
        }
    }

    /// The string value, when this node is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the node's type, as a user would say it.
    pub fn type_name(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Integer(_) | NodeValue::Float(_) => "a number",
            NodeValue::String(_) => "a string",
            NodeValue::Sequence(_) => "a list",
            NodeValue::Mapping(_) => "a mapping",
        }
    }

    /// Finds the node at a JSON pointer path (`/spec/crons/0/schedule`), and the position
    /// that best names it: a mapping key's own position when `key_position` is set.
    pub fn locate(&self, pointer: &[String], key_position: bool) -> Position {
        let mut node = self;
        let mut position = self.position;
        for (depth, segment) in pointer.iter().enumerate() {
            let last = depth + 1 == pointer.len();
            match &node.value {
                NodeValue::Mapping(entries) => {
                    let Some(entry) = entries.iter().find(|entry| &entry.key == segment) else {
                        return position;
                    };
                    position = if last && key_position {
                        entry.key_position
                    } else {
                        entry.value.position
                    };
                    node = &entry.value;
                }
                NodeValue::Sequence(items) => {
                    let Some(item) = segment.parse::<usize>().ok().and_then(|i| items.get(i))
                    else {
                        return position;
                    };
                    position = item.position;
                    node = item;
                }
                _ => return position,
            }
        }
        position
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeValue>::deserialize(deserializer)?;
        Ok(Node {
            position: Position::from_location(&spanned.referenced),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Integer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeValue, E> {
        i64::try_from(v)
            .map(NodeValue::Integer)
            .or(Ok(NodeValue::Float(v as f64)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeValue, E> {
        Ok(NodeValue::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<NodeValue, E> {
        Ok(NodeValue::String(v))
    }

    fn visit_bytes<E: de::Error>(self, _v: &[u8]) -> Result<NodeValue, E> {
        Err(E::custom("binary values are not supported in specs"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeValue::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Node>()?;
            entries.push(MappingEntry {
                key: key.value.0,
                key_position: Position::from_location(&key.referenced),
                value,
            });
        }
        Ok(NodeValue::Mapping(entries))
    }
}

/// A mapping key: specs only use scalar keys, read as text.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match NodeValue::deserialize(deserializer)? {
            NodeValue::String(s) => Ok(KeyText(s)),
            NodeValue::Integer(i) => Ok(KeyText(i.to_string())),
            NodeValue::Bool(b) => Ok(KeyText(b.to_string())),
            NodeValue::Float(f) => Ok(KeyText(f.to_string())),
            NodeValue::Null => Ok(KeyText("null".to_owned())),
            _ => Err(de::Error::custom(
                "mapping keys must be plain text, not lists or mappings",
            )),
        }
    }
}

/// How deep mappings and lists may nest in a spec.
pub const MAX_DEPTH: usize = 64;

/// Parser options: duplicate keys are errors, `yes`/`no` are not booleans, and aliases,
/// nesting and size are bounded so that a hostile file fails fast with little memory.
pub fn parser_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        strict_booleans: true,
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_documents: 1000,
            max_nodes: 250_000,
            max_aliases: 1000,
            max_anchors: 1000,
            max_total_scalar_bytes: 16 * 1024 * 1024,
        },
        alias_limits: alias_limits(),
    }
}

fn alias_limits() -> serde_saphyr::options::AliasLimits {
    let mut limits = serde_saphyr::options::AliasLimits::default();
    limits.max_total_replayed_events = 100_000;
    limits.max_replay_stack_depth = 16;
    limits.max_alias_expansions_per_anchor = 100;
    limits
}

/// Parses every document of a YAML text into located trees.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, serde_saphyr::Error> {
    serde_saphyr::from_str_multiple_with_options::<Node, Vec<Node>>(text, parser_options())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_where_keys_and_values_are() {
        let docs = parse_documents("a: 1\nb:\n  - x\n  - {c: d}\n---\ne: f\n").unwrap();
        assert_eq!(docs.len(), 2);
        let b = docs[0].entry("b").unwrap();
        assert_eq!(b.key_position, Position { line: 2, column: 1 });
        let pointer = ["b".to_owned(), "1".to_owned(), "c".to_owned()];
        assert_eq!(docs[0].locate(&pointer, false).line, 4);
        assert_eq!(docs[1].get("e").unwrap().as_str(), Some("f"));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let error = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert!(
            error.to_string().to_lowercase().contains("duplicate"),
            "{error}"
        );
    }

    #[test]
    fn yes_is_not_a_boolean() {
        let docs = parse_documents("a: yes\n").unwrap();
        assert_eq!(docs[0].get("a").unwrap().as_str(), Some("yes"));
    }
}
