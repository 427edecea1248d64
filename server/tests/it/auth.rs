//! Authentication and roles, end to end over HTTP: every REST operation and server function with
//! each role (allowed ones pass the gate, denied ones get 403 naming `role`, anonymous ones 401),
//! the browser sign-in with its session cookie and CSRF token, tokens scoped, revoked and expired,
//! hashes only in the store, and the first-run admin and the `token`/`user` commands of the real
//! binary.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use domain::Role;
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use server::application::auth::sha256_hex;
use support::{bearer_client, spawn_app, TestApp};

use crate::support;

const OPERATOR_PW: &str = "operator password 1";
const VIEWER_PW: &str = "viewer password 12";

/// The role each REST operation needs, by `METHOD /path-template` as the OpenAPI document names
/// it. Written out here, independently of the server's policy table, so a new route cannot slip
/// in without a decision.
fn rest_rules() -> BTreeMap<&'static str, Role> {
    BTreeMap::from([
        ("GET /api/v1/sessions", Role::Viewer),
        ("POST /api/v1/sessions", Role::Operator),
        ("GET /api/v1/sessions/{id}", Role::Viewer),
        ("GET /api/v1/sessions/{id}/events", Role::Viewer),
        ("GET /api/v1/sessions/{id}/diff", Role::Viewer),
        ("POST /api/v1/sessions/{id}/cancel", Role::Operator),
        ("POST /api/v1/sessions/{id}/retry", Role::Operator),
        ("GET /api/v1/tasks", Role::Viewer),
        ("POST /api/v1/tasks", Role::Operator),
        ("GET /api/v1/tasks/{id}", Role::Viewer),
        ("POST /api/v1/tasks/{id}/start", Role::Operator),
        ("POST /api/v1/tasks/{id}/cancel", Role::Operator),
        ("GET /api/v1/agents", Role::Viewer),
        ("POST /api/v1/agents", Role::Admin),
        ("GET /api/v1/agents/{name}", Role::Viewer),
        ("PUT /api/v1/agents/{name}", Role::Admin),
        ("GET /api/v1/fleet", Role::Viewer),
        ("GET /api/v1/inbox", Role::Viewer),
        ("GET /api/v1/inbox/{id}", Role::Viewer),
        ("POST /api/v1/inbox/{id}/answer", Role::Operator),
        ("GET /api/v1/admission", Role::Viewer),
        ("GET /api/v1/events", Role::Viewer),
        ("GET /api/v1/openapi.json", Role::Viewer),
    ])
}

/// Server functions (all POSTs) and the role each needs.
const SERVER_FUNCTIONS: &[(&str, Role)] = &[
    ("list_sessions", Role::Viewer),
    ("get_overview", Role::Viewer),
    ("get_session", Role::Viewer),
    ("list_tasks", Role::Viewer),
    ("get_task_tree", Role::Viewer),
    ("list_agents", Role::Viewer),
    ("get_agent", Role::Viewer),
    ("get_status_board", Role::Viewer),
    ("current_user", Role::Viewer),
    ("list_inbox", Role::Viewer),
    ("get_guardrails", Role::Viewer),
    ("get_tree_budget", Role::Viewer),
    ("answer_inbox", Role::Operator),
    ("cancel_session", Role::Operator),
    ("retry_session", Role::Operator),
    ("create_task", Role::Operator),
    ("save_agent", Role::Admin),
];

fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "00000000-0000-4000-8000-000000000000")
        .replace("{name}", "nobody")
}

async fn call(client: &reqwest::Client, app: &TestApp, method: &str, path: &str) -> (u16, Value) {
    let url = app.url(path);
    let request = match method {
        "GET" => client.get(url),
        "POST" => client.post(url).json(&json!({})),
        "PUT" => client.put(url).json(&json!({})),
        other => panic!("unexpected method {other}"),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    // The event stream never ends: its headers say enough.
    if path.ends_with("/events") && status == 200 {
        return (status, Value::Null);
    }
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn every_rest_operation_admits_exactly_the_roles_it_should() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rules = rest_rules();
    let ops = operations(&doc);
    let mut documented: Vec<String> = ops.iter().map(|(m, p)| format!("{m} {p}")).collect();
    documented.push("GET /api/v1/openapi.json".into());
    documented.sort();
    documented.dedup();
    let ruled: Vec<String> = rules.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        documented, ruled,
        "every documented operation has a role rule here"
    );

    let anonymous = reqwest::Client::new();
    let mut checked = 0;
    for role in Role::ALL {
        let client = app.client_as(role).await;
        for (key, required) in &rules {
            let (method, template) = key.split_once(' ').unwrap();
            let path = concrete(template);
            let (status, body) = call(&client, &app, method, &path).await;
            if role.allows(*required) {
                assert!(
                    status != 401 && status != 403 && status < 500,
                    "{role} on {key}: {status} {body}"
                );
            } else {
                assert_eq!(status, 403, "{role} on {key}: {body}");
                assert_eq!(body["error"]["field"], "role", "{body}");
                assert!(body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(required.as_str()));
            }
            checked += 1;
        }
    }
    for key in rules.keys() {
        let (method, template) = key.split_once(' ').unwrap();
        let (status, body) = call(&anonymous, &app, method, &concrete(template)).await;
        assert_eq!(status, 401, "anonymous {key}: {body}");
        assert_eq!(body["error"]["field"], "authorization", "{body}");
    }
    println!(
        "role matrix: {checked} calls checked, {} anonymous",
        rules.len()
    );
}

#[tokio::test]
async fn every_server_function_admits_exactly_the_roles_it_should() {
    let app = spawn_app().await;
    for role in Role::ALL {
        let client = app.client_as(role).await;
        for (name, required) in SERVER_FUNCTIONS {
            let response = client
                .post(app.url(&format!("/api/sf/{name}")))
                .form(&[("id", "not-an-id"), ("name", "nobody"), ("mode", "create")])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            if role.allows(*required) {
                assert!(
                    status != 401 && status != 403 && status < 500,
                    "{role} on {name}: {status} {body}"
                );
            } else {
                assert_eq!(status, 403, "{role} on {name}: {body}");
                assert!(body.contains("\"role\""), "{body}");
            }
        }
    }
    // A server function nobody listed needs admin, and anonymous callers get 401.
    let operator = app.client_as(Role::Operator).await;
    let status = operator
        .post(app.url("/api/sf/delete_everything"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let status = reqwest::Client::new()
        .post(app.url("/api/sf/get_overview"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A browser without JavaScript: no redirects followed, cookies carried by hand.
struct Browser<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &reqwest::Response) -> Vec<String> {
        let mut raw = Vec::new();
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().unwrap().to_owned();
            let (pair, _) = value.split_once(';').unwrap_or((&value, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.into(), v.into());
            }
            raw.push(value);
        }
        raw
    }

    async fn get(&mut self, path: &str) -> (u16, String, Option<String>) {
        let response = self
            .http
            .get(self.app.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (status, response.text().await.unwrap(), location)
    }

    async fn post(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, String, Option<String>, Vec<String>) {
        let mut request = self
            .http
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("accept", "text/html")
            .form(fields);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        let set = self.keep_cookies(&response);
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (status, response.text().await.unwrap(), location, set)
    }

    async fn sign_in(
        &mut self,
        user: &str,
        password: &str,
        next: &str,
    ) -> (u16, Option<String>, Vec<String>) {
        let (status, page, _) = self.get(&format!("/login?next={next}")).await;
        assert_eq!(status, 200);
        let csrf = hidden(&page, "csrf_token").expect("the form carries a CSRF token");
        assert_eq!(self.cookies.get("oio_login_csrf"), Some(&csrf));
        let (status, _, location, set) = self
            .post(
                "/login",
                &[
                    ("username", user),
                    ("password", password),
                    ("csrf_token", &csrf),
                    ("next", next),
                ],
                None,
            )
            .await;
        (status, location, set)
    }
}

/// The value of the hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

async fn queued_session(app: &TestApp) -> String {
    let response = app
        .client
        .post(app.url("/api/v1/sessions"))
        .json(&json!({ "title": "t", "prompt": "p", "workspace": "/tmp/nowhere" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn status_of(app: &TestApp, id: &str) -> String {
    let body: Value = app
        .client
        .get(app.url(&format!("/api/v1/sessions/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_browser_signs_in_and_mutates_only_with_its_csrf_token() {
    browser_journey(&spawn_app().await).await;
}

#[tokio::test]
async fn a_browser_signs_in_and_mutates_only_with_its_csrf_token_on_postgres() {
    let Some(app) = support::spawn_app_on_postgres().await else {
        return;
    };
    browser_journey(&app).await;
}

async fn browser_journey(app: &TestApp) {
    app.auth
        .add_user("ops", OPERATOR_PW, Role::Operator)
        .await
        .unwrap();
    app.auth
        .add_user("watcher", VIEWER_PW, Role::Viewer)
        .await
        .unwrap();
    let id = queued_session(app).await;

    let mut browser = Browser::new(app);
    let (status, _, location) = browser.get("/sessions?status=queued").await;
    assert_eq!(status, 303, "pages send strangers to the sign-in form");
    assert_eq!(
        location.as_deref(),
        Some("/login?next=%2Fsessions%3Fstatus%3Dqueued")
    );

    let (status, _, location) = browser.get("/status").await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/login?next=%2Fstatus")),
        "private by default"
    );

    let (status, _, set) = browser
        .sign_in("ops", "wrong password!!", "/sessions")
        .await;
    assert_eq!(status, 401);
    assert!(
        !set.iter().any(|c| c.starts_with("oio_session=")),
        "{set:?}"
    );

    // The form's token must match its cookie: a foreign page cannot sign a browser in.
    let mut foreign = Browser::new(app);
    let (status, page, _, _) = foreign
        .post(
            "/login",
            &[
                ("username", "ops"),
                ("password", OPERATOR_PW),
                ("csrf_token", "forged"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 403, "{page}");

    let (status, location, set) = browser.sign_in("ops", OPERATOR_PW, "/sessions").await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/sessions"));
    let session_cookie = set
        .iter()
        .find(|c| c.starts_with("oio_session="))
        .expect("cookie set");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }

    let (status, page, _) = browser.get(&format!("/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("data-testid=\"whoami\""),
        "the header names the user"
    );
    assert!(page.contains("ops"));
    let csrf = hidden(&page, "csrf_token").expect("the cancel form carries the CSRF token");
    assert_eq!(csrf.len(), 64);

    let cancel = "/api/sf/cancel_session";
    let (status, body, _, _) = browser.post(cancel, &[("id", &id)], None).await;
    assert_eq!(status, 403, "no token: {body}");
    assert!(body.contains("csrf_token"), "{body}");
    let (status, _, _, _) = browser
        .post(
            cancel,
            &[("id", &id), ("csrf_token", &"0".repeat(64))],
            None,
        )
        .await;
    assert_eq!(status, 403, "a wrong token");
    let (status, _, _, _) = browser
        .post(
            cancel,
            &[("id", &id), ("csrf_token", &csrf)],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(status, 403, "another origin");
    assert_eq!(status_of(app, &id).await, "queued", "nothing was cancelled");

    let (status, body, _, _) = browser
        .post(
            cancel,
            &[("id", &id), ("csrf_token", &csrf)],
            Some(&format!("http://{}", app.addr)),
        )
        .await;
    assert!([200, 302, 303].contains(&status), "{status} {body}");
    assert_eq!(status_of(app, &id).await, "cancelled");

    // A viewer's browser is turned away by role, CSRF token or not.
    let other = queued_session(app).await;
    let mut viewer = Browser::new(app);
    viewer.sign_in("watcher", VIEWER_PW, "/").await;
    let (_, page, _) = viewer.get(&format!("/sessions/{other}")).await;
    let viewer_csrf = hidden(&page, "csrf_token").unwrap();
    let (status, body, _, _) = viewer
        .post(
            "/api/sf/cancel_session",
            &[("id", &other), ("csrf_token", &viewer_csrf)],
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"role\""), "{body}");
    assert_eq!(status_of(app, &other).await, "queued");

    // Signing out ends the session on the server, not only in the browser.
    let stolen = browser.cookies.get("oio_session").cloned().unwrap();
    let (status, _, location, _) = browser
        .post("/logout", &[("csrf_token", &csrf)], None)
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/login")));
    let mut thief = Browser::new(app);
    thief.cookies.insert("oio_session".into(), stolen);
    let (status, _, _) = thief.get("/").await;
    assert_eq!(status, 303, "the old cookie no longer signs anyone in");
}

#[tokio::test]
async fn tokens_are_scoped_revocable_expirable_and_stored_as_hashes() {
    token_lifecycle(&spawn_app().await).await;
}

#[tokio::test]
async fn tokens_are_scoped_revocable_expirable_and_stored_as_hashes_on_postgres() {
    let Some(app) = support::spawn_app_on_postgres().await else {
        return;
    };
    token_lifecycle(&app).await;
}

async fn token_lifecycle(app: &TestApp) {
    let issued = app
        .auth
        .issue_token("ci", Role::Viewer, "tests", None)
        .await
        .unwrap();
    let value = issued.secret.expose_secret().to_owned();
    let secret = value.rsplit('_').next().unwrap();
    let stored = app
        .store
        .credentials
        .token(&issued.info.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.secret_hash, sha256_hex(secret));
    assert!(!stored.secret_hash.contains(secret));
    let listing = serde_json::to_string(&app.auth.tokens().await.unwrap()).unwrap();
    assert!(!listing.contains(secret), "listings never show a secret");

    let viewer = bearer_client(&value);
    let ok = viewer
        .get(app.url("/api/v1/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let denied = viewer
        .post(app.url("/api/v1/sessions"))
        .json(&json!({ "title": "t", "prompt": "p", "workspace": "/tmp/x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403, "the token's scope is viewer");

    // A token whose secret is wrong, or malformed, or revoked, signs in nobody.
    let forged = format!(
        "{}{}",
        &value[..value.len() - 1],
        if value.ends_with('0') { "1" } else { "0" }
    );
    for bad in [forged.as_str(), "oio_nothing", "Basic abc"] {
        let status = bearer_client(bad)
            .get(app.url("/api/v1/sessions"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401, "{bad}");
    }
    app.auth.revoke_token(&issued.info.id).await.unwrap();
    let status = viewer
        .get(app.url("/api/v1/sessions"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401, "revoked tokens stop at once");
    assert!(
        app.auth.revoke_token(&issued.info.id).await.is_err(),
        "revoked twice"
    );

    let mut expired = app
        .store
        .credentials
        .token(&issued.info.id)
        .await
        .unwrap()
        .unwrap();
    expired.id = "0123456789ab".into();
    expired.revoked_at = None;
    expired.expires_at = Some(chrono::Utc::now() - chrono::TimeDelta::seconds(1));
    app.store.credentials.insert_token(&expired).await.unwrap();
    let status = bearer_client(&format!("oio_0123456789ab_{secret}"))
        .get(app.url("/api/v1/sessions"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401, "expired tokens sign in nobody");
}

#[tokio::test]
async fn the_first_admin_is_created_once_and_can_sign_in() {
    let app = spawn_app().await;
    let password = app
        .auth
        .ensure_first_admin()
        .await
        .unwrap()
        .expect("created");
    assert!(
        app.auth.ensure_first_admin().await.unwrap().is_none(),
        "only once"
    );
    let signed_in = app
        .auth
        .sign_in("admin", password.expose_secret())
        .await
        .unwrap();
    assert_eq!(signed_in.principal.role, Role::Admin);
    let stored = app.store.credentials.user("admin").await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));
    assert!(!stored.password_hash.contains(password.expose_secret()));
    assert!(app.auth.sign_in("admin", "not the password").await.is_err());
    assert!(app
        .auth
        .sign_in("nobody", password.expose_secret())
        .await
        .is_err());
}

/// The real binary in a temp data dir (embedded SQLite).
fn binary(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .current_dir(dir)
        .env("OIO_DATA_DIR", dir)
        .env("DATABASE_URL", "")
        .env("OIO_ENGINE__ENABLED", "false")
        .env("OIO_LOG__FILTER", "warn")
        .env_remove("OIO_CONFIG")
        .env_remove("RUST_LOG");
    command
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_tokens_and_adds_users() {
    let dir = tempfile::tempdir().unwrap();
    let out = binary(dir.path())
        .args([
            "token", "create", "--name", "ci", "--role", "operator", "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("oio_{id}_")));
    assert_eq!(created["role"], "operator");

    let list = binary(dir.path()).args(["token", "list"]).output().unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.contains(&id) && list.contains("active"), "{list}");
    assert!(!list.contains(&token), "the value is shown once only");

    let bad = binary(dir.path())
        .args(["token", "create", "--name", "x", "--role", "root"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("role"));

    let mut add = binary(dir.path())
        .args([
            "user",
            "add",
            "ops",
            "--role",
            "operator",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(add.stdin.take().unwrap(), "{OPERATOR_PW}").unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let short = binary(dir.path())
        .args([
            "user",
            "add",
            "weak",
            "--role",
            "viewer",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(short.status.code(), Some(2), "an empty password is refused");

    // The same database, served: the token and the user work, by their roles.
    let settings = support::test_settings(dir.path(), None);
    let app = server::startup::Application::build(&settings)
        .await
        .unwrap();
    let addr = app.local_addr();
    let auth = app.auth().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = bearer_client(&token);
    let created = client
        .post(format!("http://{addr}/api/v1/sessions"))
        .json(&json!({ "title": "t", "prompt": "p", "workspace": "/tmp/x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "an operator token creates sessions");
    let agent = client
        .post(format!("http://{addr}/api/v1/agents"))
        .json(&json!({ "name": "a", "capabilities": ["backend"], "model": "p/m" }))
        .send()
        .await
        .unwrap();
    assert_eq!(agent.status(), 403, "but does not manage agents");
    assert_eq!(
        auth.sign_in("ops", OPERATOR_PW)
            .await
            .unwrap()
            .principal
            .role,
        Role::Operator
    );

    let revoked = binary(dir.path())
        .args(["token", "revoke", &id])
        .output()
        .unwrap();
    assert!(revoked.status.success());
    let status = client
        .get(format!("http://{addr}/api/v1/sessions"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        status, 401,
        "revoked from the CLI, refused by the running server"
    );
    let missing = binary(dir.path())
        .args(["token", "revoke", "ffffffffffff"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(3));
    let _ = stop.send(());
}

#[tokio::test]
async fn serve_creates_the_first_admin_and_says_where_its_password_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = binary(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.contains("dashboard on");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(std::time::Duration::from_secs(60), lines)
        .await
        .expect("serve starts within a minute")
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    let file = dir.path().join("initial-admin-password");
    assert!(text.contains("created user `admin`"), "{text}");
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("/login"), "{text}");
    let password = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(password.trim()),
        "the password is not printed"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn the_wall_screen_can_be_made_public_and_nothing_else_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = support::test_settings(dir.path(), None);
    settings.auth.public_status = true;
    let app = server::startup::Application::build(&settings)
        .await
        .unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let anonymous = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let status = anonymous
        .get(format!("http://{addr}/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    assert!(status.text().await.unwrap().contains("STATUS"));
    for private in ["/", "/sessions", "/api/v1/sessions"] {
        let code = anonymous
            .get(format!("http://{addr}{private}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(code == 303 || code == 401, "{private}: {code}");
    }
    let _ = stop.send(());
}
