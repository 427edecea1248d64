//! Private Redis and PostgreSQL instances, started by a test so it can kill and restart them
//! without touching the shared services other tests use.
//!
//! Where a binary is missing the test is skipped with a message — except under `CI=true`, where
//! it fails: CI must never pass by skipping the fault it is meant to inject.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where Debian and Ubuntu install the server binaries, one directory per major version.
const PG_LIB: &str = "/usr/lib/postgresql";

/// The directory of the PostgreSQL server binaries (`initdb`, `pg_ctl`): `pg_config --bindir`
/// where that has `initdb`, else the highest version under `/usr/lib/postgresql/*/bin` that has
/// it. Looked up once per process.
fn pg_bin() -> Result<&'static Path, &'static str> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(find_pg_bin)
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(String::as_str)
}

fn find_pg_bin() -> Result<PathBuf, String> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|d| d.join("initdb").is_file()) {
        return Ok(dir);
    }
    // Versions compare numerically, part by part: 9.6 < 15 < 16.
    let version = |name: &str| -> Option<Vec<u32>> {
        name.split('.').map(|part| part.parse().ok()).collect()
    };
    let mut installed: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(PG_LIB)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = version(entry.file_name().to_str()?)?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    installed.sort();
    installed
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("no initdb in `pg_config --bindir` nor in {PG_LIB}/*/bin"))
}

/// Skips (or, under `CI=true`, fails) with `reason`.
pub fn unavailable(what: &str, reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} unavailable under CI=true ({reason}); refusing to skip");
    }
    eprintln!("SKIPPED: {what} unavailable ({reason})");
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn which(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(binary))
            .find(|p| p.is_file())
    })
}

async fn wait_for_port(port: u16, up: bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let open = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
        if open == up {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `redis-server` on a free port, without persistence: a restart comes back empty, like a
/// replaced cache node.
pub struct PrivateRedis {
    binary: PathBuf,
    pub port: u16,
    child: Option<tokio::process::Child>,
}

impl PrivateRedis {
    pub async fn start() -> Option<Self> {
        let Some(binary) = which("redis-server") else {
            unavailable("redis-server", "not on PATH");
            return None;
        };
        let mut redis = Self {
            binary,
            port: free_port(),
            child: None,
        };
        redis.restart().await;
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port.to_string();
        let child = tokio::process::Command::new(&self.binary)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning redis-server");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, true, Duration::from_secs(10)).await,
            "redis-server did not listen on {port}"
        );
    }

    /// SIGKILL, and waits until the port is closed.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("killing redis-server");
        }
        assert!(wait_for_port(self.port, false, Duration::from_secs(10)).await);
    }
}

/// A PostgreSQL cluster of its own (the binaries found by [`pg_bin`]) in a temp dir, trust auth, listening on 127.0.0.1 and a
/// socket in the same dir. `initdb` refuses to run as root, so as root every command runs as the
/// `postgres` user (`runuser`), which then owns the dir.
pub struct PrivatePostgres {
    bin: &'static Path,
    dir: TempDir,
    pub port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    pub async fn start() -> Option<Self> {
        let bin = match pg_bin() {
            Ok(bin) => bin,
            Err(reason) => {
                unavailable("PostgreSQL server binaries", reason);
                return None;
            }
        };
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = tempfile::Builder::new()
            .prefix("oio-private-pg-")
            .tempdir()
            .expect("temp dir");
        if is_root {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            if !chown.is_ok_and(|s| s.success()) {
                unavailable("a private PostgreSQL", "cannot chown its dir to `postgres`");
                return None;
            }
        }
        let pg = Self {
            bin,
            dir,
            port: free_port(),
            as_postgres: is_root,
        };
        let data = pg.data().display().to_string();
        let init = pg.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        if let Err(reason) = init {
            unavailable("a private PostgreSQL (initdb)", &reason);
            return None;
        }
        pg.pg_ctl_start().expect("pg_ctl start");
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} {args:?}: {}\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let data = self.data().display().to_string();
        let log = self.dir.path().join("postgres.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &options, "-w", "start"],
        )
    }

    /// `pg_ctl stop -m fast`: clients are disconnected, the server is down until [`start`].
    pub fn stop(&self) {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
            .expect("pg_ctl stop");
    }

    pub fn start_again(&self) {
        self.pg_ctl_start().expect("pg_ctl start");
    }

    /// The server log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}
