//! The REST API under `/api/v1`, its error shape, the SSE event stream and the OpenAPI document,
//! against the whole orchestrator (engine on, no OpenCode server: sessions stay queued).

use std::time::Duration;

use chrono::Utc;
use domain::SessionStatus;
use futures_util::StreamExt;
use serde_json::{json, Value};
use server::ports::{Aggregate, ChangeSet, NewEvent};
use server::startup::Application;
use support::factories::SessionFactory;
use support::{seed_sessions, spawn_app, spawn_app_on_postgres, TestApp};

use crate::support;

const CRUD: &str = "Add customer records with create, list, edit and delete screens";

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request failed");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, body)
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    send(app, reqwest::Method::GET, path, None).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    send(app, reqwest::Method::POST, path, Some(body)).await
}

/// Asserts the API's error shape, naming `field`, and returns the message.
fn assert_error(status: u16, body: &Value, expected_status: u16, field: Option<&str>) -> String {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(
        body["error"]["field"],
        field.map_or(Value::Null, |f| json!(f)),
        "{body}"
    );
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(!message.is_empty());
    message.to_owned()
}

fn new_session(title: &str) -> Value {
    json!({
        "title": title,
        "prompt": "Write a README",
        "workspace": "/tmp/some-repo",
        "priority": 5,
    })
}

async fn create_session(app: &TestApp, title: &str) -> Value {
    let (status, body) = post(app, "/api/v1/sessions", new_session(title)).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Creating, reading, listing (with a filter and pages) and cancelling sessions.
async fn sessions_round_trip(app: &TestApp) {
    let first = create_session(app, "first").await;
    assert_eq!(first["status"], "queued");
    assert_eq!(first["title"], "first");
    let id = first["id"].as_str().unwrap().to_owned();
    create_session(app, "second").await;
    create_session(app, "third").await;

    let (status, body) = get(app, &format!("/api/v1/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["prompt"], "Write a README");

    // Two pages of two, newest first, covering all three exactly once.
    let (status, page1) = get(app, "/api/v1/sessions?limit=2").await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    assert_eq!(page1["items"][0]["title"], "third");
    let next = page1["next"].as_str().expect("a next cursor").to_owned();
    let (status, page2) = get(app, &format!("/api/v1/sessions?limit=2&after={next}")).await;
    assert_eq!(status, 200);
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2["items"][0]["title"], "first");
    assert!(page2["next"].is_null());

    let (status, events) = get(app, &format!("/api/v1/sessions/{id}/events")).await;
    assert_eq!(status, 200);
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["session.created", "session.status_changed"]);

    let (status, body) = post(
        app,
        &format!("/api/v1/sessions/{id}/cancel"),
        json!({ "reason": "changed my mind" }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["outcome"], "cancelled");
    let (_, cancelled) = get(app, "/api/v1/sessions?status=cancelled").await;
    let items = cancelled["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    // Cancelling again: it has ended.
    let (status, body) = post(app, &format!("/api/v1/sessions/{id}/cancel"), json!({})).await;
    assert_error(status, &body, 409, None);
}

#[tokio::test]
async fn sessions_are_created_read_listed_in_pages_and_cancelled() {
    let app = spawn_app().await;
    sessions_round_trip(&app).await;
}

#[tokio::test]
async fn sessions_round_trip_on_postgres() {
    let Some(app) = spawn_app_on_postgres().await else {
        return;
    };
    sessions_round_trip(&app).await;
}

#[tokio::test]
async fn bad_list_parameters_are_refused_naming_the_field() {
    let app = spawn_app().await;
    for (path, field) in [
        ("/api/v1/sessions?status=sleeping", "status"),
        ("/api/v1/sessions?limit=0", "limit"),
        ("/api/v1/sessions?limit=501", "limit"),
        ("/api/v1/sessions?limit=lots", "limit"),
        ("/api/v1/sessions?after=not-a-cursor", "after"),
        ("/api/v1/sessions?task=nope", "task"),
        ("/api/v1/sessions?agent=bad%20name%20!", "agent"),
        ("/api/v1/tasks?status=sleeping", "status"),
        ("/api/v1/tasks?limit=-1", "limit"),
        ("/api/v1/sessions/not-a-uuid", "id"),
        ("/api/v1/tasks/not-a-uuid", "id"),
        ("/api/v1/events?session=nope", "session"),
        ("/api/v1/events?aggregate=planet", "aggregate"),
        ("/api/v1/events?after=-3", "after"),
    ] {
        let (status, body) = get(&app, path).await;
        assert_error(status, &body, 400, Some(field));
    }
}

#[tokio::test]
async fn bad_bodies_are_refused_naming_the_field_and_store_nothing() {
    let app = spawn_app().await;
    let cases = [
        (json!({"prompt": "p", "workspace": "/w"}), "title"),
        (
            json!({"title": "t", "prompt": "p", "workspace": "/w", "priority": "high"}),
            "priority",
        ),
        (
            json!({"title": "t", "prompt": "p", "workspace": "/w", "priority": 5000}),
            "priority",
        ),
        (
            json!({"title": "", "prompt": "p", "workspace": "/w"}),
            "title",
        ),
        (
            json!({"title": "t", "prompt": "p", "workspace": "/w", "max_attempts": 0}),
            "max_attempts",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = post(&app, "/api/v1/sessions", body).await;
        assert_error(status, &answer, 400, Some(field));
    }
    // Not JSON at all: a JSON 400, not axum's text.
    let response = app
        .client
        .post(app.url("/api/v1/sessions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("JSON"));
    let (_, list) = get(&app, "/api/v1/sessions").await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4();
    for path in [
        format!("/api/v1/sessions/{id}"),
        format!("/api/v1/sessions/{id}/events"),
        format!("/api/v1/sessions/{id}/diff"),
        format!("/api/v1/tasks/{id}"),
        "/api/v1/agents/nobody".to_owned(),
        "/api/v1/no-such-endpoint".to_owned(),
    ] {
        let (status, body) = get(&app, &path).await;
        assert_error(status, &body, 404, None);
    }
    let (status, body) = post(&app, &format!("/api/v1/sessions/{id}/cancel"), json!({})).await;
    assert_error(status, &body, 404, None);
    let (status, body) = post(&app, &format!("/api/v1/tasks/{id}/cancel"), json!({})).await;
    assert_error(status, &body, 404, None);
}

#[tokio::test]
async fn ended_sessions_cannot_be_cancelled_and_only_failed_ones_retried() {
    let app = spawn_app().await;
    let done = SessionFactory::new()
        .status(SessionStatus::Completed)
        .build();
    let failed = SessionFactory::new().status(SessionStatus::Failed).build();
    seed_sessions(&app.store, &[&done, &failed]).await;

    let (status, body) = post(
        &app,
        &format!("/api/v1/sessions/{}/cancel", done.id()),
        json!({}),
    )
    .await;
    let message = assert_error(status, &body, 409, None);
    assert!(message.contains("completed"), "{message}");

    let (status, body) = post(
        &app,
        &format!("/api/v1/sessions/{}/retry", done.id()),
        json!({}),
    )
    .await;
    assert_error(status, &body, 409, None);

    let (status, body) = post(
        &app,
        &format!("/api/v1/sessions/{}/retry", failed.id()),
        json!({ "priority": 2000 }),
    )
    .await;
    assert_error(status, &body, 400, Some("priority"));

    let (status, body) = post(
        &app,
        &format!("/api/v1/sessions/{}/retry", failed.id()),
        json!({ "priority": 10 }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["id"], failed.id().to_string());
}

#[tokio::test]
async fn the_diff_comes_from_the_last_workspace_event() {
    let app = spawn_app().await;
    let session = create_session(&app, "diffed").await;
    let id = session["id"].as_str().unwrap();
    let (status, body) = get(&app, &format!("/api/v1/sessions/{id}/diff")).await;
    let message = assert_error(status, &body, 404, None);
    assert!(message.contains("no workspace diff"), "{message}");

    let uuid: uuid::Uuid = id.parse().unwrap();
    for (n, patch) in [(1, "old patch"), (2, "+hello\n")] {
        let mut changes = ChangeSet::new();
        changes.event(NewEvent::new(
            Aggregate::Session,
            uuid,
            "workspace",
            json!({
                "branch": format!("oio/session-{id}"),
                "path": "/tmp/wt",
                "base_commit": "abc",
                "snapshot": format!("commit{n}"),
                "files": [{"path": "README.md", "additions": n, "deletions": 0}],
                "patch": patch,
                "patch_truncated": false,
            }),
            Utc::now(),
        ));
        app.store.unit_of_work.commit(changes).await.unwrap();
    }
    let (status, diff) = get(&app, &format!("/api/v1/sessions/{id}/diff")).await;
    assert_eq!(status, 200, "{diff}");
    assert_eq!(diff["patch"], "+hello\n");
    assert_eq!(diff["snapshot"], "commit2");
    assert_eq!(diff["branch"], format!("oio/session-{id}"));
    assert_eq!(diff["patch_truncated"], false);
    assert_eq!(
        diff["files"],
        json!([{"path": "README.md", "additions": 2, "deletions": 0}])
    );
}

#[tokio::test]
async fn agents_are_registered_read_listed_and_updated() {
    let app = spawn_app().await;
    let (status, body) = post(
        &app,
        "/api/v1/agents",
        json!({"name": "api", "capabilities": ["backend", "wizardry"], "model": "openai/gpt", "max_concurrency": 2}),
    )
    .await;
    assert_error(status, &body, 400, Some("capabilities"));
    let (status, body) = post(
        &app,
        "/api/v1/agents",
        json!({"name": "api", "capabilities": ["backend"], "max_concurrency": 2}),
    )
    .await;
    assert_error(status, &body, 400, Some("model"));

    let (status, agent) = post(
        &app,
        "/api/v1/agents",
        json!({"name": "api", "capabilities": ["backend", "database"], "model": "openai/gpt-5", "max_concurrency": 2}),
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    assert_eq!(agent["name"], "api");
    assert_eq!(agent["version"], 1);
    // The name is taken now.
    let (status, body) = post(
        &app,
        "/api/v1/agents",
        json!({"name": "api", "capabilities": ["backend"], "model": "openai/gpt-5", "max_concurrency": 1}),
    )
    .await;
    assert_error(status, &body, 400, Some("name"));

    let (status, got) = get(&app, "/api/v1/agents/api").await;
    assert_eq!(status, 200);
    assert_eq!(got["model"], "openai/gpt-5");
    let (status, list) = get(&app, "/api/v1/agents").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let (status, updated) = send(
        &app,
        reqwest::Method::PUT,
        "/api/v1/agents/api",
        Some(json!({"max_concurrency": 4, "expected_version": 1})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["max_concurrency"], 4);
    assert_eq!(updated["version"], 2);
    let (status, body) = send(
        &app,
        reqwest::Method::PUT,
        "/api/v1/agents/api",
        Some(json!({"max_concurrency": 5, "expected_version": 1})),
    )
    .await;
    assert_error(status, &body, 409, None);
    let (status, body) = send(
        &app,
        reqwest::Method::PUT,
        "/api/v1/agents/nobody",
        Some(json!({"max_concurrency": 5})),
    )
    .await;
    assert_error(status, &body, 404, None);
}

fn git_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .status()
        .expect("git runs");
    assert!(status.success());
    dir
}

#[tokio::test]
async fn a_requirement_becomes_a_stored_tree_that_can_be_read_started_and_cancelled() {
    let app = spawn_app().await;
    let (status, created) = post(&app, "/api/v1/tasks", json!({ "requirement": CRUD })).await;
    assert_eq!(status, 201, "{created}");
    let tasks = created["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 7, "{}", created["rendered"]);
    assert!(created["rendered"]
        .as_str()
        .unwrap()
        .contains("(split: crud)"));
    let root = created["root"].as_str().unwrap().to_owned();
    assert_eq!(tasks[0]["id"], root.as_str());

    let (status, tree) = get(&app, &format!("/api/v1/tasks/{root}")).await;
    assert_eq!(status, 200);
    assert_eq!(tree["root"], root.as_str());
    assert_eq!(tree["tasks"].as_array().unwrap().len(), 7);
    assert!(tree["tasks"][1]["parent"] == root.as_str());

    let (status, roots) = get(&app, "/api/v1/tasks").await;
    assert_eq!(status, 200);
    let items = roots["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only roots are listed");
    assert_eq!(items[0]["id"], root.as_str());

    let repo = git_repo();
    let (status, body) = post(
        &app,
        &format!("/api/v1/tasks/{root}/start"),
        json!({ "workspace": "/definitely/not/a/repo" }),
    )
    .await;
    assert_error(status, &body, 400, Some("workspace"));
    let (status, started) = post(
        &app,
        &format!("/api/v1/tasks/{root}/start"),
        json!({ "workspace": repo.path().display().to_string(), "max_parallel": 2 }),
    )
    .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["status"], "running");
    let (status, body) = post(
        &app,
        &format!("/api/v1/tasks/{root}/start"),
        json!({ "workspace": repo.path().display().to_string() }),
    )
    .await;
    assert_error(status, &body, 409, None);

    let (status, cancelled) = post(
        &app,
        &format!("/api/v1/tasks/{root}/cancel"),
        json!({ "reason": "enough" }),
    )
    .await;
    assert_eq!(status, 202, "{cancelled}");
    assert_eq!(cancelled["id"], root.as_str());
}

#[tokio::test]
async fn a_bad_start_request_stores_no_tree() {
    let app = spawn_app().await;
    let (status, body) = post(
        &app,
        "/api/v1/tasks",
        json!({ "requirement": CRUD, "start": { "workspace": "/not/a/repo" } }),
    )
    .await;
    assert_error(status, &body, 400, Some("start.workspace"));
    let (status, body) = post(
        &app,
        "/api/v1/tasks",
        json!({ "requirement": CRUD, "start": {} }),
    )
    .await;
    assert_error(status, &body, 400, Some("start.workspace"));
    let repo = git_repo();
    let (status, body) = post(
        &app,
        "/api/v1/tasks",
        json!({ "requirement": CRUD, "start": { "workspace": repo.path().display().to_string(), "max_parallel": 0 } }),
    )
    .await;
    assert_error(status, &body, 400, Some("start.max_parallel"));
    let (status, body) = post(&app, "/api/v1/tasks", json!({ "requirement": "" })).await;
    assert_eq!(status, 400, "{body}");
    let (_, roots) = get(&app, "/api/v1/tasks").await;
    assert!(roots["items"].as_array().unwrap().is_empty(), "{roots}");

    // A good one starts at once.
    let (status, created) = post(
        &app,
        "/api/v1/tasks",
        json!({ "requirement": CRUD, "start": { "workspace": repo.path().display().to_string() } }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["tasks"][0]["status"], "running");
}

#[tokio::test]
async fn the_fleet_shows_servers_without_credentials_and_the_queue() {
    let data_dir = tempfile::tempdir().unwrap();
    let settings = server::config::Settings::load_from(
        None,
        vec![
            ("OIO_LISTEN".to_string(), "127.0.0.1:0".to_string()),
            (
                "OIO_DATA_DIR".to_string(),
                data_dir.path().display().to_string(),
            ),
            ("OIO_LOG__FILTER".to_string(), "warn".to_string()),
            (
                "OIO_OPENCODE_URLS".to_string(),
                "http://oio:s3cret-pw@127.0.0.1:9".to_string(),
            ),
        ],
    )
    .unwrap();
    let app = Application::build(&settings).await.unwrap();
    let addr = app.local_addr();
    let token = app
        .auth()
        .issue_token("fleet test", domain::Role::Admin, "tests", None)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = support::bearer_client(secrecy::ExposeSecret::expose_secret(&token.secret));
    let response = client
        .get(format!("http://{addr}/api/v1/fleet"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("s3cret-pw"), "password leaked: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let servers = body["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    assert!(servers[0]["url"].as_str().unwrap().contains("127.0.0.1:9"));
    assert!(["closed", "open", "half_open"].contains(&servers[0]["breaker"].as_str().unwrap()));
    assert!(servers[0]["capacity"].as_u64().unwrap() >= 1);
    assert_eq!(body["queue"]["waiting"], 0);
    let _ = stop.send(());
}

#[tokio::test]
async fn the_fleet_counts_waiting_sessions() {
    let app = spawn_app().await;
    create_session(&app, "waits").await;
    let (status, body) = get(&app, "/api/v1/fleet").await;
    assert_eq!(status, 200);
    assert_eq!(body["servers"], json!([]));
    assert_eq!(body["queue"]["waiting"], 1);
}

/// Reads SSE messages from `response` until one satisfies `wanted`, or `within` runs out.
async fn wait_for_event(
    response: reqwest::Response,
    within: Duration,
    wanted: impl Fn(&str, &Value) -> bool,
) -> Option<(String, Value)> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .ok()??;
        buffer.push_str(&String::from_utf8_lossy(&chunk.ok()?));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let mut id = None;
            let mut event = None;
            let mut data = String::new();
            for line in message.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            let (Some(id), Some(event)) = (id, event) else {
                continue; // a keep-alive comment
            };
            let data: Value = serde_json::from_str(&data).expect("data is JSON");
            assert_eq!(data["id"].as_i64().unwrap().to_string(), id);
            assert_eq!(data["event_type"], event.as_str());
            if wanted(&event, &data) {
                return Some((id, data));
            }
        }
    }
}

async fn cancelling_shows_up_on_the_event_stream(app: &TestApp) {
    let other = create_session(app, "other").await;
    let session = create_session(app, "watched").await;
    let id = session["id"].as_str().unwrap().to_owned();
    let response = app
        .client
        .get(app.url(&format!("/api/v1/events?session={id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // The other session's cancellation is filtered out; ours arrives.
    let other_id = other["id"].as_str().unwrap();
    let (status, _) = post(
        app,
        &format!("/api/v1/sessions/{other_id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = post(app, &format!("/api/v1/sessions/{id}/cancel"), json!({})).await;
    assert_eq!(status, 202);
    let (_, data) = wait_for_event(response, Duration::from_secs(10), |event, data| {
        assert_eq!(data["aggregate_id"], id.as_str(), "filtered by session");
        event == "session.status_changed" && data["payload"]["to"] == "cancelled"
    })
    .await
    .expect("the cancellation arrives within 10 s");
    assert_eq!(data["aggregate"], "session");
    assert_eq!(data["payload"]["from"], "queued");

    // `after=0` replays from the start; `Last-Event-ID` resumes after that id.
    let replay = app
        .client
        .get(app.url(&format!("/api/v1/events?session={id}&after=0")))
        .send()
        .await
        .unwrap();
    let (created_id, _) = wait_for_event(replay, Duration::from_secs(10), |event, _| {
        event == "session.created"
    })
    .await
    .expect("the replay starts with the creation");
    let resumed = app
        .client
        .get(app.url(&format!("/api/v1/events?aggregate=session&session={id}")))
        .header("Last-Event-ID", created_id.as_str())
        .send()
        .await
        .unwrap();
    let (next_id, data) = wait_for_event(resumed, Duration::from_secs(10), |_, _| true)
        .await
        .expect("an event after the creation");
    assert!(next_id.parse::<i64>().unwrap() > created_id.parse::<i64>().unwrap());
    assert_eq!(data["event_type"], "session.status_changed");
    assert_eq!(data["payload"]["to"], "queued");
}

#[tokio::test]
async fn a_cancellation_arrives_on_the_event_stream() {
    let app = spawn_app().await;
    cancelling_shows_up_on_the_event_stream(&app).await;
}

#[tokio::test]
async fn a_cancellation_arrives_on_the_event_stream_on_postgres() {
    let Some(app) = spawn_app_on_postgres().await else {
        return;
    };
    cancelling_shows_up_on_the_event_stream(&app).await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint() {
    let app = spawn_app().await;
    let (status, doc) = get(&app, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/sessions", &["get", "post"][..]),
        ("/api/v1/sessions/{id}", &["get"]),
        ("/api/v1/sessions/{id}/events", &["get"]),
        ("/api/v1/sessions/{id}/diff", &["get"]),
        ("/api/v1/sessions/{id}/cancel", &["post"]),
        ("/api/v1/sessions/{id}/retry", &["post"]),
        ("/api/v1/tasks", &["get", "post"]),
        ("/api/v1/tasks/{id}", &["get"]),
        ("/api/v1/tasks/{id}/start", &["post"]),
        ("/api/v1/tasks/{id}/cancel", &["post"]),
        ("/api/v1/agents", &["get", "post"]),
        ("/api/v1/agents/{name}", &["get", "put"]),
        ("/api/v1/fleet", &["get"]),
        ("/api/v1/inbox", &["get"]),
        ("/api/v1/inbox/{id}", &["get"]),
        ("/api/v1/inbox/{id}/answer", &["post"]),
        ("/api/v1/events", &["get"]),
        ("/api/v1/openapi.json", &["get"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not documented"));
        for method in methods {
            let operation = &item[*method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            if !["/api/v1/openapi.json", "/api/v1/fleet"].contains(&path) {
                let responses = operation["responses"].as_object().unwrap();
                assert!(
                    responses
                        .keys()
                        .any(|code| code.starts_with('4') || code.starts_with('5')),
                    "{method} {path} documents no error"
                );
            }
        }
    }
    // 15 + /api/v1/admission + the 3 inbox paths.
    assert_eq!(paths.len(), 19, "{:?}", paths.keys().collect::<Vec<_>>());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "ErrorBody",
        "CreateSessionBody",
        "SessionPage",
        "StreamEvent",
        "FleetReport",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema} missing");
    }
    assert!(doc["paths"]["/api/v1/sessions"]["post"]["requestBody"].is_object());
    // Every reference resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "{refs:?}");
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(schemas.contains_key(name), "dangling reference {reference}");
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
