//! Observability over HTTP: `GET /metrics` in the Prometheus text format, and request ids.
//!
//! `/metrics` is unauthenticated by design: it is meant to be scraped by Prometheus on a private
//! network, and shows counts and latencies only — no session ids, titles, prompts or secrets.
//! Keep the listener off the public internet (or filter `/metrics` at the proxy) if that matters.
//!
//! At every scrape the storage-backed gauges are read first — sessions per status (one
//! `GROUP BY`), the dispatch queue's depth, each OpenCode server's breaker — then everything is
//! rendered. Both steps happen under one process-wide lock, so two applications in one process
//! (the tests) never interleave their gauges. Storage gauges are shared by every replica: sum
//! other families across instances, but take `max` of these.
//!
//! Request ids: every request gets an `x-request-id` (kept when the client sent one, else a new
//! UUID), echoed on the response and recorded on the request's tracing span, so a log line
//! and a client's report can be matched.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use oio_application::metrics;
use oio_application::ports::AgentServers;
use oio_application::ports::{DispatchQueue, SessionRepository};

/// The Prometheus text exposition format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a scrape waits for storage before rendering the gauges it has.
const STORAGE_TIMEOUT: Duration = Duration::from_secs(2);

/// Serialises "set the storage gauges, then render" across every application in the process.
static SCRAPE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone)]
struct Sources {
    sessions: Arc<dyn SessionRepository>,
    queue: Arc<dyn DispatchQueue>,
    fleet: Arc<dyn AgentServers>,
}

/// `GET /metrics`. Installs the process's recorder if nothing has yet.
pub fn routes<S>(
    sessions: Arc<dyn SessionRepository>,
    queue: Arc<dyn DispatchQueue>,
    fleet: Arc<dyn AgentServers>,
) -> Router<S> {
    metrics::handle();
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Sources {
            sessions,
            queue,
            fleet,
        })
}

async fn scrape(State(sources): State<Sources>) -> impl IntoResponse {
    let _serialised = SCRAPE.lock().await;
    match tokio::time::timeout(STORAGE_TIMEOUT, sources.sessions.count_by_status()).await {
        Ok(Ok(counts)) => metrics::set_session_counts(&counts),
        Ok(Err(error)) => tracing::warn!(%error, "metrics: cannot count sessions"),
        Err(_) => tracing::warn!("metrics: counting sessions timed out"),
    }
    match tokio::time::timeout(STORAGE_TIMEOUT, sources.queue.depth()).await {
        Ok(Ok(depth)) => metrics::set_queue_depth(depth),
        Ok(Err(error)) => tracing::warn!(%error, "metrics: cannot read the queue depth"),
        Err(_) => tracing::warn!("metrics: reading the queue depth timed out"),
    }
    // Read, not remembered: an open breaker whose time is up reads half-open without any call.
    for server in sources.fleet.report() {
        metrics::set_breaker_state(&server.server, server.breaker);
    }
    let body = metrics::handle().render();
    ([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], body)
}

/// Wraps `router` so every request carries an `x-request-id` (set unless sent, echoed on the
/// response) and is traced in a `request` span that records it.
pub fn request_id_layers(router: Router) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request| {
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            uri = %request.uri(),
            version = ?request.version(),
            request_id,
        )
    });
    // The last layer added runs first: set the id, then echo it, then trace with it.
    router
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn app() -> Router {
        request_id_layers(Router::new().route("/ping", get(|| async { "pong" })))
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_a_fresh_uuid_echoed() {
        let response = app()
            .oneshot(Request::get("/ping").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }

    #[tokio::test]
    async fn a_request_id_sent_by_the_client_is_kept() {
        let response = app()
            .oneshot(
                Request::get("/ping")
                    .header("x-request-id", "abc-123")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], "abc-123");
    }
}
