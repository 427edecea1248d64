//! `/api/v1/fleet`: the OpenCode servers' standing and the dispatch queue's depth.

use axum::extract::State;
use axum::Json;

use super::dto::{FleetReport, FleetServer, QueueDepthDto};
use super::ApiState;
use crate::fleet::fleet_view;

#[utoipa::path(
    get, path = "/api/v1/fleet", tag = "fleet",
    responses(
        (status = 200, description = "Servers (addresses without credentials) and queue depth", body = FleetReport),
    )
)]
pub async fn report(State(state): State<ApiState>) -> Json<FleetReport> {
    let view = fleet_view(state.fleet.as_ref(), Some(state.queue.as_ref())).await;
    let servers = view
        .servers
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
    let queue = match view.queue {
        Some(Ok(depth)) => Some(QueueDepthDto {
            waiting: depth.waiting,
            leased: depth.leased,
            expired: depth.expired,
        }),
        Some(Err(error)) => {
            tracing::warn!(%error, "fleet report: queue depth unavailable");
            None
        }
        None => None,
    };
    Json(FleetReport { servers, queue })
}
