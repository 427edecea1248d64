//! The application's errors as the dashboard's ports report them: a query is unavailable or
//! invalid; a command is invalid (naming the form field), not found, not allowed or unavailable.

use app::ports::{CommandError, QueryError};
use domain::{InboxError, ValidationError};
use oio_application::ports::RepositoryError;
use oio_application::{AgentServiceError, ExecutionError, InboxServiceError, LifecycleError};

pub(super) fn unavailable(error: RepositoryError) -> QueryError {
    QueryError::Unavailable(error.to_string())
}

pub(super) fn invalid_query(error: ValidationError) -> QueryError {
    QueryError::Invalid {
        field: error.field,
        message: error.message,
    }
}

pub(super) fn invalid(error: ValidationError) -> CommandError {
    CommandError::Invalid {
        field: error.field.to_owned(),
        message: error.message,
    }
}

pub(super) fn invalid_field(field: &str, message: impl Into<String>) -> CommandError {
    CommandError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

pub(super) fn storage(error: RepositoryError) -> CommandError {
    CommandError::Unavailable(error.to_string())
}

pub(super) fn from_lifecycle(error: LifecycleError) -> CommandError {
    match error {
        LifecycleError::Invalid(e) => invalid(e),
        LifecycleError::NotFound(id) => CommandError::NotFound(format!("session {id}")),
        LifecycleError::NotAllowed(message) => CommandError::NotAllowed(message),
        LifecycleError::Storage(e) => storage(e),
    }
}

pub(super) fn from_execution(error: ExecutionError) -> CommandError {
    match error {
        ExecutionError::Invalid(e) => invalid(e),
        ExecutionError::NotFound(id) => CommandError::NotFound(format!("task {id}")),
        ExecutionError::NotAllowed(message) => CommandError::NotAllowed(message),
        ExecutionError::Storage(e) => storage(e),
    }
}

pub(super) fn from_agents(error: AgentServiceError) -> CommandError {
    match error {
        AgentServiceError::Invalid(e) => invalid(e),
        AgentServiceError::NotFound(name) => CommandError::NotFound(format!("agent {name}")),
        conflict @ AgentServiceError::Conflict { .. } => {
            CommandError::NotAllowed(conflict.to_string())
        }
        AgentServiceError::Storage(e) => storage(e),
    }
}

pub(super) fn from_inbox(error: InboxServiceError) -> CommandError {
    match error {
        InboxServiceError::NotFound(id) => CommandError::NotFound(format!("inbox item {id}")),
        InboxServiceError::Refused(refused @ InboxError::NotOpen { .. }) => {
            CommandError::NotAllowed(refused.to_string())
        }
        InboxServiceError::Refused(refused) => invalid_field("answer", refused.to_string()),
        unknown @ InboxServiceError::UnknownServer(_) => {
            CommandError::NotAllowed(unknown.to_string())
        }
        relay @ InboxServiceError::Relay { .. } => {
            // The source says why the server refused; the server's name carries no secret.
            let mut message = relay.to_string();
            let mut source = std::error::Error::source(&relay);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !message.contains(&cause_text) {
                    message.push_str(": ");
                    message.push_str(&cause_text);
                }
                source = cause.source();
            }
            CommandError::Upstream(message)
        }
        InboxServiceError::Storage(e) => storage(e),
    }
}
