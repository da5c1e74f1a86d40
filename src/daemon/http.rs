//! The daemon's HTTP side (axum): `/healthz`, `/readyz`, `/metrics`, the JSON API with its POST verbs behind a bearer token, the git webhook, and the status pages.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::git::verify_webhook;
use super::leases::{FETCH_CHANNEL, Leases, TRIGGER_CHANNEL};
use super::page;
use super::queue::{Queue, Trigger};
use super::reconcile::Daemon;
use super::scheduler::Scheduler;
use super::watchers::GitWatch;
use crate::conditions::SiteStatus;
use crate::migrate::report::MigrationReport;
use crate::store::leases::LeaseHolder;

/// How stale the loop's heartbeat may be for `/healthz` to answer 200.
const ALIVE_WITHIN_SECS: i64 = 30;

/// What every handler reads.
#[derive(Clone)]
pub struct Shared {
    pub daemon: Arc<Daemon>,
    pub scheduler: Arc<Scheduler>,
    pub git: Option<Arc<GitWatch>>,
    /// The bearer token of the POST verbs; `None` turns them off.
    pub api_token: Option<Arc<String>>,
    /// The webhook secret; `None` refuses every webhook.
    pub webhook_secret: Option<Arc<String>>,
    /// When the loop last showed it is alive (unix seconds).
    pub heartbeat: Arc<AtomicI64>,
    /// The leases of a daemon sharing the sites with others (a PostgreSQL store).
    pub leases: Option<Arc<Leases>>,
}

/// The routes.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(index_page))
        .route("/sites/{name}", get(site_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/sites", get(api_sites))
        .route("/api/v1/sites/{name}", get(api_site))
        .route("/api/v1/sites/{name}/suspend", post(api_suspend))
        .route("/api/v1/sites/{name}/resume", post(api_resume))
        .route("/api/v1/sites/{name}/reconcile", post(api_reconcile))
        .route("/hooks/git", post(git_hook))
        .with_state(shared)
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, shared: Shared, shutdown: CancellationToken) {
    let app = router(shared);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(error) = served {
        tracing::error!("the HTTP server stopped: {error}");
    }
}

/// The address to listen on, with a hint when it is not one.
pub fn parse_listen(listen: &str) -> Result<SocketAddr, String> {
    listen
        .parse()
        .map_err(|_| format!("`--listen {listen}` is not an address and port, e.g. 127.0.0.1:9420"))
}

fn now_unix() -> i64 {
    crate::store::now()
}

async fn healthz(State(shared): State<Shared>) -> Response {
    let age = now_unix() - shared.heartbeat.load(Ordering::Relaxed);
    if age <= ALIVE_WITHIN_SECS {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let body = format!("the reconcile loop has not shown life for {age} s\n");
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn readyz(State(shared): State<Shared>) -> Response {
    if let Err(error) = shared.daemon.store.heartbeat().await {
        let body = format!(
            "the state store takes no writes: {}\n",
            crate::apply::error_text(&error)
        );
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    let snapshot = shared.daemon.specs.current();
    let mut body = format!(
        "ready: {} sites on {} servers{}\n",
        snapshot.loaded.sites.len(),
        snapshot.loaded.servers.len(),
        match snapshot.revision.as_str() {
            "" => String::new(),
            revision => format!(" at {}", &revision[..revision.len().min(12)]),
        }
    );
    if shared.daemon.specs.refused().is_some() {
        body.push_str("the specs on disk are invalid: the last valid ones stay in force\n");
    }
    (StatusCode::OK, body).into_response()
}

async fn metrics(State(shared): State<Shared>) -> Response {
    let (depth, in_flight) = {
        let queue = shared.scheduler.queue();
        (queue.depth(tokio::time::Instant::now()), queue.in_flight())
    };
    let daemon = &shared.daemon;
    daemon.metrics.queue(depth, in_flight);
    daemon
        .metrics
        .ssh_errors(&daemon.connections.error_counts());
    match &shared.leases {
        Some(leases) => daemon.metrics.store(
            leases.health.unreachable().is_none(),
            leases.holding().len(),
        ),
        None => daemon.metrics.store(true, 0),
    }
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        daemon.metrics.render(),
    )
        .into_response()
}

/// A site as the API and the pages show it: its stored status and the queue's view.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteView {
    #[serde(flatten)]
    pub status: SiteStatus,
    /// The condition that sums the site up.
    pub summary: String,
    pub running: bool,
    /// Seconds until the next run, when one is due.
    pub next_run_in_seconds: Option<u64>,
    /// The daemon whose lease the site is under (several daemons sharing the sites).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<LeaseHolder>,
}

/// Every site the specs name, and those the store knows of that they do not.
pub async fn site_views(shared: &Shared) -> Vec<SiteView> {
    let mut stored: BTreeMap<String, SiteStatus> = shared
        .daemon
        .store
        .site_statuses()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|status| (status.site.clone(), status))
        .collect();
    let mut holders = shared
        .daemon
        .store
        .lease_holders()
        .await
        .unwrap_or_default();
    let snapshot = shared.daemon.specs.current();
    let queue = shared.scheduler.queue();
    let now = tokio::time::Instant::now();
    let mut views: Vec<SiteView> = Vec::with_capacity(stored.len());
    for (site, server) in snapshot.placements() {
        let status = stored.remove(site).unwrap_or_else(|| SiteStatus {
            site: site.to_owned(),
            server: server.to_owned(),
            ..SiteStatus::default()
        });
        let holder = holders.remove(site);
        views.push(view(&queue, now, status, holder));
    }
    for status in stored.into_values() {
        let holder = holders.remove(&status.site);
        views.push(view(&queue, now, status, holder));
    }
    drop(queue);
    views.sort_by(|a, b| a.status.site.cmp(&b.status.site));
    views
}

fn view(
    queue: &Queue,
    now: tokio::time::Instant,
    status: SiteStatus,
    held_by: Option<LeaseHolder>,
) -> SiteView {
    SiteView {
        held_by,
        summary: status.summary().to_owned(),
        running: queue.is_running(&status.site),
        next_run_in_seconds: queue
            .due(&status.site)
            .map(|at| at.saturating_duration_since(now).as_secs()),
        status,
    }
}

/// The daemon's own state, for the API and the pages.
pub fn daemon_view(shared: &Shared) -> serde_json::Value {
    let snapshot = shared.daemon.specs.current();
    json!({
        "specsRevision": snapshot.revision,
        "specsRefused": shared.daemon.specs.refused(),
        "git": shared.git.as_ref().map(|git| git.state()),
        "sites": snapshot.loaded.sites.len(),
        "servers": snapshot.loaded.servers.len(),
        "shared": shared.leases.as_ref().map(|leases| json!({
            "daemon": leases.me.id,
            "leaseSeconds": leases.length().as_secs_f64(),
            "holding": leases.holding().len(),
        })),
        "store": store_view(shared),
    })
}

/// Whether the state store answers (as the lease rounds last found it).
fn store_view(shared: &Shared) -> serde_json::Value {
    match shared.leases.as_ref().and_then(|l| l.health.unreachable()) {
        None => json!({ "reachable": true }),
        Some((since, error)) => json!({
            "reachable": false,
            "condition": "Unreachable",
            "sinceUnix": since,
            "message": format!("the state store does not answer: {error}; no site is acted on until it does"),
        }),
    }
}

/// Tells the other daemons sharing the store that `site` is wanted now (its holder runs it).
async fn tell_holder(shared: &Shared, site: &str) {
    if shared.leases.is_some()
        && let Err(error) = shared.daemon.store.notify(TRIGGER_CHANNEL, site).await
    {
        tracing::warn!(
            site,
            "could not tell the other daemons: {}",
            crate::apply::error_text(&error)
        );
    }
}

async fn api_sites(State(shared): State<Shared>) -> Response {
    let sites = site_views(&shared).await;
    axum::Json(json!({ "daemon": daemon_view(&shared), "sites": sites })).into_response()
}

/// One site in full: its view, its last applies and its last migration's report.
pub async fn site_detail(shared: &Shared, name: &str) -> Option<serde_json::Value> {
    let view = site_views(shared)
        .await
        .into_iter()
        .find(|v| v.status.site == name)?;
    let history = shared
        .daemon
        .store
        .site_history(name, 10)
        .await
        .unwrap_or_default();
    let migration: Option<MigrationReport> = history
        .iter()
        .find_map(|run| run.migration_json.as_deref())
        .and_then(|json| serde_json::from_str(json).ok());
    let applies: Vec<serde_json::Value> = history
        .iter()
        .map(|run| {
            json!({
                "runId": run.run_id,
                "kind": run.kind,
                "startedUnix": run.started_unix,
                "server": run.server,
                "ok": run.ok,
                "millis": run.millis,
                "error": run.error,
                "steps": serde_json::from_str::<serde_json::Value>(&run.steps_json).unwrap_or_default(),
            })
        })
        .collect();
    Some(json!({ "site": view, "applies": applies, "migration": migration }))
}

async fn api_site(State(shared): State<Shared>, Path(name): Path<String>) -> Response {
    match site_detail(&shared, &name).await {
        Some(detail) => axum::Json(detail).into_response(),
        None => not_found(&name),
    }
}

fn not_found(name: &str) -> Response {
    let body = json!({ "error": format!("no site `{name}` is known") });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

/// The refusal of a POST without the bearer token (or when no token is set).
fn refusal(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &shared.api_token else {
        let body = json!({ "error": "the API's POST verbs are off: start the daemon with --api-token (or SITEWARD_API_TOKEN)" });
        return Some((StatusCode::FORBIDDEN, axum::Json(body)).into_response());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let matches = given.is_some_and(|given| {
        use subtle::ConstantTimeEq;
        bool::from(given.as_bytes().ct_eq(token.as_bytes()))
    });
    if matches {
        return None;
    }
    let body = json!({ "error": "a valid `Authorization: Bearer TOKEN` header is required" });
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(body),
        )
            .into_response(),
    )
}

#[derive(Debug, Default, Deserialize)]
struct SuspendBody {
    #[serde(default)]
    reason: String,
}

async fn api_suspend(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers) {
        return refused;
    }
    let Some(server) = server_of(&shared, &name) else {
        return not_found(&name);
    };
    let parsed: SuspendBody = serde_json::from_slice(&body).unwrap_or_default();
    let reason = match parsed.reason.trim() {
        "" => "suspended through the API".to_owned(),
        reason => reason.to_owned(),
    };
    match shared
        .daemon
        .store
        .set_suspended(&name, &server, Some(&reason))
        .await
    {
        Ok(()) => {
            axum::Json(json!({ "site": name, "suspended": true, "reason": reason })).into_response()
        }
        Err(error) => store_error(&error),
    }
}

async fn api_resume(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers) {
        return refused;
    }
    let Some(server) = server_of(&shared, &name) else {
        return not_found(&name);
    };
    if let Err(error) = shared
        .daemon
        .store
        .set_suspended(&name, &server, None)
        .await
    {
        return store_error(&error);
    }
    shared.scheduler.trigger(&name, Trigger::Requested);
    tell_holder(&shared, &name).await;
    axum::Json(json!({ "site": name, "suspended": false })).into_response()
}

async fn api_reconcile(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers) {
        return refused;
    }
    if server_of(&shared, &name).is_none() {
        return not_found(&name);
    }
    let suspended =
        matches!(shared.daemon.store.site_status(&name).await, Ok(Some(s)) if s.suspended);
    if suspended {
        let body = json!({ "error": format!("site `{name}` is suspended: resume it first") });
        return (StatusCode::CONFLICT, axum::Json(body)).into_response();
    }
    shared.scheduler.trigger(&name, Trigger::Requested);
    tell_holder(&shared, &name).await;
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "site": name, "queued": true })),
    )
        .into_response()
}

/// The server the specs place `site` on.
fn server_of(shared: &Shared, site: &str) -> Option<String> {
    shared
        .daemon
        .specs
        .current()
        .site(site)
        .map(|s| s.spec.server.to_string())
}

fn store_error(error: &crate::store::StoreError) -> Response {
    let body = json!({ "error": crate::apply::error_text(error) });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

async fn git_hook(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &shared.webhook_secret else {
        let body = json!({ "error": "webhooks are off: start the daemon with --webhook-secret (or SITEWARD_WEBHOOK_SECRET)" });
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    };
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(why) = verify_webhook(
        text("x-hub-signature-256"),
        text("x-gitlab-token"),
        &body,
        secret,
    ) {
        tracing::warn!("a git webhook was refused: {why}");
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": why })),
        )
            .into_response();
    }
    let Some(git) = &shared.git else {
        let body = json!({ "error": "the specs are not a git checkout with an upstream: nothing to fetch" });
        return (StatusCode::CONFLICT, axum::Json(body)).into_response();
    };
    git.fetch_now();
    if shared.leases.is_some()
        && let Err(error) = shared.daemon.store.notify(FETCH_CHANNEL, "").await
    {
        tracing::warn!(
            "could not tell the other daemons to fetch: {}",
            crate::apply::error_text(&error)
        );
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "fetching": true })),
    )
        .into_response()
}

async fn index_page(State(shared): State<Shared>) -> Html<String> {
    let sites = site_views(&shared).await;
    Html(page::index(&sites, &daemon_view(&shared), now_unix()).into_string())
}

async fn site_page(State(shared): State<Shared>, Path(name): Path<String>) -> Response {
    match site_detail(&shared, &name).await {
        Some(detail) => Html(page::site(&detail, now_unix()).into_string()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Html(page::missing(&name).into_string()),
        )
            .into_response(),
    }
}
