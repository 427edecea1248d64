//! What the operator commands print: the JSON documents (domain records, or a small DTO around
//! them) and the human form — aligned tables (`comfy-table`, styled only when stdout is a
//! terminal) and plain text.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, Color, ContentArrangement, Table};
use domain::{Agent, Session, SessionEvent, SessionId, SessionStatus, Task, TaskId, TaskStatus};
use serde::Serialize;

use crate::ports::StoredSessionEvent;

/// One page of `session list`; `next` is what `--after` takes for the following page.
#[derive(Debug, Serialize)]
pub struct SessionPage {
    pub items: Vec<Session>,
    pub next: Option<String>,
}

/// One entry of a session's event log.
#[derive(Debug, Serialize)]
pub struct EventEntry {
    pub seq: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

/// `session show`: the session (with its metrics) and its event log.
#[derive(Debug, Serialize)]
pub struct SessionDetail {
    pub session: Session,
    pub events: Vec<EventEntry>,
}

impl SessionDetail {
    pub fn new(session: Session, events: &[StoredSessionEvent]) -> Self {
        Self {
            session,
            events: events
                .iter()
                .map(|e| EventEntry {
                    seq: e.seq,
                    event_type: e.event_type.clone(),
                    at: e.occurred_at,
                    payload: e.payload.clone(),
                })
                .collect(),
        }
    }
}

/// `session cancel`: `cancelled` (it was waiting) or `requested` (a replica runs it).
#[derive(Debug, Serialize)]
pub struct CancelResult {
    pub outcome: &'static str,
    pub session: Session,
}

/// `task create`: every task of the stored tree, the root first.
#[derive(Debug, Serialize)]
pub struct TaskCreated {
    pub root: TaskId,
    pub started: bool,
    pub tasks: Vec<Task>,
}

/// `task show`: the tree, parents before children.
#[derive(Debug, Serialize)]
pub struct TaskTree {
    pub root: TaskId,
    pub tasks: Vec<Task>,
}

fn table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if std::env::var_os("NO_COLOR").is_some() {
        table.force_no_tty();
    }
    table
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn session_status_cell(status: SessionStatus) -> Cell {
    let color = match status {
        SessionStatus::Completed => Color::Green,
        SessionStatus::Failed | SessionStatus::TimedOut => Color::Red,
        SessionStatus::Running => Color::Cyan,
        SessionStatus::Cancelled => Color::DarkGrey,
        SessionStatus::Paused => Color::Yellow,
        SessionStatus::Pending | SessionStatus::Queued => Color::Blue,
    };
    Cell::new(status).fg(color)
}

fn task_status_cell(status: TaskStatus) -> Cell {
    let color = match status {
        TaskStatus::Completed => Color::Green,
        TaskStatus::Failed => Color::Red,
        TaskStatus::Running => Color::Cyan,
        TaskStatus::Cancelled => Color::DarkGrey,
        _ => Color::Blue,
    };
    Cell::new(status).fg(color)
}

/// `session create`.
pub fn session_created(session: &Session) -> String {
    format!(
        "session {} created: {}\n{}",
        session.id(),
        session.status(),
        session_fields(session)
    )
}

/// A session's fields and metrics, one per row.
pub fn session_fields(session: &Session) -> Table {
    let mut t = table();
    t.set_header(["field", "value"]);
    let m = session.metrics();
    let rows: Vec<(&str, Cell)> = vec![
        ("id", Cell::new(session.id())),
        ("title", Cell::new(session.title().as_str())),
        ("status", session_status_cell(session.status())),
        (
            "agent",
            Cell::new(session.agent().map(|a| a.as_str()).unwrap_or("-")),
        ),
        ("workspace", Cell::new(session.workspace().as_str())),
        (
            "attempt",
            Cell::new(format!(
                "{} of {}",
                session.attempt(),
                session.max_attempts()
            )),
        ),
        (
            "parent task",
            Cell::new(
                session
                    .parent_task()
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
        ),
        ("created", Cell::new(time(session.created_at()))),
        ("updated", Cell::new(time(session.updated_at()))),
        (
            "started",
            Cell::new(session.started_at().map(time).unwrap_or_else(|| "-".into())),
        ),
        (
            "finished",
            Cell::new(
                session
                    .finished_at()
                    .map(time)
                    .unwrap_or_else(|| "-".into()),
            ),
        ),
        ("last error", Cell::new(session.last_error().unwrap_or("-"))),
        (
            "stopped by",
            Cell::new(session.stop_reason().map_or("-", |r| r.code())),
        ),
        (
            "tokens",
            Cell::new(format!(
                "{} (input {}, output {}, reasoning {}, cache read {}, cache write {})",
                m.total_tokens(),
                m.tokens_input,
                m.tokens_output,
                m.tokens_reasoning,
                m.tokens_cache_read,
                m.tokens_cache_write
            )),
        ),
        ("cost", Cell::new(format!("${:.4}", m.cost_usd()))),
        (
            "duration",
            Cell::new(format!("{:.1} s", m.duration_ms as f64 / 1000.0)),
        ),
        ("files changed", Cell::new(m.files_changed)),
        ("retries", Cell::new(m.retries)),
    ];
    for (name, value) in rows {
        t.add_row(vec![Cell::new(name), value]);
    }
    t
}

/// What an event says, in a few words.
fn event_summary(entry: &EventEntry) -> String {
    match serde_json::from_value::<SessionEvent>(entry.payload.clone()) {
        Ok(SessionEvent::Created { .. }) => "created".into(),
        Ok(SessionEvent::StatusChanged {
            from,
            to,
            attempt,
            reason,
            ..
        }) => {
            let mut s = format!("{from} -> {to} (attempt {attempt})");
            if let Some(reason) = reason {
                s.push_str(&format!(": {reason}"));
            }
            s
        }
        Ok(SessionEvent::MetricsRecorded { delta, .. }) => format!(
            "+{} tokens, +{} ms, {} files",
            delta.tokens_input
                + delta.tokens_output
                + delta.tokens_reasoning
                + delta.tokens_cache_read
                + delta.tokens_cache_write,
            delta.duration_ms,
            delta.files_changed
        ),
        Err(_) => entry.payload.to_string(),
    }
}

/// `session show`: fields and metrics, then the event log.
pub fn session_detail(detail: &SessionDetail) -> String {
    let mut events = table();
    events.set_header(["seq", "at", "event", "detail"]);
    for e in &detail.events {
        events.add_row(vec![
            Cell::new(e.seq),
            Cell::new(time(e.at)),
            Cell::new(&e.event_type),
            Cell::new(event_summary(e)),
        ]);
    }
    format!(
        "{}\n\nprompt:\n{}\n\nevents:\n{events}\n",
        session_fields(&detail.session),
        detail.session.prompt().as_str()
    )
}

/// `session list`.
pub fn session_list(page: &SessionPage) -> String {
    if page.items.is_empty() {
        return "no sessions\n".into();
    }
    let mut t = table();
    t.set_header(["id", "status", "title", "agent", "attempt", "created"]);
    for s in &page.items {
        t.add_row(vec![
            Cell::new(s.id()),
            session_status_cell(s.status()),
            Cell::new(s.title().as_str()),
            Cell::new(s.agent().map(|a| a.as_str()).unwrap_or("-")),
            Cell::new(format!("{}/{}", s.attempt(), s.max_attempts())),
            Cell::new(time(s.created_at())),
        ]);
    }
    let mut out = format!("{t}\n");
    if let Some(next) = &page.next {
        out.push_str(&format!("more: --after {next}\n"));
    }
    out
}

/// `task show`: one row per task, indented under its parent.
pub fn task_tree(tree: &TaskTree) -> String {
    let mut depth: BTreeMap<TaskId, usize> = BTreeMap::new();
    let mut t = table();
    t.set_header(["task", "id", "status", "agent (score)", "note", "sessions"]);
    for task in &tree.tasks {
        let d = task
            .parent()
            .and_then(|p| depth.get(&p))
            .map_or(0, |d| d + 1);
        depth.insert(task.id(), d);
        let title = if d == 0 {
            task.title().as_str().to_owned()
        } else {
            format!("{}└ {}", "  ".repeat(d - 1), task.title().as_str())
        };
        let agent = task
            .assignment()
            .map(|a| {
                format!(
                    "{} ({}.{:03})",
                    a.agent,
                    a.score_milli / 1000,
                    a.score_milli % 1000
                )
            })
            .unwrap_or_else(|| "-".into());
        let execution = task.execution();
        let sessions: Vec<String> = execution
            .sessions
            .iter()
            .map(SessionId::to_string)
            .collect();
        t.add_row(vec![
            Cell::new(title),
            Cell::new(task.id()),
            task_status_cell(task.status()),
            Cell::new(agent),
            Cell::new(execution.note.as_deref().unwrap_or("-")),
            Cell::new(if sessions.is_empty() {
                "-".into()
            } else {
                sessions.join("\n")
            }),
        ]);
    }
    format!("{t}\n")
}

/// `agent list`.
pub fn agent_list(agents: &[Agent]) -> String {
    if agents.is_empty() {
        return "no agents\n".into();
    }
    let mut t = table();
    t.set_header([
        "name",
        "model",
        "capabilities",
        "max concurrency",
        "sessions",
        "success rate",
    ]);
    for a in agents {
        let capabilities: Vec<String> = a.capabilities().iter().map(|c| c.to_string()).collect();
        let perf = a.performance();
        t.add_row(vec![
            Cell::new(a.name().as_str()),
            Cell::new(a.model()),
            Cell::new(capabilities.join(", ")),
            Cell::new(a.max_concurrency()),
            Cell::new(perf.finished_sessions()),
            Cell::new(
                perf.success_rate()
                    .map(|r| format!("{:.0}%", r * 100.0))
                    .unwrap_or_else(|| "-".into()),
            ),
        ]);
    }
    format!("{t}\n")
}
