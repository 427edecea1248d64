//! A scripted, OpenAI-compatible fake LLM server: owns the script queue, the record of every
//! request, and the axum server on `127.0.0.1:0` that answers `POST /v1/chat/completions` (streamed
//! or not) and `GET /v1/models`.
//!
//! OpenCode sends two kinds of completion requests. Title generation (and other helper calls) offer
//! no `tools`: they get a canned short title and leave the script alone, so a test scripts only the
//! agent's turns. A request that offers tools takes the next scripted [`Reply`]; with the script
//! empty it gets a plain `"done"` text that ends the turn, so a forgotten reply cannot hang a test.

mod reply;
mod wire;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

pub use reply::{Reply, ReplyKind, ToolCall, Usage};

/// The provider id the OpenCode harness configures for the fake (`fake/fake-coder`).
pub const PROVIDER_ID: &str = "fake";
/// The only model the fake lists.
pub const MODEL_ID: &str = "fake-coder";
/// What title-generation requests get.
pub const TITLE: &str = "Fake session title";
/// What an agent request gets once the script is empty.
pub const DEFAULT_TEXT: &str = "done";

/// One `POST /v1/chat/completions` the fake received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Position in arrival order, from 0.
    pub seq: usize,
    /// The JSON body as sent (`Value::Null` when it was not JSON).
    pub body: Value,
    /// A request without tools: answered with [`TITLE`], script untouched.
    pub is_title: bool,
    /// The scripted (or responder's) reply it got; `None` for titles and the default `"done"`.
    pub reply: Option<Reply>,
}

impl RecordedRequest {
    /// The `messages` array of the request (empty if absent).
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The `role: "tool"` messages: the tool results OpenCode sends back to the model.
    pub fn tool_results(&self) -> Vec<&Value> {
        self.messages()
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
            .collect()
    }

    /// The names of the tools offered (`tools[].function.name`).
    pub fn tool_names(&self) -> Vec<&str> {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the client asked for a stream (`stream: true`).
    pub fn is_streaming(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }
}

/// Answers an agent request from its JSON body when the script is empty; `None` falls back to
/// [`DEFAULT_TEXT`]. Lets concurrent sessions each get the reply meant for them.
pub type Responder = Arc<dyn Fn(&Value) -> Option<Reply> + Send + Sync>;

/// Shared between the handle and the server's handlers.
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    responder: Mutex<Option<Responder>>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Bumped on each recorded request, so waiters wake without polling.
    request_count: watch::Sender<usize>,
    /// Flipped to `true` when the handle drops: ends hanging and slow streams.
    shutdown: watch::Receiver<bool>,
    /// Streamed answers still being written (a hang stays here until its client leaves).
    open_streams: AtomicUsize,
}

/// Counts one open stream for as long as it lives.
struct OpenStream(Arc<Shared>);

impl OpenStream {
    fn new(shared: Arc<Shared>) -> Self {
        shared.open_streams.fetch_add(1, Ordering::SeqCst);
        OpenStream(shared)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Locks ignoring poisoning: a panicking test thread must not hide the record from the others.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running fake LLM. Dropping it stops the server and ends any stream still open.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl FakeLlm {
    /// Starts the server on `127.0.0.1:0` with this script.
    pub async fn start(script: impl IntoIterator<Item = Reply>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fake LLM on 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into_iter().collect()),
            responder: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            request_count: watch::channel(0).0,
            shutdown: shutdown_rx.clone(),
            open_streams: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/models", get(models))
            .fallback(unknown)
            .with_state(shared.clone());
        let mut stop = shutdown_rx;
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "fake LLM server stopped with an error");
            }
        });
        tracing::debug!(%addr, "fake LLM listening");
        Ok(FakeLlm {
            addr,
            shared,
            shutdown,
            server,
        })
    }

    /// `http://127.0.0.1:PORT/v1`: the `baseURL` an OpenAI-compatible client wants.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends a reply to the end of the script.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.script).push_back(reply);
    }

    /// Answers agent requests through `responder` whenever the script is empty (replacing any
    /// earlier one). For work where several sessions talk to the fake at once: the reply can
    /// depend on the conversation (say, on a marker in the prompt) instead of arrival order.
    pub fn set_responder(
        &self,
        responder: impl Fn(&Value) -> Option<Reply> + Send + Sync + 'static,
    ) {
        *lock(&self.shared.responder) = Some(Arc::new(responder));
    }

    /// How many scripted replies are not consumed yet.
    pub fn remaining(&self) -> usize {
        lock(&self.shared.script).len()
    }

    /// How many streamed answers are still open. After an abort it drops back to 0 once the
    /// client has really closed its request to the model.
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::SeqCst)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The requests that offered tools (the agent's turns), in arrival order.
    pub fn agent_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| !r.is_title)
            .collect()
    }

    /// Waits until at least `count` agent requests (those with tools) arrived, then returns them
    /// all; fails after `timeout`. Useful before aborting a [`Reply::hang`].
    pub async fn wait_for_agent_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<RecordedRequest>> {
        let mut seen = self.shared.request_count.subscribe();
        let wait = async {
            loop {
                let agent = self.agent_requests();
                if agent.len() >= count {
                    return agent;
                }
                // The sender lives in `self.shared`, so `changed` cannot fail while we borrow it.
                let _ = seen.changed().await;
            }
        };
        tokio::time::timeout(timeout, wait).await.with_context(|| {
            format!(
                "waited {timeout:?} for {count} agent request(s) at the fake LLM; got {}",
                self.agent_requests().len()
            )
        })
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        // Graceful shutdown would wait for OpenCode's idle keep-alive connections; close the
        // listener now instead. Connections still open end with their streams (see `shutdown`).
        self.server.abort();
    }
}

impl std::fmt::Debug for FakeLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLlm")
            .field("addr", &self.addr)
            .field("remaining", &self.remaining())
            .field("requests", &lock(&self.shared.requests).len())
            .finish()
    }
}

/// True when the request offers no tools: OpenCode's title generation (and similar helper calls).
fn is_title_request(body: &Value) -> bool {
    body.get("tools")
        .and_then(Value::as_array)
        .is_none_or(|tools| tools.is_empty())
}

async fn chat_completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let is_title = is_title_request(&body);
    // Take the reply and record the request under one lock order so `seq` matches consumption.
    let (scripted, seq) = {
        let scripted = if is_title {
            None
        } else {
            let next = lock(&shared.script).pop_front();
            next.or_else(|| {
                let responder = lock(&shared.responder).clone();
                responder.and_then(|respond| respond(&body))
            })
        };
        let mut requests = lock(&shared.requests);
        let seq = requests.len();
        requests.push(RecordedRequest {
            seq,
            body: body.clone(),
            is_title,
            reply: scripted.clone(),
        });
        (scripted, seq)
    };
    shared.request_count.send_modify(|count| *count += 1);

    let reply = match (&scripted, is_title) {
        (Some(reply), _) => reply.clone(),
        (None, true) => Reply::text(TITLE),
        (None, false) => Reply::text(DEFAULT_TEXT),
    };
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    tracing::debug!(seq, is_title, stream, kind = ?reply.kind, "fake LLM request");
    if body.is_null() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "fake LLM: body is not JSON", "type": "invalid_request_error"}})),
        )
            .into_response();
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(MODEL_ID);
    let completion = wire::Completion::new(model);

    if let ReplyKind::Status { code, retry_after } = reply.kind {
        sleep_unless_shutdown(&shared, reply.first_chunk_delay).await;
        return error_response(code, retry_after);
    }
    if !stream {
        sleep_unless_shutdown(&shared, reply.first_chunk_delay).await;
        return match completion.completion(&reply) {
            Some(object) => Json(object).into_response(),
            None => {
                // A hang without streaming: hold the request until the fake stops.
                let mut stop = shared.shutdown.clone();
                let _ = stop.wait_for(|stopped| *stopped).await;
                StatusCode::SERVICE_UNAVAILABLE.into_response()
            }
        };
    }

    let frames = completion.stream_frames(&reply);
    let hang = matches!(reply.kind, ReplyKind::Hang);
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    let mut stop = shared.shutdown.clone();
    let (first_delay, chunk_delay) = (reply.first_chunk_delay, reply.chunk_delay);
    let open = OpenStream::new(shared.clone());
    tokio::spawn(async move {
        let _open = open;
        let feed = async {
            for (index, frame) in frames.into_iter().enumerate() {
                let delay = if index == 0 { first_delay } else { chunk_delay };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                    return;
                }
            }
            if hang {
                std::future::pending::<()>().await;
            }
        };
        // Whichever comes first: the script is done, the client left (OpenCode aborted), or the
        // fake is dropping. Dropping `tx` then ends the HTTP body.
        tokio::select! {
            () = feed => {}
            () = tx.closed() => tracing::debug!(seq, "fake LLM client went away mid-stream"),
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    });
    let mut response = Body::from_stream(ReceiverStream::new(rx)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn sleep_unless_shutdown(shared: &Shared, delay: Duration) {
    if delay.is_zero() {
        return;
    }
    let mut stop = shared.shutdown.clone();
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
}

fn error_response(code: u16, retry_after: Option<Duration>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(wire::error_body(code))).into_response();
    if let Some(after) = retry_after {
        let headers = response.headers_mut();
        // Seconds for `retry-after` (HTTP allows no fraction), exact milliseconds alongside, which
        // OpenAI also sends and OpenCode's retry logic prefers.
        let seconds = after.as_millis().div_ceil(1000);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds as u64));
        headers.insert(
            "retry-after-ms",
            HeaderValue::from(after.as_millis() as u64),
        );
    }
    response
}

async fn models() -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "testkit"}],
    }))
}

/// Anything else is logged, so a test can see an endpoint OpenCode uses that the fake lacks.
async fn unknown(method: Method, uri: Uri) -> Response {
    tracing::warn!(%method, %uri, "fake LLM: unknown endpoint");
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": {"message": format!("fake LLM has no {method} {uri}"), "type": "invalid_request_error"}})),
    )
        .into_response()
}
