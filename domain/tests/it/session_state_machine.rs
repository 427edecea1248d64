//! Property tests of the session state machine: random command sequences against a fresh
//! session must never break the lifecycle's invariants.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::{
    AgentName, MetricsDelta, NewSession, Prompt, Session, SessionError, SessionEvent, SessionId,
    SessionStatus, SessionTitle, WorkspacePath,
};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Clone, Debug)]
enum Command {
    Enqueue,
    Start,
    Pause,
    Resume,
    Complete,
    Fail(String),
    Cancel(Option<String>),
    TimeOut,
    Retry,
    RecordMetrics(MetricsDelta),
}

fn delta() -> impl Strategy<Value = MetricsDelta> {
    (
        (
            0u64..1_000,
            0u64..1_000,
            0u64..1_000,
            0u64..1_000,
            0u64..1_000,
        ),
        (0u64..5_000, 0u64..10_000, 0u32..50, 0u32..3),
    )
        .prop_map(
            |(
                (
                    tokens_input,
                    tokens_output,
                    tokens_reasoning,
                    tokens_cache_read,
                    tokens_cache_write,
                ),
                (cost_micro_usd, duration_ms, files_changed, retries),
            )| MetricsDelta {
                tokens_input,
                tokens_output,
                tokens_reasoning,
                tokens_cache_read,
                tokens_cache_write,
                cost_micro_usd,
                duration_ms,
                files_changed,
                retries,
            },
        )
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        2 => Just(Command::Enqueue),
        3 => Just(Command::Start),
        1 => Just(Command::Pause),
        1 => Just(Command::Resume),
        2 => Just(Command::Complete),
        2 => "[a-z ]{0,12}".prop_map(Command::Fail),
        1 => proptest::option::of("[a-z ]{0,12}").prop_map(Command::Cancel),
        1 => Just(Command::TimeOut),
        3 => Just(Command::Retry),
        3 => delta().prop_map(Command::RecordMetrics),
    ]
}

fn at(step: usize) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap() + Duration::seconds(step as i64)
}

fn fresh_session(max_attempts: u32) -> Session {
    Session::new(
        NewSession {
            id: SessionId::from_uuid(Uuid::from_u128(42)),
            title: SessionTitle::new("property session").unwrap(),
            prompt: Prompt::new("do the thing").unwrap(),
            workspace: WorkspacePath::new("/work/repo").unwrap(),
            agent: Some(AgentName::new("tester").unwrap()),
            parent_task: None,
            max_attempts,
        },
        at(0),
    )
    .unwrap()
}

fn apply(
    session: &mut Session,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<SessionEvent, SessionError> {
    match command {
        Command::Enqueue => session.enqueue(now),
        Command::Start => session.start(now),
        Command::Pause => session.pause(now),
        Command::Resume => session.resume(now),
        Command::Complete => session.complete(now),
        Command::Fail(reason) => session.fail(reason.clone(), now),
        Command::Cancel(reason) => session.cancel(reason.clone(), now),
        Command::TimeOut => session.time_out(now),
        Command::Retry => session.retry(now),
        Command::RecordMetrics(delta) => session.record_metrics(*delta, now),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_command_sequences_keep_the_session_invariants(
        max_attempts in 1u32..=5,
        commands in proptest::collection::vec(command(), 0..50),
    ) {
        let mut session = fresh_session(max_attempts);
        for (step, command) in commands.iter().enumerate() {
            let now = at(step + 1);
            let before = session.clone();
            let result = apply(&mut session, command, now);
            let (from, to) = (before.status(), session.status());

            match &result {
                Ok(SessionEvent::StatusChanged { session_id, from: f, to: t, at, attempt, .. }) => {
                    // (1) Legal edge, faithfully reported.
                    prop_assert!(from.can_transition_to(to), "{from} -> {to} via {command:?}");
                    prop_assert_eq!((*f, *t), (from, to));
                    prop_assert_eq!(*session_id, session.id());
                    prop_assert_eq!(*at, now);
                    prop_assert_eq!(*attempt, session.attempt());
                    prop_assert_eq!(session.updated_at(), now);
                }
                Ok(SessionEvent::MetricsRecorded { delta, at, .. }) => {
                    prop_assert!(matches!(command, Command::RecordMetrics(d) if d == delta));
                    prop_assert!(matches!(from, SessionStatus::Running | SessionStatus::Paused));
                    prop_assert_eq!(from, to);
                    prop_assert_eq!(*at, now);
                }
                Ok(other) => prop_assert!(false, "unexpected event {other:?}"),
                // (2) A refused command changes nothing at all.
                Err(_) => prop_assert_eq!(&session, &before),
            }

            // (3) Metrics only grow.
            prop_assert!(session.metrics().dominates(before.metrics()));

            // (4) Final statuses stay final; failed/timed-out leave only by retry to queued.
            if from.is_final() {
                prop_assert_eq!(to, from);
            }
            if matches!(from, SessionStatus::Failed | SessionStatus::TimedOut) && to != from {
                prop_assert_eq!(to, SessionStatus::Queued);
                prop_assert!(matches!(command, Command::Retry));
            }

            // Attempts move only by retry, one at a time.
            let expected_attempt = if result.is_ok() && matches!(command, Command::Retry) {
                before.attempt() + 1
            } else {
                before.attempt()
            };
            prop_assert_eq!(session.attempt(), expected_attempt);

            // (5) The attempt budget holds.
            prop_assert!(session.attempt() >= 1);
            prop_assert!(session.attempt() <= session.max_attempts());

            // (6) finished_at marks exactly the terminal statuses.
            prop_assert_eq!(session.finished_at().is_some(), session.status().is_terminal());

            // Whatever the commands produce, storage can load back.
            let reloaded = Session::rehydrate(session.to_record());
            prop_assert_eq!(reloaded.as_ref(), Ok(&session));
        }
    }

    #[test]
    fn retry_is_refused_exactly_when_the_budget_is_spent(
        max_attempts in 1u32..=5,
        failures in 1usize..8,
    ) {
        let mut session = fresh_session(max_attempts);
        session.enqueue(at(1)).unwrap();
        let mut step = 2;
        for _ in 0..failures {
            session.start(at(step)).unwrap();
            session.fail("boom".into(), at(step + 1)).unwrap();
            step += 2;
            let before = session.clone();
            match session.retry(at(step)) {
                Ok(_) => prop_assert!(before.attempt() < max_attempts),
                Err(e) => {
                    prop_assert_eq!(e, SessionError::RetryLimitReached {
                        attempts: max_attempts,
                        max_attempts,
                    });
                    prop_assert_eq!(&session, &before);
                    break;
                }
            }
            step += 1;
        }
        prop_assert_eq!(
            session.metrics().retries,
            session.attempt() - 1,
            "each retry is counted once"
        );
    }

    #[test]
    fn session_json_round_trips_after_any_sequence(
        max_attempts in 1u32..=5,
        commands in proptest::collection::vec(command(), 0..30),
    ) {
        let mut session = fresh_session(max_attempts);
        for (step, command) in commands.iter().enumerate() {
            let _ = apply(&mut session, command, at(step + 1));
        }
        let json = serde_json::to_string(&session).unwrap();
        let back: Session = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, session);
    }
}
