//! Resources: one module per kind, each holding its desired state, its diff and its steps.

pub mod code;
pub mod database;
pub mod desired;
pub mod directories;
pub mod env_file;
pub mod file;
pub mod jobs;
pub mod record;
pub mod user;
pub mod verifier;
pub mod web;

pub use desired::DesiredSite;

use crate::observe::ObservedSite;
use crate::plan::Change;
use crate::spec::secret::ResolvedSecrets;

/// Every change of one site, in the order its steps must run: user, directories, `.env`,
/// database and users, code, PHP-FPM pool, vhost, cron, workers, record.
pub fn site_changes(
    desired: &DesiredSite,
    observed: &ObservedSite,
    secrets: &ResolvedSecrets,
    server: &str,
    spec_hash: &str,
) -> Vec<Change> {
    let recorded_users = record::recorded_database_users(observed);
    let mut changes = vec![
        user::diff(desired, observed),
        directories::diff(desired, observed),
    ];
    changes.push(env_file::diff(desired, observed, secrets));
    changes.extend(database::diff_database(desired, observed));
    changes.extend(database::diff_users(
        desired,
        observed,
        secrets,
        &recorded_users,
    ));
    changes.extend(web::diff_pool(desired, observed));
    changes.push(web::diff_vhost(desired, observed));
    // After the pool and vhost: the health check of a first deploy needs them serving.
    changes.extend(code::diff(desired, observed));
    changes.extend(jobs::diff_cron(desired, observed));
    changes.extend(jobs::diff_workers(desired, observed));
    changes.push(record::diff(desired, observed, server, spec_hash));
    changes
}
