//! `/tasks`: root tasks, newest first, and the form that turns a requirement into a task tree.
//! A refused form comes back with the offending field marked and the typed values kept.

use leptos::prelude::*;

use super::common::CsrfField;
use leptos_router::hooks::use_query_map;

use super::common::{
    fmt_time, returned_form, ErrorBox, FieldMessage, OtherError, Returned, SectionTitle, StatusCell,
};
use crate::api::{encode_component, list_tasks, CreateTask};

const FIELDS: &[&str] = &["requirement", "workspace", "max_parallel", "policy"];

#[component]
pub fn Tasks() -> impl IntoView {
    let query = use_query_map();
    let after = move || query.read().get("after");
    let tasks = Resource::new(after, list_tasks);
    let form = move || {
        let returned = returned_form(&[
            "requirement",
            "workspace",
            "max_parallel",
            "policy",
            "start",
        ]);
        view! { <CreateTaskForm returned /> }
    };
    view! {
        <h1 class="text-2xl font-bold mb-2">"TASKS"</h1>
        {form}
        <SectionTitle text="ROOT TASKS" />
        <Suspense fallback=|| view! { <p>"loading…"</p> }>
            {move || Suspend::new(async move {
                match tasks.await {
                    Ok(page) if page.items.is_empty() => {
                        view! { <p data-testid="tasks-empty">"NO TASKS YET."</p> }.into_any()
                    }
                    Ok(page) => {
                        let rows = page
                            .items
                            .into_iter()
                            .map(|t| {
                                view! {
                                    <tr data-testid="task-row">
                                        <td>
                                            <a href=format!("/tasks/{}", t.id())>
                                                {t.title().as_str().to_owned()}
                                            </a>
                                        </td>
                                        <StatusCell status=t.status().as_str() />
                                        <td>{t.subtasks().len()}</td>
                                        <td>{fmt_time(t.created_at())}</td>
                                    </tr>
                                }
                            })
                            .collect_view();
                        let next = page
                            .next
                            .map(|c| {
                                view! {
                                    <a
                                        data-testid="next-page"
                                        href=format!(
                                            "/tasks?after={}",
                                            encode_component(&c.to_string()),
                                        )
                                    >
                                        "NEXT PAGE →"
                                    </a>
                                }
                            });
                        view! {
                            <table data-testid="tasks-table" class="w-full">
                                <thead>
                                    <tr>
                                        <th>"title"</th>
                                        <th>"status"</th>
                                        <th>"subtasks"</th>
                                        <th>"created (utc)"</th>
                                    </tr>
                                </thead>
                                <tbody>{rows}</tbody>
                            </table>
                            {next}
                        }
                            .into_any()
                    }
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn CreateTaskForm(returned: Returned) -> impl IntoView {
    let create = ServerAction::<CreateTask>::new();
    let policy = returned.value("policy").unwrap_or_default();
    let policies = [
        ("fail_fast", "fail fast"),
        ("continue", "continue"),
        ("retry:1", "retry once"),
        ("retry:3", "retry 3 times"),
    ]
    .into_iter()
    .map(|(value, label)| {
        let selected = value == policy;
        view! {
            <option value=value selected=selected>
                {label}
            </option>
        }
    })
    .collect_view();
    let start = returned.value("start").is_some();
    let busy = create.pending();
    view! {
        <SectionTitle text="CREATE A TASK FROM A REQUIREMENT" />
        <ActionForm action=create attr:data-testid="create-task" attr:class="flex flex-col gap-2 border-2 border-ink p-2">
            <CsrfField />
            <OtherError returned=returned.clone() fields=FIELDS />
            <label for="requirement" class="font-bold">"requirement"</label>
            <div class="flex gap-2 items-start">
                <textarea
                    id="requirement"
                    name="requirement"
                    rows="5"
                    prop:value=returned.value("requirement").unwrap_or_default()
                    class="border-2 border-ink p-1 w-full max-w-3xl"
                >
                    {returned.value("requirement").unwrap_or_default()}
                </textarea>
                <FieldMessage returned=returned.clone() field="requirement" />
            </div>
            <div class="flex flex-wrap gap-2 items-center">
                <label for="workspace">"workspace (git repository)"</label>
                <input
                    id="workspace"
                    name="workspace"
                    value=returned.value("workspace").unwrap_or_default()
                    class="border-2 border-ink px-1 w-96"
                />
                <FieldMessage returned=returned.clone() field="workspace" />
            </div>
            <div class="flex flex-wrap gap-2 items-center">
                <label for="max_parallel">"max parallel"</label>
                <input
                    id="max_parallel"
                    name="max_parallel"
                    value=returned.value("max_parallel").unwrap_or_default()
                    placeholder="default"
                    class="border-2 border-ink px-1 w-24"
                />
                <FieldMessage returned=returned.clone() field="max_parallel" />
                <label for="policy">"failure policy"</label>
                <select id="policy" name="policy" class="border-2 border-ink px-1 bg-paper">
                    {policies}
                </select>
                <FieldMessage returned=returned.clone() field="policy" />
                <label>
                    <input type="checkbox" name="start" value="on" checked=start />
                    " start now"
                </label>
            </div>
            <button
                type="submit"
                data-testid="create-task-submit"
                class="self-start px-2 border-2 border-ink bg-ink text-paper font-bold"
                disabled=busy
            >
                "[ DECOMPOSE ]"
            </button>
            {move || {
                create
                    .value()
                    .get()
                    .and_then(Result::err)
                    .map(|e| view! { <p class="text-alert font-bold">{e.to_string()}</p> })
            }}
        </ActionForm>
    }
}
