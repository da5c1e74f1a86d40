//! The site's workers and cron jobs: supervisor programs, `/etc/crontab`, `/etc/cron.d` and
//! user crontabs, tied to a site by its directory in their directory or command.

use std::collections::BTreeSet;

use super::answer::Answer;
use super::{Found, Item, cron, supervisor};
use crate::spec::adopt::AdoptedCron;
use crate::spec::names::{JobName, LinuxUser};
use crate::spec::site::{Cron, LaravelDefaults, SiteType, Worker};

/// Supervisor's `stopwaitsecs` when a program does not set it.
const SUPERVISOR_STOP_WAIT: u32 = 10;

/// Every job of a server.
pub struct ServerJobs {
    pub programs: Vec<supervisor::Program>,
    /// `(file, whole file's entries, entry)`; user crontabs carry their user.
    pub crons: Vec<CronAt>,
    pub systemd: Vec<(String, String)>,
}

/// One cron entry and the file it is in.
pub struct CronAt {
    pub file: String,
    /// The file holds only entries (and variables), so it can go whole.
    pub shared_file: bool,
    pub entry: cron::CronEntry,
    /// The line exactly as written.
    pub line: String,
}

/// What sites took, so the rest can be reported.
#[derive(Default)]
pub struct Claimed {
    programs: BTreeSet<String>,
    crons: BTreeSet<(String, usize)>,
}

impl ServerJobs {
    /// Parses the programs and crontabs of the answer.
    pub fn parse(answer: &Answer) -> Self {
        let programs = answer
            .programs
            .iter()
            .flat_map(|(file, text)| supervisor::parse(file, text))
            .collect();
        let mut crons = Vec::new();
        if let Some(text) = &answer.crontab {
            crons.extend(entries(
                "/etc/crontab",
                text,
                true,
                cron::parse_system("/etc/crontab", text),
            ));
        }
        for (file, text) in &answer.cron_d {
            crons.extend(entries(file, text, false, cron::parse_system(file, text)));
        }
        for (file, text) in &answer.user_crontabs {
            let user = file.rsplit('/').next().unwrap_or_default();
            crons.extend(entries(
                file,
                text,
                true,
                cron::parse_user(file, user, text),
            ));
        }
        let systemd = answer
            .systemd
            .iter()
            .map(|(f, t)| (f.clone(), t.clone()))
            .collect();
        ServerJobs {
            programs,
            crons,
            systemd,
        }
    }

    /// Jobs that run artisan or live under /home but no site claimed.
    pub fn unclaimed(&self, claimed: &Claimed, server: &str) -> Vec<Item> {
        let mut out = Vec::new();
        for program in &self.programs {
            let command = program.command.as_deref().unwrap_or_default();
            if !claimed.programs.contains(&program.at.file)
                && !super::sites::is_siteward_file(&program.at.file)
                && (command.contains("artisan") || command.contains("/home/"))
            {
                out.push(Item { kind: "unclaimed-worker", message: format!("supervisor program `{}` (`{command}`) belongs to no site found on {server}", program.name), source: Some(format!("{}:{}", program.at.file, program.at.line)) });
            }
        }
        for at in &self.crons {
            let key = (at.file.clone(), at.entry.at.line);
            if !claimed.crons.contains(&key)
                && !super::sites::is_siteward_file(&at.file)
                && (at.entry.command.contains("artisan") || at.entry.command.contains("/home/"))
            {
                out.push(Item {
                    kind: "unclaimed-cron",
                    message: format!(
                        "cron `{}` belongs to no site found on {server}",
                        at.line.trim()
                    ),
                    source: Some(format!("{}:{}", at.file, at.entry.at.line)),
                });
            }
        }
        out
    }
}

fn entries(file: &str, text: &str, shared: bool, parsed: cron::CronFile) -> Vec<CronAt> {
    let lines: Vec<&str> = text.lines().collect();
    parsed
        .entries
        .into_iter()
        .map(|entry| CronAt {
            file: file.to_owned(),
            shared_file: shared,
            line: lines
                .get(entry.at.line.saturating_sub(1))
                .copied()
                .unwrap_or_default()
                .to_owned(),
            entry,
        })
        .collect()
}

/// Whether `text` names a path at or inside `root` (`root`, `root/`, `root/current/…`).
fn mentions(text: &str, root: &str) -> bool {
    text.match_indices(root).any(|(at, _)| {
        let next = text[at + root.len()..].chars().next();
        matches!(next, None | Some('/' | ' ' | ';' | '&' | '\'' | '"'))
    })
}

/// Takes the jobs of the site at `root` into `found`: workers, crons, and what adopting them
/// replaces.
pub fn attach(found: &mut Found, jobs: &ServerJobs, root: &str, user: &str, claimed: &mut Claimed) {
    workers(found, jobs, root, user, claimed);
    crons(found, jobs, root, user, claimed);
    for (file, text) in &jobs.systemd {
        if mentions(text, root) {
            found.item("worker-systemd", format!("systemd unit {file} runs this site's code: siteward runs workers with supervisor; turn it into a `workers` entry and disable the unit"), Some(file.clone()));
        }
    }
}

fn workers(found: &mut Found, jobs: &ServerJobs, root: &str, user: &str, claimed: &mut Claimed) {
    for program in &jobs.programs {
        let command = program.command.as_deref().unwrap_or_default();
        let in_root = program
            .directory
            .as_deref()
            .is_some_and(|d| mentions(d, root))
            || mentions(command, root);
        if !in_root
            || claimed.programs.contains(&program.at.file)
            || super::sites::is_siteward_file(&program.at.file)
        {
            continue;
        }
        claimed.programs.insert(program.at.file.clone());
        let source = format!("{}:{}", program.at.file, program.at.line);
        let name = worker_name(command, &found.spec.workers);
        let worker = Worker {
            name: JobName::new(name.as_str())
                .unwrap_or_else(|_| JobName::new("worker").expect("a valid name")),
            command: artisan_command(command, root),
            processes: program.numprocs.max(1),
            stop_wait_seconds: program
                .stop_wait_seconds
                .unwrap_or(SUPERVISOR_STOP_WAIT)
                .clamp(1, 86_400),
            user: program
                .user
                .as_deref()
                .filter(|u| *u != user)
                .and_then(|u| LinuxUser::new(u).ok()),
        };
        found.fact(
            "worker",
            format!("{} × `{}`", worker.processes, worker.command),
            source,
        );
        found.spec.workers.push(worker);
        if let Some(adopt) = found.spec.adopt.as_mut() {
            adopt.programs.push(program.at.file.clone());
        }
    }
}

fn worker_name(command: &str, taken: &[Worker]) -> String {
    let base = if command.contains("horizon") {
        "horizon"
    } else if command.contains("queue:") {
        "queue"
    } else {
        "worker"
    };
    let mut name = base.to_owned();
    let mut n = 2;
    while taken.iter().any(|w| w.name.as_str() == name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

fn crons(found: &mut Found, jobs: &ServerJobs, root: &str, user: &str, claimed: &mut Claimed) {
    let laravel = found.spec.site_type == SiteType::Laravel;
    let mut scheduler = false;
    for at in &jobs.crons {
        if !mentions(&at.entry.command, root)
            || claimed.crons.contains(&(at.file.clone(), at.entry.at.line))
            || super::sites::is_siteward_file(&at.file)
        {
            continue;
        }
        claimed.crons.insert((at.file.clone(), at.entry.at.line));
        let source = format!("{}:{}", at.file, at.entry.at.line);
        let command = artisan_command(&at.entry.command, root);
        let is_scheduler = laravel
            && command == "php artisan schedule:run"
            && cron::is_every_minute(&at.entry.schedule)
            && !scheduler;
        found.fact(
            "cron",
            format!("{} {}", at.entry.schedule, at.entry.command.trim()),
            source.clone(),
        );
        if let Some(log) = output_log(&at.entry.command) {
            found.item(
                "cron-output",
                format!("the job's output went to {log}; siteward's cron file discards it"),
                Some(source),
            );
        }
        if is_scheduler {
            scheduler = true;
        } else {
            let name = format!("cron-{}", found.spec.crons.len() + 1);
            found.spec.crons.push(Cron {
                name: JobName::new(name.as_str()).expect("a valid name"),
                schedule: at.entry.schedule.clone(),
                command,
                user: at
                    .entry
                    .user
                    .as_deref()
                    .filter(|u| *u != user)
                    .and_then(|u| LinuxUser::new(u).ok()),
            });
        }
        let whole = !at.shared_file
            && jobs
                .crons
                .iter()
                .filter(|c| c.file == at.file)
                .all(|c| mentions(&c.entry.command, root));
        if let Some(adopt) = found.spec.adopt.as_mut() {
            let cron = AdoptedCron {
                file: at.file.clone(),
                line: (!whole).then(|| at.line.clone()),
            };
            if !adopt.crons.contains(&cron) {
                adopt.crons.push(cron);
            }
        }
    }
    if laravel && !scheduler {
        found.spec.laravel = Some(LaravelDefaults {
            scheduler: false,
            ..LaravelDefaults::default()
        });
        found.fact(
            "scheduler",
            "none: the spec turns siteward's default off",
            root.to_owned(),
        );
    }
}

/// The file a command's output is appended to, when not /dev/null.
fn output_log(command: &str) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    words.windows(2).find_map(|pair| {
        let redirect = pair[0] == ">" || pair[0] == ">>";
        (redirect && pair[1] != "/dev/null").then(|| pair[1].to_owned())
    })
}

/// A command as the spec writes it, run in the live code's directory: `cd ROOT && ` dropped,
/// `phpX.Y ROOT/artisan …` as `php artisan …`, output redirections to /dev/null dropped.
pub fn artisan_command(command: &str, root: &str) -> String {
    let mut words: Vec<&str> = command.split_whitespace().collect();
    if words.first() == Some(&"cd")
        && words.get(2) == Some(&"&&")
        && words.get(1).is_some_and(|d| mentions(d, root))
    {
        words.drain(..3);
    }
    // Output redirections at the end (to /dev/null or a log): siteward's cron line sends the
    // output to /dev/null itself.
    while let [.., a, b] = words.as_slice() {
        if *a == ">>" || *a == ">" {
            words.truncate(words.len() - 2);
        } else if *b == "2>&1" || b.starts_with('>') {
            words.truncate(words.len() - 1);
        } else {
            break;
        }
    }
    let is_php = |w: &str| {
        let name = w.rsplit('/').next().unwrap_or(w);
        name == "php"
            || (name.starts_with("php")
                && name[3..].chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    if words.len() >= 2
        && is_php(words[0])
        && (words[1] == "artisan" || words[1].ends_with("/artisan") && mentions(words[1], root))
    {
        words[0] = "php";
        words[1] = "artisan";
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_commands_become_the_specs_artisan_commands() {
        let root = "/home/forge/shop.test";
        assert_eq!(
            artisan_command("php8.2 /home/forge/shop.test/artisan schedule:run", root),
            "php artisan schedule:run"
        );
        assert_eq!(
            artisan_command(
                "cd /home/forge/shop.test && php artisan schedule:run >> /dev/null 2>&1",
                root
            ),
            "php artisan schedule:run"
        );
        assert_eq!(
            artisan_command(
                "php8.2 /home/forge/shop.test/artisan schedule:run > /home/forge/.forge/scheduled-1.log 2>&1",
                root
            ),
            "php artisan schedule:run"
        );
        assert_eq!(
            artisan_command("php artisan x >/tmp/log", root),
            "php artisan x"
        );
        assert_eq!(
            artisan_command("php8.2 artisan queue:work redis --sleep=3 --tries=3", root),
            "php artisan queue:work redis --sleep=3 --tries=3"
        );
        assert_eq!(
            artisan_command(
                "/usr/bin/php /home/forge/shop.test/current/artisan horizon",
                root
            ),
            "php artisan horizon"
        );
        assert_eq!(
            artisan_command("php /home/forge/other.test/artisan horizon", root),
            "php /home/forge/other.test/artisan horizon"
        );
    }

    #[test]
    fn a_path_counts_only_as_a_whole_directory() {
        assert!(mentions("cd /home/a/shop.test && x", "/home/a/shop.test"));
        assert!(mentions("/home/a/shop.test/artisan", "/home/a/shop.test"));
        assert!(!mentions("/home/a/shop.test2/artisan", "/home/a/shop.test"));
    }
}
