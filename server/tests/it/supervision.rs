//! Supervised OpenCode servers, for real: the supervisor starts the REAL `opencode serve` (driven
//! by the scripted fake LLM) on a random port with a random password, restarts it when it is
//! killed mid-session — under the same name, so the engine's session is reconciled, retried and
//! completed — and recycles it past a memory limit only once its sessions are idle.
//!
//! Skipped with a visible message where OpenCode is missing, never under CI=true.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use domain::SessionStatus;
use server::adapters::opencode::{
    BreakerPolicy, EventStreamPolicy, Fleet, ResiliencePolicy, RestartReason, SupervisedSpec,
    Supervisor,
};
use server::application::CreateSessionRequest;
use server::ports::{
    AgentServer, AgentServers, AgentSessionStatus, CreateSession, MessageId, PromptRequest,
};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::opencode;

use crate::support::engine_rig::EngineRig;

/// An isolated home for OpenCode (as testkit's harness makes one): its config points at the fake
/// LLM, and nothing is read from or written to the real home.
fn isolated_env(home: &Path, llm: &FakeLlm) -> Vec<(String, String)> {
    let config_dir = home.join(".config").join("opencode");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("opencode.json"),
        serde_json::to_vec_pretty(&opencode::config_for(llm)).unwrap(),
    )
    .unwrap();
    let dir = |relative: &str| {
        let path = home.join(relative);
        std::fs::create_dir_all(&path).unwrap();
        path.display().to_string()
    };
    let mut env = vec![
        ("HOME".to_owned(), home.display().to_string()),
        ("XDG_CONFIG_HOME".to_owned(), dir(".config")),
        ("XDG_DATA_HOME".to_owned(), dir(".local/share")),
        ("XDG_STATE_HOME".to_owned(), dir(".local/state")),
        ("XDG_CACHE_HOME".to_owned(), dir(".cache")),
        ("TMPDIR".to_owned(), dir("tmp")),
        ("npm_config_offline".to_owned(), "true".to_owned()),
    ];
    for flag in [
        "OPENCODE_DISABLE_AUTOUPDATE",
        "OPENCODE_DISABLE_MODELS_FETCH",
        "OPENCODE_DISABLE_LSP_DOWNLOAD",
        "OPENCODE_DISABLE_SHARE",
        "OPENCODE_DISABLE_CLAUDE_CODE",
    ] {
        env.push((flag.to_owned(), "1".to_owned()));
    }
    env
}

/// The working directory's own `opencode.json` too, kept out of git's untracked files.
fn write_workspace_config(repo: &Path, llm: &FakeLlm) {
    std::fs::write(
        repo.join("opencode.json"),
        serde_json::to_vec_pretty(&opencode::config_for(llm)).unwrap(),
    )
    .unwrap();
    let exclude = repo.join(".git").join("info").join("exclude");
    std::fs::create_dir_all(exclude.parent().unwrap()).unwrap();
    let current = std::fs::read_to_string(&exclude).unwrap_or_default();
    std::fs::write(&exclude, format!("{current}/opencode.json\n")).unwrap();
}

/// Fast reconnects, so a restarted server is followed again within a second; a breaker that
/// does not open during the few seconds of a restart, so the runner keeps reconciling (rather
/// than giving the attempt up as unreachable) and meets the restarted server.
fn policy() -> ResiliencePolicy {
    ResiliencePolicy {
        breaker: BreakerPolicy {
            failure_threshold: 1000,
            ..BreakerPolicy::default()
        },
        events: EventStreamPolicy {
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_millis(500),
            ..EventStreamPolicy::default()
        },
        ..ResiliencePolicy::default()
    }
}

fn spec(
    name: &str,
    binary: PathBuf,
    directory: &Path,
    env: Vec<(String, String)>,
) -> SupervisedSpec {
    let mut spec = SupervisedSpec::new(name, binary, directory.to_path_buf());
    spec.env = env;
    spec.health_interval = Duration::from_millis(300);
    spec.restart_min_delay = Duration::from_millis(100);
    spec.restart_max_delay = Duration::from_secs(1);
    spec.max_rss_bytes = None;
    spec
}

async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "waited {timeout:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_supervised_server_killed_mid_session_is_restarted_and_its_session_completes() {
    let Some(binary) = opencode::binary_or_skip("supervised_server_killed_mid_session") else {
        return;
    };
    let started = Instant::now();
    let repo = testkit::git::temp_repo().unwrap();
    // The first turn hangs (the server is killed under it); the retried attempt finishes.
    let llm = FakeLlm::start([Reply::hang(), Reply::text("Done after the restart.")])
        .await
        .unwrap();
    write_workspace_config(repo.path(), &llm);
    let home = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::start(
        spec(
            "local-1",
            binary,
            repo.path(),
            isolated_env(home.path(), &llm),
        ),
        policy(),
    )
    .await
    .unwrap();
    let client = supervisor.client().clone();
    assert_eq!(client.name(), "local-1");

    // A random port and a random password: without it the server refuses.
    let url = client.base_url();
    assert_eq!(url.host_str(), Some("127.0.0.1"));
    let anonymous = reqwest::get(url.join("global/health").unwrap())
        .await
        .unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    let health = client.health().await.unwrap();
    assert!(health.healthy);
    assert_eq!(health.version, "1.18.33");

    // The engine, on a fleet whose one server is the supervised one.
    let rig = EngineRig::builder("supervised_server_killed_mid_session")
        .external_server(client.clone())
        .llm(llm)
        .repo(repo)
        .max_attempts(4)
        .build()
        .await
        .expect("no OpenCode of the rig's own to skip for");
    let (store, fleet) = (&rig.store, &rig.fleet);
    let _engine = rig.engine("replica-a", |config| {
        config.session_timeout = Duration::from_secs(80);
        config.max_running = 4;
    });
    let session = rig
        .create(CreateSessionRequest {
            prompt: "Say done.".into(),
            ..rig.request("survives a server kill")
        })
        .await;

    // Mid-turn: the model is answering (hanging). Kill the server outright.
    rig.llm
        .wait_for_agent_requests(1, Duration::from_secs(60))
        .await
        .unwrap();
    let old_pid = supervisor.pid();
    assert!(old_pid > 0);
    // SAFETY: kill(2) takes no pointers; the pid is the supervised server's, alive right now.
    assert_eq!(
        unsafe { libc::kill(old_pid as libc::pid_t, libc::SIGKILL) },
        0
    );

    eventually("the restart", Duration::from_secs(30), || {
        supervisor.restarts() == 1 && supervisor.pid() != 0
    })
    .await;
    assert_ne!(supervisor.pid(), old_pid, "a new process");
    assert_eq!(supervisor.last_restart(), Some(RestartReason::Exited));
    assert_eq!(client.name(), "local-1", "the same name across restarts");
    assert!(fleet.get("local-1").is_some());
    // A new password (and port, unless OpenCode's preferred 4096 was free again).
    client
        .health()
        .await
        .expect("the client follows the new process");
    let metrics = server::metrics::handle().render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("oio_opencode_restarts_total{")
                && l.contains(r#"server="local-1""#)
                && l.contains(r#"reason="exited""#)
                && l.ends_with(" 1")),
        "{metrics}"
    );

    // The interrupted turn is found out (idle, unfinished reply), retried, and completed.
    let deadline = Instant::now() + Duration::from_secs(75);
    let done = loop {
        let current = store.sessions.get(session.id()).await.unwrap().unwrap();
        if current.status().is_terminal() {
            break current;
        }
        assert!(
            Instant::now() < deadline,
            "session stuck in {}: {:#?}",
            current.status(),
            store.sessions.events(session.id()).await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let events = store.sessions.events(session.id()).await.unwrap();
    assert_eq!(
        done.status(),
        SessionStatus::Completed,
        "{:?} {events:#?}",
        done.last_error()
    );
    assert_eq!(done.attempt(), 2, "one retry after the kill");
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert!(
        kinds.contains(&"session.agent_stream_resynced"),
        "the runner noticed the new server: {kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "session.dispatched").count(),
        2,
        "{kinds:?}"
    );
    // The first attempt failed for the restart (found out by reconciling), then was retried.
    assert!(
        events.iter().any(|e| {
            let payload = e.payload.to_string();
            e.event_type == "session.status_changed"
                && e.payload["to"] == "failed"
                && (payload.contains("restarted") || payload.contains("unreachable"))
        }),
        "{events:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_over_its_memory_limit_is_recycled_only_once_its_sessions_are_idle() {
    let Some(binary) = opencode::binary_or_skip("server_over_memory_limit_recycled") else {
        return;
    };
    let repo = testkit::git::temp_repo().unwrap();
    let llm = FakeLlm::start([Reply::hang()]).await.unwrap();
    write_workspace_config(repo.path(), &llm);
    let home = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::start(
        spec(
            "local-mem",
            binary,
            repo.path(),
            isolated_env(home.path(), &llm),
        ),
        policy(),
    )
    .await
    .unwrap();
    let client = supervisor.client().clone();
    let fleet = Fleet::new([(client.clone(), 2)]);

    // A turn that keeps the session busy.
    let directory = repo.path().display().to_string();
    let session = client
        .create_session(&CreateSession {
            title: Some("busy".into()),
            directory: Some(directory.clone()),
            ..CreateSession::default()
        })
        .await
        .unwrap();
    client
        .prompt_async(
            &session.address(),
            &PromptRequest {
                message_id: MessageId::generate(),
                text: "Work for a while.".into(),
                agent: None,
                model: None,
            },
        )
        .await
        .unwrap();
    llm.wait_for_agent_requests(1, Duration::from_secs(60))
        .await
        .unwrap();
    let busy = client.status(Some(&directory)).await.unwrap();
    assert!(
        matches!(busy.get(&session.id), Some(AgentSessionStatus::Busy)),
        "{busy:?}"
    );

    // A limit far below what OpenCode uses: marked for recycling, drained, but not restarted
    // while the session works.
    let pid = supervisor.pid();
    supervisor.set_max_rss(Some(1024 * 1024));
    eventually("the memory check", Duration::from_secs(10), || {
        supervisor.recycling()
    })
    .await;
    assert!(supervisor.rss_bytes() > 1024 * 1024);
    assert!(
        fleet.available().is_empty(),
        "a draining server takes no new sessions"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        supervisor.restarts(),
        0,
        "never recycled under a busy session"
    );
    assert_eq!(supervisor.pid(), pid);

    // The turn ends: now it is recycled.
    // Its answer may be lost: the server goes idle on the abort and may be recycled at once. On
    // a loaded machine an abort can also fail outright: it is repeated until the recycling.
    supervisor.set_max_rss(None); // The pending recycling stands; not the next process's.
    let start = Instant::now();
    let mut last_abort: Option<Instant> = None;
    while !(supervisor.restarts() == 1 && supervisor.pid() != 0) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not recycled after the turn ended: {supervisor:?}"
        );
        if supervisor.restarts() == 0
            && last_abort.is_none_or(|at| at.elapsed() > Duration::from_secs(3))
        {
            let _ = client.abort(&session.address()).await;
            last_abort = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(supervisor.last_restart(), Some(RestartReason::Memory));
    assert_ne!(supervisor.pid(), pid);
    client.health().await.unwrap();
    assert!(!supervisor.recycling());
    assert_eq!(fleet.available().len(), 1, "taking sessions again");
    let metrics = server::metrics::handle().render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("oio_opencode_restarts_total{")
                && l.contains(r#"server="local-mem""#)
                && l.contains(r#"reason="memory""#)
                && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(r#"oio_opencode_rss_bytes{server="local-mem"}"#)),
        "{metrics}"
    );
    // Nothing of it survives the supervisor.
    let current = supervisor.pid();
    drop(supervisor);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !Path::new(&format!("/proc/{current}")).exists()
            || std::fs::read_to_string(format!("/proc/{current}/status"))
                .unwrap_or_default()
                .contains("State:\tZ"),
        "the server was killed with its supervisor"
    );
}
