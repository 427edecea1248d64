//! `/`: the fleet, sessions by status, the last 24 hours as a server-drawn SVG chart, recent
//! failures, then the newest sessions.

use leptos::prelude::*;

use super::common::{fmt_cost, fmt_opt_time, ErrorBox, SectionTitle, StatusCell};
use super::Dashboard;
use crate::api::{
    get_guardrails, get_overview, FleetStatus, GuardrailsView, HourBucket, SessionStats,
};

#[component]
pub fn Overview() -> impl IntoView {
    let overview = Resource::new(|| (), |_| get_overview());
    let guardrails = Resource::new(|| (), |_| get_guardrails());
    view! {
        <h1 class="text-2xl font-bold mb-2">"OVERVIEW"</h1>
        <Suspense fallback=|| view! { <p>"loading…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(o) => {
                        view! {
                            <FleetTable fleet=o.fleet />
                            <StatusCounts stats=o.stats.clone() />
                            <Throughput hours=o.stats.hours.clone() />
                            <RecentFailures stats=o.stats />
                        }
                            .into_any()
                    }
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                }
            })}
        </Suspense>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                guardrails.await.ok().map(|g| view! { <GuardrailsPanel guardrails=g /> })
            })}
        </Suspense>
        <div class="mt-8">
            <Dashboard />
        </div>
    }
}

/// The OpenCode servers and the dispatch queue (also used by the status wall).
#[component]
pub fn FleetTable(fleet: FleetStatus) -> impl IntoView {
    let queue = match (fleet.queue, fleet.queue_error) {
        (Some(q), _) => format!(
            "queue: {} waiting · {} leased · {} expired",
            q.waiting, q.leased, q.expired
        ),
        (None, Some(e)) => format!("queue: unavailable ({e})"),
        (None, None) => "queue: -".into(),
    };
    let body = if fleet.servers.is_empty() {
        view! {
            <p data-testid="fleet-empty" class="border-2 border-dashed border-ink p-2">
                "NO OPENCODE SERVER CONFIGURED."
            </p>
        }
        .into_any()
    } else {
        let rows = fleet
            .servers
            .into_iter()
            .map(|s| {
                let down = !s.healthy || s.breaker != "closed";
                view! {
                    <tr data-testid="fleet-row">
                        <td>{s.name}</td>
                        <td class:text-alert=!s.healthy class:font-bold=!s.healthy>
                            {if s.healthy { "yes" } else { "NO" }}
                        </td>
                        <td class:text-alert=down>{s.breaker}</td>
                        <td>{format!("{}/{}", s.in_flight, s.capacity)}</td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <table data-testid="fleet-table">
                <thead>
                    <tr>
                        <th>"server"</th>
                        <th>"healthy"</th>
                        <th>"breaker"</th>
                        <th>"load/capacity"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        }
        .into_any()
    };
    view! {
        <SectionTitle text="FLEET" />
        {body}
        <p data-testid="queue" class="mt-1">{queue}</p>
    }
}

/// A cap as shown: the figure, or "no cap".
fn cap(value: Option<u64>, show: impl Fn(u64) -> String) -> String {
    value.map(show).unwrap_or_else(|| "no cap".into())
}

/// The configured budgets (tokens and $ per session, task tree and agent) and runaway limits.
#[component]
pub fn GuardrailsPanel(guardrails: GuardrailsView) -> impl IntoView {
    let window = guardrails.agent_window_hours;
    let rows = [
        (
            "session",
            "every attempt of one session".to_owned(),
            guardrails.session,
        ),
        (
            "task tree",
            "every session of a tree (default cap)".to_owned(),
            guardrails.task_tree,
        ),
        (
            "agent",
            format!("an agent's sessions of the last {window} h"),
            guardrails.agent,
        ),
    ]
    .into_iter()
    .map(|(scope, covers, budget)| {
        view! {
            <tr data-testid="budget-row" data-scope=scope>
                <td class="font-bold">{scope}</td>
                <td>{cap(budget.max_tokens, |t| t.to_string())}</td>
                <td>{cap(budget.max_cost_micro_usd, |c| format!("${}", fmt_cost(c)))}</td>
                <td class="text-dim">{covers}</td>
            </tr>
        }
    })
    .collect_view();
    let r = guardrails.runaway;
    let limit = |v: Option<u64>| cap(v, |n| n.to_string());
    let runaway = format!(
        "runaway guard per attempt: steps {} · tool calls {} · wall time {} · same failing tool call {}",
        limit(r.max_steps.map(u64::from)),
        limit(r.max_tool_calls.map(u64::from)),
        cap(r.max_wall_time_secs, |s| format!("{s}s")),
        cap(r.max_repeated_failures.map(u64::from), |n| format!("{n}×")),
    );
    view! {
        <SectionTitle text="GUARDRAILS" />
        <table data-testid="guardrails">
            <thead>
                <tr>
                    <th>"budget"</th>
                    <th>"max tokens"</th>
                    <th>"max cost $"</th>
                    <th>"covers"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <p data-testid="runaway-limits" class="mt-1">{runaway}</p>
    }
}

#[component]
fn StatusCounts(stats: SessionStats) -> impl IntoView {
    let rows = stats
        .counts
        .into_iter()
        .map(|c| {
            let status = c.status.as_str();
            let count = c.count.to_string();
            view! {
                <tr data-testid="status-count" data-status=status>
                    <td>
                        <a href=format!("/sessions?status={status}")>{status}</a>
                    </td>
                    <td class:text-alert=(super::common::is_failure(status) && c.count > 0)>
                        {count}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <SectionTitle text="BY STATUS" />
        <table data-testid="status-counts">
            <thead>
                <tr>
                    <th>"status"</th>
                    <th>"count"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

const BAR_W: u32 = 20;
const CHART_H: u32 = 60;

/// Bars scaled to the largest value; `alert` parts (failures) drawn in the alert colour on top.
fn bars(values: &[(u64, u64)]) -> impl IntoView {
    let max = values.iter().map(|(v, _)| *v).max().unwrap_or(0).max(1);
    values
        .iter()
        .enumerate()
        .map(|(i, (value, alert))| {
            let h = (*value * u64::from(CHART_H)).div_ceil(max) as u32;
            let a = (*alert * u64::from(CHART_H)).div_ceil(max) as u32;
            let x = i as u32 * BAR_W;
            view! {
                <rect
                    x=x.to_string()
                    y=(CHART_H - h).to_string()
                    width=(BAR_W - 2).to_string()
                    height=h.to_string()
                    fill="#000"
                />
                <rect
                    x=x.to_string()
                    y=(CHART_H - a).to_string()
                    width=(BAR_W - 2).to_string()
                    height=a.to_string()
                    fill="#d40000"
                />
            }
        })
        .collect_view()
}

#[component]
fn Throughput(hours: Vec<HourBucket>) -> impl IntoView {
    let width = (hours.len() as u32 * BAR_W).max(BAR_W);
    let finished: u64 = hours.iter().map(|h| u64::from(h.finished)).sum();
    let failed: u64 = hours.iter().map(|h| u64::from(h.failed)).sum();
    let cost: u64 = hours.iter().map(|h| h.cost_micro_usd).sum();
    let counts: Vec<(u64, u64)> = hours
        .iter()
        .map(|h| (u64::from(h.finished), u64::from(h.failed)))
        .collect();
    let costs: Vec<(u64, u64)> = hours.iter().map(|h| (h.cost_micro_usd, 0)).collect();
    let first = hours
        .first()
        .map(|h| h.start.format("%H:00").to_string())
        .unwrap_or_default();
    let view_box = format!("0 0 {width} {CHART_H}");
    view! {
        <SectionTitle text="LAST 24 H" />
        <p data-testid="throughput-totals">
            {format!(
                "{finished} finished ({failed} failed) · ${} · hourly from {first} utc",
                fmt_cost(cost),
            )}
        </p>
        <div class="flex flex-wrap gap-6">
            <figure>
                <svg
                    data-testid="throughput-chart"
                    viewBox=view_box.clone()
                    width=width.to_string()
                    height=CHART_H.to_string()
                    role="img"
                    aria-label="sessions finished per hour, last 24 hours"
                    class="border border-ink"
                >
                    {bars(&counts)}
                </svg>
                <figcaption class="text-sm">"finished / hour (red: failed)"</figcaption>
            </figure>
            <figure>
                <svg
                    data-testid="cost-chart"
                    viewBox=view_box
                    width=width.to_string()
                    height=CHART_H.to_string()
                    role="img"
                    aria-label="cost per hour, last 24 hours"
                    class="border border-ink"
                >
                    {bars(&costs)}
                </svg>
                <figcaption class="text-sm">"cost $ / hour"</figcaption>
            </figure>
        </div>
    }
}

#[component]
fn RecentFailures(stats: SessionStats) -> impl IntoView {
    let body = if stats.recent_failures.is_empty() {
        view! { <p data-testid="no-failures">"NO FAILURES."</p> }.into_any()
    } else {
        let rows = stats
            .recent_failures
            .into_iter()
            .map(|s| {
                let id = s.id().to_string();
                view! {
                    <tr data-testid="failure-row">
                        <td>
                            <a href=format!("/sessions/{id}")>{id.chars().take(8).collect::<String>()}</a>
                        </td>
                        <td>{s.title().as_str().to_owned()}</td>
                        <StatusCell status=s.status().as_str() />
                        <td data-testid="failure-stop-code" class="font-bold">
                            {s.stop_reason().map(|r| r.code()).unwrap_or("-")}
                        </td>
                        <td>{fmt_opt_time(s.finished_at())}</td>
                        <td class="text-alert">{s.last_error().unwrap_or("-").to_owned()}</td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <table data-testid="recent-failures">
                <thead>
                    <tr>
                        <th>"id"</th>
                        <th>"title"</th>
                        <th>"status"</th>
                        <th>"stopped by"</th>
                        <th>"finished"</th>
                        <th>"error"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        }
        .into_any()
    };
    view! {
        <SectionTitle text="RECENT FAILURES" />
        {body}
    }
}
