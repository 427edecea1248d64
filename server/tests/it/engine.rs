//! The session engine end to end: the REAL `opencode serve` (driven by the scripted fake LLM),
//! real git worktrees, and a real store — SQLite for the lifecycle, PostgreSQL for recovery by a
//! second replica after the first one "crashes" (its engine is dropped mid-run: nothing handed
//! back, leases left to lapse).
//!
//! Skipped with a visible message where OpenCode or PostgreSQL is missing, never under CI=true.

use std::path::Path;
use std::time::{Duration, Instant};

use domain::SessionStatus;
use serde_json::json;
use server::application::{
    AgentService, CancelOutcome, CreateSessionRequest, RegisterAgent, SessionLifecycle,
};
use server::ports::StoredSessionEvent;
use testkit::fake_llm::Reply;

use crate::support;
use crate::support::engine_rig::EngineRig;

fn kinds(events: &[StoredSessionEvent]) -> Vec<String> {
    events.iter().map(|e| e.event_type.clone()).collect()
}

/// The statuses the log walks through, from `status_changed` events.
fn status_path(events: &[StoredSessionEvent]) -> Vec<String> {
    let mut path = vec!["pending".to_string()];
    for event in events {
        if event.event_type == "session.status_changed" {
            assert_eq!(
                event.payload["from"].as_str(),
                path.last().map(String::as_str),
                "status_changed events form a chain: {events:#?}"
            );
            path.push(event.payload["to"].as_str().unwrap().to_string());
        }
    }
    path
}

fn assert_contiguous(events: &[StoredSessionEvent]) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, expected, "event log has gaps");
}

fn file_in(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_runs_in_its_own_worktree_to_completion_with_metrics_and_a_full_event_log() {
    let Some(rig) = EngineRig::builder("a_session_runs_in_its_own_worktree")
        .build()
        .await
    else {
        return;
    };
    // A registered agent: OpenCode's own `build`, whose track record the engine keeps.
    let agents = AgentService::new(rig.store.agents.clone(), rig.store.unit_of_work.clone());
    agents
        .register(RegisterAgent {
            name: "build".into(),
            capabilities: vec!["backend".into()],
            model: "fake/fake-coder".into(),
            max_concurrency: 2,
        })
        .await
        .unwrap();
    let mut request = rig.request("write hello");
    request.agent = Some("build".into());
    let session = rig.lifecycle.create(request).await.unwrap();
    assert_eq!(session.status(), SessionStatus::Queued);
    let worktree = rig.worktree_of(session.id()).await;
    rig.llm.push(
        Reply::tool_call(
            "write",
            json!({ "filePath": file_in(&worktree, "hello.txt"), "content": "hello\n" }),
        )
        .with_usage(1_000, 40),
    );
    rig.llm
        .push(Reply::text("Wrote hello.txt.").with_usage(1_100, 12));

    let engine = rig.engine("replica-a", |_| {});
    let done = rig.wait_terminal(session.id()).await;
    assert_eq!(
        done.status(),
        SessionStatus::Completed,
        "{:?}",
        done.last_error()
    );
    assert_eq!(done.attempt(), 1);
    let metrics = done.metrics();
    assert_eq!(
        metrics.tokens_input, 2_100,
        "tokens of both steps: {metrics:?}"
    );
    assert_eq!(metrics.tokens_output, 52);
    assert_eq!(metrics.files_changed, 1);
    assert!(metrics.duration_ms > 0);

    // Isolation: the file is in the session's worktree, not in the repository it came from.
    assert_eq!(
        std::fs::read_to_string(worktree.join("hello.txt")).unwrap(),
        "hello\n"
    );
    assert!(!rig.repo.path().join("hello.txt").exists());
    // The work is kept as a commit on the session branch.
    let log = testkit::git::git(
        rig.repo.path(),
        &[
            "log",
            "--format=%s",
            &format!("oio/session-{}", session.id()),
        ],
    )
    .unwrap();
    assert!(
        log.contains(&format!("oio: session {}", session.id())),
        "{log}"
    );

    let events = rig.events(session.id()).await;
    assert_contiguous(&events);
    assert_eq!(
        status_path(&events),
        ["pending", "queued", "running", "completed"]
    );
    let kinds = kinds(&events);
    for kind in [
        "session.created",
        "session.dispatched",
        "session.agent_message",
        "session.tool",
        "session.metrics_recorded",
        "session.workspace",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} missing: {kinds:?}");
    }
    let workspace = events
        .iter()
        .find(|e| e.event_type == "session.workspace")
        .unwrap();
    assert_eq!(workspace.payload["files"][0]["path"], "hello.txt");
    let patch = workspace.payload["patch"].as_str().unwrap();
    assert!(
        patch.contains("+++ b/hello.txt") && patch.contains("+hello"),
        "{patch}"
    );
    assert_eq!(workspace.payload["patch_truncated"], false);
    assert!(rig.store.queue.entry(session.id()).await.unwrap().is_none());
    assert!(
        !engine
            .stats()
            .dispatch_latency_ms
            .lock()
            .unwrap()
            .is_empty(),
        "dispatch latency recorded"
    );
    // The agent's track record took the session in, in the same commit as its end.
    let record = *agents.get("build").await.unwrap().performance();
    assert_eq!(record.sessions_completed, 1);
    assert_eq!(record.total_tokens, done.metrics().total_tokens());
    assert_eq!(record.total_duration_ms, done.metrics().duration_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_running_session_aborts_it_on_the_server() {
    let Some(rig) = EngineRig::builder("cancelling_a_running_session")
        .build()
        .await
    else {
        return;
    };
    rig.llm.push(Reply::hang());
    let session = rig.lifecycle.create(rig.request("hangs")).await.unwrap();
    let _engine = rig.engine("replica-a", |_| {});
    rig.wait_for(session.id(), |s| s.status() == SessionStatus::Running)
        .await;
    rig.llm
        .wait_for_agent_requests(1, Duration::from_secs(30))
        .await
        .unwrap();

    let outcome = rig.lifecycle.cancel(session.id(), None).await.unwrap();
    assert_eq!(outcome, CancelOutcome::Requested);
    let done = rig.wait_terminal(session.id()).await;
    assert_eq!(done.status(), SessionStatus::Cancelled);
    // OpenCode dropped the model stream: the abort reached it.
    let start = Instant::now();
    while rig.llm.open_streams() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "stream still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let path = status_path(&rig.events(session.id()).await);
    assert_eq!(path, ["pending", "queued", "running", "cancelled"]);
    assert!(rig.store.queue.entry(session.id()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_past_its_timeout_is_aborted_and_retried_with_backoff() {
    let Some(rig) = EngineRig::builder("a_session_past_its_timeout")
        .build()
        .await
    else {
        return;
    };
    rig.llm.push(Reply::hang());
    rig.llm
        .push(Reply::text("second attempt done").with_usage(10, 5));
    let session = rig
        .lifecycle
        .create(rig.request("slow once"))
        .await
        .unwrap();
    let _engine = rig.engine("replica-a", |c| c.session_timeout = Duration::from_secs(10));
    let done = rig
        .wait_for(session.id(), |s| s.status() == SessionStatus::Completed)
        .await;
    assert_eq!(done.attempt(), 2);
    assert_eq!(done.metrics().retries, 1);
    let events = rig.events(session.id()).await;
    assert_contiguous(&events);
    assert_eq!(
        status_path(&events),
        [
            "pending",
            "queued",
            "running",
            "timed_out",
            "queued",
            "running",
            "completed"
        ]
    );
    let dispatched = events
        .iter()
        .filter(|e| e.event_type == "session.dispatched")
        .count();
    assert_eq!(dispatched, 2, "one dispatch per attempt");
    assert_eq!(rig.llm.agent_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workspace_that_is_not_a_repository_fails_the_session_without_retries() {
    let Some(rig) = EngineRig::builder("a_workspace_that_is_not_a_repository")
        .build()
        .await
    else {
        return;
    };
    let not_a_repo = tempfile::tempdir().unwrap();
    let mut request = rig.request("nowhere");
    request.workspace = not_a_repo.path().display().to_string();
    let session = rig.lifecycle.create(request).await.unwrap();
    let _engine = rig.engine("replica-a", |_| {});
    let done = rig
        .wait_for(session.id(), |s| s.status() == SessionStatus::Failed)
        .await;
    assert_eq!(done.attempt(), 1, "a broken workspace is not retried");
    assert!(
        done.last_error().unwrap().starts_with("workspace:"),
        "{:?}",
        done.last_error()
    );
    assert!(rig.llm.agent_requests().is_empty());
    assert!(rig.store.queue.entry(session.id()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_requests_are_refused_naming_the_field_and_store_nothing() {
    let (store, _db) = support::store::sqlite().await;
    let lifecycle = SessionLifecycle::new(
        store.sessions.clone(),
        store.unit_of_work.clone(),
        store.queue.clone(),
        3,
    );
    let valid = CreateSessionRequest {
        title: "t".into(),
        prompt: "p".into(),
        workspace: "/tmp".into(),
        ..CreateSessionRequest::default()
    };
    let cases = [
        (
            CreateSessionRequest {
                title: "  ".into(),
                ..valid.clone()
            },
            "title",
        ),
        (
            CreateSessionRequest {
                prompt: String::new(),
                ..valid.clone()
            },
            "prompt",
        ),
        (
            CreateSessionRequest {
                priority: 5000,
                ..valid.clone()
            },
            "priority",
        ),
        (
            CreateSessionRequest {
                max_attempts: Some(0),
                ..valid.clone()
            },
            "max_attempts",
        ),
    ];
    for (request, field) in cases {
        match lifecycle.create(request).await {
            Err(server::application::LifecycleError::Invalid(e)) => assert_eq!(e.field, field),
            other => panic!("{field}: expected a validation error, got {other:?}"),
        }
    }
    let depth = store.queue.depth().await.unwrap();
    assert_eq!(depth.waiting, 0, "nothing was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_replicas_session_is_reattached_by_another_without_a_second_prompt() {
    let Some((store, _db)) = support::store::postgres().await else {
        return;
    };
    let Some(rig) = EngineRig::builder("a_crashed_replicas_session")
        .store(store)
        .build()
        .await
    else {
        return;
    };
    // A turn that takes a while: the first replica dies in the middle of it.
    rig.llm
        .push(Reply::text("finished after the crash").with_delay(Duration::from_secs(4)));
    let session = rig
        .lifecycle
        .create(rig.request("survives a crash"))
        .await
        .unwrap();

    let first = rig.engine("replica-a", |_| {});
    rig.llm
        .wait_for_agent_requests(1, Duration::from_secs(30))
        .await
        .unwrap();
    first.kill();
    let crashed_at = Instant::now();

    let _second = rig.engine("replica-b", |_| {});
    let done = rig.wait_terminal(session.id()).await;
    assert_eq!(
        done.status(),
        SessionStatus::Completed,
        "{:?}",
        done.last_error()
    );
    assert!(
        crashed_at.elapsed() >= Duration::from_millis(1000),
        "recovery waited for the lease to lapse"
    );
    let events = rig.events(session.id()).await;
    assert_contiguous(&events);
    let kinds = kinds(&events);
    assert_eq!(
        kinds.iter().filter(|k| *k == "session.dispatched").count(),
        1,
        "{kinds:?}"
    );
    let reattached = events
        .iter()
        .find(|e| e.event_type == "session.reattached")
        .unwrap_or_else(|| panic!("no reattach: {kinds:?}"));
    assert_eq!(
        reattached.payload["fence"], 2,
        "the second claim has a higher fence"
    );
    assert_eq!(
        status_path(&events),
        ["pending", "queued", "running", "completed"]
    );
    assert_eq!(
        rig.llm.agent_requests().len(),
        1,
        "the prompt was not sent twice"
    );
    assert_eq!(done.metrics().retries, 0);
}
