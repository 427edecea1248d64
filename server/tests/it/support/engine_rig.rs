//! The rig every engine-level test runs on: REAL `opencode serve` processes (driven by the
//! scripted fake LLM) on a fresh target repository, a fleet of clients on them, real git
//! worktrees, a store, and the session lifecycle — everything an [`Engine`] needs around it.
//!
//! ```ignore
//! let Some(rig) = EngineRig::builder("my_test").servers(2).capacity(8).build().await else {
//!     return; // OpenCode is not installed (never under CI=true)
//! };
//! let _engine = rig.engine("replica-a", |config| config.max_running = 4);
//! let session = rig.create(rig.request("write hello")).await;
//! let done = rig.wait_terminal(session.id()).await;
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{Session, SessionId};
use secrecy::SecretString;
use server::adapters::git::GitWorktrees;
use server::adapters::memory_lock::MemoryLock;
use server::adapters::opencode::{Fleet, HealthChecks, OpenCodeClient, ResiliencePolicy};
use server::application::{
    CreateSessionRequest, Engine, EngineConfig, EngineDeps, SessionLifecycle,
};
use server::ports::workspaces::{CleanupPolicy, WorkspaceRequest, Workspaces};
use server::ports::StoredSessionEvent;
use server::storage::Store;
use tempfile::TempDir;
use testkit::fake_llm::FakeLlm;
use testkit::opencode::{self, OpenCodeServer, Options};
use url::Url;

/// How long [`EngineRig::wait_for`] waits for a session.
pub const TURN_TIMEOUT: Duration = Duration::from_secs(90);

/// Everything an engine needs, around real OpenCode servers. Fields drop in order: the store and
/// the fake LLM first, the servers, then the temp dirs.
pub struct EngineRig {
    pub store: Store,
    pub lifecycle: SessionLifecycle,
    pub llm: FakeLlm,
    pub fleet: Arc<Fleet>,
    /// The OpenCode servers the rig started, in fleet order; a test may take (kill) one, leaving
    /// `None`. Empty for a rig on [`EngineRigBuilder::external_server`].
    pub servers: Vec<Option<OpenCodeServer>>,
    pub worktrees: Arc<GitWorktrees>,
    /// The target repository sessions work on.
    pub repo: TempDir,
    /// The root of the session worktrees (`worktrees` creates them here).
    pub worktree_root: TempDir,
    policy: ResiliencePolicy,
    _health: Option<HealthChecks>,
    _db: Option<TempDir>,
}

/// Options of an [`EngineRig`]; every one has the default most engine tests want.
pub struct EngineRigBuilder {
    test: String,
    store: Option<Store>,
    servers: usize,
    capacity: u32,
    max_attempts: u32,
    policy: ResiliencePolicy,
    health_checks: Option<Duration>,
    snapshots: bool,
    worktree_prefix: String,
    llm: Option<FakeLlm>,
    repo: Option<TempDir>,
    external: Option<OpenCodeClient>,
}

impl EngineRig {
    /// A rig for `test` (the name printed when it is skipped).
    pub fn builder(test: &str) -> EngineRigBuilder {
        EngineRigBuilder {
            test: test.to_owned(),
            store: None,
            servers: 1,
            capacity: 4,
            max_attempts: 3,
            policy: ResiliencePolicy::default(),
            health_checks: None,
            snapshots: true,
            worktree_prefix: "oio-worktrees-".to_owned(),
            llm: None,
            repo: None,
            external: None,
        }
    }

    /// What an engine on this rig depends on, with an in-process lock of its own.
    pub fn deps(&self) -> EngineDeps {
        EngineDeps {
            sessions: self.store.sessions.clone(),
            agents: self.store.agents.clone(),
            tasks: self.store.tasks.clone(),
            unit_of_work: self.store.unit_of_work.clone(),
            queue: self.store.queue.clone(),
            servers: self.fleet.clone(),
            workspaces: self.worktrees.clone(),
            lock: Arc::new(MemoryLock::new()),
        }
    }

    /// The engine configuration the tests start from: short leases and backoffs, a 60 s session
    /// timeout, eight runners, worktrees kept.
    pub fn config(&self, replica: &str) -> EngineConfig {
        EngineConfig {
            replica_id: replica.into(),
            lease_ttl: Duration::from_millis(1500),
            session_timeout: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
            max_running: 8,
            cleanup: CleanupPolicy::Keep,
        }
    }

    /// An engine (`Engine::start`) on [`deps`](Self::deps) and [`config`](Self::config), as
    /// `tune` adjusts it.
    pub fn engine(&self, replica: &str, tune: impl FnOnce(&mut EngineConfig)) -> Engine {
        let mut config = self.config(replica);
        tune(&mut config);
        Engine::start(self.deps(), config)
    }

    /// A fresh client of its own (not the fleet's) on started server `index`.
    pub fn client(&self, index: usize) -> OpenCodeClient {
        let server = self.servers[index]
            .as_ref()
            .expect("the server is still running");
        client_of(server, &self.policy)
    }

    /// A request for a session on the rig's repository.
    pub fn request(&self, title: &str) -> CreateSessionRequest {
        CreateSessionRequest {
            title: title.into(),
            prompt: "Write hello.txt".into(),
            workspace: self.repo.path().display().to_string(),
            ..CreateSessionRequest::default()
        }
    }

    /// Creates (and queues) a session.
    pub async fn create(&self, request: CreateSessionRequest) -> Session {
        self.lifecycle.create(request).await.unwrap()
    }

    /// The worktree the engine will give `session` (preparing is idempotent).
    pub async fn worktree_of(&self, session: SessionId) -> PathBuf {
        self.worktrees
            .prepare(&WorkspaceRequest {
                repository: self.repo.path().to_path_buf(),
                session,
                base: None,
            })
            .await
            .unwrap()
            .path
    }

    /// Polls the session until `done`, for at most [`TURN_TIMEOUT`].
    pub async fn wait_for(&self, id: SessionId, done: impl Fn(&Session) -> bool) -> Session {
        let start = Instant::now();
        loop {
            let session = self.store.sessions.get(id).await.unwrap().unwrap();
            if done(&session) {
                return session;
            }
            assert!(
                start.elapsed() < TURN_TIMEOUT,
                "session stuck in {} ({:?}); events: {:#?}",
                session.status(),
                session.last_error(),
                self.events(id).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Terminal for good: a retried attempt commits `failed -> queued` at once, so a terminal
    /// status read back is the last one.
    pub async fn wait_terminal(&self, id: SessionId) -> Session {
        self.wait_for(id, |s| s.status().is_terminal()).await
    }

    /// Current sessions; `None` while the store does not answer (a database outage).
    pub async fn statuses(&self, ids: &[SessionId]) -> Option<Vec<Session>> {
        let mut out = Vec::new();
        for id in ids {
            out.push(self.store.sessions.get(*id).await.ok()??);
        }
        Some(out)
    }

    /// Waits until every session is terminal for good, riding out store outages.
    pub async fn wait_all_terminal(&self, ids: &[SessionId], within: Duration) -> Vec<Session> {
        let start = Instant::now();
        loop {
            if let Some(sessions) = self.statuses(ids).await {
                if sessions.iter().all(|s| s.status().is_terminal()) {
                    return sessions;
                }
                assert!(
                    start.elapsed() < within,
                    "sessions not terminal after {within:?}: {:?}",
                    count_statuses(&sessions)
                );
            } else {
                assert!(start.elapsed() < within, "store unreachable for {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn events(&self, id: SessionId) -> Vec<StoredSessionEvent> {
        self.store.sessions.events(id).await.unwrap()
    }
}

/// How many sessions are in each status.
pub fn count_statuses(sessions: &[Session]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for s in sessions {
        *counts.entry(s.status().to_string()).or_default() += 1;
    }
    counts
}

fn client_of(server: &OpenCodeServer, policy: &ResiliencePolicy) -> OpenCodeClient {
    OpenCodeClient::new(
        Url::parse(server.base_url()).unwrap(),
        server.password().map(|p| SecretString::from(p.to_string())),
        policy.clone(),
    )
    .unwrap()
}

impl EngineRigBuilder {
    /// The store (default: a fresh SQLite store, see `support::store::sqlite`, kept by the rig).
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// How many OpenCode servers to start (default 1).
    pub fn servers(mut self, servers: usize) -> Self {
        self.servers = servers;
        self
    }

    /// Sessions each server takes at once, in the fleet (default 4).
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// The lifecycle's default attempts per session (default 3).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The clients' resilience policy (default: `ResiliencePolicy::default()`).
    #[allow(dead_code)] // every engine test runs on the default policy today
    pub fn policy(mut self, policy: ResiliencePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Health checks of the fleet every `interval` (also the policy's interval). Default: none.
    pub fn health_checks(mut self, interval: Duration) -> Self {
        self.health_checks = Some(interval);
        self
    }

    /// Whether OpenCode takes undo snapshots (default: yes). They cost most of OpenCode's time.
    pub fn snapshots(mut self, snapshots: bool) -> Self {
        self.snapshots = snapshots;
        self
    }

    /// The name prefix of the worktree root's temp dir (default `oio-worktrees-`).
    pub fn worktree_prefix(mut self, prefix: &str) -> Self {
        self.worktree_prefix = prefix.to_owned();
        self
    }

    /// A fake LLM set up beforehand (default: a fresh one with no scripted replies).
    pub fn llm(mut self, llm: FakeLlm) -> Self {
        self.llm = Some(llm);
        self
    }

    /// The target repository (default: a fresh `testkit::git::temp_repo`).
    pub fn repo(mut self, repo: TempDir) -> Self {
        self.repo = Some(repo);
        self
    }

    /// No OpenCode server of the rig's own: the fleet is this one client (a supervised server's,
    /// say) with the builder's capacity.
    pub fn external_server(mut self, client: OpenCodeClient) -> Self {
        self.external = Some(client);
        self
    }

    /// The rig, or `None` (after a visible message) where OpenCode is not installed — never under
    /// CI=true.
    pub async fn build(self) -> Option<EngineRig> {
        if self.external.is_none() {
            opencode::binary_or_skip(&self.test)?;
        }
        let mut policy = self.policy;
        if let Some(interval) = self.health_checks {
            policy.health_check_interval = interval;
        }
        let (store, db) = match self.store {
            Some(store) => (store, None),
            None => {
                let (store, db) = super::store::sqlite().await;
                (store, Some(db))
            }
        };
        let repo = match self.repo {
            Some(repo) => repo,
            None => testkit::git::temp_repo().unwrap(),
        };
        let llm = match self.llm {
            Some(llm) => llm,
            None => FakeLlm::start([]).await.unwrap(),
        };
        let mut servers = Vec::new();
        let clients = match self.external {
            Some(client) => vec![(client, self.capacity)],
            None => {
                let options = if self.snapshots {
                    Options::default()
                } else {
                    Options::default().with_config(serde_json::json!({ "snapshot": false }))
                };
                for _ in 0..self.servers {
                    let server = OpenCodeServer::start(repo.path(), &llm, options.clone())
                        .await
                        .expect("OpenCode starts");
                    servers.push(server);
                }
                servers
                    .iter()
                    .map(|s| (client_of(s, &policy), self.capacity))
                    .collect()
            }
        };
        let fleet = Arc::new(Fleet::new(clients));
        let health = self
            .health_checks
            .map(|interval| fleet.spawn_health_checks(interval));
        let worktree_root = tempfile::Builder::new()
            .prefix(&self.worktree_prefix)
            .tempdir_in(std::env::temp_dir().canonicalize().unwrap())
            .unwrap();
        Some(EngineRig {
            lifecycle: SessionLifecycle::new(
                store.sessions.clone(),
                store.unit_of_work.clone(),
                store.queue.clone(),
                self.max_attempts,
            ),
            store,
            llm,
            fleet,
            servers: servers.into_iter().map(Some).collect(),
            worktrees: Arc::new(GitWorktrees::new(worktree_root.path().to_path_buf())),
            repo,
            worktree_root,
            policy,
            _health: health,
            _db: db,
        })
    }
}
