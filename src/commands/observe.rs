//! `siteward observe`: connect to every server at once, run the probe, print what it saw.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use owo_colors::Style;

use super::{Context, Exit, hinted, paint};
use crate::cli::{ObserveArgs, OutputFormat};
use crate::observe::{self, ObserveError, ObservedServer, ProbeRequest, summary};
use crate::spec::secret::ResolvedSecrets;
use crate::spec::{self, Server, diagnostic};
use crate::transport::{SshError, SshSession, TransportError};

/// One server's observation, or why there is none.
struct Outcome {
    server: Server,
    endpoint: String,
    result: anyhow::Result<Observation>,
}

/// What one server answered, and what it cost.
struct Observation {
    observed: ObservedServer,
    elapsed: Duration,
    round_trips: u64,
}

/// Observes the servers of the specs and prints what they run.
pub fn run(ctx: &Context, args: ObserveArgs) -> anyhow::Result<Exit> {
    let loaded = spec::load_and_check(&args.specs.specs);
    if !loaded.diagnostics.is_empty() {
        eprint!(
            "{}",
            diagnostic::render_text(&loaded.diagnostics, &loaded.sources)
        );
        return Ok(Exit::Failure);
    }
    let requests = observe::probe_requests(&loaded);
    let servers = chosen_servers(&loaded, args.server.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let outcomes = runtime.block_on(observe_all(servers, &requests, args.accept_new_host_keys));
    print_outcomes(ctx, &outcomes, args.format)?;
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    Ok(if failed == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn chosen_servers(loaded: &spec::Loaded, only: Option<&str>) -> anyhow::Result<Vec<Server>> {
    let all: Vec<Server> = loaded.servers.iter().map(|l| l.item.clone()).collect();
    let Some(only) = only else {
        return Ok(all);
    };
    let chosen: Vec<Server> = all
        .iter()
        .filter(|s| s.name.as_str() == only)
        .cloned()
        .collect();
    if chosen.is_empty() {
        let known: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        return Err(hinted(
            format!("no Server named `{only}` in the specs"),
            format!("servers in the specs: {}", known.join(", ")),
        ));
    }
    Ok(chosen)
}

async fn observe_all(
    servers: Vec<Server>,
    requests: &BTreeMap<String, ProbeRequest>,
    accept_new: bool,
) -> Vec<Outcome> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, server) in servers.into_iter().enumerate() {
        let request = requests
            .get(server.name.as_str())
            .cloned()
            .unwrap_or_default();
        tasks.spawn(async move {
            let target = observe::target(&server, accept_new);
            let result = observe_one(&server, &request, accept_new).await;
            let endpoint = target.endpoint();
            (
                index,
                Outcome {
                    server,
                    endpoint,
                    result,
                },
            )
        });
    }
    let mut outcomes: Vec<(usize, Outcome)> = tasks.join_all().await;
    outcomes.sort_by_key(|(index, _)| *index);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

async fn observe_one(
    server: &Server,
    request: &ProbeRequest,
    accept_new: bool,
) -> anyhow::Result<Observation> {
    let started = Instant::now();
    let target = observe::target(server, accept_new);
    let session = SshSession::connect(&target).await.map_err(|error| {
        with_hint(
            server,
            ObserveError::Transport {
                server: server.name.to_string(),
                source: Box::new(TransportError::Ssh(error)),
            },
        )
    })?;
    let secrets = ResolvedSecrets::default();
    let observed = observe::observe(server, &session, request, &secrets).await;
    let round_trips = session.exec_count();
    session.close().await;
    let observed = observed.map_err(|error| with_hint(server, error))?;
    Ok(Observation {
        observed,
        elapsed: started.elapsed(),
        round_trips,
    })
}

/// The error with a hint that tells the fix, and the server in its context.
fn with_hint(server: &Server, error: ObserveError) -> anyhow::Error {
    let hint = hint_for(server, &error);
    let message = format!("failed to observe server `{}`", server.name);
    anyhow::Error::new(error).context(super::Hinted { message, hint })
}

fn hint_for(server: &Server, error: &ObserveError) -> String {
    let spec = &server.spec;
    match error {
        ObserveError::Secret { .. } => {
            "set the environment variable or create the file the secret reference names".into()
        }
        ObserveError::Transport { source, .. } => match source.as_ref() {
            TransportError::Ssh(ssh) => ssh_hint(server, ssh),
            _ => format!(
                "check that `{}` can run `sh` as root on {} (`sudo -n` for other users)",
                spec.user, spec.address
            ),
        },
        ObserveError::Render { .. } | ObserveError::Answer { .. } => {
            "the server's shell or tools answered something siteward cannot read; rerun with -vv \
             and report it with the server's OS release"
                .into()
        }
    }
}

/// How to fix an SSH failure to `server` (shared with `discover`).
pub(super) fn ssh_hint(server: &Server, error: &SshError) -> String {
    let spec = &server.spec;
    match error {
        SshError::HostKeyUnknown { .. } => {
            "check the key's fingerprint, then pass --accept-new-host-keys or pin it as `hostKey`"
                .into()
        }
        SshError::ConnectRefused { .. }
        | SshError::ConnectTimeout { .. }
        | SshError::Connect { .. } => format!(
            "check `address: {}` and `port: {}` in the Server spec, and that sshd runs there",
            spec.address, spec.port
        ),
        SshError::AuthFailed { .. } | SshError::Agent { .. } | SshError::KeyLoad { .. } => {
            format!(
                "check `identityFile` (or the keys in ssh-agent) and that the key is authorised for `{}`",
                spec.user
            )
        }
        _ => "run with -vv for the SSH conversation".into(),
    }
}

fn print_outcomes(ctx: &Context, outcomes: &[Outcome], format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => {
            let observed: BTreeMap<&str, &ObservedServer> = outcomes
                .iter()
                .filter_map(|o| Some((o.server.name.as_str(), &o.result.as_ref().ok()?.observed)))
                .collect();
            println!("{}", serde_json::to_string_pretty(&observed)?);
        }
        OutputFormat::Text => {
            for outcome in outcomes {
                if let Ok(observation) = &outcome.result {
                    print!("{}", render_server(ctx, outcome, observation));
                }
            }
        }
    }
    for outcome in outcomes {
        if let Err(error) = &outcome.result {
            eprint!("{}", render_error(ctx, error));
        }
    }
    Ok(())
}

fn render_error(ctx: &Context, error: &anyhow::Error) -> String {
    let mut out = format!(
        "{} {error}\n",
        paint(ctx.color_stderr, "error:", Style::new().red().bold())
    );
    let causes: Vec<String> = error.chain().skip(1).map(ToString::to_string).collect();
    if !causes.is_empty() {
        out.push_str("\nCaused by:\n");
        for cause in causes {
            out.push_str(&format!("  {cause}\n"));
        }
    }
    if let Some(hinted) = error.downcast_ref::<super::Hinted>() {
        let label = paint(ctx.color_stderr, "hint:", Style::new().cyan().bold());
        out.push_str(&format!("\n{label} {}\n", hinted.hint));
    }
    out.push('\n');
    out
}

fn render_server(ctx: &Context, outcome: &Outcome, observation: &Observation) -> String {
    let observed = &observation.observed;
    let bold = |text: &str| paint(ctx.color_stdout, text, Style::new().bold());
    let mut out = format!(
        "{} {} ({}, host name {}): observed in {:.2} s, {} round trip{}\n",
        bold("server"),
        bold(outcome.server.name.as_str()),
        outcome.endpoint,
        observed.hostname,
        observation.elapsed.as_secs_f64(),
        observation.round_trips,
        if observation.round_trips == 1 {
            ""
        } else {
            "s"
        }
    );
    out.push_str(&summary::server_lines(observed));
    for (name, site) in &observed.sites {
        out.push_str(&format!("  {} {}\n", bold("site"), bold(name)));
        out.push_str(&summary::site_lines(site));
    }
    out.push_str(&summary::problem_lines(observed));
    out.push('\n');
    out
}
