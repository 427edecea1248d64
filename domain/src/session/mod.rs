//! Sessions: the unit of work the orchestrator runs, from creation through retries to a final
//! outcome.

mod entity;
mod error;
mod events;
mod metrics;
mod status;
mod values;
mod workspace;

pub use entity::{NewSession, Session, SessionRecord, MAX_REASON_CHARS};
pub use error::SessionError;
pub use events::SessionEvent;
pub use metrics::{ExecutionMetrics, MetricsDelta};
pub use status::{ParseSessionStatusError, SessionCommand, SessionOutcome, SessionStatus};
pub use values::{Prompt, SessionTitle, WorkspacePath, MAX_WORKSPACE_BYTES};
pub use workspace::{ChangedFileRecord, WorkspaceRecord};
