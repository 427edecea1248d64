//! `/healthz` (the process answers) and `/readyz` (it can do its work: storage reachable). The
//! OpenCode fleet's standing is reported beside, but does not decide readiness: with every agent
//! server down the orchestrator still accepts and queues work (graceful degradation).

use std::sync::Arc;
use std::time::Duration;

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use serde_json::json;

use oio_application::ports::AgentServers;
use oio_application::ports::{DispatchQueue, SessionRepository};

use crate::fleet::{fleet_view, FleetView};

/// How long the readiness probe waits for storage before calling it unavailable.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Probes {
    sessions: Arc<dyn SessionRepository>,
    fleet: Arc<dyn AgentServers>,
    queue: Option<Arc<dyn DispatchQueue>>,
}

/// The probes. With a `queue`, `/readyz` also shows the dispatch queue's depth.
pub fn routes<S>(
    sessions: Arc<dyn SessionRepository>,
    fleet: Arc<dyn AgentServers>,
    queue: Option<Arc<dyn DispatchQueue>>,
) -> Router<S> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Probes {
            sessions,
            fleet,
            queue,
        })
}

/// The fleet as the probe shows it: each server's standing, and the queue's waiting, leased and
/// lapsed rows (lapsed: a replica died and nobody recovered them yet) when it was read.
fn fleet_json(view: &FleetView) -> (serde_json::Value, serde_json::Value) {
    let servers = view
        .servers
        .iter()
        .map(|r| {
            json!({
                "server": r.server,
                "healthy": r.healthy,
                "breaker": r.breaker.as_str(),
                "in_flight": r.in_flight,
                "capacity": r.capacity,
            })
        })
        .collect();
    let queue = match &view.queue {
        None => serde_json::Value::Null,
        Some(Ok(depth)) => json!({
            "waiting": depth.waiting,
            "leased": depth.leased,
            "expired": depth.expired,
        }),
        Some(Err(error)) => json!({ "error": error }),
    };
    (servers, queue)
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
    // The queue lives in the database: it is not asked while the database is down.
    let queue = probes.queue.as_deref().filter(|_| database.is_ok());
    let (opencode, queue) = fleet_json(&fleet_view(probes.fleet.as_ref(), queue).await);
    match database {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "checks": { "database": "ok" },
                "opencode": opencode,
                "queue": queue,
            })),
        ),
        Err(message) => {
            tracing::warn!(%message, "readiness check failed: database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "checks": { "database": message },
                    "opencode": opencode,
                })),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use domain::{Page, PageRequest, Session, SessionFilter, SessionId};
    use oio_application::ports::{RepositoryError, StoredSessionEvent};
    use tower::ServiceExt;

    /// A store that is down, or one that never answers.
    enum BrokenStore {
        Refusing,
        Hanging,
    }

    #[async_trait]
    impl SessionRepository for BrokenStore {
        async fn get(&self, _: SessionId) -> Result<Option<Session>, RepositoryError> {
            unreachable!("probes only ping")
        }
        async fn get_including_deleted(
            &self,
            _: SessionId,
        ) -> Result<Option<Session>, RepositoryError> {
            unreachable!("probes only ping")
        }
        async fn list(
            &self,
            _: &SessionFilter,
            _: &PageRequest,
        ) -> Result<Page<Session>, RepositoryError> {
            unreachable!("probes only ping")
        }
        async fn events(&self, _: SessionId) -> Result<Vec<StoredSessionEvent>, RepositoryError> {
            unreachable!("probes only ping")
        }
        async fn ping(&self) -> Result<(), RepositoryError> {
            match self {
                BrokenStore::Refusing => {
                    Err(RepositoryError::Unavailable("connection refused".into()))
                }
                BrokenStore::Hanging => std::future::pending().await,
            }
        }
    }

    /// A fleet without servers.
    struct NoServers;

    impl AgentServers for NoServers {
        fn available(&self) -> Vec<oio_application::ports::ServerCapacity> {
            Vec::new()
        }
        fn get(&self, _: &str) -> Option<Arc<dyn oio_application::ports::AgentServer>> {
            None
        }
        fn report(&self) -> Vec<oio_application::ports::ServerReport> {
            Vec::new()
        }
    }

    async fn probe(store: BrokenStore, path: &str) -> (StatusCode, serde_json::Value) {
        let router: Router = routes(Arc::new(store), Arc::new(NoServers), None);
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn readyz_is_503_naming_the_database_when_storage_refuses() {
        let (status, body) = probe(BrokenStore::Refusing, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "unavailable");
        assert!(body["checks"]["database"]
            .as_str()
            .unwrap()
            .contains("connection refused"));
    }

    #[tokio::test(start_paused = true)]
    async fn readyz_gives_up_on_a_hanging_store_after_its_timeout() {
        let (status, body) = probe(BrokenStore::Hanging, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body["checks"]["database"]
            .as_str()
            .unwrap()
            .contains("no answer"));
    }

    #[tokio::test]
    async fn healthz_stays_ok_while_storage_is_down() {
        let (status, body) = probe(BrokenStore::Refusing, "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
    }
}
