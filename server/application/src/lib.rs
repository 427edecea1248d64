//! The inside of the hexagon: the driven ports (what the application needs from the outside world)
//! and the application services (use cases over the domain, generic over those ports), their
//! settings and the metrics they record. Depends on `domain` and on no adapter: Cargo refuses an
//! import of one, since this crate does not depend on `oio-adapters` or `oio-web`.

pub mod admission;
pub mod agents;
pub mod auth;
pub mod decomposition;
pub mod engine;
pub mod execution;
pub mod guardrails;
pub mod inbox;
pub mod lifecycle;
pub mod metrics;
pub mod ports;
pub mod settings;
pub mod task_routing;
mod task_services;

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
pub use task_routing::{TaskRouter, TaskRoutingError};
pub use task_services::TaskServices;
