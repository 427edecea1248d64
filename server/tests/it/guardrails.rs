//! Guardrails end to end: the REAL `opencode serve` driven by the scripted fake LLM, the engine,
//! real git worktrees and SQLite. A session that passes its token budget, repeats the same failing
//! tool call, or runs past its wall time is aborted on the server and ends `failed` with a typed
//! stop reason — and is not retried, though it has attempts left.
//!
//! Skipped with a visible message where OpenCode is missing, never under CI=true.

use std::time::{Duration, Instant};

use domain::{BudgetMetric, BudgetScope, Session, SessionId, SessionStatus, StopReason};
use secrecy::SecretString;
use serde_json::json;
use server::application::admission::{Admission, AdmissionConfig};
use server::application::guardrails::{BudgetSettings, GuardrailSettings};
use server::application::{CreateSessionRequest, Engine, EngineConfig};
use server::ports::{AgentSessionStatus, SessionAddress, StoredSessionEvent};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::opencode::{self, OpenCodeServer, Options};
use url::Url;

use crate::support;
use crate::support::engine_rig::EngineRig;

const TURN_TIMEOUT: Duration = Duration::from_secs(90);

async fn guarded_rig(test: &str) -> Option<EngineRig> {
    EngineRig::builder(test)
        .worktree_prefix("oio-guard-")
        .build()
        .await
}

/// An engine with `guardrails`, four runners and default admission.
fn engine(rig: &EngineRig, guardrails: GuardrailSettings) -> Engine {
    Engine::start_with(
        rig.deps(),
        EngineConfig {
            max_running: 4,
            ..rig.config("guarded")
        },
        Admission::new(AdmissionConfig::default()),
        guardrails.validate().unwrap(),
    )
}

async fn create(rig: &EngineRig, title: &str) -> Session {
    rig.create(CreateSessionRequest {
        prompt: "Keep working".into(),
        ..rig.request(title)
    })
    .await
}

/// The OpenCode session the engine ran `id` in.
async fn remote_of(rig: &EngineRig, id: SessionId) -> SessionAddress {
    let events = rig.events(id).await;
    let dispatched = events
        .iter()
        .find(|e| e.event_type == "session.dispatched")
        .expect("dispatched");
    SessionAddress::new(
        server::ports::AgentSessionId::new(dispatched.payload["remote_session"].as_str().unwrap()),
        Some(dispatched.payload["directory"].as_str().unwrap().to_owned()),
    )
}

/// The agent requests the fake has answered, once that number stops changing.
async fn settled_agent_requests(rig: &EngineRig) -> usize {
    let mut last = rig.llm.agent_requests().len();
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = rig.llm.agent_requests().len();
        if now == last {
            return now;
        }
        last = now;
    }
}

fn stopped_event(events: &[StoredSessionEvent]) -> &StoredSessionEvent {
    events
        .iter()
        .find(|e| e.event_type == "session.guardrail_stopped")
        .unwrap_or_else(|| panic!("no guardrail_stopped event: {events:#?}"))
}

/// Asserts the session was stopped for `code`, once, with no retry, and its turn aborted on the
/// server (it sits idle and the model hears nothing more).
async fn assert_stopped_for_good(rig: &EngineRig, done: &Session, code: &str) {
    assert_eq!(
        done.status(),
        SessionStatus::Failed,
        "{:?}",
        done.last_error()
    );
    let reason = done.stop_reason().expect("a typed stop reason");
    assert_eq!(reason.code(), code, "{reason:?}");
    assert_eq!(done.last_error(), Some(reason.to_string().as_str()));
    assert_eq!(done.attempt(), 1, "a guardrail stop is never retried");
    let events = rig.events(done.id()).await;
    let stopped = stopped_event(&events);
    assert_eq!(stopped.payload["code"], code);
    assert_eq!(
        serde_json::from_value::<StopReason>(stopped.payload["reason"].clone()).unwrap(),
        *reason
    );
    // Aborted on the server: not busy, and no further model calls.
    let remote = remote_of(rig, done.id()).await;
    let before = settled_agent_requests(rig).await;
    let statuses = server::ports::AgentServer::status(&rig.client(0), remote.directory.as_deref())
        .await
        .unwrap();
    assert!(
        !matches!(
            statuses.get(&remote.id),
            Some(AgentSessionStatus::Busy | AgentSessionStatus::Retry { .. })
        ),
        "the OpenCode session still works: {statuses:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.llm.agent_requests().len(), before);
    // And the stop survives a reload from storage, typed.
    let stored = rig.store.sessions.get(done.id()).await.unwrap().unwrap();
    assert_eq!(stored.stop_reason(), Some(reason));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_past_its_token_budget_is_aborted_and_marked_budget_exceeded() {
    let Some(rig) = guarded_rig("a_session_past_its_token_budget").await else {
        return;
    };
    // A model that never stops calling tools, 3 000 tokens a step.
    rig.llm.set_responder(|_| {
        Some(
            Reply::tool_call(
                "bash",
                json!({ "command": "echo still working", "description": "Echo" }),
            )
            .with_usage(2_000, 1_000),
        )
    });
    let _engine = engine(
        &rig,
        GuardrailSettings {
            session: BudgetSettings {
                max_tokens: Some(7_000),
                max_cost_usd: None,
            },
            ..GuardrailSettings::default()
        },
    );
    let session = create(&rig, "spender").await;
    let done = rig.wait_terminal(session.id()).await;
    assert_stopped_for_good(&rig, &done, "budget_exceeded").await;
    match done.stop_reason().unwrap() {
        StopReason::BudgetExceeded {
            scope,
            metric,
            used,
            limit,
        } => {
            assert_eq!(*scope, BudgetScope::Session);
            assert_eq!(*metric, BudgetMetric::Tokens);
            assert_eq!(*limit, 7_000);
            // Seen on the third step (9 000): the breach is caught live, not at the end.
            assert!(*used > 7_000 && *used <= 12_000, "used {used}");
        }
        other => panic!("unexpected reason {other:?}"),
    }
    // The steps it did take are recorded in its metrics.
    assert!(
        done.metrics().total_tokens() > 7_000,
        "{:?}",
        done.metrics()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_failing_tool_call_repeated_stops_the_session() {
    let Some(rig) = guarded_rig("the_same_failing_tool_call_repeated").await else {
        return;
    };
    // Reads a file that does not exist, again and again, with the same input.
    rig.llm.set_responder(|_| {
        Some(Reply::tool_call(
            "read",
            json!({ "filePath": "does-not-exist.txt" }),
        ))
    });
    let _engine = engine(
        &rig,
        GuardrailSettings {
            max_repeated_failures: Some(3),
            ..GuardrailSettings::default()
        },
    );
    let session = create(&rig, "looper").await;
    let done = rig.wait_terminal(session.id()).await;
    assert_stopped_for_good(&rig, &done, "repeated_tool_failure").await;
    match done.stop_reason().unwrap() {
        StopReason::RepeatedToolFailure { tool, times, .. } => {
            assert_eq!(tool, "read");
            assert_eq!(*times, 3);
        }
        other => panic!("unexpected reason {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_past_its_wall_time_is_stopped_with_that_reason() {
    let Some(rig) = guarded_rig("a_session_past_its_wall_time").await else {
        return;
    };
    // The model never answers.
    rig.llm.set_responder(|_| Some(Reply::hang()));
    let _engine = engine(
        &rig,
        GuardrailSettings {
            max_wall_time_secs: Some(3),
            ..GuardrailSettings::default()
        },
    );
    let session = create(&rig, "sleeper").await;
    let started = Instant::now();
    let done = rig.wait_terminal(session.id()).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped by the wall time, long before the 60 s session timeout"
    );
    assert_eq!(done.stop_reason().map(StopReason::code), Some("wall_time"));
    assert_eq!(done.attempt(), 1);
    assert_eq!(
        stopped_event(&rig.events(done.id()).await).payload["code"],
        "wall_time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_limit_stops_a_session_that_keeps_going() {
    let Some(rig) = guarded_rig("a_step_limit_stops").await else {
        return;
    };
    rig.llm.set_responder(|_| {
        Some(Reply::tool_call(
            "bash",
            json!({ "command": "true", "description": "Nothing" }),
        ))
    });
    let _engine = engine(
        &rig,
        GuardrailSettings {
            max_steps: Some(2),
            ..GuardrailSettings::default()
        },
    );
    let session = create(&rig, "stepper").await;
    let done = rig.wait_terminal(session.id()).await;
    assert_stopped_for_good(&rig, &done, "step_limit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_past_its_budget_has_its_next_session_stopped() {
    let Some(rig) = guarded_rig("an_agent_past_its_budget").await else {
        return;
    };
    server::application::AgentService::new(
        rig.store.agents.clone(),
        rig.store.unit_of_work.clone(),
    )
    .register(server::application::RegisterAgent {
        name: "build".into(),
        capabilities: vec!["backend".into()],
        model: "fake/fake-coder".into(),
        max_concurrency: 2,
    })
    .await
    .unwrap();
    // Every turn: one answer of 3 000 tokens.
    rig.llm
        .set_responder(|_| Some(Reply::text("Done.").with_usage(2_000, 1_000)));
    let _engine = engine(
        &rig,
        GuardrailSettings {
            agent: BudgetSettings {
                max_tokens: Some(5_000),
                max_cost_usd: None,
            },
            ..GuardrailSettings::default()
        },
    );
    let create = |title: &'static str| {
        let lifecycle = &rig.lifecycle;
        let workspace = rig.repo.path().display().to_string();
        async move {
            lifecycle
                .create(CreateSessionRequest {
                    title: title.into(),
                    prompt: "Do it".into(),
                    workspace,
                    agent: Some("build".into()),
                    ..CreateSessionRequest::default()
                })
                .await
                .unwrap()
        }
    };
    // The first session fits (3 000 of 5 000) ...
    let first = rig.wait_terminal(create("first").await.id()).await;
    assert_eq!(
        first.status(),
        SessionStatus::Completed,
        "{:?}",
        first.last_error()
    );
    assert_eq!(first.metrics().total_tokens(), 3_000);
    // ... the second one brings the agent to 6 000: stopped, for the agent's budget.
    let second = rig.wait_terminal(create("second").await.id()).await;
    assert_eq!(
        second.stop_reason(),
        Some(&StopReason::BudgetExceeded {
            scope: BudgetScope::Agent,
            metric: BudgetMetric::Tokens,
            used: 6_000,
            limit: 5_000,
        }),
        "{:?}",
        second.last_error()
    );
    assert_eq!(second.attempt(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_tree_past_its_budget_stops_the_leaf_that_passes_it() {
    use domain::{AgentCapability, TaskStatus};
    use server::application::StartTaskRequest;
    use server::config::OpenCodeServerSettings;
    use server::ports::ChangeSet;
    use server::startup::Application;
    use support::factories::TaskFactory;

    if opencode::binary_or_skip("a_task_tree_past_its_budget").is_none() {
        return;
    }
    let repo = testkit::git::temp_repo().unwrap();
    let llm = FakeLlm::start([]).await.unwrap();
    llm.set_responder(|_| Some(Reply::text("Done.").with_usage(2_000, 1_000)));
    let server_dir = tempfile::tempdir().unwrap();
    let opencode = OpenCodeServer::start(server_dir.path(), &llm, Options::default())
        .await
        .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = support::test_settings(data_dir.path(), None);
    settings.opencode.servers = vec![OpenCodeServerSettings {
        url: Url::parse(opencode.base_url()).unwrap(),
        password: opencode
            .password()
            .map(|p| SecretString::from(p.to_owned())),
        capacity: 2,
    }];
    settings.engine.task_tick_ms = 200;
    // A small estimate per leaf, so the tree's 5 000-token cap admits two leaves.
    for tokens in settings.guardrails.estimate.tokens_per_leaf.values_mut() {
        *tokens = 100;
    }
    let app = Application::build(&settings).await.unwrap();
    let tasks = app.tasks().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    tasks
        .agents
        .register(server::application::RegisterAgent {
            name: "build".into(),
            capabilities: vec!["backend".into()],
            model: "fake/fake-coder".into(),
            max_concurrency: 2,
        })
        .await
        .unwrap();
    // root -> [a, then b]: 3 000 tokens each against a 5 000-token tree.
    let root = TaskFactory::new().title("ship it");
    let a = TaskFactory::new()
        .title("first half")
        .parent(root.id())
        .capabilities(&[AgentCapability::Backend]);
    let b = TaskFactory::new()
        .title("second half")
        .parent(root.id())
        .depends_on(&[a.id()])
        .capabilities(&[AgentCapability::Backend]);
    let (root_id, a_id, b_id) = (root.id(), a.id(), b.id());
    let root = root.subtasks(&[a_id, b_id]);
    let store = server::storage::connect(&settings).await.unwrap();
    let mut changes = ChangeSet::new();
    for task in [root.build(), a.build(), b.build()] {
        changes.insert_task(&task);
    }
    store.unit_of_work.commit(changes).await.unwrap();
    tasks
        .executor
        .start(
            root_id,
            StartTaskRequest {
                workspace: repo.path().display().to_string(),
                max_parallel: Some(1),
                max_tokens: Some(5_000),
                ..StartTaskRequest::default()
            },
        )
        .await
        .unwrap();

    let started = Instant::now();
    let tree = loop {
        let tree = tasks.executor.tree(root_id).await.unwrap();
        if tree[0].status().is_terminal() {
            break tree;
        }
        assert!(started.elapsed() < TURN_TIMEOUT, "tree stuck: {tree:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = |id| tree.iter().find(|t| t.id() == id).unwrap().status();
    assert_eq!(status(a_id), TaskStatus::Completed);
    assert_eq!(status(b_id), TaskStatus::Failed);
    assert_eq!(tree[0].status(), TaskStatus::Failed);
    let b_session = tree
        .iter()
        .find(|t| t.id() == b_id)
        .unwrap()
        .execution()
        .sessions[0];
    let b_session = store.sessions.get(b_session).await.unwrap().unwrap();
    assert_eq!(
        b_session.stop_reason(),
        Some(&StopReason::BudgetExceeded {
            scope: BudgetScope::TaskTree,
            metric: BudgetMetric::Tokens,
            used: 6_000,
            limit: 5_000,
        }),
        "{:?}",
        b_session.last_error()
    );
    let _ = stop.send(());
    let _ = serving.await;
}
