//! What a migration's target must offer that its source has: a database server no older than
//! the source's (and of the same kind), a `max_allowed_packet` no smaller, and the PHP
//! extensions the site's composer files require. Gathered at plan time for the sites that move
//! (one round trip a side, `move_facts.sh`, read only); compared here, purely.

use crate::transport::{Command, QuoteError, Stdin, Transport, TransportError};

const SCRIPT: &str = include_str!("scripts/move_facts.sh");

/// What one side of a move offers (and, on the source, what the code requires).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerFacts {
    /// `MariaDB` or `MySQL`, and its version.
    pub mysql: Option<(String, String)>,
    /// The online PostgreSQL cluster's major version.
    pub postgres: Option<u32>,
    pub max_allowed_packet: Option<u64>,
    /// The modules of the site's PHP version, lowercase.
    pub php_modules: Vec<String>,
    /// The extensions `ext-*` of composer.json and composer.lock (source only).
    pub requires: Vec<String>,
}

/// Both sides of a move.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MoveFacts {
    pub source: ServerFacts,
    pub target: ServerFacts,
}

/// Why a server's facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("the site's PHP version or code directory cannot be part of a command")]
    Quote(#[from] QuoteError),
    #[error("reading what {endpoint} offers failed")]
    Transport {
        endpoint: String,
        #[source]
        source: TransportError,
    },
}

/// The facts of one server: `php` is the site's PHP version, `code` its live code directory
/// (given on the source, for the composer files).
pub async fn gather(
    transport: &impl Transport,
    php: Option<&str>,
    code: Option<&str>,
) -> Result<ServerFacts, FactsError> {
    let command = Command::script(SCRIPT)
        .arg(php.unwrap_or("-"))
        .arg(code.unwrap_or("-"))
        .render()?;
    let output = transport
        .exec(&command, Stdin::Empty)
        .await
        .map_err(|source| FactsError::Transport {
            endpoint: transport.endpoint().to_owned(),
            source,
        })?;
    Ok(parse(&output.stdout_lossy()))
}

fn parse(text: &str) -> ServerFacts {
    let mut facts = ServerFacts::default();
    let words = |value: &str| value.split_whitespace().map(str::to_owned).collect();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "mysql" => {
                facts.mysql = value
                    .split_once(' ')
                    .map(|(flavor, version)| (flavor.to_owned(), version.to_owned()));
            }
            "postgres" => facts.postgres = value.parse().ok(),
            "max_allowed_packet" => facts.max_allowed_packet = value.parse().ok(),
            "php_modules" => facts.php_modules = words(value),
            "requires" => facts.requires = words(value),
            _ => {}
        }
    }
    facts
}

/// `major.minor` of a version string, for comparing.
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Every reason the target cannot hold what the source has, for a site on `engine`
/// (`mysql` or `postgres`, when it has a database) with PHP `php`.
pub fn reasons(facts: &MoveFacts, engine: Option<&str>, php: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let (source, target) = (&facts.source, &facts.target);
    if engine == Some("mysql") {
        mysql_reasons(source, target, &mut out);
    }
    if engine == Some("postgres")
        && let (Some(from), Some(to)) = (source.postgres, target.postgres)
        && to < from
    {
        out.push(format!(
            "PostgreSQL {to} here is older than the source's {from}: a dump of a newer server may not restore into an older one; install PostgreSQL {from} or newer"
        ));
    }
    if let Some(version) = php {
        let missing: Vec<&str> = source
            .requires
            .iter()
            .filter(|ext| !target.php_modules.contains(ext))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() && !target.php_modules.is_empty() {
            out.push(format!(
                "PHP {version} here lacks the extensions the site's composer files require: {} (Debian: {})",
                missing.join(", "),
                missing
                    .iter()
                    .map(|ext| format!("php{version}-{ext}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    out
}

fn mysql_reasons(source: &ServerFacts, target: &ServerFacts, out: &mut Vec<String>) {
    if let (Some((from_kind, from)), Some((to_kind, to))) = (&source.mysql, &target.mysql) {
        if from_kind != to_kind {
            out.push(format!(
                "{to_kind} {to} here, {from_kind} {from} on the source: their dumps differ (collations such as MySQL's utf8mb4_0900_ai_ci, syntax); move between servers of one kind"
            ));
        } else if major_minor(to) < major_minor(from) {
            out.push(format!(
                "{to_kind} {to} here is older than the source's {from}: a dump of a newer server may use what an older one lacks; upgrade this server first"
            ));
        }
    }
    if let (Some(from), Some(to)) = (source.max_allowed_packet, target.max_allowed_packet)
        && to < from
    {
        out.push(format!(
            "max_allowed_packet is {} here and {} on the source: rows the source holds may not fit; raise it here to at least {}",
            super::preflight::human_bytes(to),
            super::preflight::human_bytes(from),
            super::preflight::human_bytes(from)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(text: &str) -> ServerFacts {
        parse(text)
    }

    const SOURCE: &str = "mysql=MariaDB 10.11.19\nmax_allowed_packet=16777216\npostgres=15\n\
        php_modules=core ctype gd mbstring zend_opcache\nrequires=gd mbstring zend_opcache\n";

    #[test]
    fn the_script_answer_is_read() {
        let source = facts(SOURCE);
        assert_eq!(
            source.mysql,
            Some(("MariaDB".to_owned(), "10.11.19".to_owned()))
        );
        assert_eq!(source.postgres, Some(15));
        assert_eq!(source.max_allowed_packet, Some(16 << 20));
        assert_eq!(source.requires, ["gd", "mbstring", "zend_opcache"]);
    }

    #[test]
    fn a_target_that_holds_everything_passes() {
        let both = MoveFacts {
            source: facts(SOURCE),
            target: facts(SOURCE),
        };
        assert_eq!(
            reasons(&both, Some("mysql"), Some("8.2")),
            Vec::<String>::new()
        );
        assert_eq!(
            reasons(&both, Some("postgres"), Some("8.2")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_older_or_other_database_a_smaller_packet_and_missing_extensions_are_named() {
        let move_to = |target: &str| MoveFacts {
            source: facts(SOURCE),
            target: facts(target),
        };
        let older = move_to(
            "mysql=MariaDB 10.5.2\nmax_allowed_packet=1048576\npostgres=13\nphp_modules=core ctype\n",
        );
        let said = reasons(&older, Some("mysql"), Some("8.2"));
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(
            said[0].contains("10.5.2 here is older than the source's 10.11.19"),
            "{said:?}"
        );
        assert!(
            said[1].contains("max_allowed_packet is 1.0 MiB here and 16.0 MiB"),
            "{said:?}"
        );
        assert!(said[2].contains("gd, mbstring, zend_opcache"), "{said:?}");
        assert!(said[2].contains("php8.2-gd"), "{said:?}");
        let said = reasons(&older, Some("postgres"), None);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("PostgreSQL 13 here is older than the source's 15"),
            "{said:?}"
        );
        let mysql = move_to(
            "mysql=MySQL 8.0.36\nmax_allowed_packet=67108864\nphp_modules=core ctype gd mbstring zend_opcache\n",
        );
        let said = reasons(&mysql, Some("mysql"), Some("8.2"));
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("MySQL 8.0.36 here, MariaDB 10.11.19 on the source"),
            "{said:?}"
        );
        // A newer server of the same kind, with a larger packet, is fine.
        let newer = move_to(
            "mysql=MariaDB 11.4.2\nmax_allowed_packet=67108864\nphp_modules=core ctype gd mbstring zend_opcache\n",
        );
        assert_eq!(
            reasons(&newer, Some("mysql"), Some("8.2")),
            Vec::<String>::new()
        );
    }
}
