//! The coding-agent server as the orchestrator needs it: sessions on a server, prompts into them,
//! their messages, diffs and statuses, permission and question replies, and a live event stream.
//!
//! Written in our words; the one adapter today speaks OpenCode's HTTP API
//! (`adapters::opencode`). Identifiers on the far side (`ses…`, `msg…`, `per…`, `que…`) are the
//! server's, kept as opaque strings; our own ids travel in a session's `metadata`.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};

/// A session's id on the agent server (OpenCode: `ses…`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentSessionId(String);

impl AgentSessionId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a session lives: its id, and the directory (the server's per-worktree instance) that
/// hosts it. One server can work in many directories; calls about a session name its directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionAddress {
    pub id: AgentSessionId,
    pub directory: Option<String>,
}

impl SessionAddress {
    pub fn new(id: AgentSessionId, directory: Option<String>) -> Self {
        Self { id, directory }
    }
}

/// The id of a prompt (user message) we send. We choose it, so a prompt re-sent after a crash or
/// a lost response can be recognised among the session's messages.
///
/// OpenCode orders a session's messages by id and its prompt loop compares the last user
/// message's id with the last assistant message's: an id that does not sort after the server's
/// own would make it treat the turn as unanswered. [`MessageId::generate`] therefore produces
/// ids in the server's ascending format: `msg_`, 12 hex digits of
/// `(unix milliseconds × 4096 + counter) mod 2⁴⁸`, then 14 random base-62 characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

/// The id was not a message id (`msg…`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message id must start with \"msg\": {0:?}")]
pub struct InvalidMessageId(pub String);

impl MessageId {
    /// A fresh id that sorts after every id this process generated before, and after the
    /// server's own ids created earlier (clocks permitting).
    pub fn generate() -> Self {
        // (last millisecond, counter within it): the server's scheme, so same-millisecond ids
        // still ascend. A clock stepping back keeps the last millisecond, so ours still ascend.
        static LAST: Mutex<(i64, u64)> = Mutex::new((0, 0));
        let (millis, counter) = {
            let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
            let now = Utc::now().timestamp_millis();
            if now > last.0 {
                *last = (now, 0);
            }
            last.1 += 1;
            *last
        };
        Self::encode(millis, counter, *uuid::Uuid::new_v4().as_bytes())
    }

    fn encode(unix_millis: i64, counter: u64, random: [u8; 16]) -> Self {
        const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let value = (unix_millis as u64)
            .wrapping_mul(0x1000)
            .wrapping_add(counter)
            & 0xFFFF_FFFF_FFFF;
        let suffix: String = random[..14]
            .iter()
            .map(|b| BASE62[usize::from(*b) % 62] as char)
            .collect();
        Self(format!("msg_{value:012x}{suffix}"))
    }

    /// An id read back (from our store, or the server).
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidMessageId> {
        let raw = raw.into();
        if raw.starts_with("msg") {
            Ok(Self(raw))
        } else {
            Err(InvalidMessageId(raw))
        }
    }

    /// An id as the server reported it: the server is the authority on its own ids, so it is
    /// taken unchecked (only ids we send must have the prefix).
    pub fn from_server(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A model on the server: the domain's `provider/model` reference (one type for agents' models and
/// the models sessions and messages name).
pub use domain::ModelRef;

/// What `health()` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealth {
    pub healthy: bool,
    pub version: String,
}

/// A new session. `metadata` is stored by the server and returned with the session: put our own
/// task and attempt ids there, so a session found on a server can be traced back to its task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateSession {
    pub title: Option<String>,
    /// The working directory (worktree) the session works in; `None`: the server's own.
    pub directory: Option<String>,
    pub parent: Option<AgentSessionId>,
    pub agent: Option<String>,
    pub model: Option<ModelRef>,
    pub metadata: Option<serde_json::Value>,
}

/// Token counts of a message or a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
    pub reasoning: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

impl From<TokenUsage> for domain::event_log::TokenCounts {
    fn from(t: TokenUsage) -> Self {
        Self {
            input: t.input,
            output: t.output,
            reasoning: t.reasoning,
            cache_read: t.cache_read,
            cache_write: t.cache_write,
        }
    }
}

/// A session as the server knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentSession {
    pub id: AgentSessionId,
    pub title: String,
    pub directory: String,
    pub parent: Option<AgentSessionId>,
    pub agent: Option<String>,
    pub model: Option<ModelRef>,
    /// What was given at creation, or `Null`.
    pub metadata: serde_json::Value,
    /// Cost so far in the provider's currency (USD for the hosted ones).
    pub cost: f64,
    pub tokens: TokenUsage,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AgentSession {
    pub fn address(&self) -> SessionAddress {
        SessionAddress::new(self.id.clone(), Some(self.directory.clone()))
    }
}

/// A prompt: one text part, sent under our own message id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptRequest {
    pub message_id: MessageId,
    pub text: String,
    /// The agent (`build`, `plan`, a custom one); `None`: the session's.
    pub agent: Option<String>,
    pub model: Option<ModelRef>,
}

/// Why an assistant message failed, classified for the orchestrator's retry decisions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageErrorKind {
    /// The provider refused the credentials: retrying cannot help.
    ProviderAuth,
    /// The conversation no longer fits the model's context: summarise, then retry.
    ContextOverflow,
    /// The reply hit the output-length limit.
    OutputLength,
    /// Aborted (by us or an operator).
    Aborted,
    /// The structured-output schema could not be satisfied.
    StructuredOutput,
    /// The provider's content filter stopped the reply.
    ContentFilter,
    /// The provider's API failed; see [`MessageError::retryable`].
    Api,
    Unknown,
    /// A kind this adapter does not know yet, by the server's name.
    Other(String),
}

/// An assistant message's (or a session's) error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageError {
    pub kind: MessageErrorKind,
    pub message: String,
    /// The provider's HTTP status, for `Api` errors.
    pub status_code: Option<u16>,
    /// The server's own verdict, for `Api` errors.
    pub retryable: Option<bool>,
}

impl MessageError {
    /// Whether sending the turn again may succeed without changing anything first.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            MessageErrorKind::Api => self.retryable.unwrap_or(false),
            MessageErrorKind::Unknown => true,
            _ => false,
        }
    }
}

impl From<MessageError> for domain::event_log::AgentErrorDetail {
    fn from(e: MessageError) -> Self {
        Self {
            // The kind's Rust name (`ProviderAuth`, `Other("…")`), as the log has always shown.
            kind: format!("{:?}", e.kind),
            message: e.message,
        }
    }
}

/// A prompt as the server stored it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    pub id: MessageId,
    pub session_id: AgentSessionId,
    pub created_at: DateTime<Utc>,
    pub agent: Option<String>,
    pub model: Option<ModelRef>,
}

/// One assistant turn: what it cost and how it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    pub id: MessageId,
    pub session_id: AgentSessionId,
    /// The prompt this answers.
    pub parent_id: Option<MessageId>,
    pub created_at: DateTime<Utc>,
    /// `None` while the turn is still running.
    pub completed_at: Option<DateTime<Utc>>,
    pub agent: Option<String>,
    pub model: Option<ModelRef>,
    pub cost: f64,
    pub tokens: TokenUsage,
    pub error: Option<MessageError>,
    /// The model's finish reason (`stop`, `tool-calls`, `length`, …).
    pub finish: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    User(UserMessage),
    Assistant(AssistantMessage),
}

impl Message {
    pub fn id(&self) -> &MessageId {
        match self {
            Message::User(m) => &m.id,
            Message::Assistant(m) => &m.id,
        }
    }

    pub fn as_assistant(&self) -> Option<&AssistantMessage> {
        match self {
            Message::Assistant(m) => Some(m),
            Message::User(_) => None,
        }
    }
}

/// Where a tool call stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallState {
    Pending,
    Running { title: Option<String> },
    Completed { title: String, output: String },
    Failed { error: String },
}

/// What a part of a message holds. Parts the orchestrator does not use are kept raw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartContent {
    Text {
        text: String,
    },
    Reasoning {
        text: String,
    },
    Tool {
        call_id: String,
        tool: String,
        state: ToolCallState,
        /// The call's arguments as the model gave them (`Null` until known).
        #[serde(default)]
        input: serde_json::Value,
    },
    StepStart,
    StepFinish {
        reason: String,
        cost: f64,
        tokens: TokenUsage,
    },
    /// Files changed by the turn (a snapshot patch).
    Patch {
        files: Vec<String>,
    },
    Other {
        part_type: String,
        raw: serde_json::Value,
    },
}

/// One part of a message: text, a tool call, a step boundary, a patch, …
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub id: String,
    pub session_id: AgentSessionId,
    pub message_id: MessageId,
    pub content: PartContent,
}

/// A message with its parts, as `messages()` lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub message: Message,
    pub parts: Vec<Part>,
}

/// The finished turn a blocking `prompt()` returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssistantReply {
    pub message: AssistantMessage,
    pub parts: Vec<Part>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChange {
    Added,
    Deleted,
    Modified,
}

/// One file changed by a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDiff {
    pub file: String,
    pub patch: Option<String>,
    pub additions: u64,
    pub deletions: u64,
    pub change: Option<FileChange>,
}

/// Whether a session is working. Held only in the server's memory: after a server restart every
/// session reads `Idle`, so reconcile with `messages()` rather than trust `Idle` alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AgentSessionStatus {
    Idle,
    Busy,
    /// The server is retrying a failed provider call itself.
    Retry {
        attempt: u32,
        message: String,
        /// When the next attempt is due.
        next_at: Option<DateTime<Utc>>,
    },
}

/// The answer to a permission request (a tool wanting to edit, run a command, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionReply {
    Once,
    Always,
    Reject,
}

/// The tool call a permission request or question comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallRef {
    pub message_id: String,
    pub call_id: String,
}

/// A tool waits for permission; the session waits until it is answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PermissionRequest {
    /// `per…`: the id to reply to.
    pub id: String,
    pub session_id: AgentSessionId,
    /// What is asked: `edit`, `bash`, `webfetch`, …
    pub permission: String,
    pub patterns: Vec<String>,
    /// The patterns an `always` reply would allow from now on.
    pub always: Vec<String>,
    pub metadata: serde_json::Value,
    pub tool: Option<ToolCallRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionOption {
    pub label: String,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub question: String,
    pub header: String,
    pub options: Vec<QuestionOption>,
    pub multiple: bool,
    /// Whether a free-text answer is accepted.
    pub custom: bool,
}

/// The agent asks the user something; the session waits until it is answered or rejected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuestionRequest {
    /// `que…`: the id to reply to.
    pub id: String,
    pub session_id: AgentSessionId,
    pub questions: Vec<Question>,
    pub tool: Option<ToolCallRef>,
}

/// Which events to follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventScope {
    /// The instance of the directory the server was started in.
    ServerDefault,
    /// The instance of one directory (worktree).
    Directory(String),
    /// Every directory on the server, on one stream.
    AllDirectories,
}

/// A server event, typed where the orchestrator acts on it.
///
/// Server events carry no resumable position: a dropped stream loses what happened while it was
/// down. After every reconnect the stream yields [`AgentEvent::Resynced`]: the consumer must then
/// reconcile by polling `status()` and `messages()`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// The server opened the stream.
    ServerConnected,
    Heartbeat,
    /// Synthetic: the stream was lost (dropped, silent past the heartbeat deadline, or failed);
    /// reconnection is under way.
    Disconnected {
        reason: String,
    },
    /// Synthetic: the stream is back after a loss; events in between may be missing.
    Resynced,
    SessionCreated {
        session: AgentSession,
    },
    SessionUpdated {
        session: AgentSession,
    },
    SessionDeleted {
        session: AgentSession,
    },
    /// The canonical status change.
    SessionStatus {
        session_id: AgentSessionId,
        status: AgentSessionStatus,
    },
    /// Deprecated by the server in favour of `SessionStatus` (idle); still sent.
    SessionIdle {
        session_id: AgentSessionId,
    },
    SessionError {
        session_id: Option<AgentSessionId>,
        error: Option<MessageError>,
    },
    SessionDiff {
        session_id: AgentSessionId,
        files: Vec<FileDiff>,
    },
    MessageUpdated {
        session_id: AgentSessionId,
        message: Message,
    },
    MessagePartUpdated {
        session_id: AgentSessionId,
        part: Part,
    },
    /// Streamed text appended to a part's field (usually `text`).
    MessagePartDelta {
        session_id: AgentSessionId,
        message_id: MessageId,
        part_id: String,
        field: String,
        delta: String,
    },
    PermissionAsked(PermissionRequest),
    PermissionReplied {
        session_id: AgentSessionId,
        request_id: String,
        reply: PermissionReply,
    },
    QuestionAsked(QuestionRequest),
    QuestionReplied {
        session_id: AgentSessionId,
        request_id: String,
    },
    QuestionRejected {
        session_id: AgentSessionId,
        request_id: String,
    },
    /// An event this adapter does not type (or could not read), kept whole.
    Unknown {
        event_type: String,
        raw: serde_json::Value,
    },
}

/// Events until the consumer drops the stream; it never ends on its own (it reconnects).
pub type AgentEventStream = Pin<Box<dyn Stream<Item = AgentEvent> + Send + 'static>>;

/// A failed call, in terms the orchestrator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentServerError {
    /// The server could not be reached, or the connection broke. When `request_sent` is false
    /// the request never left: sending it again is safe whatever it was.
    #[error("agent server {server} unavailable: {reason}")]
    Unavailable {
        server: String,
        reason: String,
        request_sent: bool,
    },
    /// No answer in time. The request may have taken effect.
    #[error("agent server {server} did not answer within {after:?}")]
    Timeout { server: String, after: Duration },
    /// The server failed too often lately: calls are refused without trying, for `retry_in`.
    #[error("agent server {server} circuit open; next try in {retry_in:?}")]
    CircuitOpen { server: String, retry_in: Duration },
    /// The server asked us to slow down.
    #[error("agent server {server} rate-limited the call")]
    RateLimited {
        server: String,
        retry_after: Option<Duration>,
    },
    /// The credentials were refused.
    #[error("agent server {server} refused the credentials")]
    Unauthorized { server: String },
    #[error("not found on the agent server: {0}")]
    NotFound(String),
    /// Any other non-success answer; `body` is cut to a few kilobytes.
    #[error("agent server answered {status}: {body}")]
    Http { status: u16, body: String },
    /// The answer did not have the expected shape.
    #[error("agent server answer unreadable: {0}")]
    Decode(String),
}

impl AgentServerError {
    /// Whether the failure says something about the server's health (the circuit breaker counts
    /// these): unreachable, too slow, or failing with a 5xx. A 4xx is the server working.
    pub fn is_server_fault(&self) -> bool {
        match self {
            AgentServerError::Unavailable { .. } | AgentServerError::Timeout { .. } => true,
            AgentServerError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Whether trying the same call again later may succeed (for calls that are safe to repeat).
    pub fn is_transient(&self) -> bool {
        self.is_server_fault() || matches!(self, AgentServerError::RateLimited { .. })
    }
}

/// A coding-agent server: one OpenCode `serve` process, or a stand-in for it.
///
/// Calls are independent: the adapter may retry the ones that are safe to repeat (reads, delete,
/// abort) and never repeats a prompt that may have reached the server. Every call that concerns
/// a session takes its [`SessionAddress`], so the server routes it to the right directory.
#[async_trait]
pub trait AgentServer: Send + Sync + 'static {
    /// The server as logs and errors name it (its URL, any password redacted).
    fn name(&self) -> &str;

    async fn health(&self) -> Result<ServerHealth, AgentServerError>;

    async fn create_session(
        &self,
        request: &CreateSession,
    ) -> Result<AgentSession, AgentServerError>;

    /// `NotFound` if the server has no such session.
    async fn get_session(&self, session: &SessionAddress)
        -> Result<AgentSession, AgentServerError>;

    /// The sessions of one directory (`None`: the server's own), most recently updated first.
    async fn list_sessions(
        &self,
        directory: Option<&str>,
    ) -> Result<Vec<AgentSession>, AgentServerError>;

    /// Deletes a session with its messages. Deleting an absent session succeeds, so a retried
    /// delete whose first answer was lost is not an error.
    async fn delete_session(&self, session: &SessionAddress) -> Result<(), AgentServerError>;

    /// Sends a prompt and waits for the finished turn (possibly a long time). Prefer
    /// [`AgentServer::prompt_async`] with events and polling for long work.
    async fn prompt(
        &self,
        session: &SessionAddress,
        request: &PromptRequest,
    ) -> Result<AssistantReply, AgentServerError>;

    /// Sends a prompt and returns once the server accepted it; progress arrives as events.
    async fn prompt_async(
        &self,
        session: &SessionAddress,
        request: &PromptRequest,
    ) -> Result<(), AgentServerError>;

    /// Stops the session's running turn. `true` if the server acknowledged it.
    async fn abort(&self, session: &SessionAddress) -> Result<bool, AgentServerError>;

    /// Releases the server's state for one directory (OpenCode: its per-directory instance).
    /// After an abort, OpenCode 1.18's instance can refuse later prompts in that directory
    /// ("All fibers interrupted"): a retry in the same worktree disposes it first. Servers
    /// without such state do nothing.
    async fn dispose_directory(&self, directory: &str) -> Result<(), AgentServerError> {
        let _ = directory;
        Ok(())
    }

    /// Every message of the session with its parts, oldest first.
    async fn messages(
        &self,
        session: &SessionAddress,
    ) -> Result<Vec<MessageRecord>, AgentServerError>;

    /// The files the session changed.
    async fn diff(&self, session: &SessionAddress) -> Result<Vec<FileDiff>, AgentServerError>;

    /// The status of every session of one directory that is not idle (absent means idle).
    async fn status(
        &self,
        directory: Option<&str>,
    ) -> Result<BTreeMap<AgentSessionId, AgentSessionStatus>, AgentServerError>;

    async fn reply_permission(
        &self,
        directory: Option<&str>,
        request_id: &str,
        reply: PermissionReply,
        message: Option<&str>,
    ) -> Result<(), AgentServerError>;

    /// Answers a question: per question, the labels chosen (or one free-text answer).
    async fn reply_question(
        &self,
        directory: Option<&str>,
        request_id: &str,
        answers: &[Vec<String>],
    ) -> Result<(), AgentServerError>;

    async fn reject_question(
        &self,
        directory: Option<&str>,
        request_id: &str,
    ) -> Result<(), AgentServerError>;

    /// The permission requests of one directory still waiting for a reply (to catch up after
    /// a lost event stream). Servers that cannot list them answer none.
    async fn pending_permissions(
        &self,
        directory: Option<&str>,
    ) -> Result<Vec<PermissionRequest>, AgentServerError> {
        let _ = directory;
        Ok(Vec::new())
    }

    /// The questions of one directory still waiting for an answer; as
    /// [`AgentServer::pending_permissions`].
    async fn pending_questions(
        &self,
        directory: Option<&str>,
    ) -> Result<Vec<QuestionRequest>, AgentServerError> {
        let _ = directory;
        Ok(Vec::new())
    }

    /// The live event stream. Connects on first poll, reconnects by itself, never ends.
    fn events(&self, scope: EventScope) -> AgentEventStream;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_message_ids_ascend_and_have_the_servers_shape() {
        let ids: Vec<MessageId> = (0..200).map(|_| MessageId::generate()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        let id = ids[0].as_str();
        assert_eq!(id.len(), "msg_".len() + 12 + 14);
        assert!(id.starts_with("msg_"));
        assert!(id[4..16].chars().all(|c| c.is_ascii_hexdigit()));
        assert!(id[16..].chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn generated_message_ids_encode_the_time_like_the_server() {
        // A server id seen on OpenCode 1.18.33: msg_2141ac75b001… was created at 1795633629019
        // ms; the same millisecond's first id from us has the same 12-digit prefix.
        let id = MessageId::encode(1_795_633_629_019, 1, [0; 16]);
        assert_eq!(&id.as_str()[..16], "msg_2141ac75b001");
    }

    #[test]
    fn message_ids_must_start_with_msg() {
        assert!(MessageId::parse("msg_abc").is_ok());
        assert_eq!(
            MessageId::parse("bad"),
            Err(InvalidMessageId("bad".to_string()))
        );
    }

    #[test]
    fn only_api_errors_the_server_calls_retryable_and_unknown_errors_are_retryable() {
        let error = |kind, retryable| MessageError {
            kind,
            message: String::new(),
            status_code: None,
            retryable,
        };
        assert!(!error(MessageErrorKind::ProviderAuth, None).is_retryable());
        assert!(!error(MessageErrorKind::ContextOverflow, None).is_retryable());
        assert!(error(MessageErrorKind::Api, Some(true)).is_retryable());
        assert!(!error(MessageErrorKind::Api, Some(false)).is_retryable());
        assert!(error(MessageErrorKind::Unknown, None).is_retryable());
    }

    #[test]
    fn server_faults_are_outages_timeouts_and_5xx_not_4xx() {
        let http = |status| AgentServerError::Http {
            status,
            body: String::new(),
        };
        assert!(http(500).is_server_fault());
        assert!(http(503).is_server_fault());
        assert!(!http(400).is_server_fault());
        assert!(!AgentServerError::NotFound("x".into()).is_server_fault());
        assert!(AgentServerError::Timeout {
            server: "s".into(),
            after: Duration::from_secs(1)
        }
        .is_server_fault());
    }
}
