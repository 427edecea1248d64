//! `/sessions/:id`: one session in full — fields, metrics, actions, state timeline, event log and
//! the worktree diff. Hydrated, it follows the live event stream: new events are appended to the
//! log and the status changes without a reload.

use chrono::{DateTime, Utc};
use domain::{SessionLogEvent, SessionStatus};
use leptos::prelude::*;

use super::common::CsrfField;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use super::common::{fmt_cost, fmt_duration, fmt_opt_time, fmt_time, ErrorBox, SectionTitle};
use super::NotFound;
use crate::api::{
    get_session, CancelSession, EventLine, LiveEvent, RetrySession, SessionDetail, WorkspaceDiff,
};

/// The session events the page follows.
pub const SESSION_EVENT_TYPES: &[&str] = &[
    "session.created",
    "session.status_changed",
    "session.dispatched",
    "session.tool",
    "session.agent_message",
    "session.agent_error",
    "session.agent_retry",
    "session.permission_asked",
    "session.question_asked",
    "session.metrics_recorded",
    "session.workspace",
    "session.result",
    "session.guardrail_stopped",
    "inbox.asked",
    "inbox.answered",
    "inbox.escalated",
    "inbox.expired",
];

#[component]
pub fn SessionDetailPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let cancel = ServerAction::<CancelSession>::new();
    let retry = ServerAction::<RetrySession>::new();
    // Bumped by status changes seen live: the page reloads its data (timeline, actions, diff).
    let reloads = RwSignal::new(0u32);
    let detail = Resource::new(
        move || {
            (
                id(),
                cancel.version().get(),
                retry.version().get(),
                reloads.get(),
            )
        },
        |(id, ..)| get_session(id),
    );
    let live_events = RwSignal::new(Vec::<LiveEvent>::new());
    let live_status = RwSignal::new(None::<String>);

    view! {
        <Transition fallback=|| view! { <p>"loading session…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(Some(d)) => {
                        view! { <Detail detail=d live_events live_status reloads cancel retry /> }
                            .into_any()
                    }
                    Ok(None) => view! { <NotFound /> }.into_any(),
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Detail(
    detail: SessionDetail,
    live_events: RwSignal<Vec<LiveEvent>>,
    live_status: RwSignal<Option<String>>,
    reloads: RwSignal<u32>,
    cancel: ServerAction<CancelSession>,
    retry: ServerAction<RetrySession>,
) -> impl IntoView {
    let s = &detail.session;
    let id = s.id().to_string();
    let status = s.status();

    // Live: every (re)load of the detail reopens the stream right after the position the data
    // was read at, so nothing committed meanwhile is missed and nothing shown is repeated.
    #[cfg(feature = "hydrate")]
    {
        let url = match detail.stream_after {
            Some(after) => format!(
                "/api/v1/events?session={}&after={after}",
                crate::api::encode_component(&id)
            ),
            None => format!(
                "/api/v1/events?session={}",
                crate::api::encode_component(&id)
            ),
        };
        live_events.set(Vec::new());
        live_status.set(None);
        let opened = super::live::open(&url, SESSION_EVENT_TYPES, move |data| {
            let Ok(event) = serde_json::from_str::<LiveEvent>(&data) else {
                return;
            };
            if event.event_type == "session.status_changed" {
                if let Some(SessionLogEvent::Lifecycle(domain::SessionEvent::StatusChanged {
                    to,
                    ..
                })) = SessionLogEvent::parse(&event.event_type, &event.payload)
                {
                    live_status.set(Some(to.as_str().to_owned()));
                }
                reloads.update(|n| *n += 1);
            }
            live_events.update(|events| events.push(event));
        });
        match opened {
            Ok(stream) => {
                let stream = send_wrapper::SendWrapper::new(stream);
                on_cleanup(move || drop(stream));
            }
            Err(e) => leptos::logging::warn!("live events unavailable: {e:?}"),
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = reloads;

    let shown_status = {
        let initial = status.as_str().to_owned();
        move || live_status.get().unwrap_or_else(|| initial.clone())
    };
    let alert = {
        let shown_status = shown_status.clone();
        move || super::common::is_failure(&shown_status())
    };
    let m = *s.metrics();
    let cancellable = status.can_transition_to(SessionStatus::Cancelled);
    let retryable = status.is_failure();
    let field = |label: &'static str, value: String| {
        view! {
            <tr>
                <th scope="row">{label}</th>
                <td>{value}</td>
            </tr>
        }
    };
    let last_seq = detail.events.last().map(|e| e.seq).unwrap_or(0);
    let last_at = detail.events.last().map(|e| e.occurred_at);
    let action_error = move || {
        [cancel.value().get(), retry.value().get()]
            .into_iter()
            .flatten()
            .find_map(Result::err)
            .map(|e| {
                view! {
                    <p data-testid="action-error" class="text-alert font-bold">
                        {e.to_string()}
                    </p>
                }
            })
    };

    view! {
        <h1 class="text-2xl font-bold">
            "SESSION "
            <span data-testid="session-title">{s.title().as_str().to_owned()}</span>
        </h1>
        <p class="text-dim">{id.clone()}</p>
        <StopBanner detail=detail.clone() />
        <div class="flex flex-wrap gap-2 my-2">
            {cancellable
                .then({
                    let id = id.clone();
                    move || {
                    view! {
                        <ActionForm action=cancel>
                            <CsrfField />
                            <input type="hidden" name="id" value=id.clone() />
                            <button
                                type="submit"
                                data-testid="cancel"
                                class="px-2 border-2 border-ink font-bold"
                            >
                                "[ CANCEL ]"
                            </button>
                        </ActionForm>
                    }
                }
                })}
            {retryable
                .then({
                    let id = id.clone();
                    move || {
                    view! {
                        <ActionForm action=retry>
                            <CsrfField />
                            <input type="hidden" name="id" value=id.clone() />
                            <button
                                type="submit"
                                data-testid="retry"
                                class="px-2 border-2 border-ink font-bold"
                            >
                                "[ RETRY ]"
                            </button>
                        </ActionForm>
                    }
                }
                })}
            {action_error}
        </div>
        <table data-testid="session-fields">
            <tbody>
                <tr>
                    <th scope="row">"status"</th>
                    <td
                        data-testid="session-status"
                        class:text-alert=alert.clone()
                        class:font-bold=alert
                    >
                        {shown_status}
                        {s
                            .stop_reason()
                            .map(|r| {
                                view! {
                                    <span data-testid="session-stop-code">
                                        {format!(" · {}", r.code())}
                                    </span>
                                }
                            })}
                        {(status == SessionStatus::Queued)
                            .then(|| awaiting_slot(&detail.events))
                            .flatten()
                            .map(|slot| {
                                view! {
                                    <span data-testid="session-awaiting-slot">
                                        {slot.describe()}
                                    </span>
                                }
                            })}
                    </td>
                </tr>
                {field("agent", s.agent().map(|a| a.as_str().to_owned()).unwrap_or_else(|| "-".into()))}
                {field("workspace", s.workspace().as_str().to_owned())}
                {field("attempt", format!("{}/{}", s.attempt(), s.max_attempts()))}
                {s
                    .parent_task()
                    .map(|t| {
                        view! {
                            <tr>
                                <th scope="row">"task"</th>
                                <td>
                                    <A href=format!("/tasks/{t}")>{t.to_string()}</A>
                                </td>
                            </tr>
                        }
                    })}
                {field("created", fmt_time(s.created_at()))}
                {field("started", fmt_opt_time(s.started_at()))}
                {field("finished", fmt_opt_time(s.finished_at()))}
                <tr>
                    <th scope="row">"last error"</th>
                    <td data-testid="last-error" class:text-alert=s.last_error().is_some()>
                        {s.last_error().unwrap_or("-").to_owned()}
                    </td>
                </tr>
            </tbody>
        </table>

        <SectionTitle text="PROMPT" />
        <pre data-testid="prompt" class="whitespace-pre-wrap border border-ink p-2">
            {s.prompt().as_str().to_owned()}
        </pre>

        <SectionTitle text="METRICS" />
        <table data-testid="metrics">
            <thead>
                <tr>
                    <th>"tokens in"</th>
                    <th>"tokens out"</th>
                    <th>"reasoning"</th>
                    <th>"cache r/w"</th>
                    <th>"cost $"</th>
                    <th>"duration"</th>
                    <th>"files changed"</th>
                    <th>"retries"</th>
                </tr>
            </thead>
            <tbody>
                <tr>
                    <td>{m.tokens_input}</td>
                    <td>{m.tokens_output}</td>
                    <td>{m.tokens_reasoning}</td>
                    <td>{format!("{}/{}", m.tokens_cache_read, m.tokens_cache_write)}</td>
                    <td>{fmt_cost(m.cost_micro_usd)}</td>
                    <td>{fmt_duration(m.duration_ms)}</td>
                    <td>{m.files_changed}</td>
                    <td>{m.retries}</td>
                </tr>
            </tbody>
        </table>

        <Timeline detail=detail.clone() />
        <EventLog events=detail.events.clone() live_events last_seq last_at />
        <Diff diff=detail.diff.clone() />
    }
}

/// The guardrail that stopped the session, when one did: its code, the reason in words and what
/// the attempt had spent by then.
#[component]
fn StopBanner(detail: SessionDetail) -> impl IntoView {
    let reason = detail.session.stop_reason()?.clone();
    let figures = detail.guardrail.map(|g| {
        let mut parts = Vec::new();
        if let Some(tokens) = g.attempt_tokens {
            parts.push(format!("{tokens} tokens"));
        }
        if let Some(cost) = g.attempt_cost_micro_usd {
            parts.push(format!("${}", fmt_cost(cost)));
        }
        if let Some(steps) = g.steps {
            parts.push(format!("{steps} steps"));
        }
        if let Some(calls) = g.tool_calls {
            parts.push(format!("{calls} tool calls"));
        }
        format!("this attempt: {}", parts.join(" · "))
    });
    Some(view! {
        <section
            data-testid="stop-banner"
            data-code=reason.code()
            role="alert"
            class="border-4 border-alert bg-alert text-paper p-3 my-3"
        >
            <p class="text-xl font-bold tracking-tight">
                "STOPPED · "
                <span data-testid="stop-code">{reason.code()}</span>
            </p>
            <p data-testid="stop-message" class="font-bold">
                {reason.to_string()}
            </p>
            {figures.map(|f| view! { <p data-testid="stop-figures">{f}</p> })}
            <p class="text-sm">"a guardrail stop is final: it is not retried automatically."</p>
        </section>
    })
}

#[component]
fn Timeline(detail: SessionDetail) -> impl IntoView {
    let rows = detail
        .timeline
        .into_iter()
        .map(|t| {
            let alert = super::common::is_failure(&t.to);
            view! {
                <tr data-testid="timeline-row">
                    <td>{t.from}</td>
                    <td class:text-alert=alert class:font-bold=alert>
                        {t.to}
                    </td>
                    <td>{fmt_opt_time(t.at)}</td>
                    <td>{t.reason.unwrap_or_default()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <SectionTitle text="TIMELINE" />
        <table data-testid="timeline">
            <thead>
                <tr>
                    <th>"from"</th>
                    <th>"to"</th>
                    <th>"at (utc)"</th>
                    <th>"reason"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

fn event_row(seq: String, at: DateTime<Utc>, event_type: String, payload: String) -> impl IntoView {
    let data = event_type.clone();
    view! {
        <tr data-testid="event-row" data-event-type=data>
            <td>{seq}</td>
            <td>{fmt_time(at)}</td>
            <td>{event_type}</td>
            <td class="break-all">
                <code>{payload}</code>
            </td>
        </tr>
    }
}

#[component]
fn EventLog(
    events: Vec<EventLine>,
    live_events: RwSignal<Vec<LiveEvent>>,
    last_seq: u64,
    last_at: Option<DateTime<Utc>>,
) -> impl IntoView {
    let stored = events
        .into_iter()
        .map(|e| event_row(e.seq.to_string(), e.occurred_at, e.event_type, e.payload))
        .collect_view();
    // Events that arrived after the stored log was read (later ones are in the next reload).
    let live = move || {
        live_events
            .get()
            .into_iter()
            .filter(|e| last_at.is_none_or(|at| e.occurred_at > at))
            .enumerate()
            .map(|(i, e)| {
                event_row(
                    (last_seq + 1 + i as u64).to_string(),
                    e.occurred_at,
                    e.event_type,
                    crate::api::compact_payload(&e.payload),
                )
            })
            .collect_view()
    };
    view! {
        <SectionTitle text="EVENT LOG" />
        <table data-testid="event-log" class="w-full">
            <thead>
                <tr>
                    <th>"seq"</th>
                    <th>"time (utc)"</th>
                    <th>"type"</th>
                    <th>"payload"</th>
                </tr>
            </thead>
            <tbody>{stored} {live}</tbody>
        </table>
    }
}

/// The worktree diff: untrusted agent output, shown only through text nodes (escaped).
#[component]
fn Diff(diff: Option<WorkspaceDiff>) -> impl IntoView {
    let Some(diff) = diff else {
        return view! {
            <SectionTitle text="DIFF" />
            <p data-testid="no-diff">"NO WORKSPACE CHANGES RECORDED."</p>
        }
        .into_any();
    };
    let files = diff
        .files
        .iter()
        .map(|f| view! { <li>{f.clone()}</li> })
        .collect_view();
    let lines = diff
        .patch
        .lines()
        .map(|line| {
            let kind = if line.starts_with("+++") || line.starts_with("---") {
                "file"
            } else if line.starts_with('+') {
                "add"
            } else if line.starts_with('-') {
                "del"
            } else if line.starts_with("@@") {
                "hunk"
            } else {
                "ctx"
            };
            view! {
                <span
                    data-line=kind
                    class:font-bold=kind == "add" || kind == "file"
                    class:line-through=kind == "del"
                    class:text-dim=kind == "hunk"
                >
                    {line.to_owned()}
                    "\n"
                </span>
            }
        })
        .collect_view();
    view! {
        <SectionTitle text="DIFF" />
        <ul data-testid="diff-files" class="list-none">
            {files}
        </ul>
        {diff
            .truncated
            .then(|| view! { <p data-testid="diff-truncated">"(patch truncated)"</p> })}
        <pre data-testid="diff" tabindex="0" class="border border-ink p-2 overflow-x-auto">
            {lines}
        </pre>
    }
    .into_any()
}

/// Where a queued session stands in its admission pool, from its latest `awaiting_slot` event.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AwaitingSlot {
    pool: String,
    position: u64,
    limit: u64,
}

impl AwaitingSlot {
    fn describe(&self) -> String {
        format!(
            " · awaiting slot #{} in {} (limit {})",
            self.position, self.pool, self.limit
        )
    }
}

/// The session's admission wait, if its latest admission-related event says it is still waiting
/// (a later `slot_granted`, `dispatched` or status change means it is not).
fn awaiting_slot(events: &[EventLine]) -> Option<AwaitingSlot> {
    let last = events.iter().rev().find(|e| {
        matches!(
            e.event_type.as_str(),
            "session.awaiting_slot"
                | "session.slot_granted"
                | "session.dispatched"
                | "session.status_changed"
        )
    })?;
    if last.event_type != "session.awaiting_slot" {
        return None;
    }
    // The line's payload as shown in the log: short enough not to be cut (or it does not parse).
    let payload: serde_json::Value = serde_json::from_str(&last.payload).ok()?;
    match SessionLogEvent::parse(&last.event_type, &payload)? {
        SessionLogEvent::AwaitingSlot(slot) => Some(AwaitingSlot {
            pool: slot.pool,
            position: slot.position,
            limit: u64::from(slot.limit),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod awaiting_slot_tests {
    use super::*;

    fn line(seq: u64, event_type: &str, payload: &str) -> EventLine {
        EventLine {
            seq,
            event_type: event_type.into(),
            payload: payload.into(),
            occurred_at: DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn the_latest_wait_is_shown_with_its_position_until_the_slot_is_granted() {
        let mut events = vec![
            line(1, "session.status_changed", "{}"),
            line(
                2,
                "session.awaiting_slot",
                r#"{"pool":"fake/fake-coder","position":3,"limit":2,"in_use":2}"#,
            ),
            line(
                3,
                "session.awaiting_slot",
                r#"{"pool":"fake/fake-coder","position":1,"limit":2,"in_use":2}"#,
            ),
        ];
        let slot = awaiting_slot(&events).unwrap();
        assert_eq!(slot.position, 1);
        assert_eq!(
            slot.describe(),
            " · awaiting slot #1 in fake/fake-coder (limit 2)"
        );
        events.push(line(4, "session.slot_granted", "{}"));
        assert_eq!(awaiting_slot(&events), None);
        assert_eq!(awaiting_slot(&[]), None);
        assert_eq!(
            awaiting_slot(&[line(1, "session.awaiting_slot", "not json")]),
            None
        );
    }
}
