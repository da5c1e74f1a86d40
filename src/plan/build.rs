//! Building a plan: desired + observed → changes, for every site on every server. Pure.

use super::fingerprint::{observed_fingerprint, site_spec_hash, spec_hash};
use super::migration::{Journal, MigrationPlan, MoveSizes};
use super::step::{Engine, RemoveSiteStep};
use super::{Action, Change, FORMAT_VERSION, Plan, ResourceKind, SiteDisposition, SitePlan, Step};
use crate::layout;
use crate::observe::{ObservedServer, ObservedSite};
use crate::resources::{DesiredSite, site_changes};
use crate::spec::Site;
use crate::spec::secret::ResolvedSecrets;
use crate::spec::site::DriftPolicy;
use std::collections::BTreeMap;

/// What the plan is built from.
pub struct PlanInputs<'a> {
    /// The sites to plan (after `--site` filtering).
    pub sites: Vec<&'a Site>,
    /// Every site the specs name (to tell orphans from migrations).
    pub all_site_names: Vec<&'a str>,
    /// What each server answered, by server name.
    pub observed: &'a BTreeMap<String, ObservedServer>,
    pub secrets: &'a ResolvedSecrets,
    /// Whether orphaned sites are to be removed (`apply --prune`).
    pub prune: bool,
    /// Storage sizes measured on migration sources, by site name.
    pub storage_sizes: &'a BTreeMap<String, MoveSizes>,
    /// What each migration's source and target offer, by site name.
    pub move_facts: &'a BTreeMap<String, crate::migrate::compat::MoveFacts>,
    /// Each site's backups as the specs say, by site name.
    pub backups: &'a BTreeMap<String, crate::backup::resource::BackupDesired>,
    /// The time of the plan (unix seconds): how long certificates have left.
    pub now: i64,
}

/// Builds the plan.
pub fn build_plan(inputs: &PlanInputs) -> Plan {
    let mut sites: Vec<SitePlan> = inputs
        .sites
        .iter()
        .map(|site| plan_site(site, inputs))
        .collect();
    sites.extend(orphans(inputs));
    Plan {
        format_version: FORMAT_VERSION,
        spec_hash: spec_hash(inputs.sites.iter().copied()),
        observed_fingerprint: observed_fingerprint(inputs.observed),
        sites,
    }
}

fn plan_site(site: &Site, inputs: &PlanInputs) -> SitePlan {
    let server = site.spec.server.as_str();
    let empty = ObservedSite::default();
    let observed = inputs
        .observed
        .get(server)
        .and_then(|s| s.sites.get(site.name.as_str()))
        .unwrap_or(&empty);
    let sources = migration_sources(site, inputs.observed);
    let mut blocked_by = blocking_problems(site, server, inputs.observed.get(server));
    blocked_by.extend(tls_problems(site, server, inputs));
    blocked_by.extend(unresolved_source(
        site,
        observed,
        inputs.observed.get(server),
    ));
    let migration = match sources.as_slice() {
        [] => None,
        [source] => {
            blocked_by.extend(blocking_problems(
                site,
                source,
                inputs.observed.get(*source),
            ));
            Some(migration_plan(site, source, observed, inputs))
        }
        several => {
            blocked_by.push(format!(
                "site `{}` is recorded live on {}: siteward cannot tell which one to move; remove the stale copy by hand or point `server:` at one of them",
                site.name,
                several.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" and ")
            ));
            None
        }
    };
    if let Some(migration) = &migration
        && !migration.phases.iter().any(|p| p.done)
    {
        blocked_by.extend(preflight_reasons(site, migration, inputs));
    }
    let changes = if blocked_by.is_empty() {
        let desired = DesiredSite::new(site);
        let mut changes = site_changes(
            &desired,
            observed,
            inputs.secrets,
            server,
            &site_spec_hash(site),
            inputs.now,
        );
        let record = changes.pop();
        changes.extend(crate::backup::resource::diff(
            site.name.as_str(),
            inputs.backups.get(site.name.as_str()),
            observed,
            inputs.secrets,
        ));
        changes.extend(record);
        if let Some(migration) = &migration {
            carry_certificate(&mut changes, site, &migration.source, inputs);
        }
        match migration {
            // Crons and workers move in the migration's own phases; backups start on the new
            // server once it took over (the next apply).
            Some(_) => changes
                .into_iter()
                .filter(|c| {
                    !matches!(
                        c.resource,
                        ResourceKind::Cron | ResourceKind::Worker | ResourceKind::Backup
                    )
                })
                .collect(),
            None => changes,
        }
    } else {
        Vec::new()
    };
    SitePlan {
        site: site.name.to_string(),
        server: server.to_owned(),
        disposition: if migration.is_some() {
            SiteDisposition::Migration
        } else {
            SiteDisposition::Reconcile
        },
        detect_only: migration.is_none()
            && site.spec.drift_policy == DriftPolicy::Detect
            && observed.record.is_some(),
        blocked_by,
        warnings: crate::resources::adopt::warnings(site, &changes),
        changes,
        migration,
        restore: None,
    }
}

/// The servers other than the spec's where the site is recorded and has not moved away:
/// where a migration takes it from.
pub fn migration_sources<'a>(
    site: &Site,
    observed: &'a BTreeMap<String, ObservedServer>,
) -> Vec<&'a str> {
    let wanted = site.spec.server.as_str();
    observed
        .iter()
        .filter(|(name, server)| {
            name.as_str() != wanted
                && server
                    .recorded_sites
                    .iter()
                    .any(|s| s == site.name.as_str())
                && moved_to(server, site.name.as_str()).is_none()
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

/// Where a site recorded on `server` moved to, when a migration took it away.
pub fn moved_to<'a>(server: &'a ObservedServer, site: &str) -> Option<&'a str> {
    server
        .sites
        .get(site)
        .and_then(|s| s.record.as_ref())
        .and_then(|r| r.facts.get(MOVED_TO_FACT))
        .map(String::as_str)
}

/// The record fact a migration leaves on its source.
pub const MOVED_TO_FACT: &str = "movedTo";

fn migration_plan(
    site: &Site,
    source: &str,
    observed_target: &ObservedSite,
    inputs: &PlanInputs,
) -> MigrationPlan {
    let journal = observed_target
        .record
        .as_ref()
        .and_then(|r| Journal::parse(&r.journal));
    let database_bytes = inputs
        .observed
        .get(source)
        .and_then(|s| s.sites.get(site.name.as_str()))
        .and_then(|s| s.database.as_ref())
        .map_or(0, |d| d.size_bytes);
    let sizes = inputs
        .storage_sizes
        .get(site.name.as_str())
        .map(|measured| MoveSizes {
            database_bytes,
            ..*measured
        });
    MigrationPlan::new(
        source,
        site.spec.server.as_str(),
        &site.spec.migration,
        sizes,
        journal.as_ref(),
    )
}

fn preflight_reasons(site: &Site, migration: &MigrationPlan, inputs: &PlanInputs) -> Vec<String> {
    let Some(target) = inputs.observed.get(&migration.target) else {
        return Vec::new();
    };
    let mut reasons =
        crate::migrate::preflight::preflight(site, &migration.target, target, migration.sizes);
    if let Some(facts) = inputs.move_facts.get(site.name.as_str()) {
        let engine = site.spec.database.as_ref().map(|db| match db.engine {
            crate::spec::site::DatabaseEngine::Postgres => "postgres",
            _ => "mysql",
        });
        let php = site
            .spec
            .php
            .as_deref()
            .filter(|_| site.spec.site_type != crate::spec::site::SiteType::Static);
        reasons.extend(
            crate::migrate::compat::reasons(facts, engine, php)
                .into_iter()
                .map(|reason| format!("`{}`: {reason}", migration.target)),
        );
    }
    reasons
        .into_iter()
        .map(|reason| format!("preflight: {reason}"))
        .collect()
}

/// A followed branch whose tip the server could not resolve (`git ls-remote` failed) would
/// leave the code unplanned while the plan says "no changes": the site is not planned.
fn unresolved_source(
    site: &Site,
    observed: &ObservedSite,
    server: Option<&ObservedServer>,
) -> Option<String> {
    let source = site.spec.source.as_ref()?;
    let branch = source
        .branch
        .as_ref()
        .filter(|_| source.revision.is_none())?;
    if observed.source_tip.is_some() {
        return None;
    }
    let why: Vec<&str> = server
        .map(|s| {
            s.problems
                .iter()
                .filter(|p| p.topic == "source")
                .map(|p| p.message.as_str())
                .collect()
        })
        .unwrap_or_default();
    let why = if why.is_empty() {
        "no such branch?".to_owned()
    } else {
        why.join("; ")
    };
    Some(format!(
        "source: the tip of `{branch}` in {} could not be resolved on the server ({why})",
        source.repository
    ))
}

/// What the probe could not see that this site's plan depends on: a plan made without it
/// could, say, create a database that exists on a server whose MariaDB did not answer.
fn blocking_problems(site: &Site, name: &str, server: Option<&ObservedServer>) -> Vec<String> {
    let Some(server) = server else {
        return vec![format!("server `{name}` was not observed")];
    };
    let engine_topic = site
        .spec
        .database
        .as_ref()
        .map(|db| match Engine::of(db.engine) {
            Engine::Mysql => "mysql",
            Engine::Postgres => "postgresql",
        });
    server
        .problems
        .iter()
        .filter(|problem| match problem.site.as_deref() {
            Some(name) => name == site.name.as_str() && problem.topic != "source",
            None => {
                Some(problem.topic.as_str()) == engine_topic
                    || (problem.topic == "supervisor" && !site.spec.workers.is_empty())
            }
        })
        .map(|problem| format!("{name}: {}: {}", problem.topic, problem.message))
        .collect()
}

/// A migrating site's ACME certificate is carried from the source when it holds one (the target
/// cannot pass a challenge before the cutover): the plan says so, and issues nothing.
fn carry_certificate(changes: &mut [Change], site: &Site, source: &str, inputs: &PlanInputs) {
    let observed = inputs
        .observed
        .get(source)
        .and_then(|s| s.sites.get(site.name.as_str()))
        .and_then(|s| s.certificates.get("acme"));
    let Some(certificate) = observed else {
        return;
    };
    for change in changes
        .iter_mut()
        .filter(|c| c.resource == ResourceKind::Tls)
    {
        let issues = |step: &Step| matches!(step, Step::IssueCertificate(_));
        if change.steps.iter().any(issues) {
            change.steps.retain(|step| !issues(step));
            change.reason = format!(
                "carried from `{source}` with certbot's lineage: {}",
                crate::resources::tls::describe(
                    &certificate.names,
                    &certificate.issuer,
                    certificate.not_after,
                    inputs.now
                )
            );
        }
    }
}

/// What stops a site's HTTPS: a certificate and key from secrets that nginx would serve badly,
/// or an ACME certificate on a server without certbot.
fn tls_problems(site: &Site, server: &str, inputs: &PlanInputs) -> Vec<String> {
    use crate::spec::tls::TlsSource;
    let Some(tls) = &site.spec.tls else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some((message, error)) = crate::resources::tls::refusal(tls, inputs.secrets, inputs.now)
    {
        out.push(format!("{message} (hint: {})", error.hint()));
    }
    let certbot = inputs
        .observed
        .get(server)
        .and_then(|s| s.services.get("certbot"))
        .is_some_and(|s| s.installed);
    if matches!(tls.source(), Some(TlsSource::Acme(_)))
        && !certbot
        && inputs.observed.contains_key(server)
    {
        out.push(format!(
            "preflight: certbot is not installed on `{server}`, and `tls.acme` needs it: install it there (Debian/Ubuntu: `apt-get install certbot`)"
        ));
    }
    out
}

/// Sites recorded on a server where no spec places them.
fn orphans(inputs: &PlanInputs) -> Vec<SitePlan> {
    let mut out = Vec::new();
    for (server, observed) in inputs.observed {
        for name in &observed.recorded_sites {
            let placed_here = inputs
                .sites
                .iter()
                .any(|s| s.name.as_str() == name && s.spec.server.as_str() == server);
            if placed_here {
                continue;
            }
            let named = inputs.all_site_names.contains(&name.as_str());
            let site = observed.sites.get(name).cloned().unwrap_or_default();
            out.push(if named {
                migration_source(server, name, moved_to(observed, name))
            } else {
                orphan(server, name, &site, inputs.prune)
            });
        }
    }
    out
}

fn migration_source(server: &str, name: &str, moved_to: Option<&str>) -> SitePlan {
    let change = match moved_to {
        Some(target) => Change::new(
            ResourceKind::Site,
            name,
            Action::NoOp,
            format!(
                "moved to `{target}`; what is left on `{server}` stays as the migration's `onSource` said"
            ),
        ),
        None => Change::new(
            ResourceKind::Site,
            name,
            Action::Update,
            format!(
                "recorded on `{server}` while its spec places it elsewhere: the migration's source"
            ),
        ),
    };
    SitePlan {
        site: name.to_owned(),
        server: server.to_owned(),
        disposition: SiteDisposition::Migration,
        detect_only: true,
        blocked_by: Vec::new(),
        warnings: Vec::new(),
        changes: vec![change],
        migration: None,
        restore: None,
    }
}

fn orphan(server: &str, name: &str, site: &ObservedSite, prune: bool) -> SitePlan {
    let step = remove_site_step(name, site);
    SitePlan {
        site: name.to_owned(),
        server: server.to_owned(),
        disposition: SiteDisposition::Orphaned,
        detect_only: !prune,
        blocked_by: Vec::new(),
        warnings: Vec::new(),
        changes: vec![
            Change::new(
                ResourceKind::Site,
                name,
                Action::Delete,
                format!("no spec names site `{name}`; removed only with `apply --prune`"),
            )
            .step(Step::RemoveSite(Box::new(step))),
        ],
        migration: None,
        restore: None,
    }
}

/// Removing everything siteward recorded of a site on a server: the record's facts say what.
pub fn remove_site_step(name: &str, site: &ObservedSite) -> RemoveSiteStep {
    let facts = site
        .record
        .as_ref()
        .map(|r| r.facts.clone())
        .unwrap_or_default();
    let engine = match facts.get("dbEngine").map(String::as_str) {
        Some("postgres") => Some(Engine::Postgres),
        Some(_) => Some(Engine::Mysql),
        None => None,
    };
    let programs: Vec<String> = facts
        .get("workers")
        .map(|w| {
            w.split(',')
                .filter(|w| !w.is_empty())
                .map(|w| layout::program_name(name, w))
                .collect()
        })
        .unwrap_or_default();
    RemoveSiteStep {
        site: name.to_owned(),
        user: facts.get("user").cloned(),
        root: facts.get("root").cloned(),
        // The TLS snippet is every HTTPS site's on the server: never the removed site's alone.
        files: site
            .files
            .keys()
            .filter(|path| path.as_str() != layout::TLS_SNIPPET)
            .cloned()
            .collect(),
        programs,
        database: engine.zip(facts.get("dbName").cloned()),
        database_users: facts
            .get("dbUsers")
            .map(|u| {
                u.split(',')
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::ObservedServer;

    fn site(server: &str) -> Site {
        let text = format!(
            "apiVersion: siteward.dev/v1\nkind: Server\nmetadata: {{name: a}}\nspec: {{address: 192.0.2.1}}\n---\n\
             apiVersion: siteward.dev/v1\nkind: Server\nmetadata: {{name: b}}\nspec: {{address: 192.0.2.2}}\n---\n\
             apiVersion: siteward.dev/v1\nkind: Site\nmetadata: {{name: shop}}\n\
             spec: {{server: {server}, type: static, domain: shop.test, user: shop}}\n"
        );
        crate::spec::first_site_of(&text)
    }

    fn plan_for(site: &Site, recorded_on: &str) -> Plan {
        let mut observed = BTreeMap::new();
        for name in ["a", "b"] {
            let mut server = ObservedServer::default();
            if name == recorded_on {
                server.recorded_sites.push("shop".into());
            }
            observed.insert(name.to_owned(), server);
        }
        plan_observed(site, &observed)
    }

    /// The plan of `site` (named `shop`) given what the servers have.
    fn plan_observed(site: &Site, observed: &BTreeMap<String, ObservedServer>) -> Plan {
        let secrets = ResolvedSecrets::default();
        let sizes = BTreeMap::new();
        build_plan(&PlanInputs {
            sites: vec![site],
            all_site_names: vec!["shop"],
            observed,
            secrets: &secrets,
            prune: false,
            storage_sizes: &sizes,
            move_facts: &BTreeMap::new(),
            backups: &BTreeMap::new(),
            now: 1_800_000_000,
        })
    }

    #[test]
    fn a_fresh_site_is_planned_as_creations_in_dependency_order() {
        let site = site("a");
        let plan = plan_for(&site, "none");
        let kinds: Vec<ResourceKind> = plan.sites[0].pending().map(|c| c.resource).collect();
        let mut sorted = kinds.clone();
        sorted.sort();
        assert_eq!(kinds, sorted, "changes come in apply order");
        assert_eq!(kinds.first(), Some(&ResourceKind::User));
        assert_eq!(kinds.last(), Some(&ResourceKind::Record));
        assert!(plan.has_changes());
    }

    #[test]
    fn removing_a_site_leaves_the_tls_snippet_other_sites_include() {
        let mut observed = ObservedSite::default();
        for path in [layout::TLS_SNIPPET, "/etc/nginx/conf.d/siteward-shop.conf"] {
            observed.files.insert(
                path.to_owned(),
                crate::observe::ObservedFile {
                    sha256: String::new(),
                    owner: "root".into(),
                    group: "root".into(),
                    mode: 0o644,
                    content: None,
                },
            );
        }
        let step = remove_site_step("shop", &observed);
        assert_eq!(step.files, vec!["/etc/nginx/conf.d/siteward-shop.conf"]);
    }

    #[test]
    fn a_migrating_acme_site_carries_the_sources_certificate_instead_of_issuing() {
        let text = "apiVersion: siteward.dev/v1\nkind: Server\nmetadata: {name: a}\nspec: {address: 192.0.2.1}\n---\n\
             apiVersion: siteward.dev/v1\nkind: Server\nmetadata: {name: b}\nspec: {address: 192.0.2.2}\n---\n\
             apiVersion: siteward.dev/v1\nkind: Site\nmetadata: {name: shop}\n\
             spec: {server: b, type: static, domain: shop.test, user: shop, tls: {acme: {email: ops@example.com}}}\n";
        let site = crate::spec::first_site_of(text);
        let mut observed = BTreeMap::new();
        let mut source = ObservedServer::default();
        source.recorded_sites.push("shop".into());
        let mut on_a = ObservedSite::default();
        on_a.certificates.insert(
            "acme".into(),
            crate::observe::ObservedCertificate {
                names: vec!["shop.test".into()],
                issuer: "CN=CA".into(),
                not_after: 1_800_000_000 + 80 * 86400,
                sha256: String::new(),
            },
        );
        source.sites.insert("shop".into(), on_a);
        observed.insert("a".to_owned(), source);
        let mut target = ObservedServer::default();
        let certbot = crate::observe::ServiceState {
            installed: true,
            running: false,
        };
        target.services.insert("certbot".into(), certbot);
        let running = crate::observe::ServiceState {
            installed: true,
            running: true,
        };
        target.services.insert("nginx".into(), running);
        observed.insert("b".to_owned(), target);
        let plan = plan_observed(&site, &observed);
        let on_b = plan.sites.iter().find(|s| s.server == "b").unwrap();
        assert_eq!(on_b.disposition, SiteDisposition::Migration);
        let tls: Vec<&Change> = on_b
            .changes
            .iter()
            .filter(|c| c.resource == ResourceKind::Tls && c.action != Action::NoOp)
            .collect();
        let carried = tls
            .iter()
            .find(|c| c.reason.starts_with("carried from `a`"))
            .unwrap_or_else(|| panic!("{:?} {tls:?}", on_b.blocked_by));
        assert!(carried.reason.contains("expires on"), "{}", carried.reason);
        let issues = |c: &&Change| {
            c.steps
                .iter()
                .any(|s| matches!(s, Step::IssueCertificate(_)))
        };
        assert!(!tls.iter().any(issues), "{tls:?}");
    }

    #[test]
    fn an_acme_site_on_a_server_without_certbot_is_refused_by_the_preflight() {
        let text = "apiVersion: siteward.dev/v1\nkind: Server\nmetadata: {name: a}\nspec: {address: 192.0.2.1}\n---\n\
             apiVersion: siteward.dev/v1\nkind: Site\nmetadata: {name: shop}\n\
             spec: {server: a, type: static, domain: shop.test, user: shop, tls: {acme: {email: ops@example.com}}}\n";
        let site = crate::spec::first_site_of(text);
        let plan = plan_for(&site, "none");
        assert_eq!(
            plan.sites[0].blocked_by,
            vec![
                "preflight: certbot is not installed on `a`, and `tls.acme` needs it: install it there (Debian/Ubuntu: `apt-get install certbot`)"
            ]
        );
        assert!(plan.sites[0].changes.is_empty());
    }

    #[test]
    fn a_site_recorded_on_another_server_is_a_migration_that_preflight_can_refuse() {
        let site = site("b");
        let plan = plan_for(&site, "a");
        let shop = plan.sites.iter().find(|s| s.server == "b").unwrap();
        assert_eq!(shop.disposition, SiteDisposition::Migration);
        let migration = shop.migration.as_ref().unwrap();
        assert_eq!(
            (migration.source.as_str(), migration.target.as_str()),
            ("a", "b")
        );
        // The empty observation of `b` has no nginx: the preflight names it, nothing is planned.
        assert!(
            shop.blocked_by
                .iter()
                .any(|r| r.contains("preflight: `b`: the web server nginx")),
            "{:?}",
            shop.blocked_by
        );
        assert_eq!(shop.changes, vec![]);
        let source = plan.sites.iter().find(|s| s.server == "a").unwrap();
        assert_eq!(source.disposition, SiteDisposition::Migration);
        assert!(source.detect_only);
    }

    #[test]
    fn a_site_that_moved_away_is_not_moved_again() {
        let site = site("b");
        let mut observed = BTreeMap::new();
        let mut a = ObservedServer::default();
        a.recorded_sites.push("shop".into());
        let mut record = crate::observe::SiteRecord::default();
        record.facts.insert(MOVED_TO_FACT.into(), "b".into());
        a.sites.insert(
            "shop".into(),
            ObservedSite {
                record: Some(record),
                ..Default::default()
            },
        );
        observed.insert("a".to_owned(), a);
        observed.insert("b".to_owned(), ObservedServer::default());
        assert!(migration_sources(&site, &observed).is_empty());
        let plan = plan_observed(&site, &observed);
        let on_b = plan.sites.iter().find(|s| s.server == "b").unwrap();
        assert_eq!(on_b.disposition, SiteDisposition::Reconcile);
        let on_a = plan.sites.iter().find(|s| s.server == "a").unwrap();
        assert_eq!(
            on_a.pending().count(),
            0,
            "what is left on `a` is not a change"
        );
    }
}
