//! An in-process stand-in for `opencode serve`, programmable per test: queue replies for a route
//! (errors, hangs, bodies), script each event-stream connection frame by frame (events, raw
//! bytes, pauses, a clean close, an abort, holding open), and read back every request received.
//! Unscripted routes answer like OpenCode 1.18.33 would for an empty server.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    Json(u16, Value),
    /// An error status with an OpenCode-shaped error body.
    Status(u16),
    /// Never answers (the client's timeout must fire).
    Hang,
    /// Waits, then answers.
    #[allow(dead_code)] // no test scripts a slow answer today
    After(Duration, Box<Reply>),
}

/// One step of an event-stream connection.
#[derive(Clone, Debug)]
pub enum SseStep {
    /// `data: {json}\n\n`
    Event(Value),
    /// Bytes as they are (for malformed frames).
    Raw(String),
    Pause(Duration),
    /// Ends the response cleanly.
    Close,
    /// Breaks the connection mid-body.
    Abort,
    /// Keeps the connection open, silent, until the client leaves.
    Hold,
}

/// A request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: Option<Value>,
    pub authorization: Option<String>,
    pub at: Instant,
}

type Route = (String, String);

#[derive(Default)]
struct FakeState {
    queued: Mutex<HashMap<Route, VecDeque<Reply>>>,
    always: Mutex<HashMap<Route, Reply>>,
    streams: Mutex<VecDeque<Vec<SseStep>>>,
    requests: Mutex<Vec<Recorded>>,
    sessions: AtomicU32,
}

pub struct FakeOpenCode {
    pub addr: SocketAddr,
    state: Arc<FakeState>,
    server: JoinHandle<()>,
}

impl Drop for FakeOpenCode {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An OpenCode event frame: `{"id", "type", "properties"}`.
pub fn event(id: &str, event_type: &str, properties: Value) -> Value {
    json!({ "id": id, "type": event_type, "properties": properties })
}

/// `session.status` busy for `session`: a cheap distinguishable event.
pub fn busy(id: &str, session: &str) -> SseStep {
    SseStep::Event(event(
        id,
        "session.status",
        json!({ "sessionID": session, "status": { "type": "busy" } }),
    ))
}

pub fn connected(id: &str) -> SseStep {
    SseStep::Event(event(id, "server.connected", json!({})))
}

pub fn heartbeat(id: &str) -> SseStep {
    SseStep::Event(event(id, "server.heartbeat", json!({})))
}

impl FakeOpenCode {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("fake binds");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeState::default());
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            state,
            server,
        }
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).unwrap()
    }

    /// Replies for `method path`, each used once, in order; then the `always` reply or default.
    pub fn reply(&self, method: &str, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.state
            .queued
            .lock()
            .unwrap()
            .entry((method.to_string(), path.to_string()))
            .or_default()
            .extend(replies);
    }

    /// The reply for `method path` once queued ones are used up.
    pub fn always(&self, method: &str, path: &str, reply: Reply) {
        self.state
            .always
            .lock()
            .unwrap()
            .insert((method.to_string(), path.to_string()), reply);
    }

    pub fn clear_always(&self, method: &str, path: &str) {
        self.state
            .always
            .lock()
            .unwrap()
            .remove(&(method.to_string(), path.to_string()));
    }

    /// The script of the next event-stream connection. Unscripted connections send
    /// `server.connected` and hold.
    pub fn stream(&self, steps: Vec<SseStep>) {
        self.state.streams.lock().unwrap().push_back(steps);
    }

    pub fn requests(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .cloned()
            .collect()
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests(method, path).len()
    }
}

async fn handle(State(state): State<Arc<FakeState>>, request: Request) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_owned);
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    state.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
        authorization,
        at: Instant::now(),
    });

    let route = (method.clone(), path.clone());
    let scripted = {
        let queued = state
            .queued
            .lock()
            .unwrap()
            .get_mut(&route)
            .and_then(VecDeque::pop_front);
        queued.or_else(|| state.always.lock().unwrap().get(&route).cloned())
    };
    if let Some(reply) = scripted {
        return render(reply).await;
    }
    if method == "GET" && (path == "/event" || path == "/global/event") {
        let steps = state
            .streams
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| vec![connected("evt_default_connected"), SseStep::Hold]);
        return sse(steps);
    }
    default_reply(&state, &method, &path, query.as_deref(), body.as_ref())
}

fn render(reply: Reply) -> futures_util::future::BoxFuture<'static, Response> {
    Box::pin(async move {
        match reply {
            Reply::Json(status, value) => {
                (StatusCode::from_u16(status).unwrap(), axum::Json(value)).into_response()
            }
            Reply::Status(status) => (
                StatusCode::from_u16(status).unwrap(),
                axum::Json(json!({"name": "UnknownError", "data": {"message": "injected fault"}})),
            )
                .into_response(),
            Reply::Hang => std::future::pending().await,
            Reply::After(delay, reply) => {
                tokio::time::sleep(delay).await;
                render(*reply).await
            }
        }
    })
}

fn sse(steps: Vec<SseStep>) -> Response {
    let stream = futures_util::stream::unfold(steps.into_iter(), |mut steps| async move {
        loop {
            let item: Result<Bytes, std::io::Error> = match steps.next()? {
                SseStep::Event(value) => Ok(Bytes::from(format!("data: {value}\n\n"))),
                SseStep::Raw(raw) => Ok(Bytes::from(raw)),
                SseStep::Pause(delay) => {
                    tokio::time::sleep(delay).await;
                    continue;
                }
                SseStep::Close => return None,
                SseStep::Abort => Err(std::io::Error::other("injected abort")),
                SseStep::Hold => std::future::pending::<Result<Bytes, std::io::Error>>().await,
            };
            return Some((item, steps));
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn directory(query: Option<&str>) -> String {
    query
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "directory")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| "/fake".to_string())
}

fn default_reply(
    state: &FakeState,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ok = |value: Value| axum::Json(value).into_response();
    match (method, segments.as_slice()) {
        ("GET", ["global", "health"]) => ok(json!({"healthy": true, "version": "fake"})),
        ("POST", ["session"]) => {
            let n = state.sessions.fetch_add(1, Ordering::SeqCst) + 1;
            let at = now_ms();
            ok(json!({
                "id": format!("ses_fake{n}"), "slug": "fake", "projectID": "global",
                "directory": directory(query), "path": "", "cost": 0,
                "tokens": {"input": 0, "output": 0, "reasoning": 0, "cache": {"read": 0, "write": 0}},
                "title": body.and_then(|b| b.get("title")).cloned().unwrap_or(json!("New session")),
                "version": "fake",
                "metadata": body.and_then(|b| b.get("metadata")).cloned().unwrap_or(Value::Null),
                "time": {"created": at, "updated": at},
            }))
        }
        ("GET", ["session"]) => ok(json!([])),
        ("GET", ["session", "status"]) => ok(json!({})),
        ("DELETE", ["session", _]) | ("POST", ["session", _, "abort"]) => ok(json!(true)),
        ("POST", ["session", _, "prompt_async"]) => StatusCode::NO_CONTENT.into_response(),
        ("POST", ["session", id, "message"]) => {
            let parent = body
                .and_then(|b| b.get("messageID"))
                .cloned()
                .unwrap_or(Value::Null);
            let at = now_ms();
            ok(json!({
                "info": {"id": "msg_fakereply", "sessionID": id, "role": "assistant",
                    "time": {"created": at, "completed": at}, "parentID": parent,
                    "modelID": "fake-coder", "providerID": "fake", "mode": "build", "agent": "build",
                    "path": {"cwd": "/fake", "root": "/fake"}, "cost": 0.5,
                    "tokens": {"input": 100, "output": 20, "reasoning": 5, "cache": {"read": 7, "write": 3}},
                    "finish": "stop"},
                "parts": [{"id": "prt_fake1", "sessionID": id, "messageID": "msg_fakereply",
                    "type": "text", "text": "done"}],
            }))
        }
        ("GET", ["session", _, "message"]) | ("GET", ["session", _, "diff"]) => ok(json!([])),
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"name": "NotFoundError", "data": {"message": format!("no route {method} {path}")}})),
        )
            .into_response(),
    }
}
