//! Validated names: every identifier that reaches a server passes a strict allow-list here.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// The rule a name must follow, shared by the JSON Schema and the validating constructor.
pub struct NameRule {
    /// What the name is, for messages: "a Linux user name".
    pub what: &'static str,
    /// The JSON Schema pattern, for editors.
    pub pattern: &'static str,
    /// What is allowed, in words, for hints.
    pub allowed: &'static str,
    first: fn(char) -> bool,
    rest: fn(char) -> bool,
    last: fn(char) -> bool,
    max_len: usize,
}

impl NameRule {
    /// Checks a candidate; the error says what is wrong in words.
    pub fn check(&self, candidate: &str) -> Result<(), String> {
        let mut chars = candidate.chars();
        let Some(first) = chars.next() else {
            return Err(format!("{} must not be empty", self.what));
        };
        if candidate.chars().count() > self.max_len {
            return Err(format!(
                "`{candidate}` is too long for {}: at most {} characters",
                self.what, self.max_len
            ));
        }
        let last = candidate.chars().last().unwrap_or(first);
        let bad_middle = chars.find(|c| !(self.rest)(*c));
        if !(self.first)(first) || bad_middle.is_some() || !(self.last)(last) {
            return Err(format!("`{candidate}` is not a valid {}", self.what));
        }
        Ok(())
    }
}

fn lower_or_digit(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}
fn lower_digit_dash(c: char) -> bool {
    lower_or_digit(c) || c == '-'
}
fn lower_or_underscore(c: char) -> bool {
    c.is_ascii_lowercase() || c == '_'
}
fn unix_user_char(c: char) -> bool {
    lower_or_digit(c) || c == '_' || c == '-'
}
fn sql_first(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}
fn sql_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}
fn any_char(_: char) -> bool {
    true
}

/// Names of Servers and Sites (`metadata.name`): DNS-label style.
pub const RESOURCE_NAME: NameRule = NameRule {
    what: "resource name",
    pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    allowed: "lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters",
    first: lower_or_digit,
    rest: lower_digit_dash,
    last: lower_or_digit,
    max_len: 63,
};

/// Linux account names for site users.
pub const LINUX_USER: NameRule = NameRule {
    what: "Linux user name",
    pattern: "^[a-z_][a-z0-9_-]{0,31}$",
    allowed: "lowercase letters, digits, `_` and `-`, starting with a letter or `_`, at most 32 characters",
    first: lower_or_underscore,
    rest: unix_user_char,
    last: any_char,
    max_len: 32,
};

/// Database names (MariaDB schemas, PostgreSQL databases).
pub const DATABASE_NAME: NameRule = NameRule {
    what: "database name",
    pattern: "^[A-Za-z_][A-Za-z0-9_]{0,63}$",
    allowed: "letters, digits and `_`, starting with a letter or `_`, at most 64 characters",
    first: sql_first,
    rest: sql_char,
    last: any_char,
    max_len: 64,
};

/// Database user (role) names.
pub const DATABASE_USER: NameRule = NameRule {
    what: "database user name",
    pattern: "^[A-Za-z_][A-Za-z0-9_]{0,31}$",
    allowed: "letters, digits and `_`, starting with a letter or `_`, at most 32 characters",
    first: sql_first,
    rest: sql_char,
    last: any_char,
    max_len: 32,
};

/// Names of cron jobs and workers, used in file and program names.
pub const JOB_NAME: NameRule = NameRule {
    what: "job name",
    pattern: "^[a-z0-9][a-z0-9_-]{0,62}$",
    allowed: "lowercase letters, digits, `_` and `-`, starting with a letter or digit, at most 63 characters",
    first: lower_or_digit,
    rest: unix_user_char,
    last: any_char,
    max_len: 63,
};

/// Keys of the site's `.env`.
pub const ENV_KEY: NameRule = NameRule {
    what: "environment variable name",
    pattern: "^[A-Za-z_][A-Za-z0-9_]{0,127}$",
    allowed: "letters, digits and `_`, starting with a letter or `_`",
    first: sql_first,
    rest: sql_char,
    last: any_char,
    max_len: 128,
};

/// Every rule, so that schema pattern errors can be explained in words.
pub const ALL_RULES: [&NameRule; 6] = [
    &RESOURCE_NAME,
    &LINUX_USER,
    &DATABASE_NAME,
    &DATABASE_USER,
    &JOB_NAME,
    &ENV_KEY,
];

/// Defines a validated string newtype bound to a [`NameRule`].
macro_rules! validated_name {
    ($(#[$meta:meta])* $name:ident, $rule:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The rule this name follows.
            pub const RULE: &'static NameRule = &$rule;

            /// Validates and wraps a name.
            pub fn new(value: impl Into<String>) -> Result<Self, String> {
                let value = value.into();
                Self::RULE.check(&value)?;
                Ok(Self(value))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                let rule = Self::RULE;
                json_schema!({
                    "type": "string",
                    "pattern": rule.pattern,
                    "description": format!("A {}: {}.", rule.what, rule.allowed),
                })
            }
        }
    };
}

validated_name!(
    /// The name of a Server spec.
    ServerName,
    RESOURCE_NAME
);
validated_name!(
    /// The name of a Site spec.
    SiteName,
    RESOURCE_NAME
);
validated_name!(
    /// A site's isolated Linux user.
    LinuxUser,
    LINUX_USER
);
validated_name!(
    /// A database name.
    DatabaseName,
    DATABASE_NAME
);
validated_name!(
    /// A database user (MariaDB account or PostgreSQL role).
    DatabaseUser,
    DATABASE_USER
);
validated_name!(
    /// The name of a cron job or worker.
    JobName,
    JOB_NAME
);
validated_name!(
    /// A key of the site's `.env`.
    EnvKey,
    ENV_KEY
);

/// Linux accounts a site must never be given.
pub const RESERVED_USERS: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "nobody",
    "systemd-network",
    "sshd",
    "mysql",
    "postgres",
    "redis",
    "siteward",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_user_refuses_shell_metacharacters() {
        assert!(LinuxUser::new("root; rm -rf /").is_err());
        assert!(LinuxUser::new("shop").is_ok());
        assert!(LinuxUser::new("_svc-1").is_ok());
        assert!(LinuxUser::new("Shop").is_err());
    }

    #[test]
    fn database_name_refuses_a_backtick() {
        assert!(DatabaseName::new("shop`; DROP").is_err());
        assert!(DatabaseName::new("shop_prod").is_ok());
    }

    #[test]
    fn resource_names_cannot_end_with_a_dash() {
        assert!(SiteName::new("shop-").is_err());
        assert!(SiteName::new("shop-2").is_ok());
        assert!(SiteName::new("").is_err());
    }

    #[test]
    fn hand_written_checks_agree_with_the_schema_patterns() {
        let corpus = [
            "",
            "a",
            "shop",
            "shop-",
            "-shop",
            "_x",
            "Shop",
            "x y",
            "a`b",
            "9lives",
            "a_b-c",
            "ÿ",
            "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123",
        ];
        for rule in ALL_RULES {
            let schema = serde_json::json!({"type": "string", "pattern": rule.pattern});
            let validator = jsonschema::validator_for(&schema).unwrap();
            for candidate in corpus {
                let by_schema = validator.is_valid(&serde_json::json!(candidate));
                let by_hand = rule.check(candidate).is_ok();
                assert_eq!(by_schema, by_hand, "{} on {candidate:?}", rule.what);
            }
        }
    }
}
