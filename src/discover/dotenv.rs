//! Reading Laravel `.env` files exactly as vlucas/phpdotenv 5 reads them, and telling secrets apart.
//!
//! The file is split into lines (`\r\n`, `\n` or `\r`); a line holding `="` whose quote is not
//! closed starts a value spanning lines (joined by `\n`) up to the next line with a quote; blank
//! lines and lines starting with `#` are skipped. Each entry is `NAME=value` with blanks around
//! `=` trimmed, an optional `export ` and optional quotes around the name. The value is read by
//! phpdotenv's transducer: unquoted it ends at a `#` (with or without a blank before it) and may
//! not hold blanks; single-quoted it is literal; double-quoted it resolves `\"`, `\\`, `\$`,
//! `\f`, `\n`, `\r`, `\t` and `\v`; after a closing quote only blanks and a comment may follow.
//! `${VAR}` references are kept as written (phpdotenv would expand them when loading).
//!
//! phpdotenv refuses a whole file when one entry is malformed (Laravel then stops); here such
//! entries are left out and [`malformed_lines`] names them.

/// One variable of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvEntry {
    pub key: String,
    /// The value as phpdotenv reads it (quotes removed, escapes resolved), `${VAR}` unexpanded.
    pub value: String,
    /// The 1-based line the entry starts on.
    pub line: usize,
}

/// The file's variables in file order; when a key is given twice the first one wins, as with
/// Laravel's immutable repository.
pub fn parse(text: &str) -> Vec<EnvEntry> {
    read(text).entries
}

/// The lines starting entries that give no variable: those phpdotenv refuses (which makes
/// Laravel refuse the whole file), those without `=`, and a multi-line value never closed.
pub fn malformed_lines(text: &str) -> Vec<usize> {
    read(text).malformed
}

/// Whether a variable holds a secret: never when the value is empty; otherwise when the key
/// names one (`PASSWORD`, `PASSWD`, `PASS`, `SECRET`, `TOKEN`, `CREDENTIAL`, `PRIVATE`, `SALT`,
/// `AUTH`, `DSN`, `API_KEY` anywhere, `KEY` alone, at the end after `_` or between `_`s), when
/// the value is `base64:…` (Laravel's `APP_KEY`), or when the value is a URL with a password.
pub fn is_secret(key: &str, value: &str) -> bool {
    // Laravel reads `null` as no value: nothing to hide.
    if value.eq_ignore_ascii_case("null") || value.eq_ignore_ascii_case("(null)") {
        return false;
    }
    if value.is_empty() {
        return false;
    }
    let key = key.to_uppercase();
    SECRET_WORDS.iter().any(|word| key.contains(word))
        || key == "KEY"
        || key.ends_with("_KEY")
        || key.contains("_KEY_")
        || value.starts_with("base64:")
        || has_url_credentials(value)
}

/// Whether the value holds a URL with a password: `scheme://user:password@host…` with a
/// non-empty password (`redis://:password@host` counts).
pub fn has_url_credentials(value: &str) -> bool {
    value
        .match_indices("://")
        .any(|(at, _)| ends_with_scheme(&value[..at]) && has_password(&value[at + 3..]))
}

/// Words that make a key a secret's.
const SECRET_WORDS: [&str; 11] = [
    "PASSWORD",
    "PASSWD",
    "PASS",
    "SECRET",
    "TOKEN",
    "CREDENTIAL",
    "PRIVATE",
    "SALT",
    "AUTH",
    "DSN",
    "API_KEY",
];

/// The characters PHP's `trim` removes by default.
const PHP_TRIM: [char; 6] = [' ', '\n', '\r', '\t', '\0', '\x0b'];

/// A URL scheme (`[A-Za-z][A-Za-z0-9+.-]*`) ends the text.
fn ends_with_scheme(text: &str) -> bool {
    let start = text
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
        .map_or(0, |i| i + 1);
    text[start..]
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
}

/// The text after `://` starts with `user:password@` (up to the first `@` before any blank),
/// the password non-empty and the user free of `/`, `?` and `#`.
fn has_password(rest: &str) -> bool {
    let url = rest.split(char::is_whitespace).next().unwrap_or_default();
    let Some((userinfo, _)) = url.split_once('@') else {
        return false;
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return false;
    };
    !password.is_empty() && !user.contains(['/', '?', '#'])
}

/// What a file gives.
#[derive(Debug, Default)]
struct Reading {
    entries: Vec<EnvEntry>,
    malformed: Vec<usize>,
}

/// One entry's text (several lines joined by `\n` for a multi-line value) and its first line.
#[derive(Debug)]
struct Raw {
    text: String,
    line: usize,
}

fn read(text: &str) -> Reading {
    let (raws, unclosed) = raw_entries(text);
    let mut reading = Reading::default();
    for raw in raws {
        match entry(&raw.text) {
            Some((key, value)) => {
                if !reading.entries.iter().any(|e| e.key == key) {
                    reading.entries.push(EnvEntry {
                        key,
                        value,
                        line: raw.line,
                    });
                }
            }
            None => reading.malformed.push(raw.line),
        }
    }
    reading.malformed.extend(unclosed);
    reading.malformed.sort_unstable();
    reading
}

/// The file's lines, split at `\r\n`, `\n` or `\r`.
fn lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        lines.push(&rest[..at]);
        let width = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + width..];
    }
    lines.push(rest);
    lines
}

/// The raw entries (phpdotenv's `Lines::process`), and the first line of a multi-line value
/// the file never closes (phpdotenv drops it and everything after it).
fn raw_entries(text: &str) -> (Vec<Raw>, Option<usize>) {
    let mut raws = Vec::new();
    let mut buffer: Vec<&str> = Vec::new();
    let mut start = 0;
    for (index, line) in lines(text).into_iter().enumerate() {
        let starts = buffer.is_empty() && starts_multiline(line);
        if starts {
            start = index + 1;
        }
        let joined = if starts || !buffer.is_empty() {
            buffer.push(line);
            if !stops_multiline(line, starts) {
                continue;
            }
            let joined = buffer.join("\n");
            buffer.clear();
            Raw {
                text: joined,
                line: start,
            }
        } else {
            Raw {
                text: line.to_string(),
                line: index + 1,
            }
        };
        if !is_comment_or_blank(&joined.text) {
            raws.push(joined);
        }
    }
    let unclosed = (!buffer.is_empty()).then_some(start);
    (raws, unclosed)
}

/// A line holding `="` whose quotes do not close on it.
fn starts_multiline(line: &str) -> bool {
    line.contains("=\"") && !stops_multiline(line, true)
}

/// Whether the line closes a multi-line value: a line that is only `"`, or one with quotes not
/// preceded by a backslash (`\\` pairs removed first) — two of them on the line that starts it.
fn stops_multiline(line: &str, started: bool) -> bool {
    if line == "\"" {
        return true;
    }
    let bytes = line.replace("\\\\", "").into_bytes();
    let quotes = bytes
        .windows(2)
        .filter(|pair| pair[1] == b'"' && pair[0] != b'\\')
        .count();
    if started { quotes > 1 } else { quotes >= 1 }
}

fn is_comment_or_blank(text: &str) -> bool {
    let trimmed = text.trim_matches(PHP_TRIM);
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// The name and value of one raw entry; `None` when phpdotenv refuses it or it has no `=`.
fn entry(raw: &str) -> Option<(String, String)> {
    let (name, value) = raw.split_once('=')?;
    let name = entry_name(name.trim_matches(PHP_TRIM))?;
    let value = entry_value(value.trim_matches(PHP_TRIM))?;
    Some((name, value))
}

/// The name without `export ` (only when more than 8 characters long, as phpdotenv checks) and
/// without quotes around it, when it is made of letters, digits, marks, `_` and `.`.
fn entry_name(name: &str) -> Option<String> {
    let mut name = name;
    if name.chars().count() > 8
        && let Some(rest) = name.strip_prefix("export")
        && rest.starts_with(is_ctype_space)
    {
        name = rest.trim_start_matches(is_ctype_space);
    }
    if name.chars().count() >= 3 {
        for quote in ['"', '\''] {
            if let Some(inner) = name.strip_prefix(quote).and_then(|n| n.strip_suffix(quote)) {
                name = inner;
                break;
            }
        }
    }
    let valid = !name.is_empty() && name.chars().all(is_name_char);
    valid.then(|| name.to_string())
}

/// `[\p{Ll}\p{Lu}\p{M}\p{N}_.]`, marks approximated by std's letter case and numeric classes.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == '_'
        || c == '.'
        || (!c.is_ascii() && (c.is_lowercase() || c.is_uppercase() || c.is_numeric()))
}

/// C's `isspace`: what `ctype_space` accepts.
fn is_ctype_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The kinds of phpdotenv's lexer tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Newline,
    Blank,
    Backslash,
    SingleQuote,
    DoubleQuote,
    Hash,
    Dollar,
    Word,
}

/// The states of phpdotenv's value transducer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Initial,
    Unquoted,
    SingleQuoted,
    DoubleQuoted,
    Escape,
    Whitespace,
    Comment,
}

fn kind_of(byte: u8) -> Kind {
    match byte {
        b'\r' | b'\n' => Kind::Newline,
        b' ' | b'\t' | b'\x0b' | b'\x0c' => Kind::Blank,
        b'\\' => Kind::Backslash,
        b'\'' => Kind::SingleQuote,
        b'"' => Kind::DoubleQuote,
        b'#' => Kind::Hash,
        b'$' => Kind::Dollar,
        _ => Kind::Word,
    }
}

/// The value's tokens: runs of newlines, of blanks and of other characters; each special
/// character alone.
fn lex(value: &str) -> Vec<(Kind, &str)> {
    let bytes = value.as_bytes();
    let mut tokens = Vec::new();
    let mut start = 0;
    while let Some(&first) = bytes.get(start) {
        let kind = kind_of(first);
        let mut end = start + 1;
        if matches!(kind, Kind::Newline | Kind::Blank | Kind::Word) {
            while bytes.get(end).is_some_and(|b| kind_of(*b) == kind) {
                end += 1;
            }
        }
        // Token bounds fall on ASCII bytes or the string's ends, so on character boundaries.
        tokens.push((kind, value.get(start..end).unwrap_or_default()));
        start = end;
    }
    tokens
}

/// The value read by phpdotenv's transducer; `None` when phpdotenv refuses it.
fn entry_value(value: &str) -> Option<String> {
    let mut out = String::new();
    let mut state = State::Initial;
    for (kind, text) in lex(value) {
        state = step(state, kind, text, &mut out)?;
    }
    let unclosed = matches!(
        state,
        State::SingleQuoted | State::DoubleQuoted | State::Escape
    );
    (!unclosed).then_some(out)
}

/// One transition, appending to `out`; `None` on phpdotenv's errors.
fn step(state: State, kind: Kind, text: &str, out: &mut String) -> Option<State> {
    let next = match (state, kind) {
        (State::Initial, Kind::SingleQuote) => State::SingleQuoted,
        (State::Initial, Kind::DoubleQuote) => State::DoubleQuoted,
        (State::Initial | State::Unquoted | State::Whitespace, Kind::Hash) => State::Comment,
        (State::Unquoted | State::Whitespace, Kind::Blank | Kind::Newline) => State::Whitespace,
        (State::Initial | State::Unquoted, _) => {
            out.push_str(text);
            State::Unquoted
        }
        (State::SingleQuoted, Kind::SingleQuote) | (State::DoubleQuoted, Kind::DoubleQuote) => {
            State::Whitespace
        }
        (State::DoubleQuoted, Kind::Backslash) => State::Escape,
        (State::SingleQuoted, _) => {
            out.push_str(text);
            State::SingleQuoted
        }
        (State::DoubleQuoted, _)
        | (State::Escape, Kind::DoubleQuote | Kind::Backslash | Kind::Dollar) => {
            out.push_str(text);
            State::DoubleQuoted
        }
        (State::Escape, Kind::Word) => {
            let mut chars = text.chars();
            out.push(control(chars.next()?)?);
            out.push_str(chars.as_str());
            State::DoubleQuoted
        }
        (State::Escape | State::Whitespace, _) => return None,
        (State::Comment, _) => State::Comment,
    };
    Some(next)
}

/// The character `\f`, `\n`, `\r`, `\t` or `\v` stands for.
fn control(letter: char) -> Option<char> {
    match letter {
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LARAVEL: &str = "APP_NAME=Laravel
APP_ENV=production
APP_KEY=base64:2fl+Ktvkfl+Fuz4Qp/A75G2RTiWVA/ZoKZvp6fiiM10=
APP_DEBUG=false
APP_URL=https://shop.example.com

LOG_CHANNEL=stack

DB_CONNECTION=mysql
DB_HOST=127.0.0.1
DB_PORT=3306
DB_DATABASE=shop
DB_USERNAME=forge
DB_PASSWORD=\"s3cret pass\"

MAIL_FROM_ADDRESS=\"hello@example.com\"
MAIL_FROM_NAME=\"${APP_NAME}\"
";

    /// The (key, value) pairs of a file.
    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).into_iter().map(|e| (e.key, e.value)).collect()
    }

    /// The value of a one-entry file.
    fn value(text: &str) -> Option<String> {
        let entries = parse(text);
        assert!(entries.len() <= 1, "{entries:?}");
        entries.into_iter().next().map(|e| e.value)
    }

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_string(), value.to_string())
    }

    #[test]
    fn laravel_env_gives_entries_in_file_order_with_their_lines() {
        let entries = parse(LARAVEL);
        assert_eq!(entries.len(), 14);
        assert_eq!(
            entries[0],
            EnvEntry {
                key: "APP_NAME".to_string(),
                value: "Laravel".to_string(),
                line: 1
            }
        );
        assert_eq!(
            entries[2].value,
            "base64:2fl+Ktvkfl+Fuz4Qp/A75G2RTiWVA/ZoKZvp6fiiM10="
        );
        assert_eq!(entries[5].key, "LOG_CHANNEL");
        assert_eq!(entries[5].line, 7);
        assert_eq!(entries[11].value, "s3cret pass");
        assert_eq!(entries[12].value, "hello@example.com");
        assert!(malformed_lines(LARAVEL).is_empty());
    }

    #[test]
    fn variable_references_are_kept_as_written() {
        assert_eq!(parse(LARAVEL)[13].value, "${APP_NAME}");
        assert_eq!(
            value("MAIL_FROM_NAME=\"${APP_NAME}\"\n").as_deref(),
            Some("${APP_NAME}")
        );
        assert_eq!(value("A=${B}/x\n").as_deref(), Some("${B}/x"));
        assert_eq!(value("A=\"\\${B}\"\n").as_deref(), Some("${B}"));
    }

    #[test]
    fn a_key_given_twice_keeps_its_first_value() {
        assert_eq!(
            pairs("A=first\nB=b\nA=second\n"),
            vec![pair("A", "first"), pair("B", "b")]
        );
    }

    #[test]
    fn export_prefix_and_blanks_around_equals_are_allowed() {
        assert_eq!(
            pairs(
                "export APP_ENV=local\nexport\tDB_HOST = 127.0.0.1\n  QUEUE_CONNECTION =  redis  \n"
            ),
            vec![
                pair("APP_ENV", "local"),
                pair("DB_HOST", "127.0.0.1"),
                pair("QUEUE_CONNECTION", "redis")
            ]
        );
    }

    #[test]
    fn export_before_a_one_letter_name_is_refused_as_phpdotenv_does() {
        assert_eq!(pairs("export A=1\nexport AB=2\n"), vec![pair("AB", "2")]);
        assert_eq!(malformed_lines("export A=1\nexport AB=2\n"), vec![1]);
    }

    #[test]
    fn unquoted_values_end_at_a_hash_with_or_without_a_blank_before_it() {
        assert_eq!(value("A=value # comment\n").as_deref(), Some("value"));
        assert_eq!(value("A=abc#def\n").as_deref(), Some("abc"));
        assert_eq!(value("A=#not-a-value\n").as_deref(), Some(""));
    }

    #[test]
    fn unquoted_values_keep_quotes_backslashes_and_dollars_inside() {
        assert_eq!(value("A=a\"b'c\\d$e\n").as_deref(), Some("a\"b'c\\d$e"));
    }

    #[test]
    fn an_unquoted_value_with_a_blank_inside_is_malformed() {
        assert_eq!(value("APP_NAME=My App\n"), None);
        assert_eq!(malformed_lines("APP_NAME=My App\n"), vec![1]);
    }

    #[test]
    fn empty_values_are_empty_strings() {
        assert_eq!(
            pairs("A=\nB=\"\"\nC=''\nD= # nothing\nE=   \n"),
            vec![
                pair("A", ""),
                pair("B", ""),
                pair("C", ""),
                pair("D", ""),
                pair("E", "")
            ]
        );
    }

    #[test]
    fn single_quoted_values_are_literal() {
        assert_eq!(
            value("A='a \\n \"b\" $c #d'\n").as_deref(),
            Some("a \\n \"b\" $c #d")
        );
        assert_eq!(value("A='x' # comment\n").as_deref(), Some("x"));
    }

    #[test]
    fn double_quoted_values_resolve_escapes() {
        assert_eq!(
            value(r#"A="q\" b\\ d\$ n\n t\t f\f r\r v\v #x""#).as_deref(),
            Some("q\" b\\ d$ n\n t\t f\x0c r\r v\x0b #x")
        );
        assert_eq!(value("A=\"x\"   # comment\n").as_deref(), Some("x"));
    }

    #[test]
    fn unknown_escapes_and_text_after_a_closing_quote_are_malformed() {
        assert_eq!(value("A=\"\\d\"\n"), None);
        assert_eq!(value("A=\"\\'\"\n"), None);
        assert_eq!(value("A=\"x\"y\n"), None);
        assert_eq!(value("A='x' y\n"), None);
        assert_eq!(value("A=\"open\n"), None);
    }

    #[test]
    fn double_quoted_values_may_span_lines() {
        let text = "A=1\nKEY=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\"\nB=2\n";
        let entries = parse(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].key, "KEY");
        assert_eq!(
            entries[1].value,
            "-----BEGIN KEY-----\nabc\n-----END KEY-----"
        );
        assert_eq!(entries[1].line, 2);
        assert_eq!(entries[2].line, 5);
    }

    #[test]
    fn a_multi_line_value_never_closed_drops_the_rest_of_the_file() {
        let text = "A=1\nB=\"open\nC=3\nD=4\n";
        assert_eq!(pairs(text), vec![pair("A", "1")]);
        assert_eq!(malformed_lines(text), vec![2]);
    }

    #[test]
    fn a_multi_line_value_starts_only_right_after_equals() {
        assert_eq!(malformed_lines("A= \"open\nB=1\n"), vec![1]);
        assert_eq!(pairs("A= \"open\nB=1\n"), vec![pair("B", "1")]);
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let text = "# comment\n   # indented\n\n  \nA=1\n";
        assert_eq!(parse(text)[0].line, 5);
        assert!(malformed_lines(text).is_empty());
    }

    #[test]
    fn names_follow_phpdotenv() {
        assert_eq!(
            pairs("\"QUOTED\"=1\n'SINGLE'=2\nDOT.TED=3\n1LEADING=4\n"),
            vec![
                pair("QUOTED", "1"),
                pair("SINGLE", "2"),
                pair("DOT.TED", "3"),
                pair("1LEADING", "4")
            ]
        );
        let bad = "KEY-NAME=1\nKEY NAME=2\n=3\nNOEQUALS\n";
        assert!(parse(bad).is_empty());
        assert_eq!(malformed_lines(bad), vec![1, 2, 3, 4]);
    }

    #[test]
    fn crlf_and_cr_line_endings_split_lines() {
        assert_eq!(
            pairs("A=1\r\nB=\"x\r\ny\"\rC=3"),
            vec![pair("A", "1"), pair("B", "x\ny"), pair("C", "3")]
        );
    }

    #[test]
    fn secret_keys_with_values_are_secrets() {
        for key in [
            "APP_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "STRIPE_KEY",
            "STRIPE_SECRET",
            "PUSHER_APP_KEY",
            "PUSHER_APP_SECRET",
            "MAIL_PASSWORD",
            "REDIS_PASSWORD",
            "DB_PASSWORD",
            "SENTRY_LARAVEL_DSN",
            "KEY",
            "GITHUB_TOKEN",
            "FTP_PASSWD",
            "SMTP_PASS",
            "GOOGLE_CREDENTIALS",
            "JWT_PRIVATE_KEY",
            "HASH_SALT",
            "BASIC_AUTH",
            "MAILGUN_API_KEY",
            "passport_private_key",
        ] {
            assert!(is_secret(key, "x"), "{key}");
        }
    }

    #[test]
    fn ordinary_keys_are_not_secrets() {
        for (key, value) in [
            ("APP_ENV", "production"),
            ("APP_URL", "https://shop.example.com"),
            ("DB_USERNAME", "forge"),
            ("DB_DATABASE", "shop"),
            ("REDIS_PREFIX", "shop_"),
            ("CACHE_PREFIX", "shop_cache"),
            ("MAIL_FROM_ADDRESS", "hello@example.com"),
            ("LOG_CHANNEL", "stack"),
            ("SESSION_DRIVER", "redis"),
            ("QUEUE_CONNECTION", "redis"),
            ("BROADCAST_DRIVER", "log"),
            ("APP_NAME", "Shop"),
            ("DB_HOST", "127.0.0.1"),
            ("DB_PORT", "3306"),
            ("KEYCLOAK_URL", "https://sso.example.com/realms/shop"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ] {
            assert!(!is_secret(key, value), "{key}");
        }
    }

    #[test]
    fn empty_values_are_never_secrets() {
        assert!(!is_secret("DB_PASSWORD", ""));
        assert!(!is_secret("APP_KEY", ""));
    }

    #[test]
    fn base64_values_and_urls_with_passwords_are_secrets_under_any_key() {
        assert!(is_secret("SOMETHING", "base64:AAAA"));
        assert!(is_secret(
            "DATABASE_URL",
            "mysql://shop:s3cret@127.0.0.1/shop"
        ));
        assert!(is_secret("REDIS_URL", "redis://:pw@host:6379"));
    }

    #[test]
    fn url_credentials_need_a_scheme_and_a_non_empty_password() {
        for value in [
            "mysql://shop:s3cret@127.0.0.1/shop",
            "redis://:pw@host:6379",
            "amqp://guest:guest@localhost:5672/",
            "tcp://a:6379,tcp://u:p@b:6379",
            "smtp+tls://user:p@ss@mail.example.com",
            " postgres://u:p%40ss@db/app",
        ] {
            assert!(has_url_credentials(value), "{value}");
        }
        for value in [
            "https://shop.example.com",
            "redis://host:6379",
            "https://user@host/path",
            "https://user:@host/path",
            "https://example.com/path?email=a@b.com",
            "user:password@host",
            "://u:p@host",
            "1http://u:p@host",
            "https://u:p @host",
            "",
        ] {
            assert!(!has_url_credentials(value), "{value}");
        }
    }
}
