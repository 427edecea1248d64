//! Admission control end to end: the REAL `opencode serve`, driven by the fake LLM into a storm
//! of HTTP 429s, and the engine admitting sessions through a provider/model pool. The storm halves
//! the pool (once), sessions beyond the limit wait in the `awaiting_slot` state with their
//! positions, none of them fails for it (OpenCode retries the 429s itself), and the limit grows
//! back once the provider is quiet. Plus the pools as the REST API reports them.
//!
//! Skipped with a visible message where OpenCode is missing, never under CI=true.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{Session, SessionId, SessionStatus};
use serde_json::Value;
use server::application::admission::{AdmissionConfig, PoolLimits};
use server::application::{
    Admission, AgentService, CreateSessionRequest, Engine, EngineConfig, RegisterAgent,
};
use server::ports::StoredSessionEvent;
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::opencode;

use crate::support;
use crate::support::engine_rig::EngineRig;

const POOL: &str = "fake/fake-coder";
const MAX: u32 = 4;
const SESSIONS: usize = 6;
/// Agent requests answered 429 before the fake recovers: every admitted session is hit.
const STORM: u32 = 8;
const TIMEOUT: Duration = Duration::from_secs(90);

async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The payloads of the runner's `kind` events (logged as `session.<kind>`).
fn of_kind<'a>(events: &'a [StoredSessionEvent], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e.event_type.strip_prefix("session.") == Some(kind))
        .map(|e| &e.payload)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_storm_shrinks_the_pool_queues_sessions_with_positions_and_fails_none() {
    if opencode::binary_or_skip("a_429_storm_shrinks_the_pool").is_none() {
        return;
    }
    let llm = FakeLlm::start([]).await.unwrap();
    // The first agent requests hit a rate limit (OpenCode waits the short retry-after and
    // retries on its own); then every turn answers, slowly enough that slots are held a while.
    let agent_requests = Arc::new(AtomicU32::new(0));
    {
        let agent_requests = agent_requests.clone();
        llm.set_responder(move |_| {
            let n = agent_requests.fetch_add(1, Ordering::SeqCst);
            Some(if n < STORM {
                Reply::status(429, Some(Duration::from_millis(300)))
            } else {
                Reply::text("Done.").with_delay(Duration::from_millis(700))
            })
        });
    }
    // Room on the server for every session: the pool, not the server, holds them back.
    let Some(rig) = EngineRig::builder("a_429_storm_shrinks_the_pool")
        .llm(llm)
        .capacity(SESSIONS as u32 + 2)
        .build()
        .await
    else {
        return;
    };
    let store = &rig.store;

    // A registered agent on the fake's model: its sessions share the `fake/fake-coder` pool.
    AgentService::new(store.agents.clone(), store.unit_of_work.clone())
        .register(RegisterAgent {
            name: "build".into(),
            capabilities: vec!["backend".into()],
            model: POOL.into(),
            max_concurrency: 8,
        })
        .await
        .unwrap();
    let mut ids: Vec<SessionId> = Vec::new();
    for i in 0..SESSIONS {
        let session = rig
            .create(CreateSessionRequest {
                prompt: "Say done.".into(),
                agent: Some("build".into()),
                ..rig.request(&format!("storm {i}"))
            })
            .await;
        ids.push(session.id());
    }

    let admission = Admission::new(AdmissionConfig {
        default: PoolLimits { min: 1, max: 16 },
        // One storm, one halving; quiet for 2 s and the pool grows a step.
        cooldown: Duration::from_secs(10),
        grow_after: Duration::from_secs(2),
        pools: BTreeMap::from([(POOL.to_owned(), PoolLimits { min: 1, max: MAX })]),
    });
    // The lowest limit seen, sampled while the sessions run.
    let lowest = Arc::new(AtomicUsize::new(MAX as usize));
    let sampler = {
        let (admission, lowest) = (admission.clone(), lowest.clone());
        tokio::spawn(async move {
            loop {
                if let Some(pool) = admission.pool_snapshot(POOL) {
                    lowest.fetch_min(pool.limit as usize, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let engine = Engine::start_with_admission(
        rig.deps(),
        EngineConfig {
            max_running: SESSIONS + 2,
            ..rig.config("replica-a")
        },
        admission.clone(),
    );

    let mut finished: Vec<Session> = Vec::new();
    for id in &ids {
        let session = wait_for("every session to finish", async || {
            let session = store.sessions.get(*id).await.unwrap().unwrap();
            session.status().is_terminal().then_some(session)
        })
        .await;
        finished.push(session);
    }
    let pool = admission.pool_snapshot(POOL).unwrap();
    let mut events = Vec::new();
    for id in &ids {
        events.push(store.sessions.events(*id).await.unwrap());
    }

    // None failed for the storm: OpenCode absorbed the 429s, each session ran once.
    for (session, log) in finished.iter().zip(&events) {
        assert_eq!(
            (session.status(), session.attempt()),
            (SessionStatus::Completed, 1),
            "{:?}; events: {log:#?}",
            session.last_error()
        );
    }
    assert!(
        agent_requests.load(Ordering::SeqCst) > STORM,
        "the storm was served"
    );
    // OpenCode reported its retries, and the pool shrank once for the whole storm.
    let retries: Vec<&Value> = events
        .iter()
        .flat_map(|e| of_kind(e, "agent_retry"))
        .collect();
    eprintln!("OpenCode's retry statuses: {retries:?}");
    let retries = retries.len();
    assert!(
        retries >= 1,
        "OpenCode reported retry statuses: {events:#?}"
    );
    assert!(pool.signals >= 1, "{pool:?}");
    assert_eq!(pool.shrinks, 1, "one storm, one halving: {pool:?}");
    assert!(pool.last_shrink.is_some());
    let lowest = lowest.load(Ordering::SeqCst);
    assert!(
        lowest < MAX as usize,
        "the limit dropped below {MAX}: {lowest}"
    );

    // Sessions beyond the limit waited, logging their positions, and were admitted in the end.
    let waited: Vec<&Vec<StoredSessionEvent>> = events
        .iter()
        .filter(|e| !of_kind(e, "awaiting_slot").is_empty())
        .collect();
    assert!(
        waited.len() >= SESSIONS - MAX as usize,
        "{} sessions waited: {events:#?}",
        waited.len()
    );
    let mut positions: Vec<u64> = Vec::new();
    for log in &waited {
        let awaiting = of_kind(log, "awaiting_slot");
        for payload in &awaiting {
            assert_eq!(payload["pool"], POOL);
            assert!(payload["limit"].as_u64().unwrap() >= 1);
        }
        positions.push(awaiting[0]["position"].as_u64().unwrap());
        assert_eq!(of_kind(log, "slot_granted").len(), 1, "{log:#?}");
        // Waiting happens before dispatch: the session stayed queued meanwhile.
        let kinds: Vec<&str> = log.iter().map(|e| e.event_type.as_str()).collect();
        let granted = kinds
            .iter()
            .position(|k| *k == "session.slot_granted")
            .unwrap();
        let dispatched = kinds
            .iter()
            .position(|k| *k == "session.dispatched")
            .unwrap();
        assert!(granted < dispatched, "{kinds:?}");
    }
    positions.sort_unstable();
    assert_eq!(positions[0], 1, "someone was next in line: {positions:?}");
    assert!(
        positions.iter().any(|p| *p >= 2),
        "positions are numbered through the queue: {positions:?}"
    );

    // Quiet again: the limit grows back to the maximum, and every slot was released.
    let pool = wait_for("the limit to grow back", async || {
        admission.pool_snapshot(POOL).filter(|p| p.limit == MAX)
    })
    .await;
    assert_eq!(pool.in_use, 0, "{pool:?}");
    assert!(pool.waiting.is_empty(), "{pool:?}");
    sampler.abort();
    engine.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_api_reports_the_pools_with_their_bounds() {
    let app = support::spawn_app().await;
    let response = app.get("/api/v1/admission").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let pools = body["pools"].as_array().expect("pools");
    let default = pools
        .iter()
        .find(|p| p["key"] == "default")
        .expect("the default pool exists from the start");
    assert_eq!(default["limit"], 16);
    assert_eq!(default["max"], 16);
    assert_eq!(default["min"], 1);
    assert_eq!(default["in_use"], 0);
    assert_eq!(default["waiting"], serde_json::json!([]));
    assert_eq!(default["last_shrink"], Value::Null);
}
