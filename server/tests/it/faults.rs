//! Faults in the services a replica depends on, injected while sessions are in flight; the REAL
//! `opencode serve` does the agent work (driven by the fake LLM) and real git worktrees isolate
//! it. Each test prints a `FAULT …` line with what it observed.
//!
//! 1. Redis (the distributed lock) killed while sessions are being dispatched, then restarted on
//!    the same port: dispatch pauses, nothing fails, everything completes once, afterwards.
//! 2. PostgreSQL (the store and the queue) stopped and started again mid-run: the pool
//!    reconnects, every session completes, every event log is gap-free with a valid status chain.
//! 3. The OpenCode server running a session is SIGKILLed: the attempt fails as retryable and the
//!    retry completes on the other server.
//! 4. A replica (the `server` binary) gets SIGTERM mid-session: it exits within its grace period
//!    having handed its lease back, and another replica re-attaches at once (not after a lapse).
//!
//! Redis and PostgreSQL are private instances (see `support/private_services.rs`); the shared
//! ones are never touched. Skipped with a visible message where a binary or service is missing,
//! never under `CI=true`.

use crate::support::{self, private_services};

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::{SessionId, SessionStatus};
use server::adapters::memory_lock::MemoryLock;
use server::adapters::redis::{RedisLock, RedisLockConfig};
use server::application::{CreateSessionRequest, Engine, EngineConfig, EngineDeps};
use server::ports::lock::DistributedLock;
use server::ports::StoredSessionEvent;
use server::storage::{PoolSettings, Store};
use testkit::fake_llm::Reply;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::support::engine_rig::{count_statuses, EngineRig, EngineRigBuilder};
use private_services::{PrivatePostgres, PrivateRedis};

const POOL: PoolSettings = PoolSettings {
    max_connections: 8,
    acquire_timeout: Duration::from_secs(5),
};
/// From the fault to every session terminal. Generous: OpenCode takes seconds per session on a
/// loaded two-core machine.
const SETTLE: Duration = Duration::from_secs(240);

/// An engine on `rig` with `lock` and `lease_ttl`: long session timeouts, slower backoffs and
/// sixteen runners.
fn start_engine(
    rig: &EngineRig,
    replica: &str,
    lock: Arc<dyn DistributedLock>,
    lease_ttl: Duration,
) -> Engine {
    Engine::start(
        EngineDeps { lock, ..rig.deps() },
        EngineConfig {
            lease_ttl,
            session_timeout: Duration::from_secs(120),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_millis(1000),
            max_running: 16,
            ..rig.config(replica)
        },
    )
}

async fn create(rig: &EngineRig, title: &str) -> SessionId {
    let request = CreateSessionRequest {
        prompt: format!("Say done. [{title}]"),
        ..rig.request(title)
    };
    rig.create(request).await.id()
}

/// The faults' rig: OpenCode servers without undo snapshots (they cost most of OpenCode's time
/// and nothing here needs them), watched by health checks every 250 ms, eight sessions each.
fn fault_rig(test: &str, store: Store, servers: usize, max_attempts: u32) -> EngineRigBuilder {
    EngineRig::builder(test)
        .store(store)
        .servers(servers)
        .max_attempts(max_attempts)
        .capacity(8)
        .snapshots(false)
        .health_checks(Duration::from_millis(250))
}

/// The statuses the log walks through, from `status_changed` events, asserting they chain.
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

fn assert_gap_free(events: &[StoredSessionEvent]) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, expected, "event log has gaps");
}

fn count_kind(events: &[StoredSessionEvent], kind: &str) -> usize {
    events.iter().filter(|e| e.event_type == kind).count()
}

/// Asserts the one-attempt happy path for every session: completed, attempt 1, dispatched once,
/// gap-free log, `pending -> queued -> running -> completed`. Returns how many re-attached.
async fn assert_completed_once(rig: &EngineRig, ids: &[SessionId]) -> usize {
    let mut reattached = 0;
    for id in ids {
        let session = rig.store.sessions.get(*id).await.unwrap().unwrap();
        let events = rig.events(*id).await;
        assert_eq!(
            session.status(),
            SessionStatus::Completed,
            "{id}: {:?}; events {events:#?}",
            session.last_error()
        );
        assert_eq!(session.attempt(), 1, "{id}: no retry was needed");
        assert_gap_free(&events);
        assert_eq!(
            status_path(&events),
            ["pending", "queued", "running", "completed"],
            "{id}"
        );
        assert_eq!(
            count_kind(&events, "session.dispatched"),
            1,
            "{id} dispatched once"
        );
        reattached += usize::from(count_kind(&events, "session.reattached") > 0);
    }
    reattached
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_pauses_dispatch_and_everything_completes_once_it_returns() {
    let test = "redis_down_pauses_dispatch";
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let (store, _db) = support::store::sqlite_with(POOL).await;
    let Some(rig) = fault_rig(test, store, 1, 3).build().await else {
        return;
    };
    let lock = RedisLock::connect(RedisLockConfig::new(redis.url()))
        .await
        .expect("private Redis answers");
    // The first two sessions are mid-turn when Redis dies (their turns take 4 s).
    for _ in 0..2 {
        rig.llm
            .push(Reply::text("done, slowly").with_delay(Duration::from_secs(4)));
    }
    let engine = start_engine(
        &rig,
        "replica-a",
        Arc::new(lock),
        Duration::from_millis(1500),
    );
    let mut ids = vec![
        create(&rig, "before-1").await,
        create(&rig, "before-2").await,
    ];
    rig.llm
        .wait_for_agent_requests(2, Duration::from_secs(120))
        .await
        .expect("the first sessions reach the model");

    redis.kill().await;
    let killed_at = Instant::now();
    let mut later = Vec::new();
    for i in 0..4 {
        later.push(create(&rig, &format!("during-{i}")).await);
    }
    ids.extend(&later);
    // The outage: long enough for the in-flight turns to end and the new sessions to be claimed.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = rig.statuses(&ids).await.unwrap();
    let during_later = rig.statuses(&later).await.unwrap();
    let prompts_during = rig.llm.agent_requests().len();
    let claimed_during = engine.running();
    println!(
        "FAULT redis-down: after {:.1?} without Redis: all sessions {:?}; the 4 created during the \
         outage {:?}; prompts sent {prompts_during}; runners waiting/running {claimed_during}",
        killed_at.elapsed(),
        count_statuses(&during),
        count_statuses(&during_later),
    );
    assert!(
        during.iter().all(|s| !matches!(
            s.status(),
            SessionStatus::Failed | SessionStatus::TimedOut | SessionStatus::Cancelled
        )),
        "nothing fails for a lock outage: {:?}",
        count_statuses(&during)
    );
    assert!(
        during_later
            .iter()
            .all(|s| s.status() == SessionStatus::Queued),
        "no session is dispatched without the workspace lock"
    );
    assert_eq!(prompts_during, 2, "no prompt sent while Redis is down");

    redis.restart().await;
    let restarted_at = Instant::now();
    rig.llm
        .wait_for_agent_requests(3, SETTLE)
        .await
        .expect("dispatch resumes");
    let first_dispatch = restarted_at.elapsed();
    rig.wait_all_terminal(&ids, SETTLE).await;
    let resumed_in = restarted_at.elapsed();
    let reattached = assert_completed_once(&rig, &ids).await;
    let prompts = rig.llm.agent_requests().len();
    assert_eq!(prompts, ids.len(), "one prompt per session, none twice");
    println!(
        "FAULT redis-down: Redis back after {:.1?} down; first paused session prompted \
         {first_dispatch:.1?} later; all {} sessions completed {resumed_in:.1?} later, each \
         attempt 1, dispatched once, {prompts} prompts, {reattached} re-attached, 0 failed",
        restarted_at - killed_at,
        ids.len()
    );
    engine.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_mid_run_loses_no_session_and_no_transition() {
    let test = "postgres_restart_mid_run";
    let Some(pg) = PrivatePostgres::start().await else {
        return;
    };
    let store = support::store::postgres_at(&pg.url(), POOL)
        .await
        .unwrap_or_else(|e| panic!("private PostgreSQL: {e}\n{}", pg.log()));
    let Some(rig) = fault_rig(test, store, 1, 3).build().await else {
        return;
    };
    const SESSIONS: usize = 6;
    for _ in 0..3 {
        rig.llm
            .push(Reply::text("done, slowly").with_delay(Duration::from_secs(5)));
    }
    let engine = start_engine(
        &rig,
        "replica-a",
        Arc::new(MemoryLock::new()),
        Duration::from_secs(2),
    );
    let mut ids = Vec::new();
    for i in 0..SESSIONS {
        ids.push(create(&rig, &format!("pg-{i}")).await);
    }
    rig.llm
        .wait_for_agent_requests(3, Duration::from_secs(120))
        .await
        .expect("sessions reach the model");
    let before = count_statuses(&rig.statuses(&ids).await.unwrap());

    let stopped_at = Instant::now();
    pg.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let unreachable = rig.store.sessions.get(ids[0]).await.is_err();
    pg.start_again();
    let outage = stopped_at.elapsed();
    let back_at = Instant::now();
    // The pool reconnects: the first read after the restart succeeds (within the acquire timeout).
    let first_read = loop {
        match rig.store.sessions.get(ids[0]).await {
            Ok(_) => break back_at.elapsed(),
            Err(e) => {
                assert!(
                    back_at.elapsed() < Duration::from_secs(30),
                    "no reconnect: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    rig.wait_all_terminal(&ids, SETTLE).await;
    let settled = back_at.elapsed();
    let reattached = assert_completed_once(&rig, &ids).await;
    let prompts = rig.llm.agent_requests().len();
    println!(
        "FAULT postgres-restart: {SESSIONS} sessions, before the stop {before:?}; PostgreSQL down \
         {outage:.1?} (store unreachable during it: {unreachable}); first read {first_read:.1?} \
         after start; all completed {settled:.1?} after start; {reattached} re-attached after \
         losing their lease; {prompts} prompts; every log gap-free, chain pending>queued>running>completed"
    );
    assert!(unreachable, "the outage was real");
    assert_eq!(prompts, SESSIONS, "no prompt sent twice");
    engine.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_opencode_server_killed_mid_session_is_failed_over_to_the_other() {
    let test = "an_opencode_server_killed_mid_session";
    let (store, _db) = support::store::sqlite_with(POOL).await;
    let Some(mut rig) = fault_rig(test, store, 2, 3).build().await else {
        return;
    };
    // The first turn never ends on its own: its server dies under it.
    rig.llm
        .push(Reply::text("never delivered").with_delay(Duration::from_secs(600)));
    let engine = start_engine(
        &rig,
        "replica-a",
        Arc::new(MemoryLock::new()),
        Duration::from_millis(1500),
    );
    let id = create(&rig, "failover").await;
    rig.llm
        .wait_for_agent_requests(1, Duration::from_secs(120))
        .await
        .expect("the session reaches the model");
    let events = rig.events(id).await;
    let first_server = events
        .iter()
        .find(|e| e.event_type == "session.dispatched")
        .map(|e| e.payload["server"].as_str().unwrap().to_string())
        .expect("dispatched");
    let names: Vec<String> = rig.fleet.report().into_iter().map(|r| r.server).collect();
    let victim = names
        .iter()
        .position(|n| *n == first_server)
        .expect("a fleet member");
    let server = rig.servers[victim].take().unwrap();
    let pid = server.pid();
    server.stop().await.expect("SIGKILL its process group");
    let killed_at = Instant::now();

    let done = rig.wait_all_terminal(&[id], SETTLE).await.remove(0);
    let recovered_in = killed_at.elapsed();
    let events = rig.events(id).await;
    assert_gap_free(&events);
    let path = status_path(&events);
    let servers: Vec<String> = events
        .iter()
        .filter(|e| e.event_type == "session.dispatched")
        .map(|e| e.payload["server"].as_str().unwrap().to_string())
        .collect();
    let failure = events
        .iter()
        .filter(|e| e.event_type == "session.status_changed" && e.payload["to"] == "failed")
        .map(|e| e.payload.to_string())
        .collect::<Vec<_>>();
    println!(
        "FAULT opencode-kill: killed {first_server} (pid {pid:?}) mid-turn; session ended {} after \
         {recovered_in:.1?} on attempt {} of 3; dispatched to {servers:?}; status path {path:?}; \
         failure recorded: {failure:?}; retries metric {}",
        done.status(),
        done.attempt(),
        done.metrics().retries
    );
    assert_eq!(
        done.status(),
        SessionStatus::Completed,
        "{:?}",
        done.last_error()
    );
    assert!(done.attempt() >= 2, "the killed attempt counts");
    assert_eq!(servers.first(), Some(&first_server));
    let survivor = &names[1 - victim];
    assert_eq!(
        servers.last(),
        Some(survivor),
        "completed on the other server"
    );
    assert_eq!(path.last().map(String::as_str), Some("completed"));
    assert!(
        path.iter().any(|s| s == "failed"),
        "the lost attempt is recorded"
    );
    engine.stop(Duration::from_secs(5)).await;
}

type Log = Arc<Mutex<String>>;

async fn capture(
    stream: impl AsyncRead + Unpin,
    log: Log,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let mut ready = ready;
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.starts_with("oio: dashboard on http://") {
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
        }
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.push_str(&line);
        log.push('\n');
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigtermed_replica_hands_its_lease_back_and_another_reattaches_at_once() {
    let test = "a_sigtermed_replica_hands_its_lease_back";
    let Some((store, database)) = support::store::postgres_with(POOL).await else {
        return;
    };
    let Some(rig) = fault_rig(test, store, 1, 3).build().await else {
        return;
    };
    // Long leases: a lease handed back is reclaimed at once; one left to lapse would take 30 s.
    const LEASE_TTL: Duration = Duration::from_secs(30);
    rig.llm
        .push(Reply::text("finished after the drain").with_delay(Duration::from_secs(8)));
    let data_dir = tempfile::tempdir().unwrap();
    let oc = rig.servers[0].as_ref().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .current_dir(data_dir.path())
        .env("DATABASE_URL", &database.url)
        .env("OIO_DATA_DIR", data_dir.path())
        .env("OIO_LISTEN", "127.0.0.1:0")
        .env("OIO_OPENCODE_URLS", oc.base_url())
        .env("OIO_WORKTREES__ROOT", rig.worktree_root.path())
        .env("OIO_ENGINE__REPLICA_ID", "replica-term")
        .env(
            "OIO_ENGINE__LEASE_TTL_MS",
            LEASE_TTL.as_millis().to_string(),
        )
        .env("RUST_LOG", "info,sqlx=warn,tower_http=warn")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning the server binary");
    let log: Log = Arc::default();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(capture(
        child.stdout.take().unwrap(),
        log.clone(),
        Some(ready_tx),
    ));
    tokio::spawn(capture(child.stderr.take().unwrap(), log.clone(), None));
    let log_text = || log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        tokio::time::timeout(Duration::from_secs(90), ready_rx)
            .await
            .is_ok(),
        "the replica did not start: {}",
        log_text()
    );

    let id = create(&rig, "drained").await;
    rig.llm
        .wait_for_agent_requests(1, Duration::from_secs(120))
        .await
        .expect("the session runs on the replica");
    let pid = child.id().expect("running").to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let termed_at = Instant::now();
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap_or_else(|_| panic!("no exit within 20 s of SIGTERM: {}", log_text()))
        .unwrap();
    let exited_in = termed_at.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = log_text();
    assert!(exit.success(), "{exit:?}: {log}");
    assert!(
        log.contains("lease handed back on shutdown"),
        "the runner handed its lease back: {log}"
    );
    let session = rig.store.sessions.get(id).await.unwrap().unwrap();
    assert_eq!(
        session.status(),
        SessionStatus::Running,
        "the session keeps running on OpenCode"
    );

    let other = start_engine(&rig, "replica-b", Arc::new(MemoryLock::new()), LEASE_TTL);
    let done = rig.wait_all_terminal(&[id], SETTLE).await.remove(0);
    let taken_over_in = termed_at.elapsed();
    let events = rig.events(id).await;
    assert_gap_free(&events);
    let reattached = events
        .iter()
        .find(|e| e.event_type == "session.reattached")
        .map(|e| e.occurred_at);
    println!(
        "FAULT sigterm-drain: replica exited {exit} {exited_in:.1?} after SIGTERM with its lease \
         handed back; the other replica re-attached and the session ended {} {taken_over_in:.1?} \
         after SIGTERM (lease TTL {LEASE_TTL:?}); dispatched {}x, prompts {}",
        done.status(),
        count_kind(&events, "session.dispatched"),
        rig.llm.agent_requests().len()
    );
    assert_eq!(
        done.status(),
        SessionStatus::Completed,
        "{:?}",
        done.last_error()
    );
    assert!(reattached.is_some(), "re-attached, not re-run: {events:#?}");
    assert_eq!(count_kind(&events, "session.dispatched"), 1);
    assert_eq!(
        rig.llm.agent_requests().len(),
        1,
        "the prompt was not sent twice"
    );
    assert!(
        taken_over_in < LEASE_TTL,
        "taken over before the lease could have lapsed"
    );
    assert!(
        exited_in < Duration::from_secs(15),
        "within the drain grace"
    );
    assert_eq!(
        status_path(&events),
        ["pending", "queued", "running", "completed"]
    );
    other.stop(Duration::from_secs(5)).await;
}
