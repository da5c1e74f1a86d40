//! Applying a plan: run each site's steps in order on its server, under the site's lock.

pub mod commands;
pub mod lock;
pub mod sql;
pub mod wave;

use crate::plan::{Plan, SitePlan, Step};
use crate::spec::secret::ResolvedSecrets;
use crate::spec::server::ServerSpec;
use crate::transport::{Stdin, Transport, TransportError};
use commands::{CommandError, StepContext};
use lock::{LockError, LockOwner};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Set once this process is shutting down (the daemon got SIGTERM): applies and migrations
/// stop at their next safe point, between two steps or two phases, and release their locks.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks every apply and migration of this process to stop at its next safe point.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The process is shutting down: the steps after this point were not run.
    #[error("stopped before `{next}`: siteward is shutting down (the next run goes on from here)")]
    Interrupted { next: String },
    #[error(transparent)]
    Lock(#[from] Box<LockError>),
    #[error("step `{what}` could not be prepared")]
    Prepare {
        what: String,
        #[source]
        source: CommandError,
    },
    #[error("step `{what}` failed")]
    Step {
        what: String,
        #[source]
        source: TransportError,
    },
}

/// What happened to one step.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepOutcome {
    pub what: String,
    pub ok: bool,
    /// How long the step ran on its server (waiting for a free SSH channel not counted).
    pub millis: u64,
    /// How long the step waited for a free SSH channel before it ran.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub queued_millis: u64,
    /// What the step printed (scrubbed of secrets).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// What happened to one site.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteOutcome {
    pub site: String,
    pub server: String,
    pub ok: bool,
    pub millis: u64,
    pub steps: Vec<StepOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The report of a migration, when the site moved here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<Box<crate::migrate::report::MigrationReport>>,
}

/// Runs one site's steps on its server, holding the site's lock; its server-wide work (config
/// tests and reloads) is shared with the other sites of `wave`.
///
/// # Guarantees
/// Steps run in plan order and stop at the first failure; every step is idempotent, so a
/// later apply (after a crash or a fix) converges. The lock is released even on failure.
pub async fn apply_site<T: Transport>(
    transport: &T,
    site: &SitePlan,
    server: &ServerSpec,
    secrets: &ResolvedSecrets,
    owner: &LockOwner,
    wave: &wave::Wave,
) -> SiteOutcome {
    let started = Instant::now();
    let mut outcome = SiteOutcome {
        site: site.site.clone(),
        server: site.server.clone(),
        ok: true,
        millis: 0,
        steps: Vec::new(),
        error: None,
        migration: None,
    };
    if let Err(error) = lock::acquire(transport, &site.site, owner).await {
        outcome.ok = false;
        outcome.error = Some(secrets.scrub(&error_text(&error)));
        return outcome;
    }
    // A fenced run checks its fence before every step, so it runs each step alone.
    let fence = commands::StepFence::of(&site.site, owner);
    let ctx = StepContext {
        server,
        secrets,
        wave: fence.is_none().then_some(wave),
        fence,
    };
    if let Err(error) = run_steps(transport, site.steps(), &ctx, &mut outcome.steps).await {
        outcome.ok = false;
        outcome.error = Some(secrets.scrub(&error_text(&error)));
    }
    if let Err(error) = lock::release(transport, &site.site, owner).await {
        tracing::warn!(site = %site.site, "could not release the lock: {}", secrets.scrub(&error.to_string()));
    }
    outcome.millis = started.elapsed().as_millis() as u64;
    outcome
}

/// Runs steps in order, stopping at the first failure; each step's outcome is appended.
///
/// # Errors
/// The first step that could not be prepared or failed.
pub async fn run_steps<'s, T: Transport>(
    transport: &T,
    steps: impl Iterator<Item = &'s Step>,
    ctx: &StepContext<'_>,
    outcomes: &mut Vec<StepOutcome>,
) -> Result<(), ApplyError> {
    for step in steps {
        if interrupted() {
            return Err(ApplyError::Interrupted {
                next: step_name(step),
            });
        }
        run_step(transport, step, ctx, outcomes).await?;
    }
    Ok(())
}

async fn run_step<T: Transport>(
    transport: &T,
    step: &Step,
    ctx: &StepContext<'_>,
    outcomes: &mut Vec<StepOutcome>,
) -> Result<(), ApplyError> {
    if let Some(wave) = ctx.wave
        && let Some(result) = wave.run(transport, step, ctx, outcomes).await
    {
        return result.map_err(|source| {
            let what = outcomes
                .last()
                .map_or_else(|| step_name(step), |o| o.what.clone());
            tracing::error!(step = %what, "failed: {}", ctx.secrets.scrub(&source.to_string()));
            ApplyError::Step { what, source }
        });
    }
    let remote = commands::commands(step, ctx).map_err(|source| ApplyError::Prepare {
        what: step_name(step),
        source,
    })?;
    for mut command in remote {
        if let Some(fence) = &ctx.fence {
            // The step runs only while the lease holds here and the lock is this run's there.
            let Ok(Some(token)) = fence.owner.fence(fence.site) else {
                return Err(ApplyError::Lock(Box::new(LockError::LeaseLost {
                    site: fence.site.into(),
                })));
            };
            command.command = lock::fenced(
                fence.site,
                fence.owner,
                token,
                &command.what,
                &command.command,
            )
            .map_err(|source| ApplyError::Prepare {
                what: command.what.clone(),
                source: source.into(),
            })?;
        }
        let queued = Instant::now();
        let slot = transport.reserve_channel().await;
        let queued_millis = queued.elapsed().as_millis() as u64;
        let started = Instant::now();
        tracing::info!(step = %command.what, "running");
        let mut output =
            OutputLines::new(command.stream.then(|| command.what.clone()), ctx.secrets);
        let result = transport
            .exec_streaming_in(
                slot,
                &command.command,
                Stdin::Bytes(&command.stdin),
                &mut output,
            )
            .await;
        let millis = started.elapsed().as_millis() as u64;
        let printed = output.finish();
        let result = result.and_then(|exit| {
            if exit.status == 0 && exit.signal.is_none() {
                Ok(())
            } else {
                Err(TransportError::Failed {
                    what: command.what.clone(),
                    endpoint: transport.endpoint().to_owned(),
                    status: exit.status,
                    stderr: crate::transport::stderr_excerpt(&exit.stderr),
                })
            }
        });
        match result {
            Ok(()) => outcomes.push(StepOutcome {
                what: command.what,
                ok: true,
                millis,
                queued_millis,
                output: printed,
                error: None,
            }),
            Err(source) => {
                let text = ctx.secrets.scrub(&source.to_string());
                tracing::error!(step = %command.what, "failed: {text}");
                outcomes.push(StepOutcome {
                    what: command.what.clone(),
                    ok: false,
                    millis,
                    queued_millis,
                    output: printed,
                    error: Some(text),
                });
                return Err(ApplyError::Step {
                    what: command.what,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Collects a step's stdout, scrubbed of secrets; for streamed steps, every complete line is
/// shown on stderr as it arrives.
struct OutputLines<'a> {
    label: Option<String>,
    secrets: &'a ResolvedSecrets,
    pending: Vec<u8>,
    collected: String,
}

impl<'a> OutputLines<'a> {
    fn new(label: Option<String>, secrets: &'a ResolvedSecrets) -> Self {
        OutputLines {
            label,
            secrets,
            pending: Vec::new(),
            collected: String::new(),
        }
    }

    fn line(&mut self, bytes: &[u8]) {
        let line = self
            .secrets
            .scrub(String::from_utf8_lossy(bytes).trim_end_matches('\r'));
        if let Some(label) = &self.label {
            eprintln!("  {label} | {line}");
        }
        self.collected.push_str(&line);
        self.collected.push('\n');
    }

    /// Everything printed, trimmed.
    fn finish(mut self) -> String {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.line(&rest);
        }
        self.collected.trim().to_owned()
    }
}

impl tokio::io::AsyncWrite for OutputLines<'_> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.pending.extend_from_slice(buf);
        while let Some(end) = this.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = this.pending.drain(..=end).collect();
            this.line(&line[..line.len() - 1]);
        }
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The error and its causes on one line.
pub fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn step_name(step: &Step) -> String {
    serde_json::to_value(step)
        .ok()
        .and_then(|v| v.get("op").and_then(|op| op.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "step".into())
}

/// Whether every site applied.
pub fn all_ok(outcomes: &[SiteOutcome]) -> bool {
    outcomes.iter().all(|o| o.ok)
}

/// The plan's sites grouped by server, in plan order.
pub fn sites_by_server(plan: &Plan) -> std::collections::BTreeMap<String, Vec<&SitePlan>> {
    let mut map: std::collections::BTreeMap<String, Vec<&SitePlan>> = Default::default();
    for site in &plan.sites {
        if site.has_work() {
            map.entry(site.server.clone()).or_default().push(site);
        }
    }
    map
}
