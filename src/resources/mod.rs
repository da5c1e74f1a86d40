//! Resources: one module per kind, each holding its desired state, its diff and its steps.

pub mod adopt;
pub mod certificate;
pub mod code;
pub mod database;
pub mod desired;
pub mod directories;
pub mod env_file;
pub mod file;
pub mod jobs;
pub mod record;
pub mod tls;
pub mod user;
pub mod verifier;
pub mod web;

pub use desired::DesiredSite;

use crate::observe::ObservedSite;
use crate::plan::Change;
use crate::spec::secret::ResolvedSecrets;

/// Every change of one site, in the order its steps must run: user, directories, `.env`,
/// database and users, PHP-FPM pool, TLS and vhost, code, cron, workers, record. `now` (unix
/// seconds) tells how long certificates have left.
pub fn site_changes(
    desired: &DesiredSite,
    observed: &ObservedSite,
    secrets: &ResolvedSecrets,
    server: &str,
    spec_hash: &str,
    now: i64,
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
    changes.extend(tls::diff_snippet(desired, observed));
    // The vhost names the certificate's files: written after them when they are not there yet
    // (and after a removal of TLS's files, before them).
    let certificate = tls::diff(desired, observed, secrets, now);
    if tls::certificate_present(desired, observed) {
        changes.push(web::diff_vhost(desired, observed));
        changes.extend(certificate);
    } else {
        changes.extend(certificate);
        changes.push(web::diff_vhost(desired, observed));
    }
    // After the pool and vhost: the health check of a first deploy needs them serving.
    changes.extend(code::diff(desired, observed));
    changes.extend(jobs::diff_cron(desired, observed));
    changes.extend(jobs::diff_workers(desired, observed));
    adopt::take_over(desired, observed, &mut changes);
    changes.push(record::diff(desired, observed, server, spec_hash));
    changes
}
