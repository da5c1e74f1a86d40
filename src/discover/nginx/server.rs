//! What a `server` block says: listens, names, root, PHP socket, certificate, redirect.

use super::*;

impl ServerBlock {
    /// Reads what a spec needs out of a server block's directives.
    pub(super) fn new(at: Location, directives: Vec<Directive>) -> Result<Self, ParseError> {
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
pub(super) fn server_level<'d>(
    directives: &'d [Directive],
    name: &'d str,
) -> impl Iterator<Item = &'d Directive> {
    directives
        .iter()
        .filter(move |directive| directive.context.is_empty() && directive.name == name)
}

/// A directive's first argument and place.
pub(super) fn value(directive: &Directive) -> Option<(String, Location)> {
    Some((directive.args.first()?.clone(), directive.at.clone()))
}

/// The first argument and place of the first server-level directive of a name.
pub(super) fn first_value(directives: &[Directive], name: &str) -> Option<(String, Location)> {
    server_level(directives, name).find_map(value)
}

/// Reads a `listen` directive: an address, a port or both, then flags.
pub(super) fn listen(directive: &Directive) -> Result<Listen, ParseError> {
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
pub(super) fn address_and_port(text: &str) -> Option<(Option<String>, u16)> {
    if text.starts_with("unix:") {
        return Some((Some(text.to_string()), 0));
    }
    let (host, port) = split_host_port(text)?;
    let port = port.map_or(Ok(80), str::parse).ok()?;
    let host = host.filter(|host| *host != "*").map(str::to_string);
    Some((host, port))
}

/// A listen address's host and port, either perhaps absent.
pub(super) fn split_host_port(text: &str) -> Option<(Option<&str>, Option<&str>)> {
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
pub(super) fn redirect(directives: &[Directive]) -> Option<(u16, String, Location)> {
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
pub(super) fn under_if(directive: &Directive) -> bool {
    matches!(directive.context.as_slice(), [block] if block.starts_with("if "))
}

/// The code, URL and place of a `return` that redirects: `return 301|302|303|307|308 URL`, or
/// `return URL` (a 302).
pub(super) fn redirect_of(directive: &Directive) -> Option<(u16, String, Location)> {
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
pub(super) fn only_redirects(directives: &[Directive]) -> bool {
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
