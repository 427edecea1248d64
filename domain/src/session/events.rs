//! Facts about sessions, emitted by successful commands for audit logs and live updates.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MetricsDelta, SessionCommand, SessionStatus};
use crate::ids::SessionId;

/// Something that happened to a session. Serialized with a `"type"` tag, e.g.
/// `{"type":"status_changed","session_id":"…","from":"queued","to":"running",…}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SessionEvent {
    /// The session was created (status `pending`).
    Created {
        /// The session.
        session_id: SessionId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The session moved along one edge of the state machine.
    StatusChanged {
        /// The session.
        session_id: SessionId,
        /// The status before.
        from: SessionStatus,
        /// The status after.
        to: SessionStatus,
        /// When.
        at: DateTime<Utc>,
        /// The attempt the session is on after the change.
        attempt: u32,
        /// Why, for failures and cancellations.
        reason: Option<String>,
    },
    /// The running session reported more consumption.
    MetricsRecorded {
        /// The session.
        session_id: SessionId,
        /// When.
        at: DateTime<Utc>,
        /// The report as received.
        delta: MetricsDelta,
    },
}

impl SessionEvent {
    /// The session the event is about.
    pub fn session_id(&self) -> SessionId {
        match self {
            Self::Created { session_id, .. }
            | Self::StatusChanged { session_id, .. }
            | Self::MetricsRecorded { session_id, .. } => *session_id,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Created { at, .. }
            | Self::StatusChanged { at, .. }
            | Self::MetricsRecorded { at, .. } => *at,
        }
    }

    /// A stable name for storage and routing, equal to the serde `"type"` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::StatusChanged { .. } => "status_changed",
            Self::MetricsRecorded { .. } => "metrics_recorded",
        }
    }

    /// For a status change, the command that caused it.
    pub fn command(&self) -> Option<SessionCommand> {
        match self {
            Self::StatusChanged { from, to, .. } => SessionCommand::for_transition(*from, *to),
            _ => None,
        }
    }
}
