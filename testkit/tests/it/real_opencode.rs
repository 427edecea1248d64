//! Smoke tests of the whole kit against the REAL OpenCode server (the pinned npm package), through
//! raw HTTP: a scripted tool call really writes a file, and an abort really stops a hanging turn.
//!
//! Skipped with a visible `SKIPPED` line when the binary is not installed (`npm ci`), except under
//! `CI=true`, where a missing binary fails. Run with `--nocapture` to see timings and the events.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::opencode::{self, OpenCodeServer, Options};

/// Records the `type` and payload of every `GET /event` frame while a test runs.
struct EventLog {
    events: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventLog {
    /// Subscribes and waits for `server.connected`, so no event of the test is missed.
    async fn subscribe(server: &OpenCodeServer) -> anyhow::Result<Self> {
        let mut response = server
            .request(Method::GET, "/event")
            .send()
            .await?
            .error_for_status()?;
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = events.clone();
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut connected = Some(connected_tx);
            let mut buffer = String::new();
            while let Ok(Some(bytes)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&bytes));
                while let Some(end) = buffer.find("\n\n") {
                    let frame: String = buffer.drain(..end + 2).collect();
                    let data: String = frame
                        .lines()
                        .filter_map(|line| line.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect();
                    let Ok(event) = serde_json::from_str::<Value>(&data) else {
                        continue;
                    };
                    if event["type"] == "server.connected" {
                        if let Some(tx) = connected.take() {
                            let _ = tx.send(());
                        }
                    }
                    sink.lock().unwrap().push(event);
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected_rx)
            .await
            .context("no server.connected on /event")??;
        Ok(EventLog { events, task })
    }

    /// The distinct event types, in order of first appearance.
    fn types(&self) -> Vec<String> {
        let mut types: Vec<String> = Vec::new();
        for event in self.events.lock().unwrap().iter() {
            let kind = event["type"].as_str().unwrap_or("?").to_owned();
            if !types.contains(&kind) {
                types.push(kind);
            }
        }
        types
    }

    fn of_type(&self, kind: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == kind)
            .cloned()
            .collect()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn json_of(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("HTTP {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
}

async fn create_session(server: &OpenCodeServer) -> anyhow::Result<String> {
    let session = json_of(
        server
            .request(Method::POST, "/session")
            .json(&json!({}))
            .send()
            .await?,
    )
    .await?;
    println!("POST /session -> {session}");
    Ok(session["id"]
        .as_str()
        .context("session without id")?
        .to_owned())
}

/// `GET /session/status` entry of this session; OpenCode drops idle sessions from the map.
async fn session_status(server: &OpenCodeServer, session: &str) -> anyhow::Result<Value> {
    let all = json_of(
        server
            .request(Method::GET, "/session/status")
            .send()
            .await?,
    )
    .await?;
    Ok(all.get(session).cloned().unwrap_or(json!({"type": "idle"})))
}

#[tokio::test]
async fn a_scripted_write_tool_call_creates_the_file_through_real_opencode() -> anyhow::Result<()> {
    let Some(binary) = opencode::binary_or_skip("a_scripted_write_tool_call_creates_the_file")
    else {
        return Ok(());
    };
    println!("OpenCode binary: {}", binary.display());
    let repo = testkit::git::temp_repo()?;
    let target = repo.path().join("hello.txt");
    let content = "Hello from the scripted fake LLM!\n";
    let llm = FakeLlm::start([
        Reply::tool_call(
            "write",
            json!({"filePath": target.display().to_string(), "content": content}),
        )
        .with_usage(2_000, 40),
        Reply::text("I created hello.txt.").with_usage(2_100, 12),
    ])
    .await?;
    // With a password, so Basic auth is exercised on every call below.
    let server = OpenCodeServer::start(
        repo.path(),
        &llm,
        Options::default().with_password("s3cret"),
    )
    .await?;
    println!(
        "TIMING OpenCode {} healthy after {:?} at {}",
        server.version(),
        server.startup_time(),
        server.base_url()
    );
    let unauthenticated = reqwest::get(format!("{}/session", server.base_url())).await?;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    let events = EventLog::subscribe(&server).await?;
    let session = create_session(&server).await?;
    let started = Instant::now();
    let answer = json_of(
        server
            .request(Method::POST, &format!("/session/{session}/message"))
            .json(&json!({"parts": [{"type": "text", "text": "create hello.txt"}]}))
            // Blocking until the turn ends: bounded, so a stuck turn fails instead of hanging.
            .timeout(Duration::from_secs(120))
            .send()
            .await?,
    )
    .await?;
    println!(
        "TIMING first prompt (tool call + text, blocking /message) answered in {:?}",
        started.elapsed()
    );
    println!(
        "POST /session/{{id}}/message -> {}",
        serde_json::to_string_pretty(&answer)?
    );

    assert_eq!(std::fs::read_to_string(&target)?, content);

    let info = &answer["info"];
    assert_eq!(info["role"], "assistant");
    assert_eq!(info["providerID"], "fake");
    assert_eq!(info["modelID"], "fake-coder");
    assert!(info.get("error").is_none(), "no error: {info}");
    // The answer is the LAST step's message only; its tokens are exactly the last reply's usage.
    assert_eq!(info["finish"], "stop");
    assert_eq!(info["tokens"]["input"], 2_100, "tokens: {}", info["tokens"]);
    assert_eq!(info["tokens"]["output"], 12, "tokens: {}", info["tokens"]);
    let text: String = answer["parts"]
        .as_array()
        .context("parts")?
        .iter()
        .filter(|p| p["type"] == "text")
        .filter_map(|p| p["text"].as_str())
        .collect();
    assert_eq!(text, "I created hello.txt.");

    // The second agent request must carry the write tool's result back to the model.
    let agent = llm.agent_requests();
    let titles = llm.requests().len() - agent.len();
    println!(
        "fake LLM saw {} agent request(s) and {titles} without tools; tools offered: {:?}",
        agent.len(),
        agent[0].tool_names()
    );
    assert!(agent.len() >= 2, "a request after the tool call");
    assert!(agent[0].tool_results().is_empty());
    let results = agent[1].tool_results();
    println!("tool result sent back: {:?}", results);
    assert_eq!(results.len(), 1, "one tool result");
    let assistant_call = agent[1]
        .messages()
        .iter()
        .find_map(|m| m.get("tool_calls"))
        .context("the assistant tool call is replayed")?;
    assert_eq!(assistant_call[0]["function"]["name"], "write");
    assert_eq!(results[0]["tool_call_id"], assistant_call[0]["id"]);
    assert_eq!(llm.remaining(), 0);

    // The session's own listing agrees with the blocking answer.
    let messages = json_of(
        server
            .request(Method::GET, &format!("/session/{session}/message"))
            .send()
            .await?,
    )
    .await?;
    let roles: Vec<&str> = messages
        .as_array()
        .context("messages")?
        .iter()
        .filter_map(|m| m["info"]["role"].as_str())
        .collect();
    println!("GET /session/{{id}}/message roles: {roles:?}");
    assert_eq!(roles.first(), Some(&"user"));
    for message in messages.as_array().context("messages")? {
        let kinds: Vec<&str> = message["parts"]
            .as_array()
            .map(|parts| parts.iter().filter_map(|p| p["type"].as_str()).collect())
            .unwrap_or_default();
        println!(
            "  {} {} finish={} tokens={} parts={kinds:?}",
            message["info"]["role"],
            message["info"]["id"],
            message["info"]["finish"],
            message["info"]["tokens"]
        );
        for part in message["parts"].as_array().into_iter().flatten() {
            if part["type"] == "tool" {
                println!("  tool part: {part}");
            }
        }
    }
    assert_eq!(session_status(&server, &session).await?["type"], "idle");
    let after = json_of(
        server
            .request(Method::GET, &format!("/session/{session}"))
            .send()
            .await?,
    )
    .await?;
    println!("GET /session/{{id}} after the turn -> {after}");
    // The session sums both steps: (2000 + 2100) in, (40 + 12) out.
    assert_eq!(after["tokens"]["input"], 4_100, "{after}");
    assert_eq!(after["tokens"]["output"], 52, "{after}");
    // The title request (no tools) got the fake's canned title; it runs beside the turn, so wait.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let current = json_of(
            server
                .request(Method::GET, &format!("/session/{session}"))
                .send()
                .await?,
        )
        .await?;
        if current["title"] == testkit::fake_llm::TITLE {
            break;
        }
        assert!(Instant::now() < deadline, "title never set: {current}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("event types seen: {:?}", events.types());
    for status in events.of_type("session.status") {
        println!("  session.status: {}", status["properties"]);
    }
    assert!(!events.of_type("session.status").is_empty());
    Ok(())
}

#[tokio::test]
async fn abort_stops_a_hanging_turn_and_the_session_goes_idle() -> anyhow::Result<()> {
    if opencode::binary_or_skip("abort_stops_a_hanging_turn").is_none() {
        return Ok(());
    }
    let repo = testkit::git::temp_repo()?;
    let llm = FakeLlm::start([Reply::hang()]).await?;
    let server = OpenCodeServer::start(repo.path(), &llm, Options::default()).await?;
    println!("TIMING OpenCode healthy after {:?}", server.startup_time());
    let events = EventLog::subscribe(&server).await?;
    let session = create_session(&server).await?;

    let started = Instant::now();
    let accepted = server
        .request(Method::POST, &format!("/session/{session}/prompt_async"))
        .json(&json!({"parts": [{"type": "text", "text": "take forever"}]}))
        .send()
        .await?;
    println!(
        "POST prompt_async -> {} in {:?}",
        accepted.status(),
        started.elapsed()
    );
    assert!(accepted.status().is_success(), "{}", accepted.status());

    llm.wait_for_agent_requests(1, Duration::from_secs(60))
        .await?;
    println!(
        "TIMING prompt_async to the agent request at the fake: {:?}",
        started.elapsed()
    );
    let busy = session_status(&server, &session).await?;
    println!("GET /session/status while hanging: {busy}");
    assert_eq!(busy["type"], "busy");

    let aborted = json_of(
        server
            .request(Method::POST, &format!("/session/{session}/abort"))
            .send()
            .await?,
    )
    .await?;
    println!("POST /session/{{id}}/abort -> {aborted}");
    assert_eq!(aborted, json!(true));

    let abort_at = Instant::now();
    let deadline = abort_at + Duration::from_secs(15);
    loop {
        let status = session_status(&server, &session).await?;
        if status["type"] == "idle" {
            break;
        }
        assert!(Instant::now() < deadline, "still {status} 15 s after abort");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("TIMING abort to idle: {:?}", abort_at.elapsed());
    // The abort really cancelled the request to the model, not just the session's state.
    while llm.open_streams() > 0 {
        assert!(
            Instant::now() < deadline,
            "OpenCode kept the model request open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "TIMING abort to the model request closed: {:?}",
        abort_at.elapsed()
    );

    let messages = json_of(
        server
            .request(Method::GET, &format!("/session/{session}/message"))
            .send()
            .await?,
    )
    .await?;
    let last = messages
        .as_array()
        .and_then(|m| m.last())
        .context("messages")?;
    println!(
        "last message after abort: {}",
        serde_json::to_string_pretty(last)?
    );
    assert_eq!(last["info"]["role"], "assistant");
    assert_eq!(last["info"]["error"]["name"], "MessageAbortedError");

    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("event types seen: {:?}", events.types());
    for status in events.of_type("session.status") {
        println!("  session.status: {}", status["properties"]);
    }
    for error in events.of_type("session.error") {
        println!("  session.error: {}", error["properties"]);
    }
    Ok(())
}
