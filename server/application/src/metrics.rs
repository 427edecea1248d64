//! Prometheus metrics: the families this orchestrator exports, the process-wide recorder behind
//! them, and the small helpers the instrumented code calls.
//!
//! The recorder is installed once per process, on first use (tests start many applications in one
//! process; they all share it). Every family is declared at install time — described, and
//! registered at zero wherever its label values are known in advance — so a dashboard finds it
//! before the first event. `GET /metrics` (src/http/metrics.rs) renders it; rendering also drains
//! the histograms' pending samples, so a scrape interval of minutes keeps memory flat.
//!
//! Labels stay low-cardinality: statuses, token kinds, configured OpenCode servers and the client's
//! fixed operation names — never a session id (those go into tracing spans instead).

use std::sync::OnceLock;
use std::time::Duration;

use domain::{MetricsDelta, SessionEvent, SessionLogEvent, SessionStatus};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::ports::BreakerState;
use crate::ports::{Aggregate, NewEvent, QueueDepth};

/// Gauge, `{status}`: live sessions per status (read from storage at every scrape).
pub const SESSIONS: &str = "oio_sessions";
/// Gauge, `{state}` (`waiting`, `leased`, `expired`): dispatch-queue rows (read at every scrape).
pub const QUEUE_DEPTH: &str = "oio_queue_depth";
/// Counter, `{from, to}`: committed session status transitions.
pub const SESSION_TRANSITIONS: &str = "oio_session_transitions_total";
/// Histogram: from a session becoming claimable (enqueue or end of backoff) to a replica claiming it.
pub const DISPATCH_LATENCY: &str = "oio_dispatch_latency_seconds";
/// Histogram, `{server, operation}`: OpenCode calls, retries included, successful or not.
pub const OPENCODE_CALL_DURATION: &str = "oio_opencode_call_duration_seconds";
/// Counter, `{server, operation}`: OpenCode calls that failed after their retries.
pub const OPENCODE_CALL_ERRORS: &str = "oio_opencode_call_errors_total";
/// Gauge, `{server}`: the circuit breaker — 0 closed, 1 half-open, 2 open.
pub const OPENCODE_BREAKER_STATE: &str = "oio_opencode_breaker_state";
/// Histogram: waiting for a workspace lock before creating a worktree.
pub const LOCK_WAIT: &str = "oio_lock_wait_seconds";
/// Counter, `{kind}` (`input`, `output`, `reasoning`, `cache_read`, `cache_write`): tokens
/// reported by finished turns.
pub const TOKENS: &str = "oio_tokens_total";
/// Cost reported by finished turns, in USD. A gauge that only grows within the process (the
/// `metrics` crate's counters are integers); `rate()` treats it as the counter it is.
pub const COST_USD: &str = "oio_cost_usd_total";

/// Gauge, `{pool}` (`provider/model`, or `default`): the admission limit of a pool now.
pub const ADMISSION_LIMIT: &str = "oio_admission_limit";
/// Gauge, `{pool}`: sessions waiting for a slot of a pool.
pub const ADMISSION_WAITING: &str = "oio_admission_waiting";

/// Gauge, `{server}`: resident memory of a supervised OpenCode server (process and descendants).
pub const OPENCODE_RSS: &str = "oio_opencode_rss_bytes";
/// Counter, `{server, reason}` (`exited`, `unhealthy`, `memory`): supervised OpenCode restarts.
pub const OPENCODE_RESTARTS: &str = "oio_opencode_restarts_total";

/// Counter: inbox items left unanswered past `inbox.escalate_after_secs`.
pub const INBOX_ESCALATIONS: &str = "oio_inbox_escalations_total";

/// Counter, `{code}` (`budget_exceeded`, `step_limit`, `tool_call_limit`, `wall_time`,
/// `repeated_tool_failure`): sessions a guardrail stopped.
pub const GUARDRAIL_STOPS: &str = "oio_guardrail_stops_total";

/// Every family the server declares.
pub const ALL: &[&str] = &[
    SESSIONS,
    QUEUE_DEPTH,
    SESSION_TRANSITIONS,
    DISPATCH_LATENCY,
    OPENCODE_CALL_DURATION,
    OPENCODE_CALL_ERRORS,
    OPENCODE_BREAKER_STATE,
    LOCK_WAIT,
    TOKENS,
    COST_USD,
    ADMISSION_LIMIT,
    ADMISSION_WAITING,
    OPENCODE_RSS,
    OPENCODE_RESTARTS,
    INBOX_ESCALATIONS,
    GUARDRAIL_STOPS,
];

/// Bucket bounds in seconds. Dispatch waits for free capacity (seconds to minutes); OpenCode calls
/// answer in milliseconds to the request timeout; a workspace lock is normally free at once.
const DISPATCH_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
const CALL_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const LOCK_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed and every family declared on first call.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        if let Err(error) = metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "another metrics recorder is installed; /metrics stays empty");
        }
        declare();
        handle
    })
}

fn builder() -> PrometheusBuilder {
    let per_family = [
        (DISPATCH_LATENCY, DISPATCH_BUCKETS),
        (OPENCODE_CALL_DURATION, CALL_BUCKETS),
        (LOCK_WAIT, LOCK_BUCKETS),
    ];
    per_family
        .into_iter()
        .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .expect("bucket lists are not empty")
        })
}

/// The token kinds, in [`MetricsDelta`] field order.
pub const TOKEN_KINDS: [&str; 5] = ["input", "output", "reasoning", "cache_read", "cache_write"];

fn token_counts(delta: &MetricsDelta) -> [u64; 5] {
    [
        delta.tokens_input,
        delta.tokens_output,
        delta.tokens_reasoning,
        delta.tokens_cache_read,
        delta.tokens_cache_write,
    ]
}

fn declare() {
    describe_gauge!(SESSIONS, "Live sessions per status.");
    describe_gauge!(
        QUEUE_DEPTH,
        "Dispatch-queue rows: waiting, leased, expired."
    );
    describe_counter!(SESSION_TRANSITIONS, "Committed session status transitions.");
    describe_histogram!(
        DISPATCH_LATENCY,
        metrics::Unit::Seconds,
        "From a session becoming claimable to its claim by a replica."
    );
    describe_histogram!(
        OPENCODE_CALL_DURATION,
        metrics::Unit::Seconds,
        "OpenCode calls, retries included."
    );
    describe_counter!(
        OPENCODE_CALL_ERRORS,
        "OpenCode calls that failed after their retries."
    );
    describe_gauge!(
        OPENCODE_BREAKER_STATE,
        "OpenCode circuit breaker: 0 closed, 1 half-open, 2 open."
    );
    describe_histogram!(
        LOCK_WAIT,
        metrics::Unit::Seconds,
        "Waiting for a workspace lock."
    );
    describe_counter!(TOKENS, "Tokens reported by finished turns.");
    describe_gauge!(COST_USD, "Cost reported by finished turns, in USD.");
    describe_gauge!(
        ADMISSION_LIMIT,
        "Admission limit of a provider/model pool (shrinks on rate limits)."
    );
    describe_gauge!(ADMISSION_WAITING, "Sessions waiting for a slot of a pool.");

    for status in SessionStatus::ALL {
        gauge!(SESSIONS, "status" => status.as_str()).set(0.0);
        for to in status.successors() {
            counter!(SESSION_TRANSITIONS, "from" => status.as_str(), "to" => to.as_str())
                .increment(0);
        }
    }
    set_queue_depth(QueueDepth::default());
    for kind in TOKEN_KINDS {
        counter!(TOKENS, "kind" => kind).increment(0);
    }
    gauge!(COST_USD).increment(0.0);
    describe_gauge!(
        OPENCODE_RSS,
        metrics::Unit::Bytes,
        "Resident memory of a supervised OpenCode server."
    );
    describe_counter!(OPENCODE_RESTARTS, "Supervised OpenCode server restarts.");
    // Exposed (unlabelled, zero) even without supervised servers; each supervised server adds
    // its own series when it starts.
    gauge!(OPENCODE_RSS).set(0.0);
    counter!(OPENCODE_RESTARTS).increment(0);
    describe_counter!(
        INBOX_ESCALATIONS,
        "Inbox items left unanswered past the escalation deadline."
    );
    counter!(INBOX_ESCALATIONS).increment(0);
    describe_counter!(
        GUARDRAIL_STOPS,
        "Sessions stopped by a guardrail (budget or runaway guard), by stop reason."
    );
    for code in [
        "budget_exceeded",
        "step_limit",
        "tool_call_limit",
        "wall_time",
        "repeated_tool_failure",
    ] {
        counter!(GUARDRAIL_STOPS, "code" => code).increment(0);
    }
    // Creating the handles registers the histograms: they render, empty, before any sample.
    let _ = histogram!(DISPATCH_LATENCY);
    let _ = histogram!(LOCK_WAIT);
}

/// What a committed batch of events tells the metrics: its transitions and reported usage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommittedFacts {
    pub transitions: Vec<(SessionStatus, SessionStatus)>,
    pub usage: MetricsDelta,
}

impl CommittedFacts {
    /// Read before the commit (which consumes the batch); [`CommittedFacts::record`] once it
    /// succeeded. Events that do not decode are ignored: metrics never fail a commit.
    pub fn of(events: &[NewEvent]) -> Self {
        let mut facts = Self::default();
        for event in events.iter().filter(|e| e.aggregate == Aggregate::Session) {
            match SessionLogEvent::parse(&event.event_type, &event.payload) {
                Some(SessionLogEvent::Lifecycle(SessionEvent::StatusChanged {
                    from, to, ..
                })) => {
                    facts.transitions.push((from, to));
                }
                Some(SessionLogEvent::Lifecycle(SessionEvent::MetricsRecorded {
                    delta, ..
                })) => {
                    let u = &mut facts.usage;
                    u.tokens_input += delta.tokens_input;
                    u.tokens_output += delta.tokens_output;
                    u.tokens_reasoning += delta.tokens_reasoning;
                    u.tokens_cache_read += delta.tokens_cache_read;
                    u.tokens_cache_write += delta.tokens_cache_write;
                    u.cost_micro_usd += delta.cost_micro_usd;
                }
                _ => {}
            }
        }
        facts
    }

    pub fn record(&self) {
        handle();
        for (from, to) in &self.transitions {
            counter!(SESSION_TRANSITIONS, "from" => from.as_str(), "to" => to.as_str())
                .increment(1);
        }
        for (kind, count) in TOKEN_KINDS.into_iter().zip(token_counts(&self.usage)) {
            if count > 0 {
                counter!(TOKENS, "kind" => kind).increment(count);
            }
        }
        if self.usage.cost_micro_usd > 0 {
            gauge!(COST_USD).increment(self.usage.cost_micro_usd as f64 / 1_000_000.0);
        }
    }
}

pub fn record_dispatch_latency(latency: Duration) {
    handle();
    histogram!(DISPATCH_LATENCY).record(latency.as_secs_f64());
}

pub fn inbox_escalated() {
    handle();
    counter!(INBOX_ESCALATIONS).increment(1);
}

/// A session stopped by a guardrail (`code`: the stop reason's stable code).
pub fn record_guardrail_stop(code: &'static str) {
    handle();
    counter!(GUARDRAIL_STOPS, "code" => code).increment(1);
}

pub fn record_lock_wait(wait: Duration) {
    handle();
    histogram!(LOCK_WAIT).record(wait.as_secs_f64());
}

/// An admission pool's limit and queue length now (see `application::admission`). Pools are a
/// handful of configured models: a low-cardinality label.
pub fn record_admission(pool: &str, limit: u32, waiting: usize) {
    handle();
    gauge!(ADMISSION_LIMIT, "pool" => pool.to_owned()).set(f64::from(limit));
    gauge!(ADMISSION_WAITING, "pool" => pool.to_owned()).set(waiting as f64);
}

/// One OpenCode call, retries included. `server` is the client's display name (its base URL,
/// password redacted): one value per configured server.
pub fn record_opencode_call(server: &str, operation: &'static str, took: Duration, failed: bool) {
    handle();
    let labels = [
        ("server", server.to_owned()),
        ("operation", operation.to_owned()),
    ];
    histogram!(OPENCODE_CALL_DURATION, &labels).record(took.as_secs_f64());
    if failed {
        counter!(OPENCODE_CALL_ERRORS, &labels).increment(1);
    } else {
        // Registered at zero, so the error rate reads 0 rather than nothing for a healthy server.
        counter!(OPENCODE_CALL_ERRORS, &labels).increment(0);
    }
}

/// A supervised server's restarts: `count` more for `reason` (0 registers the series).
pub fn record_opencode_restart(server: &str, reason: &'static str, count: u64) {
    handle();
    counter!(OPENCODE_RESTARTS, "server" => server.to_owned(), "reason" => reason).increment(count);
}

pub fn set_opencode_rss(server: &str, bytes: u64) {
    handle();
    gauge!(OPENCODE_RSS, "server" => server.to_owned()).set(bytes as f64);
}

/// The gauge value of a breaker state: higher is worse.
pub fn breaker_value(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    }
}

pub fn set_breaker_state(server: &str, state: BreakerState) {
    handle();
    gauge!(OPENCODE_BREAKER_STATE, "server" => server.to_owned()).set(breaker_value(state));
}

/// Every status gets a value, zero when absent, so a status that empties drops to 0.
pub fn set_session_counts(counts: &std::collections::BTreeMap<SessionStatus, u64>) {
    handle();
    for status in SessionStatus::ALL {
        let count = counts.get(&status).copied().unwrap_or(0);
        gauge!(SESSIONS, "status" => status.as_str()).set(count as f64);
    }
}

pub fn set_queue_depth(depth: QueueDepth) {
    for (state, rows) in [
        ("waiting", depth.waiting),
        ("leased", depth.leased),
        ("expired", depth.expired),
    ] {
        gauge!(QUEUE_DEPTH, "state" => state).set(rows as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use domain::SessionId;
    use serde_json::json;
    use uuid::Uuid;

    fn session_event(kind: &str, payload: serde_json::Value) -> NewEvent {
        NewEvent::new(
            Aggregate::Session,
            Uuid::new_v4(),
            kind,
            payload,
            Utc::now(),
        )
    }

    #[test]
    fn facts_read_transitions_and_usage_from_real_session_events() {
        let id = SessionId::from_uuid(Uuid::new_v4());
        let now = Utc::now();
        let changed = domain::SessionEvent::StatusChanged {
            session_id: id,
            from: SessionStatus::Running,
            to: SessionStatus::Completed,
            at: now,
            attempt: 1,
            reason: None,
        };
        let delta = MetricsDelta {
            tokens_input: 100,
            tokens_output: 20,
            tokens_cache_read: 7,
            cost_micro_usd: 1_500,
            ..MetricsDelta::default()
        };
        let recorded = domain::SessionEvent::MetricsRecorded {
            session_id: id,
            at: now,
            delta,
        };
        let events = [
            NewEvent::from(&recorded),
            session_event("dispatched", json!({ "server": "a" })),
            NewEvent::from(&changed),
            NewEvent::from(&recorded),
        ];
        let facts = CommittedFacts::of(&events);
        assert_eq!(
            facts.transitions,
            vec![(SessionStatus::Running, SessionStatus::Completed)]
        );
        assert_eq!(facts.usage.tokens_input, 200);
        assert_eq!(facts.usage.tokens_output, 40);
        assert_eq!(facts.usage.tokens_cache_read, 14);
        assert_eq!(facts.usage.cost_micro_usd, 3_000);
        assert_eq!(token_counts(&facts.usage), [200, 40, 0, 14, 0]);
    }

    #[test]
    fn unknown_statuses_and_other_aggregates_are_ignored() {
        let bogus = session_event(
            "status_changed",
            json!({ "from": "queued", "to": "exploded" }),
        );
        let mut task = session_event(
            "status_changed",
            json!({ "from": "queued", "to": "running" }),
        );
        task.aggregate = Aggregate::Task;
        assert_eq!(
            CommittedFacts::of(&[bogus, task]),
            CommittedFacts::default()
        );
    }

    #[test]
    fn breaker_values_order_by_severity() {
        assert!(breaker_value(BreakerState::Closed) < breaker_value(BreakerState::HalfOpen));
        assert!(breaker_value(BreakerState::HalfOpen) < breaker_value(BreakerState::Open));
    }

    #[test]
    fn every_family_is_declared_once_with_the_oio_prefix() {
        let mut names = ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(ALL.iter().all(|n| n.starts_with("oio_")));
    }
}
