//! What the API exchanges, with their OpenAPI schemas. Domain types are carried as they serialise,
//! documented by the schemas `domain` derives behind its `openapi` feature (of their wire
//! records: a `Session` serialises as its `SessionRecord`).

use chrono::{DateTime, Utc};
use domain::{Agent, FailurePolicy, Session, Task};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::errors::ApiError;
use oio_application::ports::StoredSessionEvent;
use oio_application::{CreateSessionRequest, RegisterAgent, StartTaskRequest, UpdateAgent};

// --- bounds -----------------------------------------------------------------------------------
//
// Request bodies refuse unknown fields. Titles, prompts, workspaces, names and numbers are
// bounded by the domain types they become; what follows bounds the rest before it goes further.

/// Longest cancellation reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = domain::session::MAX_REASON_CHARS;
/// Longest `provider/model` reference accepted, in characters.
pub const MAX_MODEL_CHARS: usize = 200;
/// Most entries of an agent's `capabilities` (there are eight kinds).
pub const MAX_CAPABILITIES: usize = 32;
/// Longest capability name accepted, in characters.
pub const MAX_CAPABILITY_CHARS: usize = 32;
/// Longest decomposition template name accepted, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 64;

/// Refuses `value` of `field` when longer than `max` characters.
fn at_most_chars(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let chars = value.chars().count();
    if chars > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters (got {chars})"),
        ));
    }
    Ok(())
}

fn check_capabilities(capabilities: &[String]) -> Result<(), ApiError> {
    if capabilities.len() > MAX_CAPABILITIES {
        return Err(ApiError::invalid(
            "capabilities",
            format!(
                "must list at most {MAX_CAPABILITIES} capabilities (got {})",
                capabilities.len()
            ),
        ));
    }
    for (i, name) in capabilities.iter().enumerate() {
        at_most_chars(&format!("capabilities[{i}]"), name, MAX_CAPABILITY_CHARS)?;
    }
    Ok(())
}

/// A domain entity carried as it serialises, that is as its record: documented by the record's
/// schema under the entity's name, with the API's own description.
macro_rules! record_schema {
    ($dto:ident, $record:ty, $name:literal, $description:literal) => {
        impl utoipa::PartialSchema for $dto {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::Schema;
                use utoipa::openapi::RefOr;
                match <$record as utoipa::PartialSchema>::schema() {
                    // The record's own doc comment speaks of Rust types.
                    RefOr::T(Schema::Object(mut object)) => {
                        object.description = Some($description.to_owned());
                        RefOr::T(Schema::Object(object))
                    }
                    other => other,
                }
            }
        }

        impl ToSchema for $dto {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }

            fn schemas(
                schemas: &mut Vec<(
                    String,
                    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
                )>,
            ) {
                <$record as ToSchema>::schemas(schemas);
            }
        }
    };
}

record_schema!(
    SessionDto,
    domain::SessionRecord,
    "Session",
    "A session as stored. `stop_reason` is set when a guardrail stopped it."
);
record_schema!(
    TaskDto,
    domain::TaskRecord,
    "Task",
    "A task as stored: its place in the tree, routing decision and run record."
);
record_schema!(
    AgentDto,
    domain::AgentRecord,
    "Agent",
    "An agent: name, model, capabilities, concurrency limit and track record."
);

// --- errors -----------------------------------------------------------------------------------

/// Every refusal: `{"error": {"field": <name or null>, "message": "..."}}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// The request field at fault (body field, query or path parameter), when there is one.
    pub field: Option<String>,
    pub message: String,
}

// --- sessions ---------------------------------------------------------------------------------

/// A session as stored: id, title, prompt, workspace, agent, status, attempts, metrics, times and
/// version.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct SessionDto(pub Session);

/// One page of sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionPage {
    #[schema(value_type = Vec<SessionDto>)]
    pub items: Vec<Session>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionListQuery {
    /// Only sessions in this status (`pending`, `queued`, `running`, `completed`, `failed`,
    /// `cancelled`, `timed_out`); `all` or empty for every one.
    pub status: Option<String>,
    /// Only sessions of this agent.
    pub agent: Option<String>,
    /// Only sessions working on this task (uuid).
    pub task: Option<String>,
    /// Page size, 1..=500 (default 50).
    pub limit: Option<String>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// A new session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionBody {
    pub title: String,
    pub prompt: String,
    /// The git repository the session works on.
    pub workspace: String,
    #[serde(default)]
    pub agent: Option<String>,
    /// Higher runs first, -1000..=1000; default 0.
    #[serde(default)]
    pub priority: i32,
    /// First run plus retries, 1..=20; the engine's default when absent.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

impl From<CreateSessionBody> for CreateSessionRequest {
    fn from(b: CreateSessionBody) -> Self {
        CreateSessionRequest {
            title: b.title,
            prompt: b.prompt,
            workspace: b.workspace,
            agent: b.agent,
            priority: b.priority,
            max_attempts: b.max_attempts,
        }
    }
}

/// One line of a session's event log.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionEventDto {
    pub seq: u64,
    pub event_type: String,
    /// Typed by `event_type` (see `EventPayload`); carried as stored.
    #[schema(value_type = EventPayload)]
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

impl From<StoredSessionEvent> for SessionEventDto {
    fn from(e: StoredSessionEvent) -> Self {
        Self {
            seq: e.seq,
            event_type: e.event_type,
            payload: e.payload,
            occurred_at: e.occurred_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionEvents {
    pub session_id: Uuid,
    pub items: Vec<SessionEventDto>,
}

/// What a session changed in its worktree, from its last `session.workspace` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDiff {
    #[serde(default)]
    pub files: Vec<DiffFile>,
    /// Unified diff, bounded in size.
    #[serde(default)]
    pub patch: String,
    #[serde(default)]
    pub patch_truncated: bool,
    #[serde(default)]
    pub branch: Option<String>,
    /// The commit that holds the session's work, if one was made.
    #[serde(default)]
    pub snapshot: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiffFile {
    pub path: String,
    #[serde(default)]
    pub additions: u64,
    #[serde(default)]
    pub deletions: u64,
}

impl From<domain::WorkspaceRecord> for SessionDiff {
    fn from(record: domain::WorkspaceRecord) -> Self {
        Self {
            files: record
                .files
                .into_iter()
                .map(|f| DiffFile {
                    path: f.path,
                    additions: f.additions,
                    deletions: f.deletions,
                })
                .collect(),
            patch: record.patch,
            patch_truncated: record.patch_truncated,
            branch: Some(record.branch).filter(|b| !b.is_empty()),
            snapshot: record.snapshot,
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Recorded with the cancellation; at most 10 000 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

impl CancelBody {
    /// Refuses an oversize `reason`.
    pub fn validate(&self) -> Result<(), ApiError> {
        match &self.reason {
            Some(reason) => at_most_chars("reason", reason, MAX_REASON_CHARS),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcomeDto {
    /// The session was waiting and is cancelled now.
    Cancelled,
    /// A replica runs it; it aborts and records the cancellation.
    Requested,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelResponse {
    pub outcome: CancelOutcomeDto,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// Queue priority of the new attempt, -1000..=1000; default 0.
    #[serde(default)]
    pub priority: Option<i32>,
}

// --- tasks ------------------------------------------------------------------------------------

/// A task as stored: id, parent, title, description, status, complexity, capabilities,
/// subtasks, dependencies, routing decision, run record, times and version.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct TaskDto(pub Task);

/// One page of root tasks, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    #[schema(value_type = Vec<TaskDto>)]
    pub items: Vec<Task>,
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskListQuery {
    /// Only root tasks in this status.
    pub status: Option<String>,
    /// Page size, 1..=500 (default 50).
    pub limit: Option<String>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// How to run a task tree.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartTaskBody {
    /// The git repository (its root) the tree's sessions work on.
    pub workspace: String,
    /// Leaves running at once, 1..=64; the configured default when absent.
    #[serde(default)]
    pub max_parallel: Option<u32>,
    /// `{"kind": "fail_fast"}`, `{"kind": "continue"}` or `{"kind": "retry", "retries": n}`.
    #[serde(default)]
    pub policy: Option<FailurePolicy>,
    /// The tree's token cap over all its sessions; the configured `guardrails.task_tree` when
    /// absent. The tree's estimate must fit before it starts.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// The tree's cost cap in US dollars (as `max_tokens`).
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
}

impl From<StartTaskBody> for StartTaskRequest {
    fn from(b: StartTaskBody) -> Self {
        StartTaskRequest {
            workspace: b.workspace,
            max_parallel: b.max_parallel,
            policy: b.policy,
            max_tokens: b.max_tokens,
            max_cost_usd: b.max_cost_usd,
        }
    }
}

/// A requirement to decompose into a task tree, and optionally run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskBody {
    pub requirement: String,
    /// Use this template (`microservice`, `crud`, `security_audit`, …) instead of choosing.
    /// At most 64 characters.
    #[serde(default)]
    pub template: Option<String>,
    /// Levels of subtasks below the root (default 3).
    #[serde(default)]
    pub max_depth: Option<u32>,
    /// Start the tree at once.
    #[serde(default)]
    pub start: Option<StartTaskBody>,
}

impl CreateTaskBody {
    /// Bounds the template name (the requirement and depth are the decomposition's to check).
    pub fn validate(&self) -> Result<(), ApiError> {
        match &self.template {
            Some(template) => at_most_chars("template", template, MAX_TEMPLATE_CHARS),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTasks {
    pub root: Uuid,
    /// Every task, the root first.
    #[schema(value_type = Vec<TaskDto>)]
    pub tasks: Vec<Task>,
    /// The tree as text.
    pub rendered: String,
}

/// A task tree: the root and every live descendant, parents before children.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskTree {
    pub root: Uuid,
    #[schema(value_type = Vec<TaskDto>)]
    pub tasks: Vec<Task>,
}

// --- agents -----------------------------------------------------------------------------------

/// An agent: name, model, capabilities, concurrency limit, track record and version.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct AgentDto(pub Agent);

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    #[schema(value_type = Vec<AgentDto>)]
    pub items: Vec<Agent>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgentBody {
    /// OpenCode agent name (`build`, `plan`, or a custom one).
    pub name: String,
    /// Of `backend`, `frontend`, `database`, `security`, `testing`, `docs`, `devops`, `refactor`.
    pub capabilities: Vec<String>,
    /// `provider/model`.
    pub model: String,
    pub max_concurrency: u32,
}

impl RegisterAgentBody {
    /// Bounds what the domain does not: the model's length and the capability list's.
    pub fn validate(&self) -> Result<(), ApiError> {
        at_most_chars("model", &self.model, MAX_MODEL_CHARS)?;
        check_capabilities(&self.capabilities)
    }
}

impl From<RegisterAgentBody> for RegisterAgent {
    fn from(b: RegisterAgentBody) -> Self {
        RegisterAgent {
            name: b.name,
            capabilities: b.capabilities,
            model: b.model,
            max_concurrency: b.max_concurrency,
        }
    }
}

/// Changes to an agent; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgentBody {
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// The version read; a 409 if the agent changed since.
    #[serde(default)]
    pub expected_version: Option<u64>,
}

impl UpdateAgentBody {
    /// Bounds what the domain does not: the model's length and the capability list's.
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(model) = &self.model {
            at_most_chars("model", model, MAX_MODEL_CHARS)?;
        }
        match &self.capabilities {
            Some(capabilities) => check_capabilities(capabilities),
            None => Ok(()),
        }
    }
}

impl From<UpdateAgentBody> for UpdateAgent {
    fn from(b: UpdateAgentBody) -> Self {
        UpdateAgent {
            capabilities: b.capabilities,
            model: b.model,
            max_concurrency: b.max_concurrency,
            expected_version: b.expected_version,
        }
    }
}

// --- fleet ------------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct FleetReport {
    pub servers: Vec<FleetServer>,
    /// Dispatch queue depth; null if storage did not answer.
    pub queue: Option<QueueDepthDto>,
}

/// One OpenCode server. Its address is shown without credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct FleetServer {
    pub url: String,
    pub healthy: bool,
    /// `closed`, `open` or `half_open`.
    pub breaker: String,
    /// Sessions running on it from this replica.
    pub in_flight: u32,
    pub capacity: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueDepthDto {
    pub waiting: u64,
    pub leased: u64,
    /// Leases of a dead replica not yet recovered.
    pub expired: u64,
}

// --- events -----------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventStreamQuery {
    /// Resume after this outbox id (`0` replays everything); default: only new events.
    /// The `Last-Event-ID` header wins over it.
    pub after: Option<String>,
    /// Only events of this session (uuid).
    pub session: Option<String>,
    /// Only events about `session`, `task` or `agent`.
    pub aggregate: Option<String>,
}

/// The `data` of one SSE message (`id:` is the outbox id, `event:` the event type).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StreamEvent {
    pub id: i64,
    /// `session`, `task` or `agent`.
    pub aggregate: String,
    pub aggregate_id: Uuid,
    /// `<aggregate>.<kind>`, e.g. `session.status_changed`.
    pub event_type: String,
    /// Typed by `event_type` (see `EventPayload`); carried as stored.
    #[schema(value_type = EventPayload)]
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

/// The schema of an event's `payload`, which `event_type` selects ([`domain::SessionLogEvent`]):
/// one of the payload schemas, named in the description. Documentation only: payloads are
/// relayed as stored.
pub struct EventPayload;

/// Registers each payload type's schema and lists `(event types, schema name)` for the
/// description, from one list.
macro_rules! event_payloads {
    ($(($types:literal, $payload:ty)),* $(,)?) => {
        const EVENT_PAYLOADS: &[(&str, fn() -> std::borrow::Cow<'static, str>)] =
            &[$(($types, <$payload as ToSchema>::name)),*];

        fn event_payload_schemas(
            schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>,
        ) {
            $(
                schemas.push((
                    <$payload as ToSchema>::name().into_owned(),
                    <$payload as utoipa::PartialSchema>::schema(),
                ));
                <$payload as ToSchema>::schemas(schemas);
            )*
        }
    };
}

event_payloads!(
    (
        "session.created, session.status_changed, session.metrics_recorded",
        domain::SessionEvent
    ),
    ("session.dispatched", domain::event_log::Dispatched),
    ("session.reattached", domain::event_log::Reattached),
    ("session.awaiting_slot", domain::event_log::AwaitingSlot),
    ("session.slot_granted", domain::event_log::SlotGranted),
    (
        "session.agent_stream_resynced",
        domain::event_log::AgentStreamResynced
    ),
    ("session.agent_retry", domain::event_log::AgentRetry),
    ("session.agent_error", domain::event_log::AgentErrorReported),
    ("session.agent_message", domain::event_log::AgentMessage),
    ("session.tool", domain::event_log::ToolFinished),
    (
        "session.permission_asked",
        domain::event_log::PermissionAsked
    ),
    ("session.question_asked", domain::event_log::QuestionAsked),
    ("session.workspace", domain::WorkspaceRecord),
    ("session.result", domain::event_log::SessionResult),
    (
        "session.guardrail_stopped",
        domain::event_log::GuardrailStopped
    ),
    (
        "inbox.asked, inbox.answered, inbox.escalated, inbox.expired",
        domain::event_log::InboxLogged
    ),
);

impl utoipa::PartialSchema for EventPayload {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::AnyOfBuilder;
        use utoipa::openapi::Ref;

        let mut description = String::from("Depends on `event_type`:");
        let mut any_of = AnyOfBuilder::new();
        for (types, name) in EVENT_PAYLOADS {
            let name = name();
            description.push_str(&format!(" {types}: `{name}`;"));
            any_of = any_of.item(Ref::from_schema_name(name));
        }
        description.push_str(" other kinds: an object of their own.");
        any_of.description(Some(description)).into()
    }
}

impl ToSchema for EventPayload {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        event_payload_schemas(schemas);
    }
}
