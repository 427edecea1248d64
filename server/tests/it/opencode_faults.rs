//! The OpenCode adapter under injected faults, against an in-process fake OpenCode: server
//! errors and the circuit breaker, hangs and timeouts, which calls are retried, client-side rate
//! limiting, and an event stream that drops, goes silent, or sends frames it should not.
//! Real time with short durations throughout (paused time would fire timeouts while real
//! sockets wait); every test finishes well under a second.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::json;
use server::adapters::opencode::{
    BreakerPolicy, BreakerState, EventStreamPolicy, Fleet, OpenCodeClient, RateLimit,
    ResiliencePolicy, RetryPolicy,
};
use server::ports::{
    AgentEvent, AgentEventStream, AgentServer, AgentServerError, AgentSessionId, CreateSession,
    EventScope, MessageId, PromptRequest, SessionAddress,
};
use support::fake_opencode::{busy, connected, event, heartbeat, FakeOpenCode, Reply, SseStep};

use crate::support;

fn policy() -> ResiliencePolicy {
    ResiliencePolicy {
        request_timeout: Duration::from_millis(300),
        prompt_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        retry: RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            jitter: false,
        },
        rate_limit: None,
        breaker: BreakerPolicy {
            failure_threshold: 10,
            open_for: Duration::from_millis(250),
        },
        events: EventStreamPolicy {
            heartbeat_interval: Duration::from_millis(100),
            missed_heartbeats: 3,
            reconnect_min_delay: Duration::from_millis(10),
            reconnect_max_delay: Duration::from_millis(50),
        },
        health_check_interval: Duration::from_millis(50),
    }
}

fn no_retries(mut p: ResiliencePolicy) -> ResiliencePolicy {
    p.retry = RetryPolicy::none();
    p
}

fn breaker(mut p: ResiliencePolicy, threshold: u32, open_ms: u64) -> ResiliencePolicy {
    p.breaker = BreakerPolicy {
        failure_threshold: threshold,
        open_for: Duration::from_millis(open_ms),
    };
    p
}

fn client(fake: &FakeOpenCode, policy: ResiliencePolicy) -> OpenCodeClient {
    OpenCodeClient::new(fake.url(), None, policy).unwrap()
}

fn session(id: &str) -> SessionAddress {
    SessionAddress::new(AgentSessionId::new(id), None)
}

fn prompt(text: &str) -> PromptRequest {
    PromptRequest {
        message_id: MessageId::generate(),
        text: text.to_string(),
        agent: None,
        model: None,
    }
}

const STATUS: &str = "/session/status";

// ---- circuit breaker ---------------------------------------------------------------------------

#[tokio::test]
async fn breaker_opens_after_consecutive_server_errors_and_then_refuses_without_calling() {
    let fake = FakeOpenCode::start().await;
    fake.always("GET", STATUS, Reply::Status(500));
    let oc = client(&fake, breaker(no_retries(policy()), 3, 10_000));

    for _ in 0..3 {
        let error = oc.status(None).await.unwrap_err();
        assert!(
            matches!(error, AgentServerError::Http { status: 500, .. }),
            "{error}"
        );
    }
    assert_eq!(oc.breaker_state(), BreakerState::Open);

    let started = Instant::now();
    let error = oc.status(None).await.unwrap_err();
    assert!(
        matches!(error, AgentServerError::CircuitOpen { .. }),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_millis(50), "fails fast");
    assert_eq!(
        fake.count("GET", STATUS),
        3,
        "the open breaker sent nothing"
    );
}

#[tokio::test]
async fn an_open_breaker_half_opens_after_its_open_duration_and_closes_on_a_success() {
    let fake = FakeOpenCode::start().await;
    fake.reply("GET", STATUS, [Reply::Status(500), Reply::Status(503)]);
    let oc = client(&fake, breaker(no_retries(policy()), 2, 200));

    oc.status(None).await.unwrap_err();
    oc.status(None).await.unwrap_err();
    assert!(matches!(
        oc.status(None).await,
        Err(AgentServerError::CircuitOpen { .. })
    ));

    tokio::time::sleep(Duration::from_millis(220)).await;
    assert_eq!(oc.breaker_state(), BreakerState::HalfOpen);
    oc.status(None).await.expect("the probe reaches the server");
    assert_eq!(oc.breaker_state(), BreakerState::Closed);
    assert_eq!(fake.count("GET", STATUS), 3);
}

#[tokio::test]
async fn a_failed_probe_opens_the_breaker_again() {
    let fake = FakeOpenCode::start().await;
    fake.always("GET", STATUS, Reply::Status(500));
    let oc = client(&fake, breaker(no_retries(policy()), 1, 150));

    oc.status(None).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(170)).await;
    let probe = oc.status(None).await.unwrap_err();
    assert!(
        matches!(probe, AgentServerError::Http { status: 500, .. }),
        "{probe}"
    );
    assert_eq!(oc.breaker_state(), BreakerState::Open);
    assert!(matches!(
        oc.status(None).await,
        Err(AgentServerError::CircuitOpen { .. })
    ));
    assert_eq!(fake.count("GET", STATUS), 2);
}

#[tokio::test]
async fn retries_stop_when_the_breaker_opens_and_the_real_error_is_returned() {
    let fake = FakeOpenCode::start().await;
    fake.always("GET", STATUS, Reply::Status(500));
    let oc = client(&fake, breaker(policy(), 2, 10_000)); // 3 retries allowed
    let error = oc.status(None).await.unwrap_err();
    assert!(
        matches!(error, AgentServerError::Http { status: 500, .. }),
        "{error}"
    );
    assert_eq!(fake.count("GET", STATUS), 2, "stopped at the opening");
}

#[tokio::test]
async fn client_errors_do_not_count_against_the_server() {
    let fake = FakeOpenCode::start().await;
    let oc = client(&fake, breaker(no_retries(policy()), 1, 10_000));
    let error = oc.get_session(&session("ses_missing")).await.unwrap_err();
    assert!(matches!(error, AgentServerError::NotFound(_)), "{error}");
    assert_eq!(oc.breaker_state(), BreakerState::Closed);
}

// ---- timeouts ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_call_hanging_past_its_timeout_fails_as_a_timeout_and_counts_against_the_server() {
    let fake = FakeOpenCode::start().await;
    fake.always("GET", STATUS, Reply::Hang);
    let mut p = breaker(no_retries(policy()), 2, 10_000);
    p.request_timeout = Duration::from_millis(150);
    let oc = client(&fake, p);

    let started = Instant::now();
    let error = oc.status(None).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(error, AgentServerError::Timeout { after, .. } if after == Duration::from_millis(150)),
        "{error}"
    );
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_millis(600),
        "{waited:?}"
    );
    oc.status(None).await.unwrap_err();
    assert_eq!(oc.breaker_state(), BreakerState::Open);
}

// ---- retries -----------------------------------------------------------------------------------

#[tokio::test]
async fn reads_are_retried_with_backoff_until_they_succeed() {
    let fake = FakeOpenCode::start().await;
    let path = "/session/ses_1/message";
    fake.reply("GET", path, [Reply::Status(500), Reply::Status(503)]);
    let oc = client(&fake, policy());

    let messages = oc
        .messages(&session("ses_1"))
        .await
        .expect("third try answers");
    assert!(messages.is_empty());
    let calls = fake.requests("GET", path);
    assert_eq!(calls.len(), 3);
    // Exponential backoff without jitter: 10 ms, then 20 ms.
    assert!(calls[1].at - calls[0].at >= Duration::from_millis(10));
    assert!(calls[2].at - calls[1].at >= Duration::from_millis(20));
}

#[tokio::test]
async fn reads_give_up_after_the_retry_budget() {
    let fake = FakeOpenCode::start().await;
    fake.always("GET", STATUS, Reply::Status(502));
    let mut p = policy();
    p.retry.max_retries = 2;
    let oc = client(&fake, p);
    let error = oc.status(None).await.unwrap_err();
    assert!(
        matches!(error, AgentServerError::Http { status: 502, .. }),
        "{error}"
    );
    assert_eq!(fake.count("GET", STATUS), 3);
}

#[tokio::test]
async fn a_prompt_that_may_have_reached_the_server_is_never_resent() {
    let fake = FakeOpenCode::start().await;
    let blocking = "/session/ses_1/message";
    let queued = "/session/ses_1/prompt_async";
    fake.always("POST", blocking, Reply::Status(500));
    fake.always("POST", queued, Reply::Hang);
    let oc = client(&fake, policy());

    let error = oc
        .prompt(&session("ses_1"), &prompt("hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AgentServerError::Http { status: 500, .. }),
        "{error}"
    );
    assert_eq!(fake.count("POST", blocking), 1);

    let error = oc
        .prompt_async(&session("ses_1"), &prompt("hi"))
        .await
        .unwrap_err();
    assert!(matches!(error, AgentServerError::Timeout { .. }), "{error}");
    assert_eq!(fake.count("POST", queued), 1);
}

#[tokio::test]
async fn a_prompt_is_resent_when_the_connection_was_refused_because_nothing_was_sent() {
    // A port that refuses connections until the fake starts listening on it.
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = url::Url::parse(&format!("http://{addr}")).unwrap();
    let mut p = policy();
    p.retry = RetryPolicy {
        max_retries: 8,
        min_delay: Duration::from_millis(40),
        max_delay: Duration::from_millis(40),
        jitter: false,
    };
    let oc = OpenCodeClient::new(url, None, p).unwrap();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        FakeOpenCode::start_on(addr).await
    });

    oc.prompt_async(&session("ses_1"), &prompt("hi"))
        .await
        .expect("sent once the server listens");
    let fake = late.await.unwrap();
    assert_eq!(fake.count("POST", "/session/ses_1/prompt_async"), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_unavailable_with_nothing_sent() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = url::Url::parse(&format!("http://{addr}")).unwrap();
    let oc = OpenCodeClient::new(url, None, no_retries(policy())).unwrap();
    let error = oc
        .create_session(&CreateSession::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            AgentServerError::Unavailable {
                request_sent: false,
                ..
            }
        ),
        "{error}"
    );
}

// ---- rate limit --------------------------------------------------------------------------------

#[tokio::test]
async fn the_client_side_rate_limit_spaces_calls() {
    let fake = FakeOpenCode::start().await;
    let mut p = policy();
    p.rate_limit = Some(RateLimit {
        per_second: NonZeroU32::new(20).unwrap(),
        burst: NonZeroU32::new(1).unwrap(),
    });
    let oc = client(&fake, p);

    let started = Instant::now();
    for _ in 0..5 {
        oc.status(None).await.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "{:?}",
        started.elapsed()
    );
    let calls = fake.requests("GET", STATUS);
    for pair in calls.windows(2) {
        // 20 per second: 50 ms apart, less scheduling slack.
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(40),
            "{:?}",
            pair[1].at - pair[0].at
        );
    }
}

// ---- the API as the orchestrator uses it --------------------------------------------------------

#[tokio::test]
async fn sessions_are_created_in_a_directory_with_our_metadata_and_basic_auth() {
    let fake = FakeOpenCode::start().await;
    let oc =
        OpenCodeClient::new(fake.url(), Some(SecretString::from("hunter2")), policy()).unwrap();
    let created = oc
        .create_session(&CreateSession {
            title: Some("add health endpoint".into()),
            directory: Some("/srv/worktrees/task-1".into()),
            metadata: Some(json!({"task": "t-1", "attempt": 1})),
            ..CreateSession::default()
        })
        .await
        .unwrap();
    assert_eq!(created.directory, "/srv/worktrees/task-1");
    assert_eq!(created.metadata, json!({"task": "t-1", "attempt": 1}));

    let call = &fake.requests("POST", "/session")[0];
    assert_eq!(
        call.query.as_deref(),
        Some("directory=%2Fsrv%2Fworktrees%2Ftask-1")
    );
    assert_eq!(call.body.as_ref().unwrap()["title"], "add health endpoint");
    // "opencode:hunter2"
    assert_eq!(
        call.authorization.as_deref(),
        Some("Basic b3BlbmNvZGU6aHVudGVyMg==")
    );
    assert!(!format!("{oc:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_blocking_prompt_sends_our_message_id_and_returns_the_finished_turn() {
    let fake = FakeOpenCode::start().await;
    let oc = client(&fake, policy());
    let request = prompt("add a health endpoint");
    let reply = oc.prompt(&session("ses_1"), &request).await.unwrap();

    let sent = fake.requests("POST", "/session/ses_1/message")[0]
        .body
        .clone()
        .unwrap();
    assert_eq!(sent["messageID"], request.message_id.as_str());
    assert_eq!(sent["parts"][0]["text"], "add a health endpoint");
    assert_eq!(reply.message.parent_id.as_ref(), Some(&request.message_id));
    assert_eq!(reply.message.tokens.input, 100);
    assert_eq!(reply.message.tokens.cache_read, 7);
    assert_eq!(reply.message.cost, 0.5);
    assert_eq!(reply.parts.len(), 1);
}

#[tokio::test]
async fn deleting_an_absent_session_succeeds_and_reading_one_is_not_found() {
    let fake = FakeOpenCode::start().await;
    fake.always(
        "DELETE",
        "/session/ses_gone",
        Reply::Json(
            404,
            json!({"name": "NotFoundError", "data": {"message": "Session not found: ses_gone"}}),
        ),
    );
    let oc = client(&fake, policy());
    oc.delete_session(&session("ses_gone")).await.unwrap();
    let error = oc.get_session(&session("ses_gone")).await.unwrap_err();
    assert!(matches!(error, AgentServerError::NotFound(_)), "{error}");
}

#[tokio::test]
async fn statuses_are_read_per_session() {
    let fake = FakeOpenCode::start().await;
    fake.always(
        "GET",
        STATUS,
        Reply::Json(
            200,
            json!({"ses_a": {"type": "busy"},
                   "ses_b": {"type": "retry", "attempt": 2, "message": "overloaded", "next": 1795633631945u64}}),
        ),
    );
    let oc = client(&fake, policy());
    let statuses = oc.status(Some("/w")).await.unwrap();
    assert_eq!(statuses.len(), 2);
    assert_eq!(
        statuses[&AgentSessionId::new("ses_a")],
        server::ports::AgentSessionStatus::Busy
    );
    assert!(matches!(
        statuses[&AgentSessionId::new("ses_b")],
        server::ports::AgentSessionStatus::Retry { attempt: 2, .. }
    ));
    assert_eq!(
        fake.requests("GET", STATUS)[0].query.as_deref(),
        Some("directory=%2Fw")
    );
}

// ---- the event stream --------------------------------------------------------------------------

/// A compact name for an event, for asserting sequences.
fn label(event: &AgentEvent) -> String {
    match event {
        AgentEvent::ServerConnected => "connected".into(),
        AgentEvent::Heartbeat => "heartbeat".into(),
        AgentEvent::Disconnected { .. } => "disconnected".into(),
        AgentEvent::Resynced => "resynced".into(),
        AgentEvent::SessionStatus { session_id, .. } => format!("status:{session_id}"),
        AgentEvent::Unknown { event_type, .. } => format!("unknown:{event_type}"),
        other => format!("{other:?}"),
    }
}

/// Events (heartbeats left out) until one labelled `last`, or panics after two seconds.
async fn until(stream: &mut AgentEventStream, last: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => panic!("no {last:?} within 2 s; saw {seen:?}"),
            event = stream.next() => {
                let name = label(&event.expect("the stream never ends"));
                if name == "heartbeat" {
                    continue;
                }
                seen.push(name.clone());
                if name == last {
                    return seen;
                }
            }
        }
    }
}

#[tokio::test]
async fn a_dropped_stream_is_reopened_marked_resynced_and_nothing_is_repeated_or_lost() {
    let fake = FakeOpenCode::start().await;
    fake.stream(vec![
        connected("evt_c1"),
        busy("evt_1", "ses_1"),
        busy("evt_2", "ses_2"),
        SseStep::Close,
    ]);
    fake.stream(vec![
        connected("evt_c2"),
        // The server repeats an event the client already has: it must not be yielded twice.
        busy("evt_2", "ses_2"),
        busy("evt_3", "ses_3"),
        busy("evt_4", "ses_4"),
        SseStep::Hold,
    ]);
    let oc = client(&fake, policy());
    let mut events = oc.events(EventScope::ServerDefault);

    assert_eq!(
        until(&mut events, "status:ses_4").await,
        [
            "connected",
            "status:ses_1",
            "status:ses_2",
            "disconnected",
            "resynced",
            "connected",
            "status:ses_3",
            "status:ses_4",
        ]
    );
    assert_eq!(fake.count("GET", "/event"), 2);
}

#[tokio::test]
async fn an_aborted_connection_is_reopened_too() {
    let fake = FakeOpenCode::start().await;
    fake.stream(vec![
        connected("evt_c1"),
        busy("evt_1", "ses_1"),
        // Let what was written reach the client before the connection breaks.
        SseStep::Pause(Duration::from_millis(50)),
        SseStep::Abort,
    ]);
    fake.stream(vec![
        connected("evt_c2"),
        busy("evt_2", "ses_2"),
        SseStep::Hold,
    ]);
    let oc = client(&fake, policy());
    let mut events = oc.events(EventScope::Directory("/w".into()));
    assert_eq!(
        until(&mut events, "status:ses_2").await,
        [
            "connected",
            "status:ses_1",
            "disconnected",
            "resynced",
            "connected",
            "status:ses_2"
        ]
    );
    assert_eq!(
        fake.requests("GET", "/event")[0].query.as_deref(),
        Some("directory=%2Fw")
    );
}

#[tokio::test]
async fn a_malformed_frame_is_skipped_and_an_unknown_type_is_kept_without_ending_the_stream() {
    let fake = FakeOpenCode::start().await;
    fake.stream(vec![
        connected("evt_c1"),
        SseStep::Raw("data: {this is not json\n\n".into()),
        SseStep::Event(event("evt_u", "brand.new.thing", json!({"answer": 42}))),
        busy("evt_1", "ses_1"),
        SseStep::Hold,
    ]);
    let oc = client(&fake, policy());
    let mut events = oc.events(EventScope::ServerDefault);
    assert_eq!(
        until(&mut events, "status:ses_1").await,
        ["connected", "unknown:brand.new.thing", "status:ses_1"]
    );
    assert_eq!(fake.count("GET", "/event"), 1, "no reconnect");
}

#[tokio::test]
async fn unknown_events_keep_their_whole_frame() {
    let fake = FakeOpenCode::start().await;
    let frame = event("evt_u", "plugin.added", json!({"id": "agent"}));
    fake.stream(vec![SseStep::Event(frame.clone()), SseStep::Hold]);
    let oc = client(&fake, policy());
    let mut events = oc.events(EventScope::ServerDefault);
    assert_eq!(
        events.next().await.unwrap(),
        AgentEvent::Unknown {
            event_type: "plugin.added".into(),
            raw: frame
        }
    );
}

#[tokio::test]
async fn a_stream_silent_past_the_missed_heartbeats_is_reopened() {
    let fake = FakeOpenCode::start().await;
    fake.stream(vec![
        connected("evt_c1"),
        busy("evt_1", "ses_1"),
        SseStep::Hold,
    ]);
    fake.stream(vec![
        connected("evt_c2"),
        busy("evt_2", "ses_2"),
        SseStep::Hold,
    ]);
    let oc = client(&fake, policy()); // 3 × 100 ms
    let mut events = oc.events(EventScope::ServerDefault);

    assert_eq!(
        until(&mut events, "status:ses_1").await,
        ["connected", "status:ses_1"]
    );
    let silent_since = Instant::now();
    match events.next().await.unwrap() {
        AgentEvent::Disconnected { reason } => assert!(reason.contains("heartbeat"), "{reason}"),
        other => panic!("expected a disconnect, got {other:?}"),
    }
    assert!(silent_since.elapsed() >= Duration::from_millis(280));
    assert_eq!(
        until(&mut events, "status:ses_2").await,
        ["resynced", "connected", "status:ses_2"]
    );
}

#[tokio::test]
async fn heartbeats_keep_a_quiet_stream_open() {
    let fake = FakeOpenCode::start().await;
    let mut steps = vec![connected("evt_c1")];
    for i in 0..6 {
        steps.push(SseStep::Pause(Duration::from_millis(80)));
        steps.push(heartbeat(&format!("evt_h{i}")));
    }
    steps.push(busy("evt_1", "ses_1"));
    steps.push(SseStep::Hold);
    fake.stream(steps);
    let oc = client(&fake, policy());
    let mut events = oc.events(EventScope::ServerDefault);
    assert_eq!(
        until(&mut events, "status:ses_1").await,
        ["connected", "status:ses_1"]
    );
    assert_eq!(fake.count("GET", "/event"), 1);
}

#[tokio::test]
async fn a_refused_stream_is_retried_with_backoff() {
    let fake = FakeOpenCode::start().await;
    fake.reply("GET", "/event", [Reply::Status(503), Reply::Status(503)]);
    fake.stream(vec![
        connected("evt_c1"),
        busy("evt_1", "ses_1"),
        SseStep::Hold,
    ]);
    let oc = client(&fake, policy());
    let mut events = oc.events(EventScope::ServerDefault);
    // Never connected before: no resync to announce.
    assert_eq!(
        until(&mut events, "status:ses_1").await,
        ["connected", "status:ses_1"]
    );
    assert_eq!(fake.count("GET", "/event"), 3);
}

#[tokio::test]
async fn the_global_stream_is_unwrapped() {
    let fake = FakeOpenCode::start().await;
    fake.stream(vec![
        SseStep::Event(json!({"payload": {"id": "evt_c", "type": "server.connected", "properties": {}}})),
        SseStep::Event(json!({"directory": "/w", "project": "global", "payload":
            {"id": "evt_1", "type": "session.status", "properties": {"sessionID": "ses_1", "status": {"type": "idle"}}}})),
        SseStep::Hold,
    ]);
    let oc = client(&fake, policy());
    let mut events = oc.events(EventScope::AllDirectories);
    assert_eq!(
        until(&mut events, "status:ses_1").await,
        ["connected", "status:ses_1"]
    );
    assert_eq!(fake.count("GET", "/global/event"), 1);
}

// ---- the fleet ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_fleet_routes_new_sessions_away_from_open_breakers_and_failed_health_checks() {
    let (a, b, c) = tokio::join!(
        FakeOpenCode::start(),
        FakeOpenCode::start(),
        FakeOpenCode::start()
    );
    let p = breaker(no_retries(policy()), 1, 10_000);
    let (ca, cb, cc) = (client(&a, p.clone()), client(&b, p.clone()), client(&c, p));
    let fleet = Arc::new(Fleet::new([
        (ca.clone(), 4),
        (cb.clone(), 4),
        (cc.clone(), 1),
    ]));

    // a fails a call: its breaker opens. b fails its health check.
    a.always("GET", STATUS, Reply::Status(500));
    ca.status(None).await.unwrap_err();
    b.always("GET", "/global/health", Reply::Status(500));
    fleet.check_health().await;

    let slot = fleet.pick().expect("c has a place");
    assert_eq!(slot.client().name(), cc.name());
    assert!(fleet.pick().is_none(), "c is full; a and b are out");

    // b recovers; the periodic checks notice.
    b.clear_always("GET", "/global/health");
    let _checks = fleet.spawn_health_checks(Duration::from_millis(30));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = fleet.report();
    assert!(report[1].healthy);
    assert_eq!(report[0].breaker, BreakerState::Open);
    assert_eq!(fleet.pick().expect("b is back").client().name(), cb.name());
}
