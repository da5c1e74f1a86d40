//! Walking the files from the main one, expanding `include` against the dumped files (glob(3)
//! patterns, component by component).

use super::tokens::Node;
use super::*;

/// Where the walk is: nginx's main context or `http`.
#[derive(Clone, Copy)]
pub(super) enum Scope {
    Main,
    Http,
}

/// Walks the parsed files from the main one, expanding includes.
pub(super) struct Walker<'a> {
    pub(super) trees: &'a BTreeMap<&'a str, Vec<Node>>,
    pub(super) prefix: String,
    pub(super) including: Vec<&'a str>,
    pub(super) servers: Vec<ServerBlock>,
}

impl<'a> Walker<'a> {
    /// Walks main or `http` directives: into `http`, through includes, reading each `server`.
    pub(super) fn walk(&mut self, nodes: &'a [Node], scope: Scope) -> Result<(), ParseError> {
        for node in nodes {
            match (node.name.as_str(), &node.block, scope) {
                ("include", None, _) => {
                    self.include(node, |walker, nodes| walker.walk(nodes, scope))?;
                }
                ("http", Some(block), Scope::Main) => self.walk(block, Scope::Http)?,
                ("server", Some(block), Scope::Http) => {
                    let mut directives = Vec::new();
                    self.collect(block, &mut Vec::new(), &mut directives)?;
                    self.servers
                        .push(ServerBlock::new(node.at.clone(), directives)?);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Lists the directives of a block and of the blocks and files within, in order.
    pub(super) fn collect(
        &mut self,
        nodes: &'a [Node],
        context: &mut Vec<String>,
        out: &mut Vec<Directive>,
    ) -> Result<(), ParseError> {
        for node in nodes {
            out.push(node.directive(context));
            match &node.block {
                Some(block) => {
                    context.push(node.title());
                    self.collect(block, context, out)?;
                    context.pop();
                }
                None if node.name == "include" => {
                    self.include(node, |walker, nodes| walker.collect(nodes, context, out))?;
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Expands an include: walks each dumped file its pattern matches, in sorted order.
    pub(super) fn include<F>(&mut self, node: &Node, mut walk: F) -> Result<(), ParseError>
    where
        F: FnMut(&mut Self, &'a [Node]) -> Result<(), ParseError>,
    {
        let [pattern] = node.args.as_slice() else {
            return Err(error(node.at.clone(), "include takes one file or pattern"));
        };
        let pattern = resolve(&self.prefix, pattern);
        let trees = self.trees;
        for (&file, nodes) in trees
            .iter()
            .filter(|(file, _)| path_matches(&pattern, file))
        {
            if self.including.contains(&file) {
                let chain = self.including.join(" -> ");
                let message = format!("include cycle: {chain} -> {file}");
                return Err(error(node.at.clone(), message));
            }
            self.including.push(file);
            walk(self, nodes)?;
            self.including.pop();
        }
        Ok(())
    }
}

/// An include pattern as an absolute one: relative ones are relative to the main file's directory.
pub(super) fn resolve(prefix: &str, pattern: &str) -> String {
    if pattern.starts_with('/') {
        pattern.to_string()
    } else {
        format!("{prefix}{pattern}")
    }
}

/// Whether a path matches a glob(3) pattern, component by component.
pub(super) fn path_matches(pattern: &str, path: &str) -> bool {
    let patterns = components(pattern);
    let names = components(path);
    patterns.len() == names.len()
        && patterns
            .iter()
            .zip(&names)
            .all(|(pattern, name)| component_matches(pattern, name))
}

/// A path's components, without empty and `.` ones.
pub(super) fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect()
}

/// Whether a file name matches a glob component; a leading dot must be matched by a dot.
pub(super) fn component_matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    glob(&pattern, &name)
}

/// Matches `*`, `?`, `[...]` (with `!` or `^`, and ranges) and `\` escapes.
pub(super) fn glob(pattern: &[char], name: &[char]) -> bool {
    let Some((&first, rest)) = pattern.split_first() else {
        return name.is_empty();
    };
    if first == '*' {
        return (0..=name.len()).any(|skip| glob(rest, &name[skip..]));
    }
    let Some((&c, name_rest)) = name.split_first() else {
        return false;
    };
    match (first, rest) {
        ('?', _) => glob(rest, name_rest),
        ('[', _) => match class(rest, c) {
            Some((matched, after)) => matched && glob(after, name_rest),
            None => c == '[' && glob(rest, name_rest),
        },
        ('\\', [escaped, after @ ..]) => c == *escaped && glob(after, name_rest),
        _ => c == first && glob(rest, name_rest),
    }
}

/// Whether `c` is in the class that `pattern` starts with (after its `[`), and what follows the
/// class; `None` if it is never closed.
pub(super) fn class(pattern: &[char], c: char) -> Option<(bool, &[char])> {
    let negated = matches!(pattern.first(), Some('!' | '^'));
    let start = usize::from(negated);
    let mut found = false;
    let mut i = start;
    while i < pattern.len() && (pattern[i] != ']' || i == start) {
        if i + 2 < pattern.len() && pattern[i + 1] == '-' && pattern[i + 2] != ']' {
            found |= (pattern[i]..=pattern[i + 2]).contains(&c);
            i += 3;
        } else {
            found |= pattern[i] == c;
            i += 1;
        }
    }
    (i < pattern.len()).then(|| (found != negated, &pattern[i + 1..]))
}
