//! Applying a plan: run each site's steps in order on its server, under the site's lock.

pub mod commands;
pub mod lock;
pub mod sql;

use crate::plan::{Plan, SitePlan, Step};
use crate::spec::secret::ResolvedSecrets;
use crate::spec::server::ServerSpec;
use crate::transport::{Stdin, Transport, TransportError};
use commands::{CommandError, StepContext};
use lock::{LockError, LockOwner};
use serde::Serialize;
use std::time::Instant;

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Lock(#[from] LockError),
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
    pub millis: u64,
    /// What the step printed (scrubbed of secrets).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
}

/// Runs one site's steps on its server, holding the site's lock.
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
) -> SiteOutcome {
    let started = Instant::now();
    let mut outcome = SiteOutcome {
        site: site.site.clone(),
        server: site.server.clone(),
        ok: true,
        millis: 0,
        steps: Vec::new(),
        error: None,
    };
    if let Err(error) = lock::acquire(transport, &site.site, owner).await {
        outcome.ok = false;
        outcome.error = Some(secrets.scrub(&error_text(&error)));
        return outcome;
    }
    let ctx = StepContext { server, secrets };
    for step in site.steps() {
        match run_step(transport, step, &ctx, &mut outcome.steps).await {
            Ok(()) => {}
            Err(error) => {
                outcome.ok = false;
                outcome.error = Some(secrets.scrub(&error_text(&error)));
                break;
            }
        }
    }
    if let Err(error) = lock::release(transport, &site.site, owner).await {
        tracing::warn!(site = %site.site, "could not release the lock: {}", secrets.scrub(&error.to_string()));
    }
    outcome.millis = started.elapsed().as_millis() as u64;
    outcome
}

async fn run_step<T: Transport>(
    transport: &T,
    step: &Step,
    ctx: &StepContext<'_>,
    outcomes: &mut Vec<StepOutcome>,
) -> Result<(), ApplyError> {
    let remote = commands::commands(step, ctx).map_err(|source| ApplyError::Prepare {
        what: step_name(step),
        source,
    })?;
    for command in remote {
        let started = Instant::now();
        tracing::info!(step = %command.what, "running");
        let result = transport
            .exec_checked(
                &command.what,
                &command.command,
                Stdin::Bytes(&command.stdin),
            )
            .await;
        let millis = started.elapsed().as_millis() as u64;
        match result {
            Ok(output) => outcomes.push(StepOutcome {
                what: command.what,
                ok: true,
                millis,
                output: ctx.secrets.scrub(output.stdout_lossy().trim()),
                error: None,
            }),
            Err(source) => {
                let text = ctx.secrets.scrub(&source.to_string());
                tracing::error!(step = %command.what, "failed: {text}");
                outcomes.push(StepOutcome {
                    what: command.what.clone(),
                    ok: false,
                    millis,
                    output: String::new(),
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
        if site.steps().next().is_some() {
            map.entry(site.server.clone()).or_default().push(site);
        }
    }
    map
}
