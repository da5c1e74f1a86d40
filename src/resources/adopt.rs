//! Adoption: the first apply of a discovered site replaces the files its previous setup left
//! (the spec's `adopt` section) in the steps that install siteward's own.
//!
//! The vhost's write becomes a switch that removes the old vhost files; the cron file's write
//! one that drops the old crontab lines; the old programs are stopped and forgotten just before
//! supervisor starts siteward's; old pools go once the vhost no longer uses them.

use super::desired::DesiredSite;
use crate::layout;
use crate::observe::ObservedSite;
use crate::plan::step::{Reload, TakeOverStep, TakeOverWrite};
use crate::plan::{Action, Change, ResourceKind, Step};
use crate::spec::adopt::Adopt;

/// Turns the site's changes into its takeover where the old files still exist.
///
/// # Guarantees
/// Only files the `adopt` section lists and the server still has are touched; once they are
/// gone (the takeover ran), this changes nothing and the plan is empty.
pub fn take_over(desired: &DesiredSite, observed: &ObservedSite, changes: &mut Vec<Change>) {
    let Some(adopt) = &desired.site.spec.adopt else {
        return;
    };
    let site = desired.name.to_owned();
    let present = |path: &String| observed.files.contains_key(path);
    let vhosts: Vec<String> = adopt
        .vhosts
        .iter()
        .filter(|p| present(p))
        .cloned()
        .collect();
    if !vhosts.is_empty() {
        let path = layout::vhost_path(desired.name);
        switch(
            changes,
            ResourceKind::Vhost,
            &path,
            &site,
            vhosts,
            Vec::new(),
            Reload::Nginx,
            adopt,
        );
        if observed.user.is_some() {
            close_after_switch(desired, changes);
        }
        if let Some(old) = old_socket(adopt, observed) {
            bridge_pool_reload(desired, changes, &old);
        }
    }
    pools(desired, observed, adopt, changes);
    let (files, lines) = cron_entries(adopt, observed);
    if !files.is_empty() || !lines.is_empty() {
        let path = layout::cron_path(desired.name);
        switch(
            changes,
            ResourceKind::Cron,
            &path,
            &site,
            files,
            lines,
            Reload::Nothing,
            adopt,
        );
    }
    programs(desired, observed, adopt, changes);
}

/// While a takeover from a panel is pending: the panel may still rewrite what is taken over.
pub fn warnings(site: &crate::spec::Site, changes: &[Change]) -> Vec<String> {
    let Some(adopt) = &site.spec.adopt else {
        return Vec::new();
    };
    let pending = changes
        .iter()
        .any(|c| c.steps.iter().any(|s| matches!(s, Step::TakeOver(_))));
    if !pending || !adopt.from.is_panel() {
        return Vec::new();
    }
    let panel = adopt.from.title();
    vec![format!(
        "{panel} may still manage this server: detach it first (remove the site, its daemons or workers and its scheduled jobs in {panel}, or the whole server, and its SSH key from authorized_keys), or it may rewrite the vhost, the crontab and the programs siteward takes over"
    )]
}

/// Replaces the write of `path` in its change by a takeover that also removes `remove` and
/// drops `lines`; adds the change when siteward's file is in place already.
#[allow(clippy::too_many_arguments)]
fn switch(
    changes: &mut Vec<Change>,
    resource: ResourceKind,
    path: &str,
    site: &str,
    remove: Vec<String>,
    lines: Vec<(String, String)>,
    reload: Reload,
    adopt: &Adopt,
) {
    let what = describe(&remove, &lines);
    let mut take = TakeOverStep {
        site: site.to_owned(),
        write: None,
        remove,
        lines,
        reload,
        join: None,
    };
    let reason = format!("takes over from {}: {what}", adopt.from.title());
    if let Some(change) = changes.iter_mut().find(|c| c.resource == resource) {
        if let Some(index) = change.steps.iter().position(|s| writes(s, path)) {
            take.write = take_write(&change.steps[index]);
            change.steps[index] = Step::TakeOver(Box::new(take));
        } else {
            change.steps.push(Step::TakeOver(Box::new(take)));
        }
        change.reason = if change.action == Action::NoOp {
            reason
        } else {
            format!("{}; {reason}", change.reason)
        };
        if change.action == Action::NoOp {
            change.action = Action::Update;
        }
        return;
    }
    changes.push(
        Change::new(resource, path, Action::Update, reason).step(Step::TakeOver(Box::new(take))),
    );
}

/// The web server joins the site user's group in the vhost switch, before its reload; the user
/// and directory changes (which close the home and the root to others) move after it, so no
/// nginx worker without the group is ever refused a file.
fn close_after_switch(desired: &DesiredSite, changes: &mut Vec<Change>) {
    for change in changes
        .iter_mut()
        .filter(|c| c.resource == ResourceKind::Vhost)
    {
        for step in &mut change.steps {
            if let Step::TakeOver(take) = step {
                take.join = Some(desired.user.to_owned());
            }
        }
    }
    let moved: Vec<Change> = changes
        .extract_if(.., |c| {
            matches!(c.resource, ResourceKind::User | ResourceKind::Directory)
        })
        .collect();
    let at = changes
        .iter()
        .position(|c| c.resource == ResourceKind::Vhost)
        .map_or(changes.len(), |i| i + 1);
    for (offset, change) in moved.into_iter().enumerate() {
        changes.insert(at + offset, change);
    }
}

/// The FPM socket the old vhost files pass PHP to (their content, as observed).
fn old_socket(adopt: &Adopt, observed: &ObservedSite) -> Option<String> {
    adopt
        .vhosts
        .iter()
        .filter_map(|path| observed.files.get(path)?.content.as_deref())
        .find_map(|text| {
            text.lines().find_map(|line| {
                let rest = line.trim().strip_prefix("fastcgi_pass")?.trim();
                let socket = rest.trim_end_matches(';').trim().strip_prefix("unix:")?;
                (!socket.is_empty() && !socket.contains(char::is_whitespace))
                    .then(|| socket.to_owned())
            })
        })
}

/// The first reload of PHP-FPM that loads siteward's pool is made by a master that may run
/// without `process_control_timeout` (the stock setting): it kills the requests in flight on
/// every pool, the site's old one too. So the vhost switch comes first, with siteward's vhost
/// still passing PHP to the old socket and retrying once a request that the reload cut (nginx's
/// `error_page 502`: the retry waits in the socket's backlog for the new master); then the pool
/// and its reload; then the vhost on siteward's own socket.
fn bridge_pool_reload(desired: &DesiredSite, changes: &mut Vec<Change>, old: &str) {
    let pool = layout::pool_path(desired.php.unwrap_or_default(), desired.name);
    let Some(pool_at) = changes.iter().position(|c| {
        c.resource == ResourceKind::FpmPool && c.steps.iter().any(|s| writes(s, &pool))
    }) else {
        return;
    };
    let Some(vhost_at) = changes
        .iter()
        .position(|c| c.resource == ResourceKind::Vhost)
    else {
        return;
    };
    let socket = layout::fpm_socket(desired.name);
    let mut final_write = None;
    for step in &mut changes[vhost_at].steps {
        if let Step::TakeOver(take) = step
            && let Some(write) = take.write.as_mut()
            && write
                .content
                .contains(&format!("fastcgi_pass unix:{socket};"))
        {
            final_write = Some(Step::WriteFile {
                path: write.path.clone(),
                content: write.content.clone(),
                owner: write.owner.clone(),
                group: write.group.clone(),
                mode: write.mode,
                reload: Reload::Nginx,
            });
            write.content = super::web::bridged_vhost(&write.content, &socket, old);
        }
    }
    let Some(final_write) = final_write else {
        return;
    };
    let pool_change = changes.remove(pool_at);
    let after_vhost = changes
        .iter()
        .position(|c| c.resource == ResourceKind::Vhost)
        .map_or(changes.len(), |i| i + 1);
    let after_moved = changes[after_vhost..]
        .iter()
        .take_while(|c| matches!(c.resource, ResourceKind::User | ResourceKind::Directory))
        .count();
    let at = after_vhost + after_moved;
    changes.insert(at, pool_change);
    let path = layout::vhost_path(desired.name);
    let reason = format!("passes PHP to siteward's pool ({socket}) once it runs");
    changes.insert(
        at + 1,
        Change::new(ResourceKind::Vhost, path, Action::Update, reason).step(final_write),
    );
}

fn writes(step: &Step, path: &str) -> bool {
    matches!(step, Step::WriteFile { path: p, .. } if p == path)
}

fn take_write(step: &Step) -> Option<TakeOverWrite> {
    match step {
        Step::WriteFile {
            path,
            content,
            owner,
            group,
            mode,
            ..
        } => Some(TakeOverWrite {
            path: path.clone(),
            content: content.clone(),
            owner: owner.clone(),
            group: group.clone(),
            mode: *mode,
        }),
        _ => None,
    }
}

fn describe(remove: &[String], lines: &[(String, String)]) -> String {
    let mut parts: Vec<String> = remove.iter().map(|p| format!("removes {p}")).collect();
    parts.extend(
        lines
            .iter()
            .map(|(file, line)| format!("drops `{}` from {file}", line.trim())),
    );
    parts.join(", ")
}

/// Old crontab files still there, and old lines still in their files.
fn cron_entries(adopt: &Adopt, observed: &ObservedSite) -> (Vec<String>, Vec<(String, String)>) {
    let mut files = Vec::new();
    let mut lines = Vec::new();
    for cron in &adopt.crons {
        let Some(file) = observed.files.get(&cron.file) else {
            continue;
        };
        match &cron.line {
            None => files.push(cron.file.clone()),
            Some(line) => {
                let holds = file
                    .content
                    .as_deref()
                    .is_none_or(|text| text.lines().any(|l| l == line));
                if holds {
                    lines.push((cron.file.clone(), line.clone()));
                }
            }
        }
    }
    (files, lines)
}

/// Old pools go after the vhost no longer passes PHP to them.
fn pools(desired: &DesiredSite, observed: &ObservedSite, adopt: &Adopt, changes: &mut Vec<Change>) {
    // After the last vhost change: the one that passes PHP to siteward's pool.
    let at = changes
        .iter()
        .rposition(|c| c.resource == ResourceKind::Vhost)
        .map_or(changes.len(), |i| i + 1);
    let mut added = 0;
    for path in adopt
        .pools
        .iter()
        .filter(|p| observed.files.contains_key(*p))
    {
        let Some(version) = pool_version(path) else {
            continue;
        };
        let take = TakeOverStep {
            site: desired.name.to_owned(),
            write: None,
            remove: vec![path.clone()],
            lines: Vec::new(),
            reload: Reload::PhpFpm { version },
            join: None,
        };
        let change = Change::new(
            ResourceKind::FpmPool,
            path.as_str(),
            Action::Delete,
            format!(
                "takes over from {}: removes {path}, which only this site used",
                adopt.from.title()
            ),
        )
        .step(Step::TakeOver(Box::new(take)));
        changes.insert(at + added, change);
        added += 1;
    }
}

fn pool_version(path: &str) -> Option<String> {
    let (version, _) = path.strip_prefix("/etc/php/")?.split_once('/')?;
    Some(version.to_owned())
}

/// The old programs are stopped (gracefully) and forgotten right before supervisor starts
/// siteward's: a job is never handled by both.
fn programs(
    desired: &DesiredSite,
    observed: &ObservedSite,
    adopt: &Adopt,
    changes: &mut Vec<Change>,
) {
    let old: Vec<String> = adopt
        .programs
        .iter()
        .filter(|p| observed.files.contains_key(*p))
        .cloned()
        .collect();
    if old.is_empty() {
        return;
    }
    let take = Step::TakeOver(Box::new(TakeOverStep {
        site: desired.name.to_owned(),
        write: None,
        remove: old.clone(),
        lines: Vec::new(),
        reload: Reload::Supervisor,
        join: None,
    }));
    let reason = format!(
        "takes over from {}: {}",
        adopt.from.title(),
        describe(&old, &[])
    );
    let update = changes.iter_mut().rev().find_map(|c| {
        let index = c
            .steps
            .iter()
            .position(|s| matches!(s, Step::SupervisorUpdate { .. }))?;
        Some((c, index))
    });
    match update {
        Some((change, index)) => {
            change.steps.insert(index, take);
            change.reason = format!("{}; {reason}", change.reason);
        }
        None => changes
            .push(Change::new(ResourceKind::Worker, "takeover", Action::Update, reason).step(take)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{ObservedFile, ObservedUser};
    use crate::spec::secret::ResolvedSecrets;

    const SPEC: &str = "apiVersion: siteward.dev/v1\nkind: Server\nmetadata: {name: a}\nspec: {address: 192.0.2.1, php: [\"8.2\"]}\n---\n\
        apiVersion: siteward.dev/v1\nkind: Site\nmetadata: {name: shop}\n\
        spec:\n  server: a\n  type: php\n  domain: shop.test\n  user: shop\n  php: \"8.2\"\n  webDirectory: public\n  deploy: {strategy: in-place}\n\
        \x20 crons: [{name: tick, schedule: \"* * * * *\", command: php tick.php}]\n\
        \x20 workers: [{name: queue, command: php work.php}]\n\
        \x20 adopt:\n    from: forge\n    vhosts: [/etc/nginx/sites-enabled/shop.test]\n    pools: [/etc/php/8.2/fpm/pool.d/shop.conf]\n\
        \x20   programs: [/etc/supervisor/conf.d/daemon-1.conf]\n    crons: [{file: /etc/crontab, line: \"* * * * * shop php /home/shop/shop.test/tick.php\"}]\n";

    fn file(content: &str) -> ObservedFile {
        ObservedFile {
            sha256: String::new(),
            owner: "root".into(),
            group: "root".into(),
            mode: 0o644,
            content: Some(content.to_owned()),
        }
    }

    /// The site as its previous setup left it: the old files there, siteward's not yet.
    fn before() -> ObservedSite {
        let mut site = ObservedSite {
            user: Some(ObservedUser {
                name: "shop".into(),
                uid: 1001,
                gid: 1001,
                home: "/home/shop".into(),
                shell: "/bin/bash".into(),
            }),
            ..ObservedSite::default()
        };
        let files = [
            (
                "/etc/nginx/sites-enabled/shop.test",
                "server {\n    fastcgi_pass unix:/run/php/shop.sock;\n}\n",
            ),
            (
                "/etc/php/8.2/fpm/pool.d/shop.conf",
                "[shop]\nlisten = /run/php/shop.sock\n",
            ),
            (
                "/etc/supervisor/conf.d/daemon-1.conf",
                "[program:daemon-1]\n",
            ),
            (
                "/etc/crontab",
                "SHELL=/bin/sh\n* * * * * shop php /home/shop/shop.test/tick.php\n",
            ),
        ];
        for (path, content) in files {
            site.files.insert(path.to_owned(), file(content));
        }
        site
    }

    fn changes(observed: &ObservedSite) -> Vec<Change> {
        let site = crate::spec::first_site_of(SPEC);
        let desired = DesiredSite::new(&site);
        super::super::site_changes(&desired, observed, &ResolvedSecrets::default(), "a", "h", 0)
    }

    /// `(resource, op)` of every step, in order.
    fn steps(changes: &[Change]) -> Vec<(ResourceKind, String)> {
        changes
            .iter()
            .flat_map(|c| c.steps.iter().map(move |s| (c.resource, op(s))))
            .collect()
    }

    fn op(step: &Step) -> String {
        serde_json::to_value(step)
            .ok()
            .and_then(|v| v["op"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn position(steps: &[(ResourceKind, String)], resource: ResourceKind, op: &str) -> usize {
        steps
            .iter()
            .position(|(r, o)| *r == resource && o == op)
            .unwrap_or_else(|| panic!("no {op} of {resource:?} in {steps:?}"))
    }

    #[test]
    fn the_takeover_bridges_the_first_fpm_reload_and_removes_the_old_pool_last() {
        let changes = changes(&before());
        let steps = steps(&changes);
        let bridged = position(&steps, ResourceKind::Vhost, "takeOver");
        let pool = position(&steps, ResourceKind::FpmPool, "writeFile");
        let final_vhost = position(&steps, ResourceKind::Vhost, "writeFile");
        let old_pool = position(&steps, ResourceKind::FpmPool, "takeOver");
        assert!(
            bridged < pool && pool < final_vhost && final_vhost < old_pool,
            "{steps:?}"
        );
        let Some(Step::TakeOver(take)) = changes
            .iter()
            .flat_map(|c| &c.steps)
            .find(|s| matches!(s, Step::TakeOver(t) if t.reload == Reload::Nginx))
        else {
            panic!("no vhost takeover");
        };
        let content = &take.write.as_ref().expect("siteward's vhost").content;
        assert!(
            content.contains("fastcgi_pass unix:/run/php/shop.sock;")
                && content.contains("@siteward_retry"),
            "{content}"
        );
        assert_eq!(take.remove, ["/etc/nginx/sites-enabled/shop.test"]);
        assert_eq!(take.join.as_deref(), Some("shop"));
    }

    #[test]
    fn cron_lines_go_with_the_cron_file_and_old_programs_stop_before_siteward_starts_its_own() {
        let changes = changes(&before());
        let steps = steps(&changes);
        let cron = changes
            .iter()
            .find(|c| c.resource == ResourceKind::Cron)
            .expect("the cron change");
        let Some(Step::TakeOver(take)) = cron.steps.first() else {
            panic!("{:?}", cron.steps);
        };
        assert_eq!(
            take.lines,
            [(
                "/etc/crontab".to_owned(),
                "* * * * * shop php /home/shop/shop.test/tick.php".to_owned()
            )]
        );
        assert!(
            take.write
                .as_ref()
                .is_some_and(|w| w.path == "/etc/cron.d/siteward-shop")
        );
        let stop = position(&steps, ResourceKind::Worker, "takeOver");
        let start = position(&steps, ResourceKind::Worker, "supervisorUpdate");
        assert!(stop < start, "{steps:?}");
    }

    #[test]
    fn once_the_old_files_are_gone_adopt_plans_nothing() {
        let mut after = before();
        after.files.clear();
        let changes = changes(&after);
        assert!(
            changes
                .iter()
                .all(|c| c.steps.iter().all(|s| !matches!(s, Step::TakeOver(_))))
        );
        let crontab_without_the_line = file("SHELL=/bin/sh\n");
        let mut partly = before();
        partly
            .files
            .insert("/etc/crontab".into(), crontab_without_the_line);
        let cron = changes_of(&partly, ResourceKind::Cron);
        assert!(
            cron.iter().all(|s| !matches!(s, Step::TakeOver(_))),
            "{cron:?}"
        );
    }

    fn changes_of(observed: &ObservedSite, resource: ResourceKind) -> Vec<Step> {
        changes(observed)
            .into_iter()
            .filter(|c| c.resource == resource)
            .flat_map(|c| c.steps)
            .collect()
    }
}
