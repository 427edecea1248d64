//! `/agents`: the registry with load and track record, and a form to register an agent;
//! `/agents/:name`: change an agent's capabilities, model and concurrency. Refused forms come back
//! with the offending field marked and the typed values kept.

use domain::{Agent, AgentCapability};
use leptos::prelude::*;

use super::common::CsrfField;
use leptos_router::hooks::use_params_map;

use super::common::{
    fmt_cost, fmt_duration, returned_form, ErrorBox, FieldMessage, OtherError, Returned,
    SectionTitle,
};
use super::NotFound;
use crate::api::{encode_component, get_agent, list_agents, AgentRow, SaveAgent};

const FIELDS: &[&str] = &["name", "capabilities", "model", "max_concurrency"];

fn capability_names(agent: &Agent) -> String {
    agent
        .capabilities()
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[component]
pub fn Agents() -> impl IntoView {
    let agents = Resource::new(|| (), |_| list_agents());
    let form = move || {
        let returned = returned_form(FIELDS);
        view! { <AgentFormView returned existing=None /> }
    };
    view! {
        <h1 class="text-2xl font-bold mb-2">"AGENTS"</h1>
        <Suspense fallback=|| view! { <p>"loading…"</p> }>
            {move || Suspend::new(async move {
                match agents.await {
                    Ok(rows) if rows.is_empty() => {
                        view! { <p data-testid="agents-empty">"NO AGENTS REGISTERED."</p> }
                            .into_any()
                    }
                    Ok(rows) => view! { <AgentTable rows /> }.into_any(),
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                }
            })}
        </Suspense>
        <SectionTitle text="REGISTER AN AGENT" />
        {form}
    }
}

#[component]
fn AgentTable(rows: Vec<AgentRow>) -> impl IntoView {
    let rows = rows
        .into_iter()
        .map(|AgentRow { agent, load }| {
            let p = agent.performance();
            let finished = p.finished_sessions();
            let per = |total: u64| total.checked_div(finished);
            let success = p
                .success_rate()
                .map(|r| format!("{:.0}%", r * 100.0))
                .unwrap_or_else(|| "-".into());
            let low = p.success_rate().is_some_and(|r| r < 0.5);
            let name = agent.name().as_str().to_owned();
            view! {
                <tr data-testid="agent-row">
                    <td>
                        <a href=format!("/agents/{}", encode_component(&name))>{name.clone()}</a>
                    </td>
                    <td>{capability_names(&agent)}</td>
                    <td>{agent.model().to_string()}</td>
                    <td>{agent.max_concurrency()}</td>
                    <td data-testid="agent-load">{load}</td>
                    <td class:text-alert=low>{success}</td>
                    <td>{per(p.total_duration_ms).map(fmt_duration).unwrap_or_else(|| "-".into())}</td>
                    <td>{per(p.total_tokens).map(|t| t.to_string()).unwrap_or_else(|| "-".into())}</td>
                    <td>{per(p.total_cost_micro_usd).map(fmt_cost).unwrap_or_else(|| "-".into())}</td>
                    <td>{finished}</td>
                    <td>
                        <a href=format!("/sessions?agent={}", encode_component(&name))>"sessions"</a>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table data-testid="agents-table" class="w-full">
            <thead>
                <tr>
                    <th>"name"</th>
                    <th>"capabilities"</th>
                    <th>"model"</th>
                    <th>"max conc."</th>
                    <th>"load"</th>
                    <th>"success"</th>
                    <th>"mean duration"</th>
                    <th>"tokens/session"</th>
                    <th>"cost $/session"</th>
                    <th>"finished"</th>
                    <th>"links"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// The create form (`existing` = `None`) or the edit form of an agent.
#[component]
fn AgentFormView(returned: Returned, existing: Option<Agent>) -> impl IntoView {
    let save = ServerAction::<SaveAgent>::new();
    let value =
        |key: &str, current: Option<String>| returned.value(key).or(current).unwrap_or_default();
    let update = existing.is_some();
    let name = value(
        "name",
        existing.as_ref().map(|a| a.name().as_str().to_owned()),
    );
    let capabilities = value("capabilities", existing.as_ref().map(capability_names));
    let model = value("model", existing.as_ref().map(|a| a.model().to_string()));
    let max = value(
        "max_concurrency",
        existing.as_ref().map(|a| a.max_concurrency().to_string()),
    );
    let known = AgentCapability::ALL
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    view! {
        <ActionForm action=save attr:data-testid="agent-form" attr:class="flex flex-col gap-2 border-2 border-ink p-2">
            <CsrfField />
            <OtherError returned=returned.clone() fields=FIELDS />
            <input type="hidden" name="mode" value=if update { "update" } else { "create" } />
            <div class="flex flex-wrap gap-2 items-center">
                {if update {
                    view! {
                        <span>"name"</span>
                        <input type="hidden" name="name" value=name.clone() />
                        <strong>{name.clone()}</strong>
                    }
                        .into_any()
                } else {
                    view! {
                        <label for="agent-name">"name"</label>
                        <input
                            id="agent-name"
                            name="name"
                            value=name.clone()
                            placeholder="build"
                            class="border-2 border-ink px-1"
                        />
                    }
                        .into_any()
                }}
                <FieldMessage returned=returned.clone() field="name" />
            </div>
            <div class="flex flex-wrap gap-2 items-center">
                <label for="agent-capabilities">"capabilities"</label>
                <input
                    id="agent-capabilities"
                    name="capabilities"
                    value=capabilities
                    placeholder="backend, testing"
                    class="border-2 border-ink px-1 w-96"
                />
                <FieldMessage returned=returned.clone() field="capabilities" />
            </div>
            <p class="text-dim text-sm">{format!("known: {known}")}</p>
            <div class="flex flex-wrap gap-2 items-center">
                <label for="agent-model">"model"</label>
                <input
                    id="agent-model"
                    name="model"
                    value=model
                    placeholder="provider/model"
                    class="border-2 border-ink px-1 w-72"
                />
                <FieldMessage returned=returned.clone() field="model" />
            </div>
            <div class="flex flex-wrap gap-2 items-center">
                <label for="agent-max">"max concurrency"</label>
                <input
                    id="agent-max"
                    name="max_concurrency"
                    value=max
                    class="border-2 border-ink px-1 w-24"
                />
                <FieldMessage returned=returned.clone() field="max_concurrency" />
            </div>
            <button
                type="submit"
                data-testid="agent-submit"
                class="self-start px-2 border-2 border-ink bg-ink text-paper font-bold"
            >
                {if update { "[ SAVE ]" } else { "[ REGISTER ]" }}
            </button>
            {move || {
                save.value()
                    .get()
                    .and_then(Result::err)
                    .map(|e| view! { <p class="text-alert font-bold">{e.to_string()}</p> })
            }}
        </ActionForm>
    }
}

#[component]
pub fn AgentEdit() -> impl IntoView {
    let params = use_params_map();
    let name = move || params.read().get("name").unwrap_or_default();
    let agent = Resource::new(name, get_agent);
    view! {
        <Suspense fallback=|| view! { <p>"loading…"</p> }>
            {move || Suspend::new(async move {
                match agent.await {
                    Ok(Some(agent)) => {
                        let title = agent.name().as_str().to_owned();
                        let form = move || {
                            let returned = returned_form(FIELDS);
                            view! { <AgentFormView returned existing=Some(agent.clone()) /> }
                        };
                        view! {
                            <h1 class="text-2xl font-bold mb-2">
                                "AGENT "
                                <span data-testid="agent-name">{title}</span>
                            </h1>
                            <p>
                                <a href="/agents">"← all agents"</a>
                            </p>
                            {form}
                        }
                            .into_any()
                    }
                    Ok(None) => view! { <NotFound /> }.into_any(),
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                }
            })}
        </Suspense>
    }
}
