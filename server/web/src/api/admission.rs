//! `/api/v1/admission`: this replica's admission pools — per provider/model limits that shrink on
//! rate limits, and the sessions waiting for a slot with their positions.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use oio_application::admission::PoolSnapshot;

#[derive(Debug, Serialize, ToSchema)]
pub struct AdmissionReport {
    /// By key.
    pub pools: Vec<AdmissionPool>,
}

/// One pool: turns on one provider/model (`default`: the servers' default model).
#[derive(Debug, Serialize, ToSchema)]
pub struct AdmissionPool {
    /// `provider/model`, or `default`.
    pub key: String,
    /// Turns admitted at once now; between `min` and `max`.
    pub limit: u32,
    pub min: u32,
    pub max: u32,
    /// Slots held (may exceed `limit` right after a shrink: running turns are not revoked).
    pub in_use: u32,
    /// Sessions waiting for a slot, next first.
    pub waiting: Vec<AdmissionWaiter>,
    /// When a rate-limit signal last halved the limit.
    pub last_shrink: Option<DateTime<Utc>>,
    /// Rate-limit signals received (one storm halves the limit once).
    pub signals: u64,
    /// Times the limit was halved.
    pub shrinks: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdmissionWaiter {
    pub session_id: String,
    /// 1 is next in line.
    pub position: usize,
    pub since: DateTime<Utc>,
}

impl From<PoolSnapshot> for AdmissionPool {
    fn from(pool: PoolSnapshot) -> Self {
        Self {
            key: pool.key,
            limit: pool.limit,
            min: pool.min,
            max: pool.max,
            in_use: pool.in_use,
            waiting: pool
                .waiting
                .into_iter()
                .map(|w| AdmissionWaiter {
                    session_id: w.label,
                    position: w.position,
                    since: w.since,
                })
                .collect(),
            last_shrink: pool.last_shrink,
            signals: pool.signals,
            shrinks: pool.shrinks,
        }
    }
}

#[utoipa::path(
    get, path = "/api/v1/admission", tag = "fleet",
    responses(
        (status = 200, description = "This replica's admission pools and their waiting sessions", body = AdmissionReport),
    )
)]
pub async fn report(State(state): State<ApiState>) -> Json<AdmissionReport> {
    Json(AdmissionReport {
        pools: state
            .admission
            .pools()
            .into_iter()
            .map(AdmissionPool::from)
            .collect(),
    })
}
