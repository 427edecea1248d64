//! The typed lines of a session's event log.
//!
//! Storage keeps every event as `(event_type, payload)`: a name such as `session.dispatched` and
//! a JSON object. Each kind has one payload type here, whose JSON form is exactly what the engine
//! writes (stored events stay readable, and readers get fields instead of string keys), and
//! [`SessionLogEvent`] joins them: [`SessionLogEvent::event_type`] and
//! [`SessionLogEvent::payload`] split one for storage, [`SessionLogEvent::parse`] puts it back
//! together.
//!
//! The lifecycle facts (`session.created`, `session.status_changed`, `session.metrics_recorded`)
//! are [`SessionEvent`]s and the worktree record is a [`WorkspaceRecord`], stored as they
//! serialise.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::guardrails::{Spend, StopReason};
use crate::inbox::{InboxItem, InboxItemId, InboxKind, InboxStatus};
use crate::session::{SessionEvent, WorkspaceRecord};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// `session.dispatched`: the attempt's OpenCode session was created and the prompt is about to
/// be sent (`queued -> running` is committed with it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Dispatched {
    /// The OpenCode server (as its adapter names it).
    pub server: String,
    /// OpenCode's session id (`ses…`).
    pub remote_session: String,
    /// The worktree the OpenCode session works in.
    pub directory: String,
    /// The session branch, `oio/session-<uuid>`.
    pub branch: String,
    /// The commit the worktree started from.
    pub base_commit: String,
    /// The attempt being run.
    pub attempt: u32,
    /// The fencing token of the dispatch lease.
    pub fence: u64,
    /// Whether the claim recovered a session whose owner's lease had lapsed.
    pub recovered: bool,
}

/// `session.reattached`: a replica took over a session already running on a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Reattached {
    /// The OpenCode server.
    pub server: String,
    /// OpenCode's session id (`ses…`).
    pub remote_session: String,
    /// The fencing token of the new lease.
    pub fence: u64,
}

/// `session.awaiting_slot`: the session waits for an admission slot in its pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AwaitingSlot {
    /// The admission pool (`provider/model`).
    pub pool: String,
    /// Its place in line; 1 is next.
    pub position: u64,
    /// The pool's current limit of concurrent turns.
    pub limit: u32,
    /// Turns running in the pool.
    pub in_use: u32,
}

/// `session.slot_granted`: a session that had to wait got its admission slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SlotGranted {
    /// The admission pool.
    pub pool: String,
    /// How long it waited, in milliseconds.
    pub waited_ms: u64,
}

/// `session.agent_stream_resynced`: the server's event stream reconnected; events may have been
/// missed, so the engine reconciles. Stored as `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AgentStreamResynced {}

/// `session.agent_retry`: OpenCode retries a failed (rate-limited, overloaded) provider call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AgentRetry {
    /// OpenCode's attempt number.
    pub attempt: u32,
    /// The provider's complaint, as OpenCode reports it (untrusted text).
    pub message: String,
}

/// `session.agent_error`: OpenCode reported a session error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AgentErrorReported {
    /// The error; `null` when the server gave none.
    pub error: Option<AgentErrorDetail>,
}

/// The error of an [`AgentErrorReported`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AgentErrorDetail {
    /// The orchestrator's classification, by its Rust name (`ProviderAuth`, `Api`, …).
    pub kind: String,
    /// The server's message (untrusted text).
    pub message: String,
}

/// `session.agent_message`: an assistant message completed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AgentMessage {
    /// OpenCode's message id (`msg…`).
    pub message_id: String,
    /// The model's finish reason (`stop`, `tool-calls`, `length`, …).
    pub finish: Option<String>,
    /// The message's tokens.
    pub tokens: TokenCounts,
    /// Its cost in the provider's currency (USD for the hosted ones).
    pub cost: f64,
    /// The message's error, if it failed (untrusted text).
    pub error: Option<String>,
}

/// Token counts of one message, as OpenCode reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenCounts {
    /// Prompt tokens.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// Prompt tokens served from the cache.
    pub cache_read: u64,
    /// Prompt tokens written to the cache.
    pub cache_write: u64,
}

/// `session.tool`: a tool call finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ToolFinished {
    /// The tool (`bash`, `edit`, …).
    pub tool: String,
    /// How it ended.
    pub status: ToolOutcome,
}

/// How a tool call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ToolOutcome {
    /// It succeeded.
    Completed,
    /// It failed.
    Error,
}

/// `session.permission_asked`: a tool asked for permission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PermissionAsked {
    /// The server's request id (`per…`).
    pub request_id: String,
    /// What is asked (`edit`, `bash`, `webfetch`, …).
    pub permission: String,
    /// What it applies to (paths, commands, URLs).
    pub patterns: Vec<String>,
}

/// `session.question_asked`: the agent asked the user questions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct QuestionAsked {
    /// The server's request id (`que…`).
    pub request_id: String,
    /// The questions, in full.
    pub questions: Vec<String>,
}

/// `session.result`: what the agent said it did, read by dependent tasks (untrusted text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SessionResult {
    /// The agent's closing words, shortened.
    pub summary: String,
}

/// `session.guardrail_stopped`: a guardrail stopped the attempt. The figures are present when the
/// attempt's guard was running (absent, not `null`, otherwise).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GuardrailStopped {
    /// The reason's stable code ([`StopReason::code`]).
    pub code: String,
    /// The reason, typed.
    pub reason: StopReason,
    /// The reason in words, for operators.
    pub message: String,
    /// Tokens the attempt had used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_tokens: Option<u64>,
    /// Cost the attempt had run up, in millionths of a USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_cost_micro_usd: Option<u64>,
    /// Model steps taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// Tool calls made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<u32>,
}

impl GuardrailStopped {
    /// The stop without figures (the attempt had no running guard).
    pub fn new(reason: &StopReason) -> Self {
        Self {
            code: reason.code().to_owned(),
            reason: reason.clone(),
            message: reason.to_string(),
            attempt_tokens: None,
            attempt_cost_micro_usd: None,
            steps: None,
            tool_calls: None,
        }
    }

    /// With what the attempt had spent and done when it was stopped.
    pub fn with_figures(mut self, spent: Spend, steps: u32, tool_calls: u32) -> Self {
        self.attempt_tokens = Some(spent.tokens);
        self.attempt_cost_micro_usd = Some(spent.cost_micro_usd);
        self.steps = Some(steps);
        self.tool_calls = Some(tool_calls);
        self
    }
}

/// `inbox.<change>`: an inbox item of the session was asked, answered, escalated or expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct InboxLogged {
    /// The inbox item.
    pub item_id: InboxItemId,
    /// What it asks.
    pub kind: InboxItemKind,
    /// The server's request id (`per…` or `que…`).
    pub request_id: String,
    /// Where the item stands after the change.
    pub status: InboxStatus,
    /// Who answered, for answered items (a user name, or `policy:<rule>`).
    pub by: Option<String>,
}

impl InboxLogged {
    /// The line for `item` as it stands.
    pub fn of(item: &InboxItem) -> Self {
        Self {
            item_id: item.id,
            kind: InboxItemKind::of(&item.kind),
            request_id: item.request_id.clone(),
            status: item.status,
            by: item.resolution.as_ref().map(|r| r.by.clone()),
        }
    }
}

/// What an inbox item asks, by name ([`InboxKind::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InboxItemKind {
    /// A permission request.
    Permission,
    /// Questions.
    Question,
}

impl InboxItemKind {
    /// The name of `kind`.
    pub fn of(kind: &InboxKind) -> Self {
        match kind {
            InboxKind::Permission { .. } => Self::Permission,
            InboxKind::Question { .. } => Self::Question,
        }
    }
}

/// Which change of an inbox item an `inbox.<change>` line records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InboxChange {
    /// `inbox.asked`: recorded.
    Asked,
    /// `inbox.answered`: answered by us.
    Answered,
    /// `inbox.escalated`: past its escalation deadline.
    Escalated,
    /// `inbox.expired`: closed without our answer.
    Expired,
}

impl InboxChange {
    /// Every change.
    pub const ALL: [Self; 4] = [Self::Asked, Self::Answered, Self::Escalated, Self::Expired];

    /// The full event type, `inbox.<change>`.
    pub const fn event_type(self) -> &'static str {
        match self {
            Self::Asked => "inbox.asked",
            Self::Answered => "inbox.answered",
            Self::Escalated => "inbox.escalated",
            Self::Expired => "inbox.expired",
        }
    }
}

/// One line of a session's event log, typed: every kind the engine and the inbox write.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionLogEvent {
    /// `session.created`, `session.status_changed`, `session.metrics_recorded`.
    Lifecycle(SessionEvent),
    /// `session.dispatched`.
    Dispatched(Dispatched),
    /// `session.reattached`.
    Reattached(Reattached),
    /// `session.awaiting_slot`.
    AwaitingSlot(AwaitingSlot),
    /// `session.slot_granted`.
    SlotGranted(SlotGranted),
    /// `session.agent_stream_resynced`.
    AgentStreamResynced(AgentStreamResynced),
    /// `session.agent_retry`.
    AgentRetry(AgentRetry),
    /// `session.agent_error`.
    AgentError(AgentErrorReported),
    /// `session.agent_message`.
    AgentMessage(AgentMessage),
    /// `session.tool`.
    Tool(ToolFinished),
    /// `session.permission_asked`.
    PermissionAsked(PermissionAsked),
    /// `session.question_asked`.
    QuestionAsked(QuestionAsked),
    /// `session.workspace`.
    Workspace(WorkspaceRecord),
    /// `session.result`.
    Result(SessionResult),
    /// `session.guardrail_stopped`.
    GuardrailStopped(GuardrailStopped),
    /// `inbox.asked`, `inbox.answered`, `inbox.escalated`, `inbox.expired`.
    Inbox(InboxChange, InboxLogged),
}

/// The prefix of every event type of the session aggregate.
const SESSION: &str = "session.";

impl SessionLogEvent {
    /// The stored event type, `<aggregate>.<kind>` (e.g. `session.dispatched`, `inbox.asked`).
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Lifecycle(SessionEvent::Created { .. }) => "session.created",
            Self::Lifecycle(SessionEvent::StatusChanged { .. }) => "session.status_changed",
            Self::Lifecycle(SessionEvent::MetricsRecorded { .. }) => "session.metrics_recorded",
            Self::Dispatched(_) => "session.dispatched",
            Self::Reattached(_) => "session.reattached",
            Self::AwaitingSlot(_) => "session.awaiting_slot",
            Self::SlotGranted(_) => "session.slot_granted",
            Self::AgentStreamResynced(_) => "session.agent_stream_resynced",
            Self::AgentRetry(_) => "session.agent_retry",
            Self::AgentError(_) => "session.agent_error",
            Self::AgentMessage(_) => "session.agent_message",
            Self::Tool(_) => "session.tool",
            Self::PermissionAsked(_) => "session.permission_asked",
            Self::QuestionAsked(_) => "session.question_asked",
            Self::Workspace(_) => WorkspaceRecord::EVENT_TYPE,
            Self::Result(_) => "session.result",
            Self::GuardrailStopped(_) => "session.guardrail_stopped",
            Self::Inbox(change, _) => change.event_type(),
        }
    }

    /// The kind within the session aggregate (`dispatched` for `session.dispatched`), which is
    /// what `NewEvent::new` takes; `None` for the `inbox.*` lines, stored under their own prefix.
    pub fn session_kind(&self) -> Option<&'static str> {
        self.event_type().strip_prefix(SESSION)
    }

    /// The stored payload.
    pub fn payload(&self) -> serde_json::Value {
        // Every payload is plain data (string keys, finite numbers but `cost`, which serde_json
        // writes as `null` if it is not finite): serialising cannot fail.
        let value = match self {
            Self::Lifecycle(e) => serde_json::to_value(e),
            Self::Dispatched(p) => serde_json::to_value(p),
            Self::Reattached(p) => serde_json::to_value(p),
            Self::AwaitingSlot(p) => serde_json::to_value(p),
            Self::SlotGranted(p) => serde_json::to_value(p),
            Self::AgentStreamResynced(p) => serde_json::to_value(p),
            Self::AgentRetry(p) => serde_json::to_value(p),
            Self::AgentError(p) => serde_json::to_value(p),
            Self::AgentMessage(p) => serde_json::to_value(p),
            Self::Tool(p) => serde_json::to_value(p),
            Self::PermissionAsked(p) => serde_json::to_value(p),
            Self::QuestionAsked(p) => serde_json::to_value(p),
            Self::Workspace(p) => serde_json::to_value(p),
            Self::Result(p) => serde_json::to_value(p),
            Self::GuardrailStopped(p) => serde_json::to_value(p),
            Self::Inbox(_, p) => serde_json::to_value(p),
        };
        value.expect("event payloads serialise")
    }

    /// A stored line, typed; `None` for a kind this build does not know or a payload that does
    /// not fit its kind. The event type may also be given without its `session.` prefix.
    pub fn parse(event_type: &str, payload: &serde_json::Value) -> Option<Self> {
        fn read<T: DeserializeOwned>(payload: &serde_json::Value) -> Option<T> {
            T::deserialize(payload).ok()
        }
        if let Some(change) = InboxChange::ALL
            .into_iter()
            .find(|c| c.event_type() == event_type)
        {
            return read(payload).map(|p| Self::Inbox(change, p));
        }
        let kind = event_type.strip_prefix(SESSION).unwrap_or(event_type);
        Some(match kind {
            "created" | "status_changed" | "metrics_recorded" => {
                let event: SessionEvent = read(payload)?;
                // The payload's own tag must agree with the line's type.
                if event.kind() != kind {
                    return None;
                }
                Self::Lifecycle(event)
            }
            "dispatched" => Self::Dispatched(read(payload)?),
            "reattached" => Self::Reattached(read(payload)?),
            "awaiting_slot" => Self::AwaitingSlot(read(payload)?),
            "slot_granted" => Self::SlotGranted(read(payload)?),
            "agent_stream_resynced" => Self::AgentStreamResynced(read(payload)?),
            "agent_retry" => Self::AgentRetry(read(payload)?),
            "agent_error" => Self::AgentError(read(payload)?),
            "agent_message" => Self::AgentMessage(read(payload)?),
            "tool" => Self::Tool(read(payload)?),
            "permission_asked" => Self::PermissionAsked(read(payload)?),
            "question_asked" => Self::QuestionAsked(read(payload)?),
            WorkspaceRecord::KIND => Self::Workspace(read(payload)?),
            "result" => Self::Result(read(payload)?),
            "guardrail_stopped" => Self::GuardrailStopped(read(payload)?),
            _ => return None,
        })
    }
}

impl From<SessionEvent> for SessionLogEvent {
    fn from(event: SessionEvent) -> Self {
        Self::Lifecycle(event)
    }
}

macro_rules! from_payload {
    ($($payload:ty => $variant:ident),* $(,)?) => {
        $(impl From<$payload> for SessionLogEvent {
            fn from(payload: $payload) -> Self {
                Self::$variant(payload)
            }
        })*
    };
}

from_payload!(
    Dispatched => Dispatched,
    Reattached => Reattached,
    AwaitingSlot => AwaitingSlot,
    SlotGranted => SlotGranted,
    AgentStreamResynced => AgentStreamResynced,
    AgentRetry => AgentRetry,
    AgentErrorReported => AgentError,
    AgentMessage => AgentMessage,
    ToolFinished => Tool,
    PermissionAsked => PermissionAsked,
    QuestionAsked => QuestionAsked,
    WorkspaceRecord => Workspace,
    SessionResult => Result,
    GuardrailStopped => GuardrailStopped,
);

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::{json, Value};
    use uuid::Uuid;

    use super::*;
    use crate::guardrails::{BudgetMetric, BudgetScope};
    use crate::ids::SessionId;
    use crate::session::{ChangedFileRecord, MetricsDelta, SessionStatus};

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    /// Parses `payload` as `event_type`, checks it is `expected`, and that writing it back gives
    /// exactly `payload` and `event_type`.
    fn round_trip(event_type: &str, payload: Value, expected: SessionLogEvent) {
        let parsed = SessionLogEvent::parse(event_type, &payload)
            .unwrap_or_else(|| panic!("{event_type} {payload} does not parse"));
        assert_eq!(parsed, expected, "{event_type}");
        assert_eq!(parsed.event_type(), event_type);
        assert_eq!(parsed.payload(), payload, "{event_type}");
    }

    // The literals below are the engine's `json!` payloads as written before the typed payloads
    // existed: stored events must keep parsing.

    #[test]
    fn lifecycle_events_are_session_events() {
        let session_id = SessionId::from_uuid(Uuid::from_u128(7));
        let changed = SessionEvent::StatusChanged {
            session_id,
            from: SessionStatus::Queued,
            to: SessionStatus::Running,
            at: at(),
            attempt: 1,
            reason: None,
        };
        round_trip(
            "session.status_changed",
            serde_json::to_value(&changed).unwrap(),
            SessionLogEvent::Lifecycle(changed.clone()),
        );
        let created = SessionEvent::Created {
            session_id,
            at: at(),
        };
        round_trip(
            "session.created",
            serde_json::to_value(&created).unwrap(),
            created.into(),
        );
        let recorded = SessionEvent::MetricsRecorded {
            session_id,
            at: at(),
            delta: MetricsDelta {
                tokens_input: 5,
                ..MetricsDelta::default()
            },
        };
        round_trip(
            "session.metrics_recorded",
            serde_json::to_value(&recorded).unwrap(),
            recorded.into(),
        );
        // A payload whose tag disagrees with its line is not that line.
        assert_eq!(
            SessionLogEvent::parse("session.created", &serde_json::to_value(&changed).unwrap()),
            None
        );
    }

    #[test]
    fn dispatch_and_admission_lines_keep_their_shape() {
        round_trip(
            "session.dispatched",
            json!({
                "server": "local", "remote_session": "ses_1", "directory": "/w/oio-1",
                "branch": "oio/session-1", "base_commit": "abc123", "attempt": 2,
                "fence": 9, "recovered": false,
            }),
            SessionLogEvent::Dispatched(Dispatched {
                server: "local".into(),
                remote_session: "ses_1".into(),
                directory: "/w/oio-1".into(),
                branch: "oio/session-1".into(),
                base_commit: "abc123".into(),
                attempt: 2,
                fence: 9,
                recovered: false,
            }),
        );
        round_trip(
            "session.reattached",
            json!({ "server": "local", "remote_session": "ses_1", "fence": 10 }),
            Reattached {
                server: "local".into(),
                remote_session: "ses_1".into(),
                fence: 10,
            }
            .into(),
        );
        round_trip(
            "session.awaiting_slot",
            json!({ "pool": "fake/fake-coder", "position": 3, "limit": 2, "in_use": 2 }),
            AwaitingSlot {
                pool: "fake/fake-coder".into(),
                position: 3,
                limit: 2,
                in_use: 2,
            }
            .into(),
        );
        round_trip(
            "session.slot_granted",
            json!({ "pool": "fake/fake-coder", "waited_ms": 1500 }),
            SlotGranted {
                pool: "fake/fake-coder".into(),
                waited_ms: 1500,
            }
            .into(),
        );
    }

    #[test]
    fn agent_lines_keep_their_shape() {
        round_trip(
            "session.agent_stream_resynced",
            json!({}),
            AgentStreamResynced {}.into(),
        );
        round_trip(
            "session.agent_retry",
            json!({ "attempt": 2, "message": "rate limited" }),
            AgentRetry {
                attempt: 2,
                message: "rate limited".into(),
            }
            .into(),
        );
        round_trip(
            "session.agent_error",
            json!({ "error": { "kind": "ProviderAuth", "message": "bad key" } }),
            AgentErrorReported {
                error: Some(AgentErrorDetail {
                    kind: "ProviderAuth".into(),
                    message: "bad key".into(),
                }),
            }
            .into(),
        );
        round_trip(
            "session.agent_error",
            json!({ "error": null }),
            AgentErrorReported { error: None }.into(),
        );
        round_trip(
            "session.agent_message",
            json!({
                "message_id": "msg_1", "finish": "stop",
                "tokens": { "input": 10, "output": 20, "reasoning": 0, "cache_read": 5,
                            "cache_write": 0 },
                "cost": 0.25, "error": null,
            }),
            AgentMessage {
                message_id: "msg_1".into(),
                finish: Some("stop".into()),
                tokens: TokenCounts {
                    input: 10,
                    output: 20,
                    reasoning: 0,
                    cache_read: 5,
                    cache_write: 0,
                },
                cost: 0.25,
                error: None,
            }
            .into(),
        );
        round_trip(
            "session.tool",
            json!({ "tool": "bash", "status": "completed" }),
            ToolFinished {
                tool: "bash".into(),
                status: ToolOutcome::Completed,
            }
            .into(),
        );
        round_trip(
            "session.tool",
            json!({ "tool": "edit", "status": "error" }),
            ToolFinished {
                tool: "edit".into(),
                status: ToolOutcome::Error,
            }
            .into(),
        );
        round_trip(
            "session.permission_asked",
            json!({ "request_id": "per_1", "permission": "bash", "patterns": ["rm -rf *"] }),
            PermissionAsked {
                request_id: "per_1".into(),
                permission: "bash".into(),
                patterns: vec!["rm -rf *".into()],
            }
            .into(),
        );
        round_trip(
            "session.question_asked",
            json!({ "request_id": "que_1", "questions": ["Which database?"] }),
            QuestionAsked {
                request_id: "que_1".into(),
                questions: vec!["Which database?".into()],
            }
            .into(),
        );
    }

    #[test]
    fn closing_lines_keep_their_shape() {
        let record = WorkspaceRecord {
            branch: "oio/session-1".into(),
            path: "/w/oio-1".into(),
            base_commit: "abc".into(),
            snapshot: Some("def".into()),
            files: vec![ChangedFileRecord {
                path: "src/lib.rs".into(),
                additions: 3,
                deletions: 1,
            }],
            patch: "+a\n-b".into(),
            patch_truncated: false,
        };
        round_trip(
            "session.workspace",
            serde_json::to_value(&record).unwrap(),
            record.into(),
        );
        round_trip(
            "session.result",
            json!({ "summary": "Added the endpoint." }),
            SessionResult {
                summary: "Added the endpoint.".into(),
            }
            .into(),
        );

        let reason = StopReason::BudgetExceeded {
            scope: BudgetScope::Session,
            metric: BudgetMetric::Tokens,
            used: 12,
            limit: 10,
        };
        // The guard's report, with its figures.
        let stopped = GuardrailStopped::new(&reason).with_figures(
            Spend {
                tokens: 12,
                cost_micro_usd: 30,
            },
            4,
            2,
        );
        round_trip(
            "session.guardrail_stopped",
            json!({
                "code": reason.code(), "reason": reason, "message": reason.to_string(),
                "attempt_tokens": 12, "attempt_cost_micro_usd": 30, "steps": 4, "tool_calls": 2,
            }),
            stopped.into(),
        );
        // The engine's fallback without a guard: no figures at all (not nulls).
        round_trip(
            "session.guardrail_stopped",
            json!({ "code": reason.code(), "reason": reason, "message": reason.to_string() }),
            GuardrailStopped::new(&reason).into(),
        );
        // The dashboard also names it without its aggregate.
        let payload = SessionLogEvent::from(GuardrailStopped::new(&reason)).payload();
        assert!(matches!(
            SessionLogEvent::parse("guardrail_stopped", &payload),
            Some(SessionLogEvent::GuardrailStopped(_))
        ));
    }

    #[test]
    fn inbox_lines_keep_their_shape() {
        let item_id = InboxItemId::from_uuid(Uuid::from_u128(42));
        for change in InboxChange::ALL {
            round_trip(
                change.event_type(),
                json!({
                    "item_id": item_id, "kind": "question", "request_id": "que_1",
                    "status": "answered", "by": "alice",
                }),
                SessionLogEvent::Inbox(
                    change,
                    InboxLogged {
                        item_id,
                        kind: InboxItemKind::Question,
                        request_id: "que_1".into(),
                        status: InboxStatus::Answered,
                        by: Some("alice".into()),
                    },
                ),
            );
        }
    }

    #[test]
    fn unknown_kinds_and_misshapen_payloads_do_not_parse() {
        assert_eq!(SessionLogEvent::parse("session.exploded", &json!({})), None);
        assert_eq!(SessionLogEvent::parse("task.created", &json!({})), None);
        assert_eq!(
            SessionLogEvent::parse("session.awaiting_slot", &json!({ "pool": "p" })),
            None
        );
        assert_eq!(
            SessionLogEvent::parse("session.tool", &json!({ "tool": "x", "status": "odd" })),
            None
        );
        assert_eq!(
            SessionLogEvent::parse("session.result", &json!("text")),
            None
        );
    }

    #[test]
    fn session_kinds_drop_the_aggregate_prefix() {
        let resynced = SessionLogEvent::from(AgentStreamResynced {});
        assert_eq!(resynced.session_kind(), Some("agent_stream_resynced"));
        let inbox = SessionLogEvent::Inbox(
            InboxChange::Asked,
            InboxLogged {
                item_id: InboxItemId::from_uuid(Uuid::nil()),
                kind: InboxItemKind::Permission,
                request_id: "per_1".into(),
                status: InboxStatus::Pending,
                by: None,
            },
        );
        assert_eq!(inbox.session_kind(), None);
        assert_eq!(inbox.payload()["by"], Value::Null);
    }
}
