//! Plain serde types the pages exchange with the server, and the pure helpers that build them.

use chrono::{DateTime, Utc};
use domain::event_log::GuardrailStopped;
use domain::{
    Agent, Budget, InboxAnswer, InboxItem, InboxReply, RunawayLimits, Session, SessionEvent,
    SessionLogEvent, SessionStatus, Spend, Task, WorkspaceRecord,
};
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

/// How many live sessions are in one status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCount {
    pub status: SessionStatus,
    pub count: u64,
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
    /// The edge a `session.status_changed` event took; `None` for the other lifecycle events.
    pub fn of(event: &SessionEvent) -> Option<Self> {
        match event {
            SessionEvent::StatusChanged {
                from,
                to,
                at,
                reason,
                ..
            } => Some(Self {
                from: from.as_str().to_owned(),
                to: to.as_str().to_owned(),
                at: Some(*at),
                reason: reason.clone(),
            }),
            SessionEvent::Created { .. } | SessionEvent::MetricsRecorded { .. } => None,
        }
    }
}

/// What a session's worktree changed (from its last `session.workspace` event). Untrusted text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceDiff {
    pub patch: String,
    pub truncated: bool,
    pub files: Vec<String>,
}

impl From<WorkspaceRecord> for WorkspaceDiff {
    fn from(record: WorkspaceRecord) -> Self {
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
    /// The figures of the last `guardrail_stopped` event, when a guardrail stopped the session.
    #[serde(default)]
    pub guardrail: Option<GuardrailStop>,
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
        let mut guardrail = None;
        for (seq, event_type, payload, occurred_at) in events {
            // Lines of other kinds (or that do not read as their kind) only show in the log.
            match SessionLogEvent::parse(&event_type, &payload) {
                Some(SessionLogEvent::GuardrailStopped(stop)) => guardrail = Some(stop.into()),
                Some(SessionLogEvent::Lifecycle(event)) => timeline.extend(Transition::of(&event)),
                Some(SessionLogEvent::Workspace(record)) => diff = Some(record.into()),
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
            guardrail,
        }
    }
}

/// What a guardrail reported when it stopped a session (its `guardrail_stopped` line): the code,
/// the operator's message and what the attempt had done by then.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailStop {
    pub code: String,
    pub message: String,
    pub attempt_tokens: Option<u64>,
    pub attempt_cost_micro_usd: Option<u64>,
    pub steps: Option<u64>,
    pub tool_calls: Option<u64>,
}

impl From<GuardrailStopped> for GuardrailStop {
    fn from(stop: GuardrailStopped) -> Self {
        Self {
            code: stop.code,
            message: stop.message,
            attempt_tokens: stop.attempt_tokens,
            attempt_cost_micro_usd: stop.attempt_cost_micro_usd,
            steps: stop.steps.map(u64::from),
            tool_calls: stop.tool_calls.map(u64::from),
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

/// The inbox page: what waits for an answer, and what was answered (or expired) lately.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxView {
    /// Escalated first, then the longest waiting.
    pub open: Vec<InboxItem>,
    /// The latest closed items, newest first.
    pub resolved: Vec<InboxItem>,
    /// When it was read (ages are shown relative to it).
    pub at: DateTime<Utc>,
}

/// The configured guardrails: budgets and runaway limits (`None`: no cap).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardrailsView {
    pub session: Budget,
    pub task_tree: Budget,
    pub agent: Budget,
    /// The window an agent's budget covers.
    pub agent_window_hours: u64,
    pub runaway: RunawayLimits,
}

/// A task tree's budget, its reserved estimate and what its sessions have spent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeBudgetView {
    pub cap: Budget,
    pub reserved: Spend,
    /// What the tree's sessions have recorded (finished attempts).
    pub spent: Spend,
}

/// Longest note sent with a permission reply, in characters.
pub const MAX_INBOX_MESSAGE_CHARS: usize = 2000;
/// Most questions one answer form may carry.
pub const MAX_INBOX_QUESTIONS: usize = 32;

/// An inbox answer as a browser form sends it. A permission: the `reply` button pressed (`once`,
/// `always`, `reject`) and an optional `message`. A question set: `questions` (how many), the
/// chosen labels in `choice` keyed `q<question>` (radio) or `q<question>o<option>` (checkbox),
/// free text in `custom` keyed `q<question>`; or `reply=reject` (its REJECT button). (Keys start with a letter:
/// the form decoder reads keys of digits as list indices.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InboxAnswerForm {
    pub reply: Option<String>,
    pub message: Option<String>,
    pub questions: Option<String>,
    pub choice: std::collections::BTreeMap<String, String>,
    pub custom: std::collections::BTreeMap<String, String>,
}

impl InboxAnswerForm {
    /// The answer the form means, or the offending field and why.
    pub fn to_answer(&self) -> Result<InboxAnswer, (&'static str, String)> {
        let given = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
        if given(&self.questions) && given(&self.reply) {
            // The question form's REJECT button.
            return match self.reply.as_deref().map(str::trim) {
                Some("reject") => Ok(InboxAnswer::QuestionRejected),
                _ => Err((
                    "reply",
                    "questions are answered with choices, or rejected".into(),
                )),
            };
        }
        if given(&self.reply) {
            let reply = self
                .reply
                .as_deref()
                .unwrap_or_default()
                .trim()
                .parse::<InboxReply>()
                .map_err(|e| ("reply", e.to_string()))?;
            let message = self
                .message
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned);
            if let Some(message) = &message {
                let chars = message.chars().count();
                if chars > MAX_INBOX_MESSAGE_CHARS {
                    return Err((
                        "message",
                        format!(
                            "must be at most {MAX_INBOX_MESSAGE_CHARS} characters (got {chars})"
                        ),
                    ));
                }
            }
            return Ok(InboxAnswer::Permission { reply, message });
        }
        let Some(count) = self
            .questions
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
        else {
            return Err(("reply", "choose once, always or reject".into()));
        };
        let count = count
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_INBOX_QUESTIONS).contains(n))
            .ok_or_else(|| {
                (
                    "questions",
                    format!("must be a number from 1 to {MAX_INBOX_QUESTIONS}"),
                )
            })?;
        let mut chosen: Vec<Vec<(usize, String)>> = vec![Vec::new(); count];
        let question_of = |field: &'static str, raw: &str| {
            raw.parse::<usize>()
                .ok()
                .filter(|q| *q < count)
                .ok_or_else(|| (field, format!("unknown question {raw:?}")))
        };
        for (key, label) in &self.choice {
            let rest = key
                .strip_prefix('q')
                .ok_or_else(|| ("choice", format!("unknown question {key:?}")))?;
            let (question, option) = match rest.split_once('o') {
                Some((q, o)) => (q, o.parse::<usize>().ok()),
                None => (rest, Some(0)),
            };
            let question = question_of("choice", question)?;
            let option = option.ok_or_else(|| ("choice", format!("unknown option {key:?}")))?;
            chosen[question].push((option, label.clone()));
        }
        let mut answers: Vec<Vec<String>> = chosen
            .into_iter()
            .map(|mut labels| {
                labels.sort_by_key(|(option, _)| *option);
                labels.into_iter().map(|(_, label)| label).collect()
            })
            .collect();
        for (key, text) in &self.custom {
            let question = question_of("custom", key.strip_prefix('q').unwrap_or(key))?;
            let text = text.trim();
            if !text.is_empty() {
                answers[question].push(text.to_owned());
            }
        }
        Ok(InboxAnswer::Question { answers })
    }
}

/// How long ago `then` was, at `now`, in the largest whole unit (`42s`, `5m`, `3h`, `2d`).
pub fn fmt_age(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
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

    fn session() -> Session {
        let new = domain::NewSession {
            id: "00000000-0000-0000-0000-000000000001".parse().unwrap(),
            title: domain::SessionTitle::new("Add login page").unwrap(),
            prompt: domain::Prompt::new("Build a login page.").unwrap(),
            workspace: domain::WorkspacePath::new("/srv/repo").unwrap(),
            agent: None,
            parent_task: None,
            max_attempts: 3,
        };
        Session::new(new, DateTime::from_timestamp(1_800_000_000, 0).unwrap()).unwrap()
    }

    fn assemble(events: Vec<(&str, serde_json::Value)>) -> SessionDetail {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        SessionDetail::assemble(
            session(),
            events
                .into_iter()
                .enumerate()
                .map(|(i, (kind, payload))| (i as u64 + 1, kind.to_owned(), payload, at)),
        )
    }

    #[test]
    fn transitions_come_from_status_changed_events_only() {
        // As the domain writes them (`NewEvent::from(&SessionEvent)`).
        let id = "00000000-0000-0000-0000-000000000001";
        let detail = assemble(vec![
            (
                "session.created",
                json!({"type": "created", "session_id": id, "at": "2026-01-01T00:00:00Z"}),
            ),
            (
                "session.status_changed",
                json!({"type": "status_changed", "session_id": id, "from": "queued",
                       "to": "running", "at": "2026-01-01T00:00:00Z", "attempt": 1,
                       "reason": null}),
            ),
            // Not a status change, whatever its payload says.
            ("session.dispatched", json!({"from": "a", "to": "b"})),
        ]);
        assert_eq!(detail.timeline.len(), 1);
        let t = &detail.timeline[0];
        assert_eq!((t.from.as_str(), t.to.as_str()), ("queued", "running"));
        assert_eq!(t.at, "2026-01-01T00:00:00Z".parse().ok());
        assert_eq!(t.reason, None);
        // Every line shows in the log, typed or not.
        assert_eq!(detail.events.len(), 3);
        assert_eq!(detail.diff, None);
        assert_eq!(detail.guardrail, None);
    }

    #[test]
    fn workspace_payload_tolerates_missing_fields() {
        // The engine writes files as `{path, additions, deletions}` objects.
        let detail = assemble(vec![
            ("session.workspace", json!({})),
            (
                "session.workspace",
                json!({"patch": "+a\n-b", "files": [{"path": "x", "additions": 1}]}),
            ),
        ]);
        let d = detail.diff.unwrap();
        assert_eq!(d.patch, "+a\n-b");
        assert!(!d.truncated);
        assert_eq!(d.files, vec!["x".to_owned()]);
        assert_eq!(
            assemble(vec![("session.workspace", json!({}))]).diff,
            Some(WorkspaceDiff::default())
        );
    }

    #[test]
    fn long_payloads_are_cut() {
        let long = json!({ "patch": "x".repeat(1000) });
        let shown = compact_payload(&long);
        assert_eq!(shown.chars().count(), PAYLOAD_PREVIEW_CHARS + 1);
        assert!(shown.ends_with('…'));
    }

    fn form() -> InboxAnswerForm {
        InboxAnswerForm::default()
    }

    #[test]
    fn a_permission_form_reads_the_pressed_button_and_the_message() {
        let answer = InboxAnswerForm {
            reply: Some("always".into()),
            message: Some("  ".into()),
            ..form()
        }
        .to_answer()
        .unwrap();
        assert_eq!(
            answer,
            InboxAnswer::Permission {
                reply: InboxReply::Always,
                message: None
            }
        );
        let answer = InboxAnswerForm {
            reply: Some("reject".into()),
            message: Some(" not there ".into()),
            ..form()
        }
        .to_answer()
        .unwrap();
        assert_eq!(
            answer,
            InboxAnswer::Permission {
                reply: InboxReply::Reject,
                message: Some("not there".into())
            }
        );
        let (field, _) = InboxAnswerForm {
            reply: Some("sometimes".into()),
            ..form()
        }
        .to_answer()
        .unwrap_err();
        assert_eq!(field, "reply");
        let (field, _) = InboxAnswerForm {
            reply: Some("once".into()),
            message: Some("x".repeat(MAX_INBOX_MESSAGE_CHARS + 1)),
            ..form()
        }
        .to_answer()
        .unwrap_err();
        assert_eq!(field, "message");
        assert_eq!(form().to_answer().unwrap_err().0, "reply");
    }

    #[test]
    fn a_question_form_collects_choices_in_option_order_then_free_text() {
        let answer = InboxAnswerForm {
            questions: Some("2".into()),
            choice: [
                ("q0".to_owned(), "red".to_owned()),
                ("q1o10".to_owned(), "late".to_owned()),
                ("q1o2".to_owned(), "early".to_owned()),
            ]
            .into_iter()
            .collect(),
            custom: [
                ("q0".to_owned(), " ".to_owned()),
                ("q1".to_owned(), " mine ".to_owned()),
            ]
            .into_iter()
            .collect(),
            ..form()
        }
        .to_answer()
        .unwrap();
        assert_eq!(
            answer,
            InboxAnswer::Question {
                answers: vec![
                    vec!["red".to_owned()],
                    vec!["early".to_owned(), "late".to_owned(), "mine".to_owned()]
                ]
            }
        );
        let rejected = InboxAnswerForm {
            questions: Some("1".into()),
            reply: Some("reject".into()),
            ..form()
        };
        assert_eq!(rejected.to_answer().unwrap(), InboxAnswer::QuestionRejected);
        let allowed = InboxAnswerForm {
            questions: Some("1".into()),
            reply: Some("once".into()),
            ..form()
        };
        assert_eq!(allowed.to_answer().unwrap_err().0, "reply");
        for (questions, key, field) in [
            ("0", "q0", "questions"),
            ("1", "q3", "choice"),
            ("1", "0", "choice"),
            ("1", "q0ox", "choice"),
        ] {
            let (got, _) = InboxAnswerForm {
                questions: Some(questions.into()),
                choice: [(key.to_owned(), "a".to_owned())].into_iter().collect(),
                ..form()
            }
            .to_answer()
            .unwrap_err();
            assert_eq!(got, field, "{questions} {key}");
        }
    }

    #[test]
    fn guardrail_stops_read_their_figures_and_tolerate_missing_ones() {
        // The guard's report, and the engine's fallback without figures.
        let reason = json!({"code": "budget_exceeded", "scope": "session", "metric": "tokens",
                            "used": 10_000_000u64, "limit": 5_000_000u64});
        let detail = assemble(vec![(
            "session.guardrail_stopped",
            json!({"code": "budget_exceeded", "reason": reason,
                   "message": "session budget exceeded", "attempt_tokens": 10_000_000u64,
                   "attempt_cost_micro_usd": 0, "steps": 1, "tool_calls": 0}),
        )]);
        let stop = detail.guardrail.unwrap();
        assert_eq!(stop.code, "budget_exceeded");
        assert_eq!(stop.message, "session budget exceeded");
        assert_eq!(stop.attempt_tokens, Some(10_000_000));
        assert_eq!(stop.steps, Some(1));
        let bare = assemble(vec![(
            "guardrail_stopped",
            json!({"code": "budget_exceeded", "reason": reason, "message": "m"}),
        )]);
        let stop = bare.guardrail.unwrap();
        assert_eq!(stop.code, "budget_exceeded");
        assert_eq!(stop.attempt_tokens, None);
        assert_eq!(stop.steps, None);
    }

    #[test]
    fn ages_use_the_largest_whole_unit() {
        let now = DateTime::from_timestamp(1_764_000_000, 0).unwrap();
        assert_eq!(fmt_age(now - chrono::Duration::seconds(42), now), "42s");
        assert_eq!(fmt_age(now - chrono::Duration::seconds(300), now), "5m");
        assert_eq!(fmt_age(now - chrono::Duration::hours(3), now), "3h");
        assert_eq!(fmt_age(now + chrono::Duration::hours(3), now), "0s");
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
