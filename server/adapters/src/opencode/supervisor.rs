//! Supervised OpenCode servers: `opencode serve` processes this orchestrator starts and owns.
//!
//! A [`Supervisor`] checks the binary's version against the pinned one, starts
//! `opencode serve --hostname 127.0.0.1 --port 0` in its working directory with a fresh random
//! password (`OPENCODE_SERVER_PASSWORD`), and counts it ready once it printed its listening URL
//! (`opencode server listening on http://127.0.0.1:PORT`) and answers its health check.
//!
//! The fleet sees one stable [`OpenCodeClient`] under the supervised server's configured name:
//! on a restart the client is pointed at the new process ([`OpenCodeClient::retarget`]), so
//! sessions routed by name keep their server, and event streams reconnect to the new process by
//! themselves (yielding `Resynced`, after which runners reconcile).
//!
//! A monitor task restarts the server, with backoff, when the process exits, when its health
//! check fails too often in a row, or — between turns — when its memory (RSS of the process and
//! its descendants) passed the limit: the server is then drained (no new sessions) and recycled
//! once no session on it is busy, or after a grace period at the latest. Dropping the supervisor
//! kills the server's whole process group.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use futures_util::StreamExt;
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;
use url::Url;

use super::client::OpenCodeClient;
use super::policy::ResiliencePolicy;
use oio_application::ports::{AgentEvent, AgentServer, AgentSessionStatus, EventScope};

/// The OpenCode version the orchestrator is written against (`opencode.version`).
pub const PINNED_VERSION: &str = "1.18.33";
/// What OpenCode prints once it listens, before the URL.
const LISTENING: &str = "listening on ";
/// Lines of the server's output kept for error messages.
const TAIL_LINES: usize = 40;
/// A process that ran this long was stable: the restart backoff starts over.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// How to run and watch one supervised server.
#[derive(Clone, Debug)]
pub struct SupervisedSpec {
    /// The stable name the fleet and the dispatch queue know the server by.
    pub name: String,
    pub binary: PathBuf,
    /// The version `opencode --version` must print; a mismatch refuses to start.
    pub version: String,
    /// The server's working directory (its default instance; sessions name their own).
    pub directory: PathBuf,
    /// Extra environment for the process (on top of this process's own).
    pub env: Vec<(String, String)>,
    /// How long a start may take until the URL is printed and the health check passes.
    pub startup_timeout: Duration,
    /// How often health and memory are checked.
    pub health_interval: Duration,
    /// Failed health checks in a row that make the server restart.
    pub health_failures: u32,
    /// Memory (RSS, process and descendants) past which the server is recycled between turns.
    pub max_rss_bytes: Option<u64>,
    /// How long a server over its memory limit waits for its sessions to go idle before it is
    /// recycled anyway.
    pub recycle_grace: Duration,
    /// Restart backoff of a crash-looping server: first delay, doubling up to the maximum.
    pub restart_min_delay: Duration,
    pub restart_max_delay: Duration,
}

impl SupervisedSpec {
    /// A spec with the defaults: 5 s health checks, 3 failures, 2 GiB, 10 min grace.
    pub fn new(name: impl Into<String>, binary: PathBuf, directory: PathBuf) -> Self {
        Self {
            name: name.into(),
            binary,
            version: PINNED_VERSION.to_owned(),
            directory,
            env: Vec::new(),
            startup_timeout: Duration::from_secs(60),
            health_interval: Duration::from_secs(5),
            health_failures: 3,
            max_rss_bytes: Some(2048 * 1024 * 1024),
            recycle_grace: Duration::from_secs(600),
            restart_min_delay: Duration::from_millis(500),
            restart_max_delay: Duration::from_secs(30),
        }
    }
}

/// Why a supervised server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("OpenCode binary {path}: {reason}")]
    Binary { path: String, reason: String },
    #[error(
        "OpenCode binary {path} is version {found}, but version {expected} is pinned \
         (opencode.version): install the pinned version or change the pin"
    )]
    VersionMismatch {
        path: String,
        found: String,
        expected: String,
    },
    #[error("OpenCode working directory {0} does not exist")]
    Directory(String),
    #[error("OpenCode exited before it was ready ({status}); its last output:\n{output}")]
    Exited { status: String, output: String },
    #[error("OpenCode was not ready within {after:?}; its last output:\n{output}")]
    NotReady { after: Duration, output: String },
    #[error("OpenCode client: {0}")]
    Client(#[from] oio_application::ports::AgentServerError),
}

/// Why a server was restarted (the `reason` label of `oio_opencode_restarts_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartReason {
    /// The process ended (crashed, or was killed).
    Exited,
    /// Its health check failed too many times in a row.
    Unhealthy,
    /// Its memory passed the limit; recycled between turns.
    Memory,
}

impl RestartReason {
    pub const ALL: [RestartReason; 3] = [Self::Exited, Self::Unhealthy, Self::Memory];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exited => "exited",
            Self::Unhealthy => "unhealthy",
            Self::Memory => "memory",
        }
    }
}

/// What the supervisor knows now; shared with its tasks.
#[derive(Default)]
struct State {
    pid: AtomicU32,
    restarts: AtomicU64,
    rss_bytes: AtomicU64,
    /// Over the memory limit, waiting for its sessions to go idle.
    recycling: AtomicBool,
    /// `Some(bytes)`; 0 for none. Adjustable at run time.
    max_rss_bytes: AtomicU64,
    /// Sessions the event stream last saw busy (or retrying).
    busy: Mutex<HashSet<String>>,
    /// When the event stream last delivered anything (heartbeats included).
    last_event: Mutex<Option<Instant>>,
    last_restart: Mutex<Option<RestartReason>>,
}

/// One supervised `opencode serve`, restarted whenever it dies, hangs or grows too big.
pub struct Supervisor {
    spec: Arc<SupervisedSpec>,
    client: OpenCodeClient,
    state: Arc<State>,
    monitor: JoinHandle<()>,
    watcher: JoinHandle<()>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("server", &self.spec.name)
            .field("pid", &self.pid())
            .field("restarts", &self.restarts())
            .field("recycling", &self.recycling())
            .field("busy_sessions", &lock(&self.state.busy).len())
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// Checks the version, starts the server and waits until it is ready; then watches it.
    pub async fn start(
        spec: SupervisedSpec,
        policy: ResiliencePolicy,
    ) -> Result<Self, SupervisorError> {
        let span = tracing::info_span!("opencode_supervisor", server = %spec.name);
        async move {
            if !spec.directory.is_dir() {
                return Err(SupervisorError::Directory(
                    spec.directory.display().to_string(),
                ));
            }
            check_version(&spec).await?;
            let process = Process::spawn(&spec, &policy).await?;
            let client = OpenCodeClient::named(
                spec.name.clone(),
                process.url.clone(),
                Some(process.password.clone()),
                policy,
            )?;
            let state = Arc::new(State::default());
            state.pid.store(process.pid, Ordering::Release);
            state
                .max_rss_bytes
                .store(spec.max_rss_bytes.unwrap_or(0), Ordering::Release);
            for reason in RestartReason::ALL {
                oio_application::metrics::record_opencode_restart(&spec.name, reason.as_str(), 0);
            }
            tracing::info!(pid = process.pid, url = %process.url, "supervised OpenCode is up");
            let spec = Arc::new(spec);
            let monitor = tokio::spawn(
                monitor(spec.clone(), client.clone(), state.clone(), process).in_current_span(),
            );
            let watcher =
                tokio::spawn(watch_events(client.clone(), state.clone()).in_current_span());
            Ok(Self {
                spec,
                client,
                state,
                monitor,
                watcher,
            })
        }
        .instrument(span)
        .await
    }

    /// The server's stable name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The client the fleet uses: the same across restarts.
    pub fn client(&self) -> &OpenCodeClient {
        &self.client
    }

    /// The current process's id (0 while none runs).
    pub fn pid(&self) -> u32 {
        self.state.pid.load(Ordering::Acquire)
    }

    /// Restarts so far, whatever their reason.
    pub fn restarts(&self) -> u64 {
        self.state.restarts.load(Ordering::Acquire)
    }

    /// Why the server was last restarted.
    pub fn last_restart(&self) -> Option<RestartReason> {
        *lock(&self.state.last_restart)
    }

    /// The last memory reading, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.state.rss_bytes.load(Ordering::Acquire)
    }

    /// Whether the server is over its memory limit and waits to be recycled between turns.
    pub fn recycling(&self) -> bool {
        self.state.recycling.load(Ordering::Acquire)
    }

    /// How long ago the event stream delivered anything (heartbeats included).
    pub fn heartbeat_age(&self) -> Option<Duration> {
        lock(&self.state.last_event).map(|at| at.elapsed())
    }

    /// Changes the memory limit (`None`: no limit) from the next check on.
    pub fn set_max_rss(&self, bytes: Option<u64>) {
        self.state
            .max_rss_bytes
            .store(bytes.unwrap_or(0), Ordering::Release);
    }

    /// Stops watching and kills the server (as dropping does).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.watcher.abort();
        self.monitor.abort();
        // The monitor owns the process and kills its group when dropped; it is dropped when the
        // aborted task is next polled, which may be never if the runtime is gone: kill it here.
        kill_group(self.state.pid.swap(0, Ordering::AcqRel));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// SIGKILL to the process group `pid` leads (every process OpenCode started: shells, LSPs).
fn kill_group(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) takes no pointers; a negative pid addresses the process group the child
    // leads (it was started with `process_group(0)`). SIGKILL because OpenCode takes seconds to
    // wind down on SIGTERM.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Refuses a binary whose `--version` is not the pinned one.
async fn check_version(spec: &SupervisedSpec) -> Result<(), SupervisorError> {
    let path = spec.binary.display().to_string();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(&spec.binary)
            .arg("--version")
            .current_dir(&spec.directory)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| SupervisorError::Binary {
        path: path.clone(),
        reason: "`--version` did not answer within 30 s".into(),
    })?
    .map_err(|e| SupervisorError::Binary {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let found = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned();
    if !output.status.success() || found.is_empty() {
        return Err(SupervisorError::Binary {
            path,
            reason: format!("`--version` failed ({})", output.status),
        });
    }
    if found != spec.version {
        return Err(SupervisorError::VersionMismatch {
            path,
            found,
            expected: spec.version.clone(),
        });
    }
    Ok(())
}

/// The URL in OpenCode's `opencode server listening on http://127.0.0.1:PORT` line.
fn listening_url(line: &str) -> Option<Url> {
    let at = line.find(LISTENING)?;
    let url = Url::parse(line[at + LISTENING.len()..].trim()).ok()?;
    matches!(url.scheme(), "http" | "https").then_some(url)
}

/// A fresh password: 24 random bytes from the OS, as hex.
fn random_password() -> SecretString {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    SecretString::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

type Tail = Arc<Mutex<std::collections::VecDeque<String>>>;

/// One running `opencode serve`. Dropping it kills its process group.
struct Process {
    child: Child,
    pid: u32,
    url: Url,
    password: SecretString,
    started: Instant,
}

impl Process {
    async fn spawn(
        spec: &SupervisedSpec,
        policy: &ResiliencePolicy,
    ) -> Result<Self, SupervisorError> {
        use secrecy::ExposeSecret;
        let password = random_password();
        let mut command = Command::new(&spec.binary);
        command
            .args(["serve", "--hostname", "127.0.0.1", "--port", "0"])
            .current_dir(&spec.directory)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("OPENCODE_SERVER_PASSWORD", password.expose_secret())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a kill reaches whatever it spawned.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| SupervisorError::Binary {
            path: spec.binary.display().to_string(),
            reason: format!("cannot start: {e}"),
        })?;
        let pid = child.id().unwrap_or(0);
        let tail: Tail = Arc::default();
        let (found, listening) = oneshot::channel();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(read_output(stdout, tail.clone(), Some(found)).in_current_span());
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(read_output(stderr, tail.clone(), None).in_current_span());
        }
        let started = Instant::now();
        let mut process = Self {
            child,
            pid,
            url: Url::parse("http://127.0.0.1/").expect("a valid placeholder"),
            password,
            started,
        };
        let output = || lock(&tail).iter().cloned().collect::<Vec<_>>().join("\n");
        let ready = async {
            let url = tokio::select! {
                url = listening => url.ok(),
                status = process.child.wait() => {
                    // Let the readers drain what it printed before dying.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Err(SupervisorError::Exited {
                        status: status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                        output: output(),
                    });
                }
            };
            let Some(url) = url else {
                let status = process.child.wait().await;
                return Err(SupervisorError::Exited {
                    status: status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                    output: output(),
                });
            };
            // Printed once it listens; the health check proves it answers, with our password.
            let probe =
                OpenCodeClient::new(url.clone(), Some(process.password.clone()), policy.clone())?;
            loop {
                match probe.probe_health().await {
                    Ok(health) if health.healthy => return Ok(url),
                    Ok(_) => tracing::debug!("OpenCode not healthy yet"),
                    Err(error) => tracing::debug!(%error, "OpenCode not answering yet"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        match tokio::time::timeout(spec.startup_timeout, ready).await {
            Ok(Ok(url)) => {
                process.url = url;
                Ok(process)
            }
            Ok(Err(error)) => Err(error),
            Err(_) => Err(SupervisorError::NotReady {
                after: spec.startup_timeout,
                output: output(),
            }),
        }
    }

    /// Kills the group and reaps the leader.
    async fn kill(mut self) {
        kill_group(self.pid);
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        kill_group(self.pid);
    }
}

/// Logs the server's output (debug), keeps its tail, and reports the listening URL once.
async fn read_output(
    pipe: impl AsyncRead + Unpin,
    tail: Tail,
    mut found: Option<oneshot::Sender<Url>>,
) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "opencode", "{line}");
        if let Some(url) = found.as_ref().and_then(|_| listening_url(&line)) {
            if let Some(sender) = found.take() {
                let _ = sender.send(url);
            }
        }
        let mut tail = lock(&tail);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// Resident memory of `pid` and every descendant, from `/proc` (Linux); `None` elsewhere or when
/// the process is gone.
pub fn tree_rss_bytes(pid: u32) -> Option<u64> {
    fn rss(pid: u32) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line
            .trim_start_matches("VmRSS:")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }
    fn children(pid: u32) -> Vec<u32> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|list| {
                list.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }
    let mut total = rss(pid)?;
    let mut seen = HashSet::from([pid]);
    let mut pending = children(pid);
    while let Some(child) = pending.pop() {
        if seen.insert(child) {
            total += rss(child).unwrap_or(0);
            pending.extend(children(child));
        }
    }
    Some(total)
}

/// Follows every directory's events: which sessions are busy, and when the stream last spoke.
async fn watch_events(client: OpenCodeClient, state: Arc<State>) {
    let mut events = client.events(EventScope::AllDirectories);
    while let Some(event) = events.next().await {
        if !matches!(event, AgentEvent::Disconnected { .. }) {
            *lock(&state.last_event) = Some(Instant::now());
        }
        match event {
            AgentEvent::SessionStatus { session_id, status } => {
                let mut busy = lock(&state.busy);
                match status {
                    AgentSessionStatus::Idle => busy.remove(session_id.as_str()),
                    _ => busy.insert(session_id.as_str().to_owned()),
                };
            }
            AgentEvent::SessionIdle { session_id } => {
                lock(&state.busy).remove(session_id.as_str());
            }
            _ => {}
        }
    }
}

/// Whether no session on the server works now: none busy on the event stream, none busy in the
/// server's own directory.
async fn idle(client: &OpenCodeClient, state: &State) -> bool {
    if !lock(&state.busy).is_empty() {
        return false;
    }
    match client.status(None).await {
        Ok(statuses) => statuses
            .values()
            .all(|s| matches!(s, AgentSessionStatus::Idle)),
        Err(_) => false,
    }
}

/// Watches the running process until it must be restarted, and why.
async fn watch_process(
    spec: &SupervisedSpec,
    client: &OpenCodeClient,
    state: &State,
    process: &mut Process,
) -> RestartReason {
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + spec.health_interval,
        spec.health_interval,
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u32;
    let mut over_since: Option<Instant> = None;
    loop {
        tokio::select! {
            status = process.child.wait() => {
                tracing::warn!(pid = process.pid, status = ?status, "OpenCode exited");
                return RestartReason::Exited;
            }
            _ = ticks.tick() => {}
        }
        match client.probe_health().await {
            Ok(health) if health.healthy => failures = 0,
            outcome => {
                failures += 1;
                tracing::warn!(
                    failures,
                    error = ?outcome.err(),
                    "OpenCode failed its health check"
                );
                if failures >= spec.health_failures.max(1) {
                    return RestartReason::Unhealthy;
                }
            }
        }
        if let Some(rss) = tree_rss_bytes(process.pid) {
            state.rss_bytes.store(rss, Ordering::Release);
            oio_application::metrics::set_opencode_rss(&spec.name, rss);
            let limit = state.max_rss_bytes.load(Ordering::Acquire);
            if limit > 0 && rss > limit && over_since.is_none() {
                tracing::warn!(
                    rss_mb = rss / (1024 * 1024),
                    limit_mb = limit / (1024 * 1024),
                    "OpenCode over its memory limit: draining, recycled between turns"
                );
                over_since = Some(Instant::now());
                state.recycling.store(true, Ordering::Release);
                client.set_draining(true);
            }
        }
        if let Some(since) = over_since {
            if idle(client, state).await {
                return RestartReason::Memory;
            }
            if since.elapsed() >= spec.recycle_grace {
                tracing::warn!(grace = ?spec.recycle_grace, "sessions still busy after the grace period; recycling anyway");
                return RestartReason::Memory;
            }
        }
    }
}

/// Restarts the server whenever [`watch_process`] says so, for as long as the supervisor lives.
async fn monitor(
    spec: Arc<SupervisedSpec>,
    client: OpenCodeClient,
    state: Arc<State>,
    mut process: Process,
) {
    let backoff = || {
        backon::ExponentialBuilder::default()
            .with_min_delay(spec.restart_min_delay)
            .with_max_delay(spec.restart_max_delay)
            .with_jitter()
            .without_max_times()
            .build()
    };
    let mut delays = backoff();
    loop {
        let reason = watch_process(&spec, &client, &state, &mut process).await;
        let uptime = process.started.elapsed();
        let old_pid = process.pid;
        state.pid.store(0, Ordering::Release);
        // Until the new process is ready, calls fail at once as never sent (nothing listens on
        // port 0), so callers retry; on the old port a booting server (OpenCode may reuse it)
        // can leave early requests unanswered until they time out.
        client.retarget(
            Url::parse("http://127.0.0.1:0/").expect("a valid URL"),
            None,
        );
        process.kill().await;
        *lock(&state.last_restart) = Some(reason);
        oio_application::metrics::record_opencode_restart(&spec.name, reason.as_str(), 1);
        tracing::warn!(
            reason = reason.as_str(),
            pid = old_pid,
            ?uptime,
            "restarting OpenCode"
        );
        if uptime >= STABLE_AFTER {
            delays = backoff();
        }
        process = loop {
            match Process::spawn(&spec, client.policy()).await {
                Ok(process) => break process,
                Err(error) => {
                    let delay = delays.next().unwrap_or(spec.restart_max_delay);
                    tracing::error!(%error, ?delay, "OpenCode did not start again; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        lock(&state.busy).clear();
        client.retarget(process.url.clone(), Some(process.password.clone()));
        client.set_draining(false);
        state.recycling.store(false, Ordering::Release);
        state.pid.store(process.pid, Ordering::Release);
        state.restarts.fetch_add(1, Ordering::AcqRel);
        tracing::info!(pid = process.pid, url = %process.url, "supervised OpenCode is up again");
    }
}

/// Starts every `[[opencode.supervised]]` server (in order; the first failure stops), each with
/// its capacity, for the fleet. A server without a directory of its own works in `data_dir`.
pub async fn start_configured(
    settings: &crate::opencode::settings::OpenCodeSettings,
    data_dir: &std::path::Path,
    policy: &ResiliencePolicy,
) -> Result<Vec<(Supervisor, u32)>, SupervisorError> {
    let binary = settings.binary.clone().unwrap_or_else(find_binary);
    let mut started = Vec::new();
    for server in &settings.supervised {
        let directory = match &server.directory {
            Some(directory) => directory.clone(),
            None => {
                let _ = std::fs::create_dir_all(data_dir);
                data_dir.to_path_buf()
            }
        };
        let directory = directory.canonicalize().unwrap_or(directory);
        let mut spec = SupervisedSpec::new(server.name.clone(), binary.clone(), directory);
        spec.version = settings.version().to_owned();
        spec.max_rss_bytes = (server.max_rss_mb > 0).then(|| server.max_rss_mb * 1024 * 1024);
        spec.health_interval = Duration::from_millis(server.health_interval_ms);
        started.push((
            Supervisor::start(spec, policy.clone()).await?,
            server.capacity,
        ));
    }
    Ok(started)
}

/// Looks for the OpenCode binary when none is configured: the npm platform package's binary in
/// `node_modules` under the current directory or one above it, else `opencode` on `PATH`.
pub fn find_binary() -> PathBuf {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            for package in [
                format!("opencode-{os}-{arch}"),
                format!("opencode-{os}-{arch}-baseline"),
            ] {
                let candidate = dir
                    .join("node_modules")
                    .join(package)
                    .join("bin")
                    .join("opencode");
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
    }
    Path::new("opencode").to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_yields_the_url() {
        assert_eq!(
            listening_url("opencode server listening on http://127.0.0.1:41347").map(String::from),
            Some("http://127.0.0.1:41347/".to_owned())
        );
        assert_eq!(
            listening_url("Warning: OPENCODE_SERVER_PASSWORD is not set"),
            None
        );
        assert_eq!(listening_url("listening on nonsense"), None);
    }

    #[test]
    fn passwords_are_fresh_and_long() {
        use secrecy::ExposeSecret;
        let a = random_password();
        let b = random_password();
        assert_eq!(a.expose_secret().len(), 48);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn this_process_has_a_resident_size() {
        let rss = tree_rss_bytes(std::process::id()).expect("Linux /proc");
        assert!(rss > 1024 * 1024, "{rss}");
        assert_eq!(tree_rss_bytes(u32::MAX), None);
    }

    #[tokio::test]
    async fn a_version_other_than_the_pinned_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = |version: &str| {
            let path = dir.path().join(format!("opencode-{version}"));
            std::fs::write(&path, format!("#!/bin/sh\necho {version}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            SupervisedSpec::new("s", path, dir.path().to_path_buf())
        };
        check_version(&fake(PINNED_VERSION)).await.unwrap();
        let error = check_version(&fake("1.0.0")).await.unwrap_err();
        assert!(
            matches!(&error, SupervisorError::VersionMismatch { found, .. } if found == "1.0.0"),
            "{error}"
        );
        assert!(error.to_string().contains(PINNED_VERSION), "{error}");
        let missing = SupervisedSpec::new("s", dir.path().join("absent"), dir.path().into());
        assert!(matches!(
            check_version(&missing).await,
            Err(SupervisorError::Binary { .. })
        ));
    }
}
