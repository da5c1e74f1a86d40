//! The site's `.env`: keys the spec names are set; every other line is kept (merge).

use super::desired::DesiredSite;
use super::file::sha256_hex;
use crate::observe::ObservedSite;
use crate::plan::step::EnvSource;
use crate::plan::{Action, Change, ResourceKind, Step};
use crate::spec::secret::ResolvedSecrets;
use crate::spec::site::EnvValue;
use std::collections::BTreeMap;

/// The path of the site's `.env`.
pub fn env_path(desired: &DesiredSite) -> String {
    format!("{}/.env", desired.shared)
}

/// The plain text of a spec value.
pub fn plain_text(value: &EnvValue) -> Option<String> {
    match value {
        EnvValue::Text(text) => Some(text.clone()),
        EnvValue::Number(number) => Some(number.to_string()),
        EnvValue::Bool(flag) => Some(flag.to_string()),
        EnvValue::Secret(_) => None,
    }
}

/// # Guarantees
/// `MergeEnv` rewrites only the keys that differ, atomically, keeping every other line.
pub fn diff(desired: &DesiredSite, observed: &ObservedSite, secrets: &ResolvedSecrets) -> Change {
    let path = env_path(desired);
    let spec_env = &desired.site.spec.env;
    if spec_env.is_empty() {
        return Change::no_op(ResourceKind::Env, path);
    }
    let observed_keys = observed.env.as_ref();
    let mut set = BTreeMap::new();
    let mut lines = Vec::new();
    for (key, value) in spec_env {
        let key = key.as_str();
        let (source, shown, wanted_hash) = match value {
            EnvValue::Secret(reference) => {
                let hash = secrets
                    .get(reference)
                    .map(|s| sha256_hex(s.expose().as_bytes()));
                (
                    EnvSource::Secret(reference.clone()),
                    format!("({reference})"),
                    hash,
                )
            }
            other => {
                let text = plain_text(other).unwrap_or_default();
                let hash = sha256_hex(text.as_bytes());
                (EnvSource::Plain(text.clone()), text, Some(hash))
            }
        };
        let current = observed_keys.and_then(|keys| keys.get(key));
        let marker = match (current, &wanted_hash) {
            (None, _) => "+",
            (Some(have), Some(want)) if have == want => continue,
            (Some(_), _) => "~",
        };
        lines.push(format!("{marker} {key}={shown}"));
        set.insert(key.to_owned(), source);
    }
    if set.is_empty() {
        return Change::no_op(ResourceKind::Env, path);
    }
    let action = if observed_keys.is_some() {
        Action::Update
    } else {
        Action::Create
    };
    let names: Vec<&str> = set.keys().map(String::as_str).collect();
    let reason = format!("sets {}", names.join(", "));
    let step = Step::MergeEnv {
        path: path.clone(),
        owner: desired.user.to_owned(),
        group: desired.user.to_owned(),
        set,
    };
    let mut change = Change::new(ResourceKind::Env, path, action, reason).step(step);
    change.diff = Some(lines.join("\n") + "\n");
    change
}
