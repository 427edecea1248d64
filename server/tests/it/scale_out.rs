//! Scale-out under a crash: three replicas of the `server` binary share one PostgreSQL database,
//! one Redis and two REAL OpenCode servers (driven by the fake LLM), and work through 200
//! sessions on one repository. When a quarter to a third of them are done, the replica holding
//! the most leases is killed with SIGKILL; the two others must recover its sessions (after the
//! lease lapses) and finish everything — every session completed exactly once: no prompt sent
//! twice, no attempt dispatched twice, every event log gap-free and its status chain valid.
//!
//! Skipped with a visible message where PostgreSQL, Redis or the OpenCode binary is missing —
//! never under `CI=true`, where that fails.

use crate::support::postgres;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use server::adapters::redis::{RedisLock, RedisLockConfig};
use server::application::{CreateSessionRequest, SessionLifecycle};
use server::config::Settings;
use sqlx::{PgPool, Row};
use tempfile::TempDir;
use testkit::fake_llm::FakeLlm;
use testkit::opencode::{self, OpenCodeServer, Options};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

const SESSIONS: usize = 200;
const REPLICAS: [&str; 3] = ["r1", "r2", "r3"];
const LEASE_TTL_MS: u64 = 2_000;
const MAX_ATTEMPTS: u32 = 3;
/// From the last session created to every session terminal. Generous: on a loaded two-core
/// machine OpenCode alone takes 10-20 s per session.
const DEADLINE: Duration = Duration::from_secs(480);
const TERMINAL: [&str; 4] = ["completed", "failed", "cancelled", "timed_out"];

fn redis_url() -> String {
    std::env::var("OIO_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// `true` when Redis answers; `false` (after a visible message) where it does not, outside CI.
async fn redis_or_skip() -> bool {
    match RedisLock::connect(RedisLockConfig::new(redis_url())).await {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("Redis unreachable under CI=true ({e}); refusing to skip");
            }
            eprintln!("SKIPPED: Redis unreachable ({e})");
            false
        }
    }
}

/// The marker that makes each session's prompt recognisable in the fake LLM's requests.
fn marker(index: usize) -> String {
    format!("[scale-out-task-{index:03}]")
}

type Log = Arc<Mutex<String>>;

fn lock(log: &Log) -> std::sync::MutexGuard<'_, String> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// One `server` process. Killed on drop (`kill_on_drop`), also when the test panics.
struct Replica {
    id: &'static str,
    child: Child,
    addr: String,
    log: Log,
    _data_dir: TempDir,
}

impl Replica {
    async fn start(id: &'static str, env: &[(String, String)]) -> Replica {
        let data_dir = tempfile::tempdir().expect("replica data dir");
        let echo = std::env::var("SCALE_OUT_LOGS").is_ok_and(|v| v == "1");
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            // Away from the workspace, so no stray `oio.toml` is picked up.
            .current_dir(data_dir.path())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("OIO_DATA_DIR", data_dir.path())
            .env("OIO_LISTEN", "127.0.0.1:0")
            .env("OIO_ENGINE__REPLICA_ID", id)
            .env("OIO_ENGINE__LEASE_TTL_MS", LEASE_TTL_MS.to_string())
            .env("RUST_LOG", "info,sqlx=warn,tower_http=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the server binary");
        let log: Log = Arc::default();
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(capture(
            child.stdout.take().expect("stdout"),
            id,
            log.clone(),
            echo,
            Some(ready_tx),
        ));
        tokio::spawn(capture(
            child.stderr.take().expect("stderr"),
            id,
            log.clone(),
            echo,
            None,
        ));
        let addr = match tokio::time::timeout(Duration::from_secs(90), ready_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "replica {id} did not print its dashboard line; its log:\n{}",
                    lock(&log)
                );
            }
        };
        Replica {
            id,
            child,
            addr,
            log,
            _data_dir: data_dir,
        }
    }

    fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// Lines of its log that contain `needle`.
    fn count(&self, needle: &str) -> usize {
        lock(&self.log)
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

async fn capture(
    stream: impl AsyncRead + Unpin,
    id: &'static str,
    log: Log,
    echo: bool,
    mut ready: Option<oneshot::Sender<String>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.strip_prefix("oio: dashboard on http://") {
            if let Some(ready) = ready.take() {
                let _ = ready.send(rest.trim_end_matches('/').to_owned());
            }
        }
        if echo {
            eprintln!("[{id}] {line}");
        }
        let mut log = lock(&log);
        log.push_str(&line);
        log.push('\n');
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn status_counts(pool: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query("SELECT status, count(*) AS n FROM sessions GROUP BY status")
        .fetch_all(pool)
        .await
        .expect("status counts")
        .iter()
        .map(|r| (r.get("status"), r.get("n")))
        .collect()
}

fn terminal_count(counts: &BTreeMap<String, i64>) -> usize {
    TERMINAL
        .iter()
        .map(|s| counts.get(*s).copied().unwrap_or(0))
        .sum::<i64>() as usize
}

/// Live leases per owner.
async fn leases(pool: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query(
        "SELECT owner, count(*) AS n FROM session_queue
         WHERE owner IS NOT NULL AND lease_expires_at > now() GROUP BY owner",
    )
    .fetch_all(pool)
    .await
    .expect("lease counts")
    .iter()
    .map(|r| (r.get("owner"), r.get("n")))
    .collect()
}

async fn start_opencode(llm: &FakeLlm, workspace: &Path) -> OpenCodeServer {
    // OpenCode's own undo snapshots (a git repository per worktree, refreshed every step) cost
    // most of its time per session and nothing here needs them: the orchestrator diffs the
    // worktrees itself.
    let options = Options::default().with_config(serde_json::json!({ "snapshot": false }));
    OpenCodeServer::start(workspace, llm, options)
        .await
        .expect("OpenCode starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_two_opencode_servers_200_sessions_survive_a_kill_9() {
    let test = "three_replicas_two_opencode_servers_200_sessions_survive_a_kill_9";
    if opencode::binary_or_skip(test).is_none() {
        return;
    }
    let Some(database) = postgres::TestDatabase::create().await else {
        return;
    };
    if !redis_or_skip().await {
        return;
    }

    let llm = FakeLlm::start([]).await.expect("fake LLM");
    let target = testkit::git::temp_repo().expect("target repo");
    let oc_repos = [
        testkit::git::temp_repo().expect("OpenCode repo 1"),
        testkit::git::temp_repo().expect("OpenCode repo 2"),
    ];
    let (oc1, oc2) = tokio::join!(
        start_opencode(&llm, oc_repos[0].path()),
        start_opencode(&llm, oc_repos[1].path())
    );
    let worktrees = tempfile::tempdir().expect("worktree root");
    let worktrees_root = worktrees
        .path()
        .canonicalize()
        .expect("canonical worktree root");

    // The schema, before any replica starts; and the test's own handle on the store.
    let data_dir = tempfile::tempdir().expect("test data dir");
    let settings = Settings::load_from(
        None,
        [
            ("DATABASE_URL".to_string(), database.url.clone()),
            (
                "OIO_DATA_DIR".to_string(),
                data_dir.path().display().to_string(),
            ),
        ],
    )
    .expect("test settings");
    let store = server::storage::connect(&settings)
        .await
        .expect("store opens and migrates");
    let pool = PgPool::connect(&database.url).await.expect("SQL pool");

    let env = vec![
        ("DATABASE_URL".to_string(), database.url.clone()),
        ("REDIS_URL".to_string(), redis_url()),
        (
            "OIO_OPENCODE_URLS".to_string(),
            format!("{},{}", oc1.base_url(), oc2.base_url()),
        ),
        (
            "OIO_WORKTREES__ROOT".to_string(),
            worktrees_root.display().to_string(),
        ),
    ];
    let started = Instant::now();
    let (r1, r2, r3) = tokio::join!(
        Replica::start(REPLICAS[0], &env),
        Replica::start(REPLICAS[1], &env),
        Replica::start(REPLICAS[2], &env),
    );
    let mut replicas = vec![r1, r2, r3];
    eprintln!(
        "scale_out: replicas up in {:.1?}: {}",
        started.elapsed(),
        replicas
            .iter()
            .map(|r| format!("{}@{}", r.id, r.addr))
            .collect::<Vec<_>>()
            .join(" ")
    );

    // 200 sessions, through the same lifecycle the HTTP API uses.
    let lifecycle = SessionLifecycle::new(
        store.sessions.clone(),
        store.unit_of_work.clone(),
        store.queue.clone(),
        MAX_ATTEMPTS,
    );
    let started = Instant::now();
    let mut ids = Vec::with_capacity(SESSIONS);
    for index in 0..SESSIONS {
        let session = lifecycle
            .create(CreateSessionRequest {
                title: format!("scale-out {index:03}"),
                prompt: format!("{} Reply with the word done.", marker(index)),
                workspace: target.path().display().to_string(),
                agent: None,
                priority: 0,
                max_attempts: Some(MAX_ATTEMPTS),
            })
            .await
            .expect("session created");
        ids.push((index, session.id().as_uuid()));
    }
    eprintln!(
        "scale_out: {SESSIONS} sessions created in {:.1?}",
        started.elapsed()
    );

    // Run; kill one replica with SIGKILL when a quarter to a third is done and it holds leases.
    let kill_from = SESSIONS / 4;
    let mut victim: Option<(&'static str, usize, Vec<uuid::Uuid>)> = None;
    let deadline = Instant::now() + DEADLINE;
    let mut next_progress = Instant::now();
    loop {
        let counts = status_counts(&pool).await;
        let terminal = terminal_count(&counts);
        if terminal == SESSIONS {
            break;
        }
        if Instant::now() >= next_progress {
            eprintln!(
                "scale_out: {:.0?} {counts:?}",
                started.elapsed().as_secs_f64().round()
            );
            next_progress += Duration::from_secs(30);
        }
        if victim.is_none() && terminal >= kill_from {
            let held = leases(&pool).await;
            // The replica holding the most leases (a crash that really loses work).
            if let Some((index, _)) = replicas
                .iter()
                .enumerate()
                .map(|(i, r)| (i, held.get(r.id).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .max_by_key(|(_, n)| *n)
            {
                let replica = &mut replicas[index];
                replica.child.start_kill().expect("SIGKILL");
                let status = replica.child.wait().await.expect("wait for the victim");
                // Rows it still owns are exactly those it held when it died.
                let owned: Vec<uuid::Uuid> =
                    sqlx::query("SELECT session_id FROM session_queue WHERE owner = $1")
                        .bind(replica.id)
                        .fetch_all(&pool)
                        .await
                        .expect("victim's rows")
                        .iter()
                        .map(|r| r.get("session_id"))
                        .collect();
                eprintln!(
                    "scale_out: killed {} ({status}) at {terminal}/{SESSIONS} terminal after \
                     {:.1?}, holding {} lease(s); leases then: {held:?}",
                    replica.id,
                    started.elapsed(),
                    owned.len()
                );
                victim = Some((replica.id, terminal, owned));
            }
        }
        if Instant::now() >= deadline {
            let queue: Vec<String> = sqlx::query(
                "SELECT session_id::text AS id, owner, fence, server, remote_session,
                        lease_expires_at::text AS expires, available_at::text AS available
                 FROM session_queue ORDER BY enqueued_at LIMIT 20",
            )
            .fetch_all(&pool)
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| {
                format!(
                    "{} owner={:?} fence={} server={:?} remote={:?} expires={:?} available={:?}",
                    r.get::<String, _>("id"),
                    r.get::<Option<String>, _>("owner"),
                    r.get::<i64, _>("fence"),
                    r.get::<Option<String>, _>("server"),
                    r.get::<Option<String>, _>("remote_session"),
                    r.get::<Option<String>, _>("expires"),
                    r.get::<Option<String>, _>("available"),
                )
            })
            .collect();
            for replica in &replicas {
                eprintln!(
                    "---- replica {} log (tail) ----\n{}",
                    replica.id,
                    tail(&replica.log(), 80)
                );
            }
            panic!(
                "not every session terminal within {DEADLINE:?}: {counts:?}; victim: {:?}\n\
                 queue (first 20):\n{}",
                victim.as_ref().map(|(id, at, owned)| (id, at, owned.len())),
                queue.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let duration = started.elapsed();

    // ---- Assertions, from the database. ----
    let counts = status_counts(&pool).await;
    assert_eq!(
        counts.get("completed").copied().unwrap_or(0) as usize,
        SESSIONS,
        "every session completed: {counts:?}"
    );
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM session_queue")
        .fetch_one(&pool)
        .await
        .expect("queue size");
    assert_eq!(
        queued, 0,
        "the queue is empty once every session is terminal"
    );

    let rows = sqlx::query(
        "SELECT session_id, seq, event_type, payload FROM session_events ORDER BY session_id, seq",
    )
    .fetch_all(&pool)
    .await
    .expect("event log");
    let mut logs: HashMap<uuid::Uuid, Vec<(i64, String, Value)>> = HashMap::new();
    for row in &rows {
        logs.entry(row.get("session_id")).or_default().push((
            row.get("seq"),
            row.get("event_type"),
            row.get("payload"),
        ));
    }
    let attempts: HashMap<uuid::Uuid, i64> = sqlx::query("SELECT id, attempt FROM sessions")
        .fetch_all(&pool)
        .await
        .expect("attempts")
        .iter()
        .map(|r| (r.get("id"), r.get::<i64, _>("attempt")))
        .collect();

    let agent_requests = llm.agent_requests();
    let mut prompts_seen: HashMap<usize, usize> = HashMap::new();
    for request in &agent_requests {
        let body = request.body.to_string();
        let found: Vec<usize> = (0..SESSIONS)
            .filter(|i| body.contains(&marker(*i)))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "agent request #{} names exactly one session's prompt: {found:?}",
            request.seq
        );
        *prompts_seen.entry(found[0]).or_default() += 1;
    }

    let mut failure_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut dispatched_total = 0usize;
    let mut recovered_sessions = 0usize;
    let mut retried_sessions = 0usize;
    let mut dispatched_by_server: BTreeMap<String, usize> = BTreeMap::new();
    for (index, id) in &ids {
        let log = logs
            .get(id)
            .unwrap_or_else(|| panic!("session {id} has events"));
        let seqs: Vec<i64> = log.iter().map(|(seq, _, _)| *seq).collect();
        let expected: Vec<i64> = (1..=log.len() as i64).collect();
        assert_eq!(seqs, expected, "session {id}: seq 1..n without gaps");
        assert_eq!(
            log[0].1, "session.created",
            "session {id}: the log starts with session.created"
        );

        let chain: Vec<(String, String)> = log
            .iter()
            .filter(|(_, kind, _)| kind == "session.status_changed")
            .map(|(_, _, p)| {
                (
                    p["from"].as_str().unwrap_or_default().to_owned(),
                    p["to"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert!(
            chain.len() >= 3,
            "session {id}: at least pending->queued->running->completed: {chain:?}"
        );
        assert_eq!(
            (chain[0].0.as_str(), chain[0].1.as_str()),
            ("pending", "queued"),
            "session {id}: {chain:?}"
        );
        assert_eq!(
            (chain[1].0.as_str(), chain[1].1.as_str()),
            ("queued", "running"),
            "session {id}: {chain:?}"
        );
        assert_eq!(
            chain.last().map(|(_, to)| to.as_str()),
            Some("completed"),
            "session {id}: {chain:?}"
        );
        for (_, _, p) in log.iter().filter(|(_, kind, p)| {
            kind == "session.status_changed"
                && p["to"].as_str() != Some("queued")
                && p["reason"].is_string()
        }) {
            *failure_reasons
                .entry(p["reason"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        for pair in chain.windows(2) {
            assert_eq!(
                pair[0].1, pair[1].0,
                "session {id}: status changes chain: {chain:?}"
            );
        }

        let dispatched: Vec<&Value> = log
            .iter()
            .filter(|(_, kind, _)| kind == "session.dispatched")
            .map(|(_, _, p)| p)
            .collect();
        let mut dispatched_attempts: Vec<i64> = dispatched
            .iter()
            .map(|p| p["attempt"].as_i64().unwrap_or(-1))
            .collect();
        let n = dispatched_attempts.len();
        dispatched_attempts.dedup();
        assert_eq!(
            dispatched_attempts.len(),
            n,
            "session {id}: an attempt was dispatched twice: {dispatched:?}"
        );
        let attempt = attempts[id];
        assert!(
            !dispatched.is_empty() && n as i64 <= attempt,
            "session {id}: {n} dispatch(es) for {attempt} attempt(s): {dispatched:?}"
        );
        if attempt > 1 {
            retried_sessions += 1;
        }
        for p in &dispatched {
            *dispatched_by_server
                .entry(p["server"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
        dispatched_total += n;
        let recovered = log.iter().any(|(_, kind, p)| {
            kind == "session.reattached"
                || (kind == "session.dispatched" && p["recovered"].as_bool() == Some(true))
        });
        if recovered {
            recovered_sessions += 1;
        }

        assert_eq!(
            prompts_seen.get(index).copied().unwrap_or(0),
            n,
            "session {id} ({}): one agent request per dispatched prompt",
            marker(*index)
        );
    }
    assert_eq!(
        agent_requests.len(),
        dispatched_total,
        "the fake LLM got exactly one agent request per dispatched prompt"
    );

    let (victim_id, killed_at, owned) = victim.expect(
        "a replica was killed: one held at least one lease once a quarter of the sessions was done",
    );
    assert!(
        recovered_sessions >= 1,
        "a surviving replica recovered at least one session"
    );
    for id in &owned {
        let log = &logs[id];
        assert!(
            log.iter().any(|(_, kind, p)| kind == "session.reattached"
                || (kind == "session.dispatched" && p["recovered"].as_bool() == Some(true))),
            "session {id}, held by the killed {victim_id}, was recovered: {log:?}"
        );
    }

    let per_replica: Vec<String> = replicas
        .iter()
        .map(|r| {
            format!(
                "{}={}d/{}f",
                r.id,
                r.count("session dispatched"),
                r.count("session finished")
            )
        })
        .collect();
    eprintln!(
        "scale_out SUMMARY: sessions={SESSIONS} completed={} duration={duration:.1?} killed={victim_id} \
         at={killed_at}/{SESSIONS} victim_leases={} recovered={recovered_sessions} \
         retried={retried_sessions} dispatched={dispatched_total} agent_requests={} \
         per_replica(dispatched/finished)=[{}] per_server={dispatched_by_server:?} \
         failed_attempts={failure_reasons:?}",
        counts.get("completed").copied().unwrap_or(0),
        owned.len(),
        agent_requests.len(),
        per_replica.join(" "),
    );

    // Orderly teardown: replicas before the OpenCode servers they talk to.
    drop(replicas);
    drop((oc1, oc2));
}
