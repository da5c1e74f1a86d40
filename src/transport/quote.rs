//! The one quoting function every remote command goes through, a small command builder, and the identifier allow-list.
//!
//! Remote commands are strings that a POSIX shell on the server parses. Every value that is not
//! a constant of siteward's own source is passed through [`quote`], which makes it one literal
//! word whatever it contains (quotes, `$()`, backticks, newlines, globs, braces, a leading `-`).
//! Names that end up in places where quoting is not enough (Linux users, database names, file
//! names under `/etc`) are first checked by [`validate_identifier`].

use std::fmt;

/// Why a value could not be made part of a remote command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// A NUL byte cannot be passed through `execve` or an SSH exec request.
    #[error(
        "a command argument contains a NUL byte at offset {offset}, which no shell can pass on"
    )]
    NulByte {
        /// Byte offset of the first NUL.
        offset: usize,
    },
    /// A value sent as one line of a list holds a line break (or a NUL).
    #[error("{value:?} holds a line break at offset {offset}; it cannot be sent as one line")]
    LineBreak {
        /// The value, as given.
        value: String,
        /// Byte offset of the first line break.
        offset: usize,
    },
    /// A name failed the strict identifier allow-list.
    #[error(
        "invalid {kind} name {value:?}: {reason} (allowed: 1 to {IDENTIFIER_MAX_LEN} characters, \
         lowercase letters, digits, `_` and `-`, starting with a letter or `_`)"
    )]
    InvalidIdentifier {
        /// What the name names.
        kind: IdentifierKind,
        /// The rejected value, as given.
        value: String,
        /// The first rule it broke.
        reason: &'static str,
    },
}

/// Characters that never need quoting: a word made only of these is already one literal word.
///
/// `=` is left out on purpose so that a quoted word can never read as a variable assignment,
/// and `~` so that it is never a tilde expansion.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"_-./:,+@%".contains(&byte)
}

/// Quotes `arg` as one literal word for a POSIX shell (sh, dash, bash, zsh).
///
/// Words made only of `[A-Za-z0-9_./:,+@%-]` are returned as they are, so rendered commands stay
/// readable in logs; anything else is wrapped in single quotes, with each `'` written as `'\''`.
/// The empty string becomes `''`.
///
/// # Errors
/// [`QuoteError::NulByte`] when `arg` contains a NUL byte.
pub fn quote(arg: &str) -> Result<String, QuoteError> {
    if let Some(offset) = arg.bytes().position(|byte| byte == 0) {
        return Err(QuoteError::NulByte { offset });
    }
    if !arg.is_empty() && arg.bytes().all(is_plain) {
        return Ok(arg.to_owned());
    }
    let mut quoted = String::with_capacity(arg.len() + 2);
    quoted.push('\'');
    quoted.push_str(&arg.replace('\'', r"'\''"));
    quoted.push('\'');
    Ok(quoted)
}

/// Quotes every word and joins them with spaces.
///
/// # Errors
/// [`QuoteError::NulByte`] when any word contains a NUL byte.
pub fn quote_words<I, S>(words: I) -> Result<String, QuoteError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let quoted: Vec<String> = words
        .into_iter()
        .map(|word| quote(word.as_ref()))
        .collect::<Result<_, _>>()?;
    Ok(quoted.join(" "))
}

/// `sh -c <script>`: runs a whole script (pipes, redirections, `&&`) as one command.
///
/// # Errors
/// [`QuoteError::NulByte`] when `script` contains a NUL byte.
pub fn sh_c(script: &str) -> Result<String, QuoteError> {
    Ok(format!("sh -c {}", quote(script)?))
}

/// `sudo -n -- sh -c <command>`: runs `command` as root without ever prompting for a password.
///
/// # Errors
/// [`QuoteError::NulByte`] when `command` contains a NUL byte.
pub fn sudo(command: &str) -> Result<String, QuoteError> {
    Ok(format!("sudo -n -- {}", sh_c(command)?))
}

/// A remote command: a program and its arguments, each quoted when rendered.
///
/// ```
/// use siteward::transport::quote::Command;
/// let command = Command::new("mysql").arg("--defaults-extra-file").arg("/tmp/my cnf");
/// assert_eq!(command.render().unwrap(), "mysql --defaults-extra-file '/tmp/my cnf'");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    words: Vec<String>,
}

impl Command {
    /// A command that runs `program`.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            words: vec![program.into()],
        }
    }

    /// A shell script whose values arrive as positional parameters (`"$1"`, `"$2"`, …).
    ///
    /// This is the safe way to use pipes and redirections with untrusted values: the script
    /// is a constant of the caller's source and every value added with [`Command::arg`] stays
    /// data. Renders as `sh -c <script> siteward <args…>`.
    pub fn script(script: impl Into<String>) -> Self {
        Self::new("sh").arg("-c").arg(script).arg("siteward")
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.words.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.words.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command line for a POSIX shell, every word quoted by [`quote`].
    ///
    /// # Errors
    /// [`QuoteError::NulByte`] when a word contains a NUL byte.
    pub fn render(&self) -> Result<String, QuoteError> {
        quote_words(&self.words)
    }
}

/// The longest identifier accepted: the Linux user name limit, also safe for MySQL user names.
pub const IDENTIFIER_MAX_LEN: usize = 32;

/// What an identifier names, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierKind {
    /// A Linux user.
    User,
    /// A Linux group.
    Group,
    /// A database.
    Database,
    /// A database user (role).
    DatabaseUser,
    /// A queue worker.
    Worker,
    /// A cron job.
    Cron,
    /// A site.
    Site,
    /// A server.
    Server,
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::User => "user",
            Self::Group => "group",
            Self::Database => "database",
            Self::DatabaseUser => "database user",
            Self::Worker => "worker",
            Self::Cron => "cron",
            Self::Site => "site",
            Self::Server => "server",
        })
    }
}

/// Checks `value` against the strict allow-list `^[a-z_][a-z0-9_-]{0,31}$`.
///
/// Such a name is safe as a Linux user or group, a database or role name, and a file name
/// component, and needs no quoting anywhere; it is still quoted like any other value.
///
/// # Errors
/// [`QuoteError::InvalidIdentifier`] naming `kind`, the value and the rule it broke.
pub fn validate_identifier(kind: IdentifierKind, value: &str) -> Result<(), QuoteError> {
    identifier_problem(value).map_or(Ok(()), |reason| {
        Err(QuoteError::InvalidIdentifier {
            kind,
            value: value.to_owned(),
            reason,
        })
    })
}

fn identifier_problem(value: &str) -> Option<&'static str> {
    let Some(first) = value.bytes().next() else {
        return Some("is empty");
    };
    if value.len() > IDENTIFIER_MAX_LEN {
        return Some("too long");
    }
    if !(first.is_ascii_lowercase() || first == b'_') {
        return Some("must start with a lowercase letter or `_`");
    }
    let allowed =
        |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"_-".contains(&byte);
    (!value.bytes().all(allowed)).then_some("contains a character outside the allow-list")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs `sh -c <script>` on this machine and returns its stdout.
    fn run_sh(script: &str) -> String {
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh runs");
        assert!(output.status.success(), "sh failed: {output:?}");
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    fn printf_script(arg: &str) -> String {
        format!("printf %s {}", quote(arg).expect("quotable"))
    }

    /// Strings made of shell metacharacters, whitespace and non-ASCII, without NUL.
    fn nasty_string() -> impl Strategy<Value = String> {
        let pieces = prop_oneof![
            Just("'".to_owned()),
            Just("\"".to_owned()),
            Just("$(id)".to_owned()),
            Just("`id`".to_owned()),
            Just("\n".to_owned()),
            Just("{a,b}".to_owned()),
            Just("-oProxyCommand=x".to_owned()),
            Just("\\".to_owned()),
            Just("*?[a]".to_owned()),
            Just("~root".to_owned()),
            Just("a=b".to_owned()),
            Just(" \t;|&<>#!".to_owned()),
            Just("é漢🦀".to_owned()),
            "[^\u{0}]{0,8}",
        ];
        proptest::collection::vec(pieces, 0..8).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn quoted_strings_reach_a_real_shell_unchanged(arg in nasty_string()) {
            let script = "printf %s \"$1\"";
            let command = format!("sh -c {} sh {}", quote(script).unwrap(), quote(&arg).unwrap());
            prop_assert_eq!(run_sh(&command), arg);
        }

        #[test]
        fn doubly_quoted_strings_survive_the_sudo_style_wrapping(arg in nasty_string()) {
            prop_assert_eq!(run_sh(&sh_c(&printf_script(&arg)).unwrap()), arg);
        }

        #[test]
        fn rendered_commands_pass_every_argument_as_one_word(args in proptest::collection::vec(nasty_string(), 0..4)) {
            let command = Command::new("printf").arg("%s\\0").args(args.clone()).render().unwrap();
            let printed = run_sh(&command);
            let mut expected: String = args.iter().map(|arg| format!("{arg}\0")).collect();
            if args.is_empty() {
                expected.push('\0');
            }
            prop_assert_eq!(printed, expected);
        }
    }

    #[test]
    fn quote_refuses_a_nul_byte() {
        assert_eq!(quote("a\0b"), Err(QuoteError::NulByte { offset: 1 }));
        assert!(Command::new("echo").arg("\0").render().is_err());
    }

    #[test]
    fn plain_words_stay_readable() {
        assert_eq!(
            quote("--defaults-extra-file").unwrap(),
            "--defaults-extra-file"
        );
        assert_eq!(quote("/var/lib/siteward").unwrap(), "/var/lib/siteward");
        assert_eq!(quote("").unwrap(), "''");
        assert_eq!(quote("a=b").unwrap(), "'a=b'");
        assert_eq!(quote("it's").unwrap(), r"'it'\''s'");
    }

    #[test]
    fn sudo_wraps_the_whole_command_in_one_quoted_word() {
        assert_eq!(
            sudo("cat /etc/shadow").unwrap(),
            "sudo -n -- sh -c 'cat /etc/shadow'"
        );
    }

    #[test]
    fn script_values_arrive_as_positional_parameters() {
        let command = Command::script("printf %s \"$1\" | wc -c")
            .arg("$(touch /x)")
            .render()
            .unwrap();
        assert_eq!(
            command,
            "sh -c 'printf %s \"$1\" | wc -c' siteward '$(touch /x)'"
        );
        assert_eq!(run_sh(&command).trim(), "11");
    }

    #[test]
    fn identifiers_on_the_allow_list_are_accepted() {
        for name in ["shop", "_x", "www-data", "a1_b-2", &"a".repeat(32)] {
            assert_eq!(
                validate_identifier(IdentifierKind::User, name),
                Ok(()),
                "{name}"
            );
        }
    }

    #[test]
    fn identifiers_off_the_allow_list_are_refused_with_their_kind() {
        for name in [
            "",
            "Shop",
            "1abc",
            "-x",
            "a b",
            "a;b",
            "é",
            "a.b",
            &"a".repeat(33),
            "x'y",
        ] {
            assert!(
                validate_identifier(IdentifierKind::Database, name).is_err(),
                "{name:?}"
            );
        }
        let error = validate_identifier(IdentifierKind::Database, "Shop")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("invalid database name \"Shop\": must start"),
            "{error}"
        );
    }
}
