//! siteward's record of a site on its server: what was applied, for the next observation.

use super::desired::DesiredSite;
use crate::observe::ObservedSite;
use crate::plan::{Action, Change, ResourceKind, Step};
use std::collections::BTreeMap;

/// The facts recorded for a site. The probe reads them back to find sites the specs no
/// longer place on a server (orphans, migration sources).
pub fn facts(desired: &DesiredSite, server: &str, spec_hash: &str) -> BTreeMap<String, String> {
    let spec = &desired.site.spec;
    let mut facts = BTreeMap::new();
    facts.insert("specHash".to_owned(), spec_hash.to_owned());
    facts.insert("server".to_owned(), server.to_owned());
    facts.insert("user".to_owned(), desired.user.to_owned());
    facts.insert("domain".to_owned(), desired.domain.to_owned());
    facts.insert("root".to_owned(), desired.root.clone());
    if let Some(php) = desired.php {
        facts.insert("php".to_owned(), php.to_owned());
    }
    if let Some(database) = &spec.database {
        facts.insert(
            "dbEngine".to_owned(),
            format!("{:?}", database.engine).to_lowercase(),
        );
        facts.insert("dbName".to_owned(), database.name.to_string());
        let users: Vec<String> = database.users.iter().map(|u| u.name.to_string()).collect();
        facts.insert("dbUsers".to_owned(), users.join(","));
    }
    facts.insert("storage".to_owned(), desired.storage.join(","));
    let workers: Vec<String> = desired.workers.iter().map(|w| w.name.to_string()).collect();
    facts.insert("workers".to_owned(), workers.join(","));
    facts
}

/// # Guarantees
/// The record is rewritten only when a fact changed.
pub fn diff(
    desired: &DesiredSite,
    observed: &ObservedSite,
    server: &str,
    spec_hash: &str,
) -> Change {
    let wanted = facts(desired, server, spec_hash);
    let have = observed.record.as_ref().map(|r| &r.facts);
    let differs = have.is_none_or(|have| wanted.iter().any(|(k, v)| have.get(k) != Some(v)));
    if !differs {
        return Change::no_op(ResourceKind::Record, desired.name);
    }
    let action = if have.is_some() {
        Action::Update
    } else {
        Action::Create
    };
    Change::new(
        ResourceKind::Record,
        desired.name,
        action,
        "record the applied spec",
    )
    .step(Step::WriteRecord {
        site: desired.name.to_owned(),
        facts: wanted,
    })
}

/// Database users the record says siteward created for this site.
pub fn recorded_database_users(observed: &ObservedSite) -> Vec<String> {
    observed
        .record
        .as_ref()
        .and_then(|r| r.facts.get("dbUsers"))
        .map(|users| {
            users
                .split(',')
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
