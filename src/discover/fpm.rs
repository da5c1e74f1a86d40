//! Reading PHP-FPM pool files (`/etc/php/<version>/fpm/pool.d/*.conf`) into the pools they define.
//!
//! php-fpm hands each line of the file, with a newline, to PHP's INI scanner in normal mode,
//! and that is emulated here: `[name]` starts a pool (`[global]` is not one); `key = value`;
//! `;` starts a comment anywhere outside quotes (a line starting with `#` is taken as a comment
//! too); double-quoted parts resolve `\"`, `\\` and `\$` and eat the blanks around them;
//! single-quoted parts are literal; `name[offset]` keys keep their brackets. Then, as php-fpm
//! does, each `$pool` in a value becomes the pool's name. Values are otherwise kept as written:
//! PHP's `yes`/`off` words, constants (`E_ALL`), operators and `${VAR}` are not evaluated.

/// A place in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file's path.
    pub file: String,
    /// The 1-based line within that file.
    pub line: usize,
}

/// One pool: a `[name]` section other than `[global]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    /// Where the section's header is (its first header when the section is repeated).
    pub at: Location,
    /// The PHP version the path names (`/etc/php/8.2/fpm/pool.d/…` gives `8.2`).
    pub version: Option<String>,
    /// The last `user` of the pool.
    pub user: Option<String>,
    /// The last `group` of the pool.
    pub group: Option<String>,
    /// The last `listen` of the pool.
    pub listen: Option<String>,
    /// Every `key = value` of the pool in file order, repeats included, `$pool` replaced.
    pub settings: Vec<(String, String, Location)>,
}

/// Every pool of one file, in the order of their first header; a repeated section adds to
/// the pool it names, as php-fpm does. Settings before the first pool, or in `[global]`, are
/// left out.
pub fn parse(file: &str, text: &str) -> Vec<Pool> {
    let version = version_of(file);
    let mut pools: Vec<Pool> = Vec::new();
    let mut current: Option<usize> = None;
    for (index, raw) in text.lines().enumerate() {
        let at = Location {
            file: file.to_string(),
            line: index + 1,
        };
        match read_line(raw) {
            Line::Nothing => {}
            Line::Section(name) => current = enter(&mut pools, name, at, version.as_deref()),
            Line::Setting(key, value) => {
                if let Some(pool) = current.and_then(|i| pools.get_mut(i)) {
                    let value = value.replace("$pool", &pool.name);
                    pool.settings.push((key, value, at));
                }
            }
        }
    }
    for pool in &mut pools {
        pool.user = last(&pool.settings, "user");
        pool.group = last(&pool.settings, "group");
        pool.listen = last(&pool.settings, "listen");
    }
    pools
}

/// What one line holds.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Nothing,
    Section(String),
    Setting(String, String),
}

/// The version directory of a path `…/php/<version>/fpm/…`.
fn version_of(file: &str) -> Option<String> {
    let parts: Vec<&str> = file.split('/').collect();
    parts.windows(3).find_map(|window| match window {
        ["php", version, "fpm"] if is_version(version) => Some((*version).to_string()),
        _ => None,
    })
}

/// Digits separated by single dots (`8.2`, `7.4`, `8`).
fn is_version(text: &str) -> bool {
    text.split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Starts a pool, goes back to one already seen, or (for `[global]`) leaves every pool.
fn enter(
    pools: &mut Vec<Pool>,
    name: String,
    at: Location,
    version: Option<&str>,
) -> Option<usize> {
    if name.eq_ignore_ascii_case("global") {
        return None;
    }
    if let Some(index) = pools.iter().position(|pool| pool.name == name) {
        return Some(index);
    }
    pools.push(Pool {
        name,
        at,
        version: version.map(str::to_string),
        user: None,
        group: None,
        listen: None,
        settings: Vec::new(),
    });
    Some(pools.len() - 1)
}

/// The last value of a directive; directive names are case-insensitive to php-fpm.
fn last(settings: &[(String, String, Location)], key: &str) -> Option<String> {
    settings
        .iter()
        .rev()
        .find(|(k, _, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, value, _)| value.clone())
}

fn read_line(raw: &str) -> Line {
    let line = raw.trim();
    if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
        return Line::Nothing;
    }
    if let Some(inner) = line.strip_prefix('[') {
        return section_name(inner).map_or(Line::Nothing, Line::Section);
    }
    let Some((key, value)) = line.split_once('=') else {
        return Line::Nothing;
    };
    match key_of(key) {
        Some(key) => Line::Setting(key, value_of(value)),
        None => Line::Nothing,
    }
}

/// The name up to the first `]`, as written (blanks kept, double quotes removed).
fn section_name(inner: &str) -> Option<String> {
    let (name, _) = inner.split_once(']')?;
    Some(unquote(name).to_string())
}

/// The key, trimmed; `name[offset]` keeps its brackets, the offset without leading blanks or
/// double quotes.
fn key_of(key: &str) -> Option<String> {
    let key = key.trim();
    let Some((name, offset)) = key.split_once('[') else {
        return (!key.is_empty()).then(|| key.to_string());
    };
    let offset = offset.strip_suffix(']')?;
    let name = name.trim_end();
    if name.is_empty() || offset.contains(['[', ']']) {
        return None;
    }
    Some(format!("{name}[{}]", unquote(offset.trim_start())))
}

/// The text inside double quotes when it is wrapped in them, otherwise the text.
fn unquote(text: &str) -> &str {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text)
}

/// A value as PHP's INI scanner reads it, without evaluating anything.
fn value_of(text: &str) -> String {
    let mut out = String::new();
    // How much of `out` is quoted, and so is kept when blanks are trimmed.
    let mut kept = 0;
    let mut rest = text.trim_start_matches(BLANKS);
    while let Some(c) = rest.chars().next() {
        match c {
            ';' => break,
            '"' => {
                trim_blanks(&mut out, kept);
                let Some((quoted, after)) = double_quoted(&rest[1..]) else {
                    // php-fpm refuses an unclosed quote; keep what is written.
                    out.push_str(rest);
                    return out.trim_end().to_string();
                };
                out.push_str(&quoted);
                kept = out.len();
                rest = after.trim_start_matches(BLANKS);
            }
            '\'' => {
                // PHP drops what follows an unclosed or empty single quote.
                let Some((quoted, after)) =
                    rest[1..].split_once('\'').filter(|(q, _)| !q.is_empty())
                else {
                    return out;
                };
                out.push_str(quoted);
                kept = out.len();
                rest = after;
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    trim_blanks(&mut out, kept);
    out
}

/// The blanks PHP's INI scanner skips around values and quotes.
const BLANKS: [char; 3] = [' ', '\t', '\r'];

/// Removes trailing blanks from `out`, not cutting into its first `kept` bytes.
fn trim_blanks(out: &mut String, kept: usize) {
    let trimmed = out.trim_end_matches(BLANKS).len().max(kept);
    out.truncate(trimmed);
}

/// A double-quoted string's content (escapes resolved) and the text after its closing quote.
fn double_quoted(text: &str) -> Option<(String, &str)> {
    let mut content = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Some((content, &text[index + 1..])),
            '\\' => {
                let (next_index, next) = chars.next()?;
                let after = &text[next_index + next.len_utf8()..];
                // PHP's case for Windows paths: `"C:\path\"` ends at the escaped quote that ends the line.
                if next == '"' && (after.is_empty() || after.starts_with('\r')) {
                    content.push('\\');
                    return Some((content, after));
                }
                if !matches!(next, '"' | '\\' | '$') {
                    content.push('\\');
                }
                content.push(next);
            }
            _ => content.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's www.conf, shortened: its settings and a sample of its comments.
    const DEBIAN_WWW: &str = "; Start a new pool named 'www'.
; the variable $pool can be used in any directive and will be replaced by the
; pool name ('www' here)
[www]

; Per pool prefix
; It only applies on the following directives:
;prefix = /path/to/pools/$pool

; Unix user/group of the child processes.
user = www-data
group = www-data

; The address on which to accept FastCGI requests.
listen = /run/php/php8.2-fpm.sock

listen.owner = www-data
listen.group = www-data
;listen.mode = 0660
;listen.acl_users =

pm = dynamic
pm.max_children = 5
pm.start_servers = 2
pm.min_spare_servers = 1
pm.max_spare_servers = 3
;pm.max_spawn_rate = 32
;pm.process_idle_timeout = 10s;

;access.format = \"%R - %u %t \\\"%m %r%Q%q\\\" %s %f %{milli}d %{kilo}M %C%%\"
;php_admin_value[error_log] = /var/log/fpm-php.www.log
;php_admin_flag[log_errors] = on
;php_admin_value[memory_limit] = 32M
";

    const FILE: &str = "/etc/php/8.2/fpm/pool.d/www.conf";

    fn at(line: usize) -> Location {
        Location {
            file: FILE.to_string(),
            line,
        }
    }

    /// The one pool of a file.
    fn only(text: &str) -> Pool {
        let pools = parse(FILE, text);
        assert_eq!(pools.len(), 1, "{pools:#?}");
        pools.into_iter().next().expect("one pool")
    }

    /// The value of a one-line pool's only setting.
    fn value(line: &str) -> String {
        let pool = only(&format!("[p]\n{line}\n"));
        assert_eq!(pool.settings.len(), 1, "{line}");
        pool.settings[0].1.clone()
    }

    #[test]
    fn debian_www_pool_gives_user_group_and_listen() {
        let pool = only(DEBIAN_WWW);
        assert_eq!(pool.name, "www");
        assert_eq!(pool.at, at(4));
        assert_eq!(pool.version.as_deref(), Some("8.2"));
        assert_eq!(pool.user.as_deref(), Some("www-data"));
        assert_eq!(pool.group.as_deref(), Some("www-data"));
        assert_eq!(pool.listen.as_deref(), Some("/run/php/php8.2-fpm.sock"));
        assert_eq!(pool.settings.len(), 10);
        assert_eq!(
            pool.settings[0],
            ("user".to_string(), "www-data".to_string(), at(11))
        );
        assert_eq!(
            pool.settings[9],
            ("pm.max_spare_servers".to_string(), "3".to_string(), at(26))
        );
    }

    #[test]
    fn version_comes_from_the_path() {
        let text = "[a]\nuser = a\n";
        assert_eq!(
            parse("/etc/php/7.4/fpm/pool.d/a.conf", text)[0]
                .version
                .as_deref(),
            Some("7.4")
        );
        assert_eq!(parse("/etc/php-fpm.d/a.conf", text)[0].version, None);
        assert_eq!(
            parse("/etc/php/current/fpm/pool.d/a.conf", text)[0].version,
            None
        );
        assert_eq!(parse("a.conf", text)[0].version, None);
    }

    #[test]
    fn pool_variable_is_replaced_by_the_pool_name() {
        let pool = only(
            "[shop]\nlisten = /run/php/php8.2-fpm-$pool.sock\nslowlog = \"/var/log/$pool/$pool.slow\"\n\
             php_admin_value[error_log] = /var/log/$pool.log\n",
        );
        assert_eq!(
            pool.listen.as_deref(),
            Some("/run/php/php8.2-fpm-shop.sock")
        );
        assert_eq!(pool.settings[1].1, "/var/log/shop/shop.slow");
        assert_eq!(pool.settings[2].1, "/var/log/shop.log");
    }

    #[test]
    fn several_pools_in_one_file_and_global_is_not_a_pool() {
        let text =
            "[global]\npid = /run/php.pid\n[a]\nuser = a\n[b]\nuser = b\n[GLOBAL]\nerror_log = x\n";
        let pools = parse(FILE, text);
        let names: Vec<(&str, Option<&str>, usize)> = pools
            .iter()
            .map(|p| (p.name.as_str(), p.user.as_deref(), p.at.line))
            .collect();
        assert_eq!(names, vec![("a", Some("a"), 3), ("b", Some("b"), 5)]);
        assert!(pools.iter().all(|p| p.settings.len() == 1));
    }

    #[test]
    fn a_repeated_pool_is_merged_and_the_last_value_wins() {
        let text = "[a]\nuser = old\n[b]\nuser = b\n[a]\nuser = new\n";
        let pools = parse(FILE, text);
        assert_eq!(pools.len(), 2);
        assert_eq!(pools[0].at.line, 1);
        assert_eq!(pools[0].user.as_deref(), Some("new"));
        assert_eq!(pools[0].settings.len(), 2);
    }

    #[test]
    fn directive_names_match_case_insensitively() {
        let pool = only("[a]\nUser = deploy\nLISTEN = 127.0.0.1:9000\n");
        assert_eq!(pool.user.as_deref(), Some("deploy"));
        assert_eq!(pool.listen.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(pool.settings[0].0, "User");
    }

    #[test]
    fn bracket_keys_keep_their_brackets() {
        let pool = only(
            "[a]\nphp_admin_value[memory_limit] = 512M\nphp_value [ upload_max_filesize] = 64M\n\
             env[\"PATH\"] = /usr/bin:/bin\nphp_value[a]b = 1\n",
        );
        let keys: Vec<&str> = pool.settings.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "php_admin_value[memory_limit]",
                "php_value[upload_max_filesize]",
                "env[PATH]"
            ]
        );
        assert_eq!(pool.settings[2].1, "/usr/bin:/bin");
    }

    #[test]
    fn comments_with_semicolon_anywhere_and_hash_at_line_start() {
        let pool =
            only("; top\n[a]\n  ; indented\n# hashed = 1\nuser = www ; inline\ngroup = www;x\n");
        assert_eq!(pool.user.as_deref(), Some("www"));
        assert_eq!(pool.group.as_deref(), Some("www"));
        assert_eq!(pool.settings.len(), 2);
    }

    #[test]
    fn unquoted_values_are_trimmed_and_keep_inner_blanks_and_hashes() {
        assert_eq!(value("k =   spaced   value  "), "spaced   value");
        assert_eq!(value("k=v"), "v");
        assert_eq!(value("k = a#b"), "a#b");
        assert_eq!(value("k = www-data,nginx"), "www-data,nginx");
        assert_eq!(value("k ="), "");
    }

    #[test]
    fn double_quoted_values_resolve_escapes_and_keep_semicolons_and_blanks() {
        assert_eq!(value("k = \"quoted\""), "quoted");
        assert_eq!(value("k = \"  pad  \"  ; c"), "  pad  ");
        assert_eq!(value("k = \"a;b\""), "a;b");
        assert_eq!(
            value(r#"k = "q \" b \\ d \$ n \n x \d""#),
            r#"q " b \ d $ n \n x \d"#
        );
        assert_eq!(
            value(r#"access.format = "%R - %u %t \"%m %r%Q%q\" %s %f %{mili}d %{kilo}M %C%%""#),
            r#"%R - %u %t "%m %r%Q%q" %s %f %{mili}d %{kilo}M %C%%"#
        );
    }

    #[test]
    fn a_backslash_before_the_closing_quote_at_line_end_is_kept_as_php_does_for_paths() {
        assert_eq!(value(r#"k = "C:\path\""#), r"C:\path\");
        assert_eq!(value(r#"k = "a\é""#), r"a\é");
    }

    #[test]
    fn quoted_parts_join_as_php_joins_them() {
        assert_eq!(value("k = \"a\" \"b\""), "ab");
        assert_eq!(value("k = a b \"c\" d e"), "a bcd e");
        assert_eq!(value("k = \" a \" x"), " a x");
        assert_eq!(value("k = 'a' 'b'"), "a b");
        assert_eq!(value("k = 'single \\ \" ;x'"), "single \\ \" ;x");
        assert_eq!(value("k = it's"), "it");
        assert_eq!(value("k = a ''b"), "a ");
    }

    #[test]
    fn php_words_constants_and_variables_are_kept_as_written() {
        assert_eq!(value("k = yes"), "yes");
        assert_eq!(value("k = E_ALL & ~E_DEPRECATED"), "E_ALL & ~E_DEPRECATED");
        assert_eq!(value("k = ${HOME}/x"), "${HOME}/x");
    }

    #[test]
    fn settings_outside_a_pool_and_lines_without_equals_are_ignored() {
        let pool = only("user = nobody\n[a]\njust words\nuser = a\n");
        assert_eq!(pool.settings.len(), 1);
        assert_eq!(pool.user.as_deref(), Some("a"));
    }

    #[test]
    fn section_names_are_taken_as_php_reads_them() {
        let names: Vec<String> = parse(FILE, "[\"quoted\"]\n[ spaced ]\n[tail] ; c\n")
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, vec!["quoted", " spaced ", "tail"]);
    }

    #[test]
    fn crlf_line_endings_are_read_like_newlines() {
        let pool = only("[a]\r\nuser = www\r\nlisten = \"/run/a.sock\"\r\n");
        assert_eq!(pool.user.as_deref(), Some("www"));
        assert_eq!(pool.listen.as_deref(), Some("/run/a.sock"));
    }

    #[test]
    fn an_empty_file_has_no_pools() {
        assert!(parse(FILE, "").is_empty());
    }
}
