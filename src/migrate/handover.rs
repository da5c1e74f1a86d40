//! Handing a site's jobs over between servers: pause and resume its crons and workers, and its maintenance mode.
//!
//! A site's jobs on a server are its cron file ([`layout::cron_path`]) and its supervisor
//! programs ([`layout::program_path`]). Paused, the same files sit in [`layout::paused_dir`]:
//! cron ignores them there and supervisor no longer knows the programs. Moving files rather
//! than rewriting them keeps a paused server ready to resume exactly what it ran, and lets a
//! target be given its jobs installed-but-paused (written straight to [`layout::paused_path`]).
//! Each operation is one remote script that ends by printing the resulting [`JobsState`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::layout;
pub use crate::layout::paused_path;
use crate::spec::names::SiteName;
use crate::transport::quote::Command;
use crate::transport::{QuoteError, Stdin, Transport, TransportError};

const JOBS: &str = concat!(
    include_str!("../apply/scripts/supervisor.sh"),
    include_str!("scripts/handover_jobs.sh")
);
const PAUSE: &str = include_str!("scripts/handover_pause.sh");
const RESUME: &str = include_str!("scripts/handover_resume.sh");
const STATE: &str = include_str!("scripts/handover_state.sh");
const MAINTENANCE: &str = include_str!("scripts/handover_maintenance.sh");

/// How long [`pause_jobs`] waits for running cron jobs unless told otherwise.
pub const CRON_WAIT: Duration = Duration::from_secs(90);

/// How long [`resume_jobs`] waits for the programs to be RUNNING unless told otherwise.
pub const START_WAIT: Duration = Duration::from_secs(30);

/// Why a site's jobs or maintenance mode could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// The site name cannot name files on a server.
    #[error("site name {site:?} cannot be handed over: {reason}")]
    InvalidSite {
        /// The name, as given.
        site: String,
        /// The rule it broke.
        reason: String,
    },
    /// A value could not be made part of a command.
    #[error("a handover command cannot be built")]
    Quote(#[from] QuoteError),
    /// A remote command could not run, or exited with a non-zero status.
    #[error("{what} on {endpoint} failed")]
    Transport {
        /// What was being done.
        what: String,
        /// The server.
        endpoint: String,
        /// The cause (its stderr, when the command ran and failed).
        #[source]
        source: Box<TransportError>,
    },
    /// siteward's own script printed something it never prints.
    #[error("{what} on {endpoint} gave an unexpected answer: {answer:?}")]
    Answer {
        /// What was being done.
        what: String,
        /// The server.
        endpoint: String,
        /// The offending answer (or the line of it).
        answer: String,
    },
    /// The files were paused, but jobs still run after the wait.
    #[error(
        "the jobs of site `{site}` on {endpoint} are paused but still running after {waited:?}: {}",
        jobs.join(", ")
    )]
    StillRunning {
        /// The site.
        site: String,
        /// The server.
        endpoint: String,
        /// How long the script waited.
        waited: Duration,
        /// What still runs: `cron job 1234: php artisan schedule:run`, `program … (RUNNING)`.
        jobs: Vec<String>,
    },
    /// The files are live again, but programs are not RUNNING after the wait.
    #[error(
        "the programs of site `{site}` on {endpoint} are not running after {waited:?}: {}",
        programs.join(", ")
    )]
    NotRunning {
        /// The site.
        site: String,
        /// The server.
        endpoint: String,
        /// How long the script waited.
        waited: Duration,
        /// Each program that is not RUNNING, with its processes' states.
        programs: Vec<String>,
    },
}

/// Where a site's jobs are on one server, and what of them runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobsState {
    /// The cron file is in `/etc/cron.d`.
    pub cron_live: bool,
    /// The cron file is in the paused directory.
    pub cron_paused: bool,
    /// Programs whose files are in supervisor's `conf.d`, sorted.
    pub programs_live: Vec<String>,
    /// Programs whose files are in the paused directory, sorted.
    pub programs_paused: Vec<String>,
    /// Programs every process of which is RUNNING, sorted.
    pub programs_running: Vec<String>,
    /// Supervisor's state of each process of each program it knows (`RUNNING`, `STOPPED`, …);
    /// a program supervisor does not know is absent.
    pub program_states: BTreeMap<String, Vec<String>>,
    /// The site's cron jobs still running: `PID COMMAND`.
    pub cron_processes: Vec<String>,
}

impl JobsState {
    /// Nothing of the site runs here and nothing will: no live file, no known program, no cron
    /// job still running.
    pub fn is_paused(&self) -> bool {
        !self.cron_live
            && self.programs_live.is_empty()
            && self.program_states.is_empty()
            && self.cron_processes.is_empty()
    }

    /// Live programs that are not RUNNING, each with its processes' states.
    pub fn programs_not_running(&self) -> Vec<String> {
        self.programs_live
            .iter()
            .filter(|program| !self.programs_running.contains(program))
            .map(|program| match self.program_states.get(program) {
                Some(states) => format!("{program} ({})", states.join(", ")),
                None => format!("{program} (unknown to supervisor)"),
            })
            .collect()
    }

    /// What still runs although it should not: cron jobs and programs supervisor knows.
    fn still_running(&self) -> Vec<String> {
        let cron = self.cron_processes.iter().map(|p| format!("cron job {p}"));
        let programs = self
            .program_states
            .iter()
            .map(|(program, states)| format!("program {program} ({})", states.join(", ")));
        let live = self
            .programs_live
            .iter()
            .map(|p| format!("live program {p}"));
        let cron_file = self.cron_live.then(|| "live cron file".to_owned());
        cron.chain(programs).chain(live).chain(cron_file).collect()
    }

    /// Reads the lines `handover_jobs.sh`'s `print_state` prints.
    fn parse(answer: &str) -> Result<Self, String> {
        let mut state = Self::default();
        let mut ended = false;
        for line in answer.lines().filter(|line| !line.is_empty()) {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match (key, value) {
                ("cron-live", "") => state.cron_live = true,
                ("cron-paused", "") => state.cron_paused = true,
                ("live", program) if !program.is_empty() => {
                    state.programs_live.push(program.to_owned());
                }
                ("paused", program) if !program.is_empty() => {
                    state.programs_paused.push(program.to_owned());
                }
                ("state", rest) => state.add_process_state(rest)?,
                ("cron-process", process) => state.cron_processes.push(process.to_owned()),
                ("end", "") => ended = true,
                _ => return Err(format!("unknown line {line:?}")),
            }
        }
        if !ended {
            return Err("the answer ends before its `end` line".to_owned());
        }
        state.settle();
        Ok(state)
    }

    fn add_process_state(&mut self, rest: &str) -> Result<(), String> {
        let (program, process_state) = rest
            .split_once(' ')
            .ok_or_else(|| format!("a state line without a state: {rest:?}"))?;
        self.program_states
            .entry(program.to_owned())
            .or_default()
            .push(process_state.to_owned());
        Ok(())
    }

    fn settle(&mut self) {
        self.programs_live.sort();
        self.programs_live.dedup();
        self.programs_paused.sort();
        self.programs_paused.dedup();
        self.programs_running = self
            .program_states
            .iter()
            .filter(|(_, states)| states.iter().all(|s| s == "RUNNING"))
            .map(|(program, _)| program.clone())
            .collect();
    }
}

/// Whether a Laravel site answers requests or shows its maintenance page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maintenance {
    /// `php artisan down`: HTTP 503 for every request.
    On,
    /// `php artisan up`: the site answers again.
    Off,
}

/// Pauses `site`'s jobs on this server and waits for its running cron jobs to finish.
///
/// A running cron job is a process descending from the cron daemon that runs as one of
/// `cron_users` (the site user, and any user a cron job names) or as a user a line of the
/// site's cron file names.
///
/// # Guarantees
/// - One round trip. The cron file and every program file of the site move to
///   [`layout::paused_dir`] (root-owned, 0700) by a copy renamed into place then a removal, so
///   neither cron nor supervisor ever reads a partial file, across file systems too.
/// - Supervisor is updated for exactly the site's paused programs it still knows: it stops
///   them gracefully (honouring `stopwaitsecs`) and forgets them; other programs are untouched.
/// - Then it waits up to `wait` for the site's cron jobs still running to end.
/// - Idempotent: a second run moves nothing, updates nothing and returns the same state; a run
///   cut off anywhere is finished by the next one.
///
/// # Errors
/// [`HandoverError::StillRunning`] when, after the wait, a cron job or a program still runs
/// (the files stay paused; [`resume_jobs`] brings the jobs back).
pub async fn pause_jobs(
    transport: &impl Transport,
    site: &str,
    cron_users: &[String],
    wait: Duration,
) -> Result<JobsState, HandoverError> {
    let command = jobs_command(PAUSE, site, cron_users)?.arg(wait.as_secs().to_string());
    let state = run_jobs(transport, "pausing the jobs", &command).await?;
    if state.is_paused() {
        return Ok(state);
    }
    Err(HandoverError::StillRunning {
        site: site.to_owned(),
        endpoint: transport.endpoint().to_owned(),
        waited: wait,
        jobs: state.still_running(),
    })
}

/// Moves `site`'s paused jobs back into place and waits (up to `wait`, [`START_WAIT`] is a
/// good default) until its programs run.
///
/// # Guarantees
/// - One round trip. Paused files move back to their live places the way [`pause_jobs`] moves
///   them out; a paused file replaces a live one of the same name.
/// - Supervisor is updated for exactly the site's live programs and each is started; then the
///   script waits up to `wait` until every process of every live program is RUNNING.
/// - Idempotent: with nothing paused, it only makes sure the live programs run.
///
/// # Errors
/// [`HandoverError::NotRunning`] naming each program not RUNNING after the wait, with its
/// processes' states (the files stay live).
pub async fn resume_jobs(
    transport: &impl Transport,
    site: &str,
    wait: Duration,
) -> Result<JobsState, HandoverError> {
    let command = jobs_command(RESUME, site, &[])?.arg(wait.as_secs().to_string());
    let state = run_jobs(transport, "resuming the jobs", &command).await?;
    let programs = state.programs_not_running();
    if programs.is_empty() {
        return Ok(state);
    }
    Err(HandoverError::NotRunning {
        site: site.to_owned(),
        endpoint: transport.endpoint().to_owned(),
        waited: wait,
        programs,
    })
}

/// Where `site`'s jobs are on this server and what of them runs; `cron_users` as for
/// [`pause_jobs`].
///
/// # Guarantees
/// One round trip; changes nothing.
pub async fn jobs_state(
    transport: &impl Transport,
    site: &str,
    cron_users: &[String],
) -> Result<JobsState, HandoverError> {
    let command = jobs_command(STATE, site, cron_users)?;
    run_jobs(transport, "reading the jobs' state", &command).await
}

/// Turns a Laravel site's maintenance mode on (`php artisan down`) or off (`up`), as `user`,
/// in its code directory `code_dir` (the `current` link of a releases site, the root of an
/// in-place one).
///
/// # Guarantees
/// - One round trip: `php artisan down` or `php artisan up` run as `user` with the PHP binary
///   siteward links for the site, as deploys run artisan.
/// - Idempotent: Laravel answers "already down" or "already up" and succeeds.
///
/// # Errors
/// [`HandoverError::Transport`] with artisan's stderr when it fails, or when `code_dir` has no
/// `artisan`.
pub async fn maintenance(
    transport: &impl Transport,
    code_dir: &str,
    user: &str,
    mode: Maintenance,
) -> Result<(), HandoverError> {
    let (word, what) = match mode {
        Maintenance::On => ("down", "putting the site into maintenance"),
        Maintenance::Off => ("up", "taking the site out of maintenance"),
    };
    let command = Command::script(MAINTENANCE)
        .arg(code_dir)
        .arg(user)
        .arg(word);
    run(transport, what, &command).await.map(drop)
}

/// Creates `site`'s paused directory (root-owned, 0700), for writing paused files into it
/// before any pause (a `test` migration's target gets its jobs installed this way).
///
/// # Guarantees
/// One round trip; idempotent: an existing directory only gets its owner and mode corrected.
pub async fn ensure_paused_dir(
    transport: &impl Transport,
    site: &str,
) -> Result<(), HandoverError> {
    check_site(site)?;
    let command = Command::script(
        "set -eu; mkdir -p -- \"$1\"; chown root:root -- \"$1\"; chmod 0700 -- \"$1\"",
    )
    .arg(layout::paused_dir(site));
    run(transport, "creating the paused directory", &command)
        .await
        .map(drop)
}

fn check_site(site: &str) -> Result<(), HandoverError> {
    SiteName::RULE
        .check(site)
        .map_err(|reason| HandoverError::InvalidSite {
            site: site.to_owned(),
            reason,
        })
}

/// The command of one jobs script: the shared start, then the script; the site's paths as
/// arguments, so that [`layout`] stays the one place that knows them.
fn jobs_command(script: &str, site: &str, cron_users: &[String]) -> Result<Command, HandoverError> {
    check_site(site)?;
    Ok(Command::script(format!("{JOBS}{script}"))
        .arg(site)
        .arg(layout::cron_path(site))
        .arg(layout::program_prefix(site))
        .arg(layout::paused_dir(site))
        .arg(cron_users.join(" ")))
}

/// Runs a jobs script and reads the state it prints.
async fn run_jobs(
    transport: &impl Transport,
    what: &str,
    command: &Command,
) -> Result<JobsState, HandoverError> {
    let answer = run(transport, what, command).await?;
    JobsState::parse(&answer).map_err(|reason| HandoverError::Answer {
        what: what.to_owned(),
        endpoint: transport.endpoint().to_owned(),
        answer: reason,
    })
}

/// Runs `command`, failing on a non-zero status; returns its stdout, lossily decoded.
async fn run(
    transport: &impl Transport,
    what: &str,
    command: &Command,
) -> Result<String, HandoverError> {
    let rendered = command.render()?;
    let output = transport
        .exec_checked(what, &rendered, Stdin::Empty)
        .await
        .map_err(|source| HandoverError::Transport {
            what: what.to_owned(),
            endpoint: transport.endpoint().to_owned(),
            source: Box::new(source),
        })?;
    Ok(output.stdout_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAUSED: &str = "cron-paused\npaused siteward-shop-queue\nend\n";

    #[test]
    fn a_paused_site_reads_as_paused() {
        let state = JobsState::parse(PAUSED).unwrap();
        assert!(state.is_paused());
        assert!(state.cron_paused);
        assert_eq!(state.programs_paused, ["siteward-shop-queue"]);
        assert!(state.programs_running.is_empty());
    }

    #[test]
    fn a_running_cron_job_keeps_a_site_from_reading_as_paused() {
        let answer = "cron-paused\ncron-process 812 /bin/sh -c php artisan schedule:run\nend\n";
        let state = JobsState::parse(answer).unwrap();
        assert!(!state.is_paused());
        assert_eq!(
            state.still_running(),
            ["cron job 812 /bin/sh -c php artisan schedule:run"]
        );
    }

    #[test]
    fn a_program_runs_only_when_all_its_processes_do() {
        let answer = "cron-live\nlive siteward-shop-queue\nlive siteward-shop-mail\n\
            state siteward-shop-mail RUNNING\nstate siteward-shop-queue RUNNING\n\
            state siteward-shop-queue STARTING\nend\n";
        let state = JobsState::parse(answer).unwrap();
        assert_eq!(state.programs_running, ["siteward-shop-mail"]);
        assert_eq!(
            state.programs_not_running(),
            ["siteward-shop-queue (RUNNING, STARTING)"]
        );
    }

    #[test]
    fn a_live_program_supervisor_does_not_know_is_not_running() {
        let state = JobsState::parse("live siteward-shop-queue\nend\n").unwrap();
        assert_eq!(
            state.programs_not_running(),
            ["siteward-shop-queue (unknown to supervisor)"]
        );
    }

    #[test]
    fn an_answer_cut_off_before_its_end_is_refused() {
        let error = JobsState::parse("cron-live\n").unwrap_err();
        assert!(error.contains("`end`"), "{error}");
    }

    #[test]
    fn an_unknown_line_is_refused() {
        let error = JobsState::parse("cron-live yes\nend\n").unwrap_err();
        assert!(error.contains("cron-live yes"), "{error}");
    }

    #[test]
    fn a_site_name_that_is_not_a_resource_name_builds_no_command() {
        let error = jobs_command(STATE, "shop;rm", &[]).unwrap_err();
        assert!(
            matches!(error, HandoverError::InvalidSite { .. }),
            "{error}"
        );
    }

    #[test]
    fn values_reach_the_script_as_arguments() {
        let command = jobs_command(STATE, "shop", &["shop".to_owned(), "www-data".to_owned()])
            .unwrap()
            .render()
            .unwrap();
        assert!(
            command.ends_with(
                " siteward shop /etc/cron.d/siteward-shop /etc/supervisor/conf.d/siteward-shop- \
                 /var/lib/siteward/sites/shop/paused 'shop www-data'"
            ),
            "{command}"
        );
    }
}
