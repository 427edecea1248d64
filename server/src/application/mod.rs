//! Application services: use cases over the domain, generic over the driven ports.

pub mod admission;
pub mod agents;
pub mod auth;
pub mod decomposition;
pub mod engine;
pub mod execution;
pub mod guardrails;
pub mod inbox;
pub mod lifecycle;
pub mod routing;
mod session_service;

pub use admission::{Admission, AdmissionConfig, AdmissionStatus};
pub use agents::{AgentService, AgentServiceError, RegisterAgent, UpdateAgent};
pub use auth::{AuthError, AuthService, Principal, Via};
pub use decomposition::{
    Decomposition, DecompositionError, DecompositionOptions, TaskDecompositionService,
    TemplateLibrary,
};
pub use engine::{Engine, EngineConfig, EngineDeps, EngineStats};
pub use execution::{AdvanceReport, ExecutionError, StartTaskRequest, TaskExecutor};
pub use guardrails::{GuardrailConfig, GuardrailSettings, Guardrails};
pub use inbox::{InboxService, InboxServiceError, InboxSettings, InboxWatch};
pub use lifecycle::{CancelOutcome, CreateSessionRequest, LifecycleError, SessionLifecycle};
pub use routing::{TaskRouter, TaskRoutingError};
pub use session_service::SessionService;
