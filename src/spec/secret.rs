//! Secret references in specs, and resolved secret values that never print themselves.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// A reference to a secret: `{secret: env:NAME}` or `{secret: file:PATH}`.
///
/// Specs hold references only; the value is read at apply time.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Where the value comes from: `env:NAME` (an environment variable of the siteward
    /// process) or `file:PATH` (a file on the machine running siteward).
    #[schemars(regex(pattern = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$"))]
    pub secret: String,
}

/// Where a secret's value is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

/// Why a secret reference is malformed or cannot be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("secret reference `{0}` has no source: write `env:NAME` or `file:PATH`")]
    MissingScheme(String),
    #[error("secret reference `{0}` uses an unknown source: only `env:` and `file:` exist")]
    UnknownScheme(String),
    #[error("secret reference `{0}` names no variable after `env:`")]
    EmptyEnvName(String),
    #[error("secret reference `{0}` names an invalid environment variable")]
    InvalidEnvName(String),
    #[error("secret reference `{0}` names no path after `file:`")]
    EmptyPath(String),
    #[error("environment variable `{0}` is not set")]
    EnvNotSet(String),
    #[error("secret file `{path}` cannot be read: {reason}")]
    FileUnreadable { path: String, reason: String },
}

impl SecretRef {
    /// Parses the reference into its source, checking that it is well formed.
    pub fn source(&self) -> Result<SecretSource, SecretError> {
        let raw = self.secret.as_str();
        let Some((scheme, rest)) = raw.split_once(':') else {
            return Err(SecretError::MissingScheme(raw.to_owned()));
        };
        match scheme {
            "env" if rest.is_empty() => Err(SecretError::EmptyEnvName(raw.to_owned())),
            "env" if !is_env_name(rest) => Err(SecretError::InvalidEnvName(raw.to_owned())),
            "env" => Ok(SecretSource::Env(rest.to_owned())),
            "file" if rest.is_empty() => Err(SecretError::EmptyPath(raw.to_owned())),
            "file" => Ok(SecretSource::File(expand_home(rest))),
            _ => Err(SecretError::UnknownScheme(raw.to_owned())),
        }
    }

    /// Reads the secret's value.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self.source()? {
            SecretSource::Env(name) => std::env::var(&name)
                .map(Secret::new)
                .map_err(|_| SecretError::EnvNotSet(name)),
            SecretSource::File(path) => std::fs::read_to_string(&path)
                .map(|text| Secret::new(text.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|error| SecretError::FileUnreadable {
                    path: path.display().to_string(),
                    reason: error.to_string(),
                }),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({})", self.secret)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{secret: {}}}", self.secret)
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands a leading `~/` to the home directory.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// A resolved secret value. Its Debug and Display print `***`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value itself: only for handing to a remote program over stdin or a 0600 file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(text: &str) -> SecretRef {
        SecretRef {
            secret: text.to_owned(),
        }
    }

    #[test]
    fn env_and_file_references_parse() {
        assert_eq!(
            reference("env:SHOP_KEY").source(),
            Ok(SecretSource::Env("SHOP_KEY".into()))
        );
        assert_eq!(
            reference("file:/run/secrets/db").source(),
            Ok(SecretSource::File("/run/secrets/db".into()))
        );
    }

    #[test]
    fn malformed_references_are_refused() {
        assert!(matches!(
            reference("env:").source(),
            Err(SecretError::EmptyEnvName(_))
        ));
        assert!(matches!(
            reference("vault:x").source(),
            Err(SecretError::UnknownScheme(_))
        ));
        assert!(matches!(
            reference("SHOP").source(),
            Err(SecretError::MissingScheme(_))
        ));
        assert!(matches!(
            reference("env:1X").source(),
            Err(SecretError::InvalidEnvName(_))
        ));
    }

    #[test]
    fn resolved_secrets_never_print_their_value() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret} {secret:?}"), "*** Secret(***)");
    }
}

/// Every secret the specs reference, resolved once per run; also the scrubber that keeps
/// their values out of everything siteward prints or stores.
#[derive(Clone, Debug, Default)]
pub struct ResolvedSecrets {
    values: std::collections::BTreeMap<String, Secret>,
}

impl ResolvedSecrets {
    /// Resolves every reference; all failures are returned at once.
    pub fn resolve<'a>(
        references: impl IntoIterator<Item = &'a SecretRef>,
    ) -> Result<Self, Vec<SecretError>> {
        let mut values = std::collections::BTreeMap::new();
        let mut errors = Vec::new();
        for reference in references {
            if values.contains_key(&reference.secret) {
                continue;
            }
            match reference.resolve() {
                Ok(secret) => {
                    values.insert(reference.secret.clone(), secret);
                }
                Err(error) if !errors.contains(&error) => errors.push(error),
                Err(_) => {}
            }
        }
        if errors.is_empty() {
            Ok(ResolvedSecrets { values })
        } else {
            Err(errors)
        }
    }

    /// Adds a value resolved elsewhere (a bundle's references, read at import).
    pub fn insert(&mut self, reference: &SecretRef, secret: Secret) {
        self.values.insert(reference.secret.clone(), secret);
    }

    /// The value of a reference resolved earlier.
    pub fn get(&self, reference: &SecretRef) -> Option<&Secret> {
        self.values.get(&reference.secret)
    }

    /// Replaces every secret value in `text` with `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let mut values: Vec<&str> = self
            .values
            .values()
            .map(Secret::expose)
            .filter(|v| !v.is_empty())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in values {
            if out.contains(value) {
                out = out.replace(value, "***");
            }
        }
        out
    }

    /// Every value, for scrubbers elsewhere (log writers).
    pub fn values(&self) -> Vec<String> {
        self.values
            .values()
            .map(|s| s.expose().to_owned())
            .collect()
    }
}
