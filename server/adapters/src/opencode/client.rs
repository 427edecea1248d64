//! [`OpenCodeClient`]: the [`AgentServer`] port over one `opencode serve` process's HTTP API.
//!
//! Every call runs the same gauntlet, in this order: the client-side rate limit (wait), the
//! circuit breaker (refuse fast while open), the request under its timeout, then classification
//! of the answer, which feeds the breaker. Calls safe to repeat (reads, delete, abort) are retried
//! with exponential backoff and jitter on transient failures; any call is retried when the
//! connection could not even be made (nothing was sent); a prompt that may have reached the
//! server is never re-sent here — it carries our message id, so the orchestrator can look for it
//! in `messages()` before deciding to send it again.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::Retryable;
use governor::clock::{Clock, MonotonicClock};
use governor::{Quota, RateLimiter};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use super::breaker::{BreakerState, CircuitBreaker};
use super::events::{self, FrameStream};
use super::policy::ResiliencePolicy;
use super::wire;
use crate::opencode::settings::OpenCodeServerSettings;
use crate::redact_url;
use oio_application::ports::{
    AgentEventStream, AgentServer, AgentServerError, AgentSession, AgentSessionId,
    AgentSessionStatus, AssistantReply, CreateSession, EventScope, FileDiff, MessageRecord,
    PermissionReply, PromptRequest, ServerHealth, SessionAddress,
};

/// OpenCode's basic-auth user name (the password is `OPENCODE_SERVER_PASSWORD`).
const USER: &str = "opencode";
/// How much of an error body an error keeps.
const BODY_LIMIT: usize = 2048;

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    MonotonicClock,
    governor::middleware::NoOpMiddleware<<MonotonicClock as Clock>::Instant>,
>;

/// Whether a call may be sent again after a failure that is not plainly "never sent".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    /// Repeating it changes nothing: reads, delete, abort.
    Safe,
    /// It may have taken effect: only re-sent when the connection was never made.
    OnlyIfUnsent,
}

struct Call<'a> {
    op: &'static str,
    method: Method,
    url: Url,
    /// Serialised once, re-sent as it is on retry.
    body: Option<Vec<u8>>,
    timeout: Duration,
    repeat: Repeat,
    /// The session the call is about (empty if none), for logs.
    session: &'a str,
}

/// Where the client sends its calls: fixed for an attached server, swapped by the supervisor
/// when it restarts a server it owns (see [`OpenCodeClient::retarget`]).
struct Target {
    base: Url,
    password: Option<SecretString>,
}

struct Inner {
    target: std::sync::RwLock<Target>,
    /// The base URL with any password redacted (or a supervised server's stable name): what logs
    /// and errors show.
    name: String,
    /// Set while a supervised server waits to be recycled: it takes no new sessions.
    draining: std::sync::atomic::AtomicBool,
    http: reqwest::Client,
    policy: ResiliencePolicy,
    breaker: CircuitBreaker,
    limiter: Option<Limiter>,
}

/// A client of one OpenCode server. Cheap to clone; clones share the breaker and the rate limit.
#[derive(Clone)]
pub struct OpenCodeClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for OpenCodeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenCodeClient")
            .field("server", &self.inner.name)
            .field("authenticated", &self.target().password.is_some())
            .finish_non_exhaustive()
    }
}

impl OpenCodeClient {
    pub fn new(
        base: Url,
        password: Option<SecretString>,
        policy: ResiliencePolicy,
    ) -> Result<Self, AgentServerError> {
        let name = redact_url(base.as_str());
        Self::named(name, base, password, policy)
    }

    /// A client under a name of its own rather than its URL: a supervised server keeps its name
    /// (and so its sessions' routing) across restarts on new ports.
    pub fn named(
        name: String,
        base: Url,
        password: Option<SecretString>,
        policy: ResiliencePolicy,
    ) -> Result<Self, AgentServerError> {
        let http = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .build()
            .map_err(|e| AgentServerError::Unavailable {
                server: name.clone(),
                reason: format!("HTTP client could not be built: {}", describe(e)),
                request_sent: false,
            })?;
        let limiter = policy.rate_limit.map(|limit| {
            RateLimiter::direct_with_clock(
                Quota::per_second(limit.per_second).allow_burst(limit.burst),
                MonotonicClock,
            )
        });
        Ok(Self {
            inner: Arc::new(Inner {
                breaker: CircuitBreaker::new(name.clone(), policy.breaker.clone()),
                target: std::sync::RwLock::new(Target { base, password }),
                name,
                draining: std::sync::atomic::AtomicBool::new(false),
                http,
                policy,
                limiter,
            }),
        })
    }

    pub fn from_settings(
        settings: &OpenCodeServerSettings,
        policy: ResiliencePolicy,
    ) -> Result<Self, AgentServerError> {
        Self::new(settings.url.clone(), settings.password.clone(), policy)
    }

    fn target(&self) -> std::sync::RwLockReadGuard<'_, Target> {
        // Plain data always left whole: a panic elsewhere cannot corrupt it.
        self.inner.target.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Points the client at a new process of the same server (a supervised restart): later
    /// calls and event-stream reconnects go there, and the breaker starts afresh, since the
    /// failures it counted were the old process's.
    pub fn retarget(&self, base: Url, password: Option<SecretString>) {
        *self.inner.target.write().unwrap_or_else(|e| e.into_inner()) = Target { base, password };
        self.inner.breaker.reset();
    }

    /// Where calls go now (no credentials in it).
    pub fn base_url(&self) -> Url {
        self.target().base.clone()
    }

    /// Whether the server takes no new sessions for now (a supervised server about to be
    /// recycled); sessions already on it go on.
    pub fn is_draining(&self) -> bool {
        self.inner
            .draining
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn set_draining(&self, draining: bool) {
        self.inner
            .draining
            .store(draining, std::sync::atomic::Ordering::Release);
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    #[cfg(test)]
    pub(crate) fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }

    pub fn policy(&self) -> &ResiliencePolicy {
        &self.inner.policy
    }

    /// `base` + path segments (escaped) + `?directory=` when given.
    fn url(&self, segments: &[&str], directory: Option<&str>) -> Url {
        let mut url = self.target().base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if let Some(directory) = directory {
            url.query_pairs_mut().append_pair("directory", directory);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.inner.http.request(method, url);
        match &self.target().password {
            // reqwest marks the header sensitive, so it is never logged by the HTTP stack either.
            Some(password) => request.basic_auth(USER, Some(password.expose_secret())),
            None => request,
        }
    }

    /// Waits for the client-side rate limit.
    async fn pace(&self, call: &Call<'_>) {
        let Some(limiter) = &self.inner.limiter else {
            return;
        };
        while let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(MonotonicClock.now());
            tracing::debug!(
                server = %self.inner.name,
                session = call.session,
                op = call.op,
                ?wait,
                "rate limit: waiting before the call"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One try: rate limit, breaker, request, classification.
    async fn attempt(&self, call: &Call<'_>) -> Result<Vec<u8>, AgentServerError> {
        self.pace(call).await;
        let permit = self
            .inner
            .breaker
            .acquire(call.session)
            .map_err(|retry_in| {
                tracing::debug!(
                    server = %self.inner.name,
                    session = call.session,
                    op = call.op,
                    ?retry_in,
                    "circuit open: call refused without trying"
                );
                AgentServerError::CircuitOpen {
                    server: self.inner.name.clone(),
                    retry_in,
                }
            })?;
        let mut request = self
            .request(call.method.clone(), call.url.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let exchange = async {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        };
        let result = match tokio::time::timeout(call.timeout, exchange).await {
            Err(_) => {
                tracing::warn!(
                    server = %self.inner.name,
                    session = call.session,
                    op = call.op,
                    timeout = ?call.timeout,
                    "call timed out"
                );
                Err(AgentServerError::Timeout {
                    server: self.inner.name.clone(),
                    after: call.timeout,
                })
            }
            Ok(Err(error)) => Err(self.transport_error(error)),
            Ok(Ok((status, headers, body))) => self
                .classify(status, &headers, &body)
                .map(|()| body.to_vec()),
        };
        match &result {
            Err(error) if error.is_server_fault() => permit.failure(),
            _ => permit.success(),
        }
        result
    }

    fn transport_error(&self, error: reqwest::Error) -> AgentServerError {
        let request_sent = !error.is_connect();
        if error.is_timeout() && request_sent {
            return AgentServerError::Timeout {
                server: self.inner.name.clone(),
                after: self.inner.policy.request_timeout,
            };
        }
        AgentServerError::Unavailable {
            server: self.inner.name.clone(),
            reason: describe(error),
            request_sent,
        }
    }

    fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), AgentServerError> {
        if status.is_success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(BODY_LIMIT)]).into_owned();
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => AgentServerError::Unauthorized {
                server: self.inner.name.clone(),
            },
            StatusCode::NOT_FOUND => AgentServerError::NotFound(error_message(&text)),
            StatusCode::TOO_MANY_REQUESTS => AgentServerError::RateLimited {
                server: self.inner.name.clone(),
                retry_after: headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
            },
            _ => AgentServerError::Http {
                status: status.as_u16(),
                body: text,
            },
        })
    }

    /// A call with its retry rules applied; the raw body of a successful answer.
    async fn execute(&self, call: Call<'_>) -> Result<Vec<u8>, AgentServerError> {
        let started = std::time::Instant::now();
        let name = &self.inner.name;
        let session = call.session;
        let mut retries = 0usize;
        let result = (|| self.attempt(&call))
            .retry(self.inner.policy.retry.backoff())
            .when(|error| match error {
                // Checked first: this failure may just have opened the breaker, and a retry would
                // only be refused, hiding the real error behind `CircuitOpen`.
                _ if self.inner.breaker.state() == BreakerState::Open => {
                    tracing::info!(
                        server = %name,
                        session,
                        op = call.op,
                        %error,
                        "not retrying: the circuit breaker is open"
                    );
                    false
                }
                AgentServerError::Unavailable {
                    request_sent: false,
                    ..
                } => true,
                _ if !error.is_transient() => false,
                _ if call.repeat == Repeat::Safe => true,
                _ => {
                    tracing::info!(
                        server = %name,
                        session,
                        op = call.op,
                        %error,
                        "not retrying: the call may have reached the server and is not safe to repeat"
                    );
                    false
                }
            })
            .adjust(|error, delay| match error {
                // The server's own pacing wins over our backoff, never shortening it.
                AgentServerError::RateLimited {
                    retry_after: Some(after),
                    ..
                } => delay.map(|d| d.max(*after)),
                _ => delay,
            })
            .notify(|error, delay| {
                retries += 1;
                tracing::warn!(
                    server = %name,
                    session,
                    op = call.op,
                    retry = retries,
                    ?delay,
                    %error,
                    "retrying after a transient failure"
                );
            })
            .await;
        if let Err(error) = &result {
            if retries > 0 {
                tracing::warn!(server = %name, session, op = call.op, retries, %error, "giving up");
            }
        }
        oio_application::metrics::record_opencode_call(
            name,
            call.op,
            started.elapsed(),
            result.is_err(),
        );
        result
    }

    async fn call_json<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, AgentServerError> {
        let op = call.op;
        let body = self.execute(call).await?;
        serde_json::from_slice(&body).map_err(|e| {
            tracing::warn!(server = %self.inner.name, op, error = %e, "answer did not decode");
            AgentServerError::Decode(format!("{op}: {e}"))
        })
    }

    fn call<'a>(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
        repeat: Repeat,
        session: Option<&'a AgentSessionId>,
    ) -> Call<'a> {
        Call {
            op,
            method,
            url,
            body: None,
            timeout: self.inner.policy.request_timeout,
            repeat,
            session: session.map_or("", AgentSessionId::as_str),
        }
    }

    fn session_url(&self, session: &SessionAddress, tail: &[&str]) -> Url {
        let mut segments = vec!["session", session.id.as_str()];
        segments.extend_from_slice(tail);
        self.url(&segments, session.directory.as_deref())
    }

    /// The health endpoint straight, without breaker, rate limit or retries: for the fleet's
    /// periodic checks, which must see a server recover even while its breaker is open.
    pub async fn probe_health(&self) -> Result<ServerHealth, AgentServerError> {
        let request = self
            .request(Method::GET, self.url(&["global", "health"], None))
            .header(ACCEPT, "application/json");
        let timeout = self.inner.policy.request_timeout;
        let answer = async {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            Ok::<_, reqwest::Error>((status, headers, response.bytes().await?))
        };
        let (status, headers, body) = match tokio::time::timeout(timeout, answer).await {
            Err(_) => {
                return Err(AgentServerError::Timeout {
                    server: self.inner.name.clone(),
                    after: timeout,
                })
            }
            Ok(result) => result.map_err(|e| self.transport_error(e))?,
        };
        self.classify(status, &headers, &body)?;
        serde_json::from_slice::<wire::WireHealth>(&body)
            .map(ServerHealth::from)
            .map_err(|e| AgentServerError::Decode(format!("health: {e}")))
    }

    /// Opens one event-stream connection. Neither the breaker nor the rate limit applies: the
    /// stream reconnects on its own backoff, and it is how we notice a server is back.
    async fn open_events(&self, scope: &EventScope) -> Result<FrameStream, String> {
        let url = match scope {
            EventScope::ServerDefault => self.url(&["event"], None),
            EventScope::Directory(directory) => self.url(&["event"], Some(directory)),
            EventScope::AllDirectories => self.url(&["global", "event"], None),
        };
        let request = self
            .request(Method::GET, url)
            .header(ACCEPT, "text/event-stream");
        // Only the answer's head is timed: the body is the stream, watched by heartbeats.
        let response = tokio::time::timeout(self.inner.policy.request_timeout, request.send())
            .await
            .map_err(|_| format!("no answer within {:?}", self.inner.policy.request_timeout))?
            .map_err(describe)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        Ok(Box::pin(events::decode_events(response.bytes_stream())))
    }
}

/// A transport error without its URL (which could carry credentials) but with its causes.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// OpenCode's `{"name":…,"data":{"message":…}}`, or the body as it is.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/data/message")
                .or_else(|| v.get("message"))
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.to_string())
}

fn json_body<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Our request types are plain data: serialising them cannot fail.
    serde_json::to_vec(value).expect("request bodies serialise")
}

#[async_trait]
impl AgentServer for OpenCodeClient {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn health(&self) -> Result<ServerHealth, AgentServerError> {
        let url = self.url(&["global", "health"], None);
        let health: wire::WireHealth = self
            .call_json(self.call("health", Method::GET, url, Repeat::Safe, None))
            .await?;
        Ok(health.into())
    }

    async fn create_session(
        &self,
        request: &CreateSession,
    ) -> Result<AgentSession, AgentServerError> {
        let url = self.url(&["session"], request.directory.as_deref());
        let mut call = self.call(
            "create_session",
            Method::POST,
            url,
            Repeat::OnlyIfUnsent,
            None,
        );
        call.body = Some(json_body(&wire::CreateSessionBody::from(request)));
        let session: wire::WireSession = self.call_json(call).await?;
        Ok(session.into())
    }

    async fn get_session(
        &self,
        session: &SessionAddress,
    ) -> Result<AgentSession, AgentServerError> {
        let url = self.session_url(session, &[]);
        let found: wire::WireSession = self
            .call_json(self.call(
                "get_session",
                Method::GET,
                url,
                Repeat::Safe,
                Some(&session.id),
            ))
            .await?;
        Ok(found.into())
    }

    async fn list_sessions(
        &self,
        directory: Option<&str>,
    ) -> Result<Vec<AgentSession>, AgentServerError> {
        let url = self.url(&["session"], directory);
        let sessions: Vec<wire::WireSession> = self
            .call_json(self.call("list_sessions", Method::GET, url, Repeat::Safe, None))
            .await?;
        Ok(sessions.into_iter().map(AgentSession::from).collect())
    }

    async fn delete_session(&self, session: &SessionAddress) -> Result<(), AgentServerError> {
        let url = self.session_url(session, &[]);
        match self
            .execute(self.call(
                "delete_session",
                Method::DELETE,
                url,
                Repeat::Safe,
                Some(&session.id),
            ))
            .await
        {
            Ok(_) | Err(AgentServerError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn prompt(
        &self,
        session: &SessionAddress,
        request: &PromptRequest,
    ) -> Result<AssistantReply, AgentServerError> {
        let url = self.session_url(session, &["message"]);
        let mut call = self.call(
            "prompt",
            Method::POST,
            url,
            Repeat::OnlyIfUnsent,
            Some(&session.id),
        );
        call.timeout = self.inner.policy.prompt_timeout;
        call.body = Some(json_body(&wire::PromptBody::from(request)));
        let reply: wire::WireAssistantReply = self.call_json(call).await?;
        reply
            .try_into()
            .map_err(|e: serde_json::Error| AgentServerError::Decode(format!("prompt: {e}")))
    }

    async fn prompt_async(
        &self,
        session: &SessionAddress,
        request: &PromptRequest,
    ) -> Result<(), AgentServerError> {
        let url = self.session_url(session, &["prompt_async"]);
        let mut call = self.call(
            "prompt_async",
            Method::POST,
            url,
            Repeat::OnlyIfUnsent,
            Some(&session.id),
        );
        call.body = Some(json_body(&wire::PromptBody::from(request)));
        self.execute(call).await.map(drop)
    }

    async fn abort(&self, session: &SessionAddress) -> Result<bool, AgentServerError> {
        let url = self.session_url(session, &["abort"]);
        self.call_json(self.call("abort", Method::POST, url, Repeat::Safe, Some(&session.id)))
            .await
    }

    async fn dispose_directory(&self, directory: &str) -> Result<(), AgentServerError> {
        let url = self.url(&["instance", "dispose"], Some(directory));
        let _: serde_json::Value = self
            .call_json(self.call("dispose", Method::POST, url, Repeat::Safe, None))
            .await?;
        Ok(())
    }

    async fn messages(
        &self,
        session: &SessionAddress,
    ) -> Result<Vec<MessageRecord>, AgentServerError> {
        let url = self.session_url(session, &["message"]);
        let records: Vec<wire::WireMessageRecord> = self
            .call_json(self.call(
                "messages",
                Method::GET,
                url,
                Repeat::Safe,
                Some(&session.id),
            ))
            .await?;
        records
            .into_iter()
            .map(MessageRecord::try_from)
            .collect::<Result<_, _>>()
            .map_err(|e| AgentServerError::Decode(format!("messages: {e}")))
    }

    async fn diff(&self, session: &SessionAddress) -> Result<Vec<FileDiff>, AgentServerError> {
        let url = self.session_url(session, &["diff"]);
        let diff: Vec<wire::WireFileDiff> = self
            .call_json(self.call("diff", Method::GET, url, Repeat::Safe, Some(&session.id)))
            .await?;
        Ok(diff.into_iter().map(FileDiff::from).collect())
    }

    async fn status(
        &self,
        directory: Option<&str>,
    ) -> Result<BTreeMap<AgentSessionId, AgentSessionStatus>, AgentServerError> {
        let url = self.url(&["session", "status"], directory);
        let statuses: BTreeMap<String, wire::WireStatus> = self
            .call_json(self.call("status", Method::GET, url, Repeat::Safe, None))
            .await?;
        Ok(statuses
            .into_iter()
            .map(|(id, status)| (AgentSessionId::new(id), status.into()))
            .collect())
    }

    async fn reply_permission(
        &self,
        directory: Option<&str>,
        request_id: &str,
        reply: PermissionReply,
        message: Option<&str>,
    ) -> Result<(), AgentServerError> {
        let url = self.url(&["permission", request_id, "reply"], directory);
        let mut call = self.call(
            "reply_permission",
            Method::POST,
            url,
            Repeat::OnlyIfUnsent,
            None,
        );
        call.body = Some(json_body(&wire::PermissionReplyBody { reply, message }));
        self.execute(call).await.map(drop)
    }

    async fn reply_question(
        &self,
        directory: Option<&str>,
        request_id: &str,
        answers: &[Vec<String>],
    ) -> Result<(), AgentServerError> {
        let url = self.url(&["question", request_id, "reply"], directory);
        let mut call = self.call(
            "reply_question",
            Method::POST,
            url,
            Repeat::OnlyIfUnsent,
            None,
        );
        call.body = Some(json_body(&wire::QuestionReplyBody { answers }));
        self.execute(call).await.map(drop)
    }

    async fn reject_question(
        &self,
        directory: Option<&str>,
        request_id: &str,
    ) -> Result<(), AgentServerError> {
        let url = self.url(&["question", request_id, "reject"], directory);
        self.execute(self.call(
            "reject_question",
            Method::POST,
            url,
            Repeat::OnlyIfUnsent,
            None,
        ))
        .await
        .map(drop)
    }

    async fn pending_permissions(
        &self,
        directory: Option<&str>,
    ) -> Result<Vec<oio_application::ports::PermissionRequest>, AgentServerError> {
        let url = self.url(&["permission"], directory);
        let pending: Vec<wire::WirePermissionAsked> = self
            .call_json(self.call("pending_permissions", Method::GET, url, Repeat::Safe, None))
            .await?;
        Ok(pending.into_iter().map(Into::into).collect())
    }

    async fn pending_questions(
        &self,
        directory: Option<&str>,
    ) -> Result<Vec<oio_application::ports::QuestionRequest>, AgentServerError> {
        let url = self.url(&["question"], directory);
        let pending: Vec<wire::WireQuestionAsked> = self
            .call_json(self.call("pending_questions", Method::GET, url, Repeat::Safe, None))
            .await?;
        Ok(pending.into_iter().map(Into::into).collect())
    }

    fn events(&self, scope: EventScope) -> AgentEventStream {
        let label = match &scope {
            EventScope::ServerDefault => "server default".to_string(),
            EventScope::Directory(directory) => directory.clone(),
            EventScope::AllDirectories => "all directories".to_string(),
        };
        let client = self.clone();
        events::resilient(
            self.inner.name.clone(),
            label,
            self.inner.policy.events.clone(),
            move || {
                let client = client.clone();
                let scope = scope.clone();
                async move { client.open_events(&scope).await }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> OpenCodeClient {
        OpenCodeClient::new(
            Url::parse(base).unwrap(),
            Some(SecretString::from("hunter2")),
            ResiliencePolicy::default(),
        )
        .unwrap()
    }

    #[test]
    fn urls_keep_a_base_path_escape_segments_and_carry_the_directory() {
        let c = client("http://127.0.0.1:4096/oc/");
        let address = SessionAddress::new(
            AgentSessionId::new("ses_1"),
            Some("/work/tree a".to_string()),
        );
        assert_eq!(
            c.session_url(&address, &["message"]).as_str(),
            "http://127.0.0.1:4096/oc/session/ses_1/message?directory=%2Fwork%2Ftree+a"
        );
        assert_eq!(
            client("http://127.0.0.1:4096")
                .url(&["session", "status"], None)
                .as_str(),
            "http://127.0.0.1:4096/session/status"
        );
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let c = client("http://opencode:urlsecret@127.0.0.1:4096");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("urlsecret"), "{shown}");
        assert_eq!(c.name(), "http://opencode:***@127.0.0.1:4096/");
    }

    #[test]
    fn opencode_error_bodies_yield_their_message() {
        assert_eq!(
            error_message(
                r#"{"name":"NotFoundError","data":{"message":"Session not found: ses_x"}}"#
            ),
            "Session not found: ses_x"
        );
        assert_eq!(error_message("plain"), "plain");
    }
}
