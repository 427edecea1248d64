//! The human-in-the-loop inbox end to end.
//!
//! With the REAL `opencode serve` (driven by the scripted fake LLM) and the whole orchestrator
//! (engine, inbox watcher, REST API) on a random port: a permission request pauses a session
//! until an operator answers it through the API; a question is answered by a policy rule. With an
//! in-process stand-in for OpenCode: unanswered items escalate, a failed relay stores nothing,
//! and requests settled elsewhere expire.
//!
//! The real-OpenCode tests are skipped with a visible message where the binary is missing, never
//! under CI=true.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use domain::{
    InboxAnswer, InboxItem, InboxKind, InboxReply, InboxRequest, InboxStatus, Role, SessionId,
};
use serde_json::{json, Value};
use server::adapters::opencode::{Fleet, OpenCodeClient, ResiliencePolicy};
use server::application::{InboxService, InboxServiceError, InboxSettings};
use server::config::Settings;
use server::ports::{AgentServer, AgentServers, InboxFilter};
use server::startup::Application;
use server::storage::{PoolSettings, Store};
use support::fake_opencode::{self, FakeOpenCode, SseStep};
use tempfile::TempDir;
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::opencode::{self, OpenCodeServer, Options};
use tokio::sync::oneshot;

use crate::support;

const TURN_TIMEOUT: Duration = Duration::from_secs(90);

/// The orchestrator serving one real OpenCode server, with an operator's API client.
struct Orchestrator {
    base: String,
    operator: reqwest::Client,
    llm: FakeLlm,
    repo: TempDir,
    _opencode: OpenCodeServer,
    _data_dir: TempDir,
    _worktrees: TempDir,
    _stop: oneshot::Sender<()>,
}

impl Orchestrator {
    /// `None` (skipped) where the OpenCode binary is missing outside CI.
    async fn start(test: &str, opencode_config: Value, inbox_toml: &str) -> Option<Self> {
        opencode::binary_or_skip(test)?;
        let repo = testkit::git::temp_repo().unwrap();
        let llm = FakeLlm::start([]).await.unwrap();
        let server = OpenCodeServer::start(
            repo.path(),
            &llm,
            Options::default().with_config(opencode_config),
        )
        .await
        .unwrap();
        let data_dir = tempfile::tempdir().unwrap();
        let worktrees = tempfile::Builder::new()
            .prefix("oio-inbox-worktrees-")
            .tempdir_in(std::env::temp_dir().canonicalize().unwrap())
            .unwrap();
        let config = data_dir.path().join("oio.toml");
        std::fs::write(&config, inbox_toml).unwrap();
        let env = vec![
            ("OIO_LISTEN".to_string(), "127.0.0.1:0".to_string()),
            (
                "OIO_DATA_DIR".to_string(),
                data_dir.path().display().to_string(),
            ),
            ("OIO_LOG__FILTER".to_string(), "warn".to_string()),
            (
                "OIO_OPENCODE_URLS".to_string(),
                server.base_url().to_string(),
            ),
            (
                "OIO_WORKTREES__ROOT".to_string(),
                worktrees.path().display().to_string(),
            ),
        ];
        let settings = Settings::load_from(Some(&config), env).expect("settings are valid");
        server::telemetry::init(&settings.log);
        let app = Application::build(&settings).await.expect("app starts");
        let base = format!("http://{}", app.local_addr());
        let token = app
            .auth()
            .issue_token("operator-1", Role::Operator, "tests", None)
            .await
            .unwrap();
        let operator = support::bearer_client(secrecy::ExposeSecret::expose_secret(&token.secret));
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Some(Self {
            base,
            operator,
            llm,
            repo,
            _opencode: server,
            _data_dir: data_dir,
            _worktrees: worktrees,
            _stop: stop,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.operator.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .operator
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn create_session(&self, title: &str) -> SessionId {
        let (status, body) = self
            .post(
                "/api/v1/sessions",
                json!({
                    "title": title,
                    "prompt": "Do the thing",
                    "workspace": self.repo.path().display().to_string(),
                }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Polls `path` until `done` accepts its body.
    async fn wait_for(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let (status, body) = self.get(path).await;
            if status == 200 && done(&body) {
                return body;
            }
            assert!(
                start.elapsed() < TURN_TIMEOUT,
                "waited {TURN_TIMEOUT:?} for {what}; last {path}: {status} {body:#}; \
                 LLM requests: {}",
                self.llm.requests().len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_session_status(&self, id: SessionId, status: &str) -> Value {
        self.wait_for(
            &format!("/api/v1/sessions/{id}"),
            &format!("session {status}"),
            |s| s["status"] == status || is_terminal(s),
        )
        .await
    }
}

fn is_terminal(session: &Value) -> bool {
    matches!(
        session["status"].as_str(),
        Some("completed" | "failed" | "cancelled" | "timed_out")
    )
}

fn has_tool_results(body: &Value) -> bool {
    body["messages"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"))
}

fn event_types(events: &Value) -> Vec<String> {
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permission_request_waits_for_an_operator_answer_through_the_api() {
    let Some(rig) = Orchestrator::start(
        "a_permission_request_waits_for_an_operator_answer_through_the_api",
        json!({"permission": {"edit": "ask", "bash": "ask"}}),
        "[inbox]\nescalate_after_secs = 600\n",
    )
    .await
    else {
        return;
    };
    // The agent writes a file (which asks for `edit`), then ends its turn.
    rig.llm.set_responder(|body| {
        Some(if has_tool_results(body) {
            Reply::text("done")
        } else {
            Reply::tool_call(
                "write",
                json!({"filePath": "hello.txt", "content": "hello from the inbox\n"}),
            )
        })
    });
    let session = rig.create_session("inbox permission").await;

    let list = rig
        .wait_for("/api/v1/inbox", "a pending permission request", |b| {
            b["items"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    let item = &list["items"][0];
    assert_eq!(item["status"], "pending", "{item:#}");
    assert_eq!(item["kind"]["type"], "permission");
    assert_eq!(item["kind"]["permission"], "edit");
    assert_eq!(
        item["session"],
        session.to_string(),
        "mapped to our session"
    );
    let directory = PathBuf::from(item["directory"].as_str().expect("directory known"));
    assert!(
        item["request_id"].as_str().unwrap().starts_with("per"),
        "{item:#}"
    );
    let id = item["id"].as_str().unwrap().to_owned();

    // The session waits for the answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, waiting) = rig.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(waiting["status"], "running", "{waiting:#}");
    assert!(!directory.join("hello.txt").exists());

    // A bad answer is refused, naming the field; nothing is relayed.
    let (status, body) = rig
        .post(
            &format!("/api/v1/inbox/{id}/answer"),
            json!({"answers": [["yes"]]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "answers");
    let (status, body) = rig
        .post(
            &format!("/api/v1/inbox/{id}/answer"),
            json!({"reply": "once", "colour": "red"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "colour");

    let (status, answered) = rig
        .post(
            &format!("/api/v1/inbox/{id}/answer"),
            json!({"reply": "once"}),
        )
        .await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["status"], "answered");
    assert_eq!(answered["resolution"]["by"], "token:operator-1");
    assert_eq!(answered["resolution"]["answer"]["reply"], "once");

    let done = rig.wait_session_status(session, "completed").await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(
        std::fs::read_to_string(directory.join("hello.txt")).unwrap(),
        "hello from the inbox\n"
    );

    // Answered once: a second answer conflicts; the item reads back answered by the operator.
    let (status, body) = rig
        .post(
            &format!("/api/v1/inbox/{id}/answer"),
            json!({"reply": "reject"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, item) = rig.get(&format!("/api/v1/inbox/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(item["status"], "answered");
    assert_eq!(item["resolution"]["by"], "token:operator-1");
    let (_, open) = rig.get("/api/v1/inbox?status=open").await;
    assert_eq!(open["items"], json!([]));
    let (_, all) = rig.get("/api/v1/inbox?status=all").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    let (status, body) = rig.get("/api/v1/inbox?status=closed").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "status");

    // The session's log (and so the live stream) carries the inbox events.
    let (_, events) = rig.get(&format!("/api/v1/sessions/{session}/events")).await;
    let types = event_types(&events);
    assert!(types.contains(&"inbox.asked".to_owned()), "{types:?}");
    assert!(types.contains(&"inbox.answered".to_owned()), "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_question_is_answered_by_a_policy_rule() {
    let Some(rig) = Orchestrator::start(
        "a_question_is_answered_by_a_policy_rule",
        json!({"permission": {"question": "allow"}}),
        r#"
[inbox]
escalate_after_secs = 600

[[inbox.policy]]
name = "no-webfetch"
kind = "permission"
permission = "webfetch"
answer = "reject"

[[inbox.policy]]
name = "pick-blue"
kind = "question"
answer = { label = "blue" }
"#,
    )
    .await
    else {
        return;
    };
    rig.llm.set_responder(|body| {
        Some(if has_tool_results(body) {
            Reply::text("done")
        } else {
            Reply::tool_call(
                "question",
                json!({"questions": [{
                    "question": "Which colour should the button be?",
                    "header": "Colour",
                    "options": [
                        {"label": "red", "description": "warm"},
                        {"label": "blue", "description": "cool"}
                    ]
                }]}),
            )
        })
    });
    let session = rig.create_session("inbox question").await;
    let done = rig.wait_session_status(session, "completed").await;
    assert_eq!(done["status"], "completed", "{done:#}");

    let (_, all) = rig.get("/api/v1/inbox?status=all").await;
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{all:#}");
    let item = &items[0];
    assert_eq!(item["kind"]["type"], "question");
    assert_eq!(item["kind"]["questions"][0]["options"][1]["label"], "blue");
    assert_eq!(item["status"], "answered", "{item:#}");
    assert_eq!(item["resolution"]["by"], "policy:pick-blue");
    assert_eq!(item["resolution"]["answer"]["answers"], json!([["blue"]]));
    assert_eq!(item["session"], session.to_string());

    // The model's next turn carried the tool result with the chosen label.
    let agent = rig.llm.agent_requests();
    assert!(
        agent[0].tool_names().contains(&"question"),
        "{:?}",
        agent[0].tool_names()
    );
    let results: Vec<String> = agent
        .iter()
        .flat_map(|r| r.tool_results())
        .map(|m| m["content"].to_string())
        .collect();
    assert!(
        results.iter().any(|r| r.contains("blue")),
        "tool results: {results:?}"
    );
}

// --- the service against an in-process stand-in for OpenCode ---------------------------------

const POOL: PoolSettings = PoolSettings {
    max_connections: 4,
    acquire_timeout: Duration::from_secs(10),
};

struct Bench {
    store: Store,
    fake: FakeOpenCode,
    server: Arc<dyn AgentServer>,
    fleet: Arc<Fleet>,
    _dir: TempDir,
}

impl Bench {
    async fn start() -> Self {
        let (store, dir) = support::store::sqlite_with(POOL).await;
        let fake = FakeOpenCode::start().await;
        let client = OpenCodeClient::new(fake.url(), None, ResiliencePolicy::default()).unwrap();
        let fleet = Arc::new(Fleet::new([(client, 1)]));
        let server = AgentServers::get(fleet.as_ref(), &fleet.report()[0].server).unwrap();
        Self {
            store,
            fake,
            server,
            fleet,
            _dir: dir,
        }
    }

    /// The server takes the reply to `path` (OpenCode answers `true`).
    fn accepts(&self, path: &str) {
        self.fake
            .always("POST", path, fake_opencode::Reply::Json(200, json!(true)));
    }

    fn service(&self, settings: &InboxSettings) -> Arc<InboxService> {
        Arc::new(
            InboxService::from_settings(
                settings,
                self.store.inbox.clone(),
                self.store.unit_of_work.clone(),
                self.fleet.clone(),
            )
            .unwrap(),
        )
    }

    fn permission(&self, request_id: &str, permission: &str) -> InboxRequest {
        InboxRequest {
            server: self.server.name().to_owned(),
            remote_session: "ses_1".into(),
            directory: Some("/work/tree".into()),
            session: None,
            request_id: request_id.into(),
            kind: InboxKind::Permission {
                permission: permission.into(),
                patterns: vec!["src/main.rs".into()],
                always: vec!["*".into()],
            },
        }
    }
}

fn settings(escalate_after_secs: u64) -> InboxSettings {
    InboxSettings {
        escalate_after_secs,
        policy: Vec::new(),
    }
}

#[tokio::test]
async fn unanswered_items_escalate_after_the_configured_time() {
    let bench = Bench::start().await;
    let inbox = bench.service(&settings(60));
    let waiting = inbox
        .record(bench.permission("per_wait", "edit"))
        .await
        .unwrap();
    let answered = inbox
        .record(bench.permission("per_done", "edit"))
        .await
        .unwrap();
    bench.accepts("/permission/per_done/reply");
    inbox
        .answer(
            answered.id,
            InboxAnswer::Permission {
                reply: InboxReply::Once,
                message: None,
            },
            "alice",
        )
        .await
        .unwrap();

    // Not yet due.
    let early = inbox
        .escalate_overdue(Utc::now() + TimeDelta::seconds(30))
        .await
        .unwrap();
    assert!(early.is_empty(), "{early:?}");
    // At the microsecond precision the stores keep.
    let late = (Utc::now() + TimeDelta::seconds(61))
        .duration_trunc(TimeDelta::microseconds(1))
        .unwrap();
    let escalated = inbox.escalate_overdue(late).await.unwrap();
    assert_eq!(
        escalated.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![waiting.id]
    );
    let read = inbox.get(waiting.id).await.unwrap();
    assert_eq!(read.status, InboxStatus::Escalated);
    assert_eq!(read.escalated_at, Some(late));
    // Escalated once; still open and answerable.
    assert!(inbox.escalate_overdue(late).await.unwrap().is_empty());
    assert_eq!(inbox.list(InboxFilter::Open, 10).await.unwrap().len(), 1);
    assert_eq!(
        inbox.get(answered.id).await.unwrap().status,
        InboxStatus::Answered
    );
}

#[tokio::test]
async fn the_watchers_sweep_escalates_on_its_own() {
    let bench = Bench::start().await;
    let inbox = bench.service(&settings(1));
    let item = inbox
        .record(bench.permission("per_sweep", "edit"))
        .await
        .unwrap();
    let _watch = inbox.watch(Vec::new());
    let start = Instant::now();
    while inbox.get(item.id).await.unwrap().status != InboxStatus::Escalated {
        assert!(start.elapsed() < Duration::from_secs(10), "never escalated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_failed_relay_stores_nothing_and_the_item_stays_pending() {
    let bench = Bench::start().await;
    let inbox = bench.service(&settings(600));
    let item = inbox
        .record(bench.permission("per_fail", "edit"))
        .await
        .unwrap();
    bench.fake.reply(
        "POST",
        "/permission/per_fail/reply",
        [fake_opencode::Reply::Status(500)],
    );
    bench.accepts("/permission/per_fail/reply");
    let answer = InboxAnswer::Permission {
        reply: InboxReply::Always,
        message: None,
    };
    let err = inbox
        .answer(item.id, answer.clone(), "alice")
        .await
        .unwrap_err();
    assert!(matches!(err, InboxServiceError::Relay { .. }), "{err:?}");
    let read = inbox.get(item.id).await.unwrap();
    assert_eq!(read.status, InboxStatus::Pending);
    assert_eq!(read.resolution, None);
    assert_eq!(read.version, item.version);

    // The next try goes through, in the item's directory.
    let answered = inbox.answer(item.id, answer, "alice").await.unwrap();
    assert_eq!(answered.status, InboxStatus::Answered);
    let relayed = bench.fake.requests("POST", "/permission/per_fail/reply");
    assert_eq!(relayed.len(), 2);
    assert_eq!(relayed[1].body, Some(json!({"reply": "always"})));
    assert!(
        relayed[1]
            .query
            .as_deref()
            .is_some_and(|q| q.contains("directory=%2Fwork%2Ftree")),
        "{:?}",
        relayed[1].query
    );
}

#[tokio::test]
async fn policy_rules_answer_at_once_and_fall_back_to_people_when_the_relay_fails() {
    let bench = Bench::start().await;
    let settings: InboxSettings = config::Config::builder()
        .add_source(config::File::from_str(
            r#"
            escalate_after_secs = 600
            [[policy]]
            name = "no-webfetch"
            kind = "permission"
            permission = "webfetch"
            answer = "reject"
            "#,
            config::FileFormat::Toml,
        ))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap();
    let inbox = bench.service(&settings);
    bench.accepts("/permission/per_fetch/reply");
    let rejected = inbox
        .record(bench.permission("per_fetch", "webfetch"))
        .await
        .unwrap();
    assert_eq!(rejected.status, InboxStatus::Answered);
    assert_eq!(rejected.resolution.unwrap().by, "policy:no-webfetch");
    assert_eq!(
        bench.fake.requests("POST", "/permission/per_fetch/reply")[0].body,
        Some(json!({"reply": "reject"}))
    );
    // Not matched: left to people.
    let edit = inbox
        .record(bench.permission("per_edit", "edit"))
        .await
        .unwrap();
    assert_eq!(edit.status, InboxStatus::Pending);
    // Matched, but the server refuses: pending for an operator.
    bench.fake.reply(
        "POST",
        "/permission/per_fetch2/reply",
        [fake_opencode::Reply::Status(500)],
    );
    let failed = inbox
        .record(bench.permission("per_fetch2", "webfetch"))
        .await
        .unwrap();
    assert_eq!(failed.status, InboxStatus::Pending);
}

#[tokio::test]
async fn the_watcher_records_asked_requests_once_and_expires_those_settled_elsewhere() {
    let bench = Bench::start().await;
    let inbox = bench.service(&settings(600));
    let asked = |id: &str| {
        SseStep::Event(fake_opencode::event(
            &format!("evt_{id}"),
            "permission.asked",
            json!({"id": id, "sessionID": "ses_w", "permission": "bash",
                   "patterns": ["ls"], "always": ["ls *"], "metadata": {}}),
        ))
    };
    bench.fake.stream(vec![
        fake_opencode::connected("evt_c"),
        asked("per_a"),
        asked("per_a"),
        asked("per_b"),
        SseStep::Event(fake_opencode::event(
            "evt_r",
            "permission.replied",
            json!({"sessionID": "ses_w", "requestID": "per_b", "reply": "once"}),
        )),
        SseStep::Hold,
    ]);
    let _watch = inbox.watch(vec![bench.server.clone()]);
    let start = Instant::now();
    let items = loop {
        let items = inbox.list(InboxFilter::All, 10).await.unwrap();
        if items.len() == 2 && items.iter().any(|i| i.status == InboxStatus::Expired) {
            break items;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "watcher did not record: {items:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let by_request = |r: &str| -> &InboxItem { items.iter().find(|i| i.request_id == r).unwrap() };
    assert_eq!(by_request("per_a").status, InboxStatus::Pending);
    assert_eq!(by_request("per_a").remote_session, "ses_w");
    assert_eq!(by_request("per_b").status, InboxStatus::Expired);
    assert_eq!(by_request("per_b").resolution, None);
}
