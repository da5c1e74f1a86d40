//! Reading nginx's configuration as `nginx -T` prints it: server blocks with where each directive came from.
//!
//! `nginx -T` prints every file it loaded after a `# configuration file PATH:` line, includes not
//! expanded. Each file is tokenized the way nginx does (`ngx_conf_read_token`), the includes of the
//! main context, of `http` and of `server` blocks are expanded against the dumped files, and each
//! `server` block of `http` is described.

mod include;
mod server;
#[cfg(test)]
mod tests;
mod tokens;

use include::{Scope, Walker};
use tokens::parse_file;

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
