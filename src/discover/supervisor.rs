//! Reading supervisord's INI files (`/etc/supervisor/conf.d/*.conf`) into the programs they define.
//!
//! The file is read the way supervisord 4 on Python 3 reads it (`UnhosedConfigParser`, a
//! `RawConfigParser` with `inline_comment_prefixes=(';', '#')` and `strict=False`): `key=value`,
//! `key = value` or `key: value`; full-line comments start with `;` or `#`; an inline comment is
//! a `;` or `#` at the start of the line or after whitespace; a more indented line continues the
//! previous value (joined with a newline); keys are lower-cased; a section or key given twice is
//! merged, the later value winning. Only `[program:x]` sections are programs. Of supervisord's
//! `%(...)` expansions only `%(program_name)s` is applied; the others are left as written.

/// A place in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file's path.
    pub file: String,
    /// The 1-based line within that file.
    pub line: usize,
}

/// One `[program:x]` section, as supervisord reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The name after `program:`, trimmed.
    pub name: String,
    /// Where the section's header is (its first header when the section is repeated).
    pub at: Location,
    pub command: Option<String>,
    pub directory: Option<String>,
    pub user: Option<String>,
    /// `numprocs`: 1 when absent or not a number.
    pub numprocs: u32,
    /// `stopwaitsecs`, when present and a number.
    pub stop_wait_seconds: Option<u32>,
    /// `autostart`, when present and one of supervisord's booleans.
    pub autostart: Option<bool>,
    /// Every `key=value` of the section in file order (repeats included), keys lower-cased,
    /// values with `%(program_name)s` replaced.
    pub settings: Vec<(String, String, Location)>,
}

/// Every `[program:x]` section of one file, in the order of their first header. Other sections
/// (`[group:x]`, `[eventlistener:x]`, …) and programs whose name supervisord refuses (empty, or
/// holding a space, `:` or `/`) are left out.
pub fn parse(file: &str, text: &str) -> Vec<Program> {
    read_sections(text)
        .iter()
        .filter_map(|section| program(file, section))
        .collect()
}

/// Words supervisord takes for true and false (case-insensitive).
const TRUTHY: [&str; 4] = ["true", "yes", "on", "1"];
const FALSY: [&str; 4] = ["false", "no", "off", "0"];

/// The placeholder supervisord replaces by the program's name.
const PROGRAM_NAME: &str = "%(program_name)s";

/// A section as configparser holds it.
#[derive(Debug)]
struct Section {
    header: String,
    line: usize,
    options: Vec<RawOption>,
}

/// One option: its key, its value's lines (continuations after the first) and its key's line.
#[derive(Debug)]
struct RawOption {
    key: String,
    lines: Vec<String>,
    line: usize,
}

/// configparser's reading state.
#[derive(Debug, Default)]
struct Reader {
    sections: Vec<Section>,
    current: Option<usize>,
    option_open: bool,
    indent_level: usize,
}

fn read_sections(text: &str) -> Vec<Section> {
    let mut reader = Reader::default();
    for (index, raw) in text.lines().enumerate() {
        reader.feed(index + 1, raw);
    }
    reader.sections
}

impl Reader {
    fn feed(&mut self, line: usize, raw: &str) {
        let (clean, commented) = strip_comments(raw);
        if clean.is_empty() {
            // A blank line inside a value is kept (trailing ones are trimmed at the end).
            if let Some(option) = self.open_option().filter(|_| !commented) {
                option.lines.push(String::new());
            }
            return;
        }
        let indent = indent_of(raw);
        if indent > self.indent_level
            && let Some(option) = self.open_option()
        {
            option.lines.push(clean.to_string());
            return;
        }
        self.indent_level = indent;
        self.option_open = false;
        if let Some(header) = section_header(clean) {
            self.enter(header, line);
        } else if let Some((key, value)) = split_option(clean) {
            self.add_option(key, value, line);
        }
    }

    /// The option a continuation line would extend.
    fn open_option(&mut self) -> Option<&mut RawOption> {
        if !self.option_open {
            return None;
        }
        let section = self.sections.get_mut(self.current?)?;
        section.options.last_mut()
    }

    /// Starts a section, or goes back to one already seen.
    fn enter(&mut self, header: &str, line: usize) {
        let seen = self.sections.iter().position(|s| s.header == header);
        self.current = Some(seen.unwrap_or(self.sections.len()));
        if seen.is_none() {
            self.sections.push(Section {
                header: header.to_string(),
                line,
                options: Vec::new(),
            });
        }
    }

    /// Adds an option to the current section; one before any section is ignored.
    fn add_option(&mut self, key: String, value: &str, line: usize) {
        let Some(section) = self.current.and_then(|i| self.sections.get_mut(i)) else {
            return;
        };
        section.options.push(RawOption {
            key,
            lines: vec![value.to_string()],
            line,
        });
        self.option_open = true;
    }
}

/// The line without comments, trimmed, and whether a comment was removed.
fn strip_comments(raw: &str) -> (&str, bool) {
    let trimmed = raw.trim();
    if trimmed.starts_with(';') || trimmed.starts_with('#') {
        return ("", true);
    }
    match inline_comment_start(raw) {
        Some(start) => (raw[..start].trim(), true),
        None => (trimmed, false),
    }
}

/// Where an inline comment starts, found as Python's configparser (up to 3.12) finds it: each
/// round moves every prefix (`;`, `#`) to its next occurrence; the first round in which an
/// occurrence starts the line or follows whitespace ends the search at the earliest such one.
fn inline_comment_start(raw: &str) -> Option<usize> {
    let mut searches: Vec<(char, usize)> = vec![(';', 0), ('#', 0)];
    while !searches.is_empty() {
        let mut start: Option<usize> = None;
        searches.retain_mut(|(prefix, from)| {
            let Some(found) = raw.get(*from..).and_then(|rest| rest.find(*prefix)) else {
                return false;
            };
            let index = *from + found;
            *from = index + 1;
            if raw[..index]
                .chars()
                .next_back()
                .is_none_or(char::is_whitespace)
            {
                start = Some(start.map_or(index, |s| s.min(index)));
            }
            true
        });
        if start.is_some() {
            return start;
        }
    }
    None
}

/// How many characters of whitespace start the line.
fn indent_of(raw: &str) -> usize {
    raw.chars().take_while(|c| c.is_whitespace()).count()
}

/// The name of a `[header]` line: everything between `[` and the last `]`.
fn section_header(clean: &str) -> Option<&str> {
    let inner = clean.strip_prefix('[')?;
    let end = inner.rfind(']')?;
    Some(&inner[..end]).filter(|header| !header.is_empty())
}

/// `key=value` or `key: value` split at the first `=` or `:`; the key lower-cased.
fn split_option(clean: &str) -> Option<(String, &str)> {
    let at = clean.find(['=', ':'])?;
    let key = clean[..at].trim_end();
    if key.is_empty() {
        return None;
    }
    Some((key.to_lowercase(), clean[at + 1..].trim()))
}

/// The program a section defines, when it is a `[program:x]` with a name supervisord accepts.
fn program(file: &str, section: &Section) -> Option<Program> {
    let name = section.header.strip_prefix("program:")?.trim();
    if name.is_empty() || name.contains([' ', ':', '/']) {
        return None;
    }
    let at = |line| Location {
        file: file.to_string(),
        line,
    };
    let settings: Vec<(String, String, Location)> = section
        .options
        .iter()
        .map(|option| {
            let value = expand_program_name(&join_lines(&option.lines), name);
            (option.key.clone(), value, at(option.line))
        })
        .collect();
    let last = |key: &str| {
        settings
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, value, _)| value.clone())
    };
    Some(Program {
        name: name.to_string(),
        at: at(section.line),
        command: last("command"),
        directory: last("directory"),
        user: last("user"),
        numprocs: last("numprocs").and_then(|v| v.parse().ok()).unwrap_or(1),
        stop_wait_seconds: last("stopwaitsecs").and_then(|v| v.parse().ok()),
        autostart: last("autostart").and_then(|v| boolean(&v)),
        settings,
    })
}

/// A value's lines joined by newlines, trailing blank lines dropped.
fn join_lines(lines: &[String]) -> String {
    lines.join("\n").trim_end().to_string()
}

/// The value with each `%(program_name)s` replaced by `name`; `%%` stays an escaped `%`.
fn expand_program_name(value: &str, name: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        rest = if let Some(after) = tail.strip_prefix(PROGRAM_NAME) {
            out.push_str(name);
            after
        } else if let Some(after) = tail.strip_prefix("%%") {
            out.push_str("%%");
            after
        } else {
            out.push('%');
            &tail[1..]
        };
    }
    out.push_str(rest);
    out
}

/// A supervisord boolean, case-insensitive.
fn boolean(value: &str) -> Option<bool> {
    let value = value.to_lowercase();
    if TRUTHY.contains(&value.as_str()) {
        Some(true)
    } else if FALSY.contains(&value.as_str()) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORGE: &str = "[program:daemon-123456]
directory=/home/forge/example.com
command=php8.2 artisan queue:work redis --sleep=3 --tries=3 --max-time=3600
process_name=%(program_name)s_%(process_num)02d
autostart=true
autorestart=true
stopasgroup=true
killasgroup=true
user=forge
numprocs=1
startsecs=1
redirect_stderr=true
stdout_logfile=/home/forge/.forge/daemon-123456.log
stopwaitsecs=3600
stopsignal=SIGTERM
stopasgroup=true
";

    const VITO: &str = "[program:5]
command=php /home/vito/example.com/artisan queue:work --sleep=3 --tries=3
autostart=1
autorestart=1
user=vito
redirect_stderr=true
stdout_logfile=/home/vito/.logs/workers/5.log
stopwaitsecs=3600
numprocs=2
";

    fn at(file: &str, line: usize) -> Location {
        Location {
            file: file.to_string(),
            line,
        }
    }

    /// The one program of a file.
    fn only(text: &str) -> Program {
        let programs = parse("/etc/supervisor/conf.d/test.conf", text);
        assert_eq!(programs.len(), 1, "{programs:#?}");
        programs.into_iter().next().expect("one program")
    }

    fn setting<'p>(program: &'p Program, key: &str) -> Option<&'p str> {
        program
            .settings
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, value, _)| value.as_str())
    }

    #[test]
    fn forge_daemon_program_gives_command_directory_and_user() {
        let file = "/etc/supervisor/conf.d/daemon-123456.conf";
        let programs = parse(file, FORGE);
        assert_eq!(programs.len(), 1);
        let program = &programs[0];
        assert_eq!(program.name, "daemon-123456");
        assert_eq!(program.at, at(file, 1));
        assert_eq!(
            program.command.as_deref(),
            Some("php8.2 artisan queue:work redis --sleep=3 --tries=3 --max-time=3600")
        );
        assert_eq!(
            program.directory.as_deref(),
            Some("/home/forge/example.com")
        );
        assert_eq!(program.user.as_deref(), Some("forge"));
        assert_eq!(program.numprocs, 1);
        assert_eq!(program.stop_wait_seconds, Some(3600));
        assert_eq!(program.autostart, Some(true));
    }

    #[test]
    fn forge_settings_keep_every_line_in_order_with_repeats() {
        let file = "/etc/supervisor/conf.d/daemon-123456.conf";
        let program = &parse(file, FORGE)[0];
        assert_eq!(program.settings.len(), 15);
        assert_eq!(
            program.settings[0],
            (
                "directory".to_string(),
                "/home/forge/example.com".to_string(),
                at(file, 2)
            )
        );
        let repeats: Vec<usize> = program
            .settings
            .iter()
            .filter(|(key, _, _)| key == "stopasgroup")
            .map(|(_, _, at)| at.line)
            .collect();
        assert_eq!(repeats, vec![7, 16]);
    }

    #[test]
    fn program_name_placeholder_is_replaced_and_others_are_left_as_written() {
        let program = &parse("f", FORGE)[0];
        assert_eq!(
            setting(program, "process_name"),
            Some("daemon-123456_%(process_num)02d")
        );
        let program = only(
            "[program:web]\ncommand=%(here)s/run %(ENV_HOME)s %(program_name)s %%(program_name)s 100%\n",
        );
        assert_eq!(
            program.command.as_deref(),
            Some("%(here)s/run %(ENV_HOME)s web %%(program_name)s 100%")
        );
    }

    #[test]
    fn vito_program_has_no_directory_and_two_processes() {
        let file = "/etc/supervisor/conf.d/5.conf";
        let program = &parse(file, VITO)[0];
        assert_eq!(program.name, "5");
        assert_eq!(
            program.command.as_deref(),
            Some("php /home/vito/example.com/artisan queue:work --sleep=3 --tries=3")
        );
        assert_eq!(program.directory, None);
        assert_eq!(program.user.as_deref(), Some("vito"));
        assert_eq!(program.numprocs, 2);
        assert_eq!(program.autostart, Some(true));
        assert_eq!(
            setting(program, "stdout_logfile"),
            Some("/home/vito/.logs/workers/5.log")
        );
    }

    #[test]
    fn equals_with_spaces_and_colon_both_separate_key_from_value() {
        let program =
            only("[program:a]\ncommand = php artisan horizon\nuser: deploy\ndirectory :/srv/a\n");
        assert_eq!(program.command.as_deref(), Some("php artisan horizon"));
        assert_eq!(program.user.as_deref(), Some("deploy"));
        assert_eq!(program.directory.as_deref(), Some("/srv/a"));
    }

    #[test]
    fn the_first_equals_or_colon_ends_the_key() {
        let program = only("[program:a]\ncommand=php artisan queue:work --queue=high,low\n");
        assert_eq!(
            program.command.as_deref(),
            Some("php artisan queue:work --queue=high,low")
        );
    }

    #[test]
    fn keys_are_lower_cased() {
        let program = only("[program:a]\nCOMMAND=run\nUser=www\n");
        assert_eq!(program.command.as_deref(), Some("run"));
        assert_eq!(program.user.as_deref(), Some("www"));
        assert_eq!(program.settings[0].0, "command");
    }

    #[test]
    fn full_line_comments_with_semicolon_or_hash_are_skipped() {
        let program =
            only("; managed by hand\n[program:a]\n# user=root\n  ; user=nobody\nuser=www\n");
        assert_eq!(program.user.as_deref(), Some("www"));
        assert_eq!(program.settings.len(), 1);
    }

    #[test]
    fn semicolon_after_whitespace_starts_an_inline_comment() {
        let program = only("[program:a]\ncommand=php artisan queue:work ; the default queue\n");
        assert_eq!(program.command.as_deref(), Some("php artisan queue:work"));
    }

    #[test]
    fn hash_after_whitespace_starts_an_inline_comment_as_on_python_3() {
        let program = only("[program:a]\ncommand=php artisan queue:work\t# the default queue\n");
        assert_eq!(program.command.as_deref(), Some("php artisan queue:work"));
    }

    #[test]
    fn semicolon_or_hash_inside_a_word_is_kept() {
        let program = only("[program:a]\ncommand=sh -c 'a;b' --tag=#1\n");
        assert_eq!(program.command.as_deref(), Some("sh -c 'a;b' --tag=#1"));
    }

    #[test]
    fn indented_lines_continue_the_value_joined_with_newlines() {
        let program = only(
            "[program:a]\ncommand=first\n  second\n\n  ; a comment inside\n    third\n\n\nuser=www\n",
        );
        assert_eq!(program.command.as_deref(), Some("first\nsecond\n\nthird"));
        assert_eq!(program.user.as_deref(), Some("www"));
        assert_eq!(program.settings[0].2.line, 2);
    }

    #[test]
    fn an_indented_key_after_a_header_is_a_key_not_a_continuation() {
        let program = only("[program:a]\n  command=run\n  user=www\n");
        assert_eq!(program.command.as_deref(), Some("run"));
        assert_eq!(program.user.as_deref(), Some("www"));
    }

    #[test]
    fn group_and_other_sections_are_ignored() {
        let text = "[group:workers]\nprograms=a,b\n[program:a]\ncommand=run-a\n\
                    [eventlistener:x]\ncommand=listen\n[program:b]\ncommand=run-b\n";
        let programs = parse("f", text);
        let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(programs[1].at.line, 7);
        assert_eq!(programs[1].command.as_deref(), Some("run-b"));
    }

    #[test]
    fn a_repeated_section_is_merged_and_the_later_value_wins() {
        let text = "[program:a]\ncommand=old\n[program:b]\ncommand=b\n[program:a]\ncommand=new\n";
        let programs = parse("f", text);
        assert_eq!(programs.len(), 2);
        assert_eq!(programs[0].at.line, 1);
        assert_eq!(programs[0].command.as_deref(), Some("new"));
        assert_eq!(programs[0].settings.len(), 2);
    }

    #[test]
    fn names_are_trimmed_and_names_supervisord_refuses_are_left_out() {
        let text = "[program: spaced ]\ncommand=a\n[program:two words]\ncommand=b\n\
                    [program:a:b]\ncommand=c\n[program:]\ncommand=d\n";
        let names: Vec<String> = parse("f", text).into_iter().map(|p| p.name).collect();
        assert_eq!(names, vec!["spaced"]);
    }

    #[test]
    fn booleans_take_every_supervisord_spelling() {
        for (word, expected) in [
            ("true", Some(true)),
            ("YES", Some(true)),
            ("on", Some(true)),
            ("1", Some(true)),
            ("False", Some(false)),
            ("no", Some(false)),
            ("off", Some(false)),
            ("0", Some(false)),
            ("maybe", None),
        ] {
            let program = only(&format!("[program:a]\nautostart={word}\n"));
            assert_eq!(program.autostart, expected, "{word}");
        }
    }

    #[test]
    fn missing_or_invalid_numbers_give_defaults() {
        let program = only("[program:a]\ncommand=run\n");
        assert_eq!(program.numprocs, 1);
        assert_eq!(program.stop_wait_seconds, None);
        assert_eq!(program.autostart, None);
        let program = only("[program:a]\nnumprocs=two\nstopwaitsecs=-1\n");
        assert_eq!(program.numprocs, 1);
        assert_eq!(program.stop_wait_seconds, None);
    }

    #[test]
    fn lines_before_any_section_and_lines_without_separator_are_ignored() {
        let program = only("command=stray\n[program:a]\nnot an option\ncommand=run\n");
        assert_eq!(program.command.as_deref(), Some("run"));
        assert_eq!(program.settings.len(), 1);
    }

    #[test]
    fn crlf_line_endings_are_read_like_newlines() {
        let program = only("[program:a]\r\ncommand=run\r\nuser=www\r\n");
        assert_eq!(program.command.as_deref(), Some("run"));
        assert_eq!(program.user.as_deref(), Some("www"));
    }

    #[test]
    fn an_empty_file_has_no_programs() {
        assert!(parse("f", "").is_empty());
        assert!(parse("f", "; only a comment\n").is_empty());
    }
}
