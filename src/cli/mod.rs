//! Command-line types (clap only; the work happens in `commands`).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Declarative reconciler for PHP and Laravel sites on your own servers.
#[derive(Debug, Parser)]
#[command(name = "siteward", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every verb takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log output (-q errors only, -qq nothing).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "SITEWARD_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// State store: a SQLite path or URL, or a `postgres://` URL.
    #[arg(
        long,
        global = true,
        env = "SITEWARD_STATE",
        default_value = ".siteward/state.db"
    )]
    pub state: String,
    /// When to colour output (`NO_COLOR` is honoured with `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// Log line formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Colour choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Output formats for data on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Output formats for plans and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Markdown,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check specs against the schema and the semantic rules; report every error at once.
    Validate(ValidateArgs),
    /// Write the JSON Schema of the specs into a directory, or check that it is current.
    Schema(SchemaArgs),
    /// Observe the servers, diff them against the specs and print the steps an apply would run.
    Plan(PlanArgs),
    /// Run the steps that bring the servers to the specs.
    Apply(ApplyArgs),
    /// Show each site's last known state from the state store.
    Status(StatusArgs),
    /// Reconcile continuously: on spec changes and on a periodic resync.
    Watch(WatchArgs),
    /// Print the report of a site's last apply or migration.
    Report(ReportArgs),
    /// Print what siteward sees on the servers.
    Observe(ObserveArgs),
    /// Switch a site back to its previous good release.
    Rollback(RollbackArgs),
    /// Write specs from what an existing server runs.
    Discover(DiscoverArgs),
    /// Back a site up now (database, storage, `.env`), as its schedule does.
    Backup(BackupArgs),
    /// List a site's backups, with their sizes.
    Backups(BackupsArgs),
    /// Restore a site's database, storage and `.env` from a backup, showing the plan first.
    Restore(RestoreArgs),
    /// Write a site into one portable bundle: spec, database, storage, `.env` without secrets.
    Export(ExportArgs),
    /// Bring a bundle's site onto the server its spec names, after checking every checksum.
    Import(ImportArgs),
}

/// `siteward backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The site.
    pub site: String,
    #[command(flatten)]
    pub specs: SpecPaths,
    /// Also run `restic check --read-data` on the repository afterwards.
    #[arg(long)]
    pub check: bool,
    /// Record the host keys of servers not yet in known_hosts.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// `siteward backups`.
#[derive(Debug, Args)]
pub struct BackupsArgs {
    /// The site.
    pub site: String,
    #[command(flatten)]
    pub specs: SpecPaths,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Record the host keys of servers not yet in known_hosts.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// `siteward restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The site.
    pub site: String,
    /// A snapshot id (either half of a run, 4 characters at least); the latest run otherwise.
    #[arg(long)]
    pub snapshot: Option<String>,
    #[command(flatten)]
    pub specs: SpecPaths,
    /// Restore without asking.
    #[arg(long)]
    pub auto_approve: bool,
    /// Record the host keys of servers not yet in known_hosts.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// `siteward export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The site.
    pub site: String,
    /// The bundle file to write.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub specs: SpecPaths,
    /// Record the host keys of servers not yet in known_hosts.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// `siteward import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The bundle file.
    pub file: PathBuf,
    #[command(flatten)]
    pub specs: SpecPaths,
    /// Import without asking.
    #[arg(long)]
    pub auto_approve: bool,
    /// Record the host keys of servers not yet in known_hosts.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// `siteward validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Spec directories or files.
    #[arg(default_value = "specs")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// `siteward schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Directory the schema files go into.
    #[arg(long, default_value = "schemas")]
    pub dir: PathBuf,
    /// Do not write; exit 1 when the files differ from what this siteward generates.
    #[arg(long)]
    pub check: bool,
}

/// Where specs are read from.
#[derive(Debug, Args)]
pub struct SpecPaths {
    /// Spec directories or files.
    #[arg(long = "specs", default_value = "specs")]
    pub specs: Vec<PathBuf>,
}

/// `siteward plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub specs: SpecPaths,
    /// Only these sites.
    #[arg(long = "site")]
    pub sites: Vec<String>,
    /// Save the plan for a later `apply FILE`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit 0 when nothing would change, 2 when something would, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Plan the removal of sites that no spec names any more.
    #[arg(long)]
    pub prune: bool,
    /// Record the host keys of servers not yet in known_hosts.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// `siteward apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`.
    pub plan_file: Option<PathBuf>,
    #[command(flatten)]
    pub specs: SpecPaths,
    /// Only these sites.
    #[arg(long = "site")]
    pub sites: Vec<String>,
    /// Apply without asking.
    #[arg(long)]
    pub auto_approve: bool,
    /// Also remove sites that no spec names any more.
    #[arg(long)]
    pub prune: bool,
    /// Write the apply or migration report (JSON) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Record the host keys of servers not yet in known_hosts.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// `siteward status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this site.
    pub site: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// `siteward watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Spec directory to watch; when it is a git checkout that follows an upstream, the daemon
    /// fetches it and fast-forwards.
    #[arg(default_value = "specs")]
    pub dir: PathBuf,
    /// Address of the status page, the API, /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:9420")]
    pub listen: String,
    /// How often each site is observed again to catch drift (jittered), e.g. `10m`.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub resync: std::time::Duration,
    /// How often the specs' git remote is fetched (jittered), e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub git_interval: std::time::Duration,
    /// Reconciles running at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Reconciles running at once on one server.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub per_server: u16,
    /// The bearer token of the API's POST verbs: `env:NAME` or `file:PATH`
    /// (default: the variable SITEWARD_API_TOKEN; without a token they are off).
    #[arg(long)]
    pub api_token: Option<String>,
    /// The secret of git webhooks (GitHub's X-Hub-Signature-256, GitLab's X-Gitlab-Token):
    /// `env:NAME` or `file:PATH` (default: the variable SITEWARD_WEBHOOK_SECRET).
    #[arg(long)]
    pub webhook_secret: Option<String>,
    /// With a PostgreSQL `--state`, how long a daemon's lease of a site lasts unless renewed:
    /// a daemon that dies loses its sites to the others this long after its last renewal
    /// (renewed every third of it), e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = lease_length)]
    pub lease: std::time::Duration,
}

fn lease_length(text: &str) -> Result<std::time::Duration, String> {
    let length = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if length < std::time::Duration::from_secs(3) {
        return Err("a lease must last at least 3s (it is renewed every third of it)".into());
    }
    Ok(length)
}

/// `siteward report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The site.
    pub site: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// `siteward observe`.
#[derive(Debug, Args)]
pub struct ObserveArgs {
    #[command(flatten)]
    pub specs: SpecPaths,
    /// Only this server.
    #[arg(long)]
    pub server: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Record the host keys of servers not yet in known_hosts.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// `siteward rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The site.
    pub site: String,
    #[command(flatten)]
    pub specs: SpecPaths,
    /// Roll back without asking.
    #[arg(long)]
    pub auto_approve: bool,
    /// Record the host keys of servers not yet in known_hosts.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

/// `siteward discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The server to read: a Server document in `--specs`.
    pub server: String,
    #[command(flatten)]
    pub specs: SpecPaths,
    /// Directory the new specs are written to (created; no file in it is ever overwritten):
    /// outside `--specs`, whose Server it repeats.
    #[arg(long, default_value = "discovered")]
    pub out: PathBuf,
    /// Only these sites (their names as discovery gives them: the domain with `-` for `.`).
    #[arg(long = "site")]
    pub sites: Vec<String>,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Record the host key of a server not yet in known_hosts.
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
