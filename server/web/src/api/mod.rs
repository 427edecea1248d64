//! The REST API under `/api/v1` (sessions, tasks, agents, fleet), a live SSE stream of the outbox
//! and the generated OpenAPI document. Handlers are thin: they parse and validate the request,
//! call an application service or a repository port, and map the answer.

mod admission;
mod agents;
pub mod dto;
mod errors;
mod extract;
mod fleet;
mod inbox;
mod openapi;
mod sessions;
mod sse;
mod tasks;

use std::str::FromStr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use domain::query::DEFAULT_PAGE_SIZE;
use domain::{Cursor, PageRequest};

pub use errors::ApiError;
pub use openapi::ApiDoc;

use oio_application::ports::AgentServers;
use oio_application::ports::Store;
use oio_application::ports::{DispatchQueue, Outbox, SessionRepository, TaskRepository};
use oio_application::TaskServices;
use oio_application::{AdmissionStatus, InboxService, SessionLifecycle};

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    pub lifecycle: Arc<SessionLifecycle>,
    pub sessions: Arc<dyn SessionRepository>,
    pub task_repository: Arc<dyn TaskRepository>,
    pub outbox: Arc<dyn Outbox>,
    pub queue: Arc<dyn DispatchQueue>,
    pub tasks: TaskServices,
    pub fleet: Arc<dyn AgentServers>,
    /// This replica's admission pools.
    pub admission: Arc<dyn AdmissionStatus>,
    /// The human-in-the-loop inbox.
    pub inbox: Arc<InboxService>,
}

impl ApiState {
    pub fn new(
        store: &Store,
        lifecycle: Arc<SessionLifecycle>,
        tasks: TaskServices,
        fleet: Arc<dyn AgentServers>,
        admission: Arc<dyn AdmissionStatus>,
    ) -> Self {
        Self {
            lifecycle,
            sessions: store.sessions.clone(),
            task_repository: store.tasks.clone(),
            outbox: store.outbox.clone(),
            queue: store.queue.clone(),
            tasks,
            // Without `with_inbox`: no policies, no escalation.
            inbox: Arc::new(InboxService::new(
                store.inbox.clone(),
                store.unit_of_work.clone(),
                fleet.clone(),
                Default::default(),
                None,
            )),
            fleet,
            admission,
        }
    }

    /// Serves `inbox` (the one the watcher and the policies use).
    pub fn with_inbox(mut self, inbox: Arc<InboxService>) -> Self {
        self.inbox = inbox;
        self
    }
}

/// Every `/api/v1` route. Unknown paths under `/api/v1` answer 404 in the API's shape.
pub fn routes(state: ApiState) -> Router {
    let api = Router::new()
        .route("/sessions", get(sessions::list).post(sessions::create))
        .route("/sessions/{id}", get(sessions::get))
        .route("/sessions/{id}/events", get(sessions::events))
        .route("/sessions/{id}/diff", get(sessions::diff))
        .route("/sessions/{id}/cancel", post(sessions::cancel))
        .route("/sessions/{id}/retry", post(sessions::retry))
        .route("/tasks", get(tasks::list).post(tasks::create))
        .route("/tasks/{id}", get(tasks::tree))
        .route("/tasks/{id}/start", post(tasks::start))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/agents", get(agents::list).post(agents::register))
        .route("/agents/{name}", get(agents::get).put(agents::update))
        .route("/fleet", get(fleet::report))
        .route("/inbox", get(inbox::list))
        .route("/inbox/{id}", get(inbox::get))
        .route("/inbox/{id}/answer", post(inbox::answer))
        .route("/admission", get(admission::report))
        .route("/events", get(sse::stream))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .with_state(state);
    Router::new().nest("/api/v1", api)
}

/// Unknown `/api/v1` paths answer in the API's shape too.
async fn not_found() -> ApiError {
    ApiError::NotFound("no such API endpoint".into())
}

/// A query parameter with something in it.
fn non_empty(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// An id from the path or query, refused naming `field` when it is not a uuid.
fn parse_id<T: FromStr>(field: &str, raw: &str) -> Result<T, ApiError> {
    raw.trim()
        .parse::<T>()
        .map_err(|_| ApiError::invalid(field, format!("`{raw}` is not a uuid")))
}

/// `limit` and `after` of a list.
fn page_request(limit: &Option<String>, after: &Option<String>) -> Result<PageRequest, ApiError> {
    let limit = match non_empty(limit) {
        None => DEFAULT_PAGE_SIZE,
        Some(raw) => raw
            .parse::<u32>()
            .map_err(|_| ApiError::invalid("limit", format!("`{raw}` is not a page size")))?,
    };
    let after = non_empty(after)
        .map(|raw| {
            raw.parse::<Cursor>()
                .map_err(|e| ApiError::invalid("after", e.message))
        })
        .transpose()?;
    Ok(PageRequest::new(limit, after)?)
}
