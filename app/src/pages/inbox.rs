//! `/inbox`: the human-in-the-loop inbox — every permission request and question the agents
//! raised, across servers and sessions. Open items first (escalated ones highlighted), each with
//! its answer form; then the latest resolved ones. Hydrated, the page polls every 2 s and
//! re-renders only when the items changed (so a half-typed answer is not wiped).
//!
//! Everything an agent wrote (patterns, questions, options) is untrusted: text nodes and
//! attribute values only, which Leptos escapes.

use chrono::{DateTime, Utc};
use domain::{InboxAnswer, InboxItem, InboxKind, InboxQuestion, InboxStatus};
use leptos::prelude::*;

use super::common::{fmt_time, CsrfField, ErrorBox, SectionTitle};
use crate::api::{fmt_age, list_inbox, AnswerInbox, InboxView};

/// How often the hydrated page looks for new or changed items.
pub const INBOX_POLL_SECS: u64 = 2;

/// What identifies the state of the list: the items and their statuses.
fn fingerprint(view: &InboxView) -> Vec<(String, InboxStatus)> {
    view.open
        .iter()
        .chain(&view.resolved)
        .map(|item| (item.id.to_string(), item.status))
        .collect()
}

#[component]
pub fn Inbox() -> impl IntoView {
    let answer = ServerAction::<AnswerInbox>::new();
    // Bumped when a poll sees the items change: the list is read again and re-rendered.
    let reloads = RwSignal::new(0u32);
    let inbox = Resource::new(
        move || (answer.version().get(), reloads.get()),
        |_| list_inbox(),
    );
    // The fingerprint of what is on screen.
    let shown = StoredValue::new(None::<Vec<(String, InboxStatus)>>);

    #[cfg(feature = "hydrate")]
    {
        let busy = StoredValue::new(false);
        if let Ok(handle) = set_interval_with_handle(
            move || {
                if busy.get_value() {
                    return;
                }
                busy.set_value(true);
                leptos::task::spawn_local(async move {
                    if let Ok(view) = list_inbox().await {
                        let now = Some(fingerprint(&view));
                        if shown.get_value() != now {
                            reloads.update(|n| *n += 1);
                        }
                    }
                    busy.set_value(false);
                });
            },
            std::time::Duration::from_secs(INBOX_POLL_SECS),
        ) {
            on_cleanup(move || handle.clear());
        }
    }

    let outcome = move || {
        answer.value().get().map(|result| match result {
            Ok(message) => view! {
                <p data-testid="answer-ok" class="border-2 border-ink p-2 font-bold">
                    {message}
                </p>
            }
            .into_any(),
            Err(e) => view! {
                <p data-testid="answer-error" class="border-2 border-alert text-alert font-bold p-2">
                    "ANSWER FAILED: "
                    {e.to_string()}
                </p>
            }
            .into_any(),
        })
    };

    view! {
        <h1 class="text-2xl font-bold mb-1">"INBOX"</h1>
        <p class="text-dim text-sm mb-2">
            {format!(
                "what the agents ask, across every server and session · live (checked every {INBOX_POLL_SECS} s)"
            )}
        </p>
        {outcome}
        <Transition fallback=|| view! { <p>"loading inbox…"</p> }>
            {move || Suspend::new(async move {
                match inbox.await {
                    Ok(view) => {
                        shown.set_value(Some(fingerprint(&view)));
                        view! { <Items view answer /> }.into_any()
                    }
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Items(view: InboxView, answer: ServerAction<AnswerInbox>) -> impl IntoView {
    let now = view.at;
    let open_count = view.open.len();
    let escalated = view
        .open
        .iter()
        .filter(|i| i.status == InboxStatus::Escalated)
        .count();
    let open = if view.open.is_empty() {
        view! {
            <p data-testid="inbox-empty" class="border-2 border-dashed border-ink p-4">
                "NOTHING WAITS FOR AN ANSWER."
            </p>
        }
        .into_any()
    } else {
        view.open
            .into_iter()
            .map(|item| view! { <Item item now answer /> })
            .collect_view()
            .into_any()
    };
    let resolved = if view.resolved.is_empty() {
        view! { <p data-testid="resolved-empty">"NONE YET."</p> }.into_any()
    } else {
        view.resolved
            .into_iter()
            .map(|item| view! { <Item item now answer /> })
            .collect_view()
            .into_any()
    };
    view! {
        <SectionTitle text=format!("OPEN · {open_count}") />
        <p data-testid="inbox-open-count" class="mb-2">
            {format!("{open_count} open")}
            {(escalated > 0)
                .then(|| {
                    view! {
                        <span class="text-alert font-bold">
                            {format!(" · {escalated} ESCALATED")}
                        </span>
                    }
                })}
        </p>
        <div data-testid="inbox-open">{open}</div>
        <SectionTitle text="RECENTLY RESOLVED" />
        <div data-testid="inbox-resolved">{resolved}</div>
    }
}

#[component]
fn Item(item: InboxItem, now: DateTime<Utc>, answer: ServerAction<AnswerInbox>) -> impl IntoView {
    let id = item.id.to_string();
    let status = item.status;
    let escalated = status == InboxStatus::Escalated;
    let open = item.is_open();
    let kind = item.kind.name();
    let session = match item.session {
        Some(session) => {
            let full = session.to_string();
            let short: String = full.chars().take(8).collect();
            view! {
                <a data-testid="inbox-session" href=format!("/sessions/{full}") title=full.clone()>
                    {short}
                </a>
            }
            .into_any()
        }
        None => view! {
            <span data-testid="inbox-session" class="text-dim" title="not one of our sessions">
                {item.remote_session.clone()}
            </span>
        }
        .into_any(),
    };
    let body = match item.kind.clone() {
        InboxKind::Permission {
            permission,
            patterns,
            always,
        } => view! { <PermissionBody permission patterns always /> }.into_any(),
        InboxKind::Question { questions } => view! { <QuestionsBody questions /> }.into_any(),
    };
    let form = open.then(|| match &item.kind {
        InboxKind::Permission { .. } => {
            view! { <PermissionForm id=id.clone() answer /> }.into_any()
        }
        InboxKind::Question { questions } => {
            view! { <QuestionForm id=id.clone() questions=questions.clone() answer /> }.into_any()
        }
    });
    let closed = (!open).then(|| view! { <Resolution item=item.clone() /> });
    view! {
        <article
            data-testid="inbox-item"
            data-item-id=id.clone()
            data-status=status.as_str()
            data-kind=kind
            class="border-2 p-2 mb-2"
            class:border-alert=escalated
            class:border-4=escalated
            class:border-ink=!escalated
            class:text-dim=!open
        >
            <header class="flex flex-wrap items-baseline gap-x-4 font-bold">
                <span
                    data-testid="inbox-status"
                    class:bg-alert=escalated
                    class:text-paper=escalated
                    class:px-1=escalated
                >
                    {status.as_str().to_uppercase()}
                </span>
                <span data-testid="inbox-kind">{kind.to_uppercase()}</span>
                <span data-testid="inbox-age" title=fmt_time(item.created_at)>
                    {format!("asked {} ago", fmt_age(item.created_at, now))}
                </span>
                <span>"session " {session}</span>
                <span class="font-normal text-dim">"server " {item.server.clone()}</span>
            </header>
            {body}
            {form}
            {closed}
        </article>
    }
}

#[component]
fn PermissionBody(permission: String, patterns: Vec<String>, always: Vec<String>) -> impl IntoView {
    let list = |items: Vec<String>| {
        if items.is_empty() {
            view! { <span class="text-dim">"-"</span> }.into_any()
        } else {
            items
                .into_iter()
                .map(|p| view! { <code class="border border-ink px-1 mr-1 break-all">{p}</code> })
                .collect_view()
                .into_any()
        }
    };
    view! {
        <p class="mt-1">
            "wants permission "
            <code data-testid="inbox-permission" class="font-bold">
                {permission}
            </code>
            " on "
            <span data-testid="inbox-patterns">{list(patterns)}</span>
        </p>
        <p class="text-sm">"“always” would allow from now on: " {list(always)}</p>
    }
}

#[component]
fn QuestionsBody(questions: Vec<InboxQuestion>) -> impl IntoView {
    questions
        .into_iter()
        .map(|q| {
            let mode = match (q.multiple, q.custom) {
                (true, true) => "one or more, or free text",
                (true, false) => "one or more",
                (false, true) => "one, or free text",
                (false, false) => "one",
            };
            let options = q
                .options
                .into_iter()
                .map(|o| {
                    view! {
                        <li>
                            <span class="font-bold">{o.label}</span>
                            {(!o.description.is_empty()).then(|| format!(" — {}", o.description))}
                        </li>
                    }
                })
                .collect_view();
            view! {
                <div data-testid="inbox-question" class="mt-1">
                    <p>
                        <span class="font-bold">{q.header}</span>
                        " "
                        {q.question}
                        <span class="text-dim text-sm">{format!(" (choose {mode})")}</span>
                    </p>
                    <ul class="list-none pl-4">{options}</ul>
                </div>
            }
        })
        .collect_view()
}

const BUTTON: &str = "px-2 border-2 border-ink font-bold";

#[component]
fn PermissionForm(id: String, answer: ServerAction<AnswerInbox>) -> impl IntoView {
    let message_id = format!("message-{id}");
    view! {
        <div class="mt-2">
            <ActionForm action=answer>
                <CsrfField />
                <input type="hidden" name="id" value=id.clone() />
                <div class="flex flex-wrap items-center gap-2">
                    <label for=message_id.clone()>"message (optional)"</label>
                    <input
                        id=message_id
                        name="message"
                        maxlength="2000"
                        placeholder="a note for the agent"
                        class="border-2 border-ink px-1 min-w-64"
                    />
                    <button
                        type="submit"
                        name="reply"
                        value="once"
                        data-testid="reply-once"
                        class=BUTTON
                    >
                        "[ ALLOW ONCE ]"
                    </button>
                    <button
                        type="submit"
                        name="reply"
                        value="always"
                        data-testid="reply-always"
                        class=BUTTON
                    >
                        "[ ALLOW ALWAYS ]"
                    </button>
                    <button
                        type="submit"
                        name="reply"
                        value="reject"
                        data-testid="reply-reject"
                        class="px-2 border-2 border-alert text-alert font-bold"
                    >
                        "[ REJECT ]"
                    </button>
                </div>
            </ActionForm>
        </div>
    }
}

#[component]
fn QuestionForm(
    id: String,
    questions: Vec<InboxQuestion>,
    answer: ServerAction<AnswerInbox>,
) -> impl IntoView {
    let count = questions.len();
    let fields = questions
        .into_iter()
        .enumerate()
        .map(|(qi, q)| {
            let choices = q
                .options
                .into_iter()
                .enumerate()
                .map(|(oi, o)| {
                    let (kind, name) = if q.multiple {
                        ("checkbox", format!("choice[q{qi}o{oi}]"))
                    } else {
                        ("radio", format!("choice[q{qi}]"))
                    };
                    view! {
                        <label class="mr-3 whitespace-nowrap">
                            <input
                                type=kind
                                name=name
                                value=o.label.clone()
                                data-testid="inbox-choice"
                            />
                            " "
                            {o.label}
                        </label>
                    }
                })
                .collect_view();
            let custom = q.custom.then(|| {
                view! {
                    <input
                        name=format!("custom[q{qi}]")
                        placeholder="or type an answer"
                        data-testid="inbox-custom"
                        class="border-2 border-ink px-1"
                    />
                }
            });
            view! {
                <fieldset class="border border-ink p-1 mb-1">
                    <legend class="font-bold px-1">{q.header}</legend>
                    {choices}
                    {custom}
                </fieldset>
            }
        })
        .collect_view();
    view! {
        <div class="mt-2">
            <ActionForm action=answer>
                <CsrfField />
                <input type="hidden" name="id" value=id />
                <input type="hidden" name="questions" value=count.to_string() />
                {fields}
                <div class="flex flex-wrap gap-2">
                    <button type="submit" data-testid="answer-question" class=BUTTON>
                        "[ ANSWER ]"
                    </button>
                    <button
                        type="submit"
                        name="reply"
                        value="reject"
                        data-testid="reject-question"
                        class="px-2 border-2 border-alert text-alert font-bold"
                    >
                        "[ REJECT ]"
                    </button>
                </div>
            </ActionForm>
        </div>
    }
}

/// How a closed item ended: the answer, who gave it and when; or that it expired.
#[component]
fn Resolution(item: InboxItem) -> impl IntoView {
    let when = item.resolved_at.map(fmt_time).unwrap_or_else(|| "-".into());
    let text = match &item.resolution {
        Some(resolution) => {
            let what = match &resolution.answer {
                InboxAnswer::Permission { reply, message } => match message {
                    Some(message) => format!("{reply} (“{message}”)"),
                    None => reply.to_string(),
                },
                InboxAnswer::Question { answers } => answers
                    .iter()
                    .map(|labels| labels.join(" + "))
                    .collect::<Vec<_>>()
                    .join(" / "),
                InboxAnswer::QuestionRejected => "rejected".into(),
            };
            format!("answered: {what} · by {} · {when} utc", resolution.by)
        }
        None => format!("expired (settled elsewhere, or the session ended) · {when} utc"),
    };
    view! {
        <p data-testid="inbox-resolution" class="mt-1 font-bold">
            {text}
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_changes_with_the_items_and_their_status_only() {
        let item = InboxItem::new(
            "00000000-0000-0000-0000-000000000000".parse().unwrap(),
            domain::InboxRequest {
                server: "s".into(),
                remote_session: "ses".into(),
                directory: None,
                session: None,
                request_id: "per".into(),
                kind: InboxKind::Permission {
                    permission: "edit".into(),
                    patterns: vec![],
                    always: vec![],
                },
            },
            DateTime::from_timestamp(1_764_000_000, 0).unwrap(),
        );
        let mut view = InboxView {
            open: vec![item.clone()],
            resolved: vec![],
            at: DateTime::from_timestamp(1_764_000_000, 0).unwrap(),
        };
        let before = fingerprint(&view);
        view.at += chrono::Duration::seconds(5);
        assert_eq!(fingerprint(&view), before);
        view.open[0].status = InboxStatus::Escalated;
        assert_ne!(fingerprint(&view), before);
    }
}
