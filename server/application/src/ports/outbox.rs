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

#[cfg(test)]
mod tests {
    use domain::event_log::{AgentErrorReported, AgentMessage, GuardrailStopped};
    use domain::{BudgetMetric, BudgetScope, Spend, StopReason};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::ports::{MessageError, MessageErrorKind, TokenUsage};

    // The engine's `json!` payloads, built from the same port values, against the typed lines
    // that replace them: stored events keep their shape.

    #[test]
    fn typed_agent_lines_are_the_engines_json() {
        let tokens = TokenUsage {
            input: 10,
            output: 20,
            reasoning: 3,
            cache_read: 4,
            cache_write: 5,
        };
        let error = MessageError {
            kind: MessageErrorKind::Other("quota".into()),
            message: "over quota".into(),
            status_code: Some(429),
            retryable: Some(true),
        };
        let typed = SessionLogEvent::from(AgentMessage {
            message_id: "msg_1".into(),
            finish: Some("stop".into()),
            tokens: tokens.into(),
            cost: 0.5,
            error: Some(error.message.clone()),
        });
        assert_eq!(
            typed.payload(),
            json!({
                "message_id": "msg_1",
                "finish": Some("stop"),
                "tokens": tokens,
                "cost": 0.5,
                "error": Some(error.message.clone()),
            })
        );
        let typed = SessionLogEvent::from(AgentErrorReported {
            error: Some(error.clone().into()),
        });
        let e = Some(error);
        assert_eq!(
            typed.payload(),
            json!({ "error": e.map(|e| json!({ "kind": format!("{:?}", e.kind), "message": e.message })) })
        );
    }

    #[test]
    fn typed_guardrail_stops_are_the_engines_json() {
        let reason = StopReason::BudgetExceeded {
            scope: BudgetScope::Session,
            metric: BudgetMetric::Tokens,
            used: 11,
            limit: 10,
        };
        let live = Spend {
            tokens: 11,
            cost_micro_usd: 7,
        };
        let (steps, tool_calls) = (3u32, 2u32);
        let typed = SessionLogEvent::from(
            GuardrailStopped::new(&reason).with_figures(live, steps, tool_calls),
        );
        assert_eq!(
            typed.payload(),
            json!({
                "code": reason.code(),
                "reason": reason,
                "message": reason.to_string(),
                "attempt_tokens": live.tokens,
                "attempt_cost_micro_usd": live.cost_micro_usd,
                "steps": steps,
                "tool_calls": tool_calls,
            })
        );
        assert_eq!(
            SessionLogEvent::from(GuardrailStopped::new(&reason)).payload(),
            json!({ "code": reason.code(), "reason": reason, "message": reason.to_string() })
        );
    }

    #[test]
    fn session_log_lines_are_stored_under_their_full_type() {
        let session = SessionId::from_uuid(Uuid::from_u128(3));
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let line = SessionLogEvent::from(domain::event_log::AgentStreamResynced {});
        let event = NewEvent::session_log(session, &line, at);
        // What `NewEvent::new(Aggregate::Session, …, "agent_stream_resynced", json!({}), at)`
        // gave.
        assert_eq!(
            event,
            NewEvent::new(
                Aggregate::Session,
                session.as_uuid(),
                "agent_stream_resynced",
                json!({}),
                at
            )
        );
    }
}
