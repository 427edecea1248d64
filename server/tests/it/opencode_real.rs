//! The OpenCode adapter against the REAL `opencode serve` (the pinned npm package) driven by the
//! scripted fake LLM: a prompt makes OpenCode write a file while the client follows the event stream
//! to idle and records the tokens; an abort stops a running turn.
//!
//! Skipped with a visible message where the binary is not installed, never under CI=true.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::json;
use server::adapters::opencode::{OpenCodeClient, ResiliencePolicy};
use server::ports::{
    AgentEvent, AgentServer, AgentSessionStatus, CreateSession, EventScope, MessageErrorKind,
    MessageId, PartContent, PromptRequest, ToolCallState,
};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::opencode::{self, OpenCodeServer, Options};
use url::Url;

const TURN_TIMEOUT: Duration = Duration::from_secs(120);

fn client_for(server: &OpenCodeServer) -> OpenCodeClient {
    OpenCodeClient::new(
        Url::parse(server.base_url()).expect("server URL"),
        server.password().map(|p| SecretString::from(p.to_string())),
        ResiliencePolicy::default(),
    )
    .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_writes_a_file_and_the_client_follows_events_to_idle_with_tokens() {
    if opencode::binary_or_skip("a_prompt_writes_a_file").is_none() {
        return;
    }
    let repo = testkit::git::temp_repo().unwrap();
    let directory = repo.path().display().to_string();
    let target = repo.path().join("hello.txt");
    let llm = FakeLlm::start([
        Reply::tool_call(
            "write",
            json!({ "filePath": target.display().to_string(), "content": "hello from the fake LLM\n" }),
        )
        .with_usage(1_000, 40),
        Reply::text("Wrote hello.txt.").with_usage(1_100, 12),
    ])
    .await
    .unwrap();
    let server = OpenCodeServer::start(
        repo.path(),
        &llm,
        Options::default().with_password("e2e-secret"),
    )
    .await
    .unwrap();
    let client = client_for(&server);
    assert!(client.health().await.unwrap().healthy);

    let mut events = client.events(EventScope::Directory(directory.clone()));
    let connected = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.next().await {
            if event == AgentEvent::ServerConnected {
                return true;
            }
        }
        false
    })
    .await
    .expect("server.connected in time");
    assert!(connected);

    let session = client
        .create_session(&CreateSession {
            title: Some("e2e: write hello.txt".into()),
            directory: Some(directory.clone()),
            metadata: Some(json!({ "oio_session": "test-1" })),
            ..CreateSession::default()
        })
        .await
        .unwrap();
    let address = session.address();
    let started = Instant::now();
    client
        .prompt_async(
            &address,
            &PromptRequest {
                message_id: MessageId::generate(),
                text: "create hello.txt".into(),
                agent: None,
                model: None,
            },
        )
        .await
        .unwrap();

    // Follow the stream: busy, the write tool's part, then idle again.
    let mut saw_busy = false;
    let mut saw_completed_write = false;
    tokio::time::timeout(TURN_TIMEOUT, async {
        while let Some(event) = events.next().await {
            match event {
                AgentEvent::SessionStatus { session_id, status } if session_id == session.id => {
                    match status {
                        AgentSessionStatus::Busy => saw_busy = true,
                        AgentSessionStatus::Idle if saw_busy => return,
                        _ => {}
                    }
                }
                AgentEvent::MessagePartUpdated { session_id, part } if session_id == session.id => {
                    if let PartContent::Tool {
                        tool,
                        state: ToolCallState::Completed { .. },
                        ..
                    } = &part.content
                    {
                        saw_completed_write |= tool == "write";
                    }
                }
                _ => {}
            }
        }
        panic!("event stream ended before the session went idle");
    })
    .await
    .expect("the session went idle in time");
    println!("prompt -> idle through the client: {:?}", started.elapsed());
    assert!(
        saw_completed_write,
        "the completed write tool call was streamed as a part"
    );

    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "hello from the fake LLM\n"
    );
    let messages = client.messages(&address).await.unwrap();
    let (input, output): (u64, u64) = messages
        .iter()
        .filter_map(|m| m.message.as_assistant())
        .fold((0, 0), |(i, o), m| {
            (i + m.tokens.input, o + m.tokens.output)
        });
    assert_eq!(
        (input, output),
        (2_100, 52),
        "tokens of both steps recorded"
    );
    let stored = client.get_session(&address).await.unwrap();
    assert_eq!(stored.metadata["oio_session"], "test-1");
    assert_eq!(stored.tokens.input, 2_100);
    assert!(
        llm.agent_requests()
            .iter()
            .any(|r| !r.tool_results().is_empty()),
        "the tool result went back to the model"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_stops_a_running_turn() {
    if opencode::binary_or_skip("abort_stops_a_running_turn").is_none() {
        return;
    }
    let repo = testkit::git::temp_repo().unwrap();
    let directory = repo.path().display().to_string();
    let llm = FakeLlm::start([Reply::hang()]).await.unwrap();
    let server = OpenCodeServer::start(repo.path(), &llm, Options::default())
        .await
        .unwrap();
    let client = client_for(&server);
    let session = client
        .create_session(&CreateSession {
            directory: Some(directory.clone()),
            ..CreateSession::default()
        })
        .await
        .unwrap();
    let address = session.address();
    client
        .prompt_async(
            &address,
            &PromptRequest {
                message_id: MessageId::generate(),
                text: "think forever".into(),
                agent: None,
                model: None,
            },
        )
        .await
        .unwrap();
    llm.wait_for_agent_requests(1, TURN_TIMEOUT).await.unwrap();
    let busy = client.status(Some(&directory)).await.unwrap();
    assert_eq!(busy.get(&session.id), Some(&AgentSessionStatus::Busy));

    assert!(client.abort(&address).await.unwrap());

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = client.status(Some(&directory)).await.unwrap();
        // Idle sessions are absent from the server's status map.
        if matches!(
            status.get(&session.id),
            None | Some(AgentSessionStatus::Idle)
        ) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still busy after abort: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let messages = client.messages(&address).await.unwrap();
    let last = messages
        .iter()
        .rev()
        .find_map(|m| m.message.as_assistant())
        .expect("an assistant message");
    assert_eq!(
        last.error.as_ref().map(|e| &e.kind),
        Some(&MessageErrorKind::Aborted)
    );
    let closed_by = Instant::now() + Duration::from_secs(10);
    while llm.open_streams() > 0 {
        assert!(
            Instant::now() < closed_by,
            "the model request was never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
