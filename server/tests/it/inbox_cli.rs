//! `server inbox` of the real binary against an embedded SQLite store, relaying answers to an
//! in-process stand-in for OpenCode: list (open / all, JSON), answer a permission and a question,
//! reject, exit codes (2 invalid input, 3 not found, 1 relay failure) and that a refused or
//! unrelayed answer stores nothing.

use std::process::{Command, Output};
use std::time::Duration;

use chrono::Utc;
use domain::{
    InboxItem, InboxItemId, InboxKind, InboxOption, InboxQuestion, InboxRequest, InboxStatus,
};
use serde_json::{json, Value};
use server::adapters::opencode::{OpenCodeClient, ResiliencePolicy};
use server::ports::AgentServer;
use server::storage::{PoolSettings, Store};
use support::fake_opencode::{FakeOpenCode, Reply};
use tempfile::TempDir;
use uuid::Uuid;

use crate::support;

struct Env {
    dir: TempDir,
    fake: FakeOpenCode,
    store: Store,
    /// The name the binary's fleet gives the fake server.
    server: String,
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = support::store::sqlite_at(
            &dir.path().join("oio.db"),
            PoolSettings {
                max_connections: 1,
                acquire_timeout: Duration::from_secs(10),
            },
        )
        .await;
        let fake = FakeOpenCode::start().await;
        let server = OpenCodeClient::new(fake.url(), None, ResiliencePolicy::default())
            .unwrap()
            .name()
            .to_owned();
        Self {
            dir,
            fake,
            store,
            server,
        }
    }

    async fn seed(&self, request_id: &str, kind: InboxKind) -> InboxItem {
        let item = InboxItem::new(
            InboxItemId::from_uuid(Uuid::new_v4()),
            InboxRequest {
                server: self.server.clone(),
                remote_session: "ses_cli".into(),
                directory: Some("/work/tree".into()),
                session: None,
                request_id: request_id.into(),
                kind,
            },
            Utc::now(),
        );
        self.store.inbox.insert_if_new(&item).await.unwrap().item
    }

    /// Runs the binary off the runtime's threads (the fake server keeps serving meanwhile).
    async fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("OIO_DATA_DIR", self.dir.path())
            .env("DATABASE_URL", "")
            .env("OIO_ENGINE__ENABLED", "false")
            .env("OIO_OPENCODE_URLS", self.fake.url().as_str())
            .env("USER", "carol")
            .env_remove("OIO_CONFIG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        tokio::task::spawn_blocking(move || command.output().expect("the server binary runs"))
            .await
            .unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all).await;
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    async fn status_of(&self, item: &InboxItem) -> InboxStatus {
        self.store.inbox.get(item.id).await.unwrap().unwrap().status
    }
}

fn permission() -> InboxKind {
    InboxKind::Permission {
        permission: "bash".into(),
        patterns: vec!["cargo test".into()],
        always: vec!["cargo *".into()],
    }
}

fn question() -> InboxKind {
    InboxKind::Question {
        questions: vec![InboxQuestion {
            question: "Which colour?\u{1b}[31m".into(),
            header: "Colour".into(),
            options: ["red", "blue"]
                .into_iter()
                .map(|l| InboxOption {
                    label: l.into(),
                    description: String::new(),
                })
                .collect(),
            multiple: false,
            custom: false,
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_commands_list_answer_and_reject_relaying_to_the_server() {
    let env = Env::new().await;
    let perm = env.seed("per_cli", permission()).await;
    let quest = env.seed("que_cli", question()).await;
    let declined = env.seed("que_rej", question()).await;
    for path in [
        "/permission/per_cli/reply",
        "/question/que_cli/reply",
        "/question/que_rej/reject",
    ] {
        env.fake.always("POST", path, Reply::Json(200, json!(true)));
    }

    let open = env.json(&["inbox", "list"]).await;
    assert_eq!(open.as_array().unwrap().len(), 3, "{open:#}");

    // The human table shows the agent's text without its control characters.
    let table = env.run(&["inbox", "list"]).await;
    assert!(table.status.success());
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("cargo test"), "{table}");
    assert!(!table.contains('\u{1b}'), "{table:?}");

    let answered = env
        .json(&["inbox", "answer", &perm.id.to_string(), "--reply", "once"])
        .await;
    assert_eq!(answered["status"], "answered");
    assert_eq!(answered["resolution"]["by"], "cli:carol");
    let relayed = env.fake.requests("POST", "/permission/per_cli/reply");
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].body, Some(json!({"reply": "once"})));

    let answered = env
        .json(&["inbox", "answer", &quest.id.to_string(), "--answer", "blue"])
        .await;
    assert_eq!(
        answered["resolution"]["answer"]["answers"],
        json!([["blue"]])
    );
    assert_eq!(
        env.fake.requests("POST", "/question/que_cli/reply")[0].body,
        Some(json!({"answers": [["blue"]]}))
    );

    env.json(&["inbox", "reject", &declined.id.to_string()])
        .await;
    assert_eq!(env.fake.count("POST", "/question/que_rej/reject"), 1);

    assert_eq!(env.json(&["inbox", "list"]).await, json!([]));
    assert_eq!(
        env.json(&["inbox", "list", "--all"])
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_unrelayed_answers_store_nothing() {
    let env = Env::new().await;
    let perm = env.seed("per_bad", permission()).await;
    let quest = env.seed("que_bad", question()).await;

    let out = env
        .run(&[
            "inbox",
            "answer",
            &perm.id.to_string(),
            "--reply",
            "sometimes",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reply"));

    let out = env
        .run(&[
            "inbox",
            "answer",
            &quest.id.to_string(),
            "--answer",
            "green",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("green"));

    let out = env
        .run(&["inbox", "answer", &perm.id.to_string(), "--answer", "yes"])
        .await;
    assert_eq!(out.status.code(), Some(2), "a permission takes --reply");

    let ghost = Uuid::new_v4().to_string();
    let out = env.run(&["inbox", "reject", &ghost]).await;
    assert_eq!(out.status.code(), Some(3));

    env.fake
        .reply("POST", "/permission/per_bad/reply", [Reply::Status(500)]);
    let out = env
        .run(&["inbox", "answer", &perm.id.to_string(), "--reply", "always"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("relaying"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(env.status_of(&perm).await, InboxStatus::Pending);
    assert_eq!(env.status_of(&quest).await, InboxStatus::Pending);
    assert_eq!(env.fake.count("POST", "/question/que_bad/reply"), 0);
}
