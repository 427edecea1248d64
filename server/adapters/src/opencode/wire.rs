//! OpenCode's JSON, as version 1.18.33 sends and accepts it (camelCase, times in Unix
//! milliseconds, token counts as JSON numbers), and its translation into the port's types.
//!
//! Reading is lenient: unknown fields are ignored and most fields default, because OpenCode adds
//! fields freely between releases; only what identifies a thing (ids, types) is required.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use oio_application::ports::{
    AgentSession, AgentSessionId, AgentSessionStatus, AssistantMessage, AssistantReply,
    CreateSession, FileChange, FileDiff, Message, MessageError, MessageErrorKind, MessageId,
    MessageRecord, ModelRef, Part, PartContent, PermissionReply, PermissionRequest, PromptRequest,
    Question, QuestionOption, QuestionRequest, ServerHealth, TokenUsage, ToolCallRef,
    ToolCallState, UserMessage,
};

fn millis(ms: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms as i64).unwrap_or(DateTime::UNIX_EPOCH)
}

fn count(n: f64) -> u64 {
    if n.is_finite() && n > 0.0 {
        n as u64
    } else {
        0
    }
}

// ---- requests ----------------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(rename = "parentID", skip_serializing_if = "Option::is_none")]
    parent_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a str>,
    /// Session creation names a model `{id, providerID}`; a prompt names it `{providerID, modelID}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Value>,
}

impl<'a> From<&'a CreateSession> for CreateSessionBody<'a> {
    fn from(r: &'a CreateSession) -> Self {
        Self {
            title: r.title.as_deref(),
            parent_id: r.parent.as_ref().map(|p| p.as_str()),
            agent: r.agent.as_deref(),
            model: r
                .model
                .as_ref()
                .map(|m| serde_json::json!({ "id": m.model(), "providerID": m.provider() })),
            metadata: r.metadata.as_ref(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptBody<'a> {
    #[serde(rename = "messageID")]
    message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<WireModel>,
    parts: [TextPartInput<'a>; 1],
}

#[derive(Serialize)]
struct TextPartInput<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl<'a> From<&'a PromptRequest> for PromptBody<'a> {
    fn from(r: &'a PromptRequest) -> Self {
        Self {
            message_id: r.message_id.as_str(),
            agent: r.agent.as_deref(),
            model: r.model.as_ref().map(WireModel::from),
            parts: [TextPartInput {
                kind: "text",
                text: &r.text,
            }],
        }
    }
}

#[derive(Serialize)]
pub struct PermissionReplyBody<'a> {
    pub reply: PermissionReply,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
}

#[derive(Serialize)]
pub struct QuestionReplyBody<'a> {
    pub answers: &'a [Vec<String>],
}

// ---- shared pieces -----------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Clone)]
pub struct WireModel {
    #[serde(rename = "providerID")]
    provider_id: String,
    #[serde(rename = "modelID")]
    model_id: String,
}

impl From<&ModelRef> for WireModel {
    fn from(m: &ModelRef) -> Self {
        Self {
            provider_id: m.provider().to_owned(),
            model_id: m.model().to_owned(),
        }
    }
}

/// A model the server names, if it is a valid `provider/model` reference (a server's odd value is
/// dropped rather than failing the whole message).
fn model_ref(provider: String, model: String) -> Option<ModelRef> {
    ModelRef::new(provider, model).ok()
}

/// A session's model: `{id, providerID}`.
#[derive(Deserialize)]
struct SessionModel {
    id: String,
    #[serde(rename = "providerID")]
    provider_id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireTokens {
    input: f64,
    output: f64,
    reasoning: f64,
    cache: WireCache,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireCache {
    read: f64,
    write: f64,
}

impl From<WireTokens> for TokenUsage {
    fn from(t: WireTokens) -> Self {
        Self {
            input: count(t.input),
            output: count(t.output),
            reasoning: count(t.reasoning),
            cache_read: count(t.cache.read),
            cache_write: count(t.cache.write),
        }
    }
}

// ---- responses ---------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct WireHealth {
    healthy: bool,
    #[serde(default)]
    version: String,
}

impl From<WireHealth> for ServerHealth {
    fn from(h: WireHealth) -> Self {
        Self {
            healthy: h.healthy,
            version: h.version,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireSession {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    directory: String,
    #[serde(rename = "parentID", default)]
    parent_id: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    model: Option<SessionModel>,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    cost: f64,
    #[serde(default)]
    tokens: WireTokens,
    #[serde(default)]
    time: WireSessionTime,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireSessionTime {
    created: f64,
    updated: f64,
}

impl From<WireSession> for AgentSession {
    fn from(s: WireSession) -> Self {
        Self {
            id: AgentSessionId::new(s.id),
            title: s.title,
            directory: s.directory,
            parent: s.parent_id.map(AgentSessionId::new),
            agent: s.agent,
            model: s.model.and_then(|m| model_ref(m.provider_id, m.id)),
            metadata: s.metadata,
            cost: s.cost,
            tokens: s.tokens.into(),
            created_at: millis(s.time.created),
            updated_at: millis(s.time.updated),
        }
    }
}

/// An error as OpenCode names it: `{name, data: {message, …}}`.
#[derive(Deserialize)]
pub struct WireError {
    name: String,
    #[serde(default)]
    data: WireErrorData,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct WireErrorData {
    message: Option<String>,
    status_code: Option<u16>,
    is_retryable: Option<bool>,
}

impl From<WireError> for MessageError {
    fn from(e: WireError) -> Self {
        let kind = match e.name.as_str() {
            "ProviderAuthError" => MessageErrorKind::ProviderAuth,
            "ContextOverflowError" => MessageErrorKind::ContextOverflow,
            "MessageOutputLengthError" => MessageErrorKind::OutputLength,
            "MessageAbortedError" => MessageErrorKind::Aborted,
            "StructuredOutputError" => MessageErrorKind::StructuredOutput,
            "ContentFilterError" => MessageErrorKind::ContentFilter,
            "APIError" => MessageErrorKind::Api,
            "UnknownError" => MessageErrorKind::Unknown,
            other => MessageErrorKind::Other(other.to_string()),
        };
        Self {
            kind,
            message: e.data.message.unwrap_or_default(),
            status_code: e.data.status_code,
            retryable: e.data.is_retryable,
        }
    }
}

/// A message's `info`, user or assistant by its `role`.
#[derive(Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum WireMessage {
    User(WireUserMessage),
    Assistant(WireAssistantMessage),
}

#[derive(Deserialize)]
pub struct WireUserMessage {
    id: String,
    #[serde(rename = "sessionID")]
    session_id: String,
    #[serde(default)]
    time: WireMessageTime,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    model: Option<WireModel>,
}

#[derive(Deserialize)]
pub struct WireAssistantMessage {
    id: String,
    #[serde(rename = "sessionID")]
    session_id: String,
    #[serde(rename = "parentID", default)]
    parent_id: Option<String>,
    #[serde(default)]
    time: WireMessageTime,
    #[serde(default)]
    agent: Option<String>,
    #[serde(rename = "modelID", default)]
    model_id: Option<String>,
    #[serde(rename = "providerID", default)]
    provider_id: Option<String>,
    #[serde(default)]
    cost: f64,
    #[serde(default)]
    tokens: WireTokens,
    #[serde(default)]
    error: Option<WireError>,
    #[serde(default)]
    finish: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireMessageTime {
    created: f64,
    completed: Option<f64>,
}

impl From<WireAssistantMessage> for AssistantMessage {
    fn from(m: WireAssistantMessage) -> Self {
        let model = match (m.provider_id, m.model_id) {
            (Some(provider_id), Some(model_id)) => model_ref(provider_id, model_id),
            _ => None,
        };
        Self {
            id: message_id(m.id),
            session_id: AgentSessionId::new(m.session_id),
            parent_id: m.parent_id.map(message_id),
            created_at: millis(m.time.created),
            completed_at: m.time.completed.map(millis),
            agent: m.agent,
            model,
            cost: m.cost,
            tokens: m.tokens.into(),
            error: m.error.map(MessageError::from),
            finish: m.finish,
        }
    }
}

impl From<WireMessage> for Message {
    fn from(m: WireMessage) -> Self {
        match m {
            WireMessage::User(u) => Message::User(UserMessage {
                id: message_id(u.id),
                session_id: AgentSessionId::new(u.session_id),
                created_at: millis(u.time.created),
                agent: u.agent,
                model: u.model.and_then(|m| model_ref(m.provider_id, m.model_id)),
            }),
            WireMessage::Assistant(a) => Message::Assistant(a.into()),
        }
    }
}

fn message_id(raw: String) -> MessageId {
    MessageId::from_server(raw)
}

/// A part, read by its `type`; kinds the orchestrator does not use stay raw.
pub fn part(raw: Value) -> Result<Part, serde_json::Error> {
    #[derive(Deserialize)]
    struct Head {
        id: String,
        #[serde(rename = "sessionID")]
        session_id: String,
        #[serde(rename = "messageID")]
        message_id: String,
        #[serde(rename = "type")]
        kind: String,
    }
    #[derive(Deserialize)]
    struct Text {
        #[serde(default)]
        text: String,
    }
    #[derive(Deserialize)]
    struct Tool {
        #[serde(rename = "callID", default)]
        call_id: String,
        #[serde(default)]
        tool: String,
        state: ToolState,
    }
    #[derive(Deserialize)]
    #[serde(tag = "status", rename_all = "lowercase")]
    enum ToolState {
        Pending,
        Running {
            #[serde(default)]
            title: Option<String>,
        },
        Completed {
            #[serde(default)]
            title: String,
            #[serde(default)]
            output: String,
        },
        Error {
            #[serde(default)]
            error: String,
        },
    }
    #[derive(Deserialize)]
    struct StepFinish {
        #[serde(default)]
        reason: String,
        #[serde(default)]
        cost: f64,
        #[serde(default)]
        tokens: WireTokens,
    }
    #[derive(Deserialize)]
    struct Patch {
        #[serde(default)]
        files: Vec<String>,
    }

    let head = Head::deserialize(&raw)?;
    let content = match head.kind.as_str() {
        "text" => PartContent::Text {
            text: Text::deserialize(&raw)?.text,
        },
        "reasoning" => PartContent::Reasoning {
            text: Text::deserialize(&raw)?.text,
        },
        "tool" => {
            let tool = Tool::deserialize(&raw)?;
            PartContent::Tool {
                input: raw
                    .pointer("/state/input")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
                call_id: tool.call_id,
                tool: tool.tool,
                state: match tool.state {
                    ToolState::Pending => ToolCallState::Pending,
                    ToolState::Running { title } => ToolCallState::Running { title },
                    ToolState::Completed { title, output } => {
                        ToolCallState::Completed { title, output }
                    }
                    ToolState::Error { error } => ToolCallState::Failed { error },
                },
            }
        }
        "step-start" => PartContent::StepStart,
        "step-finish" => {
            let step = StepFinish::deserialize(&raw)?;
            PartContent::StepFinish {
                reason: step.reason,
                cost: step.cost,
                tokens: step.tokens.into(),
            }
        }
        "patch" => PartContent::Patch {
            files: Patch::deserialize(&raw)?.files,
        },
        _ => PartContent::Other {
            part_type: head.kind.clone(),
            raw: raw.clone(),
        },
    };
    Ok(Part {
        id: head.id,
        session_id: AgentSessionId::new(head.session_id),
        message_id: message_id(head.message_id),
        content,
    })
}

#[derive(Deserialize)]
pub struct WireMessageRecord {
    info: WireMessage,
    #[serde(default)]
    parts: Vec<Value>,
}

fn parts(raw: Vec<Value>) -> Result<Vec<Part>, serde_json::Error> {
    raw.into_iter().map(part).collect()
}

impl TryFrom<WireMessageRecord> for MessageRecord {
    type Error = serde_json::Error;

    fn try_from(r: WireMessageRecord) -> Result<Self, Self::Error> {
        Ok(Self {
            message: r.info.into(),
            parts: parts(r.parts)?,
        })
    }
}

#[derive(Deserialize)]
pub struct WireAssistantReply {
    info: WireAssistantMessage,
    #[serde(default)]
    parts: Vec<Value>,
}

impl TryFrom<WireAssistantReply> for AssistantReply {
    type Error = serde_json::Error;

    fn try_from(r: WireAssistantReply) -> Result<Self, Self::Error> {
        Ok(Self {
            message: r.info.into(),
            parts: parts(r.parts)?,
        })
    }
}

#[derive(Deserialize)]
pub struct WireFileDiff {
    #[serde(default)]
    file: String,
    #[serde(default)]
    patch: Option<String>,
    #[serde(default)]
    additions: f64,
    #[serde(default)]
    deletions: f64,
    #[serde(default)]
    status: Option<String>,
}

impl From<WireFileDiff> for FileDiff {
    fn from(d: WireFileDiff) -> Self {
        Self {
            file: d.file,
            patch: d.patch,
            additions: count(d.additions),
            deletions: count(d.deletions),
            change: match d.status.as_deref() {
                Some("added") => Some(FileChange::Added),
                Some("deleted") => Some(FileChange::Deleted),
                Some("modified") => Some(FileChange::Modified),
                _ => None,
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WireStatus {
    Idle,
    Busy,
    Retry {
        #[serde(default)]
        attempt: u32,
        #[serde(default)]
        message: String,
        /// Unix milliseconds of the next attempt.
        #[serde(default)]
        next: Option<f64>,
    },
}

impl From<WireStatus> for AgentSessionStatus {
    fn from(s: WireStatus) -> Self {
        match s {
            WireStatus::Idle => AgentSessionStatus::Idle,
            WireStatus::Busy => AgentSessionStatus::Busy,
            WireStatus::Retry {
                attempt,
                message,
                next,
            } => AgentSessionStatus::Retry {
                attempt,
                message,
                next_at: next.map(millis),
            },
        }
    }
}

#[derive(Deserialize)]
struct WireToolRef {
    #[serde(rename = "messageID")]
    message_id: String,
    #[serde(rename = "callID")]
    call_id: String,
}

impl From<WireToolRef> for ToolCallRef {
    fn from(t: WireToolRef) -> Self {
        Self {
            message_id: t.message_id,
            call_id: t.call_id,
        }
    }
}

#[derive(Deserialize)]
pub struct WirePermissionAsked {
    id: String,
    #[serde(rename = "sessionID")]
    session_id: String,
    #[serde(default)]
    permission: String,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    always: Vec<String>,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    tool: Option<WireToolRef>,
}

impl From<WirePermissionAsked> for PermissionRequest {
    fn from(p: WirePermissionAsked) -> Self {
        Self {
            id: p.id,
            session_id: AgentSessionId::new(p.session_id),
            permission: p.permission,
            patterns: p.patterns,
            always: p.always,
            metadata: p.metadata,
            tool: p.tool.map(ToolCallRef::from),
        }
    }
}

#[derive(Deserialize)]
struct WireQuestion {
    #[serde(default)]
    question: String,
    #[serde(default)]
    header: String,
    #[serde(default)]
    options: Vec<WireQuestionOption>,
    #[serde(default)]
    multiple: bool,
    #[serde(default)]
    custom: bool,
}

#[derive(Deserialize)]
struct WireQuestionOption {
    #[serde(default)]
    label: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
pub struct WireQuestionAsked {
    id: String,
    #[serde(rename = "sessionID")]
    session_id: String,
    #[serde(default)]
    questions: Vec<WireQuestion>,
    #[serde(default)]
    tool: Option<WireToolRef>,
}

impl From<WireQuestionAsked> for QuestionRequest {
    fn from(q: WireQuestionAsked) -> Self {
        Self {
            id: q.id,
            session_id: AgentSessionId::new(q.session_id),
            questions: q
                .questions
                .into_iter()
                .map(|q| Question {
                    question: q.question,
                    header: q.header,
                    options: q
                        .options
                        .into_iter()
                        .map(|o| QuestionOption {
                            label: o.label,
                            description: o.description,
                        })
                        .collect(),
                    multiple: q.multiple,
                    custom: q.custom,
                })
                .collect(),
            tool: q.tool.map(ToolCallRef::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_body_carries_our_message_id_and_one_text_part() {
        let request = PromptRequest {
            message_id: MessageId::parse("msg_0001").unwrap(),
            text: "add a health endpoint".into(),
            agent: Some("build".into()),
            model: Some(ModelRef::new("fake", "fake-coder").unwrap()),
        };
        let body = serde_json::to_value(PromptBody::from(&request)).unwrap();
        assert_eq!(
            body,
            json!({
                "messageID": "msg_0001",
                "agent": "build",
                "model": {"providerID": "fake", "modelID": "fake-coder"},
                "parts": [{"type": "text", "text": "add a health endpoint"}],
            })
        );
    }

    #[test]
    fn create_session_body_names_the_model_the_session_way_and_omits_what_is_unset() {
        let request = CreateSession {
            title: Some("t".into()),
            model: Some(ModelRef::new("p", "m").unwrap()),
            metadata: Some(json!({"task": "t-1"})),
            ..CreateSession::default()
        };
        let body = serde_json::to_value(CreateSessionBody::from(&request)).unwrap();
        assert_eq!(
            body,
            json!({"title": "t", "model": {"id": "m", "providerID": "p"}, "metadata": {"task": "t-1"}})
        );
    }

    #[test]
    fn a_session_as_opencode_1_18_33_returns_it() {
        let raw = json!({"id":"ses_debe54662ffeQ87I6buEqArCBa","slug":"misty-orchid","projectID":"global",
            "directory":"/tmp/ocprobe","path":"","cost":0,"tokens":{"input":0,"output":0,"reasoning":0,
            "cache":{"read":0,"write":0}},"title":"probe","version":"1.18.33","metadata":{"task":"t1"},
            "time":{"created":1795633625501u64,"updated":1795633625501u64}});
        let session: AgentSession = serde_json::from_value::<WireSession>(raw).unwrap().into();
        assert_eq!(session.id.as_str(), "ses_debe54662ffeQ87I6buEqArCBa");
        assert_eq!(session.directory, "/tmp/ocprobe");
        assert_eq!(session.metadata, json!({"task": "t1"}));
        assert_eq!(session.created_at.timestamp_millis(), 1_795_633_625_501);
    }

    #[test]
    fn an_assistant_message_keeps_tokens_cost_and_a_classified_error() {
        let raw = json!({"info":{"id":"msg_2","sessionID":"ses_1","role":"assistant",
            "time":{"created":1000,"completed":2000},"parentID":"msg_1","modelID":"fake-coder",
            "providerID":"fake","mode":"build","agent":"build","path":{"cwd":"/w","root":"/w"},
            "cost":0.25,"tokens":{"total":70,"input":40,"output":20,"reasoning":10,"cache":{"read":5,"write":1}},
            "error":{"name":"APIError","data":{"message":"overloaded","statusCode":529,"isRetryable":true}},
            "finish":"stop"},
            "parts":[{"id":"prt_1","sessionID":"ses_1","messageID":"msg_2","type":"text","text":"done"},
                     {"id":"prt_2","sessionID":"ses_1","messageID":"msg_2","type":"step-finish","reason":"stop",
                      "cost":0.25,"tokens":{"input":40,"output":20,"reasoning":10,"cache":{"read":5,"write":1}}},
                     {"id":"prt_3","sessionID":"ses_1","messageID":"msg_2","type":"tool","callID":"c1","tool":"write",
                      "state":{"status":"completed","input":{"filePath":"hello.txt"},"output":"ok","title":"hello.txt","metadata":{},"time":{"start":1,"end":2}}},
                     {"id":"prt_4","sessionID":"ses_1","messageID":"msg_2","type":"snapshot","snapshot":"abc"}]});
        let record: MessageRecord = serde_json::from_value::<WireMessageRecord>(raw)
            .unwrap()
            .try_into()
            .unwrap();
        let message = record.message.as_assistant().expect("assistant");
        assert_eq!(
            message.tokens,
            TokenUsage {
                input: 40,
                output: 20,
                reasoning: 10,
                cache_read: 5,
                cache_write: 1
            }
        );
        assert_eq!(message.cost, 0.25);
        assert_eq!(message.parent_id.as_ref().unwrap().as_str(), "msg_1");
        let error = message.error.as_ref().unwrap();
        assert_eq!(error.kind, MessageErrorKind::Api);
        assert_eq!(error.status_code, Some(529));
        assert!(error.is_retryable());
        assert_eq!(
            record.parts[0].content,
            PartContent::Text {
                text: "done".into()
            }
        );
        assert!(matches!(
            record.parts[1].content,
            PartContent::StepFinish { .. }
        ));
        assert_eq!(
            record.parts[2].content,
            PartContent::Tool {
                call_id: "c1".into(),
                tool: "write".into(),
                state: ToolCallState::Completed {
                    title: "hello.txt".into(),
                    output: "ok".into()
                },
                input: json!({"filePath": "hello.txt"}),
            }
        );
        assert!(
            matches!(&record.parts[3].content, PartContent::Other { part_type, .. } if part_type == "snapshot")
        );
    }

    #[test]
    fn provider_auth_errors_are_classified_and_never_retryable() {
        let e: MessageError = serde_json::from_value::<WireError>(
            json!({"name":"ProviderAuthError","data":{"providerID":"x","message":"bad key"}}),
        )
        .unwrap()
        .into();
        assert_eq!(e.kind, MessageErrorKind::ProviderAuth);
        assert!(!e.is_retryable());
        let e: MessageError =
            serde_json::from_value::<WireError>(json!({"name":"BrandNewError","data":{}}))
                .unwrap()
                .into();
        assert_eq!(e.kind, MessageErrorKind::Other("BrandNewError".into()));
    }

    #[test]
    fn a_retry_status_carries_attempt_message_and_next_time() {
        let s: AgentSessionStatus =
            serde_json::from_value::<WireStatus>(json!({"type":"retry","attempt":1,
            "message":"Cannot connect to API","next":1795633631945u64}))
            .unwrap()
            .into();
        match s {
            AgentSessionStatus::Retry {
                attempt,
                message,
                next_at,
            } => {
                assert_eq!(attempt, 1);
                assert_eq!(message, "Cannot connect to API");
                assert_eq!(next_at.unwrap().timestamp_millis(), 1_795_633_631_945);
            }
            other => panic!("expected retry, got {other:?}"),
        }
    }
}
