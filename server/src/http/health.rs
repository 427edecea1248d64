//! `/healthz` (the process answers) and `/readyz` (it can do its work: storage reachable).

use std::sync::Arc;
use std::time::Duration;

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use serde_json::json;

use crate::ports::SessionRepository;

/// How long the readiness probe waits for storage before calling it unavailable.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Probes {
    sessions: Arc<dyn SessionRepository>,
}

pub fn routes<S>(sessions: Arc<dyn SessionRepository>) -> Router<S> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Probes { sessions })
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(probes): State<Probes>) -> impl IntoResponse {
    let database = match tokio::time::timeout(READINESS_TIMEOUT, probes.sessions.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {READINESS_TIMEOUT:?}")),
    };
    match database {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "checks": { "database": "ok" } })),
        ),
        Err(message) => {
            tracing::warn!(%message, "readiness check failed: database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "checks": { "database": message } })),
            )
        }
    }
}
