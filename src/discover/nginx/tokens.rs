//! Tokenizing one file the way nginx does (`ngx_conf_read_token`): words, quotes, escapes,
//! comments, `;`, `{` and `}`, into a tree of directives.

use super::*;

/// Whitespace as nginx knows it.
pub(super) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// A directive of a file, with its block if it opens one.
pub(super) struct Node {
    pub(super) name: String,
    pub(super) args: Vec<String>,
    pub(super) at: Location,
    pub(super) block: Option<Vec<Node>>,
}

impl Node {
    /// Its name and arguments joined by spaces, as a context entry.
    pub(super) fn title(&self) -> String {
        let mut words = vec![self.name.as_str()];
        words.extend(self.args.iter().map(String::as_str));
        words.join(" ")
    }

    /// It as a directive within `context`.
    pub(super) fn directive(&self, context: &[String]) -> Directive {
        let (name, args, at) = (self.name.clone(), self.args.clone(), self.at.clone());
        let context = context.to_vec();
        Directive {
            name,
            args,
            at,
            context,
        }
    }
}

/// Parses one file into its directives.
pub(super) fn parse_file(file: &str, text: &str) -> Result<Vec<Node>, ParseError> {
    let chars = text.chars().peekable();
    Reader {
        file,
        chars,
        line: 1,
    }
    .block(None, 0)
}

/// Reads one file the way nginx does (`ngx_conf_read_token`, `ngx_conf_parse`).
pub(super) struct Reader<'a> {
    file: &'a str,
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl Reader<'_> {
    /// The directives up to the `}` closing the block `opened` (its name and line), or up to the
    /// end of the file at the top.
    pub(super) fn block(
        &mut self,
        opened: Option<(&str, usize)>,
        depth: usize,
    ) -> Result<Vec<Node>, ParseError> {
        let mut nodes = Vec::new();
        loop {
            let (mut args, line, end) = self.words()?;
            if args.is_empty() {
                return match end {
                    Some('}') if opened.is_some() => Ok(nodes),
                    None => self.end_of_file(opened).map(|()| nodes),
                    Some(c) => Err(self.unexpected(c)),
                };
            }
            let name = args.remove(0);
            let block = match end {
                Some(';') => None,
                Some('{') if depth < MAX_DEPTH => Some(self.block(Some((&name, line)), depth + 1)?),
                Some('{') => return Err(error(self.at(line), "blocks nested too deeply")),
                Some(c) => return Err(self.unexpected(c)),
                None => {
                    let message = format!("\"{name}\" has no \";\" before the end of the file");
                    return Err(error(self.at(line), message));
                }
            };
            let at = self.at(line);
            nodes.push(Node {
                name,
                args,
                at,
                block,
            });
        }
    }

    /// A line of this file.
    pub(super) fn at(&self, line: usize) -> Location {
        let file = self.file.to_string();
        Location { file, line }
    }

    /// The error of a `;`, `{` or `}` out of place, on the current line.
    pub(super) fn unexpected(&self, c: char) -> ParseError {
        error(self.at(self.line), format!("unexpected \"{c}\""))
    }

    /// The error, if any, of a file that ends with a block still open.
    pub(super) fn end_of_file(&self, opened: Option<(&str, usize)>) -> Result<(), ParseError> {
        let Some((name, line)) = opened else {
            return Ok(());
        };
        let message = format!("the \"{name}\" block is never closed (unbalanced braces)");
        Err(error(self.at(line), message))
    }

    /// The words of a directive, the line of its first, and what ends them: `;`, `{`, `}`, or
    /// the end of the file (`None`).
    pub(super) fn words(&mut self) -> Result<(Vec<String>, usize, Option<char>), ParseError> {
        let (mut words, mut line) = (Vec::new(), self.line);
        loop {
            self.skip_blanks();
            if words.is_empty() {
                line = self.line;
            }
            let word = match self.chars.peek().copied() {
                Some(quote @ ('"' | '\'')) => self.quoted(quote)?,
                Some(c) if !matches!(c, ';' | '{' | '}') => self.bare(),
                end => {
                    self.bump();
                    return Ok((words, line, end));
                }
            };
            words.push(word);
        }
    }

    /// The next character, counting lines.
    pub(super) fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Moves the next character into `raw`.
    pub(super) fn take(&mut self, raw: &mut String) {
        if let Some(c) = self.bump() {
            raw.push(c);
        }
    }

    /// Skips whitespace and comments; `#` starts a comment only where a word could start.
    pub(super) fn skip_blanks(&mut self) {
        while let Some(&c) = self.chars.peek() {
            if c == '#' {
                while self.chars.peek().is_some_and(|&c| c != '\n') {
                    self.bump();
                }
            } else if is_space(c) {
                self.bump();
            } else {
                break;
            }
        }
    }

    /// An unquoted word: up to whitespace, `;` or `{`, except a `{` right after `$` (`${name}`);
    /// `}` does not end it, and a backslash keeps the next character in it.
    pub(super) fn bare(&mut self) -> String {
        let mut raw = String::new();
        let mut variable = false;
        while let Some(&c) = self.chars.peek() {
            let in_variable = c == '{' && variable;
            if !in_variable && (is_space(c) || c == ';' || c == '{') {
                break;
            }
            variable = c == '$' || in_variable;
            self.take(&mut raw);
            if c == '\\' {
                self.take(&mut raw);
            }
        }
        unescape(&raw)
    }

    /// A quoted word, up to the same unescaped quote, which whitespace, `;`, `{` or `)` must follow.
    pub(super) fn quoted(&mut self, quote: char) -> Result<String, ParseError> {
        let line = self.line;
        self.bump();
        let mut raw = String::new();
        loop {
            match self.bump() {
                None => {
                    let message = format!("unterminated quoted string (opened with {quote})");
                    return Err(error(self.at(line), message));
                }
                Some(c) if c == quote => break,
                Some(c) => {
                    raw.push(c);
                    if c == '\\' {
                        self.take(&mut raw);
                    }
                }
            }
        }
        match self.chars.peek() {
            Some(&c) if !(is_space(c) || matches!(c, ';' | '{' | ')')) => {
                let message = format!("unexpected \"{c}\" after a quoted string");
                Err(error(self.at(self.line), message))
            }
            _ => Ok(unescape(&raw)),
        }
    }
}

/// Resolves the escapes nginx resolves in every word, quoted or not: `\"`, `\'`, `\\`, `\t`,
/// `\r`, `\n`; any other backslash stays (`\.php$`).
pub(super) fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        let escaped = match (c, chars.peek()) {
            ('\\', Some(&e @ ('"' | '\'' | '\\'))) => e,
            ('\\', Some('t')) => '\t',
            ('\\', Some('r')) => '\r',
            ('\\', Some('n')) => '\n',
            _ => {
                out.push(c);
                continue;
            }
        };
        chars.next();
        out.push(escaped);
    }
    out
}
