//! Running task trees through the application layer, on SQLite and PostgreSQL, without an engine:
//! the test plays the sessions' outcomes itself. Racing replicas start every leaf exactly once;
//! a leaf nobody can take waits with a note until an agent appears; bad start requests are
//! refused naming the field; a cancelled tree stops its sessions and ends `cancelled`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::{
    AgentCapability, FailurePolicy, SessionFilter, SessionId, SessionStatus, Task, TaskId,
    TaskStatus,
};
use futures_util::future::join_all;
use server::application::{
    AgentService, ExecutionError, RegisterAgent, SessionLifecycle, StartTaskRequest, TaskExecutor,
    TaskRouter,
};
use server::ports::{ChangeSet, QueueOp};
use server::storage::{PoolSettings, Store};
use support::factories::TaskFactory;
use tempfile::TempDir;

use crate::support;

const POOL: PoolSettings = PoolSettings {
    max_connections: 8,
    acquire_timeout: Duration::from_secs(10),
};

fn executor(store: &Store) -> TaskExecutor {
    let lifecycle = Arc::new(SessionLifecycle::new(
        store.sessions.clone(),
        store.unit_of_work.clone(),
        store.queue.clone(),
        1,
    ));
    let router = Arc::new(TaskRouter::new(
        store.tasks.clone(),
        store.agents.clone(),
        store.queue.clone(),
        store.unit_of_work.clone(),
    ));
    TaskExecutor::new(
        store.tasks.clone(),
        store.sessions.clone(),
        store.unit_of_work.clone(),
        lifecycle,
        router,
        4,
    )
}

async fn register(store: &Store, name: &str, capabilities: &[&str]) {
    AgentService::new(store.agents.clone(), store.unit_of_work.clone())
        .register(RegisterAgent {
            name: name.into(),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            model: "fake/fake-coder".into(),
            max_concurrency: 4,
        })
        .await
        .unwrap();
}

/// root -> [a, b, c after a and b]; returns (root, a, b, c).
async fn diamond(store: &Store, c_needs: AgentCapability) -> (TaskId, TaskId, TaskId, TaskId) {
    let root = TaskFactory::new().title("ship the feature");
    let a = TaskFactory::new()
        .title("write the schema")
        .parent(root.id())
        .capabilities(&[AgentCapability::Database]);
    let b = TaskFactory::new()
        .title("write the endpoint")
        .parent(root.id())
        .capabilities(&[AgentCapability::Backend]);
    let c = TaskFactory::new()
        .title("wire it up")
        .parent(root.id())
        .depends_on(&[a.id(), b.id()])
        .capabilities(&[c_needs]);
    let ids = (root.id(), a.id(), b.id(), c.id());
    let root = root.subtasks(&[ids.1, ids.2, ids.3]);
    let mut changes = ChangeSet::new();
    for task in [root.build(), a.build(), b.build(), c.build()] {
        changes.insert_task(&task);
    }
    store.unit_of_work.commit(changes).await.unwrap();
    ids
}

fn repo() -> TempDir {
    testkit::git::temp_repo().unwrap()
}

fn start_request(repo: &TempDir) -> StartTaskRequest {
    StartTaskRequest {
        workspace: repo.path().display().to_string(),
        max_parallel: Some(4),
        policy: Some(FailurePolicy::FailFast),
        ..StartTaskRequest::default()
    }
}

async fn task(store: &Store, id: TaskId) -> Task {
    store.tasks.get(id).await.unwrap().unwrap()
}

/// Plays the engine: the session runs and ends in `status` (its queue row is dropped).
async fn finish_session(store: &Store, id: SessionId, status: SessionStatus) {
    let mut session = store.sessions.get(id).await.unwrap().unwrap();
    let now = Utc::now();
    let mut changes = ChangeSet::new();
    changes.event(&session.start(now).unwrap());
    match status {
        SessionStatus::Completed => changes.event(&session.complete(now).unwrap()),
        _ => changes.event(&session.fail("the agent gave up".into(), now).unwrap()),
    };
    changes
        .update_session(&session)
        .queue(QueueOp::RemoveWaiting { session: id });
    store.unit_of_work.commit(changes).await.unwrap();
}

async fn sessions_of(store: &Store, task: TaskId) -> Vec<SessionId> {
    let filter = SessionFilter {
        parent_task: Some(task),
        ..SessionFilter::default()
    };
    store
        .sessions
        .list(&filter, &Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| s.id())
        .collect()
}

async fn racing_replicas_start_each_leaf_once(store: Store) {
    register(&store, "builder", &["backend", "database"]).await;
    let (root, a, b, c) = diamond(&store, AgentCapability::Backend).await;
    let repo = repo();
    let replicas = [executor(&store), executor(&store)];
    let started = replicas[0].start(root, start_request(&repo)).await.unwrap();
    assert_eq!(started.status(), TaskStatus::Running);
    assert_eq!(started.execution().run.as_ref().unwrap().max_parallel, 4);

    // a and b run; many concurrent advances from two replicas change nothing.
    let rounds = join_all((0..8).map(|i| replicas[i % 2].advance(root))).await;
    for report in rounds {
        let report = report.unwrap();
        assert!(report.started.is_empty(), "{report:?}");
    }
    for leaf in [a, b] {
        let t = task(&store, leaf).await;
        assert_eq!(t.status(), TaskStatus::Running);
        assert_eq!(t.assignment().unwrap().agent, "builder");
        assert_eq!(sessions_of(&store, leaf).await, t.execution().sessions);
        let session = store
            .sessions
            .get(t.execution().sessions[0])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(session.status(), SessionStatus::Queued);
        assert_eq!(session.agent().unwrap().as_str(), "builder");
    }
    assert_eq!(task(&store, c).await.status(), TaskStatus::Pending);

    for leaf in [a, b] {
        let session = task(&store, leaf).await.execution().sessions[0];
        finish_session(&store, session, SessionStatus::Completed).await;
    }
    // Both replicas see the finished sessions at once: c must start exactly once.
    let rounds = join_all((0..8).map(|i| replicas[i % 2].advance(root))).await;
    let started: usize = rounds.into_iter().map(|r| r.unwrap().started.len()).sum();
    assert_eq!(started, 1, "one session for c, whoever won");
    let c_task = task(&store, c).await;
    assert_eq!(c_task.status(), TaskStatus::Running);
    assert_eq!(sessions_of(&store, c).await.len(), 1);
    assert_eq!(task(&store, a).await.status(), TaskStatus::Completed);
    // The prompt names what a and b left.
    let c_session = store
        .sessions
        .get(c_task.execution().sessions[0])
        .await
        .unwrap()
        .unwrap();
    let prompt = c_session.prompt().as_str();
    assert!(prompt.starts_with("wire it up"), "{prompt}");
    assert!(prompt.contains("write the schema") && prompt.contains("write the endpoint"));
    assert!(prompt.contains("This is one step of: ship the feature."));

    finish_session(
        &store,
        c_task.execution().sessions[0],
        SessionStatus::Completed,
    )
    .await;
    let report = replicas[1].advance(root).await.unwrap();
    assert_eq!(report.root_status, Some(TaskStatus::Completed));
    assert_eq!(task(&store, root).await.status(), TaskStatus::Completed);
}

async fn a_leaf_nobody_can_take_waits_until_an_agent_appears(store: Store) {
    register(&store, "builder", &["backend", "database"]).await;
    let (root, a, b, c) = diamond(&store, AgentCapability::Devops).await;
    let repo = repo();
    let executor = executor(&store);
    executor.start(root, start_request(&repo)).await.unwrap();
    for leaf in [a, b] {
        let session = task(&store, leaf).await.execution().sessions[0];
        finish_session(&store, session, SessionStatus::Completed).await;
    }
    let report = executor.advance(root).await.unwrap();
    assert_eq!(report.unroutable, 1);
    let waiting = task(&store, c).await;
    assert_eq!(waiting.status(), TaskStatus::Ready);
    let note = waiting.execution().note.clone().unwrap();
    assert!(note.starts_with("waiting for an agent"), "{note}");
    assert!(note.contains("devops"), "{note}");
    // Asking again changes nothing (no write per tick).
    executor.advance(root).await.unwrap();
    assert_eq!(task(&store, c).await.version(), waiting.version());

    // A lone root task is its own leaf: it waits `ready` for an agent too, and the scheduler's
    // pass over started trees (running AND ready roots) picks it up.
    let lone = TaskFactory::new()
        .title("set up the pipeline")
        .capabilities(&[AgentCapability::Devops])
        .build();
    let mut changes = ChangeSet::new();
    changes.insert_task(&lone);
    store.unit_of_work.commit(changes).await.unwrap();
    let started = executor
        .start(lone.id(), start_request(&repo))
        .await
        .unwrap();
    assert_eq!(started.status(), TaskStatus::Ready);
    assert!(started
        .execution()
        .note
        .as_deref()
        .unwrap()
        .starts_with("waiting for an agent"));

    register(&store, "ops", &["devops"]).await;
    assert!(
        executor.advance_all().await.unwrap() >= 2,
        "both trees advanced"
    );
    let lone = task(&store, lone.id()).await;
    assert_eq!(lone.status(), TaskStatus::Running);
    assert_eq!(lone.assignment().unwrap().agent, "ops");
    assert_eq!(sessions_of(&store, lone.id()).await.len(), 1);
    assert!(
        report.started.is_empty(),
        "c was started by advance_all already"
    );
    let running = task(&store, c).await;
    assert_eq!(running.status(), TaskStatus::Running);
    assert_eq!(running.assignment().unwrap().agent, "ops");
    assert_eq!(running.execution().note, None);
}

async fn failures_follow_the_policy_and_cancel_stops_the_tree(store: Store) {
    register(&store, "builder", &["backend", "database"]).await;
    let repo = repo();
    let executor = executor(&store);

    // Retry once, then fail fast: b fails twice, a's running session is cancelled, c never runs.
    let (root, a, b, c) = diamond(&store, AgentCapability::Backend).await;
    let mut request = start_request(&repo);
    request.policy = Some(FailurePolicy::Retry { retries: 1 });
    executor.start(root, request).await.unwrap();
    let first = task(&store, b).await.execution().sessions[0];
    finish_session(&store, first, SessionStatus::Failed).await;
    let report = executor.advance(root).await.unwrap();
    assert_eq!(report.started.len(), 1, "b retried with a new session");
    let retried = task(&store, b).await;
    assert_eq!(retried.execution().sessions.len(), 2);
    assert_eq!(retried.status(), TaskStatus::Running);
    finish_session(
        &store,
        retried.execution().sessions[1],
        SessionStatus::Failed,
    )
    .await;
    let report = executor.advance(root).await.unwrap();
    assert_eq!(report.stopped, 1, "a's queued session is cancelled");
    let a_session = task(&store, a).await.execution().sessions[0];
    assert_eq!(
        store
            .sessions
            .get(a_session)
            .await
            .unwrap()
            .unwrap()
            .status(),
        SessionStatus::Cancelled
    );
    assert_eq!(task(&store, c).await.status(), TaskStatus::Cancelled);
    let report = executor.advance(root).await.unwrap();
    assert_eq!(report.root_status, Some(TaskStatus::Failed));
    let failed_b = task(&store, b).await;
    assert_eq!(failed_b.status(), TaskStatus::Failed);
    assert!(failed_b
        .execution()
        .note
        .as_deref()
        .unwrap()
        .contains("the agent gave up"));

    // An operator cancels a second tree while its first leaves wait in the queue.
    let (root, a, _b, c) = diamond(&store, AgentCapability::Backend).await;
    executor.start(root, start_request(&repo)).await.unwrap();
    let cancelled = executor
        .cancel(root, Some("wrong plan".into()))
        .await
        .unwrap();
    // Queued sessions are cancelled at once, so the tree is over in the same call or the next.
    let cancelled = if cancelled.status() == TaskStatus::Running {
        executor.advance(root).await.unwrap();
        task(&store, root).await
    } else {
        cancelled
    };
    assert_eq!(cancelled.status(), TaskStatus::Cancelled);
    assert!(cancelled
        .execution()
        .note
        .as_deref()
        .unwrap()
        .contains("wrong plan"));
    assert_eq!(task(&store, a).await.status(), TaskStatus::Cancelled);
    assert_eq!(task(&store, c).await.status(), TaskStatus::Cancelled);
    let err = executor.cancel(root, None).await.unwrap_err();
    assert!(matches!(err, ExecutionError::Invalid(_)), "{err:?}");
}

async fn bad_start_requests_are_refused_naming_the_field(store: Store) {
    let (root, a, _, _) = diamond(&store, AgentCapability::Backend).await;
    let repo = repo();
    let executor = executor(&store);
    let field = |err: ExecutionError| match err {
        ExecutionError::Invalid(e) => e.field.to_owned(),
        other => panic!("expected a field error, got {other:?}"),
    };
    let not_a_repo = tempfile::tempdir().unwrap();
    let mut request = start_request(&repo);
    request.workspace = not_a_repo.path().display().to_string();
    assert_eq!(
        field(executor.start(root, request).await.unwrap_err()),
        "workspace"
    );
    let mut request = start_request(&repo);
    request.max_parallel = Some(0);
    assert_eq!(
        field(executor.start(root, request).await.unwrap_err()),
        "max_parallel"
    );
    let mut request = start_request(&repo);
    request.policy = Some(FailurePolicy::Retry { retries: 0 });
    assert_eq!(
        field(executor.start(root, request).await.unwrap_err()),
        "policy"
    );
    assert_eq!(
        field(executor.start(a, start_request(&repo)).await.unwrap_err()),
        "task",
        "a subtask is not started on its own"
    );
    let mut request = start_request(&repo);
    request.max_tokens = Some(0);
    assert_eq!(
        field(executor.start(root, request).await.unwrap_err()),
        "max_tokens"
    );
    let mut request = start_request(&repo);
    request.max_cost_usd = Some(-1.0);
    assert_eq!(
        field(executor.start(root, request).await.unwrap_err()),
        "max_cost_usd"
    );
    // The tree reserves its estimate before it fans out: three leaves cannot fit 1 000 tokens,
    // so nothing starts at all.
    let mut request = start_request(&repo);
    request.max_tokens = Some(1_000);
    match executor.start(root, request).await.unwrap_err() {
        ExecutionError::Invalid(e) => {
            assert_eq!(e.field, "max_tokens");
            assert!(e.message.contains("estimate"), "{}", e.message);
        }
        other => panic!("expected a field error, got {other:?}"),
    }
    // Nothing was written by the refusals.
    let untouched = task(&store, root).await;
    assert_eq!(untouched.status(), TaskStatus::Pending);
    assert_eq!(untouched.version(), 1);
    assert!(untouched.execution().is_empty());
    let missing = TaskId::from_uuid(uuid::Uuid::new_v4());
    assert!(matches!(
        executor.start(missing, start_request(&repo)).await,
        Err(ExecutionError::NotFound(id)) if id == missing
    ));
    executor.start(root, start_request(&repo)).await.unwrap();
    assert_eq!(
        field(
            executor
                .start(root, start_request(&repo))
                .await
                .unwrap_err()
        ),
        "task",
        "started twice"
    );
}

async fn a_started_tree_records_its_cap_and_the_estimate_it_reserved(store: Store) {
    let (root, a, b, c) = diamond(&store, AgentCapability::Backend).await;
    let repo = repo();
    let executor = executor(&store);
    let mut request = start_request(&repo);
    request.max_tokens = Some(5_000_000);
    request.max_cost_usd = Some(20.0);
    executor.start(root, request).await.unwrap();
    let leaves = [
        task(&store, a).await,
        task(&store, b).await,
        task(&store, c).await,
    ];
    let expected = server::application::GuardrailConfig::default().estimate(leaves.iter());
    assert!(expected.tokens > 0);
    let run = task(&store, root).await.execution().run.clone().unwrap();
    let budget = run.budget.expect("the tree's budget is recorded");
    assert_eq!(budget.cap.max_tokens, Some(5_000_000));
    assert_eq!(budget.cap.max_cost_micro_usd, Some(20_000_000));
    assert_eq!(budget.reserved, expected);
    // Without caps (and none configured) a tree has no budget.
    let (other, ..) = diamond(&store, AgentCapability::Backend).await;
    executor.start(other, start_request(&repo)).await.unwrap();
    let run = task(&store, other).await.execution().run.clone().unwrap();
    assert_eq!(run.budget, None);
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = support::store::sqlite_with(POOL).await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((store, _db)) = support::store::postgres_with(POOL).await else {
                        return;
                    };
                    super::$name(store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    racing_replicas_start_each_leaf_once,
    a_leaf_nobody_can_take_waits_until_an_agent_appears,
    failures_follow_the_policy_and_cancel_stops_the_tree,
    bad_start_requests_are_refused_naming_the_field,
    a_started_tree_records_its_cap_and_the_estimate_it_reserved,
);
