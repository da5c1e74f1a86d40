//! Reading nginx's configuration as `nginx -T` prints it: server blocks with where each directive came from.
//!
//! `nginx -T` prints every file it loaded after a `# configuration file PATH:` line, includes not
//! expanded. Each file is tokenized the way nginx does (`ngx_conf_read_token`), the includes of the
//! main context, of `http` and of `server` blocks are expanded against the dumped files, and each
//! `server` block of `http` is described.

use std::collections::BTreeMap;
use std::fmt;

/// The line that introduces each file in the dump.
const HEADER: &str = "# configuration file ";

/// Blocks nested deeper than this are refused rather than overflow the stack.
const MAX_DEPTH: usize = 100;

/// Server-level directives a block that only redirects may hold, besides `ssl*` and its blocks.
const REDIRECT_ONLY: [&str; 8] = [
    "listen",
    "server_name",
    "return",
    "include",
    "http2",
    "server_tokens",
    "access_log",
    "error_log",
];

/// A place in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file's path as the dump names it.
    pub file: String,
    /// The 1-based line within that file.
    pub line: usize,
}

/// One directive as written: name, arguments (quotes removed, escapes resolved), where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The directive's name, e.g. `fastcgi_pass` or `location`.
    pub name: String,
    /// Its arguments, unquoted and unescaped as nginx reads them.
    pub args: Vec<String>,
    /// Where its name is written.
    pub at: Location,
    /// The enclosing blocks inside the server block, each its name and arguments joined by spaces:
    /// `[]` at server level, `["location ~ \\.php$"]` inside that location.
    pub context: Vec<String>,
}

/// One `listen` directive of a server block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listen {
    /// The port: 80 when only an address is given, 0 for a UNIX socket.
    pub port: u16,
    /// Whether it has the `ssl` flag.
    pub ssl: bool,
    /// Whether it has the `default_server` flag (or its old spelling `default`).
    pub default_server: bool,
    /// The address as written (`[::]`, `127.0.0.1`, `unix:/path`); `None` for all addresses
    /// (no address, or `*`).
    pub address: Option<String>,
}

/// A `server` block of `http`, with what a site spec needs read out of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBlock {
    /// Where `server {` is.
    pub at: Location,
    /// Its `listen` directives; without any, port 80.
    pub listen: Vec<Listen>,
    /// The `server_name` arguments in order (`_` and regex names kept as written).
    pub names: Vec<String>,
    /// The server-level `root`.
    pub root: Option<(String, Location)>,
    /// Every `fastcgi_pass` value anywhere inside, e.g. `unix:/var/run/php/php8.2-fpm.sock`.
    pub fastcgi_pass: Vec<(String, Location)>,
    /// The first server-level `ssl_certificate`.
    pub ssl_certificate: Option<(String, Location)>,
    /// The first server-level `ssl_certificate_key`.
    pub ssl_certificate_key: Option<(String, Location)>,
    /// The code and URL of a server-level `return 301|302|303|307|308 URL` (or `return URL`, a
    /// 302), else of one in `location /`, else, in a block that only redirects (as certbot writes
    /// them), of one in a server-level `if`.
    pub redirect: Option<(u16, String, Location)>,
    /// Every directive inside the block, flattened, in order: the openers of nested blocks and
    /// `include`s are listed, each followed by the directives within.
    pub directives: Vec<Directive>,
}

/// The dumped files and the server blocks of `http`, in the order nginx reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NginxConfig {
    /// The dumped files' paths, the main file first.
    pub files: Vec<String>,
    /// The server blocks of `http`, includes expanded.
    pub servers: Vec<ServerBlock>,
}

/// Why the dump could not be read, and where.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The file and line at fault.
    pub at: Location,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.at.file, self.at.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// An error at a place.
fn error(at: Location, message: impl Into<String>) -> ParseError {
    let message = message.into();
    ParseError { at, message }
}

/// Reads the standard output of `nginx -T`.
///
/// # Errors
///
/// When the text holds no file, a file does not parse (unbalanced braces, an unterminated quote, a
/// directive without `;` at its end), an include has no single pattern or includes itself, or a
/// `listen` address cannot be read.
pub fn parse(dump: &str) -> Result<NginxConfig, ParseError> {
    let sources = split_dump(dump);
    let Some((main, _)) = sources.first() else {
        let message = "no \"# configuration file\" line: this is not the output of nginx -T";
        let at = Location {
            file: "nginx -T".into(),
            line: 1,
        };
        return Err(error(at, message));
    };
    let mut trees = BTreeMap::new();
    for (file, text) in &sources {
        let nodes = parse_file(file, text)?;
        trees.entry(file.as_str()).or_insert(nodes);
    }
    let mut walker = Walker {
        trees: &trees,
        prefix: directory(main),
        including: vec![main.as_str()],
        servers: Vec::new(),
    };
    if let Some(nodes) = trees.get(main.as_str()) {
        walker.walk(nodes, Scope::Main)?;
    }
    let files = sources.iter().map(|(file, _)| file.clone()).collect();
    Ok(NginxConfig {
        files,
        servers: walker.servers,
    })
}

/// The dumped files, each its path and text; lines before the first header are not nginx's.
fn split_dump(dump: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in dump.split('\n') {
        if let Some(path) = header_path(line) {
            files.push((path.to_string(), String::new()));
        } else if let Some((_, text)) = files.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    files
}

/// The path of a `# configuration file PATH:` line.
fn header_path(line: &str) -> Option<&str> {
    line.trim_end_matches('\r')
        .strip_prefix(HEADER)?
        .strip_suffix(':')
}

/// The directory of a path, with its trailing slash.
fn directory(path: &str) -> String {
    path.rfind('/')
        .map_or_else(String::new, |end| path[..=end].to_string())
}

/// Whitespace as nginx knows it.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// A directive of a file, with its block if it opens one.
struct Node {
    name: String,
    args: Vec<String>,
    at: Location,
    block: Option<Vec<Node>>,
}

impl Node {
    /// Its name and arguments joined by spaces, as a context entry.
    fn title(&self) -> String {
        let mut words = vec![self.name.as_str()];
        words.extend(self.args.iter().map(String::as_str));
        words.join(" ")
    }

    /// It as a directive within `context`.
    fn directive(&self, context: &[String]) -> Directive {
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
fn parse_file(file: &str, text: &str) -> Result<Vec<Node>, ParseError> {
    let chars = text.chars().peekable();
    Reader {
        file,
        chars,
        line: 1,
    }
    .block(None, 0)
}

/// Reads one file the way nginx does (`ngx_conf_read_token`, `ngx_conf_parse`).
struct Reader<'a> {
    file: &'a str,
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl Reader<'_> {
    /// The directives up to the `}` closing the block `opened` (its name and line), or up to the
    /// end of the file at the top.
    fn block(
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
    fn at(&self, line: usize) -> Location {
        let file = self.file.to_string();
        Location { file, line }
    }

    /// The error of a `;`, `{` or `}` out of place, on the current line.
    fn unexpected(&self, c: char) -> ParseError {
        error(self.at(self.line), format!("unexpected \"{c}\""))
    }

    /// The error, if any, of a file that ends with a block still open.
    fn end_of_file(&self, opened: Option<(&str, usize)>) -> Result<(), ParseError> {
        let Some((name, line)) = opened else {
            return Ok(());
        };
        let message = format!("the \"{name}\" block is never closed (unbalanced braces)");
        Err(error(self.at(line), message))
    }

    /// The words of a directive, the line of its first, and what ends them: `;`, `{`, `}`, or
    /// the end of the file (`None`).
    fn words(&mut self) -> Result<(Vec<String>, usize, Option<char>), ParseError> {
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
    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Moves the next character into `raw`.
    fn take(&mut self, raw: &mut String) {
        if let Some(c) = self.bump() {
            raw.push(c);
        }
    }

    /// Skips whitespace and comments; `#` starts a comment only where a word could start.
    fn skip_blanks(&mut self) {
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
    fn bare(&mut self) -> String {
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
    fn quoted(&mut self, quote: char) -> Result<String, ParseError> {
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
fn unescape(raw: &str) -> String {
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

/// Where the walk is: nginx's main context or `http`.
#[derive(Clone, Copy)]
enum Scope {
    Main,
    Http,
}

/// Walks the parsed files from the main one, expanding includes.
struct Walker<'a> {
    trees: &'a BTreeMap<&'a str, Vec<Node>>,
    prefix: String,
    including: Vec<&'a str>,
    servers: Vec<ServerBlock>,
}

impl<'a> Walker<'a> {
    /// Walks main or `http` directives: into `http`, through includes, reading each `server`.
    fn walk(&mut self, nodes: &'a [Node], scope: Scope) -> Result<(), ParseError> {
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
    fn collect(
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
    fn include<F>(&mut self, node: &Node, mut walk: F) -> Result<(), ParseError>
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
fn resolve(prefix: &str, pattern: &str) -> String {
    if pattern.starts_with('/') {
        pattern.to_string()
    } else {
        format!("{prefix}{pattern}")
    }
}

/// Whether a path matches a glob(3) pattern, component by component.
fn path_matches(pattern: &str, path: &str) -> bool {
    let patterns = components(pattern);
    let names = components(path);
    patterns.len() == names.len()
        && patterns
            .iter()
            .zip(&names)
            .all(|(pattern, name)| component_matches(pattern, name))
}

/// A path's components, without empty and `.` ones.
fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect()
}

/// Whether a file name matches a glob component; a leading dot must be matched by a dot.
fn component_matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    glob(&pattern, &name)
}

/// Matches `*`, `?`, `[...]` (with `!` or `^`, and ranges) and `\` escapes.
fn glob(pattern: &[char], name: &[char]) -> bool {
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
fn class(pattern: &[char], c: char) -> Option<(bool, &[char])> {
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

impl ServerBlock {
    /// Reads what a spec needs out of a server block's directives.
    fn new(at: Location, directives: Vec<Directive>) -> Result<Self, ParseError> {
        let mut listen = server_level(&directives, "listen")
            .map(listen)
            .collect::<Result<Vec<_>, _>>()?;
        if listen.is_empty() {
            listen.push(Listen {
                port: 80,
                ..Listen::default()
            });
        }
        let names = server_level(&directives, "server_name")
            .flat_map(|directive| directive.args.iter().cloned())
            .collect();
        let fastcgi_pass = directives
            .iter()
            .filter(|directive| directive.name == "fastcgi_pass")
            .filter_map(value)
            .collect();
        Ok(ServerBlock {
            at,
            listen,
            names,
            root: first_value(&directives, "root"),
            fastcgi_pass,
            ssl_certificate: first_value(&directives, "ssl_certificate"),
            ssl_certificate_key: first_value(&directives, "ssl_certificate_key"),
            redirect: redirect(&directives),
            directives,
        })
    }

    /// Whether this block only redirects (its directives are `listen`/`server_name`/`return`
    /// and perhaps an include of files that hold only such, or a `location /` with only a return):
    /// the `:80 → 301` twin of an HTTPS site. TLS (`ssl*`, `http2`) and logging settings, and
    /// server-level `if` blocks holding only a return (certbot's twins), are allowed too.
    pub fn is_redirect_only(&self) -> bool {
        self.redirect.is_some() && only_redirects(&self.directives)
    }

    /// Whether it serves HTTPS: any listen with `ssl` or on port 443, or `ssl on`.
    pub fn serves_https(&self) -> bool {
        self.listen
            .iter()
            .any(|listen| listen.ssl || listen.port == 443)
            || server_level(&self.directives, "ssl").any(|directive| directive.args == ["on"])
    }
}

/// The server-level directives of a name.
fn server_level<'d>(
    directives: &'d [Directive],
    name: &'d str,
) -> impl Iterator<Item = &'d Directive> {
    directives
        .iter()
        .filter(move |directive| directive.context.is_empty() && directive.name == name)
}

/// A directive's first argument and place.
fn value(directive: &Directive) -> Option<(String, Location)> {
    Some((directive.args.first()?.clone(), directive.at.clone()))
}

/// The first argument and place of the first server-level directive of a name.
fn first_value(directives: &[Directive], name: &str) -> Option<(String, Location)> {
    server_level(directives, name).find_map(value)
}

/// Reads a `listen` directive: an address, a port or both, then flags.
fn listen(directive: &Directive) -> Result<Listen, ParseError> {
    let first = directive.args.first().map_or("", String::as_str);
    let message = format!("unreadable listen address \"{first}\"");
    let unreadable = || error(directive.at.clone(), message);
    let (address, port) = address_and_port(first).ok_or_else(unreadable)?;
    let has = |flag: &str| directive.args.iter().skip(1).any(|arg| arg == flag);
    Ok(Listen {
        port,
        ssl: has("ssl"),
        default_server: has("default_server") || has("default"),
        address,
    })
}

/// `80`, `*:80`, `127.0.0.1:8080`, `[::]:443`, `[::1]`, `localhost` or `unix:/path` (port 0).
fn address_and_port(text: &str) -> Option<(Option<String>, u16)> {
    if text.starts_with("unix:") {
        return Some((Some(text.to_string()), 0));
    }
    let (host, port) = split_host_port(text)?;
    let port = port.map_or(Ok(80), str::parse).ok()?;
    let host = host.filter(|host| *host != "*").map(str::to_string);
    Some((host, port))
}

/// A listen address's host and port, either perhaps absent.
fn split_host_port(text: &str) -> Option<(Option<&str>, Option<&str>)> {
    if text.starts_with('[') {
        let (host, rest) = text.split_at(text.find(']')? + 1);
        let port = if rest.is_empty() {
            None
        } else {
            Some(rest.strip_prefix(':')?)
        };
        return Some((Some(host), port));
    }
    Some(match text.rsplit_once(':') {
        Some((host, port)) => (Some(host), Some(port)),
        None if text.bytes().all(|b| b.is_ascii_digit()) => (None, Some(text)),
        None => (Some(text), None),
    })
}

/// A server's redirect: the first server-level one, else the first in `location /`, else (in a
/// block that only redirects) the first in a server-level `if`.
fn redirect(directives: &[Directive]) -> Option<(u16, String, Location)> {
    let conditional = only_redirects(directives);
    let rank = |directive: &Directive| match directive.context.as_slice() {
        [] => Some(0),
        [block] if block == "location /" => Some(1),
        _ if conditional && under_if(directive) => Some(2),
        _ => None,
    };
    directives
        .iter()
        .filter_map(|directive| Some((rank(directive)?, redirect_of(directive)?)))
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, redirect)| redirect)
}

/// Whether a directive is directly inside a server-level `if` block.
fn under_if(directive: &Directive) -> bool {
    matches!(directive.context.as_slice(), [block] if block.starts_with("if "))
}

/// The code, URL and place of a `return` that redirects: `return 301|302|303|307|308 URL`, or
/// `return URL` (a 302).
fn redirect_of(directive: &Directive) -> Option<(u16, String, Location)> {
    if directive.name != "return" {
        return None;
    }
    let (code, url) = match directive.args.as_slice() {
        [code, url] => {
            let code = code.parse().ok()?;
            (matches!(code, 301..=303 | 307 | 308).then_some(code)?, url)
        }
        [url]
            if ["http://", "https://", "$scheme"]
                .iter()
                .any(|scheme| url.starts_with(scheme)) =>
        {
            (302, url)
        }
        _ => return None,
    };
    Some((code, url.clone(), directive.at.clone()))
}

/// Whether every directive is one a block that only redirects may hold.
fn only_redirects(directives: &[Directive]) -> bool {
    directives
        .iter()
        .all(|directive| match directive.context.as_slice() {
            [] => {
                REDIRECT_ONLY.contains(&directive.name.as_str())
                    || directive.name.starts_with("ssl")
                    || directive.name == "if"
                    || (directive.name == "location" && directive.args == ["/"])
            }
            [_] => {
                directive.name == "return"
                    && (under_if(directive) || directive.context == ["location /"])
            }
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The output of `nginx -T`, as nginx writes it: each file after its header and a newline.
    fn dump(files: &[(&str, &str)]) -> String {
        files
            .iter()
            .map(|(path, text)| format!("# configuration file {path}:\n{text}\n"))
            .collect()
    }

    fn at(file: &str, line: usize) -> Location {
        Location {
            file: file.to_string(),
            line,
        }
    }

    fn listen(port: u16, ssl: bool, address: Option<&str>) -> Listen {
        Listen {
            port,
            ssl,
            default_server: false,
            address: address.map(str::to_string),
        }
    }

    /// The first directive of a name in a server block.
    fn find<'s>(server: &'s ServerBlock, name: &str) -> &'s Directive {
        server
            .directives
            .iter()
            .find(|directive| directive.name == name)
            .unwrap_or_else(|| panic!("no {name} in {:#?}", server.directives))
    }

    /// A dump of one main file holding `http { SERVERS }`.
    fn http(servers: &str) -> String {
        dump(&[("/etc/nginx/nginx.conf", &format!("http {{\n{servers}\n}}"))])
    }

    fn parse_error(dump: &str) -> ParseError {
        parse(dump).expect_err("the dump should not parse")
    }

    const DEBIAN_NGINX_CONF: &str = "user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log;
include /etc/nginx/modules-enabled/*.conf;

events {
\tworker_connections 768;
\t# multi_accept on;
}

http {

\t##
\t# Basic Settings
\t##

\tsendfile on;
\ttcp_nopush on;
\ttypes_hash_max_size 2048;
\t# server_tokens off;

\tinclude /etc/nginx/mime.types;
\tdefault_type application/octet-stream;

\tssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3; # Dropping SSLv3, ref: POODLE
\tssl_prefer_server_ciphers on;

\taccess_log /var/log/nginx/access.log;
\tgzip on;

\t##
\t# Virtual Host Configs
\t##

\tinclude /etc/nginx/conf.d/*.conf;
\tinclude /etc/nginx/sites-enabled/*;
}


#mail {
#\t# auth_http localhost/auth.php;
#\t# pop3_capabilities \"TOP\" \"USER\";
#
#\tserver {
#\t\tlisten     localhost:110;
#\t\tprotocol   pop3;
#\t}
#}
";

    const MODULES: &str = "load_module modules/ngx_stream_module.so;";

    const MIME_TYPES: &str = "
types {
    text/html                                        html htm shtml;
    text/css                                         css;
    application/javascript                           js;
}
";

    const FASTCGI_PARAMS: &str = "
fastcgi_param  QUERY_STRING       $query_string;
fastcgi_param  REQUEST_METHOD     $request_method;
fastcgi_param  SCRIPT_FILENAME    $document_root$fastcgi_script_name;
fastcgi_param  REDIRECT_STATUS    200;";

    const FORGE_UPLOADS: &str = "client_max_body_size 100M;";

    const FORGE_VHOST: &str = "# FORGE CONFIG (DO NOT REMOVE!)
include forge-conf/example.com/before/*;

server {
    listen 443 ssl http2;
    listen [::]:443 ssl http2;
    server_name example.com www.example.com;
    server_tokens off;
    root /home/forge/example.com/public;

    # FORGE SSL (DO NOT REMOVE!)
    ssl_certificate /etc/nginx/ssl/example.com/123/server.crt;
    ssl_certificate_key /etc/nginx/ssl/example.com/123/server.key;

    ssl_protocols TLSv1.2 TLSv1.3;
    add_header X-Frame-Options \"SAMEORIGIN\";
    index index.html index.htm index.php;
    charset utf-8;

    # FORGE CONFIG (DO NOT REMOVE!)
    include forge-conf/example.com/server/*;

    location / {
        try_files $uri $uri/ /index.php?$query_string;
    }

    location = /favicon.ico { access_log off; log_not_found off; }
    error_page 404 /index.php;

    location ~ \\.php$ {
        fastcgi_split_path_info ^(.+\\.php)(/.+)$;
        fastcgi_pass unix:/var/run/php/php8.2-fpm.sock;
        fastcgi_index index.php;
        include fastcgi_params;
    }

    location ~ /\\.(?!well-known).* {
        deny all;
    }
}

# FORGE CONFIG (DO NOT REMOVE!)
include forge-conf/example.com/after/*;
";

    const FORGE_BEFORE: &str = "# Redirect every request to HTTPS...
server {
    listen 80;
    listen [::]:80;

    server_name example.com;
    return 301 https://$host$request_uri;
}
";

    const FORGE_SERVER: &str = "location /healthz {
    access_log off;
    return 200 \"ok\";
}";

    const FORGE_AFTER: &str = "server {
    listen 80;
    server_name example.net www.example.net;
    return 301 https://example.com$request_uri;
}";

    /// A Forge server as `nginx -T` dumps it: the sites-enabled symlink's path, not its target's.
    fn forge() -> NginxConfig {
        let dump = dump(&[
            ("/etc/nginx/nginx.conf", DEBIAN_NGINX_CONF),
            ("/etc/nginx/modules-enabled/50-mod-stream.conf", MODULES),
            ("/etc/nginx/mime.types", MIME_TYPES),
            ("/etc/nginx/conf.d/uploads.conf", FORGE_UPLOADS),
            ("/etc/nginx/sites-enabled/example.com", FORGE_VHOST),
            (
                "/etc/nginx/forge-conf/example.com/before/redirect.conf",
                FORGE_BEFORE,
            ),
            (
                "/etc/nginx/forge-conf/example.com/server/health.conf",
                FORGE_SERVER,
            ),
            ("/etc/nginx/fastcgi_params", FASTCGI_PARAMS),
            (
                "/etc/nginx/forge-conf/example.com/after/old-domain.conf",
                FORGE_AFTER,
            ),
        ]);
        parse(&dump).expect("Forge's dump parses")
    }

    const VHOST: &str = "/etc/nginx/sites-enabled/example.com";

    #[test]
    fn forge_vhost_with_includes_gives_names_root_socket_and_redirect_twin() {
        let config = forge();
        assert_eq!(config.servers.len(), 3, "{:#?}", config.servers);
        let [twin, site, old] = &config.servers[..] else {
            unreachable!()
        };
        assert_eq!(site.at, at(VHOST, 4));
        assert_eq!(site.names, ["example.com", "www.example.com"]);
        assert_eq!(
            site.root,
            Some(("/home/forge/example.com/public".into(), at(VHOST, 9)))
        );
        let socket = "unix:/var/run/php/php8.2-fpm.sock".to_string();
        assert_eq!(site.fastcgi_pass, [(socket, at(VHOST, 32))]);
        let certificate = "/etc/nginx/ssl/example.com/123/server.crt".to_string();
        assert_eq!(site.ssl_certificate, Some((certificate, at(VHOST, 12))));
        let key = "/etc/nginx/ssl/example.com/123/server.key".to_string();
        assert_eq!(site.ssl_certificate_key, Some((key, at(VHOST, 13))));
        assert_eq!(
            site.listen,
            [listen(443, true, None), listen(443, true, Some("[::]"))]
        );
        assert!(site.serves_https());
        assert!(!site.is_redirect_only());
        assert_eq!(site.redirect, None);

        let before = "/etc/nginx/forge-conf/example.com/before/redirect.conf";
        assert_eq!(twin.at, at(before, 2));
        assert_eq!(twin.names, ["example.com"]);
        assert_eq!(
            twin.listen,
            [listen(80, false, None), listen(80, false, Some("[::]"))]
        );
        let url = "https://$host$request_uri".to_string();
        assert_eq!(twin.redirect, Some((301, url, at(before, 7))));
        assert!(twin.is_redirect_only());
        assert!(!twin.serves_https());

        assert_eq!(old.names, ["example.net", "www.example.net"]);
        assert!(old.is_redirect_only());
    }

    #[test]
    fn forge_directives_keep_their_own_file_line_and_enclosing_location() {
        let config = forge();
        let site = &config.servers[1];
        let param = find(site, "fastcgi_param");
        assert_eq!(param.args, ["QUERY_STRING", "$query_string"]);
        assert_eq!(param.at, at("/etc/nginx/fastcgi_params", 2));
        assert_eq!(param.context, ["location ~ \\.php$"]);
        let split = find(site, "fastcgi_split_path_info");
        assert_eq!(split.args, ["^(.+\\.php)(/.+)$"]);
        assert_eq!(split.context, ["location ~ \\.php$"]);

        let health = "/etc/nginx/forge-conf/example.com/server/health.conf";
        let opener = find(site, "return");
        assert_eq!(opener.args, ["200", "ok"]);
        assert_eq!(opener.at, at(health, 3));
        assert_eq!(opener.context, ["location /healthz"]);
        let favicon = site
            .directives
            .iter()
            .find(|directive| directive.name == "log_not_found")
            .map(|directive| directive.context.clone());
        assert_eq!(favicon, Some(vec!["location = /favicon.ico".to_string()]));
    }

    #[test]
    fn forge_directives_are_listed_in_order_with_includes_expanded_after_the_include() {
        let config = forge();
        let names: Vec<&str> = config.servers[1]
            .directives
            .iter()
            .map(|directive| directive.name.as_str())
            .collect();
        let include = names.iter().position(|name| *name == "include");
        assert_eq!(include, Some(11));
        assert_eq!(
            names[11..16],
            ["include", "location", "access_log", "return", "location"]
        );
        let location = find(&config.servers[1], "location");
        assert_eq!(location.args, ["/healthz"]);
        assert!(location.context.is_empty());
        assert_eq!(names.last(), Some(&"deny"));
    }

    #[test]
    fn forge_dump_lists_every_file_in_dump_order_main_first() {
        let config = forge();
        assert_eq!(config.files.len(), 9);
        assert_eq!(config.files[0], "/etc/nginx/nginx.conf");
        assert_eq!(
            config.files[8],
            "/etc/nginx/forge-conf/example.com/after/old-domain.conf"
        );
    }

    #[test]
    fn vito_vhost_gives_plain_http_site_with_its_own_fpm_pool() {
        // Vito writes sites-available/example.com and links it from sites-enabled, the path
        // `nginx -T` names.
        let vhost = "server {
    listen 80;
    listen [::]:80;
    server_name example.com www.example.com;
    root /home/vito/example.com/public;

    add_header X-Frame-Options \"SAMEORIGIN\";
    add_header X-Content-Type-Options \"nosniff\";

    index index.php index.html;
    charset utf-8;

    location / {
        try_files $uri $uri/ /index.php?$query_string;
    }

    location = /favicon.ico { access_log off; log_not_found off; }
    location = /robots.txt  { access_log off; log_not_found off; }

    error_page 404 /index.php;

    location ~ \\.php$ {
        fastcgi_pass unix:/var/run/php/php8.2-fpm-vito.sock;
        fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;
        include fastcgi_params;
        fastcgi_hide_header X-Powered-By;
    }

    location ~ /\\.(?!well-known).* {
        deny all;
    }
}
";
        let dump = dump(&[
            ("/etc/nginx/nginx.conf", DEBIAN_NGINX_CONF),
            ("/etc/nginx/mime.types", MIME_TYPES),
            (VHOST, vhost),
            ("/etc/nginx/fastcgi_params", FASTCGI_PARAMS),
        ]);
        let config = parse(&dump).expect("Vito's dump parses");
        let [site] = &config.servers[..] else {
            panic!("{:#?}", config.servers)
        };
        assert_eq!(site.names, ["example.com", "www.example.com"]);
        let root = "/home/vito/example.com/public".to_string();
        assert_eq!(site.root, Some((root, at(VHOST, 5))));
        let socket = "unix:/var/run/php/php8.2-fpm-vito.sock".to_string();
        assert_eq!(site.fastcgi_pass, [(socket, at(VHOST, 23))]);
        assert!(!site.serves_https());
        assert!(!site.is_redirect_only());
        assert_eq!(site.ssl_certificate, None);
        let header = find(site, "add_header");
        assert_eq!(header.args, ["X-Frame-Options", "SAMEORIGIN"]);
        let deny = find(site, "deny");
        assert_eq!(deny.context, ["location ~ /\\.(?!well-known).*"]);
    }

    const SHOP: &str = "/etc/nginx/sites-enabled/shop";

    const SHOP_VHOST: &str = "server {
    server_name shop.example.com;
    root /var/www/shop/current/public;
    index index.php;
    client_max_body_size 64m;

    if ($host = www.shop.example.com) {
        return 301 https://shop.example.com$request_uri;
    }

    location ~ \\.php$ {
        include snippets/fastcgi-php.conf;
        fastcgi_pass unix:/run/php/php8.3-fpm.sock;
    }

    listen [::]:443 ssl ipv6only=on; # managed by Certbot
    listen 443 ssl; # managed by Certbot
    ssl_certificate /etc/letsencrypt/live/shop.example.com/fullchain.pem; # managed by Certbot
    ssl_certificate_key /etc/letsencrypt/live/shop.example.com/privkey.pem; # managed by Certbot
    include /etc/letsencrypt/options-ssl-nginx.conf; # managed by Certbot
    ssl_dhparam /etc/letsencrypt/ssl-dhparams.pem; # managed by Certbot
}
server {
    if ($host = shop.example.com) {
        return 301 https://$host$request_uri;
    } # managed by Certbot

    listen 80 default_server;
    listen [::]:80;
    server_name shop.example.com;
    return 404; # managed by Certbot
}
";

    const FASTCGI_PHP: &str = "# regex to split $uri to $fastcgi_script_name and $fastcgi_path
fastcgi_split_path_info ^(.+?\\.php)(/.*)$;

# Check that the PHP script exists before passing it
try_files $fastcgi_script_name =404;

set $path_info $fastcgi_path_info;
fastcgi_param PATH_INFO $path_info;

fastcgi_index index.php;
include fastcgi.conf;
";

    const CERTBOT_OPTIONS: &str = "ssl_session_cache shared:le_nginx_SSL:10m;
ssl_session_timeout 1440m;
ssl_session_tickets off;
ssl_protocols TLSv1.2 TLSv1.3;
ssl_prefer_server_ciphers off;
ssl_ciphers \"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\";
";

    fn shop() -> NginxConfig {
        let dump = dump(&[
            ("/etc/nginx/nginx.conf", DEBIAN_NGINX_CONF),
            ("/etc/nginx/mime.types", MIME_TYPES),
            (SHOP, SHOP_VHOST),
            ("/etc/nginx/snippets/fastcgi-php.conf", FASTCGI_PHP),
            ("/etc/nginx/fastcgi.conf", FASTCGI_PARAMS),
            ("/etc/letsencrypt/options-ssl-nginx.conf", CERTBOT_OPTIONS),
        ]);
        parse(&dump).expect("the hand-written dump parses")
    }

    #[test]
    fn hand_written_site_keeps_custom_body_size_and_conditional_www_redirect() {
        let config = shop();
        let site = &config.servers[0];
        let size = find(site, "client_max_body_size");
        assert_eq!(size.args, ["64m"]);
        assert_eq!(size.at, at(SHOP, 5));
        assert!(size.context.is_empty());
        let condition = find(site, "if");
        assert_eq!(condition.args, ["($host", "=", "www.shop.example.com)"]);
        let redirect = find(site, "return");
        assert_eq!(redirect.context, ["if ($host = www.shop.example.com)"]);
        assert_eq!(redirect.at, at(SHOP, 8));
        assert_eq!(
            site.redirect, None,
            "a conditional redirect is not the site's"
        );
        assert!(!site.is_redirect_only());
        assert!(site.serves_https());
        let socket = "unix:/run/php/php8.3-fpm.sock".to_string();
        assert_eq!(site.fastcgi_pass, [(socket, at(SHOP, 13))]);
    }

    #[test]
    fn hand_written_site_expands_nested_includes_inside_a_location() {
        let config = shop();
        let site = &config.servers[0];
        let split = find(site, "fastcgi_split_path_info");
        assert_eq!(split.args, ["^(.+?\\.php)(/.*)$"]);
        assert_eq!(split.at, at("/etc/nginx/snippets/fastcgi-php.conf", 2));
        assert_eq!(split.context, ["location ~ \\.php$"]);
        let param = find(site, "fastcgi_param");
        assert_eq!(param.args, ["PATH_INFO", "$path_info"]);
        let params = site
            .directives
            .iter()
            .filter(|directive| directive.at.file == "/etc/nginx/fastcgi.conf")
            .count();
        assert_eq!(params, 4);
        let ciphers = find(site, "ssl_ciphers");
        assert_eq!(ciphers.at, at("/etc/letsencrypt/options-ssl-nginx.conf", 6));
        assert!(ciphers.context.is_empty());
    }

    #[test]
    fn certbot_twin_redirecting_under_if_is_redirect_only() {
        let config = shop();
        let twin = &config.servers[1];
        assert_eq!(twin.at, at(SHOP, 23));
        let url = "https://$host$request_uri".to_string();
        assert_eq!(twin.redirect, Some((301, url, at(SHOP, 25))));
        assert!(twin.is_redirect_only());
        assert!(twin.listen[0].default_server);
        assert!(!twin.serves_https());
    }

    #[test]
    fn server_without_listen_listens_on_port_80() {
        let config = parse(&http("server { server_name _; }")).expect("parses");
        assert_eq!(config.servers[0].listen, [listen(80, false, None)]);
        assert_eq!(config.servers[0].names, ["_"]);
    }

    #[test]
    fn listen_forms_give_address_port_and_flags() {
        let cases = [
            ("80", listen(80, false, None)),
            ("443 ssl http2", listen(443, true, None)),
            ("[::]:443 ssl", listen(443, true, Some("[::]"))),
            ("[::1]", listen(80, false, Some("[::1]"))),
            ("127.0.0.1:8080", listen(8080, false, Some("127.0.0.1"))),
            ("127.0.0.1", listen(80, false, Some("127.0.0.1"))),
            ("*:80", listen(80, false, None)),
            ("localhost:8000", listen(8000, false, Some("localhost"))),
            (
                "unix:/run/nginx.sock",
                listen(0, false, Some("unix:/run/nginx.sock")),
            ),
        ];
        for (text, expected) in cases {
            let config = parse(&http(&format!("server {{ listen {text}; }}"))).expect(text);
            assert_eq!(config.servers[0].listen, [expected], "listen {text}");
        }
        for flag in ["default_server", "default"] {
            let server = format!("server {{ listen 80 {flag}; }}");
            let config = parse(&http(&server)).expect("parses");
            assert!(config.servers[0].listen[0].default_server, "{flag}");
        }
    }

    #[test]
    fn unreadable_listen_port_is_an_error_at_the_directive() {
        let error = parse_error(&http("server {\n  listen 127.0.0.1:http;\n}"));
        assert_eq!(error.at, at("/etc/nginx/nginx.conf", 3));
        assert!(error.message.contains("127.0.0.1:http"), "{error}");
        let error = parse_error(&http("server { listen 70000; }"));
        assert!(error.message.contains("70000"), "{error}");
    }

    #[test]
    fn https_is_served_by_ssl_flag_port_443_or_ssl_on() {
        let serves = |server: &str| {
            let config = parse(&http(server)).expect("parses");
            config.servers[0].serves_https()
        };
        assert!(serves("server { listen 8443 ssl; }"));
        assert!(serves("server { listen 443; }"));
        assert!(serves("server { listen 8443; ssl on; }"));
        assert!(!serves("server { listen 8443; ssl off; }"));
        assert!(!serves("server { listen 80; http2 on; }"));
    }

    #[test]
    fn location_slash_with_only_a_return_is_a_redirect() {
        let server = "server {\n listen 80;\n server_name a.test;\n location / {\n  return 308 https://a.test$request_uri;\n }\n}";
        let config = parse(&http(server)).expect("parses");
        let twin = &config.servers[0];
        let url = "https://a.test$request_uri".to_string();
        assert_eq!(
            twin.redirect,
            Some((308, url, at("/etc/nginx/nginx.conf", 6)))
        );
        assert!(twin.is_redirect_only());
    }

    #[test]
    fn return_of_a_bare_url_is_a_302_and_other_codes_are_no_redirect() {
        let redirect = |server: &str| {
            let config = parse(&http(server)).expect("parses");
            config.servers[0]
                .redirect
                .clone()
                .map(|(code, url, _)| (code, url))
        };
        let url = "https://b.test/".to_string();
        assert_eq!(
            redirect("server { return https://b.test/; }"),
            Some((302, url))
        );
        assert_eq!(redirect("server { return 200 https://b.test/; }"), None);
        assert_eq!(redirect("server { return 444; }"), None);
        assert_eq!(redirect("server { return \"/relative\"; }"), None);
        let in_location = "server { location /old { return 301 https://b.test/; } }";
        assert_eq!(redirect(in_location), None);
    }

    #[test]
    fn block_that_serves_files_besides_redirecting_is_not_redirect_only() {
        let with_root = "server { listen 80; root /srv; return 301 https://c.test; }";
        let config = parse(&http(with_root)).expect("parses");
        assert!(config.servers[0].redirect.is_some());
        assert!(!config.servers[0].is_redirect_only());
        let dropping = "server { listen 80 default_server; server_name _; return 444; }";
        let config = parse(&http(dropping)).expect("parses");
        assert!(!config.servers[0].is_redirect_only());
        let deep = "server { location / { if ($a) { return 301 https://c.test; } } }";
        let config = parse(&http(deep)).expect("parses");
        assert!(!config.servers[0].is_redirect_only());
    }

    #[test]
    fn https_twin_of_www_with_certificates_is_redirect_only() {
        let server = "server {
    listen 443 ssl;
    server_name www.d.test;
    ssl_certificate /etc/ssl/d.crt;
    ssl_certificate_key /etc/ssl/d.key;
    include /etc/nginx/snippets/ssl.conf;
    return 301 https://d.test$request_uri;
}";
        let dump = dump(&[
            ("/etc/nginx/nginx.conf", &format!("http {{\n{server}\n}}")),
            ("/etc/nginx/snippets/ssl.conf", "ssl_protocols TLSv1.3;"),
        ]);
        let config = parse(&dump).expect("parses");
        assert!(config.servers[0].is_redirect_only());
        assert!(config.servers[0].serves_https());
    }

    #[test]
    fn redirect_only_include_may_hold_only_redirect_directives() {
        let main = "http { server { include snippets/twin.conf; } }";
        let with = |twin: &str| {
            let dump = dump(&[
                ("/etc/nginx/nginx.conf", main),
                ("/etc/nginx/snippets/twin.conf", twin),
            ]);
            parse(&dump).expect("parses").servers[0].is_redirect_only()
        };
        assert!(with("listen 80; return 301 https://e.test$request_uri;"));
        assert!(!with("listen 80; root /srv; return 301 https://e.test;"));
    }

    #[test]
    fn quoted_strings_keep_semicolons_braces_and_hashes_and_resolve_escapes() {
        let server = r#"server {
    add_header Content-Security-Policy "default-src 'self'; img-src *" always;
    add_header X-Quote "say \"hi\" \\ back";
    add_header X-Single 'it\'s';
    return 200 "{ not a block } # nor a comment";
    set $tab "a\tb\d";
}"#;
        let config = parse(&http(server)).expect("parses");
        let args: Vec<&[String]> = config.servers[0]
            .directives
            .iter()
            .map(|directive| directive.args.as_slice())
            .collect();
        assert_eq!(
            args[0],
            [
                "Content-Security-Policy",
                "default-src 'self'; img-src *",
                "always"
            ]
        );
        assert_eq!(args[1], ["X-Quote", "say \"hi\" \\ back"]);
        assert_eq!(args[2], ["X-Single", "it's"]);
        assert_eq!(args[3], ["200", "{ not a block } # nor a comment"]);
        assert_eq!(args[4], ["$tab", "a\tb\\d"]);
        assert_eq!(config.servers[0].directives.len(), 5);
    }

    #[test]
    fn comments_start_only_where_a_token_starts() {
        let server = "server { # listen 81;
    listen 80; # listen 82;
    rewrite ^/(.*)$ https://$host/$1#top permanent;#tail
    location = /a#b { deny all; }
}";
        let config = parse(&http(server)).expect("parses");
        let server = &config.servers[0];
        assert_eq!(server.listen, [listen(80, false, None)]);
        let rewrite = find(server, "rewrite");
        assert_eq!(
            rewrite.args,
            ["^/(.*)$", "https://$host/$1#top", "permanent"]
        );
        assert_eq!(find(server, "deny").context, ["location = /a#b"]);
        assert_eq!(server.directives.len(), 4);
    }

    #[test]
    fn variables_in_braces_stay_in_unquoted_words_and_a_closing_brace_does_not_end_one() {
        let server =
            "server {\n  set $path ${uri}.html;\n  set $odd a}b;\n  location /x {deny all;}\n}";
        let config = parse(&http(server)).expect("parses");
        let server = &config.servers[0];
        let args: Vec<&[String]> = server
            .directives
            .iter()
            .map(|directive| directive.args.as_slice())
            .collect();
        assert_eq!(args[0], ["$path", "${uri}.html"]);
        assert_eq!(args[1], ["$odd", "a}b"]);
        assert_eq!(find(server, "deny").context, ["location /x"]);
    }

    #[test]
    fn regex_locations_tokenize_with_literal_backslashes_and_quoted_braces() {
        let server = r#"server {
    location ~ \.php$ { fastcgi_split_path_info ^(.+\.php)(/.+)$; }
    location ~ /\.(?!well-known).* { deny all; }
    location ~* "^/img/[a-z]{2,3}$" { expires 30d; }
    if ($request_uri ~ "^/(a|b)") { return 403; }
}"#;
        let config = parse(&http(server)).expect("parses");
        let contexts: Vec<String> = config.servers[0]
            .directives
            .iter()
            .filter(|directive| !directive.context.is_empty())
            .map(|directive| directive.context.join(" / "))
            .collect();
        assert_eq!(
            contexts,
            [
                "location ~ \\.php$",
                "location ~ /\\.(?!well-known).*",
                "location ~* ^/img/[a-z]{2,3}$",
                "if ($request_uri ~ ^/(a|b) )",
            ]
        );
        let split = find(&config.servers[0], "fastcgi_split_path_info");
        assert_eq!(split.args, ["^(.+\\.php)(/.+)$"]);
    }

    #[test]
    fn nested_blocks_give_the_whole_context_path() {
        let server = "server {\n location /api {\n  limit_except GET {\n   deny all;\n  }\n }\n}";
        let config = parse(&http(server)).expect("parses");
        let deny = find(&config.servers[0], "deny");
        assert_eq!(deny.context, ["location /api", "limit_except GET"]);
        assert_eq!(deny.at, at("/etc/nginx/nginx.conf", 5));
    }

    #[test]
    fn stream_mail_and_upstream_servers_are_not_server_blocks() {
        let main = "
stream {
    upstream db { server 10.0.0.1:5432 weight=5; }
    server { listen 5432; proxy_pass db; }
}
mail {
    server { listen 25; protocol smtp; }
}
http {
    upstream php { server unix:/run/php.sock; }
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    server { listen 8080; location / { fastcgi_pass php; } }
}";
        let config = parse(&dump(&[("/etc/nginx/nginx.conf", main)])).expect("parses");
        let [server] = &config.servers[..] else {
            panic!("{:#?}", config.servers)
        };
        assert_eq!(server.listen, [listen(8080, false, None)]);
        assert_eq!(server.fastcgi_pass[0].0, "php");
    }

    #[test]
    fn includes_match_globs_in_sorted_order_and_skip_hidden_files() {
        let main = "http { include sites/*; include extra/site-?.conf; include extra/[0-9]*; }";
        let server = |name: &str| format!("server {{ server_name {name}; }}");
        let dump = dump(&[
            ("/etc/nginx/nginx.conf", main),
            ("/etc/nginx/sites/zz", &server("zz")),
            ("/etc/nginx/sites/aa", &server("aa")),
            ("/etc/nginx/sites/.hidden", &server("hidden")),
            ("/etc/nginx/extra/site-1.conf", &server("one")),
            ("/etc/nginx/extra/site-10.conf", &server("ten")),
            ("/etc/nginx/extra/9lives", &server("nine")),
            ("/etc/nginx/extra/x9", &server("x9")),
        ]);
        let config = parse(&dump).expect("parses");
        let names: Vec<&str> = config
            .servers
            .iter()
            .map(|server| server.names[0].as_str())
            .collect();
        assert_eq!(names, ["aa", "zz", "one", "nine"]);
    }

    #[test]
    fn includes_match_globs_in_directories_relative_to_the_main_file() {
        let main = "http { include forge-conf/*/before/*; include /etc/nginx//./conf.d/*.conf; }";
        let dump = dump(&[
            ("/etc/nginx/nginx.conf", main),
            (
                "/etc/nginx/forge-conf/b.test/before/r.conf",
                "server { server_name b; }",
            ),
            (
                "/etc/nginx/forge-conf/a.test/before/r.conf",
                "server { server_name a; }",
            ),
            (
                "/etc/nginx/forge-conf/a.test/after/r.conf",
                "server { server_name after; }",
            ),
            ("/etc/nginx/conf.d/c.conf", "server { server_name c; }"),
            (
                "/etc/nginx/conf.d/c.conf.bak",
                "server { server_name bak; }",
            ),
        ]);
        let config = parse(&dump).expect("parses");
        let names: Vec<&str> = config
            .servers
            .iter()
            .map(|server| server.names[0].as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn include_matching_no_dumped_file_expands_to_nothing() {
        let main = "http { include /etc/nginx/sites-enabled/*; server { include missing.conf; listen 81; } }";
        let config = parse(&dump(&[("/etc/nginx/nginx.conf", main)])).expect("parses");
        let [server] = &config.servers[..] else {
            panic!("{:#?}", config.servers)
        };
        assert_eq!(server.directives.len(), 2);
        assert_eq!(server.listen, [listen(81, false, None)]);
    }

    #[test]
    fn main_level_include_can_hold_the_http_block() {
        let dump = dump(&[
            ("/usr/local/nginx/conf/nginx.conf", "include parts/*.conf;"),
            (
                "/usr/local/nginx/conf/parts/http.conf",
                "http { server { listen 82; } }",
            ),
        ]);
        let config = parse(&dump).expect("parses");
        assert_eq!(config.servers[0].listen, [listen(82, false, None)]);
        assert_eq!(
            config.servers[0].at,
            at("/usr/local/nginx/conf/parts/http.conf", 1)
        );
    }

    #[test]
    fn glob_components_follow_glob_3() {
        assert!(component_matches("*.conf", "a.conf"));
        assert!(!component_matches("*.conf", ".a.conf"));
        assert!(component_matches(".*", ".hidden"));
        assert!(component_matches("[!a]?", "bc"));
        assert!(!component_matches("[^a]?", "ac"));
        assert!(component_matches("[]x]", "]"));
        assert!(component_matches("[a-c]", "b"));
        assert!(component_matches("a[b", "a[b"));
        assert!(component_matches("\\*", "*"));
        assert!(!component_matches("\\*", "x"));
        assert!(component_matches("**a*", "bab"));
        assert!(!path_matches("/etc/*", "/etc/nginx/x"));
        assert!(path_matches("/etc/*/x", "/etc/nginx/x"));
    }

    #[test]
    fn include_cycle_is_an_error_at_the_include() {
        let dump = dump(&[
            ("/etc/nginx/nginx.conf", "http { include a.conf; }"),
            ("/etc/nginx/a.conf", "server {\n  include b.conf;\n}"),
            ("/etc/nginx/b.conf", "include a.conf;"),
        ]);
        let error = parse_error(&dump);
        assert_eq!(error.at, at("/etc/nginx/b.conf", 1));
        assert!(error.message.contains("include cycle"), "{error}");
    }

    #[test]
    fn same_file_included_twice_is_expanded_twice() {
        let dump = dump(&[
            (
                "/etc/nginx/nginx.conf",
                "http { server { include h.conf; include h.conf; } }",
            ),
            ("/etc/nginx/h.conf", "add_header X-A 1;"),
        ]);
        let config = parse(&dump).expect("parses");
        let headers = config.servers[0]
            .directives
            .iter()
            .filter(|directive| directive.name == "add_header")
            .count();
        assert_eq!(headers, 2);
    }

    #[test]
    fn include_with_two_arguments_is_an_error() {
        let error = parse_error(&http("include a b;"));
        assert_eq!(error.at, at("/etc/nginx/nginx.conf", 2));
    }

    #[test]
    fn unclosed_block_is_an_error_at_its_opening() {
        let error = parse_error(&http("server {\n  listen 80;\n  location / {\n}"));
        assert_eq!(error.at, at("/etc/nginx/nginx.conf", 1));
        assert!(
            error.message.contains("\"http\" block is never closed"),
            "{error}"
        );
    }

    #[test]
    fn stray_closing_brace_is_an_error_at_its_line() {
        let dump = dump(&[("/etc/nginx/nginx.conf", "http {\n}\n}\n")]);
        let error = parse_error(&dump);
        assert_eq!(error.at, at("/etc/nginx/nginx.conf", 3));
        let error = parse_error(&http("server { listen 80 }"));
        assert!(error.message.contains("unexpected \"}\""), "{error}");
    }

    #[test]
    fn unterminated_quote_is_an_error_where_it_opens() {
        let error = parse_error(&http("server {\n  add_header X \"a;\n}\n"));
        assert_eq!(error.at, at("/etc/nginx/nginx.conf", 3));
        assert!(error.message.contains("unterminated"), "{error}");
    }

    #[test]
    fn directive_without_semicolon_at_end_of_file_is_an_error_at_the_directive() {
        let dump = dump(&[
            ("/etc/nginx/nginx.conf", "http { include x.conf; }"),
            ("/etc/nginx/x.conf", "gzip on;\n\ngzip_types text/css\n"),
        ]);
        let error = parse_error(&dump);
        assert_eq!(error.at, at("/etc/nginx/x.conf", 3));
        assert_eq!(
            error.to_string(),
            "/etc/nginx/x.conf:3: \"gzip_types\" has no \";\" before the end of the file"
        );
    }

    #[test]
    fn lone_semicolon_and_text_glued_to_a_quote_are_errors() {
        let error = parse_error(&http("server { ; }"));
        assert!(error.message.contains("unexpected \";\""), "{error}");
        let error = parse_error(&http("server { add_header \"a\"b; }"));
        assert!(error.message.contains("unexpected \"b\""), "{error}");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowing() {
        let text = "a {".repeat(MAX_DEPTH + 5);
        let error = parse_error(&dump(&[("/etc/nginx/nginx.conf", &text)]));
        assert!(error.message.contains("nested too deeply"), "{error}");
    }

    #[test]
    fn text_without_headers_is_not_a_dump() {
        let error = parse_error("server { listen 80; }");
        assert_eq!(error.at, at("nginx -T", 1));
    }

    #[test]
    fn lines_before_the_first_header_and_crlf_line_ends_are_ignored() {
        let text = "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\r\n\
                    # configuration file /etc/nginx/nginx.conf:\r\n\
                    http {\r\n  server {\r\n    listen 80;\r\n    root /srv/www;\r\n  }\r\n}\r\n";
        let config = parse(text).expect("parses");
        assert_eq!(config.files, ["/etc/nginx/nginx.conf"]);
        let root = config.servers[0].root.clone();
        assert_eq!(
            root,
            Some(("/srv/www".into(), at("/etc/nginx/nginx.conf", 4)))
        );
    }
}
