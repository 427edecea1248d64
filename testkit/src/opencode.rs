//! A harness that runs the REAL OpenCode server (`opencode serve`, the version pinned in the
//! workspace's `package.json`) against a [`FakeLlm`]: finding the binary, writing the workspace's
//! `opencode.json`, isolating it from the user's home, waiting for it to answer, capturing its logs
//! and killing it (with everything it spawned) on drop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::fake_llm::{FakeLlm, MODEL_ID, PROVIDER_ID};

/// The OpenCode version `package.json` pins and these tests were written against.
pub const VERSION: &str = "1.18.33";
/// The HTTP Basic user name OpenCode expects when `OPENCODE_SERVER_PASSWORD` is set.
pub const USERNAME: &str = "opencode";
/// Overrides where the binary is looked up.
pub const BIN_ENV: &str = "OPENCODE_BIN";
/// Set to `1` to echo OpenCode's output live to the test's stderr.
pub const ECHO_LOGS_ENV: &str = "TESTKIT_OPENCODE_LOGS";

/// The OpenCode binary is not installed (run `npm ci` at the workspace root).
#[derive(Debug)]
pub struct BinaryNotFound {
    /// Every place looked at, in order.
    pub searched: Vec<PathBuf>,
}

impl std::fmt::Display for BinaryNotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the OpenCode binary (opencode-ai@{VERSION}) is not installed: run `npm ci` at the \
             workspace root or set {BIN_ENV}; looked at: "
        )?;
        let searched: Vec<String> = self
            .searched
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        write!(f, "{}", searched.join(", "))
    }
}

impl std::error::Error for BinaryNotFound {}

fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The npm package that ships the platform's binary, e.g. `opencode-linux-x64`.
fn platform_packages() -> Vec<String> {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "windows",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    // `-baseline` is the build for x86-64 CPUs without AVX2; npm installs both on x64.
    vec![
        format!("opencode-{os}-{arch}"),
        format!("opencode-{os}-{arch}-baseline"),
    ]
}

/// Finds the OpenCode binary: `$OPENCODE_BIN` if set, else the platform package's
/// `bin/opencode` in the nearest `node_modules` above this crate (the workspace root's).
///
/// The `node_modules/.bin/opencode` link is not used: npm 11 may skip opencode-ai's postinstall,
/// leaving it pointing at a launcher that does not exist.
///
/// # Panics
/// When the binary is missing and `CI=true`: CI must never silently skip the real-OpenCode tests.
pub fn binary() -> Result<PathBuf, BinaryNotFound> {
    let result = find_binary();
    match result {
        Err(missing) if running_in_ci() => panic!("CI=true and {missing}"),
        other => other,
    }
}

fn find_binary() -> Result<PathBuf, BinaryNotFound> {
    if let Some(path) = std::env::var_os(BIN_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(BinaryNotFound {
                searched: vec![path],
            })
        };
    }
    let mut searched = Vec::new();
    // The test crate's manifest dir at run time, else this crate's: both sit inside the workspace.
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for dir in start.ancestors() {
        let node_modules = dir.join("node_modules");
        if !node_modules.is_dir() {
            continue;
        }
        for package in platform_packages() {
            let candidate = node_modules.join(&package).join("bin").join("opencode");
            if candidate.is_file() {
                return Ok(candidate);
            }
            searched.push(candidate);
        }
    }
    if searched.is_empty() {
        searched.push(start.join("node_modules"));
    }
    Err(BinaryNotFound { searched })
}

/// For tests: the binary, or `None` after printing a visible `SKIPPED` line naming the test.
///
/// # Panics
/// Under `CI=true` when the binary is missing (see [`binary`]).
pub fn binary_or_skip(test: &str) -> Option<PathBuf> {
    match binary() {
        Ok(path) => Some(path),
        Err(missing) => {
            eprintln!("SKIPPED {test}: {missing}");
            None
        }
    }
}

/// How to start the server.
#[derive(Clone, Debug)]
pub struct Options {
    /// Turns on HTTP Basic auth (`OPENCODE_SERVER_PASSWORD`, user [`USERNAME`]).
    pub password: Option<String>,
    /// How long to wait for the server to answer `GET /global/health`.
    pub startup_timeout: Duration,
    /// Merged (deeply, objects only) over the generated `opencode.json`.
    pub config: Option<Value>,
    /// Extra environment variables for the server process.
    pub env: Vec<(String, String)>,
    /// `--log-level` (DEBUG, INFO, WARN, ERROR); OpenCode's default (INFO) when `None`.
    pub log_level: Option<String>,
    /// Runs this binary instead of [`binary()`]'s.
    pub binary: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            password: None,
            startup_timeout: Duration::from_secs(60),
            config: None,
            env: Vec::new(),
            log_level: None,
            binary: None,
        }
    }
}

impl Options {
    /// Turns on HTTP Basic auth with this password.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Merges `config` over the generated `opencode.json`.
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = Some(config);
        self
    }

    /// Adds an environment variable for the server process.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets `--log-level`.
    pub fn with_log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = Some(level.into());
        self
    }

    /// Waits this long for the first healthy answer instead of 60 s.
    pub fn with_startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Runs this binary instead of looking one up.
    pub fn with_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = Some(binary.into());
        self
    }
}

/// The `opencode.json` that points OpenCode at the fake: one OpenAI-compatible provider `fake`
/// with model `fake-coder`, used for everything, and edits and shell commands allowed without asking.
pub fn config_for(llm: &FakeLlm) -> Value {
    let model = format!("{PROVIDER_ID}/{MODEL_ID}");
    json!({
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            PROVIDER_ID: {
                "npm": "@ai-sdk/openai-compatible",
                "options": {"baseURL": llm.base_url(), "apiKey": "x"},
                "models": {MODEL_ID: {}},
            }
        },
        "model": model,
        // Without it OpenCode may pick a small model of its built-in free provider for titles,
        // which would go to the internet; with it, titles come to the fake too.
        "small_model": model,
        "permission": {"edit": "allow", "bash": "allow"},
    })
}

/// Deep-merges `patch` into `base`: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

/// OpenCode's output, shared with the reader tasks.
type Log = Arc<Mutex<String>>;

/// A running `opencode serve`. Dropping it kills the server's whole process group; if the thread is
/// panicking (a failed test), the server's log is printed to stderr first.
pub struct OpenCodeServer {
    child: Child,
    base_url: String,
    password: Option<String>,
    workspace: PathBuf,
    log: Log,
    startup_time: Duration,
    version: String,
    http: reqwest::Client,
    // Declared last: dropped after the process is dead, so OpenCode never writes into a deleted dir.
    home: TempDir,
}

impl OpenCodeServer {
    /// Writes `workspace/opencode.json` for `llm` (see [`config_for`]), starts
    /// `opencode serve --hostname 127.0.0.1 --port <free> --print-logs` in `workspace` with a fresh
    /// HOME and XDG dirs, and waits until `GET /global/health` answers.
    ///
    /// `opencode.json` is also added to the repo's `.git/info/exclude` (when `workspace` is a git
    /// work tree), so it does not show up as an untracked change.
    pub async fn start(workspace: &Path, llm: &FakeLlm, options: Options) -> anyhow::Result<Self> {
        let binary = match &options.binary {
            Some(path) => path.clone(),
            None => binary()?,
        };
        let workspace = workspace
            .canonicalize()
            .with_context(|| format!("workspace {} does not exist", workspace.display()))?;
        write_config(&workspace, llm, options.config.clone())?;

        // Rarely, another process takes the free port between our probe and OpenCode's bind:
        // then the server exits at once and a new port is tried.
        let mut last_error = None;
        for _ in 0..3 {
            let home = tempfile::Builder::new()
                .prefix("oio-opencode-home-")
                .tempdir()
                .context("creating OpenCode's isolated home")?;
            write_global_config(home.path(), &full_config(llm, options.config.clone()))?;
            let port = free_port()?;
            match Self::spawn(&binary, &workspace, &options, home, port).await {
                Ok(server) => return Ok(server),
                Err(SpawnError::Exited(error)) => last_error = Some(error),
                Err(SpawnError::Fatal(error)) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("OpenCode did not start")))
    }

    async fn spawn(
        binary: &Path,
        workspace: &Path,
        options: &Options,
        home: TempDir,
        port: u16,
    ) -> Result<Self, SpawnError> {
        let started = Instant::now();
        let mut command = Command::new(binary);
        command
            .args(["serve", "--hostname", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--print-logs");
        if let Some(level) = &options.log_level {
            command.args(["--log-level", level]);
        }
        command
            .current_dir(workspace)
            .envs(isolated_env(home.path()).map_err(SpawnError::Fatal)?)
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so drop can kill whatever it spawned (npm, shells, LSPs).
            .process_group(0)
            .kill_on_drop(true);
        if let Some(password) = &options.password {
            command.env("OPENCODE_SERVER_PASSWORD", password);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))
            .map_err(SpawnError::Fatal)?;

        let log: Log = Arc::default();
        let echo = std::env::var(ECHO_LOGS_ENV).is_ok_and(|v| v == "1");
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(capture(stdout, "out", log.clone(), echo));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(capture(stderr, "err", log.clone(), echo));
        }

        let base_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("building an HTTP client")
            .map_err(SpawnError::Fatal)?;
        let mut server = OpenCodeServer {
            child,
            base_url,
            password: options.password.clone(),
            workspace: workspace.to_path_buf(),
            log,
            startup_time: Duration::ZERO,
            version: String::new(),
            http,
            home,
        };
        server.version = server.wait_healthy(options.startup_timeout).await?;
        server.startup_time = started.elapsed();
        if server.version != VERSION {
            tracing::warn!(
                found = %server.version,
                expected = VERSION,
                "OpenCode version differs from the one the tests were written for"
            );
        }
        tracing::info!(
            url = %server.base_url,
            startup = ?server.startup_time,
            version = %server.version,
            "OpenCode is up"
        );
        Ok(server)
    }

    /// Polls `GET /global/health` until it reports healthy; returns the server's version.
    async fn wait_healthy(&mut self, timeout: Duration) -> Result<String, SpawnError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(|e| SpawnError::Fatal(e.into()))?
            {
                // Give the reader tasks a moment to drain what it printed before dying.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(SpawnError::Exited(anyhow!(
                    "OpenCode exited before answering ({status}); its log:\n{}",
                    self.logs()
                )));
            }
            let answer = self
                .request(reqwest::Method::GET, "/global/health")
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(response) = answer {
                if response.status().is_success() {
                    let health: Value = response
                        .json()
                        .await
                        .context("GET /global/health did not return JSON")
                        .map_err(SpawnError::Fatal)?;
                    if health.get("healthy") == Some(&Value::Bool(true)) {
                        let version = health.get("version").and_then(Value::as_str);
                        return Ok(version.unwrap_or_default().to_owned());
                    }
                } else if response.status() == reqwest::StatusCode::UNAUTHORIZED {
                    return Err(SpawnError::Fatal(anyhow!(
                        "OpenCode answered 401 to the health check: password mismatch?"
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(SpawnError::Fatal(anyhow!(
                    "OpenCode did not answer GET {}/global/health within {timeout:?}; its log:\n{}",
                    self.base_url,
                    self.logs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The Basic-auth password, when the server was started with one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The canonical workspace directory the server runs in.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// The isolated HOME (XDG dirs live below it: `.config`, `.local/share`, `.cache`, ...).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Everything OpenCode printed so far, each line prefixed by `out|` or `err|`.
    pub fn logs(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// From spawning the process to the first healthy answer.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// The version `GET /global/health` reported.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The server's process id (also its process group id).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A request to `path` (e.g. `/session`) on this server, with Basic auth when it has a password.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        match &self.password {
            Some(password) => request.basic_auth(USERNAME, Some(password)),
            None => request,
        }
    }

    /// Kills the process group now and waits for the server to exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.kill_group();
        self.child.wait().await.context("waiting for OpenCode")?;
        Ok(())
    }

    fn kill_group(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) takes no pointers; a negative pid addresses the process group the
            // child leads (`process_group(0)` above). SIGKILL because OpenCode ignores SIGTERM
            // for seconds while it winds down.
            unsafe {
                libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for OpenCodeServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- OpenCode log ({}) ----\n{}---- end of OpenCode log ----",
                self.base_url,
                self.logs()
            );
        }
        self.kill_group();
        // Reap it briefly so the home dir is not deleted under a still-running process.
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl std::fmt::Debug for OpenCodeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenCodeServer")
            .field("base_url", &self.base_url)
            .field("workspace", &self.workspace)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

/// Why one start attempt failed: `Exited` is worth retrying on another port, `Fatal` is not.
enum SpawnError {
    Exited(anyhow::Error),
    Fatal(anyhow::Error),
}

impl From<SpawnError> for anyhow::Error {
    fn from(error: SpawnError) -> Self {
        match error {
            SpawnError::Exited(error) | SpawnError::Fatal(error) => error,
        }
    }
}

fn full_config(llm: &FakeLlm, extra: Option<Value>) -> Value {
    let mut config = config_for(llm);
    if let Some(extra) = extra {
        merge(&mut config, extra);
    }
    config
}

/// The same configuration as the server's global one (`$XDG_CONFIG_HOME/opencode/opencode.json`
/// in its isolated home), so instances in other directories — session worktrees outside the
/// workspace — use the fake too.
fn write_global_config(home: &Path, config: &Value) -> anyhow::Result<()> {
    let dir = home.join(".config").join("opencode");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("opencode.json");
    std::fs::write(&path, serde_json::to_vec_pretty(config)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn write_config(workspace: &Path, llm: &FakeLlm, extra: Option<Value>) -> anyhow::Result<()> {
    let config = full_config(llm, extra);
    let path = workspace.join("opencode.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let exclude = workspace.join(".git").join("info").join("exclude");
    if workspace.join(".git").is_dir() {
        let current = std::fs::read_to_string(&exclude).unwrap_or_default();
        if !current.lines().any(|line| line.trim() == "/opencode.json") {
            std::fs::create_dir_all(exclude.parent().expect("exclude has a parent"))?;
            std::fs::write(&exclude, format!("{current}/opencode.json\n"))
                .with_context(|| format!("writing {}", exclude.display()))?;
        }
    }
    Ok(())
}

/// The whole environment of the server: nothing inherited but `PATH` (git, shells) and the locale,
/// so neither the user's config, credentials and API keys nor `OPENCODE_*` settings leak in.
fn isolated_env(home: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let dir = |relative: &str| -> anyhow::Result<String> {
        let path = home.join(relative);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(path.display().to_string())
    };
    let mut env = vec![
        ("HOME".to_owned(), home.display().to_string()),
        ("XDG_CONFIG_HOME".to_owned(), dir(".config")?),
        ("XDG_DATA_HOME".to_owned(), dir(".local/share")?),
        ("XDG_STATE_HOME".to_owned(), dir(".local/state")?),
        ("XDG_CACHE_HOME".to_owned(), dir(".cache")?),
        ("TMPDIR".to_owned(), dir("tmp")?),
        // No update checks, no models.dev fetch, no LSP downloads, no sharing: nothing to reach
        // on the internet, and nothing slowed down waiting for it.
        ("OPENCODE_DISABLE_AUTOUPDATE".to_owned(), "1".to_owned()),
        ("OPENCODE_DISABLE_MODELS_FETCH".to_owned(), "1".to_owned()),
        ("OPENCODE_DISABLE_LSP_DOWNLOAD".to_owned(), "1".to_owned()),
        ("OPENCODE_DISABLE_SHARE".to_owned(), "1".to_owned()),
        // Don't read Claude Code's prompts or skills from the (empty) home either.
        ("OPENCODE_DISABLE_CLAUDE_CODE".to_owned(), "1".to_owned()),
        // Each new config dir makes OpenCode npm-install `@opencode-ai/plugin` in the background
        // (~31 MB from the registry, per server, since every home is fresh). Offline, that install
        // fails at once with a WARN and nothing else changes: no plugins are configured. A test
        // that needs plugins can set it back with `Options::with_env`.
        ("npm_config_offline".to_owned(), "true".to_owned()),
    ];
    for key in ["PATH", "LANG", "LC_ALL"] {
        if let Ok(value) = std::env::var(key) {
            env.push((key.to_owned(), value));
        }
    }
    Ok(env)
}

/// Collects a pipe's lines into the log (and echoes them when asked).
async fn capture(pipe: impl AsyncRead + Unpin, tag: &'static str, log: Log, echo: bool) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if echo {
            eprintln!("[opencode {tag}] {line}");
        }
        let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        log.push_str(tag);
        log.push('|');
        log.push_str(&line);
        log.push('\n');
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("probing for a free port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_deep_for_objects_and_replaces_the_rest() {
        let mut base = json!({"a": {"b": 1, "c": [1]}, "d": 1});
        merge(&mut base, json!({"a": {"c": [2], "e": true}, "d": null}));
        assert_eq!(base, json!({"a": {"b": 1, "c": [2], "e": true}, "d": null}));
    }

    #[test]
    fn binary_not_found_says_what_to_do() {
        let missing = BinaryNotFound {
            searched: vec![PathBuf::from(
                "/x/node_modules/opencode-linux-x64/bin/opencode",
            )],
        };
        let text = missing.to_string();
        assert!(text.contains("npm ci"), "{text}");
        assert!(text.contains(BIN_ENV), "{text}");
        assert!(text.contains("/x/node_modules"), "{text}");
    }
}
