//! The orchestrator's domain model: sessions, agents and tasks, with their invariants and state
//! machines.
//!
//! Pure and deterministic: no I/O, no clock, no randomness. Callers pass in the current time and
//! fresh ids, which keeps every rule testable and lets the same crate run on the server and in the
//! browser (wasm32).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod auth;
pub mod event_log;
pub mod guardrails;
pub mod ids;
pub mod inbox;
pub mod performance;
pub mod query;
pub mod session;
pub mod task;
pub mod task_routing;
pub mod validation;

pub use agent::{
    Agent, AgentCapability, AgentError, AgentName, AgentPerformanceMetrics, AgentRecord, ModelRef,
    NewAgent, ParseAgentCapabilityError,
};
pub use auth::{CurrentUser, Role};
pub use event_log::SessionLogEvent;
pub use guardrails::{
    Budget, BudgetMetric, BudgetScope, RunawayGuard, RunawayLimits, Spend, StopReason,
};
pub use ids::{AgentId, SessionId, TaskId};
pub use inbox::{
    InboxAnswer, InboxError, InboxItem, InboxItemId, InboxKind, InboxOption, InboxQuestion,
    InboxReply, InboxRequest, InboxResolution, InboxStatus, ParseInboxReplyError,
    ParseInboxStatusError,
};
pub use performance::{DecayedStats, RecentPerformance};
pub use query::{Cursor, Page, PageRequest, SessionFilter, TaskFilter};
pub use session::{
    ExecutionMetrics, MetricsDelta, NewSession, ParseSessionStatusError, Prompt, Session,
    SessionCommand, SessionError, SessionEvent, SessionOutcome, SessionRecord, SessionStatus,
    SessionTitle, WorkspacePath, WorkspaceRecord,
};
pub use task::{
    FailurePolicy, NewTask, ParseTaskComplexityError, ParseTaskStatusError, Task, TaskAssignment,
    TaskComplexity, TaskError, TaskExecution, TaskGraph, TaskRecord, TaskResult, TaskStatus,
    TaskTitle, TreeBudget, TreeRun,
};
pub use task_routing::{
    route, AgentScore, Candidate, RoutingDecision, RoutingError, RoutingWeights,
};
pub use validation::ValidationError;
