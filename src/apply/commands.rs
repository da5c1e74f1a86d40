//! Turning steps into remote commands: a constant script, quoted arguments, data on stdin.

use super::sql;
use crate::plan::step::{
    DeployStep, Engine, EnvSource, Reload, RemoveSiteStep, RollbackStep, Step, TakeOverStep,
};
use crate::spec::secret::{ResolvedSecrets, SecretRef};
use crate::spec::server::{DatabaseAdmin, ServerSpec};
use crate::transport::{Command, QuoteError};

/// A remote command ready to run: the command line and what goes to its stdin.
pub struct RemoteCommand {
    pub command: String,
    pub stdin: Vec<u8>,
    /// What it does, for messages.
    pub what: String,
    /// Whether its output is shown as it comes (deploy scripts).
    pub stream: bool,
}

/// Why a step could not become a command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Quote(#[from] QuoteError),
    #[error(transparent)]
    Sql(#[from] sql::SqlError),
    #[error("secret `{0}` was not resolved")]
    Unresolved(String),
    #[error("the server has no `{0}:` section, so siteward cannot administer its databases")]
    NoAdmin(&'static str),
}

const ENSURE_USER: &str = include_str!("scripts/ensure_user.sh");
const ENSURE_DIRECTORY: &str = include_str!("scripts/ensure_directory.sh");
/// Functions that load managed files into their services, ahead of the scripts that use them.
macro_rules! with_reload {
    ($script:literal) => {
        concat!(include_str!("scripts/reload.sh"), include_str!($script))
    };
}
const WRITE_FILE: &str = with_reload!("scripts/write_file.sh");
const REMOVE_FILE: &str = with_reload!("scripts/remove_file.sh");
const TLS_WRITE: &str = with_reload!("scripts/tls_write.sh");
const TLS_ISSUE: &str = include_str!("scripts/tls_issue.sh");
const MERGE_ENV: &str = include_str!("scripts/merge_env.sh");
const SQL: &str = include_str!("scripts/sql.sh");
const DEPLOY: &str = include_str!("scripts/deploy.sh");
pub(super) const SUPERVISOR_UPDATE: &str = concat!(
    include_str!("scripts/reload.sh"),
    include_str!("scripts/supervisor.sh"),
    include_str!("scripts/supervisor_update.sh")
);
const TAKE_OVER: &str = concat!(
    include_str!("scripts/reload.sh"),
    include_str!("scripts/supervisor.sh"),
    include_str!("scripts/take_over.sh")
);
const WRITE_RECORD: &str = include_str!("scripts/write_record.sh");
pub(super) const REMOVE_SITES: &str = concat!(
    include_str!("scripts/supervisor.sh"),
    include_str!("scripts/remove_sites.sh")
);

/// What the executor knows besides the step: the server, the resolved secrets, and the wave
/// of sites whose server-wide work is shared (none: each step runs alone).
pub struct StepContext<'a> {
    pub server: &'a ServerSpec,
    pub secrets: &'a ResolvedSecrets,
    pub wave: Option<&'a super::wave::Wave>,
    /// The site and lock owner whose fence guards every step (a daemon sharing the sites).
    pub fence: Option<StepFence<'a>>,
}

/// Whose fence guards a site's steps.
#[derive(Clone, Copy, Debug)]
pub struct StepFence<'a> {
    pub site: &'a str,
    pub owner: &'a super::lock::LockOwner,
}

impl<'a> StepFence<'a> {
    /// The fence for `site`'s steps when `owner` shares the sites through leases.
    pub fn of(site: &'a str, owner: &'a super::lock::LockOwner) -> Option<Self> {
        owner.fences.as_ref().map(|_| StepFence { site, owner })
    }
}

impl StepContext<'_> {
    fn secret(&self, reference: &SecretRef) -> Result<&str, CommandError> {
        self.secrets
            .get(reference)
            .map(|s| s.expose())
            .ok_or_else(|| CommandError::Unresolved(reference.secret.clone()))
    }

    /// The command that runs SQL as the server's database administrator.
    pub fn sql(
        &self,
        engine: Engine,
        database: Option<&str>,
        sql: String,
        what: String,
    ) -> Result<Vec<RemoteCommand>, CommandError> {
        let (section, admin) = match engine {
            Engine::Mysql => ("mysql", self.server.mysql.as_ref()),
            Engine::Postgres => ("postgres", self.server.postgres.as_ref()),
        };
        let admin: &DatabaseAdmin = admin.ok_or(CommandError::NoAdmin(section))?;
        let mut stdin = Vec::new();
        let auth = match &admin.admin_password {
            Some(reference) => {
                stdin.extend_from_slice(self.secret(reference)?.as_bytes());
                stdin.push(b'\n');
                "password"
            }
            None => "socket",
        };
        stdin.extend_from_slice(sql.as_bytes());
        let engine_word = if engine == Engine::Mysql {
            "mysql"
        } else {
            "postgres"
        };
        let command = Command::script(SQL)
            .args([
                engine_word,
                auth,
                admin.admin_user.as_str(),
                database.unwrap_or(""),
            ])
            .render()?;
        Ok(vec![RemoteCommand {
            command,
            stdin,
            what,
            stream: false,
        }])
    }
}

/// The takeover script and its records on stdin (the new file's content in base64).
fn take_over_command(take: &TakeOverStep) -> Result<Vec<RemoteCommand>, CommandError> {
    use base64::Engine as _;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let mut stdin = String::new();
    if let Some(write) = &take.write {
        stdin.push_str(&format!(
            "write\t{}\t{}\t{}\t{:o}\t{}\n",
            write.path,
            write.owner,
            write.group,
            write.mode,
            encode(&write.content)
        ));
    }
    for path in &take.remove {
        stdin.push_str(&format!("remove\t{path}\n"));
    }
    for (file, line) in &take.lines {
        stdin.push_str(&format!("line\t{file}\t{}\n", encode(line)));
    }
    let [reload, php] = reload_args(&take.reload);
    let mut old: Vec<&str> = take.remove.iter().map(String::as_str).collect();
    old.extend(take.lines.iter().map(|(file, _)| file.as_str()));
    simple(
        TAKE_OVER,
        vec![
            take.site.clone(),
            reload,
            php,
            take.join.clone().unwrap_or_default(),
        ],
        stdin.into_bytes(),
        format!("take over from {}", old.join(", ")),
    )
}

fn reload_args(reload: &Reload) -> [String; 2] {
    match reload {
        Reload::Nothing => ["nothing".into(), String::new()],
        Reload::Nginx => ["nginx".into(), String::new()],
        Reload::PhpFpm { version } => ["php-fpm".into(), version.clone()],
        Reload::Supervisor => ["supervisor".into(), String::new()],
    }
}

fn simple(
    script: &str,
    args: Vec<String>,
    stdin: Vec<u8>,
    what: String,
) -> Result<Vec<RemoteCommand>, CommandError> {
    let command = Command::script(script).args(args).render()?;
    Ok(vec![RemoteCommand {
        command,
        stdin,
        what,
        stream: false,
    }])
}

/// The remote commands of a step (usually one).
pub fn commands(step: &Step, ctx: &StepContext) -> Result<Vec<RemoteCommand>, CommandError> {
    match step {
        Step::EnsureUser { user, home } => simple(
            ENSURE_USER,
            vec![user.clone(), home.clone()],
            Vec::new(),
            format!("create user {user}"),
        ),
        Step::EnsureDirectories {
            owner,
            group,
            directories,
        } => {
            let mut args = vec![owner.clone(), group.clone()];
            for (path, mode) in directories {
                args.push(path.clone());
                args.push(format!("{mode:o}"));
            }
            let first = directories
                .first()
                .map(|(p, _)| p.as_str())
                .unwrap_or_default();
            let what = format!("{} directories under {first}", directories.len());
            simple(ENSURE_DIRECTORY, args, Vec::new(), what)
        }
        Step::WriteFile {
            path,
            content,
            owner,
            group,
            mode,
            reload,
        } => {
            let [reload, php] = reload_args(reload);
            let args = vec![
                path.clone(),
                owner.clone(),
                group.clone(),
                format!("{mode:o}"),
                reload,
                php,
            ];
            simple(
                WRITE_FILE,
                args,
                content.clone().into_bytes(),
                format!("write {path}"),
            )
        }
        Step::WriteSecrets { path, entries } => {
            let mut stdin = String::new();
            for (name, reference) in entries {
                use base64::Engine as _;
                let value =
                    base64::engine::general_purpose::STANDARD.encode(ctx.secret(reference)?);
                stdin.push_str(&format!("{name}={value}\n"));
            }
            let args = vec![
                path.clone(),
                "root".into(),
                "root".into(),
                "600".into(),
                "nothing".into(),
                String::new(),
            ];
            simple(
                WRITE_FILE,
                args,
                stdin.into_bytes(),
                format!("write {path}"),
            )
        }
        Step::WriteCertificate {
            directory,
            certificate,
            key,
        } => {
            use base64::Engine as _;
            let engine = base64::engine::general_purpose::STANDARD;
            let pem = |value: &str| format!("{}\n", value.trim_end());
            let stdin = format!(
                "{}\n{}\n",
                engine.encode(pem(ctx.secret(certificate)?)),
                engine.encode(pem(ctx.secret(key)?))
            );
            simple(
                TLS_WRITE,
                vec![directory.clone()],
                stdin.into_bytes(),
                format!("write the certificate and key in {directory}"),
            )
        }
        Step::IssueCertificate(issue) => simple(
            TLS_ISSUE,
            vec![
                issue.site.clone(),
                issue.email.clone(),
                issue.directory.clone(),
                issue.webroot.clone(),
                issue.names.join(","),
                crate::resources::tls::DEPLOY_HOOK.to_owned(),
            ],
            Vec::new(),
            format!(
                "certificate for {} from {}",
                issue.names.join(", "),
                issue.directory
            ),
        ),
        Step::RemoveFile { path, reload } => {
            let [reload, php] = reload_args(reload);
            simple(
                REMOVE_FILE,
                vec![path.clone(), reload, php],
                Vec::new(),
                format!("remove {path}"),
            )
        }
        Step::MergeEnv {
            path,
            owner,
            group,
            set,
        } => {
            let mut stdin = String::new();
            for (key, source) in set {
                let value = match source {
                    EnvSource::Plain(text) => text.as_str(),
                    EnvSource::Secret(reference) => ctx.secret(reference)?,
                };
                stdin.push_str(&format!("{key}={}\n", env_value(value)));
            }
            simple(
                MERGE_ENV,
                vec![path.clone(), owner.clone(), group.clone()],
                stdin.into_bytes(),
                format!("set keys in {path}"),
            )
        }
        Step::AlterDatabase {
            engine,
            name,
            charset,
            collation,
        } => {
            let sql = sql::alter_database(*engine, name, charset.as_deref(), collation.as_deref())?;
            ctx.sql(*engine, None, sql, format!("alter database {name}"))
        }
        Step::CreateDatabase { .. } | Step::EnsureDatabaseUser { .. } => match admin_sql(step, ctx)
        {
            Some(prepared) => {
                let (engine, sql, what) = prepared?;
                ctx.sql(engine, None, sql, what)
            }
            None => Ok(Vec::new()),
        },
        Step::DropDatabaseUser { engine, name } => ctx.sql(
            *engine,
            None,
            sql::drop_user(*engine, name),
            format!("drop database user {name}"),
        ),
        Step::Deploy(deploy) => deploy_command(deploy),
        Step::Rollback(rollback) => rollback_command(rollback),
        Step::SupervisorUpdate { programs } => simple(
            SUPERVISOR_UPDATE,
            programs.clone(),
            Vec::new(),
            format!("supervisor update {}", programs.join(" ")),
        ),
        Step::WriteRecord { site, facts } => {
            let body: String = facts.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            simple(
                WRITE_RECORD,
                vec![site.clone()],
                body.into_bytes(),
                format!("record {site}"),
            )
        }
        Step::RemoveSite(remove) => remove_site_commands(remove, ctx),
        Step::TakeOver(take) => take_over_command(take),
    }
}

/// The engine, SQL and name of a step that runs SQL as the administrator without choosing a
/// database (several such steps can run in one client); `None` for other steps.
pub fn admin_sql(
    step: &Step,
    ctx: &StepContext,
) -> Option<Result<(Engine, String, String), CommandError>> {
    match step {
        Step::CreateDatabase {
            engine,
            name,
            charset,
            collation,
        } => Some(
            sql::create_database(*engine, name, charset.as_deref(), collation.as_deref())
                .map(|sql| (*engine, sql, format!("create database {name}")))
                .map_err(CommandError::from),
        ),
        Step::EnsureDatabaseUser {
            engine,
            database,
            name,
            password,
            privileges,
        } => Some(ctx.secret(password).and_then(|password| {
            let sql = sql::ensure_user(*engine, database, name, password, privileges)?;
            Ok((*engine, sql, format!("database user {name}")))
        })),
        _ => None,
    }
}

fn deploy_command(deploy: &DeployStep) -> Result<Vec<RemoteCommand>, CommandError> {
    let strategy = match deploy.strategy {
        crate::spec::site::DeployStrategy::Releases => "releases",
        crate::spec::site::DeployStrategy::InPlace => "in-place",
    };
    let mut args = vec![
        strategy.to_owned(),
        deploy.user.clone(),
        deploy.root.clone(),
        deploy.repository.clone(),
        deploy.revision.clone(),
        deploy.keep_releases.to_string(),
        deploy.php_binary.clone().unwrap_or_default(),
        deploy.domain.clone(),
        deploy.branch.clone().unwrap_or_default(),
        if deploy.storage_link { "yes" } else { "no" }.to_owned(),
        deploy.shared.join(","),
        deploy.restart.join("\n"),
        deploy.programs.join("\n"),
    ];
    args.extend(health_args(deploy));
    args.push(deploy.fingerprint());
    let https = deploy.health.as_ref().is_some_and(|h| h.https);
    args.push(if https { "https" } else { "http" }.to_owned());
    let stdin = deploy.script.clone().unwrap_or_default().into_bytes();
    let mut commands = simple(
        DEPLOY,
        args,
        stdin,
        format!("deploy {} of {}", short(&deploy.revision), deploy.site),
    )?;
    commands.iter_mut().for_each(|c| c.stream = true);
    Ok(commands)
}

/// Path, expected status, expected body and timeout; an empty path means no check.
fn health_args(deploy: &DeployStep) -> [String; 4] {
    match &deploy.health {
        Some(health) => [
            health.path.clone(),
            health.expect_status.to_string(),
            health.expect_body.clone().unwrap_or_default(),
            health.timeout_seconds.to_string(),
        ],
        None => [String::new(), "200".into(), String::new(), "10".into()],
    }
}

/// `deploy.sh rollback`: the same switch, reload and restarts as a deploy, to release `to`.
fn rollback_command(rollback: &RollbackStep) -> Result<Vec<RemoteCommand>, CommandError> {
    let mut args = vec![
        "rollback".to_owned(),
        rollback.user.clone(),
        rollback.root.clone(),
        String::new(),
        rollback.to.clone(),
        "0".into(),
        rollback.php_binary.clone().unwrap_or_default(),
    ];
    args.extend(["", "", "no", ""].map(String::from));
    args.push(rollback.restart.join("\n"));
    args.push(rollback.programs.join("\n"));
    args.extend(["", "200", "", "10", ""].map(String::from));
    simple(
        DEPLOY,
        args,
        Vec::new(),
        format!("roll {} back to release {}", rollback.site, rollback.to),
    )
}

fn short(revision: &str) -> &str {
    &revision[..revision.len().min(12)]
}

fn remove_site_commands(
    remove: &RemoveSiteStep,
    ctx: &StepContext,
) -> Result<Vec<RemoteCommand>, CommandError> {
    let mut out = Vec::new();
    if let Some((engine, sql, what)) = drop_site_database(remove) {
        out.extend(ctx.sql(engine, None, sql, what)?);
    }
    out.extend(simple(
        REMOVE_SITES,
        Vec::new(),
        removal_lines(remove)?.into_bytes(),
        format!("remove site {}", remove.site),
    )?);
    Ok(out)
}

/// The SQL that drops a removed site's database and its users, when it has a database: the
/// engine, the statements and what they do.
pub(super) fn drop_site_database(remove: &RemoveSiteStep) -> Option<(Engine, String, String)> {
    let (engine, database) = remove.database.as_ref()?;
    let mut sql = sql::drop_database(*engine, database);
    for user in &remove.database_users {
        sql.push_str(&sql::drop_user(*engine, user));
    }
    Some((*engine, sql, format!("drop database {database}")))
}

/// What remove_sites.sh reads of one site: `KIND VALUE` lines, the site's first.
///
/// # Errors
/// A value holding a line break or a NUL, which the lines cannot carry.
pub(super) fn removal_lines(remove: &RemoveSiteStep) -> Result<String, QuoteError> {
    let mut lines = vec![("site", remove.site.as_str())];
    lines.extend(remove.user.as_deref().map(|user| ("user", user)));
    lines.extend(remove.root.as_deref().map(|root| ("root", root)));
    lines.extend(remove.files.iter().map(|file| ("file", file.as_str())));
    lines.extend(remove.programs.iter().map(|p| ("program", p.as_str())));
    let mut text = String::new();
    for (kind, value) in lines {
        if let Some(offset) = value.find(['\n', '\r', '\0']) {
            return Err(QuoteError::LineBreak {
                value: value.to_owned(),
                offset,
            });
        }
        text.push_str(&format!("{kind} {value}\n"));
    }
    Ok(text)
}

/// A `.env` value as Laravel's dotenv reads it back: bare when plain, else quoted.
pub fn env_value(value: &str) -> String {
    let bare = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./:@+,".contains(c));
    if bare {
        value.to_owned()
    } else if !value.contains('\'') {
        format!("'{value}'")
    } else {
        format!(
            "\"{}\"",
            value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "\\$")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removal(files: Vec<String>) -> RemoveSiteStep {
        RemoveSiteStep {
            site: "shop".into(),
            user: Some("shop".into()),
            root: Some("/home/shop/shop.test".into()),
            files,
            programs: vec!["siteward-shop-queue".into()],
            database: Some((Engine::Mysql, "shop".into())),
            database_users: vec!["shop".into()],
        }
    }

    #[test]
    fn a_removal_is_sent_as_lines_and_a_line_break_in_a_value_is_refused() {
        let lines = removal_lines(&removal(vec!["/etc/cron.d/siteward-shop".into()])).unwrap();
        assert_eq!(
            lines,
            "site shop\nuser shop\nroot /home/shop/shop.test\nfile /etc/cron.d/siteward-shop\n\
             program siteward-shop-queue\n"
        );
        let error = removal_lines(&removal(vec!["/etc/x\nsite other".into()])).unwrap_err();
        assert!(error.to_string().contains("line break"), "{error}");
        let (engine, sql, what) = drop_site_database(&removal(Vec::new())).unwrap();
        assert_eq!(
            (engine, what.as_str()),
            (Engine::Mysql, "drop database shop")
        );
        assert!(
            sql.contains("DROP DATABASE") && sql.contains("DROP USER"),
            "{sql}"
        );
    }

    #[test]
    fn env_values_are_quoted_only_when_needed() {
        assert_eq!(env_value("production"), "production");
        assert_eq!(env_value("https://x.example/a"), "https://x.example/a");
        assert_eq!(env_value("two words"), "'two words'");
        assert_eq!(env_value("it's"), "\"it's\"");
        assert_eq!(env_value(""), "");
    }
}
