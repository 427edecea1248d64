//! Server functions: what the pages call on the server. The plain serde types they exchange live
//! in [`crate::dto`] (re-exported here), so the driving ports can name them without depending on
//! this module: `api` → `ports` → `dto`, and no way back.

pub use crate::dto::*;

use domain::{
    Agent, AgentName, Cursor, Page, PageRequest, Session, SessionFilter, SessionStatus, Task,
};
use leptos::prelude::*;

/// The page size the dashboard asks for when none is given.
pub const DEFAULT_LIST_LIMIT: u32 = 100;

/// Parses the raw list parameters a browser sends; errors name the offending field.
pub fn parse_session_list(
    status: Option<&str>,
    limit: Option<u32>,
    after: Option<&str>,
) -> Result<(SessionFilter, PageRequest), (&'static str, String)> {
    let status = match status.map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("all") => None,
        Some(raw) => Some(
            raw.parse::<SessionStatus>()
                .map_err(|e| ("status", e.to_string()))?,
        ),
    };
    let after = after
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|raw| raw.parse::<Cursor>().map_err(|e| (e.field, e.message)))
        .transpose()?;
    let page = PageRequest::new(limit.unwrap_or(DEFAULT_LIST_LIMIT), after)
        .map_err(|e| (e.field, e.message))?;
    let filter = SessionFilter {
        status,
        ..SessionFilter::default()
    };
    Ok((filter, page))
}

/// Who is signed in (or which API token is calling); `None` on the sign-in page. The server's
/// access middleware put it in the request.
#[server(prefix = "/api/sf", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<domain::CurrentUser>, ServerFnError> {
    Ok(use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<domain::CurrentUser>().cloned()))
}

/// One page of the newest sessions, optionally only those in one status (`"all"` or empty for
/// every one), starting after the `after` cursor.
#[server(prefix = "/api/sf", endpoint = "list_sessions")]
pub async fn list_sessions(
    status: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
    agent: Option<String>,
) -> Result<Page<Session>, ServerFnError> {
    use crate::ports::AppServices;

    let (mut filter, page) = parse_session_list(status.as_deref(), limit, after.as_deref())
        .map_err(|(field, message)| bad_argument(field, &message))?;
    filter.agent = parse_agent_filter(agent.as_deref())
        .map_err(|(field, message)| bad_argument(field, &message))?;
    let services = AppServices::from_context()?;
    services
        .sessions
        .list_sessions(filter, page)
        .await
        .map_err(query_failed)
}

/// The optional agent filter of the session list (`""` or `"all"`: every agent).
pub fn parse_agent_filter(raw: Option<&str>) -> Result<Option<AgentName>, (&'static str, String)> {
    match raw.map(str::trim).filter(|s| !s.is_empty() && *s != "all") {
        None => Ok(None),
        Some(name) => AgentName::new(name)
            .map(Some)
            .map_err(|e| ("agent", e.to_string())),
    }
}

/// Fleet, session counts, the last 24 hours and recent failures: the overview page.
#[server(prefix = "/api/sf", endpoint = "get_overview")]
pub async fn get_overview() -> Result<Overview, ServerFnError> {
    let services = crate::ports::AppServices::from_context()?;
    let fleet = services.fleet.fleet_status().await;
    let stats = services
        .insights
        .session_stats()
        .await
        .map_err(query_failed)?;
    Ok(Overview { fleet, stats })
}

/// One session with its events, timeline and diff; `None` for an unknown (or malformed) id.
#[server(prefix = "/api/sf", endpoint = "get_session")]
pub async fn get_session(id: String) -> Result<Option<SessionDetail>, ServerFnError> {
    let Ok(id) = id.trim().parse::<domain::SessionId>() else {
        return Ok(None);
    };
    let services = crate::ports::AppServices::from_context()?;
    services
        .insights
        .session_detail(id)
        .await
        .map_err(query_failed)
}

/// Cancels a session, then shows it again (a plain form post works without JavaScript).
#[server(prefix = "/api/sf", endpoint = "cancel_session")]
pub async fn cancel_session(
    id: String,
    csrf_token: Option<String>,
) -> Result<String, ServerFnError> {
    // `csrf_token` is checked by the server's access middleware before this runs (see
    // server/src/http/auth.rs); declared so the hydrated form sends it along.
    let _ = csrf_token;
    let id = id
        .trim()
        .parse::<domain::SessionId>()
        .map_err(|_| bad_argument("id", "not a session id"))?;
    let services = crate::ports::AppServices::from_context()?;
    let outcome = services
        .session_commands
        .cancel_session(id)
        .await
        .map_err(command_failed)?;
    leptos_axum::redirect(&format!("/sessions/{id}"));
    Ok(outcome)
}

/// Puts a failed or timed-out session back in the queue, then shows it again.
#[server(prefix = "/api/sf", endpoint = "retry_session")]
pub async fn retry_session(
    id: String,
    csrf_token: Option<String>,
) -> Result<String, ServerFnError> {
    // `csrf_token` is checked by the server's access middleware before this runs (see
    // server/src/http/auth.rs); declared so the hydrated form sends it along.
    let _ = csrf_token;
    let id = id
        .trim()
        .parse::<domain::SessionId>()
        .map_err(|_| bad_argument("id", "not a session id"))?;
    let services = crate::ports::AppServices::from_context()?;
    services
        .session_commands
        .retry_session(id)
        .await
        .map_err(command_failed)?;
    leptos_axum::redirect(&format!("/sessions/{id}"));
    Ok("queued for another attempt".into())
}

/// Root tasks, newest first, one keyset page.
#[server(prefix = "/api/sf", endpoint = "list_tasks")]
pub async fn list_tasks(after: Option<String>) -> Result<Page<Task>, ServerFnError> {
    let after = after
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|raw| {
            raw.parse::<Cursor>()
                .map_err(|e| bad_argument(e.field, &e.message))
        })
        .transpose()?;
    let page = PageRequest::new(DEFAULT_LIST_LIMIT, after)
        .map_err(|e| bad_argument(e.field, &e.message))?;
    let services = crate::ports::AppServices::from_context()?;
    services
        .tasks
        .list_root_tasks(page)
        .await
        .map_err(query_failed)
}

/// A task tree (root first, parents before children); `None` for an unknown id.
#[server(prefix = "/api/sf", endpoint = "get_task_tree")]
pub async fn get_task_tree(id: String) -> Result<Option<Vec<Task>>, ServerFnError> {
    let Ok(id) = id.trim().parse::<domain::TaskId>() else {
        return Ok(None);
    };
    let services = crate::ports::AppServices::from_context()?;
    services.tasks.task_tree(id).await.map_err(query_failed)
}

/// Decomposes a requirement into a task tree (and starts it when `start` is set). Redirects to
/// the new tree, or back to the form with the offending field and the typed values.
#[server(prefix = "/api/sf", endpoint = "create_task")]
pub async fn create_task(
    requirement: Option<String>,
    workspace: Option<String>,
    max_parallel: Option<String>,
    policy: Option<String>,
    start: Option<String>,
    csrf_token: Option<String>,
) -> Result<(), ServerFnError> {
    use crate::ports::CommandError;
    // `csrf_token` is checked by the server's access middleware before this runs (see
    // server/src/http/auth.rs); declared so the hydrated form sends it along.
    let _ = csrf_token;

    let form = NewTaskForm {
        requirement: requirement.unwrap_or_default(),
        workspace: workspace.unwrap_or_default(),
        max_parallel: max_parallel.unwrap_or_default(),
        policy: policy.unwrap_or_default(),
        start: start.is_some_and(|s| !s.is_empty() && s != "false"),
    };
    let services = crate::ports::AppServices::from_context()?;
    match services.task_commands.create_task(form.clone()).await {
        Ok(id) => {
            leptos_axum::redirect(&format!("/tasks/{id}"));
            Ok(())
        }
        Err(CommandError::Invalid { field, message }) => {
            leptos_axum::redirect(&format!(
                "/tasks?{}",
                form.to_query(&FieldError { field, message })
            ));
            Ok(())
        }
        Err(other) => Err(command_failed(other)),
    }
}

/// Every agent with its load and track record.
#[server(prefix = "/api/sf", endpoint = "list_agents")]
pub async fn list_agents() -> Result<Vec<AgentRow>, ServerFnError> {
    let services = crate::ports::AppServices::from_context()?;
    services.agents.list_agents().await.map_err(query_failed)
}

/// One agent by name; `None` if there is none.
#[server(prefix = "/api/sf", endpoint = "get_agent")]
pub async fn get_agent(name: String) -> Result<Option<Agent>, ServerFnError> {
    let services = crate::ports::AppServices::from_context()?;
    services
        .agents
        .get_agent(name.trim())
        .await
        .map_err(query_failed)
}

/// Registers (`mode` = `create`) or changes (`update`) an agent. Redirects to the agent list, or
/// back to the form with the offending field and the typed values.
#[server(prefix = "/api/sf", endpoint = "save_agent")]
pub async fn save_agent(
    mode: String,
    name: String,
    capabilities: Option<String>,
    model: Option<String>,
    max_concurrency: Option<String>,
    csrf_token: Option<String>,
) -> Result<(), ServerFnError> {
    use crate::ports::CommandError;
    // `csrf_token` is checked by the server's access middleware before this runs (see
    // server/src/http/auth.rs); declared so the hydrated form sends it along.
    let _ = csrf_token;

    let form = AgentForm {
        name: name.trim().to_owned(),
        capabilities: capabilities.unwrap_or_default(),
        model: model.unwrap_or_default(),
        max_concurrency: max_concurrency.unwrap_or_default(),
    };
    let services = crate::ports::AppServices::from_context()?;
    let update = mode == "update";
    let saved = if update {
        services.agent_commands.update_agent(form.clone()).await
    } else {
        services.agent_commands.register_agent(form.clone()).await
    };
    match saved {
        Ok(_) => {
            leptos_axum::redirect("/agents");
            Ok(())
        }
        Err(CommandError::Invalid { field, message }) => {
            let back = if update {
                format!("/agents/{}", encode_component(&form.name))
            } else {
                "/agents".to_owned()
            };
            leptos_axum::redirect(&format!(
                "{back}?{}",
                form.to_query(&FieldError { field, message })
            ));
            Ok(())
        }
        Err(other) => Err(command_failed(other)),
    }
}

/// The wall screen's figures.
#[server(prefix = "/api/sf", endpoint = "get_status_board")]
pub async fn get_status_board() -> Result<StatusBoard, ServerFnError> {
    let services = crate::ports::AppServices::from_context()?;
    services.fleet.status_board().await.map_err(query_failed)
}

/// The inbox: open items first, then the latest resolved ones.
#[server(prefix = "/api/sf", endpoint = "list_inbox")]
pub async fn list_inbox() -> Result<InboxView, ServerFnError> {
    let services = crate::ports::AppServices::from_context()?;
    services.inbox.inbox().await.map_err(query_failed)
}

/// Answers an inbox item as the signed-in user (see [`InboxAnswerForm`] for the fields), then
/// shows the inbox again. A relay the agent server refused is reported and nothing is stored.
#[server(prefix = "/api/sf", endpoint = "answer_inbox")]
pub async fn answer_inbox(
    id: String,
    reply: Option<String>,
    message: Option<String>,
    questions: Option<String>,
    choice: Option<std::collections::BTreeMap<String, String>>,
    custom: Option<std::collections::BTreeMap<String, String>>,
    csrf_token: Option<String>,
) -> Result<String, ServerFnError> {
    // `csrf_token` is checked by the server's access middleware before this runs (see
    // server/src/http/auth.rs); declared so the hydrated form sends it along.
    let _ = csrf_token;
    let id = id
        .trim()
        .parse::<domain::InboxItemId>()
        .map_err(|_| bad_argument("id", "not an inbox item id"))?;
    let form = InboxAnswerForm {
        reply,
        message,
        questions,
        choice: choice.unwrap_or_default(),
        custom: custom.unwrap_or_default(),
    };
    let answer = form
        .to_answer()
        .map_err(|(field, message)| bad_argument(field, &message))?;
    let by = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<domain::CurrentUser>().cloned())
        .map(|user| user.name)
        .ok_or_else(|| -> ServerFnError {
            ServerFnError::ServerError("nobody is signed in".into())
        })?;
    let services = crate::ports::AppServices::from_context()?;
    let item = services
        .inbox
        .answer(id, answer, &by)
        .await
        .map_err(command_failed)?;
    Ok(format!("answered {} as {by}", item.kind.name()))
}

/// The configured budgets and runaway limits.
#[server(prefix = "/api/sf", endpoint = "get_guardrails")]
pub async fn get_guardrails() -> Result<GuardrailsView, ServerFnError> {
    let services = crate::ports::AppServices::from_context()?;
    Ok(services.guardrails.guardrails().await)
}

/// A task tree's budget and what its sessions spent; `None` without a budget or for an unknown
/// (or malformed) id.
#[server(prefix = "/api/sf", endpoint = "get_tree_budget")]
pub async fn get_tree_budget(id: String) -> Result<Option<TreeBudgetView>, ServerFnError> {
    let Ok(id) = id.trim().parse::<domain::TaskId>() else {
        return Ok(None);
    };
    let services = crate::ports::AppServices::from_context()?;
    services
        .guardrails
        .tree_budget(id)
        .await
        .map_err(query_failed)
}

/// A failed query as server functions report it.
#[cfg(feature = "ssr")]
fn query_failed(error: crate::ports::QueryError) -> ServerFnError {
    use crate::ports::QueryError;
    match error {
        QueryError::Invalid { field, message } => bad_argument(field, &message),
        QueryError::Unavailable(message) => {
            tracing::warn!(%message, "storage unavailable");
            ServerFnError::ServerError("storage is unavailable".into())
        }
    }
}

/// A refused or failed command as server functions report it.
#[cfg(feature = "ssr")]
fn command_failed(error: crate::ports::CommandError) -> ServerFnError {
    use crate::ports::CommandError;
    let status = match &error {
        CommandError::Invalid { .. } => http::StatusCode::BAD_REQUEST,
        CommandError::NotFound(_) => http::StatusCode::NOT_FOUND,
        CommandError::NotAllowed(_) => http::StatusCode::CONFLICT,
        CommandError::Upstream(_) => http::StatusCode::BAD_GATEWAY,
        CommandError::Unavailable(message) => {
            tracing::warn!(%message, "command failed: storage unavailable");
            http::StatusCode::SERVICE_UNAVAILABLE
        }
    };
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(status);
    }
    match error {
        CommandError::Invalid { field, message } => {
            ServerFnError::Args(format!("{field}: {message}"))
        }
        CommandError::Unavailable(_) => ServerFnError::ServerError("storage is unavailable".into()),
        other => ServerFnError::ServerError(other.to_string()),
    }
}

/// A rejected argument, naming the field, as server functions report it.
#[cfg(feature = "ssr")]
fn bad_argument(field: &str, message: &str) -> ServerFnError {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::BAD_REQUEST);
    }
    ServerFnError::Args(format!("{field}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_all_status_means_no_filter() {
        for raw in [None, Some("all"), Some("  ")] {
            let (filter, _) = parse_session_list(raw, None, None).unwrap();
            assert_eq!(filter.status, None);
        }
    }

    #[test]
    fn known_status_and_limit_are_parsed() {
        let (filter, page) = parse_session_list(Some("running"), Some(10), None).unwrap();
        assert_eq!(filter.status, Some(SessionStatus::Running));
        assert_eq!(page.limit(), 10);
        assert_eq!(page.after, None);
    }

    #[test]
    fn unknown_status_names_the_field() {
        let (field, message) = parse_session_list(Some("sleeping"), None, None).unwrap_err();
        assert_eq!(field, "status");
        assert!(message.contains("sleeping"), "{message}");
    }

    #[test]
    fn limit_out_of_range_names_the_field() {
        assert_eq!(
            parse_session_list(None, Some(0), None).unwrap_err().0,
            "limit"
        );
        assert_eq!(
            parse_session_list(None, Some(100_000), None).unwrap_err().0,
            "limit"
        );
        let (_, page) = parse_session_list(None, None, None).unwrap();
        assert_eq!(page.limit(), DEFAULT_LIST_LIMIT);
    }

    #[test]
    fn a_cursor_is_parsed_and_a_bad_one_names_the_field() {
        let (_, page) = parse_session_list(
            None,
            None,
            Some("1764000000000000.00000000000000000000000000001234"),
        )
        .unwrap();
        assert!(page.after.is_some());
        assert_eq!(
            parse_session_list(None, None, Some("nope")).unwrap_err().0,
            "cursor"
        );
    }
}
