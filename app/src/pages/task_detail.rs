//! `/tasks/:id`: the decomposition tree as an indented table — status, capabilities, the agent
//! routing chose with its score and full explanation, the execution note and the sessions.
//! Hydrated, it re-reads the tree every 2 s while the root runs.

use std::collections::BTreeMap;

use domain::{Task, TaskId, TaskStatus};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use super::common::{fmt_cost, fmt_time, ErrorBox, SectionTitle, StatusCell};
use super::NotFound;
use crate::api::{get_task_tree, get_tree_budget, TreeBudgetView};

#[component]
pub fn TaskDetailPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let ticks = RwSignal::new(0u32);
    let tree = Resource::new(move || (id(), ticks.get()), |(id, _)| get_task_tree(id));
    // Whether the root is running, as last loaded (drives the hydrated app's polling).
    let running = RwSignal::new(false);

    #[cfg(feature = "hydrate")]
    {
        if let Ok(handle) = set_interval_with_handle(
            move || {
                if running.get_untracked() {
                    ticks.update(|n| *n += 1);
                }
            },
            std::time::Duration::from_secs(2),
        ) {
            on_cleanup(move || handle.clear());
        }
    }

    view! {
        <Transition fallback=|| view! { <p>"loading task…"</p> }>
            {move || Suspend::new(async move {
                let loaded = tree.await;
                running.set(matches!(
                    &loaded,
                    Ok(Some(tasks)) if tasks.first().is_some_and(|t| t.status() == TaskStatus::Running)
                ));
                match loaded {
                    Ok(Some(tasks)) if !tasks.is_empty() => {
                        view! { <Tree tasks /> }.into_any()
                    }
                    Ok(_) => view! { <NotFound /> }.into_any(),
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Depth of every task below the root (tasks come parents first).
fn depths(tasks: &[Task]) -> BTreeMap<TaskId, usize> {
    let mut out = BTreeMap::new();
    for t in tasks {
        let depth = t
            .parent()
            .and_then(|p| out.get(&p).copied())
            .map_or(0, |d: usize| d + 1);
        out.insert(t.id(), depth);
    }
    out
}

#[component]
fn Tree(tasks: Vec<Task>) -> impl IntoView {
    let root = tasks[0].clone();
    let depth = depths(&tasks);
    let titles: BTreeMap<TaskId, String> = tasks
        .iter()
        .map(|t| (t.id(), t.title().as_str().to_owned()))
        .collect();
    let run = root.execution().run.clone().map(|run| {
        format!(
            "workspace {} · max parallel {} · policy {} · started {}{}",
            run.workspace,
            run.max_parallel,
            run.policy.name(),
            fmt_time(run.started_at),
            run.cancel_requested
                .map(|r| format!(" · cancel requested: {r}"))
                .unwrap_or_default(),
        )
    });
    let rows = tasks
        .iter()
        .map(|t| {
            let d = depth.get(&t.id()).copied().unwrap_or(0);
            let indent = format!("{}{}", "│  ".repeat(d.saturating_sub(1)), if d > 0 { "├─ " } else { "" });
            let caps = t
                .required_capabilities()
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let after = t
                .dependencies()
                .iter()
                .filter_map(|dep| titles.get(dep).cloned())
                .collect::<Vec<_>>()
                .join("; ");
            let (agent, explanation) = match t.assignment() {
                Some(a) => (
                    format!("{} ({:.3})", a.agent, f64::from(a.score_milli) / 1000.0),
                    Some(a.explanation.clone()),
                ),
                None => ("-".to_owned(), None),
            };
            let exec = t.execution();
            let sessions = exec
                .sessions
                .iter()
                .map(|s| {
                    let short: String = s.to_string().chars().take(8).collect();
                    view! {
                        <a data-testid="task-session" href=format!("/sessions/{s}")>
                            {short}
                        </a>
                        " "
                    }
                })
                .collect_view();
            let result = exec.result.as_ref().map(|r| {
                format!(
                    "commit {} · files {}{}",
                    r.commit.clone().unwrap_or_else(|| "-".into()),
                    r.files.join(", "),
                    if r.summary.is_empty() { String::new() } else { format!(" · {}", r.summary) },
                )
            });
            view! {
                <tr data-testid="task-node" data-status=t.status().as_str() data-depth=d.to_string()>
                    <td class="whitespace-pre">
                        {indent}
                        <span class:font-bold=d == 0>{t.title().as_str().to_owned()}</span>
                    </td>
                    <StatusCell status=t.status().as_str() />
                    <td>{caps}</td>
                    <td data-testid="task-agent">{agent}</td>
                    <td>{after}</td>
                    <td>{sessions}</td>
                    <td>
                        {exec
                            .note
                            .clone()
                            .map(|n| view! { <span data-testid="task-note">{n}</span> })}
                        {result.map(|r| view! { <span class="block">{r}</span> })}
                    </td>
                </tr>
                {explanation
                    .map(|e| {
                        view! {
                            <tr data-testid="routing-row">
                                <td></td>
                                <td colspan="6">
                                    <pre data-testid="routing-explanation" class="text-sm">
                                        {e}
                                    </pre>
                                </td>
                            </tr>
                        }
                    })}
            }
        })
        .collect_view();
    view! {
        <h1 class="text-2xl font-bold">
            "TASK "
            <span data-testid="task-title">{root.title().as_str().to_owned()}</span>
        </h1>
        <p>
            "status: "
            <span data-testid="task-status" class:text-alert=root.status() == TaskStatus::Failed>
                {root.status().as_str()}
            </span>
            {format!(" · {} task(s) · created {}", tasks.len(), fmt_time(root.created_at()))}
        </p>
        {run.map(|r| view! { <p data-testid="task-run">{r}</p> })}
        {root
            .execution()
            .run
            .as_ref()
            .and_then(|run| run.budget)
            .map(|_| view! { <TreeBudgetPanel id=root.id().to_string() /> })}
        <pre data-testid="task-description" class="whitespace-pre-wrap border border-ink p-2 my-2">
            {root.description().to_owned()}
        </pre>
        <SectionTitle text="DECOMPOSITION" />
        <table data-testid="task-tree" class="w-full">
            <thead>
                <tr>
                    <th>"task"</th>
                    <th>"status"</th>
                    <th>"needs"</th>
                    <th>"agent (score)"</th>
                    <th>"after"</th>
                    <th>"sessions"</th>
                    <th>"note / result"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// `spent / cap (pct)`, or `spent (no cap)`.
fn against(spent: u64, cap: Option<u64>, show: impl Fn(u64) -> String) -> (String, bool) {
    match cap {
        Some(cap) => {
            let pct = spent.saturating_mul(100).checked_div(cap).unwrap_or(100);
            (
                format!("{} / {} ({pct}%)", show(spent), show(cap)),
                spent > cap,
            )
        }
        None => (format!("{} (no cap)", show(spent)), false),
    }
}

/// The tree's budget: its caps, the estimate it reserved when it started and what its sessions
/// have recorded so far.
#[component]
fn TreeBudgetPanel(id: String) -> impl IntoView {
    let budget = Resource::new(move || id.clone(), get_tree_budget);
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match budget.await {
                    Ok(Some(b)) => view! { <TreeBudgetTable budget=b /> }.into_any(),
                    Ok(None) => ().into_any(),
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn TreeBudgetTable(budget: TreeBudgetView) -> impl IntoView {
    let dollars = |micro: u64| format!("${}", fmt_cost(micro));
    let tokens = |n: u64| n.to_string();
    let (spent_tokens, over_tokens) = against(budget.spent.tokens, budget.cap.max_tokens, tokens);
    let (spent_cost, over_cost) = against(
        budget.spent.cost_micro_usd,
        budget.cap.max_cost_micro_usd,
        dollars,
    );
    let cap = |v: Option<u64>, show: &dyn Fn(u64) -> String| {
        v.map(show).unwrap_or_else(|| "no cap".into())
    };
    view! {
        <SectionTitle text="TREE BUDGET" />
        <table data-testid="tree-budget">
            <thead>
                <tr>
                    <th></th>
                    <th>"tokens"</th>
                    <th>"cost $"</th>
                </tr>
            </thead>
            <tbody>
                <tr>
                    <th scope="row">"cap"</th>
                    <td>{cap(budget.cap.max_tokens, &tokens)}</td>
                    <td>{cap(budget.cap.max_cost_micro_usd, &dollars)}</td>
                </tr>
                <tr>
                    <th scope="row">"reserved (estimate)"</th>
                    <td>{budget.reserved.tokens}</td>
                    <td>{dollars(budget.reserved.cost_micro_usd)}</td>
                </tr>
                <tr data-testid="tree-spent">
                    <th scope="row">"spent so far"</th>
                    <td class:text-alert=over_tokens class:font-bold=over_tokens>
                        {spent_tokens}
                    </td>
                    <td class:text-alert=over_cost class:font-bold=over_cost>
                        {spent_cost}
                    </td>
                </tr>
            </tbody>
        </table>
    }
}

#[cfg(test)]
mod budget_tests {
    use super::against;

    #[test]
    fn spend_reads_against_its_cap() {
        let show = |n: u64| n.to_string();
        assert_eq!(
            against(50, Some(200), show),
            ("50 / 200 (25%)".to_owned(), false)
        );
        assert_eq!(
            against(300, Some(200), show),
            ("300 / 200 (150%)".to_owned(), true)
        );
        assert_eq!(against(7, None, show), ("7 (no cap)".to_owned(), false));
    }
}
