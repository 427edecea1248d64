//! `server bench engine`: the session engine's own overhead and the lock's latency, each printed
//! next to what the machine underneath can do — printed, never asserted.
//!
//! * **Lifecycle**: N sessions created through [`SessionLifecycle`] while an [`Engine`] runs them
//!   on an [`InstantAgent`] (every turn done the moment it is prompted), in no-op workspaces,
//!   with the in-process lock — on SQLite (temp file) and on PostgreSQL (`DATABASE_URL`, or a
//!   scratch database dropped afterwards). Machine limit: `pgbench` running the commit of one
//!   session transition (versioned UPDATE + event + outbox row).
//! * **Worktrees**: what [`GitWorktrees::prepare`] costs, which the lifecycle figures leave out.
//! * **Lock**: uncontended acquire+release, and many contenders on one key queued in a known
//!   arrival order (FIFO violations counted), for [`MemoryLock`] and [`RedisLock`]. Machine
//!   limit: a raw `SET NX PX` + `DEL` round trip (and `redis-benchmark` when installed).

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use domain::{SessionId, SessionStatus};
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use super::instant_agent::{InstantAgent, InstantServers, NoopWorkspaces};
use super::percentile;
use crate::adapters::git::GitWorktrees;
use crate::adapters::memory_lock::MemoryLock;
use crate::adapters::redis::{RedisLock, RedisLockConfig};
use crate::adapters::sql::SqlStore;
use crate::application::{
    CreateSessionRequest, Engine, EngineConfig, EngineDeps, SessionLifecycle,
};
use crate::config::redact_url;
use crate::ports::lock::{DistributedLock, LockKey};
use crate::ports::workspaces::{CleanupPolicy, WorkspaceRequest, Workspaces};
use crate::storage::{PoolSettings, Store};

/// Where a scratch PostgreSQL database is created when `DATABASE_URL` names none.
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The Redis used when `REDIS_URL` names none.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Commits one instant session costs the engine path: create (+enqueue), dispatch (attach),
/// finish (metrics + workspace + terminal transition + queue removal).
pub const COMMITS_PER_SESSION: u32 = 3;

const POOL: PoolSettings = PoolSettings {
    max_connections: 10,
    acquire_timeout: Duration::from_secs(30),
};
/// Give up on the lifecycle run when no session finished for this long.
const STALL_LIMIT: Duration = Duration::from_secs(60);
/// How long each contender holds the contended lock.
const HOLD: Duration = Duration::from_millis(1);
/// Delay between two contenders' arrivals.
const STAGGER: Duration = Duration::from_millis(2);
/// Rows the pgbench script updates at random.
const PGBENCH_ROWS: u32 = 1000;

/// What to measure, and against what.
#[derive(Debug, Clone)]
pub struct EngineBench {
    pub sessions: u32,
    pub contenders: u32,
    pub lock_rounds: u32,
    /// Sessions the engine runs at once.
    pub max_running: usize,
    /// Create each session only once the previous one finished: dispatch latency and
    /// lifecycle time without queueing behind a backlog.
    pub paced: bool,
    /// Run the lifecycle on PostgreSQL too.
    pub postgres: bool,
    /// A `postgres://` URL to use; `None`: a scratch database on [`POSTGRES_ADMIN_URL`].
    pub database_url: Option<String>,
    /// Measure the Redis lock (and raw Redis) too.
    pub redis: bool,
    /// `None`: [`DEFAULT_REDIS_URL`].
    pub redis_url: Option<String>,
    /// Worktrees to prepare for the git figure; 0 skips it.
    pub git_sessions: u32,
    /// Measure the machine limits (pgbench, raw Redis, redis-benchmark).
    pub machine_limits: bool,
}

impl EngineBench {
    /// Everything, on the local services.
    pub fn new(sessions: u32, contenders: u32, lock_rounds: u32) -> Self {
        Self {
            sessions,
            contenders,
            lock_rounds,
            max_running: 64,
            paced: false,
            postgres: true,
            database_url: None,
            redis: true,
            redis_url: None,
            git_sessions: 20,
            machine_limits: true,
        }
    }

    /// SQLite and the in-process lock only: no service, no subprocess.
    pub fn embedded_only(sessions: u32, contenders: u32, lock_rounds: u32) -> Self {
        Self {
            postgres: false,
            redis: false,
            git_sessions: 0,
            machine_limits: false,
            ..Self::new(sessions, contenders, lock_rounds)
        }
    }
}

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Samples {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Samples {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self {
            count: samples.len(),
            p50: percentile(&samples, 50.0),
            p99: percentile(&samples, 99.0),
            max: samples.last().copied().unwrap_or_default(),
        }
    }

    fn of_millis(samples: &[f64]) -> Self {
        Self::of(
            samples
                .iter()
                .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
                .collect(),
        )
    }
}

/// One backend's lifecycle figures.
#[derive(Debug, Clone)]
pub struct LifecycleFigures {
    pub backend: &'static str,
    pub sessions: u32,
    /// Sessions whose row reads `completed` at the end.
    pub completed: u32,
    /// First create to last terminal commit.
    pub elapsed: Duration,
    /// `SessionLifecycle::create` (validated, stored and queued in one commit).
    pub create: Samples,
    /// The session rows' `created_at` → `finished_at`.
    pub lifecycle: Samples,
    /// `EngineStats::run_ms`: claim → terminal commit.
    pub run: Samples,
    /// `EngineStats::dispatch_latency_ms`: claimable → prompt sent.
    pub dispatch: Samples,
}

impl LifecycleFigures {
    pub fn sessions_per_second(&self) -> f64 {
        f64::from(self.completed) / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// One lock backend's figures.
#[derive(Debug, Clone)]
pub struct LockFigures {
    pub backend: &'static str,
    /// Acquire + release on a free key, one after the other.
    pub uncontended: Samples,
    pub contenders: usize,
    /// Contenders that got the lock.
    pub granted: usize,
    /// Acquire call → grant (includes the staggered arrival window while the gate holds the lock).
    pub wait: Samples,
    /// Previous holder's release call → next grant: the cost of passing the lock on.
    pub handoff: Samples,
    /// Contenders granted at a position other than their arrival position.
    pub fifo_violations: usize,
}

/// One `pgbench` run of the transition commit.
#[derive(Debug, Clone, PartialEq)]
pub struct PgbenchRun {
    pub clients: u32,
    pub tps: f64,
    pub latency_ms: f64,
}

/// Every figure of one run; a skipped or failed part holds the reason instead.
#[derive(Debug)]
pub struct EngineReport {
    pub bench: EngineBench,
    pub sqlite: LifecycleFigures,
    pub postgres: Result<LifecycleFigures, String>,
    /// Which PostgreSQL database (redacted), when one was used.
    pub postgres_database: Option<String>,
    pub pgbench: Result<Vec<PgbenchRun>, String>,
    pub git_prepare: Result<Samples, String>,
    pub memory_lock: LockFigures,
    pub redis_lock: Result<LockFigures, String>,
    pub redis_raw: Result<Samples, String>,
    pub redis_benchmark: Result<Vec<String>, String>,
}

/// Runs every part `bench` asks for. Only the embedded parts (SQLite lifecycle, memory lock) are
/// fatal when they fail; the others report why they are missing.
pub async fn run(bench: &EngineBench) -> anyhow::Result<EngineReport> {
    let scratch = tempfile::tempdir().context("temp dir")?;
    let workdir = scratch.path().join("workspace");
    std::fs::create_dir_all(&workdir).context("workspace dir")?;

    progress(format_args!(
        "lifecycle on sqlite ({} sessions)",
        bench.sessions
    ));
    let sqlite = {
        let url = format!(
            "sqlite://{}?mode=rwc",
            scratch.path().join("bench.db").display()
        );
        let store = SqlStore::sqlite(&url, POOL).await?;
        store.migrate().await?;
        let store = Store::from_adapter(store);
        lifecycle(&store, "sqlite", bench, &workdir).await?
    };

    let mut postgres_database = None;
    let (postgres, pgbench) = if bench.postgres {
        match PostgresTarget::open(bench.database_url.clone()).await {
            Ok(target) => {
                postgres_database = Some(target.describe());
                progress(format_args!(
                    "lifecycle on postgres ({})",
                    target.describe()
                ));
                let figures = postgres_lifecycle(&target.url, bench, &workdir)
                    .await
                    .map_err(|e| format!("failed: {e:#}"));
                let pgbench = if bench.machine_limits {
                    progress(format_args!("pgbench (transition commit, 2 × 5 s)"));
                    run_pgbench(&target.url, scratch.path()).await
                } else {
                    Err("not requested".into())
                };
                target.close().await;
                (figures, pgbench)
            }
            Err(note) => (Err(note.clone()), Err(note)),
        }
    } else {
        (Err("not requested".into()), Err("not requested".into()))
    };

    let git_prepare = if bench.git_sessions > 0 {
        progress(format_args!(
            "git worktree prepare ({} sessions)",
            bench.git_sessions
        ));
        git_prepare(bench.git_sessions, scratch.path())
            .await
            .map_err(|e| format!("failed: {e:#}"))
    } else {
        Err("not requested".into())
    };

    progress(format_args!("memory lock"));
    let memory_lock = lock_figures(
        Arc::new(MemoryLock::new()),
        "memory",
        bench.lock_rounds,
        bench.contenders,
    )
    .await?;

    let redis_url = bench
        .redis_url
        .clone()
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
    let (redis_lock, redis_raw, redis_benchmark) = if bench.redis {
        progress(format_args!("redis lock ({})", redact_url(&redis_url)));
        let redis_lock = redis_lock_figures(&redis_url, bench).await;
        let unreachable = redis_lock.as_ref().err().cloned();
        let (raw, tool) = match (bench.machine_limits, unreachable) {
            (false, _) => (Err("not requested".into()), Err("not requested".into())),
            (true, Some(note)) => (Err(note.clone()), Err(note)),
            (true, None) => (
                redis_round_trips(&redis_url, bench.lock_rounds)
                    .await
                    .map_err(|e| format!("failed: {e:#}")),
                redis_benchmark(&redis_url).await,
            ),
        };
        (redis_lock, raw, tool)
    } else {
        let note = || "not requested".to_owned();
        (Err(note()), Err(note()), Err(note()))
    };

    Ok(EngineReport {
        bench: bench.clone(),
        sqlite,
        postgres,
        postgres_database,
        pgbench,
        git_prepare,
        memory_lock,
        redis_lock,
        redis_raw,
        redis_benchmark,
    })
}

fn progress(what: fmt::Arguments<'_>) {
    eprintln!("bench engine: {what} …");
}

/// Creates `bench.sessions` sessions while an engine runs them on the instant agent, and reads
/// the figures back from the engine's stats and the session rows.
pub async fn lifecycle(
    store: &Store,
    backend: &'static str,
    bench: &EngineBench,
    workdir: &Path,
) -> anyhow::Result<LifecycleFigures> {
    let agent = Arc::new(InstantAgent::new("instant"));
    let engine = Engine::start(
        EngineDeps {
            sessions: store.sessions.clone(),
            agents: store.agents.clone(),
            tasks: store.tasks.clone(),
            unit_of_work: store.unit_of_work.clone(),
            queue: store.queue.clone(),
            servers: Arc::new(InstantServers::new(agent, 1_000_000)),
            workspaces: Arc::new(NoopWorkspaces::new(workdir.to_path_buf())),
            lock: Arc::new(MemoryLock::new()),
        },
        EngineConfig {
            replica_id: format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]),
            lease_ttl: Duration::from_secs(15),
            session_timeout: Duration::from_secs(300),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            max_running: bench.max_running.max(1),
            cleanup: CleanupPolicy::Keep,
        },
    );
    let stats = engine.stats();
    let lifecycle = SessionLifecycle::new(
        store.sessions.clone(),
        store.unit_of_work.clone(),
        store.queue.clone(),
        1,
    );
    let n = bench.sessions as usize;
    let done = || stats.run_ms.lock().unwrap_or_else(|e| e.into_inner()).len();

    let started = Instant::now();
    let mut ids: Vec<SessionId> = Vec::with_capacity(n);
    let mut create = Vec::with_capacity(n);
    for i in 0..bench.sessions {
        let t = Instant::now();
        let session = lifecycle
            .create(CreateSessionRequest {
                title: format!("bench session {i}"),
                prompt: "benchmark prompt: add a health endpoint".into(),
                workspace: workdir.display().to_string(),
                max_attempts: Some(1),
                ..CreateSessionRequest::default()
            })
            .await
            .with_context(|| format!("creating session {i}"))?;
        create.push(t.elapsed());
        ids.push(session.id());
        if bench.paced {
            let wanted = i as usize + 1;
            let waiting = Instant::now();
            while done() < wanted {
                if waiting.elapsed() > STALL_LIMIT {
                    bail!("{backend}: session {i} did not finish within {STALL_LIMIT:?}");
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    }
    let mut last = (done(), Instant::now());
    while last.0 < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = done();
        if now > last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > STALL_LIMIT {
            bail!(
                "{backend}: only {now} of {n} sessions finished; none for {:?}",
                STALL_LIMIT
            );
        }
    }
    let elapsed = started.elapsed();
    let run = Samples::of_millis(&stats.run_ms.lock().unwrap_or_else(|e| e.into_inner()));
    let dispatch = Samples::of_millis(
        &stats
            .dispatch_latency_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    engine.stop(Duration::from_secs(5)).await;

    let mut completed = 0;
    let mut lifecycle_samples = Vec::with_capacity(n);
    for id in ids {
        let session = store
            .sessions
            .get(id)
            .await?
            .with_context(|| format!("session {id} vanished"))?;
        if session.status() == SessionStatus::Completed {
            completed += 1;
        }
        if let Some(finished) = session.finished_at() {
            lifecycle_samples.push(
                (finished - session.created_at())
                    .to_std()
                    .unwrap_or_default(),
            );
        }
    }
    Ok(LifecycleFigures {
        backend,
        sessions: bench.sessions,
        completed,
        elapsed,
        create: Samples::of(create),
        lifecycle: Samples::of(lifecycle_samples),
        run,
        dispatch,
    })
}

async fn postgres_lifecycle(
    url: &str,
    bench: &EngineBench,
    workdir: &Path,
) -> anyhow::Result<LifecycleFigures> {
    let store = SqlStore::postgres(url, POOL).await?;
    store.migrate().await?;
    let store = Store::from_adapter(store);
    lifecycle(&store, "postgres", bench, workdir).await
}

/// The PostgreSQL database the benchmark writes to: the configured one, or a scratch one.
struct PostgresTarget {
    url: String,
    /// (admin URL, database name) of a scratch database to drop afterwards.
    scratch: Option<(String, String)>,
}

impl PostgresTarget {
    async fn open(configured: Option<String>) -> Result<Self, String> {
        if let Some(url) = configured {
            return Ok(Self { url, scratch: None });
        }
        let mut admin = match tokio::time::timeout(
            Duration::from_secs(5),
            PgConnection::connect(POSTGRES_ADMIN_URL),
        )
        .await
        {
            Ok(Ok(admin)) => admin,
            Ok(Err(e)) => return Err(format!("skipped: PostgreSQL unreachable ({e})")),
            Err(_) => return Err("skipped: PostgreSQL did not answer within 5 s".into()),
        };
        let name = format!("oio_bench_{}", &Uuid::new_v4().simple().to_string()[..12]);
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .map_err(|e| format!("skipped: cannot create a scratch database ({e})"))?;
        let _ = admin.close().await;
        let base = POSTGRES_ADMIN_URL
            .rsplit_once('/')
            .map_or(POSTGRES_ADMIN_URL, |(base, _)| base);
        Ok(Self {
            url: format!("{base}/{name}"),
            scratch: Some((POSTGRES_ADMIN_URL.to_owned(), name)),
        })
    }

    fn describe(&self) -> String {
        match &self.scratch {
            Some((_, name)) => format!("scratch database {name}"),
            None => redact_url(&self.url),
        }
    }

    async fn close(self) {
        if let Some((admin_url, name)) = self.scratch {
            if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                if let Err(e) = admin
                    .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await
                {
                    eprintln!("bench engine: could not drop scratch database {name}: {e}");
                }
                let _ = admin.close().await;
            }
        }
    }
}

/// The commit of one session transition, as pgbench sees it: a versioned UPDATE of the session
/// row, the event appended to its log (next `seq`), the outbox row — one transaction.
const PGBENCH_SCRIPT: &str = r#"\set n random(1, 1000)
BEGIN;
UPDATE sessions SET tokens_input = tokens_input + 10, updated_at = now(), version = version + 1
    WHERE id = md5('oio-bench-' || :n)::uuid
      AND version = (SELECT version FROM sessions WHERE id = md5('oio-bench-' || :n)::uuid);
INSERT INTO session_events (session_id, seq, event_type, payload, occurred_at)
    SELECT md5('oio-bench-' || :n)::uuid, COALESCE(MAX(seq), 0) + 1, 'metrics_recorded',
           '{"tokens_input": 10}'::jsonb, now()
    FROM session_events WHERE session_id = md5('oio-bench-' || :n)::uuid;
INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, occurred_at)
    VALUES ('session', md5('oio-bench-' || :n)::uuid, 'metrics_recorded',
            '{"tokens_input": 10}'::jsonb, now());
COMMIT;
"#;

const PGBENCH_ROWS_SQL: &str = "md5('oio-bench-' || n)::uuid";

async fn run_pgbench(url: &str, dir: &Path) -> Result<Vec<PgbenchRun>, String> {
    match tokio::process::Command::new("pgbench")
        .arg("--version")
        .output()
        .await
    {
        Ok(out) if out.status.success() => {}
        _ => return Err("skipped: pgbench is not installed".into()),
    }
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(|e| format!("failed: {e}"))?;
    let seed = format!(
        "INSERT INTO sessions (id, title, prompt, workspace, status, attempt, max_attempts,
             created_at, updated_at, started_at)
         SELECT {PGBENCH_ROWS_SQL}, 'pgbench ' || n, 'p', '/srv/bench', 'running', 1, 1,
             now(), now(), now()
         FROM generate_series(1, {PGBENCH_ROWS}) AS n ON CONFLICT (id) DO NOTHING"
    );
    conn.execute(seed.as_str())
        .await
        .map_err(|e| format!("failed to seed rows: {e}"))?;
    let script = dir.join("transition.sql");
    std::fs::write(&script, PGBENCH_SCRIPT).map_err(|e| format!("failed: {e}"))?;

    let mut runs = Vec::new();
    let mut failure = None;
    for clients in [1u32, 4] {
        let out = tokio::process::Command::new("pgbench")
            .args(["-n", "-M", "prepared", "-T", "5"])
            .arg("-c")
            .arg(clients.to_string())
            .arg("-j")
            .arg(clients.to_string())
            .arg("-f")
            .arg(&script)
            .arg(url)
            .output()
            .await;
        match out {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                match parse_pgbench(&text) {
                    Some((tps, latency_ms)) => runs.push(PgbenchRun {
                        clients,
                        tps,
                        latency_ms,
                    }),
                    None => failure = Some(format!("unreadable pgbench output: {text}")),
                }
            }
            Ok(out) => {
                failure = Some(format!(
                    "pgbench failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(e) => failure = Some(format!("pgbench failed: {e}")),
        }
    }
    // The configured database keeps nothing of ours (a scratch one is dropped anyway).
    let cleanup = format!(
        "DELETE FROM outbox WHERE aggregate_id IN (SELECT {PGBENCH_ROWS_SQL} FROM generate_series(1, {PGBENCH_ROWS}) AS n);
         DELETE FROM session_events WHERE session_id IN (SELECT {PGBENCH_ROWS_SQL} FROM generate_series(1, {PGBENCH_ROWS}) AS n);
         DELETE FROM sessions WHERE id IN (SELECT {PGBENCH_ROWS_SQL} FROM generate_series(1, {PGBENCH_ROWS}) AS n);"
    );
    if let Err(e) = conn.execute(cleanup.as_str()).await {
        eprintln!("bench engine: pgbench rows not cleaned up: {e}");
    }
    let _ = conn.close().await;
    match (runs.is_empty(), failure) {
        (true, Some(failure)) => Err(failure),
        (true, None) => Err("pgbench produced nothing".into()),
        _ => Ok(runs),
    }
}

/// (tps, average latency in ms) from pgbench's report.
fn parse_pgbench(text: &str) -> Option<(f64, f64)> {
    let number_after = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    Some((number_after("tps = ")?, number_after("latency average = ")?))
}

/// Prepares `n` worktrees in a fresh one-commit repository with the real git adapter.
async fn git_prepare(n: u32, dir: &Path) -> anyhow::Result<Samples> {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo)?;
    std::fs::write(repo.join("README.md"), "benchmark repository\n")?;
    let git = |args: &[&str]| -> anyhow::Result<()> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args([
                "-c",
                "user.name=oio bench",
                "-c",
                "user.email=bench@oio.invalid",
            ])
            .args(args)
            .output()
            .context("running git")?;
        if !out.status.success() {
            bail!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    git(&["init", "-q"])?;
    git(&["add", "README.md"])?;
    git(&["commit", "-q", "-m", "initial"])?;
    let worktrees = GitWorktrees::new(dir.join("worktrees"));
    let mut samples = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        worktrees
            .prepare(&WorkspaceRequest {
                repository: repo.clone(),
                session: SessionId::from_uuid(Uuid::new_v4()),
                base: None,
            })
            .await?;
        samples.push(t.elapsed());
    }
    Ok(Samples::of(samples))
}

struct Contender {
    ticket: usize,
    position: usize,
    called: Instant,
    granted: Instant,
    releasing: Instant,
}

/// Uncontended acquire+release, then `contenders` queued one by one on a key a gate lease holds
/// (each waits `STAGGER` after the previous one and until the lock counts it among the waiters,
/// so arrival order is known), the gate released, and each holding `HOLD` in turn.
pub async fn lock_figures(
    lock: Arc<dyn DistributedLock>,
    backend: &'static str,
    rounds: u32,
    contenders: u32,
) -> anyhow::Result<LockFigures> {
    let ttl = Duration::from_secs(30);
    let patience = Duration::from_secs(120);
    let run = Uuid::new_v4().simple().to_string();

    let key = LockKey::new(format!("bench:uncontended:{run}"))?;
    let mut samples = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let t = Instant::now();
        let lease = lock.acquire(&key, ttl, patience).await?;
        lock.release(&lease).await?;
        samples.push(t.elapsed());
    }
    let uncontended = Samples::of(samples);

    let key = LockKey::new(format!("bench:contended:{run}"))?;
    let gate = lock.acquire(&key, ttl, patience).await?;
    let grants = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(contenders as usize);
    for ticket in 0..contenders as usize {
        let (mine, key_, grants) = (lock.clone(), key.clone(), grants.clone());
        tasks.push(tokio::spawn(async move {
            let (lock, key) = (mine, key_);
            let called = Instant::now();
            let lease = lock.acquire(&key, ttl, patience).await?;
            let granted = Instant::now();
            let position = grants.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(HOLD).await;
            let releasing = Instant::now();
            lock.release(&lease).await?;
            anyhow::Ok(Contender {
                ticket,
                position,
                called,
                granted,
                releasing,
            })
        }));
        tokio::time::sleep(STAGGER).await;
        let queued_by = Instant::now() + Duration::from_secs(2);
        while lock.waiting(&key).await? < ticket + 1 && Instant::now() < queued_by {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let gate_released = Instant::now();
    lock.release(&gate).await?;
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await??);
    }
    results.sort_by_key(|c| c.position);
    let wait = results.iter().map(|c| c.granted - c.called).collect();
    let handoff = results
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let previous = if i == 0 {
                gate_released
            } else {
                results[i - 1].releasing
            };
            c.granted.saturating_duration_since(previous)
        })
        .collect();
    Ok(LockFigures {
        backend,
        uncontended,
        contenders: contenders as usize,
        granted: results.len(),
        wait: Samples::of(wait),
        handoff: Samples::of(handoff),
        fifo_violations: results.iter().filter(|c| c.ticket != c.position).count(),
    })
}

async fn redis_lock_figures(url: &str, bench: &EngineBench) -> Result<LockFigures, String> {
    let prefix = format!("oio:bench:{}", Uuid::new_v4().simple());
    let connect = RedisLock::connect(RedisLockConfig::new(url).with_key_prefix(prefix.clone()));
    let lock = match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(lock)) => lock,
        Ok(Err(e)) => return Err(format!("skipped: Redis unreachable ({e})")),
        Err(_) => return Err("skipped: Redis did not answer within 10 s".into()),
    };
    let figures = lock_figures(Arc::new(lock), "redis", bench.lock_rounds, bench.contenders)
        .await
        .map_err(|e| format!("failed: {e:#}"));
    // The fence and ticket counters outlive the locks: remove every key of this run.
    if let Err(e) = delete_prefix(url, &prefix).await {
        eprintln!("bench engine: Redis keys {prefix}:* not cleaned up: {e}");
    }
    figures
}

async fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_manager().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<i64>(&mut conn)
            .await?;
    }
    Ok(())
}

/// `SET key 1 NX PX 10000` then `DEL key`, one pair at a time: the floor under any Redis lock.
async fn redis_round_trips(url: &str, rounds: u32) -> anyhow::Result<Samples> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_manager().await?;
    let key = format!("oio:bench:raw:{}", Uuid::new_v4().simple());
    let mut samples = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let t = Instant::now();
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        let deleted: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
        samples.push(t.elapsed());
        if set.is_none() || deleted != 1 {
            bail!("SET NX did not take the free key {key}");
        }
    }
    Ok(Samples::of(samples))
}

/// `redis-benchmark -t set` with 1 and 50 clients: its one-line summaries.
async fn redis_benchmark(url: &str) -> Result<Vec<String>, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("failed: {e}"))?;
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = parsed.port().unwrap_or(6379).to_string();
    let mut lines = Vec::new();
    for clients in [1u32, 50] {
        let mut command = tokio::process::Command::new("redis-benchmark");
        command
            .args(["-h", &host, "-p", &port, "-q", "-t", "set", "-n", "20000"])
            .arg("-c")
            .arg(clients.to_string());
        if let Some(password) = parsed.password() {
            command.arg("-a").arg(password);
        }
        match command.output().await {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                let summary = text
                    .split(['\r', '\n'])
                    .map(str::trim)
                    .rfind(|l| l.starts_with("SET:") && l.contains("requests per second"))
                    .unwrap_or("no summary")
                    .to_owned();
                lines.push(format!("-c {clients}: {summary}"));
            }
            Ok(out) => {
                return Err(format!(
                    "redis-benchmark failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(_) => return Err("skipped: redis-benchmark is not installed".into()),
        }
    }
    Ok(lines)
}

/// A duration for a table cell: µs below a millisecond (one decimal below 10 µs), ms below ten
/// seconds.
fn show(d: Duration) -> String {
    if d < Duration::from_micros(10) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else if d < Duration::from_millis(1) {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    } else if d < Duration::from_secs(10) {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

fn pair(s: &Samples) -> String {
    format!("{} / {}", show(s.p50), show(s.p99))
}

fn cell<T>(r: &Result<T, String>, f: impl Fn(&T) -> String) -> String {
    match r {
        Ok(v) => f(v),
        Err(_) => "—".into(),
    }
}

impl fmt::Display for EngineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.bench;
        writeln!(
            f,
            "engine benchmark: {} sessions on an instant in-process agent, no-op workspaces, \
             in-process lock; engine max_running {}{}",
            b.sessions,
            b.max_running,
            if b.paced {
                "; paced (each session created after the previous one finished)"
            } else {
                "; all created at once"
            }
        )?;
        writeln!(f)?;
        let row = |f: &mut fmt::Formatter<'_>, label: &str, a: String, b: String| {
            writeln!(f, "  {label:<46} {a:>22} {b:>22}")
        };
        let pg = &self.postgres;
        row(f, "lifecycle", "sqlite".into(), "postgres".into())?;
        let s = &self.sqlite;
        row(
            f,
            "sessions completed",
            format!("{}/{}", s.completed, s.sessions),
            cell(pg, |p| format!("{}/{}", p.completed, p.sessions)),
        )?;
        row(
            f,
            "throughput (first create → last done)",
            format!("{:.0} sessions/s", s.sessions_per_second()),
            cell(pg, |p| format!("{:.0} sessions/s", p.sessions_per_second())),
        )?;
        row(
            f,
            "create (validate + commit + enqueue) p50/p99",
            pair(&s.create),
            cell(pg, |p| pair(&p.create)),
        )?;
        row(
            f,
            "lifecycle created → completed p50/p99",
            pair(&s.lifecycle),
            cell(pg, |p| pair(&p.lifecycle)),
        )?;
        row(
            f,
            "run: claim → terminal commit p50/p99",
            pair(&s.run),
            cell(pg, |p| pair(&p.run)),
        )?;
        row(
            f,
            "dispatch: claimable → prompt sent p50/p99",
            pair(&s.dispatch),
            cell(pg, |p| pair(&p.dispatch)),
        )?;
        row(
            f,
            "samples (lifecycle / run / dispatch)",
            format!(
                "{} / {} / {}",
                s.lifecycle.count, s.run.count, s.dispatch.count
            ),
            cell(pg, |p| {
                format!(
                    "{} / {} / {}",
                    p.lifecycle.count, p.run.count, p.dispatch.count
                )
            }),
        )?;
        if let Err(note) = pg {
            writeln!(f, "  postgres: {note}")?;
        } else if let Some(db) = &self.postgres_database {
            writeln!(f, "  postgres: {db}")?;
        }
        match &self.pgbench {
            Ok(runs) => {
                writeln!(
                    f,
                    "  machine limit, postgres (pgbench -M prepared -T 5: one transition commit = \
                     versioned UPDATE + event + outbox):"
                )?;
                for r in runs {
                    writeln!(
                        f,
                        "    -c {}: {:>8.0} commits/s, {:.3} ms per commit → ceiling ≈ {:.0} \
                         sessions/s at {COMMITS_PER_SESSION} commits per session",
                        r.clients,
                        r.tps,
                        r.latency_ms,
                        r.tps / f64::from(COMMITS_PER_SESSION)
                    )?;
                }
            }
            Err(note) => writeln!(f, "  machine limit, postgres (pgbench): {note}")?,
        }
        writeln!(f)?;
        match &self.git_prepare {
            Ok(g) => writeln!(
                f,
                "  git worktree prepare (GitWorktrees, {} sessions, left out above): p50 {}  p99 {}  max {}",
                g.count,
                show(g.p50),
                show(g.p99),
                show(g.max)
            )?,
            Err(note) => writeln!(f, "  git worktree prepare: {note}")?,
        }
        writeln!(f)?;

        let m = &self.memory_lock;
        let r = &self.redis_lock;
        row(f, "lock", "memory".into(), "redis".into())?;
        row(
            f,
            &format!("uncontended acquire+release p50/p99 (×{})", b.lock_rounds),
            pair(&m.uncontended),
            cell(r, |l| pair(&l.uncontended)),
        )?;
        row(
            f,
            &format!("{} contenders: granted", m.contenders),
            format!("{}/{}", m.granted, m.contenders),
            cell(r, |l| format!("{}/{}", l.granted, l.contenders)),
        )?;
        row(
            f,
            "  wait, acquire call → grant p50/p99",
            pair(&m.wait),
            cell(r, |l| pair(&l.wait)),
        )?;
        row(
            f,
            "  handoff, release → next grant p50/p99",
            pair(&m.handoff),
            cell(r, |l| pair(&l.handoff)),
        )?;
        row(
            f,
            "  FIFO violations (grant ≠ arrival order)",
            m.fifo_violations.to_string(),
            cell(r, |l| l.fifo_violations.to_string()),
        )?;
        writeln!(
            f,
            "  (contenders arrive {} ms apart while a gate lease holds the key, so the wait \
             includes up to {} ms of arrivals; each then holds ~{} ms)",
            STAGGER.as_millis(),
            STAGGER.as_millis() * u128::from(b.contenders),
            HOLD.as_millis()
        )?;
        if let Err(note) = r {
            writeln!(f, "  redis: {note}")?;
        }
        match &self.redis_raw {
            Ok(raw) => writeln!(
                f,
                "  machine limit, redis (redis crate, SET NX PX + DEL round trip ×{}): p50 {}  p99 {}",
                raw.count,
                show(raw.p50),
                show(raw.p99)
            )?,
            Err(note) => writeln!(f, "  machine limit, redis (SET NX PX + DEL): {note}")?,
        }
        match &self.redis_benchmark {
            Ok(lines) => {
                for line in lines {
                    writeln!(f, "  machine limit, redis-benchmark -t set {line}")?;
                }
            }
            Err(note) => writeln!(f, "  machine limit, redis-benchmark: {note}")?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_output_is_read() {
        let text = "transaction type: t.sql\nnumber of clients: 1\nlatency average = 0.611 ms\n\
                    initial connection time = 3.1 ms\ntps = 1636.2 (without initial connection time)\n";
        assert_eq!(parse_pgbench(text), Some((1636.2, 0.611)));
        assert_eq!(parse_pgbench("nothing"), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_embedded_engine_benchmark_completes_every_session_in_fifo_order() {
        let bench = EngineBench::embedded_only(20, 5, 10);
        let report = run(&bench).await.unwrap();
        let s = &report.sqlite;
        assert_eq!(s.backend, "sqlite");
        assert_eq!((s.sessions, s.completed), (20, 20));
        assert_eq!(s.create.count, 20);
        assert_eq!(s.lifecycle.count, 20);
        assert_eq!(s.run.count, 20);
        assert_eq!(s.dispatch.count, 20);
        assert!(s.lifecycle.p50 <= s.lifecycle.p99 && s.lifecycle.p99 <= s.lifecycle.max);
        let m = &report.memory_lock;
        assert_eq!(m.uncontended.count, 10);
        assert_eq!((m.contenders, m.granted), (5, 5));
        assert_eq!((m.wait.count, m.handoff.count), (5, 5));
        assert_eq!(m.fifo_violations, 0);
        assert!(report.postgres.is_err() && report.redis_lock.is_err());
        // The report prints.
        let printed = report.to_string();
        assert!(printed.contains("20/20"), "{printed}");
    }
}
