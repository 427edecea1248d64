//! Input hardening of the HTTP surface: a property-based fuzz of every REST operation the
//! OpenAPI document lists, the body and rate limits, and secrets kept out of output.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use server::startup::Application;

use crate::support;

/// Requests the fuzz sends (`OIO_FUZZ_CASES` overrides).
const DEFAULT_CASES: usize = 500;

/// One operation of the OpenAPI document.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    /// `/api/v1/sessions/{id}`.
    path: String,
    /// Path and query parameter names.
    path_params: Vec<String>,
    query_params: Vec<String>,
    /// The request body's schema, `$ref`s left in place.
    body: Option<Value>,
    /// Whether the document lists a 503 answer.
    documents_503: bool,
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let named = |place: &str| -> Vec<String> {
                params
                    .iter()
                    .filter(|p| p["in"] == place)
                    .map(|p| p["name"].as_str().expect("parameter name").to_owned())
                    .collect()
            };
            out.push(Operation {
                method,
                path: path.clone(),
                path_params: named("path"),
                query_params: named("query"),
                body: op["requestBody"]["content"]["application/json"]["schema"]
                    .as_object()
                    .map(|s| Value::Object(s.clone())),
                documents_503: op["responses"].get("503").is_some(),
            });
        }
    }
    out
}

/// Draws from proptest strategies and a deterministic RNG (a fixed seed: the same requests on
/// every run).
struct Gen {
    runner: TestRunner,
}

impl Gen {
    fn new() -> Self {
        Self {
            runner: TestRunner::deterministic(),
        }
    }

    fn draw<T: std::fmt::Debug>(&mut self, strategy: impl Strategy<Value = T>) -> T {
        strategy
            .new_tree(&mut self.runner)
            .expect("strategy draws")
            .current()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.runner.rng().next_u64() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A string that is often plausible, sometimes hostile.
    fn string(&mut self) -> String {
        match self.below(12) {
            0 => uuid::Uuid::new_v4().to_string(),
            1 => "a".repeat(self.pick(&[201, 5_000, 200_000]).to_owned()),
            2 => self
                .pick(&["..", "../..", "%2e%2e", "/etc/passwd", "\0", " ", ""])
                .to_string(),
            3 => self
                .pick(&["ñandú ✓ 𝄞", "\u{202e}gnp.exe", "名前", "🦀🦀🦀", "\u{feff}"])
                .to_string(),
            4 => self
                .pick(&[
                    "build",
                    "backend",
                    "anthropic/claude-sonnet-4",
                    "pending",
                    "all",
                    "crud",
                ])
                .to_string(),
            5 => self.pick(&["/tmp", "/", "relative/path"]).to_string(),
            6 => self
                .pick(&["0", "-1", "50", "501", "1e9", "NaN", "true"])
                .to_string(),
            _ => self.draw(any::<String>()),
        }
    }

    fn integer(&mut self) -> i128 {
        *self.pick(&[
            0,
            1,
            -1,
            3,
            20,
            21,
            64,
            65,
            1000,
            1001,
            -1001,
            i128::from(i32::MAX) + 1,
            i128::from(u32::MAX) + 1,
            i128::from(i64::MIN),
            i128::from(u64::MAX),
        ])
    }

    fn json(&mut self) -> Value {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        self.draw(leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        }))
    }

    /// A value shaped like `schema` (references resolved in `doc`).
    fn shaped(&mut self, doc: &Value, schema: &Value, depth: usize) -> Value {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.rsplit('/').next().expect("ref name");
            return self.shaped(doc, &doc["components"]["schemas"][name], depth);
        }
        for combinator in ["oneOf", "anyOf", "allOf"] {
            if let Some(options) = schema[combinator].as_array() {
                let options: Vec<&Value> = options.iter().filter(|o| o["type"] != "null").collect();
                if options.is_empty() {
                    return Value::Null;
                }
                let chosen = options[self.below(options.len())];
                return self.shaped(doc, chosen, depth);
            }
        }
        let kind = match &schema["type"] {
            Value::String(kind) => kind.clone(),
            Value::Array(kinds) => kinds
                .iter()
                .filter_map(Value::as_str)
                .find(|k| *k != "null")
                .unwrap_or("null")
                .to_owned(),
            _ if schema["properties"].is_object() => "object".to_owned(),
            _ => "any".to_owned(),
        };
        match kind.as_str() {
            "string" => Value::String(self.string()),
            "integer" => serde_json::from_str(&self.integer().to_string()).expect("a number"),
            "number" => json!(self.integer() as f64 / 3.0),
            "boolean" => Value::Bool(self.chance(50)),
            "null" => Value::Null,
            "array" if depth < 4 => {
                let n = self.below(4);
                Value::Array(
                    (0..n)
                        .map(|_| self.shaped(doc, &schema["items"], depth + 1))
                        .collect(),
                )
            }
            "object" if depth < 4 => {
                let Some(properties) = schema["properties"].as_object() else {
                    return self.json();
                };
                let required: Vec<&str> = schema["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut object = Map::new();
                for (name, property) in properties {
                    if required.contains(&name.as_str()) || self.chance(50) {
                        object.insert(name.clone(), self.shaped(doc, property, depth + 1));
                    }
                }
                Value::Object(object)
            }
            _ => self.json(),
        }
    }

    /// A schema-shaped object with one thing wrong: a field of another type, a required field
    /// missing, or an unknown field.
    fn mutated(&mut self, doc: &Value, schema: &Value) -> Value {
        let mut value = self.shaped(doc, schema, 0);
        let Some(object) = value.as_object_mut() else {
            return value;
        };
        let keys: Vec<String> = object.keys().cloned().collect();
        match self.below(3) {
            0 if !keys.is_empty() => {
                let key = self.pick(&keys).clone();
                let replacement = self.json();
                object.insert(key, replacement);
            }
            1 if !keys.is_empty() => {
                let key = self.pick(&keys).clone();
                object.remove(&key);
            }
            _ => {
                object.insert("unexpected_field".into(), self.json());
            }
        }
        value
    }
}

/// One generated request.
struct Fuzzed {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
}

/// Shown cut short: a failure message must stay readable.
impl std::fmt::Debug for Fuzzed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self.body.as_ref().map(|b| {
            let head = String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned();
            format!("{} bytes: {head}", b.len())
        });
        f.debug_struct("Fuzzed")
            .field("method", &self.method)
            .field("path", &cut(&self.path, 300))
            .field("content_type", &self.content_type)
            .field("body", &body)
            .finish()
    }
}

/// `text`, at most `max` characters of it.
fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// `segment` percent-encoded for a path (or left raw now and then, to try `..` and friends).
fn path_segment(g: &mut Gen, raw: &str) -> String {
    if g.chance(10)
        && raw
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '?' && c != '#')
    {
        return raw.to_owned();
    }
    let mut out = String::new();
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn query_value(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn fuzz_request(g: &mut Gen, doc: &Value, op: &Operation) -> Fuzzed {
    let mut path = op.path.clone();
    // URLs stay under the client's URI limit (64 KiB).
    for name in &op.path_params {
        let raw = cut(&g.string(), 6_000);
        let segment = path_segment(g, &raw);
        path = path.replace(&format!("{{{name}}}"), &segment);
    }
    let mut query = Vec::new();
    for name in &op.query_params {
        if g.chance(50) {
            let value = cut(&g.string(), 2_000);
            query.push(format!("{name}={}", query_value(&value)));
        }
    }
    if g.chance(10) {
        let value = cut(&g.string(), 2_000);
        query.push(format!("unknown={}", query_value(&value)));
    }
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let json_type = Some("application/json");
    let (content_type, body) = match (&op.body, g.below(10)) {
        (None, 0) => (json_type, Some(g.json().to_string().into_bytes())),
        (None, _) => (None, None),
        (Some(schema), 0..=2) => (json_type, Some(g.shaped(doc, schema, 0).to_string().into())),
        (Some(schema), 3..=4) => (json_type, Some(g.mutated(doc, schema).to_string().into())),
        (Some(_), 5) => (json_type, Some(g.json().to_string().into_bytes())),
        (Some(_), 6) => {
            let depth = *g.pick(&[64, 200, 10_000]);
            (json_type, Some(nested(depth).into_bytes()))
        }
        (Some(_), 7) => (
            json_type,
            Some(g.draw(prop::collection::vec(any::<u8>(), 0..256))),
        ),
        (Some(schema), 8) => {
            let kind = *g.pick(&[
                "text/plain",
                "application/x-www-form-urlencoded",
                "image/png",
            ]);
            (
                Some(kind),
                Some(g.shaped(doc, schema, 0).to_string().into()),
            )
        }
        (Some(_), _) => (None, None),
    };
    Fuzzed {
        method: op.method.clone(),
        path,
        content_type,
        body,
    }
}

/// What came back.
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    text: String,
    /// The path as sent, after the client normalised it (`/a/b/..` is `/a/`).
    sent_path: String,
}

/// Sends `request`, waiting out 429s (counted in `statuses` too).
async fn send(
    app: &support::TestApp,
    request: &Fuzzed,
    statuses: &mut BTreeMap<u16, usize>,
) -> Answer {
    for _ in 0..5 {
        let mut builder = app
            .client
            .request(request.method.clone(), app.url(&request.path));
        if let Some(kind) = request.content_type {
            builder = builder.header("content-type", kind);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = builder.send().await.expect("the server answers");
        let sent_path = response.url().path().to_owned();
        let status = response.status();
        *statuses.entry(status.as_u16()).or_default() += 1;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("a 429 says when to retry");
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        // The live stream never ends: its headers are the answer.
        if content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/event-stream"))
        {
            return Answer {
                status,
                content_type,
                text: String::new(),
                sent_path,
            };
        }
        let text = response.text().await.expect("a body");
        return Answer {
            status,
            content_type,
            text,
            sent_path,
        };
    }
    panic!("still rate limited after 5 tries: {request:?}");
}

/// Every 4xx is `{"error": {"field": <string or null>, "message": <non-empty>}}`.
fn assert_error_shape(
    request: &Fuzzed,
    status: StatusCode,
    content_type: Option<&str>,
    text: &str,
) {
    assert!(
        content_type.is_some_and(|t| t.starts_with("application/json")),
        "{status} without a JSON body ({content_type:?}) for {request:?}: {text:.300}"
    );
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{status} body is not JSON ({e}) for {request:?}: {text:.300}"));
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        !message.is_empty(),
        "{status} without an error message for {request:?}: {body}"
    );
    assert!(
        body["error"]["field"].is_null() || body["error"]["field"].is_string(),
        "{status}: field is neither null nor a name for {request:?}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_garbage_with_a_well_formed_4xx_and_never_a_5xx() {
    let app = support::spawn_app().await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    let operations = operations(&doc);
    assert!(operations.len() >= 15, "{operations:?}");

    let cases = std::env::var("OIO_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let mut g = Gen::new();
    let mut statuses = BTreeMap::<u16, usize>::new();
    let mut per_operation = BTreeMap::<String, usize>::new();
    let started = std::time::Instant::now();
    for _ in 0..cases {
        let op = g.pick(&operations).clone();
        let request = fuzz_request(&mut g, &doc, &op);
        let Answer {
            status,
            content_type,
            text,
            sent_path,
        } = send(&app, &request, &mut statuses).await;
        *per_operation
            .entry(format!("{} {}", op.method, op.path))
            .or_default() += 1;
        let documented_503 = status == StatusCode::SERVICE_UNAVAILABLE && op.documents_503;
        assert!(
            status.as_u16() < 500 || documented_503,
            "{status} for {request:?}: {text:.500}"
        );
        // `..` segments may take the request out of the API (to the dashboard's HTML 404).
        let in_api = sent_path
            .strip_prefix("/api/v1/")
            .is_some_and(|rest| !rest.is_empty());
        if in_api && (status.is_client_error() || documented_503) {
            assert_error_shape(&request, status, content_type.as_deref(), &text);
        }
    }
    let requests: usize = statuses.values().sum();
    println!(
        "api fuzz: {requests} requests ({cases} cases over {} operations) in {:.1?}; statuses {statuses:?}",
        operations.len(),
        started.elapsed()
    );
    println!("api fuzz: per operation {per_operation:?}");
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "the server is still alive");
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_413_naming_body() {
    let app = support::spawn_app().await;
    let limit = server::config::HttpSettings::default().max_body_bytes;
    let body = json!({ "title": "t", "prompt": "x".repeat(limit), "workspace": "/tmp" });
    let response = app
        .client
        .post(app.url("/api/v1/sessions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "body", "{body}");

    // Streamed without a length, it is cut off at the limit all the same.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![b' '; limit / 2])).collect();
    let response = app
        .client
        .post(app.url("/api/v1/sessions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["field"], "body", "{body}");
}

#[tokio::test]
async fn over_the_burst_a_client_gets_429_with_retry_after() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = support::test_settings(data_dir.path(), None);
    settings.http.rate_limit_per_second = 1;
    settings.http.rate_limit_burst = 3;
    settings.http.max_body_bytes = 64;
    let app = Application::build(&settings).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    // A public page: the limits apply to every route, signed in or not.
    let url = format!("http://{addr}/login");
    for _ in 0..3 {
        let response = client.get(&url).send().await.unwrap();
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("too many"));
    // Health probes are never limited.
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // After the wait, the client may go on; its small body limit holds everywhere too.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let response = client.post(&url).body("x".repeat(65)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let _ = stop.send(());
}

#[tokio::test]
async fn secrets_never_show_in_settings_output_or_connection_errors() {
    const DB_PASSWORD: &str = "db-pa55word";
    const REDIS_PASSWORD: &str = "redis-pa55word";
    const OPENCODE_PASSWORD: &str = "opencode-pa55word";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oio.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\n\
             data_dir = \"{}\"\n\
             [database]\n\
             acquire_timeout_secs = 1\n\
             [[opencode.servers]]\n\
             url = \"http://127.0.0.1:9\"\n\
             password = \"{OPENCODE_PASSWORD}\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let env = |database: &str| {
        vec![
            ("DATABASE_URL".to_string(), database.to_string()),
            (
                "REDIS_URL".to_string(),
                format!("redis://:{REDIS_PASSWORD}@127.0.0.1:1"),
            ),
        ]
    };
    let postgres = format!("postgres://oio:{DB_PASSWORD}@127.0.0.1:1/oio");
    let settings = server::config::Settings::load_from(Some(&file), env(&postgres)).unwrap();
    let secrets = [DB_PASSWORD, REDIS_PASSWORD, OPENCODE_PASSWORD];
    let shown = [
        format!("{settings:?}"),
        serde_json::to_string(&settings.redacted()).unwrap(),
    ];
    for text in &shown {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    // Nothing listens on port 1: the database connection fails.
    let err = server::storage::connect(&settings)
        .await
        .err()
        .expect("no database there");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(!text.contains(DB_PASSWORD), "password leaked: {text}");
    }
    // With the embedded database, Redis is the one that fails at start-up.
    let settings = server::config::Settings::load_from(
        Some(&file),
        env(&format!(
            "sqlite://{}/oio.db?mode=rwc",
            dir.path().display()
        )),
    )
    .unwrap();
    let err = match Application::build(&settings).await {
        Ok(_) => panic!("start-up succeeded against a closed Redis port"),
        Err(e) => e,
    };
    for text in [err.to_string(), format!("{err:?}")] {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}
