//! `/api/v1/fleet`: the OpenCode servers' standing and the dispatch queue's depth.

use std::time::Duration;

use axum::extract::State;
use axum::Json;

use super::dto::{FleetReport, FleetServer, QueueDepthDto};
use super::ApiState;

/// How long the queue depth may take before it is left out.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);

#[utoipa::path(
    get, path = "/api/v1/fleet", tag = "fleet",
    responses(
        (status = 200, description = "Servers (addresses without credentials) and queue depth", body = FleetReport),
    )
)]
pub async fn report(State(state): State<ApiState>) -> Json<FleetReport> {
    let servers = state
        .fleet
        .report()
        .into_iter()
        .map(|r| FleetServer {
            // The client's name is its base URL with any credentials redacted.
            url: r.server,
            healthy: r.healthy,
            breaker: r.breaker.as_str().to_owned(),
            in_flight: r.in_flight,
            capacity: r.capacity,
        })
        .collect();
    let queue = match tokio::time::timeout(QUEUE_TIMEOUT, state.queue.depth()).await {
        Ok(Ok(depth)) => Some(QueueDepthDto {
            waiting: depth.waiting,
            leased: depth.leased,
            expired: depth.expired,
        }),
        Ok(Err(error)) => {
            tracing::warn!(%error, "fleet report: queue depth unavailable");
            None
        }
        Err(_) => {
            tracing::warn!("fleet report: queue depth timed out");
            None
        }
    };
    Json(FleetReport { servers, queue })
}
