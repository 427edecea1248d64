//! Driving ports: what the server functions need from the application layer.
//!
//! The server binary implements these traits with its application services and places an
//! [`AppServices`] in the Leptos context; server-function bodies only call through them, so the
//! app holds no SQL and knows no adapter.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{
    Agent, InboxAnswer, InboxItem, InboxItemId, Page, PageRequest, Session, SessionFilter,
    SessionId, Task, TaskId,
};

use crate::dto::{
    AgentForm, AgentRow, FleetStatus, GuardrailsView, InboxView, NewTaskForm, SessionDetail,
    SessionStats, StatusBoard, TreeBudgetView,
};

/// Why a query could not be answered. Carries no adapter types across the boundary.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// Why a command was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A field the caller gave is wrong; shown next to that field.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0} does not exist")]
    NotFound(String),
    /// The command does not apply in the entity's current state.
    #[error("{0}")]
    NotAllowed(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A remote party (an agent server) refused or did not take the command; nothing changed.
    #[error("{0}")]
    Upstream(String),
}

/// Read side of sessions, as the dashboard sees it.
#[async_trait]
pub trait SessionQueries: Send + Sync + 'static {
    async fn list_sessions(
        &self,
        filter: SessionFilter,
        page: PageRequest,
    ) -> Result<Page<Session>, QueryError>;
}

/// One session in full, and aggregates over many.
#[async_trait]
pub trait SessionInsights: Send + Sync + 'static {
    /// The session with its event log, timeline and last workspace diff; `None` if unknown.
    async fn session_detail(&self, id: SessionId) -> Result<Option<SessionDetail>, QueryError>;
    /// Counts by status, the last 24 hours by hour, and the latest failures.
    async fn session_stats(&self) -> Result<SessionStats, QueryError>;
}

#[async_trait]
pub trait SessionCommands: Send + Sync + 'static {
    /// Returns what happened, for the operator (cancelled at once, or requested from the runner).
    async fn cancel_session(&self, id: SessionId) -> Result<String, CommandError>;
    async fn retry_session(&self, id: SessionId) -> Result<(), CommandError>;
}

#[async_trait]
pub trait TaskQueries: Send + Sync + 'static {
    /// Root tasks, newest first.
    async fn list_root_tasks(&self, page: PageRequest) -> Result<Page<Task>, QueryError>;
    /// The root and every descendant, parents before children; `None` if unknown.
    async fn task_tree(&self, root: TaskId) -> Result<Option<Vec<Task>>, QueryError>;
}

#[async_trait]
pub trait TaskCommands: Send + Sync + 'static {
    /// Decomposes the requirement into a stored tree (and starts it if asked); the root's id.
    async fn create_task(&self, form: NewTaskForm) -> Result<TaskId, CommandError>;
}

#[async_trait]
pub trait AgentQueries: Send + Sync + 'static {
    /// Every agent with its current load, by name.
    async fn list_agents(&self) -> Result<Vec<AgentRow>, QueryError>;
    async fn get_agent(&self, name: &str) -> Result<Option<Agent>, QueryError>;
}

#[async_trait]
pub trait AgentCommands: Send + Sync + 'static {
    async fn register_agent(&self, form: AgentForm) -> Result<Agent, CommandError>;
    /// Changes capabilities, model and max concurrency of the agent named `form.name`.
    async fn update_agent(&self, form: AgentForm) -> Result<Agent, CommandError>;
}

#[async_trait]
pub trait FleetQueries: Send + Sync + 'static {
    /// The OpenCode servers and the dispatch queue.
    async fn fleet_status(&self) -> FleetStatus;
    /// The wall screen's figures.
    async fn status_board(&self) -> Result<StatusBoard, QueryError>;
}

/// The human-in-the-loop inbox: what agents asked, and the operator's answers.
#[async_trait]
pub trait InboxPort: Send + Sync + 'static {
    /// The open items (escalated first, then the longest waiting) and the latest resolved ones.
    async fn inbox(&self) -> Result<InboxView, QueryError>;
    /// Answers an open item on behalf of `by` (relayed to the agent server before it is stored).
    async fn answer(
        &self,
        id: InboxItemId,
        answer: InboxAnswer,
        by: &str,
    ) -> Result<InboxItem, CommandError>;
}

/// The configured guardrails, and what task trees spent against their budgets.
#[async_trait]
pub trait GuardrailQueries: Send + Sync + 'static {
    /// The configured caps and runaway limits.
    async fn guardrails(&self) -> GuardrailsView;
    /// A root task's budget and its sessions' spend; `None` when the tree has no budget (or
    /// does not exist).
    async fn tree_budget(&self, root: TaskId) -> Result<Option<TreeBudgetView>, QueryError>;
}

/// Everything the server functions may call, provided once per request through context.
#[derive(Clone)]
pub struct AppServices {
    pub sessions: Arc<dyn SessionQueries>,
    pub insights: Arc<dyn SessionInsights>,
    pub session_commands: Arc<dyn SessionCommands>,
    pub tasks: Arc<dyn TaskQueries>,
    pub task_commands: Arc<dyn TaskCommands>,
    pub agents: Arc<dyn AgentQueries>,
    pub agent_commands: Arc<dyn AgentCommands>,
    pub fleet: Arc<dyn FleetQueries>,
    pub inbox: Arc<dyn InboxPort>,
    pub guardrails: Arc<dyn GuardrailQueries>,
}

impl AppServices {
    /// The services in context, or an error naming what is missing (a wiring bug, not a panic).
    pub fn from_context() -> Result<Self, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<Self>().ok_or_else(|| {
            leptos::prelude::ServerFnError::ServerError(
                "application services are not wired into the Leptos context".into(),
            )
        })
    }
}
