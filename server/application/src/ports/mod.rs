//! Driven ports: what the application layer needs from the outside world. One trait per concern,
//! each with one contract test suite (server/tests/it/contract) that every adapter of it runs.
//!
//! Writes go through [`UnitOfWork`] only: entity changes and the domain events they raise are
//! committed together or not at all (the transactional outbox). Repositories read.

mod agent_repository;
mod agent_server;
mod credentials;
mod dispatch_queue;
mod error;
mod inbox;
pub mod lock;
mod outbox;
mod servers;
mod session_repository;
mod store;
mod task_repository;
mod unit_of_work;
pub mod workspaces;

pub use agent_repository::AgentRepository;
pub use agent_server::{
    AgentEvent, AgentEventStream, AgentServer, AgentServerError, AgentSession, AgentSessionId,
    AgentSessionStatus, AssistantMessage, AssistantReply, CreateSession, EventScope, FileChange,
    FileDiff, InvalidMessageId, Message, MessageError, MessageErrorKind, MessageId, MessageRecord,
    ModelRef, Part, PartContent, PermissionReply, PermissionRequest, PromptRequest, Question,
    QuestionOption, QuestionRequest, ServerHealth, SessionAddress, TokenUsage, ToolCallRef,
    ToolCallState, UserMessage,
};
pub use credentials::{CredentialStore, TokenRecord, UserRecord, WebSessionRecord};
pub use dispatch_queue::{
    Claim, ClaimRequest, DispatchQueue, QueueDepth, QueueEntry, QueueLease, QueueOp, QueueSignal,
    RemoteRef, Renewal, ServerCapacity,
};
pub use error::RepositoryError;
pub use inbox::{InboxFilter, InboxRepository, Recorded};
pub use outbox::{Aggregate, NewEvent, Outbox, OutboxMessage, StoredSessionEvent};
pub use servers::{AgentServers, BreakerState, ServerReport};
pub use session_repository::SessionRepository;
pub use store::Store;
pub use task_repository::TaskRepository;
pub use unit_of_work::{Change, ChangeSet, Committed, EntityKey, UnitOfWork};
