//! Why a session command was refused. A refused command never changes the session.

use thiserror::Error;

use super::{SessionCommand, SessionStatus};
use crate::ids::SessionId;
use crate::validation::ValidationError;

/// A rule of the session lifecycle or of its fields was violated.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SessionError {
    /// The state machine has no edge `from -> to`.
    #[error("illegal session transition from `{from}` to `{to}`")]
    IllegalTransition {
        /// The session's status.
        from: SessionStatus,
        /// The status the command asked for.
        to: SessionStatus,
    },
    /// The edge exists but belongs to another command, e.g. `start` on a paused session.
    #[error("`{command}` cannot move a session from `{from}` to `{to}`; use `{expected}`")]
    WrongCommand {
        /// The command that was issued.
        command: SessionCommand,
        /// The session's status.
        from: SessionStatus,
        /// The status the command leads to.
        to: SessionStatus,
        /// The command that walks this edge.
        expected: SessionCommand,
    },
    /// A retry would exceed the session's attempt budget.
    #[error("retry limit reached: {attempts} of {max_attempts} attempts used")]
    RetryLimitReached {
        /// Attempts already made.
        attempts: u32,
        /// Attempts allowed.
        max_attempts: u32,
    },
    /// Metrics arrived for a session that is not executing.
    #[error("metrics can only be recorded while a session is running or paused, not `{status}`")]
    MetricsWhileNotRunning {
        /// The session's status.
        status: SessionStatus,
    },
    /// The agent is fixed once the session has started.
    #[error("the agent can only be changed while a session is pending or queued, not `{status}`")]
    AgentChangeNotAllowed {
        /// The session's status.
        status: SessionStatus,
    },
    /// An active session still holds or awaits an agent slot; it must be cancelled first.
    #[error("a `{status}` session cannot be deleted; cancel it first")]
    DeleteWhileActive {
        /// The session's status.
        status: SessionStatus,
    },
    /// The session was soft-deleted and accepts no more commands.
    #[error("session {id} is deleted")]
    Deleted {
        /// The deleted session.
        id: SessionId,
    },
    /// A field value broke its rule.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The offending field, e.g. `"max_attempts"`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl SessionError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<ValidationError> for SessionError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}
