//! The operator commands of the real binary (`session`, `task`, `agent`) against an embedded
//! SQLite store in a temp data dir: JSON and human output, exit codes (2 invalid input naming the
//! field, 3 not found), and that refused commands store nothing.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use domain::{PageRequest, TaskFilter};
use serde_json::Value;
use server::storage::PoolSettings;
use tempfile::TempDir;

use crate::support;

const CRUD: &str = "Add customer records with create, list, edit and delete screens";

/// A data dir (also the working directory, so no `oio.toml` of the repo is picked up).
struct Env {
    dir: TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_server"))
            .args(args)
            .current_dir(self.dir.path())
            .env("OIO_DATA_DIR", self.dir.path())
            .env("DATABASE_URL", "")
            .env("OIO_ENGINE__ENABLED", "false")
            .env_remove("OIO_CONFIG")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .output()
            .expect("the server binary runs")
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let stdout = self.ok(&all);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }

    /// The stored tasks, read straight from the database.
    async fn task_count(&self) -> usize {
        let store = support::store::sqlite_at(
            &self.dir.path().join("oio.db"),
            PoolSettings {
                max_connections: 1,
                acquire_timeout: Duration::from_secs(10),
            },
        )
        .await;
        store
            .tasks
            .list(&TaskFilter::default(), &PageRequest::first(500).unwrap())
            .await
            .unwrap()
            .items
            .len()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn create_session(env: &Env, title: &str, workspace: &Path) -> Value {
    env.json(&[
        "session",
        "create",
        "--title",
        title,
        "--prompt",
        "Write a haiku into poem.txt",
        "--workspace",
        workspace.to_str().unwrap(),
        "--priority",
        "5",
    ])
}

#[test]
fn a_session_is_created_listed_shown_and_cancelled_once() {
    let env = Env::new();
    let repo = testkit::git::temp_repo().unwrap();
    let created = create_session(&env, "Haiku about rust", repo.path());
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "queued");

    let list = env.json(&["session", "list"]);
    let items = list["items"].as_array().unwrap();
    let listed = items
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not listed: {list}"));
    assert_eq!(listed["status"], "queued");
    assert_eq!(listed["title"], "Haiku about rust");
    // The status filter narrows the list.
    let running = env.json(&["session", "list", "--status", "running"]);
    assert!(running["items"].as_array().unwrap().is_empty(), "{running}");

    let shown = env.ok(&["session", "show", &id]);
    assert!(shown.contains("Haiku about rust"), "{shown}");
    assert!(shown.contains("queued"), "{shown}");
    assert!(
        shown.contains("pending -> queued"),
        "the event log: {shown}"
    );

    let cancelled = env.ok(&["session", "cancel", &id, "--reason", "not needed"]);
    assert!(cancelled.contains("cancelled"), "{cancelled}");
    let shown = env.ok(&["session", "show", &id]);
    assert!(shown.contains("cancelled"), "{shown}");
    assert!(
        shown.contains("not needed"),
        "the reason is in the log: {shown}"
    );
    let detail = env.json(&["session", "show", &id]);
    assert_eq!(detail["session"]["status"], "cancelled");
    assert_eq!(detail["events"].as_array().unwrap().len(), 3, "{detail}");

    let again = env.run(&["session", "cancel", &id]);
    assert!(!again.status.success());
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("cannot be cancelled"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn an_empty_title_is_invalid_input_naming_the_field() {
    let env = Env::new();
    let out = env.run(&[
        "session",
        "create",
        "--title",
        "  ",
        "--prompt",
        "p",
        "--workspace",
        "/tmp",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: title: "),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    let list = env.json(&["session", "list"]);
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
}

#[test]
fn an_unknown_session_is_not_found() {
    let env = Env::new();
    let id = uuid::Uuid::new_v4().to_string();
    let out = env.run(&["session", "show", &id]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("session {id} does not exist")),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["session", "cancel", "not-a-uuid"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("error: id: "), "{}", stderr(&out));
}

#[test]
fn agents_are_added_and_listed_and_unknown_capabilities_refused() {
    let env = Env::new();
    let added = env.json(&[
        "agent",
        "add",
        "--name",
        "api",
        "--capabilities",
        "backend,database",
        "--model",
        "fake/fake-coder",
        "--max-concurrency",
        "3",
    ]);
    assert_eq!(added["name"], "api");
    let agents = env.json(&["agent", "list"]);
    let agents = agents.as_array().unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["name"], "api");
    assert_eq!(agents[0]["max_concurrency"], 3);
    let caps: Vec<&str> = agents[0]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(caps, ["backend", "database"]);
    let table = env.ok(&["agent", "list"]);
    assert!(
        table.contains("api") && table.contains("fake/fake-coder"),
        "{table}"
    );

    let out = env.run(&[
        "agent",
        "add",
        "--name",
        "ui",
        "--capabilities",
        "frontend,telepathy",
        "--model",
        "fake/fake-coder",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: capabilities: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.json(&["agent", "list"]).as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_requirement_is_decomposed_stored_and_shown() {
    let env = Env::new();
    let created = env.json(&["task", "create", "--requirement", CRUD, "--max-depth", "1"]);
    let tasks = created["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 7, "{created}");
    assert_eq!(created["started"], false);
    let root = created["root"].as_str().unwrap().to_owned();
    assert_eq!(tasks[0]["id"], root.as_str());
    assert_eq!(env.task_count().await, 7);

    let subtasks: Vec<&str> = tasks[1..]
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    let shown = env.ok(&["task", "show", &root]);
    for title in &subtasks {
        assert!(shown.contains(title), "{title} missing from:\n{shown}");
    }
    assert!(shown.contains("pending"), "{shown}");
    let tree = env.json(&["task", "show", &root]);
    assert_eq!(tree["tasks"].as_array().unwrap().len(), 7);

    let missing = uuid::Uuid::new_v4().to_string();
    let out = env.run(&["task", "show", &missing]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[tokio::test]
async fn starting_on_a_directory_that_is_not_a_repository_stores_nothing() {
    let env = Env::new();
    env.json(&["task", "create", "--requirement", CRUD, "--max-depth", "1"]);
    let before = env.task_count().await;
    assert_eq!(before, 7);
    let not_a_repo = tempfile::tempdir().unwrap();
    let out = env.run(&[
        "task",
        "create",
        "--requirement",
        CRUD,
        "--max-depth",
        "1",
        "--start",
        "--workspace",
        not_a_repo.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: workspace: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.task_count().await, before);
}

#[tokio::test]
async fn a_tree_started_on_a_repository_waits_for_an_agent() {
    let env = Env::new();
    let repo = testkit::git::temp_repo().unwrap();
    let created = env.json(&[
        "task",
        "create",
        "--requirement",
        CRUD,
        "--max-depth",
        "1",
        "--start",
        "--workspace",
        repo.path().to_str().unwrap(),
        "--policy",
        "retry",
        "--retries",
        "2",
    ]);
    assert_eq!(created["started"], true);
    let root = created["root"].as_str().unwrap();
    let tasks = created["tasks"].as_array().unwrap();
    assert_eq!(tasks[0]["status"], "running", "{created}");
    // No agents registered: ready leaves say why they wait.
    let shown = env.ok(&["task", "show", root]);
    assert!(shown.contains("running"), "{shown}");
    assert!(shown.contains("waiting for an agent"), "{shown}");
}
