//! The dashboard: the newest sessions, filterable by status.
//!
//! Readable without JavaScript (the route renders fully on the server and the filter is a plain GET
//! form); once hydrated, REFRESH re-asks the server function without a page load.

use domain::{Cursor, Session};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::common::StatusOptions;
use crate::api::list_sessions;

#[component]
pub fn Dashboard() -> impl IntoView {
    let query = use_query_map();
    let status_filter = move || query.read().get("status");
    let after = move || query.read().get("after");
    let (refreshes, set_refreshes) = signal(0u32);
    let sessions = Resource::new(
        move || (status_filter(), after(), refreshes.get()),
        |(status, after, _)| list_sessions(status, None, after, None),
    );

    // Effects never run during server rendering: this flips only once the WASM has hydrated.
    let (mode, set_mode) = signal("ssr");
    Effect::new(move |_| set_mode.set("live"));

    view! {
        <section class="flex flex-col gap-4">
            <div class="flex flex-wrap items-center gap-4 border-2 border-ink p-2">
                <h1 class="text-xl font-bold">"SESSIONS"</h1>
                <span data-testid="render-mode" class="px-1 border border-ink">
                    "mode: "
                    {mode}
                </span>
                <button
                    data-testid="refresh"
                    class="px-2 border-2 border-ink bg-ink text-paper font-bold hover:bg-paper hover:text-ink"
                    on:click=move |_| set_refreshes.update(|n| *n += 1)
                >
                    "[ REFRESH ]"
                </button>
                <span data-testid="refresh-count" class="text-dim">
                    {move || {
                        let n = refreshes.get();
                        format!("{n} refresh{}", if n == 1 { "" } else { "es" })
                    }}
                </span>
                <StatusFilter selected=query.read_untracked().get("status") />
            </div>
            <Transition fallback=|| view! { <p>"loading sessions…"</p> }>
                {move || {
                    sessions
                        .get()
                        .map(|result| match result {
                            Ok(page) => {
                                view! {
                                    <SessionTable sessions=page.items />
                                    <NextPage next=page.next status=status_filter() />
                                }
                                    .into_any()
                            }
                            Err(e) => {
                                view! {
                                    <p data-testid="list-error" class="text-alert font-bold">
                                        "ERROR: "
                                        {e.to_string()}
                                    </p>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
        </section>
    }
}

/// A plain GET form, so filtering works with or without JavaScript.
#[component]
fn StatusFilter(selected: Option<String>) -> impl IntoView {
    view! {
        <form method="get" action="/" class="flex items-center gap-2 ml-auto">
            <label for="status-filter">"status"</label>
            <select id="status-filter" name="status" class="border-2 border-ink px-1 bg-paper">
                <StatusOptions selected=selected />
            </select>
            <button type="submit" class="px-2 border-2 border-ink font-bold">
                "FILTER"
            </button>
        </form>
    }
}

/// Keyset pagination: a plain link to the page after the last row shown.
#[component]
fn NextPage(next: Option<Cursor>, status: Option<String>) -> impl IntoView {
    next.map(|cursor| {
        let mut href = format!("/?after={cursor}");
        if let Some(status) = status {
            href.push_str("&status=");
            href.push_str(&status);
        }
        view! {
            <a data-testid="next-page" href=href class="self-start font-bold">
                "NEXT PAGE →"
            </a>
        }
    })
}

#[component]
pub(crate) fn SessionTable(sessions: Vec<Session>) -> impl IntoView {
    if sessions.is_empty() {
        return view! {
            <p data-testid="sessions-empty" class="border-2 border-dashed border-ink p-4">
                "NO SESSIONS RECORDED."
            </p>
        }
        .into_any();
    }
    let count = sessions.len();
    let rows = sessions
        .into_iter()
        .map(|s| view! { <SessionRow session=s /> })
        .collect_view();
    view! {
        <p data-testid="sessions-count">{format!("{count} session(s)")}</p>
        <table data-testid="sessions-table" class="w-full">
            <thead>
                <tr>
                    <th scope="col">"id"</th>
                    <th scope="col">"title"</th>
                    <th scope="col">"status"</th>
                    <th scope="col">"agent"</th>
                    <th scope="col">"attempt"</th>
                    <th scope="col">"tokens"</th>
                    <th scope="col">"cost $"</th>
                    <th scope="col">"created (utc)"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

#[component]
fn SessionRow(session: Session) -> impl IntoView {
    let status = session.status();
    let alert = status.is_failure();
    let id = session.id().to_string();
    let short_id: String = id.chars().take(8).collect();
    let metrics = session.metrics();
    view! {
        <tr data-testid="session-row" data-status=status.as_str()>
            <td title=id.clone()>
                <a href=format!("/sessions/{id}")>{short_id}</a>
            </td>
            // Titles can come from agents or users: text nodes, so Leptos escapes them.
            <td>{session.title().as_str().to_owned()}</td>
            <td class:text-alert=alert class:font-bold=alert>
                {status.as_str()}
                // A guardrail stop shows its code: "failed · budget_exceeded".
                {session
                    .stop_reason()
                    .map(|r| {
                        view! {
                            <span data-testid="row-stop-code">{format!(" · {}", r.code())}</span>
                        }
                    })}
            </td>
            <td>{session.agent().map(|a| a.as_str().to_owned()).unwrap_or_else(|| "-".into())}</td>
            <td>{format!("{}/{}", session.attempt(), session.max_attempts())}</td>
            <td>{metrics.total_tokens()}</td>
            <td>{format!("{:.4}", metrics.cost_usd())}</td>
            <td>{session.created_at().format("%Y-%m-%d %H:%M:%S").to_string()}</td>
        </tr>
    }
}
