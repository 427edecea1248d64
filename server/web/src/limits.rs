//! Input hardening for every route: a request body size limit and a per-client rate limit
//! (`[http]` settings). Both refuse in the API's JSON error shape: 413 naming the field `body`,
//! and 429 with a `Retry-After` header.
//!
//! The body limit is tower-http's [`RequestBodyLimitLayer`]: it refuses a declared length over the
//! limit before any handler runs, and cuts a streamed body off at the limit however it is read
//! (axum's extractors, Leptos's server functions). Its refusal, and axum's extractors' own, are
//! plain text; [`LimitsService`] answers every such 413 in the API's shape instead.
//!
//! The rate limit is keyed by client: the [`RateKey`] extension when an earlier (outer) layer set
//! one — authentication does, for authenticated principals (`token:<id>`) — else the peer IP
//! (`ip:<addr>`, from [`ConnectInfo`]; serve with `into_make_service_with_connect_info`), else
//! `unknown`. So authentication wraps [`layer`] (it is applied before, i.e. inside, the
//! authentication layer) for requests to be keyed by principal. Health probes
//! (`/healthz`, `/readyz`) are never rate limited: an orchestrator's probes must not be starved
//! by the client traffic they share an address with.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Router};
use futures_util::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tower::{Layer, Service};
use tower_http::limit::{RequestBodyLimit, RequestBodyLimitLayer};

use crate::api::ApiError;
use crate::settings::HttpSettings;

/// The key a request is rate limited under, set by an outer layer (authentication inserts
/// `token:<id>` for an authenticated principal). Without it, the peer IP is the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateKey(pub String);

/// Paths never rate limited.
const UNLIMITED_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// How often idle keys are dropped from the limiter's store.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

/// `router` with [`layer`] on every route.
pub fn apply(router: Router, settings: &HttpSettings) -> Router {
    router.layer(layer(settings))
}

/// The body limit and (unless disabled) the rate limit of `settings`, as one layer.
pub fn layer(settings: &HttpSettings) -> LimitsLayer {
    LimitsLayer {
        max_body: settings.max_body_bytes,
        limiter: ClientRateLimiter::new(settings.rate_limit_per_second, settings.rate_limit_burst)
            .map(Arc::new),
    }
}

/// See [`layer`].
#[derive(Clone)]
pub struct LimitsLayer {
    max_body: usize,
    limiter: Option<Arc<ClientRateLimiter>>,
}

impl<S> Layer<S> for LimitsLayer {
    type Service = LimitsService<RequestBodyLimit<<DefaultBodyLimit as Layer<S>>::Service>>;

    fn layer(&self, inner: S) -> Self::Service {
        // axum's extractors (`Bytes`, `Json`, `Form`) would otherwise also apply their own 2 MB
        // default, refusing bodies the configured limit allows.
        let inner = DefaultBodyLimit::disable().layer(inner);
        LimitsService {
            inner: RequestBodyLimitLayer::new(self.max_body).layer(inner),
            max_body: self.max_body,
            limiter: self.limiter.clone(),
        }
    }
}

#[derive(Clone)]
pub struct LimitsService<S> {
    inner: S,
    max_body: usize,
    limiter: Option<Arc<ClientRateLimiter>>,
}

impl<S, B> Service<Request> for LimitsService<S>
where
    S: Service<Request, Response = axum::http::Response<B>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if let Some(refusal) = self.rate_limited(&request) {
            return Box::pin(std::future::ready(Ok(refusal)));
        }
        let max_body = self.max_body;
        let response = self.inner.call(request);
        Box::pin(async move { Ok(too_large_as_json(response.await?.map(Body::new), max_body)) })
    }
}

impl<S> LimitsService<S> {
    /// The 429 answer to a request over its client's rate, if it is.
    fn rate_limited(&self, request: &Request) -> Option<Response> {
        let limiter = self.limiter.as_ref()?;
        if UNLIMITED_PATHS.contains(&request.uri().path()) {
            return None;
        }
        let key = client_key(request);
        let wait = limiter.check(&key).err()?;
        tracing::debug!(%key, ?wait, "request rate limited");
        let retry_after_secs = retry_after_secs(wait);
        Some(ApiError::RateLimited { retry_after_secs }.into_response())
    }
}

/// A 413 in plain text (tower-http's refusal of a declared length, axum's extractors' refusal of
/// a body cut off at the limit) as the API's error naming `body`; any other response as it is.
fn too_large_as_json(response: Response, max_body: usize) -> Response {
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        ApiError::too_large(max_body).into_response()
    } else {
        response
    }
}

/// The client a request counts against: its [`RateKey`], else its peer IP, else `unknown`.
fn client_key(request: &Request) -> String {
    if let Some(RateKey(key)) = request.extensions().get::<RateKey>() {
        return key.clone();
    }
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
        None => "unknown".to_owned(),
    }
}

/// Whole seconds to wait, rounded up, at least 1 (`Retry-After` takes whole seconds).
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// A keyed GCRA rate limiter whose idle keys are dropped now and then, so one-off clients do
/// not make the store grow for ever.
pub struct ClientRateLimiter {
    limiter: RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>,
    started: Instant,
    /// Milliseconds since `started` of the last cleanup.
    last_cleanup_ms: AtomicU64,
}

impl ClientRateLimiter {
    /// `per_second` requests a second per key, `burst` at once; `None` if either is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let quota =
            Quota::per_second(NonZeroU32::new(per_second)?).allow_burst(NonZeroU32::new(burst)?);
        Some(Self {
            limiter: RateLimiter::keyed(quota),
            started: Instant::now(),
            last_cleanup_ms: AtomicU64::new(0),
        })
    }

    /// Counts one request of `key`: `Err(wait)` when it is over its quota, with how long until
    /// the next one would be allowed.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.maybe_clean_up();
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Drops every key whose state is as good as fresh (it has been idle long enough to have its
    /// whole burst back).
    pub fn clean_up(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// [`Self::clean_up`] at most once per [`CLEANUP_EVERY`], by whichever request comes first.
    fn maybe_clean_up(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_cleanup_ms.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= CLEANUP_EVERY.as_millis() as u64;
        if due
            && self
                .last_cleanup_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.clean_up();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::body::to_bytes;
    use axum::http::header::CONTENT_LENGTH;
    use axum::http::HeaderValue;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn settings(max_body_bytes: usize, per_second: u32, burst: u32) -> HttpSettings {
        HttpSettings {
            max_body_bytes,
            rate_limit_per_second: per_second,
            rate_limit_burst: burst,
        }
    }

    /// A router with a body reader and a plain route, limited by `settings`.
    fn router(settings: &HttpSettings) -> Router {
        let inner = Router::new()
            .route(
                "/echo",
                post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            )
            .route("/ping", get(|| async { "pong" }))
            .route("/healthz", get(|| async { "ok" }));
        apply(inner, settings)
    }

    async fn json_of(response: Response) -> serde_json::Value {
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn a_key_over_its_burst_waits_while_another_key_is_not_limited() {
        let limiter = ClientRateLimiter::new(1, 3).unwrap();
        for _ in 0..3 {
            limiter.check("token:a").unwrap();
        }
        let wait = limiter.check("token:a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(retry_after_secs(wait), 1);
        for _ in 0..3 {
            limiter.check("token:b").unwrap();
        }
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn zero_disables_the_limit() {
        assert!(ClientRateLimiter::new(0, 10).is_none());
        assert!(ClientRateLimiter::new(10, 0).is_none());
    }

    #[test]
    fn idle_keys_are_dropped_on_clean_up() {
        // 1000/s: a key is back to a fresh state a few milliseconds after its last request.
        let limiter = ClientRateLimiter::new(1000, 1).unwrap();
        limiter.check("ip:10.0.0.1").unwrap();
        limiter.check("ip:10.0.0.2").unwrap();
        assert_eq!(limiter.len(), 2);
        std::thread::sleep(Duration::from_millis(20));
        limiter.clean_up();
        assert!(limiter.is_empty(), "{} keys left", limiter.len());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[tokio::test]
    async fn a_declared_oversize_body_is_refused_with_413_naming_body() {
        let app = router(&settings(16, 0, 0));
        let response = app
            .oneshot(
                Request::post("/echo")
                    .header(CONTENT_LENGTH, "17")
                    .body(Body::from(vec![b'x'; 17]))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = json_of(response).await;
        assert_eq!(body["error"]["field"], "body", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("16"));
    }

    #[tokio::test]
    async fn a_streamed_oversize_body_is_cut_off_and_one_within_the_limit_passes() {
        let app = router(&settings(16, 0, 0));
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..3).map(|_| Ok(vec![b'x'; 10])).collect();
        let response = app
            .clone()
            .oneshot(
                Request::post("/echo")
                    .body(Body::from_stream(futures_util::stream::iter(chunks)))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = json_of(response).await;
        assert_eq!(body["error"]["field"], "body", "{body}");
        let response = app
            .oneshot(
                Request::post("/echo")
                    .body(Body::from("0123456789abcdef"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_413_already_in_the_api_shape_is_passed_on_unchanged() {
        let inner = Router::new().route(
            "/own",
            post(|| async { ApiError::TooLarge("its own words".to_owned()) }),
        );
        let response = apply(inner, &settings(16, 0, 0))
            .oneshot(Request::post("/own").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = json_of(response).await;
        assert_eq!(body["error"]["message"], "its own words", "{body}");
    }

    #[tokio::test]
    async fn over_the_burst_a_client_gets_429_with_retry_after_and_its_key_decides() {
        let app = router(&settings(1024, 1, 2));
        let send = |key: Option<&str>, path: &str| {
            let mut request = Request::get(path).body(Body::empty()).unwrap();
            if let Some(key) = key {
                request.extensions_mut().insert(RateKey(key.to_owned()));
            }
            app.clone().oneshot(request)
        };
        for _ in 0..2 {
            assert_eq!(send(Some("token:a"), "/ping").await.unwrap().status(), 200);
        }
        let refused = send(Some("token:a"), "/ping").await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.headers().get("retry-after"),
            Some(&HeaderValue::from_static("1"))
        );
        let body = json_of(refused).await;
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many"));
        // Another principal, and the keyless fallback, have their own quota.
        assert_eq!(send(Some("token:b"), "/ping").await.unwrap().status(), 200);
        assert_eq!(send(None, "/ping").await.unwrap().status(), 200);
        // Health probes are never limited.
        for _ in 0..5 {
            assert_eq!(
                send(Some("token:a"), "/healthz").await.unwrap().status(),
                200
            );
        }
    }

    #[test]
    fn the_key_is_the_rate_key_else_the_peer_ip_else_unknown() {
        let mut request = Request::get("/").body(Body::empty()).unwrap();
        assert_eq!(client_key(&request), "unknown");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 1, 2, 3], 4567))));
        assert_eq!(client_key(&request), "ip:10.1.2.3");
        request
            .extensions_mut()
            .insert(RateKey("token:42".to_owned()));
        assert_eq!(client_key(&request), "token:42");
    }
}
