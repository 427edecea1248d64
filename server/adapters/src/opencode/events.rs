//! OpenCode's event stream (`GET /event`, `GET /global/event`): decoding its SSE frames into
//! [`AgentEvent`]s, and keeping the stream alive across drops and silences.
//!
//! Frames are `data: {"id":"evt_…","type":"…","properties":{…}}` with no SSE `id:` line, so a
//! reconnect cannot resume (Last-Event-ID means nothing to the server): whatever happened while
//! the stream was down is lost, and after each reconnect we yield [`AgentEvent::Resynced`] for the
//! consumer to reconcile by polling. The global stream wraps each frame as
//! `{"directory":…,"payload":{…}}`. A frame that is not JSON is logged and skipped; a type we do
//! not know is kept as [`AgentEvent::Unknown`]; neither ends the stream.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::policy::EventStreamPolicy;
use super::wire;
use oio_application::ports::{
    AgentEvent, AgentEventStream, AgentSession, AgentSessionId, AgentSessionStatus, FileDiff,
    Message, MessageError, MessageId, PermissionReply, PermissionRequest, QuestionRequest,
};

/// One decoded frame: the event, with the server's event id (`evt_…`, when it sent one) and type.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedEvent {
    pub id: Option<String>,
    pub event_type: String,
    pub event: AgentEvent,
}

/// Why a frame yielded no event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The connection failed mid-stream: the stream is over.
    #[error("event stream transport failed: {0}")]
    Transport(String),
    /// The bytes are not SSE (or not UTF-8): the stream cannot be trusted further.
    #[error("event stream is not valid SSE: {0}")]
    Sse(String),
    /// One frame's data is not a JSON event; the next may be fine.
    #[error("event frame is not a JSON event: {0}")]
    Malformed(String),
}

impl FrameError {
    /// Whether the connection must be dropped (otherwise: skip the frame and read on).
    pub fn ends_stream(&self) -> bool {
        !matches!(self, FrameError::Malformed(_))
    }
}

/// Decodes one frame's `data`.
pub fn decode_frame(data: &str) -> Result<DecodedEvent, FrameError> {
    let mut frame: Value =
        serde_json::from_str(data).map_err(|e| FrameError::Malformed(e.to_string()))?;
    // The global stream's envelope: the event is its payload.
    if let Some(payload) = frame.get_mut("payload").map(Value::take) {
        frame = payload;
    }
    let Some(event_type) = frame.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return Err(FrameError::Malformed("no \"type\"".to_string()));
    };
    let id = frame.get("id").and_then(Value::as_str).map(str::to_owned);
    let event = match typed(&event_type, &frame) {
        Ok(Some(event)) => event,
        Ok(None) => AgentEvent::Unknown {
            event_type: event_type.clone(),
            raw: frame,
        },
        Err(error) => {
            // A type we know in a shape we do not: keep it whole rather than lose it.
            tracing::warn!(%event_type, %error, "event of a known type in an unexpected shape; kept as unknown");
            AgentEvent::Unknown {
                event_type: event_type.clone(),
                raw: frame,
            }
        }
    };
    Ok(DecodedEvent {
        id,
        event_type,
        event,
    })
}

fn props<T: DeserializeOwned>(frame: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(frame.get("properties").unwrap_or(&Value::Null))
}

fn typed(event_type: &str, frame: &Value) -> Result<Option<AgentEvent>, serde_json::Error> {
    #[derive(Deserialize)]
    struct SessionInfo {
        info: wire::WireSession,
    }
    #[derive(Deserialize)]
    struct SessionOnly {
        #[serde(rename = "sessionID")]
        session_id: String,
    }
    #[derive(Deserialize)]
    struct Status {
        #[serde(rename = "sessionID")]
        session_id: String,
        status: wire::WireStatus,
    }
    #[derive(Deserialize)]
    struct SessionError {
        #[serde(rename = "sessionID", default)]
        session_id: Option<String>,
        #[serde(default)]
        error: Option<wire::WireError>,
    }
    #[derive(Deserialize)]
    struct Diff {
        #[serde(rename = "sessionID")]
        session_id: String,
        #[serde(default)]
        diff: Vec<wire::WireFileDiff>,
    }
    #[derive(Deserialize)]
    struct MessageUpdated {
        #[serde(rename = "sessionID")]
        session_id: String,
        info: wire::WireMessage,
    }
    #[derive(Deserialize)]
    struct PartUpdated {
        #[serde(rename = "sessionID")]
        session_id: String,
        part: Value,
    }
    #[derive(Deserialize)]
    struct PartDelta {
        #[serde(rename = "sessionID")]
        session_id: String,
        #[serde(rename = "messageID")]
        message_id: String,
        #[serde(rename = "partID")]
        part_id: String,
        #[serde(default)]
        field: String,
        #[serde(default)]
        delta: String,
    }
    #[derive(Deserialize)]
    struct Replied {
        #[serde(rename = "sessionID")]
        session_id: String,
        #[serde(rename = "requestID")]
        request_id: String,
    }
    #[derive(Deserialize)]
    struct PermissionReplied {
        #[serde(rename = "sessionID")]
        session_id: String,
        #[serde(rename = "requestID")]
        request_id: String,
        reply: PermissionReply,
    }
    let session = |info: wire::WireSession| AgentSession::from(info);

    Ok(Some(match event_type {
        "server.connected" => AgentEvent::ServerConnected,
        "server.heartbeat" => AgentEvent::Heartbeat,
        "session.created" => AgentEvent::SessionCreated {
            session: session(props::<SessionInfo>(frame)?.info),
        },
        "session.updated" => AgentEvent::SessionUpdated {
            session: session(props::<SessionInfo>(frame)?.info),
        },
        "session.deleted" => AgentEvent::SessionDeleted {
            session: session(props::<SessionInfo>(frame)?.info),
        },
        "session.status" => {
            let p: Status = props(frame)?;
            AgentEvent::SessionStatus {
                session_id: AgentSessionId::new(p.session_id),
                status: AgentSessionStatus::from(p.status),
            }
        }
        "session.idle" => AgentEvent::SessionIdle {
            session_id: AgentSessionId::new(props::<SessionOnly>(frame)?.session_id),
        },
        "session.error" => {
            let p: SessionError = props(frame)?;
            AgentEvent::SessionError {
                session_id: p.session_id.map(AgentSessionId::new),
                error: p.error.map(MessageError::from),
            }
        }
        "session.diff" => {
            let p: Diff = props(frame)?;
            AgentEvent::SessionDiff {
                session_id: AgentSessionId::new(p.session_id),
                files: p.diff.into_iter().map(FileDiff::from).collect(),
            }
        }
        "message.updated" => {
            let p: MessageUpdated = props(frame)?;
            AgentEvent::MessageUpdated {
                session_id: AgentSessionId::new(p.session_id),
                message: Message::from(p.info),
            }
        }
        "message.part.updated" => {
            let p: PartUpdated = props(frame)?;
            AgentEvent::MessagePartUpdated {
                session_id: AgentSessionId::new(p.session_id),
                part: wire::part(p.part)?,
            }
        }
        "message.part.delta" => {
            let p: PartDelta = props(frame)?;
            AgentEvent::MessagePartDelta {
                session_id: AgentSessionId::new(p.session_id),
                message_id: MessageId::from_server(p.message_id),
                part_id: p.part_id,
                field: p.field,
                delta: p.delta,
            }
        }
        "permission.asked" => {
            AgentEvent::PermissionAsked(PermissionRequest::from(
                props::<wire::WirePermissionAsked>(frame)?,
            ))
        }
        "permission.replied" => {
            let p: PermissionReplied = props(frame)?;
            AgentEvent::PermissionReplied {
                session_id: AgentSessionId::new(p.session_id),
                request_id: p.request_id,
                reply: p.reply,
            }
        }
        "question.asked" => AgentEvent::QuestionAsked(QuestionRequest::from(props::<
            wire::WireQuestionAsked,
        >(frame)?)),
        "question.replied" => {
            let p: Replied = props(frame)?;
            AgentEvent::QuestionReplied {
                session_id: AgentSessionId::new(p.session_id),
                request_id: p.request_id,
            }
        }
        "question.rejected" => {
            let p: Replied = props(frame)?;
            AgentEvent::QuestionRejected {
                session_id: AgentSessionId::new(p.session_id),
                request_id: p.request_id,
            }
        }
        _ => return Ok(None),
    }))
}

/// Decodes an SSE byte stream (as `reqwest::Response::bytes_stream` yields it) into events: the
/// same pipeline the client runs, exposed for benchmarks and tests.
pub fn decode_events<S, B, E>(bytes: S) -> impl Stream<Item = Result<DecodedEvent, FrameError>>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: fmt::Display,
{
    bytes.eventsource().map(|frame| match frame {
        Ok(frame) => decode_frame(&frame.data),
        Err(eventsource_stream::EventStreamError::Transport(e)) => {
            Err(FrameError::Transport(e.to_string()))
        }
        Err(e @ eventsource_stream::EventStreamError::Utf8(_))
        | Err(e @ eventsource_stream::EventStreamError::Parser(_)) => {
            Err(FrameError::Sse(e.to_string()))
        }
    })
}

/// A connection's frames, as [`resilient`] consumes them.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<DecodedEvent, FrameError>> + Send>>;

/// Recently seen event ids: a frame repeated by the server (its id and type both seen lately) is
/// not yielded twice. Bounded, oldest forgotten first.
struct RecentEvents {
    order: VecDeque<String>,
    seen: HashSet<String>,
    capacity: usize,
}

impl RecentEvents {
    fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::with_capacity(capacity),
            seen: HashSet::with_capacity(capacity),
            capacity,
        }
    }

    /// Records the key; `false` if it was already there.
    fn insert(&mut self, key: String) -> bool {
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(key.clone());
        self.seen.insert(key);
        true
    }
}

struct Follower<C> {
    connect: C,
    server: String,
    scope: String,
    policy: EventStreamPolicy,
    conn: Option<FrameStream>,
    /// Whether the current connection has delivered anything (then the backoff starts over).
    delivered: bool,
    connected_before: bool,
    /// Delay before the next connection attempt; `None` for the very first.
    backoff: Option<backon::ExponentialBackoff>,
    pending: VecDeque<AgentEvent>,
    recent: RecentEvents,
}

impl<C, F> Follower<C>
where
    C: FnMut() -> F + Send + 'static,
    F: Future<Output = Result<FrameStream, String>> + Send + 'static,
{
    fn backoff(&self) -> backon::ExponentialBackoff {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.policy.reconnect_min_delay)
            .with_max_delay(self.policy.reconnect_max_delay)
            .without_max_times()
            .with_jitter()
            .build()
    }

    fn lose(&mut self, reason: String) {
        tracing::warn!(server = %self.server, scope = %self.scope, %reason, "event stream lost; reconnecting");
        self.conn = None;
        self.pending.push_back(AgentEvent::Disconnected { reason });
    }

    async fn next_event(&mut self) -> AgentEvent {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return event;
            }
            let Some(conn) = self.conn.as_mut() else {
                self.reconnect().await;
                continue;
            };
            let limit = self.policy.silence_limit();
            match tokio::time::timeout(limit, conn.next()).await {
                Err(_) => self.lose(format!("no event or heartbeat for {limit:?}")),
                Ok(None) => self.lose("the server closed the stream".to_string()),
                Ok(Some(Err(error))) if error.ends_stream() => self.lose(error.to_string()),
                Ok(Some(Err(error))) => {
                    tracing::warn!(server = %self.server, scope = %self.scope, %error, "event stream: skipped a malformed frame");
                }
                Ok(Some(Ok(decoded))) => {
                    if !self.delivered {
                        self.delivered = true;
                        self.backoff = Some(self.backoff());
                    }
                    if let Some(id) = &decoded.id {
                        // The global stream repeats an event's id on its `sync` twin: key by both.
                        if !self.recent.insert(format!("{}|{id}", decoded.event_type)) {
                            tracing::debug!(server = %self.server, event_id = %id, "event stream: duplicate event skipped");
                            continue;
                        }
                    }
                    if let AgentEvent::Unknown { event_type, .. } = &decoded.event {
                        tracing::debug!(server = %self.server, %event_type, "event stream: event of an untyped kind kept as unknown");
                    }
                    return decoded.event;
                }
            }
        }
    }

    async fn reconnect(&mut self) {
        if let Some(backoff) = self.backoff.as_mut() {
            let delay = backoff.next().unwrap_or(self.policy.reconnect_max_delay);
            tracing::info!(server = %self.server, scope = %self.scope, ?delay, "event stream: reconnecting after a delay");
            tokio::time::sleep(delay).await;
        } else {
            self.backoff = Some(self.backoff());
        }
        match (self.connect)().await {
            Ok(conn) => {
                tracing::info!(server = %self.server, scope = %self.scope, resync = self.connected_before, "event stream connected");
                self.conn = Some(conn);
                self.delivered = false;
                if self.connected_before {
                    self.pending.push_back(AgentEvent::Resynced);
                }
                self.connected_before = true;
            }
            Err(reason) => {
                tracing::warn!(server = %self.server, scope = %self.scope, %reason, "event stream: connection attempt failed");
            }
        }
    }
}

/// Follows a server's events for as long as the stream is polled: connects with `connect`,
/// reconnects with backoff when the connection ends, fails, or stays silent past the heartbeat
/// deadline, and marks each loss ([`AgentEvent::Disconnected`]) and recovery
/// ([`AgentEvent::Resynced`]).
pub fn resilient<C, F>(
    server: String,
    scope: String,
    policy: EventStreamPolicy,
    connect: C,
) -> AgentEventStream
where
    C: FnMut() -> F + Send + 'static,
    F: Future<Output = Result<FrameStream, String>> + Send + 'static,
{
    let follower = Follower {
        connect,
        server,
        scope,
        policy,
        conn: None,
        delivered: false,
        connected_before: false,
        backoff: None,
        pending: VecDeque::new(),
        recent: RecentEvents::new(4096),
    };
    Box::pin(futures_util::stream::unfold(
        follower,
        |mut follower| async move {
            let event = follower.next_event().await;
            Some((event, follower))
        },
    ))
}

/// What [`measure_decode`] found.
#[derive(Clone, Copy, Debug)]
pub struct DecodeFigures {
    pub events: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl DecodeFigures {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1_000_000.0 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// A realistic event stream of `frames` frames, shaped like OpenCode 1.18.33's during a turn:
/// mostly text deltas and part updates, with status changes, message updates and heartbeats.
pub fn sample_stream(frames: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(frames * 300);
    for i in 0..frames {
        let frame = match i % 10 {
            0 => serde_json::json!({"id": format!("evt_{i:012}"), "type": "session.status",
                "properties": {"sessionID": "ses_bench", "status": {"type": "busy"}}}),
            1 => serde_json::json!({"id": format!("evt_{i:012}"), "type": "message.updated",
                "properties": {"sessionID": "ses_bench", "info": {"id": "msg_2", "sessionID": "ses_bench",
                "role": "assistant", "time": {"created": 1_795_633_629_019u64}, "parentID": "msg_1",
                "modelID": "fake-coder", "providerID": "fake", "mode": "build", "agent": "build",
                "path": {"cwd": "/w", "root": "/w"}, "cost": 0.01,
                "tokens": {"input": 1200, "output": 80, "reasoning": 0, "cache": {"read": 0, "write": 0}}}}}),
            2 | 3 => {
                serde_json::json!({"id": format!("evt_{i:012}"), "type": "message.part.updated",
                "properties": {"sessionID": "ses_bench", "time": 1_795_633_629_019u64, "part": {"id": "prt_1",
                "sessionID": "ses_bench", "messageID": "msg_2", "type": "text",
                "text": "Adding the health endpoint to the router and a test for it."}}})
            }
            9 => {
                serde_json::json!({"id": format!("evt_{i:012}"), "type": "server.heartbeat", "properties": {}})
            }
            _ => serde_json::json!({"id": format!("evt_{i:012}"), "type": "message.part.delta",
                "properties": {"sessionID": "ses_bench", "messageID": "msg_2", "partID": "prt_1",
                "field": "text", "delta": " the next few words"}}),
        };
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(frame.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    out
}

/// Decode throughput: `sample_stream(frames)` cut into `chunk_size`-byte chunks (as the network
/// delivers it) and run through [`decode_events`]. For `server bench opencode-sse`.
pub async fn measure_decode(frames: usize, chunk_size: usize) -> DecodeFigures {
    let bytes = sample_stream(frames);
    let total = bytes.len() as u64;
    let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> = bytes
        .chunks(chunk_size.max(1))
        .map(|c| Ok(c.to_vec()))
        .collect();
    let started = Instant::now();
    let events = decode_events(futures_util::stream::iter(chunks))
        .filter(|e| std::future::ready(e.is_ok()))
        .count()
        .await as u64;
    DecodeFigures {
        events,
        bytes: total,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oio_application::ports::PartContent;
    use serde_json::json;

    fn decode(frame: Value) -> AgentEvent {
        decode_frame(&frame.to_string()).expect("decodes").event
    }

    #[test]
    fn connected_and_heartbeat_frames() {
        assert_eq!(
            decode(json!({"id":"evt_1","type":"server.connected","properties":{}})),
            AgentEvent::ServerConnected
        );
        assert_eq!(
            decode(json!({"id":"evt_2","type":"server.heartbeat","properties":{}})),
            AgentEvent::Heartbeat
        );
    }

    #[test]
    fn session_status_frames_as_opencode_sends_them() {
        let event = decode(
            json!({"id":"evt_2141ac757001jM2pIoZIw5breW","type":"session.status",
            "properties":{"sessionID":"ses_debe54662ffeQ87I6buEqArCBa","status":{"type":"busy"}}}),
        );
        assert_eq!(
            event,
            AgentEvent::SessionStatus {
                session_id: AgentSessionId::new("ses_debe54662ffeQ87I6buEqArCBa"),
                status: AgentSessionStatus::Busy
            }
        );
    }

    #[test]
    fn message_updated_and_part_updated_frames() {
        let event = decode(
            json!({"id":"evt_3","type":"message.updated","properties":{"sessionID":"ses_1",
            "info":{"id":"msg_2","parentID":"msg_1","role":"assistant","mode":"build","agent":"build",
            "path":{"cwd":"/w","root":"/w"},"cost":0,"tokens":{"input":3,"output":4,"reasoning":0,
            "cache":{"read":0,"write":0}},"modelID":"m","providerID":"p","time":{"created":1},"sessionID":"ses_1"}}}),
        );
        match event {
            AgentEvent::MessageUpdated {
                session_id,
                message,
            } => {
                assert_eq!(session_id.as_str(), "ses_1");
                let a = message.as_assistant().expect("assistant");
                assert_eq!(a.tokens.input, 3);
                assert_eq!(a.tokens.output, 4);
            }
            other => panic!("unexpected {other:?}"),
        }
        let event = decode(
            json!({"id":"evt_4","type":"message.part.updated","properties":{"sessionID":"ses_1",
            "part":{"type":"text","text":"hi","messageID":"msg_1","sessionID":"ses_1","id":"prt_1"},"time":1}}),
        );
        match event {
            AgentEvent::MessagePartUpdated { part, .. } => {
                assert_eq!(part.content, PartContent::Text { text: "hi".into() })
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn permission_and_question_requests() {
        let event = decode(
            json!({"id":"evt_5","type":"permission.asked","properties":{"id":"per_1","sessionID":"ses_1",
            "permission":"bash","patterns":["rm -rf build"],"metadata":{},"always":["rm *"],
            "tool":{"messageID":"msg_2","callID":"call_1"}}}),
        );
        match event {
            AgentEvent::PermissionAsked(p) => {
                assert_eq!(p.id, "per_1");
                assert_eq!(p.permission, "bash");
                assert_eq!(p.tool.unwrap().call_id, "call_1");
            }
            other => panic!("unexpected {other:?}"),
        }
        let event = decode(
            json!({"id":"evt_6","type":"question.asked","properties":{"id":"que_1","sessionID":"ses_1",
            "questions":[{"question":"Which database?","header":"DB","options":[
                {"label":"SQLite","description":"embedded"},{"label":"PostgreSQL","description":"server"}]}]}}),
        );
        match event {
            AgentEvent::QuestionAsked(q) => {
                assert_eq!(q.id, "que_1");
                assert_eq!(q.questions[0].options[1].label, "PostgreSQL");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn session_error_with_a_classified_error() {
        let event = decode(
            json!({"id":"evt_7","type":"session.error","properties":{"sessionID":"ses_1",
            "error":{"name":"ContextOverflowError","data":{"message":"too long"}}}}),
        );
        match event {
            AgentEvent::SessionError { session_id, error } => {
                assert_eq!(session_id.unwrap().as_str(), "ses_1");
                assert_eq!(
                    error.unwrap().kind,
                    oio_application::ports::MessageErrorKind::ContextOverflow
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn global_frames_are_unwrapped() {
        let decoded = decode_frame(
            &json!({"directory":"/w","project":"global","payload":{"id":"evt_8","type":"session.idle",
            "properties":{"sessionID":"ses_1"}}})
            .to_string(),
        )
        .unwrap();
        assert_eq!(decoded.id.as_deref(), Some("evt_8"));
        assert_eq!(
            decoded.event,
            AgentEvent::SessionIdle {
                session_id: AgentSessionId::new("ses_1")
            }
        );
    }

    #[test]
    fn unknown_types_and_known_types_in_odd_shapes_are_kept_whole() {
        let raw = json!({"id":"evt_9","type":"plugin.added","properties":{"id":"agent"}});
        assert_eq!(
            decode(raw.clone()),
            AgentEvent::Unknown {
                event_type: "plugin.added".into(),
                raw
            }
        );
        let odd = json!({"id":"evt_10","type":"session.status","properties":{"status":"weird"}});
        assert!(
            matches!(decode(odd), AgentEvent::Unknown { event_type, .. } if event_type == "session.status")
        );
    }

    #[test]
    fn frames_that_are_not_json_events_are_malformed_not_fatal() {
        let error = decode_frame("{not json").unwrap_err();
        assert!(matches!(error, FrameError::Malformed(_)));
        assert!(!error.ends_stream());
        assert!(matches!(
            decode_frame(r#"{"properties":{}}"#),
            Err(FrameError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn the_byte_pipeline_splits_frames_across_chunks() {
        let bytes = sample_stream(50);
        let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> =
            bytes.chunks(7).map(|c| Ok(c.to_vec())).collect();
        let events: Vec<_> = decode_events(futures_util::stream::iter(chunks))
            .collect()
            .await;
        assert_eq!(events.len(), 50);
        assert!(events.iter().all(Result::is_ok));
        let figures = measure_decode(200, 1024).await;
        assert_eq!(figures.events, 200);
    }

    #[test]
    fn recent_events_forget_the_oldest_beyond_capacity() {
        let mut recent = RecentEvents::new(2);
        assert!(recent.insert("a".into()));
        assert!(!recent.insert("a".into()));
        assert!(recent.insert("b".into()));
        assert!(recent.insert("c".into()));
        assert!(recent.insert("a".into()), "a was forgotten");
    }

    /// `cargo test -p server --lib sse_decode_throughput -- --ignored --nocapture`
    #[tokio::test]
    #[ignore = "prints a figure; run on demand"]
    async fn sse_decode_throughput() {
        let figures = measure_decode(200_000, 16 * 1024).await;
        println!(
            "SSE decode: {} events, {:.1} MB in {:?}: {:.0} events/s, {:.1} MB/s",
            figures.events,
            figures.bytes as f64 / 1e6,
            figures.elapsed,
            figures.events_per_second(),
            figures.megabytes_per_second()
        );
    }
}
