//! `/sessions`: every session, filterable by status and agent (a plain GET form), one keyset page
//! at a time (the NEXT link carries the cursor).

use domain::Cursor;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::common::{ErrorBox, StatusOptions};
use super::dashboard::SessionTable;
use crate::api::{encode_component, list_sessions};

#[component]
pub fn Sessions() -> impl IntoView {
    let query = use_query_map();
    let params = move || {
        let q = query.read();
        (
            q.get("status"),
            q.get("agent"),
            q.get("after"),
            // A limit that is not a number is ignored (the default page size applies).
            q.get("limit").and_then(|l| l.parse::<u32>().ok()),
        )
    };
    let sessions = Resource::new(params, |(status, agent, after, limit)| {
        list_sessions(status, limit, after, agent)
    });
    let (status, agent, limit) = {
        let q = query.read_untracked();
        (
            q.get("status"),
            q.get("agent"),
            q.get("limit").and_then(|l| l.parse::<u32>().ok()),
        )
    };
    view! {
        <h1 class="text-2xl font-bold mb-2">"ALL SESSIONS"</h1>
        <Filter status=status.clone() agent=agent.clone() />
        <Suspense fallback=|| view! { <p>"loading…"</p> }>
            {move || {
                let status = status.clone();
                let agent = agent.clone();
                Suspend::new(async move {
                    match sessions.await {
                        Ok(page) => {
                            view! {
                                <SessionTable sessions=page.items />
                                <Next next=page.next status agent limit />
                            }
                                .into_any()
                        }
                        Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

#[component]
fn Filter(status: Option<String>, agent: Option<String>) -> impl IntoView {
    view! {
        <form method="get" action="/sessions" class="flex flex-wrap items-center gap-2 border-2 border-ink p-2 mb-2">
            <label for="filter-status">"status"</label>
            <select id="filter-status" name="status" class="border-2 border-ink px-1 bg-paper">
                <StatusOptions selected=status />
            </select>
            <label for="filter-agent">"agent"</label>
            <input
                id="filter-agent"
                name="agent"
                value=agent.unwrap_or_default()
                placeholder="any"
                class="border-2 border-ink px-1"
            />
            <button type="submit" data-testid="filter" class="px-2 border-2 border-ink font-bold">
                "FILTER"
            </button>
        </form>
    }
}

#[component]
fn Next(
    next: Option<Cursor>,
    status: Option<String>,
    agent: Option<String>,
    limit: Option<u32>,
) -> impl IntoView {
    next.map(|cursor| {
        let mut href = format!("/sessions?after={}", encode_component(&cursor.to_string()));
        if let Some(limit) = limit {
            href.push_str(&format!("&limit={limit}"));
        }
        for (key, value) in [("status", status), ("agent", agent)] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                href.push_str(&format!("&{key}={}", encode_component(&value)));
            }
        }
        view! {
            <a data-testid="next-page" href=href class="font-bold">
                "NEXT PAGE →"
            </a>
        }
    })
}
