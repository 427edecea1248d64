//! Domain events as stored: the per-session event log, and the outbox that relays every event to
//! the outside (dashboard streams, other replicas) after its change has committed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{SessionEvent, SessionId, SessionLogEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RepositoryError;

/// Which kind of entity an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Session,
    Task,
    Agent,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Session => "session",
            Aggregate::Task => "task",
            Aggregate::Agent => "agent",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "session" => Some(Aggregate::Session),
            "task" => Some(Aggregate::Task),
            "agent" => Some(Aggregate::Agent),
            _ => None,
        }
    }
}

/// An event to commit with a change. Session events also go to that session's event log.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub aggregate: Aggregate,
    pub aggregate_id: Uuid,
    /// `<aggregate>.<kind>`, e.g. `session.status_changed`.
    pub event_type: String,
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

impl NewEvent {
    pub fn new(
        aggregate: Aggregate,
        aggregate_id: Uuid,
        kind: &str,
        payload: serde_json::Value,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        Self {
            aggregate,
            aggregate_id,
            event_type: format!("{}.{kind}", aggregate.as_str()),
            payload,
            occurred_at,
        }
    }
}

impl NewEvent {
    /// A typed line of `session`'s event log (`session.<kind>`, or `inbox.<change>`), to commit.
    pub fn session_log(session: SessionId, event: &SessionLogEvent, at: DateTime<Utc>) -> Self {
        Self {
            aggregate: Aggregate::Session,
            aggregate_id: session.as_uuid(),
            event_type: event.event_type().to_owned(),
            payload: event.payload(),
            occurred_at: at,
        }
    }
}

impl From<&SessionEvent> for NewEvent {
    fn from(event: &SessionEvent) -> Self {
        Self::new(
            Aggregate::Session,
            event.session_id().as_uuid(),
            event.kind(),
            // A SessionEvent is plain data: serialising it cannot fail.
            serde_json::to_value(event).expect("session events serialise"),
            event.at(),
        )
    }
}

/// One line of a session's event log (typed by [`StoredSessionEvent::typed`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredSessionEvent {
    pub session_id: SessionId,
    /// 1, 2, 3, … per session, in commit order, without gaps.
    pub seq: u64,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

impl StoredSessionEvent {
    /// The line typed; `None` for a kind this build does not know or a misshapen payload.
    pub fn typed(&self) -> Option<SessionLogEvent> {
        SessionLogEvent::parse(&self.event_type, &self.payload)
    }
}

/// An outbox row: an event committed with its change and not yet relayed (or already relayed).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxMessage {
    /// Increases in commit order.
    pub id: i64,
    pub event: NewEvent,
    pub published_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// The oldest unpublished messages, at most `limit`, in id order.
    async fn pending(&self, limit: u32) -> Result<Vec<OutboxMessage>, RepositoryError>;
    /// Marks messages as relayed; marking one twice keeps its first time.
    async fn mark_published(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), RepositoryError>;
    /// Messages with an id above `after_id`, published or not, at most `limit`, in id order (a
    /// tail of the outbox for live streams).
    async fn after(&self, after_id: i64, limit: u32)
        -> Result<Vec<OutboxMessage>, RepositoryError>;
    /// The newest message's id; 0 when the outbox is empty.
    async fn last_id(&self) -> Result<i64, RepositoryError>;
}
