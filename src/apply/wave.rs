//! An apply wave: the sites one apply converges on one server share its server-wide work.
//!
//! A vhost, a PHP-FPM pool or a supervisor program is one site's, but testing and reloading
//! the service that reads it is the whole server's: `nginx -t` parses every vhost, an FPM
//! reload restarts every pool, `supervisorctl reread` reads every program. Done once per site,
//! n sites cost n². Here the sites of a wave that reach such a step meanwhile are served by one
//! remote command (group commit): the first becomes the leader and runs the batch it finds
//! queued; the others, queued while it runs, go in the next batch.

use super::StepOutcome;
use super::commands::StepContext;
use crate::plan::step::{Engine, Reload, RemoveSiteStep, Step};
use crate::transport::{Command, Stdin, Transport, TransportError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

const LOAD_BATCH: &str = concat!(
    include_str!("scripts/reload.sh"),
    include_str!("scripts/load_batch.sh")
);
/// ensure_user.sh as a function (its `exit` ends a subshell), then the loop over the users.
const ENSURE_USERS: &str = concat!(
    "ensure_user() (\n",
    include_str!("scripts/ensure_user.sh"),
    ")\n",
    include_str!("scripts/ensure_users.sh")
);

/// The sites of one apply on one server: batches of their server-wide work.
#[derive(Default)]
pub struct Wave {
    queues: Mutex<HashMap<Service, Arc<Queue>>>,
}

/// A service whose configuration test and reload the sites of a wave share.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Service {
    /// Files no service tests: written in one round trip.
    Files,
    Nginx,
    PhpFpm(String),
    Supervisor,
    /// Linux users.
    Users,
    /// SQL run by the MariaDB/MySQL administrator (one client for the batch).
    MysqlAdmin,
    /// SQL run by the PostgreSQL administrator (one psql for the batch, each site's part
    /// starting connected to `postgres`, as when it runs alone).
    PostgresAdmin,
    /// Sites removed (`apply --prune`): their workers stopped side by side, one supervisor
    /// update, one nginx test and reload, one reload per FPM master.
    Removal,
}

/// One site's part of a batch.
#[derive(Clone, Debug)]
enum Item {
    /// A file to write, test and load; `marked` when a service must load it (its marker in
    /// /run/siteward/unloaded goes once it has).
    File {
        path: String,
        content: String,
        owner: String,
        group: String,
        mode: u32,
        marked: bool,
    },
    /// Supervisor programs to reread, update and start.
    Programs(Vec<String>),
    /// A site user and its home.
    User { user: String, home: String },
    /// Statements and what they do.
    Sql { sql: String, what: String },
    /// A site to remove and its lines for remove_sites.sh.
    Removal { site: String, lines: String },
}

impl Item {
    fn sql(&self) -> Option<&str> {
        match self {
            Item::Sql { sql, .. } => Some(sql),
            _ => None,
        }
    }
}

/// How a batch went for one site's item.
#[derive(Clone, Debug)]
struct Reply {
    /// How long the batch ran on the server.
    millis: u64,
    /// How many items the batch held.
    size: usize,
    /// Why it failed for this item: the status and the message.
    error: Option<(u32, String)>,
}

struct Request {
    item: Item,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Queue {
    pending: Mutex<Vec<Request>>,
    leader: tokio::sync::Mutex<()>,
}

impl Wave {
    /// Runs `step` as part of a batch when it is server-wide work, appending its outcome;
    /// `None` when the step is not batched (the caller runs it alone).
    pub async fn run<T: Transport>(
        &self,
        transport: &T,
        step: &Step,
        ctx: &StepContext<'_>,
        outcomes: &mut Vec<StepOutcome>,
    ) -> Option<Result<(), TransportError>> {
        if let Step::RemoveSite(remove) = step {
            return Some(self.remove_site(transport, remove, ctx, outcomes).await);
        }
        let (service, item, what) = batched(step, ctx)?;
        Some(
            self.run_item(transport, ctx, service, item, what, outcomes)
                .await,
        )
    }

    /// A removed site: its database dropped in a batch of the administrator's SQL, then its
    /// files, workers and user in a batch of removals.
    async fn remove_site<T: Transport>(
        &self,
        transport: &T,
        remove: &RemoveSiteStep,
        ctx: &StepContext<'_>,
        outcomes: &mut Vec<StepOutcome>,
    ) -> Result<(), TransportError> {
        if let Some((engine, sql, what)) = super::commands::drop_site_database(remove) {
            let (service, item) = admin_item(engine, sql, what.clone());
            self.run_item(transport, ctx, service, item, what, outcomes)
                .await?;
        }
        let what = format!("remove site {}", remove.site);
        let lines = super::commands::removal_lines(remove).map_err(TransportError::Quote)?;
        let item = Item::Removal {
            site: remove.site.clone(),
            lines,
        };
        self.run_item(transport, ctx, Service::Removal, item, what, outcomes)
            .await
    }

    /// Runs `item` in a batch of `service`, appending its outcome as `what`.
    async fn run_item<T: Transport>(
        &self,
        transport: &T,
        ctx: &StepContext<'_>,
        service: Service,
        item: Item,
        what: String,
        outcomes: &mut Vec<StepOutcome>,
    ) -> Result<(), TransportError> {
        let submitted = Instant::now();
        let reply = self.submit(transport, ctx, service, item).await;
        let waited = submitted.elapsed().as_millis() as u64;
        let queued_millis = waited.saturating_sub(reply.millis);
        let outcome = StepOutcome {
            what: what.clone(),
            ok: reply.error.is_none(),
            millis: reply.millis,
            queued_millis,
            output: format!("one batch of {} on the server", reply.size),
            error: reply.error.as_ref().map(|(_, message)| message.clone()),
        };
        outcomes.push(outcome);
        match reply.error {
            None => Ok(()),
            Some((status, stderr)) => Err(TransportError::Failed {
                what,
                endpoint: transport.endpoint().to_owned(),
                status,
                stderr,
            }),
        }
    }

    fn queue(&self, service: &Service) -> Arc<Queue> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.entry(service.clone()).or_default().clone()
    }

    /// Queues `item`; runs the queued batch when no batch of `service` runs, else waits for
    /// the batch that takes it.
    async fn submit<T: Transport>(
        &self,
        transport: &T,
        ctx: &StepContext<'_>,
        service: Service,
        item: Item,
    ) -> Reply {
        let queue = self.queue(&service);
        let (reply, mut answer) = oneshot::channel();
        lock(&queue.pending).push(Request { item, reply });
        let leading = queue.leader.lock().await;
        if let Ok(reply) = answer.try_recv() {
            return reply;
        }
        let batch = std::mem::take(&mut *lock(&queue.pending));
        run_batch(transport, ctx, &service, batch).await;
        drop(leading);
        answer.await.unwrap_or(Reply {
            millis: 0,
            size: 0,
            error: Some((1, "the batch holding this step was cut off".into())),
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The service, the item and the step's name, when `step` is batched.
fn batched(step: &Step, ctx: &StepContext) -> Option<(Service, Item, String)> {
    if let Some(prepared) = super::commands::admin_sql(step, ctx) {
        let (engine, sql, what) = prepared.ok()?;
        let (service, item) = admin_item(engine, sql, what.clone());
        return Some((service, item, what));
    }
    match step {
        Step::EnsureUser { user, home } => Some((
            Service::Users,
            Item::User {
                user: user.clone(),
                home: home.clone(),
            },
            format!("create user {user}"),
        )),
        Step::WriteFile {
            path,
            content,
            owner,
            group,
            mode,
            reload,
        } => {
            let service = match reload {
                Reload::Nginx => Service::Nginx,
                Reload::PhpFpm { version } => Service::PhpFpm(version.clone()),
                Reload::Nothing | Reload::Supervisor => Service::Files,
            };
            let plain = |s: &str| !s.is_empty() && !s.chars().any(char::is_whitespace);
            if ![path, owner, group].iter().all(|s| plain(s)) {
                return None;
            }
            let item = Item::File {
                path: path.clone(),
                content: content.clone(),
                owner: owner.clone(),
                group: group.clone(),
                mode: *mode,
                marked: *reload != Reload::Nothing,
            };
            Some((service, item, format!("write {path}")))
        }
        Step::SupervisorUpdate { programs } => Some((
            Service::Supervisor,
            Item::Programs(programs.clone()),
            format!("supervisor update {}", programs.join(" ")),
        )),
        _ => None,
    }
}

/// The administrator's SQL as a batch item of its engine. PostgreSQL's part of a batch starts
/// with a connection to `postgres` (where it runs alone): the part before it may have left the
/// session in a site's database (`\connect`).
fn admin_item(engine: Engine, sql: String, what: String) -> (Service, Item) {
    match engine {
        Engine::Mysql => (Service::MysqlAdmin, Item::Sql { sql, what }),
        Engine::Postgres => (
            Service::PostgresAdmin,
            Item::Sql {
                sql: format!("\\connect postgres\n{sql}"),
                what,
            },
        ),
    }
}

/// Runs one batch and answers each request.
async fn run_batch<T: Transport>(
    transport: &T,
    ctx: &StepContext<'_>,
    service: &Service,
    batch: Vec<Request>,
) {
    if batch.is_empty() {
        return;
    }
    match service {
        Service::MysqlAdmin => return run_sql_batch(transport, ctx, Engine::Mysql, batch).await,
        Service::PostgresAdmin => {
            return run_sql_batch(transport, ctx, Engine::Postgres, batch).await;
        }
        _ => {}
    }
    let size = batch.len();
    let started = Instant::now();
    let result = match service_command(service, &batch) {
        Ok((command, stdin)) => transport.exec(&command, Stdin::Bytes(&stdin)).await,
        Err(error) => Err(TransportError::Quote(error)),
    };
    let millis = started.elapsed().as_millis() as u64;
    let answers = Answers::read(&result);
    for request in batch {
        let error = answers.error_for(&request.item);
        let _ = request.reply.send(Reply {
            millis,
            size,
            error,
        });
    }
}

/// Runs the statements of every request in one client; when that fails, each request's alone,
/// so that the error lands on the site whose statements caused it (they are idempotent).
async fn run_sql_batch<T: Transport>(
    transport: &T,
    ctx: &StepContext<'_>,
    engine: Engine,
    batch: Vec<Request>,
) {
    let size = batch.len();
    let started = Instant::now();
    let statements: String = batch.iter().filter_map(|r| r.item.sql()).collect();
    let what = format!("{size} database steps");
    if run_sql(transport, ctx, engine, statements, what)
        .await
        .is_ok()
    {
        let millis = started.elapsed().as_millis() as u64;
        for request in batch {
            let _ = request.reply.send(Reply {
                millis,
                size,
                error: None,
            });
        }
        return;
    }
    for request in batch {
        let Item::Sql { sql, what } = &request.item else {
            continue;
        };
        let started = Instant::now();
        let error = run_sql(transport, ctx, engine, sql.clone(), what.clone())
            .await
            .err();
        let _ = request.reply.send(Reply {
            millis: started.elapsed().as_millis() as u64,
            size: 1,
            error,
        });
    }
}

/// Runs `sql` as the administrator of `engine`; the error is the status and the message.
async fn run_sql<T: Transport>(
    transport: &T,
    ctx: &StepContext<'_>,
    engine: Engine,
    sql: String,
    what: String,
) -> Result<(), (u32, String)> {
    let commands = ctx
        .sql(engine, None, sql, what)
        .map_err(|error| (1, super::error_text(&error)))?;
    for command in commands {
        let output = transport
            .exec(&command.command, Stdin::Bytes(&command.stdin))
            .await
            .map_err(|error| (1, super::error_text(&error)))?;
        if !output.success() {
            return Err((output.status.max(1), output.stderr_lossy()));
        }
    }
    Ok(())
}

/// The batch's command line and stdin.
fn service_command(
    service: &Service,
    batch: &[Request],
) -> Result<(String, Vec<u8>), crate::transport::QuoteError> {
    match service {
        Service::Supervisor => {
            let mut programs: Vec<String> = Vec::new();
            for request in batch {
                if let Item::Programs(names) = &request.item {
                    for name in names {
                        if !programs.contains(name) {
                            programs.push(name.clone());
                        }
                    }
                }
            }
            let command = Command::script(super::commands::SUPERVISOR_UPDATE)
                .args(programs)
                .render()?;
            Ok((command, Vec::new()))
        }
        Service::Users | Service::MysqlAdmin | Service::PostgresAdmin => {
            let mut args = Vec::new();
            for request in batch {
                if let Item::User { user, home } = &request.item {
                    args.extend([user.clone(), home.clone()]);
                }
            }
            let command = Command::script(ENSURE_USERS).args(args).render()?;
            Ok((command, Vec::new()))
        }
        Service::Removal => {
            let mut stdin = Vec::new();
            for request in batch {
                if let Item::Removal { lines, .. } = &request.item {
                    stdin.extend_from_slice(lines.as_bytes());
                }
            }
            let command = Command::script(super::commands::REMOVE_SITES).render()?;
            Ok((command, stdin))
        }
        Service::Files | Service::Nginx | Service::PhpFpm(_) => {
            let (reload, php) = match service {
                Service::PhpFpm(version) => ("php-fpm", version.as_str()),
                Service::Nginx => ("nginx", ""),
                _ => ("files", ""),
            };
            let command = Command::script(LOAD_BATCH).args([reload, php]).render()?;
            Ok((command, files_stdin(batch)))
        }
    }
}

/// Per file, `PATH OWNER GROUP MODE SIZE` and the content (load_batch.sh).
fn files_stdin(batch: &[Request]) -> Vec<u8> {
    let mut stdin = Vec::new();
    for request in batch {
        if let Item::File {
            path,
            content,
            owner,
            group,
            mode,
            marked,
        } = &request.item
        {
            let marker = if *marked {
                path.replace('/', "%")
            } else {
                "-".to_owned()
            };
            let header = format!(
                "{path} {owner} {group} {mode:o} {} {marker}\n",
                content.len()
            );
            stdin.extend_from_slice(header.as_bytes());
            stdin.extend_from_slice(content.as_bytes());
        }
    }
    stdin
}

/// What a batch answered: which names (paths or programs) failed and why.
struct Answers {
    /// Set when the whole batch failed (status, message) and no name was singled out.
    whole: Option<(u32, String)>,
    /// The status the batch exited with.
    status: u32,
    failed: HashMap<String, String>,
}

impl Answers {
    fn read(result: &Result<crate::transport::ExecOutput, TransportError>) -> Answers {
        let output = match result {
            Ok(output) => output,
            Err(error) => {
                return Answers {
                    whole: Some((1, super::error_text(error))),
                    status: 1,
                    failed: HashMap::new(),
                };
            }
        };
        let failed = failed_names(&output.stdout_lossy());
        let whole = (!output.success() && failed.is_empty())
            .then(|| (output.status, output.stderr_lossy()));
        Answers {
            whole,
            status: output.status.max(1),
            failed,
        }
    }

    fn error_for(&self, item: &Item) -> Option<(u32, String)> {
        if let Some(whole) = &self.whole {
            return Some(whole.clone());
        }
        let names: Vec<&String> = match item {
            Item::File { path, .. } => vec![path],
            Item::Programs(programs) => programs.iter().collect(),
            Item::User { user, .. } => vec![user],
            Item::Sql { what, .. } => vec![what],
            Item::Removal { site, .. } => vec![site],
        };
        let messages: Vec<&str> = names
            .iter()
            .filter_map(|name| self.failed.get(*name).map(String::as_str))
            .collect();
        (!messages.is_empty()).then(|| (self.status, messages.join("\n")))
    }
}

/// `failed NAME` lines, each with the `| ` lines that follow it.
fn failed_names(stdout: &str) -> HashMap<String, String> {
    let mut failed: HashMap<String, String> = HashMap::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("failed ") {
            current = Some(name.trim().to_owned());
            failed.entry(name.trim().to_owned()).or_default();
        } else if let (Some(detail), Some(name)) = (line.strip_prefix("| "), &current) {
            let text = failed.entry(name.clone()).or_default();
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(detail);
        } else if line == "|" {
            continue;
        } else {
            current = None;
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::secret::ResolvedSecrets;

    #[test]
    fn failed_names_gather_their_detail_lines() {
        let stdout = "failed /etc/nginx/conf.d/a.conf\n| nginx -t failed\n| in a.conf:3\nok /etc/nginx/conf.d/b.conf\n";
        let failed = failed_names(stdout);
        assert_eq!(failed.len(), 1);
        assert_eq!(
            failed["/etc/nginx/conf.d/a.conf"],
            "nginx -t failed\nin a.conf:3"
        );
    }

    #[test]
    fn a_batch_failure_singles_out_only_the_named_items() {
        let answers = Answers {
            whole: None,
            status: 1,
            failed: failed_names("failed siteward-a-queue\n| FATAL\n"),
        };
        let mine = Item::Programs(vec!["siteward-a-queue".into()]);
        let theirs = Item::Programs(vec!["siteward-b-queue".into()]);
        assert_eq!(answers.error_for(&mine), Some((1, "FATAL".into())));
        assert_eq!(answers.error_for(&theirs), None);
    }

    #[test]
    fn server_wide_steps_and_file_writes_are_batched() {
        let write = |reload| Step::WriteFile {
            path: "/etc/x.conf".into(),
            content: "x".into(),
            owner: "root".into(),
            group: "root".into(),
            mode: 0o644,
            reload,
        };
        let server: crate::spec::server::ServerSpec =
            serde_json::from_value(serde_json::json!({"address": "192.0.2.1"}))
                .expect("a server spec");
        let secrets = ResolvedSecrets::default();
        let ctx = StepContext {
            fence: None,
            server: &server,
            secrets: &secrets,
            wave: None,
        };
        let service = |step: &Step| batched(step, &ctx).map(|(service, _, _)| service);
        assert_eq!(service(&write(Reload::Nginx)), Some(Service::Nginx));
        assert_eq!(
            service(&write(Reload::PhpFpm {
                version: "8.2".into()
            })),
            Some(Service::PhpFpm("8.2".into()))
        );
        assert_eq!(service(&write(Reload::Nothing)), Some(Service::Files));
        assert_eq!(service(&write(Reload::Supervisor)), Some(Service::Files));
        let create = |engine| Step::CreateDatabase {
            engine,
            name: "shop".into(),
            charset: None,
            collation: None,
        };
        assert_eq!(service(&create(Engine::Mysql)), Some(Service::MysqlAdmin));
        assert_eq!(
            service(&create(Engine::Postgres)),
            Some(Service::PostgresAdmin)
        );
        // Each PostgreSQL part starts where it would alone: connected to `postgres`.
        let Some((_, Item::Sql { sql, .. }, _)) = batched(&create(Engine::Postgres), &ctx) else {
            panic!("a batched statement");
        };
        assert!(
            sql.starts_with("\\connect postgres\nSELECT 'CREATE DATABASE \"shop\""),
            "{sql}"
        );
    }

    #[test]
    fn files_travel_as_header_lines_and_exact_bytes() {
        let (reply, _) = oneshot::channel();
        let request = Request {
            item: Item::File {
                path: "/etc/a.conf".into(),
                content: "one\ntwo".into(),
                owner: "root".into(),
                group: "root".into(),
                mode: 0o644,
                marked: true,
            },
            reply,
        };
        assert_eq!(
            files_stdin(&[request]),
            b"/etc/a.conf root root 644 7 %etc%a.conf\none\ntwo".to_vec()
        );
    }
}
