//! Plain serde types the pages exchange with the server, and the pure helpers that build them.

use chrono::{DateTime, Utc};
use domain::{Agent, Session, SessionStatus, Task};
use serde::{Deserialize, Serialize};

/// One OpenCode server as the dashboard shows it (its name never carries credentials).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetServer {
    pub name: String,
    pub healthy: bool,
    /// `closed`, `open` or `half_open`.
    pub breaker: String,
    pub in_flight: u32,
    pub capacity: u32,
}

/// The dispatch queue's depth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueFigures {
    pub waiting: u64,
    pub leased: u64,
    pub expired: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub servers: Vec<FleetServer>,
    pub queue: Option<QueueFigures>,
    /// Why the queue could not be read, if it could not.
    pub queue_error: Option<String>,
}

/// How many sessions are in one status (`more`: at least that many; counting stopped there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCount {
    pub status: SessionStatus,
    pub count: u64,
    pub more: bool,
}

/// Sessions that finished within one hour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourBucket {
    pub start: DateTime<Utc>,
    pub finished: u32,
    /// Of which failed or timed out.
    pub failed: u32,
    pub cost_micro_usd: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionStats {
    pub counts: Vec<StatusCount>,
    /// The last 24 hours, oldest first.
    pub hours: Vec<HourBucket>,
    /// The latest failed or timed-out sessions, newest first.
    pub recent_failures: Vec<Session>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub fleet: FleetStatus,
    pub stats: SessionStats,
}

/// One line of a session's event log, its payload compacted to one line of JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    pub seq: u64,
    pub event_type: String,
    pub payload: String,
    pub occurred_at: DateTime<Utc>,
}

/// One edge of the state machine a session took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

impl Transition {
    /// The transition a `session.status_changed` payload describes; `None` for other payloads.
    pub fn from_payload(payload: &serde_json::Value) -> Option<Self> {
        let text = |key: &str| payload.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Some(Self {
            from: text("from")?,
            to: text("to")?,
            at: text("at").and_then(|raw| raw.parse().ok()),
            reason: text("reason"),
        })
    }
}

/// What a session's worktree changed (from its last `session.workspace` event). Untrusted text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceDiff {
    pub patch: String,
    pub truncated: bool,
    pub files: Vec<String>,
}

impl WorkspaceDiff {
    /// From a `session.workspace` payload ([`domain::WorkspaceRecord`]); an unreadable one shows
    /// as an empty diff.
    pub fn from_payload(payload: &serde_json::Value) -> Self {
        let record = domain::WorkspaceRecord::deserialize(payload).unwrap_or_default();
        Self {
            files: record.paths(),
            patch: record.patch,
            truncated: record.patch_truncated,
        }
    }
}

/// A session in full, for its page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionDetail {
    pub session: Session,
    pub events: Vec<EventLine>,
    pub timeline: Vec<Transition>,
    pub diff: Option<WorkspaceDiff>,
    /// The event stream position read before the events: the live view resumes after it, so an
    /// event committed while the page was rendered is not missed.
    #[serde(default)]
    pub stream_after: Option<i64>,
}

impl SessionDetail {
    /// Builds the page's view of a session from its stored events `(seq, type, payload, at)`.
    pub fn assemble(
        session: Session,
        events: impl IntoIterator<Item = (u64, String, serde_json::Value, DateTime<Utc>)>,
    ) -> Self {
        let mut lines = Vec::new();
        let mut timeline = Vec::new();
        let mut diff = None;
        for (seq, event_type, payload, occurred_at) in events {
            match event_type.as_str() {
                "session.status_changed" => {
                    timeline.extend(Transition::from_payload(&payload));
                }
                "session.workspace" => diff = Some(WorkspaceDiff::from_payload(&payload)),
                _ => {}
            }
            lines.push(EventLine {
                seq,
                event_type,
                payload: compact_payload(&payload),
                occurred_at,
            });
        }
        Self {
            session,
            events: lines,
            timeline,
            diff,
            stream_after: None,
        }
    }
}

/// The `data` of one message of the live event stream (`/api/v1/events`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveEvent {
    pub event_type: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

/// Most characters of a payload shown in the event log (a workspace patch can be huge).
pub const PAYLOAD_PREVIEW_CHARS: usize = 240;

/// One line of JSON, cut at [`PAYLOAD_PREVIEW_CHARS`].
pub fn compact_payload(payload: &serde_json::Value) -> String {
    let text = payload.to_string();
    if text.chars().count() <= PAYLOAD_PREVIEW_CHARS {
        text
    } else {
        let mut cut: String = text.chars().take(PAYLOAD_PREVIEW_CHARS).collect();
        cut.push('…');
        cut
    }
}

/// An agent with the sessions it runs right now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentRow {
    pub agent: Agent,
    pub load: u64,
}

/// The wall screen's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusBoard {
    pub running: u64,
    pub queued: u64,
    pub failed_last_hour: u64,
    pub fleet: FleetStatus,
    pub running_trees: Vec<Task>,
    pub at: DateTime<Utc>,
}

/// The field a form submission got wrong, to show next to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// "Create a task from a requirement", as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTaskForm {
    pub requirement: String,
    pub workspace: String,
    /// Empty: the configured default.
    pub max_parallel: String,
    /// `fail_fast`, `continue` or `retry:N`; empty: fail fast.
    pub policy: String,
    pub start: bool,
}

impl NewTaskForm {
    /// The query string that brings the form back with `error` shown and the values kept.
    pub fn to_query(&self, error: &FieldError) -> String {
        let mut pairs = vec![
            ("error_field", error.field.as_str()),
            ("error", error.message.as_str()),
            ("requirement", self.requirement.as_str()),
            ("workspace", self.workspace.as_str()),
            ("max_parallel", self.max_parallel.as_str()),
            ("policy", self.policy.as_str()),
        ];
        if self.start {
            pairs.push(("start", "on"));
        }
        query_string(&pairs)
    }
}

/// An agent as typed in its form; capabilities comma- or space-separated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentForm {
    pub name: String,
    pub capabilities: String,
    pub model: String,
    pub max_concurrency: String,
}

impl AgentForm {
    pub fn to_query(&self, error: &FieldError) -> String {
        query_string(&[
            ("error_field", error.field.as_str()),
            ("error", error.message.as_str()),
            ("name", self.name.as_str()),
            ("capabilities", self.capabilities.as_str()),
            ("model", self.model.as_str()),
            ("max_concurrency", self.max_concurrency.as_str()),
        ])
    }

    /// The capability names typed, split on commas and whitespace.
    pub fn capability_list(&self) -> Vec<String> {
        self.capabilities
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for query values and paths.
pub fn encode_component(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encode_component_escapes_reserved_and_non_ascii() {
        assert_eq!(encode_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode_component("safe-_.~"), "safe-_.~");
    }

    #[test]
    fn transitions_come_from_status_changed_payloads_only() {
        let t = Transition::from_payload(&json!({
            "from": "queued", "to": "running", "at": "2026-01-01T00:00:00Z", "reason": null
        }))
        .unwrap();
        assert_eq!((t.from.as_str(), t.to.as_str()), ("queued", "running"));
        assert!(t.at.is_some());
        assert_eq!(t.reason, None);
        assert_eq!(Transition::from_payload(&json!({"delta": {}})), None);
    }

    #[test]
    fn workspace_payload_tolerates_missing_fields() {
        // The engine writes files as `{path, additions, deletions}` objects.
        let d = WorkspaceDiff::from_payload(
            &json!({"patch": "+a\n-b", "files": [{"path": "x", "additions": 1}]}),
        );
        assert_eq!(d.patch, "+a\n-b");
        assert!(!d.truncated);
        assert_eq!(d.files, vec!["x".to_owned()]);
        assert_eq!(
            WorkspaceDiff::from_payload(&json!({})),
            WorkspaceDiff::default()
        );
    }

    #[test]
    fn long_payloads_are_cut() {
        let long = json!({ "patch": "x".repeat(1000) });
        let shown = compact_payload(&long);
        assert_eq!(shown.chars().count(), PAYLOAD_PREVIEW_CHARS + 1);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn form_errors_round_trip_the_typed_values() {
        let form = NewTaskForm {
            requirement: "build it & ship".into(),
            workspace: "/srv/repo".into(),
            start: true,
            ..Default::default()
        };
        let q = form.to_query(&FieldError {
            field: "workspace".into(),
            message: "not a repo".into(),
        });
        assert!(q.contains("error_field=workspace"), "{q}");
        assert!(q.contains("requirement=build%20it%20%26%20ship"), "{q}");
        assert!(q.ends_with("start=on"), "{q}");
    }
}
