//! End to end: a requirement decomposed into a task tree (CRUD template: model -> repository ->
//! api -> {validation, ui} -> tests) runs through the whole orchestrator — the application as
//! `main` wires it (SQLite, engine, task scheduler) — on TWO REAL OpenCode servers driven by the
//! fake LLM. Each leaf is routed to the agent that fits (a custom OpenCode `ui` agent for the
//! screen, the built-in `build` agent for the rest), runs as its own session in its own worktree,
//! and the tasks after it get its branch, commit and closing words in their prompts.
//!
//! Skipped with a visible message where the OpenCode binary is missing — never under `CI=true`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use domain::{Session, SessionStatus, Task, TaskId, TaskStatus};
use serde_json::{json, Value};
use server::application::decomposition::DecompositionOptions;
use server::application::{RegisterAgent, StartTaskRequest};
use server::config::OpenCodeServerSettings;
use server::startup::Application;
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::opencode::{self, OpenCodeServer, Options};

use crate::support;

const REQUIREMENT: &str = "Add customer records with create, list, edit and delete screens";
const DEADLINE: Duration = Duration::from_secs(240);
const UI_AGENT_PROMPT: &str = "You are the UI agent of the test fleet.";

/// The file each task's session writes, by a word of the task's title.
const FILES: [(&str, &str); 6] = [
    ("Define the data model", "model.txt"),
    ("Implement storage access", "repository.txt"),
    ("Expose create, read", "api.txt"),
    ("Validate input", "validation.txt"),
    ("Build the list and edit screens", "ui.txt"),
    ("Test the create, read", "tests.txt"),
];

/// The text of every message of a request, concatenated.
fn conversation(body: &Value) -> String {
    body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| match &m["content"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The first user message: the session's prompt.
fn first_user_message(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|messages| messages.iter().find(|m| m["role"] == "user"))
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// Per session: first turn writes the task's file with the shell tool (it runs in the session's
/// worktree), second turn says what it did.
fn respond(body: &Value) -> Option<Reply> {
    let prompt = first_user_message(body);
    // The task's own title comes first; its dependencies' titles may follow.
    let (_, file) = FILES
        .iter()
        .filter_map(|entry| prompt.find(entry.0).map(|at| (at, entry)))
        .min_by_key(|(at, _)| *at)?
        .1;
    let answered = body["messages"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
    Some(if answered {
        Reply::text(format!("Wrote {file} with the shell.")).with_usage(900, 20)
    } else {
        Reply::tool_call(
            "bash",
            json!({
                "command": format!("echo done > {file}"),
                "description": format!("Write {file}"),
            }),
        )
        .with_usage(800, 30)
    })
}

async fn wait_root(executor: &server::application::TaskExecutor, root: TaskId) -> Vec<Task> {
    let started = Instant::now();
    loop {
        let tree = executor.tree(root).await.unwrap();
        if tree[0].status().is_terminal() {
            return tree;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the tree did not finish in {DEADLINE:?}: {:#?}",
            tree.iter()
                .map(|t| (
                    t.title().as_str().to_owned(),
                    t.status(),
                    t.execution().note.clone()
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decomposed_task_runs_its_dag_on_real_opencode_servers() {
    if opencode::binary_or_skip("a_decomposed_task_runs_its_dag_on_real_opencode_servers").is_none()
    {
        return;
    }
    let repo = testkit::git::temp_repo().unwrap();
    let llm = FakeLlm::start([]).await.unwrap();
    llm.set_responder(respond);
    // A custom OpenCode agent for UI work, next to the built-in `build`.
    let agents = json!({
        "agent": {
            "ui": {
                "mode": "primary",
                "description": "Builds screens",
                "prompt": UI_AGENT_PROMPT,
            }
        }
    });
    let server_dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut servers: Vec<OpenCodeServer> = Vec::new();
    for dir in &server_dirs {
        servers.push(
            OpenCodeServer::start(
                dir.path(),
                &llm,
                Options::default()
                    .with_password("task-tree-secret")
                    .with_config(agents.clone()),
            )
            .await
            .unwrap(),
        );
    }

    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = support::test_settings(data_dir.path(), None);
    settings.opencode.servers = servers
        .iter()
        .map(|s| OpenCodeServerSettings {
            url: url::Url::parse(s.base_url()).unwrap(),
            password: s
                .password()
                .map(|p| secrecy::SecretString::from(p.to_owned())),
            capacity: 2,
        })
        .collect();
    settings.engine.task_tick_ms = 200;
    settings.engine.session_timeout_secs = 120;
    let app = Application::build(&settings).await.unwrap();
    let tasks = app.tasks().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    for (name, capabilities) in [
        ("build", vec!["backend", "database", "security", "testing"]),
        ("ui", vec!["frontend"]),
    ] {
        tasks
            .agents
            .register(RegisterAgent {
                name: name.into(),
                capabilities: capabilities.into_iter().map(String::from).collect(),
                model: "fake/fake-coder".into(),
                max_concurrency: 2,
            })
            .await
            .unwrap();
    }

    let decomposition = tasks
        .decomposition
        .decompose_and_store(
            REQUIREMENT,
            &DecompositionOptions {
                max_depth: 1,
                ..DecompositionOptions::default()
            },
        )
        .await
        .unwrap();
    println!("{}", decomposition.render());
    let root = decomposition.root;
    let key = |k: &str| decomposition.by_key(k).unwrap().id();

    let started = tasks
        .executor
        .start(
            root,
            StartTaskRequest {
                workspace: repo.path().display().to_string(),
                max_parallel: Some(2),
                policy: None,
                ..StartTaskRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(started.status(), TaskStatus::Running);

    let tree = wait_root(&tasks.executor, root).await;
    let by_id: BTreeMap<TaskId, Task> = tree.iter().map(|t| (t.id(), t.clone())).collect();
    let summary: Vec<_> = tree
        .iter()
        .map(|t| {
            (
                t.title().as_str().to_owned(),
                t.status(),
                t.execution().note.clone(),
            )
        })
        .collect();
    assert_eq!(tree[0].status(), TaskStatus::Completed, "{summary:#?}");
    assert_eq!(tree.len(), 7);

    // Every leaf ran exactly one session, of the agent routing chose, and completed.
    let store = server::storage::connect(&settings).await.unwrap();
    let mut sessions: BTreeMap<String, Session> = BTreeMap::new();
    for k in ["model", "repository", "api", "validation", "ui", "tests"] {
        let task = &by_id[&key(k)];
        assert_eq!(task.status(), TaskStatus::Completed, "{k}: {summary:#?}");
        assert_eq!(task.execution().sessions.len(), 1, "{k}");
        let session = store
            .sessions
            .get(task.execution().sessions[0])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(session.status(), SessionStatus::Completed, "{k}");
        assert_eq!(session.parent_task(), Some(task.id()), "{k}");
        let assignment = task.assignment().expect("routed");
        assert_eq!(
            session.agent().map(|a| a.as_str()),
            Some(assignment.agent.as_str())
        );
        let expected = if k == "ui" { "ui" } else { "build" };
        assert_eq!(
            assignment.agent, expected,
            "{k}: {}",
            assignment.explanation
        );
        assert!(assignment
            .explanation
            .starts_with(&format!("chose {expected}")));
        let result = task.execution().result.as_ref().expect("result recorded");

        let file = FILES
            .iter()
            .find(|(title, _)| task.title().as_str().contains(title))
            .unwrap()
            .1;
        assert_eq!(result.files, vec![file.to_owned()], "{k}");
        assert!(result.commit.is_some(), "{k}: its work is committed");
        assert_eq!(result.summary, format!("Wrote {file} with the shell."));
        sessions.insert(k.to_owned(), session);
    }
    println!(
        "routing of the ui task:\n{}",
        by_id[&key("ui")].assignment().unwrap().explanation
    );

    // Dependency order: nothing was created before what it depends on had finished.
    for (after, before) in [
        ("repository", "model"),
        ("api", "repository"),
        ("validation", "api"),
        ("ui", "api"),
        ("tests", "validation"),
        ("tests", "ui"),
    ] {
        assert!(
            sessions[after].created_at() >= sessions[before].finished_at().unwrap(),
            "{after} started before {before} finished"
        );
    }
    // Parallelism: validation and ui were both under way at once.
    let (v, u) = (&sessions["validation"], &sessions["ui"]);
    assert!(
        v.created_at() < u.finished_at().unwrap() && u.created_at() < v.finished_at().unwrap(),
        "validation and ui should overlap"
    );

    // Results flow into dependents' prompts: branch, commit and closing words of each dependency.
    let model = by_id[&key("model")].execution().result.clone().unwrap();
    let repository_prompt = sessions["repository"].prompt().as_str();
    assert!(repository_prompt.contains(model.branch.as_deref().unwrap()));
    assert!(repository_prompt.contains(model.commit.as_deref().unwrap()));
    assert!(repository_prompt.contains("Wrote model.txt with the shell."));
    let tests_prompt = sessions["tests"].prompt().as_str();
    for dependency in ["validation", "ui"] {
        let result = by_id[&key(dependency)].execution().result.clone().unwrap();
        assert!(
            tests_prompt.contains(result.commit.as_deref().unwrap()),
            "{dependency}"
        );
    }
    // …and really reached the model through OpenCode, as did the ui agent's own system prompt.
    let requests = llm.agent_requests();
    let commit = model.commit.unwrap();
    assert!(
        requests.iter().any(
            |r| first_user_message(&r.body).contains("Implement storage access")
                && conversation(&r.body).contains(&commit)
        ),
        "the repository session's request carried the model task's commit"
    );
    assert!(
        requests.iter().any(|r| first_user_message(&r.body)
            .contains("Build the list and edit screens")
            && conversation(&r.body).contains(UI_AGENT_PROMPT)),
        "the ui task ran as OpenCode's `ui` agent"
    );

    // The agents' track records grew per capability.
    let ui = tasks.agents.get("ui").await.unwrap();
    assert_eq!(ui.performance().finished_sessions(), 1);
    let build = tasks.agents.get("build").await.unwrap();
    assert_eq!(build.performance().finished_sessions(), 5);

    // Both servers took part.
    let mut servers_used = std::collections::BTreeSet::new();
    for session in sessions.values() {
        for event in store.sessions.events(session.id()).await.unwrap() {
            if event.event_type == "session.dispatched" {
                servers_used.insert(event.payload["server"].as_str().unwrap().to_owned());
            }
        }
    }
    println!("servers used: {servers_used:?}");

    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
