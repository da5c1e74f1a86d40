//! Scheduled and long-running jobs: the site's cron file and its supervisor programs.

use super::desired::DesiredSite;
use super::file::{ManagedFile, removal};
use crate::layout;
use crate::observe::ObservedSite;
use crate::plan::step::Reload;
use crate::plan::{Action, Change, ResourceKind, Step};

/// The cron file, or `None` when the site has no cron jobs.
pub fn cron_file(desired: &DesiredSite) -> Option<ManagedFile> {
    if desired.crons.is_empty() {
        return None;
    }
    let mut out = format!(
        "# Managed by siteward for site `{}`: edits here are overwritten by the next apply.\n# The site user's own crontab is never touched.\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
        desired.name
    );
    for cron in &desired.crons {
        out.push_str(&format!(
            "# {}\n{} {} cd {} && {} >> /dev/null 2>&1\n",
            cron.name,
            cron.schedule,
            cron.user,
            desired.live,
            desired.with_php_binary(&cron.command)
        ));
    }
    Some(ManagedFile::system(
        layout::cron_path(desired.name),
        out,
        Reload::Nothing,
    ))
}

/// # Guarantees
/// The cron file is written only when it differs and removed when the spec has no cron jobs.
pub fn diff_cron(desired: &DesiredSite, observed: &ObservedSite) -> Option<Change> {
    let path = layout::cron_path(desired.name);
    let defaults_only = desired.crons.iter().all(|c| c.default);
    match cron_file(desired) {
        Some(file) => Some(
            file.diff(ResourceKind::Cron, &path, observed)
                .from_default(defaults_only),
        ),
        None => removal(ResourceKind::Cron, &path, &path, observed, Reload::Nothing),
    }
}

/// The supervisor program file of a worker.
pub fn program_file(desired: &DesiredSite, worker: &crate::spec::site::Worker) -> ManagedFile {
    let program = desired.program(worker.name.as_str());
    let user = worker.user.as_ref().map_or(desired.user, |u| u.as_str());
    let content = format!(
        "; Managed by siteward for site `{site}`: edits here are overwritten by the next apply.\n[program:{program}]\ncommand={command}\ndirectory={directory}\nuser={user}\nnumprocs={processes}\nprocess_name=%(program_name)s_%(process_num)02d\nautostart=true\nautorestart=true\nstartsecs=1\nstopwaitsecs={stop}\nstopasgroup=true\nkillasgroup=true\nredirect_stderr=true\nstdout_logfile=/var/log/supervisor/{program}.log\nstdout_logfile_maxbytes=10MB\nstdout_logfile_backups=3\n",
        site = desired.name,
        command = desired.with_php_binary(&worker.command),
        directory = desired.live,
        processes = worker.processes,
        stop = worker.stop_wait_seconds,
    );
    ManagedFile::system(
        layout::program_path(desired.name, worker.name.as_str()),
        content,
        Reload::Supervisor,
    )
}

/// # Guarantees
/// Only changed programs are written; supervisor then rereads and updates exactly those, so
/// other programs (and other sites') keep running. Workers removed from the spec are removed.
pub fn diff_workers(desired: &DesiredSite, observed: &ObservedSite) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut touched = Vec::new();
    for worker in &desired.workers {
        let file = program_file(desired, worker);
        let program = desired.program(worker.name.as_str());
        let change = file.diff(ResourceKind::Worker, &program, observed);
        if change.action != Action::NoOp {
            touched.push(program);
        }
        changes.push(change);
    }
    let prefix = format!("/etc/supervisor/conf.d/siteward-{}-", desired.name);
    for path in observed.managed_paths() {
        let Some(worker) = path
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".conf"))
        else {
            continue;
        };
        if desired.workers.iter().any(|w| w.name.as_str() == worker) {
            continue;
        }
        let program = desired.program(worker);
        let Some(change) = removal(
            ResourceKind::Worker,
            &program,
            path,
            observed,
            Reload::Supervisor,
        ) else {
            continue;
        };
        changes.push(change);
        touched.push(program);
    }
    if let Some(last) = changes.iter_mut().rev().find(|c| c.action != Action::NoOp) {
        last.steps.push(Step::SupervisorUpdate {
            programs: touched.clone(),
        });
    }
    changes.extend(stopped_programs(desired, observed, &touched));
    changes
}

/// Programs whose files are right but whose processes are stopped or given up on (STOPPED,
/// FATAL) get started; passing states (STARTING, BACKOFF, EXITED before an autorestart) are
/// supervisor's to settle.
fn stopped_programs(
    desired: &DesiredSite,
    observed: &ObservedSite,
    touched: &[String],
) -> Vec<Change> {
    let mut out = Vec::new();
    for worker in &desired.workers {
        let program = desired.program(worker.name.as_str());
        if touched.contains(&program) {
            continue;
        }
        let file_ok = observed
            .files
            .contains_key(&layout::program_path(desired.name, worker.name.as_str()));
        let processes: Vec<_> = observed
            .processes
            .iter()
            .filter(|p| p.program == program)
            .collect();
        let running = processes
            .iter()
            .filter(|p| !matches!(p.state.as_str(), "STOPPED" | "FATAL" | "UNKNOWN"))
            .count();
        if file_ok && running < worker.processes as usize {
            let states: Vec<String> = processes
                .iter()
                .map(|p| format!("{} {}", p.process, p.state))
                .collect();
            let reason = if states.is_empty() {
                "not running".to_owned()
            } else {
                states.join(", ")
            };
            let crashed = processes.iter().any(|p| p.state == "FATAL");
            let change = Change::new(ResourceKind::Worker, &program, Action::Update, reason).step(
                Step::SupervisorUpdate {
                    programs: vec![program.clone()],
                },
            );
            out.push(if crashed {
                change.restarting_failing()
            } else {
                change
            });
        }
    }
    out
}
