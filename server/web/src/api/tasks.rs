//! `/api/v1/tasks`: decompose a requirement into a tree (and start it), list roots, read a tree,
//! start and cancel.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use domain::{TaskFilter, TaskId, TaskStatus};

use super::dto::{
    CancelBody, CreateTaskBody, CreatedTasks, ErrorBody, StartTaskBody, TaskDto, TaskListQuery,
    TaskPage, TaskTree,
};
use super::errors::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{non_empty, page_request, parse_id, ApiState};
use oio_application::{DecompositionOptions, ExecutionError, StartTaskRequest};

#[utoipa::path(
    get, path = "/api/v1/tasks", tag = "tasks",
    params(TaskListQuery),
    responses(
        (status = 200, description = "One page of root tasks, newest first", body = TaskPage),
        (status = 400, description = "A bad status, limit or cursor (named)", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<TaskListQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    let status = match non_empty(&query.status) {
        None | Some("all") => None,
        Some(raw) => Some(
            raw.parse::<TaskStatus>()
                .map_err(|e| ApiError::invalid("status", e.to_string()))?,
        ),
    };
    let page = page_request(&query.limit, &query.after)?;
    let filter = TaskFilter {
        status,
        parent: None,
        roots_only: true,
    };
    let page = state.task_repository.list(&filter, &page).await?;
    Ok(Json(TaskPage {
        items: page.items,
        next: page.next.map(|c| c.to_string()),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/tasks", tag = "tasks",
    request_body = CreateTaskBody,
    responses(
        (status = 201, description = "The stored tree (started when asked)", body = CreatedTasks),
        (status = 400, description = "An invalid field (named); nothing stored", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<CreateTaskBody>,
) -> Result<(StatusCode, Json<CreatedTasks>), ApiError> {
    body.validate()?;
    let start = body.start.map(StartTaskRequest::from);
    // Checked before storing anything: a bad start request leaves no tree behind.
    if let Some(start) = &start {
        state
            .tasks
            .executor
            .check_start(start)
            .map_err(|e| prefix_field(ApiError::from(e), "start"))?;
    }
    let defaults = DecompositionOptions::default();
    let options = DecompositionOptions {
        max_depth: body.max_depth.unwrap_or(defaults.max_depth),
        template: body.template.filter(|t| !t.trim().is_empty()),
        ..defaults
    };
    let decomposition = state
        .tasks
        .decomposition
        .decompose_and_store(&body.requirement, &options)
        .await?;
    let root = decomposition.root;
    let rendered = decomposition.render();
    let tasks = match start {
        Some(start) => {
            state
                .tasks
                .executor
                .start(root, start)
                .await
                .map_err(|e| prefix_field(state_conflict(e), "start"))?;
            state.tasks.executor.tree(root).await?
        }
        None => decomposition.tasks,
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedTasks {
            root: root.as_uuid(),
            tasks,
            rendered,
        }),
    ))
}

#[utoipa::path(
    get, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id (usually a root)")),
    responses(
        (status = 200, description = "The task and every live descendant, parents first", body = TaskTree),
        (status = 400, description = "Not a uuid", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    )
)]
pub async fn tree(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TaskTree>, ApiError> {
    let id = parse_id::<TaskId>("id", &id)?;
    let tasks = state.tasks.executor.tree(id).await?;
    Ok(Json(TaskTree {
        root: id.as_uuid(),
        tasks,
    }))
}

#[utoipa::path(
    post, path = "/api/v1/tasks/{id}/start", tag = "tasks",
    params(("id" = Uuid, Path, description = "Root task id")),
    request_body = StartTaskBody,
    responses(
        (status = 200, description = "The root, now running", body = TaskDto),
        (status = 400, description = "An invalid field (named)", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Not a root, or already started", body = ErrorBody),
    )
)]
pub async fn start(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<StartTaskBody>,
) -> Result<Json<TaskDto>, ApiError> {
    let id = parse_id::<TaskId>("id", &id)?;
    let request = StartTaskRequest::from(body);
    // `start` checks the workspace and policy but not the parallelism: check all of it.
    state.tasks.executor.check_start(&request)?;
    let task = state
        .tasks
        .executor
        .start(id, request)
        .await
        .map_err(state_conflict)?;
    Ok(Json(TaskDto(task)))
}

#[utoipa::path(
    post, path = "/api/v1/tasks/{id}/cancel", tag = "tasks",
    params(("id" = Uuid, Path, description = "Root task id")),
    request_body(content = CancelBody, description = "Optional"),
    responses(
        (status = 202, description = "Cancellation requested; the root ends cancelled once its sessions stopped", body = TaskDto),
        (status = 400, description = "Not a uuid, or a bad body", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "The tree is not running", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<(StatusCode, Json<TaskDto>), ApiError> {
    let id = parse_id::<TaskId>("id", &id)?;
    body.validate()?;
    let task = state
        .tasks
        .executor
        .cancel(id, body.reason)
        .await
        .map_err(state_conflict)?;
    Ok((StatusCode::ACCEPTED, Json(TaskDto(task))))
}

/// Names a field of the nested `start` object as `start.<field>`.
fn prefix_field(error: ApiError, prefix: &str) -> ApiError {
    match error {
        ApiError::Invalid {
            field: Some(field),
            message,
        } => ApiError::Invalid {
            field: Some(format!("{prefix}.{field}")),
            message,
        },
        other => other,
    }
}

/// The domain names the task itself (`task`) when a command does not fit its state (already
/// started, not a root, not running): that is a 409, not a bad request field.
fn state_conflict(error: ExecutionError) -> ApiError {
    match error {
        ExecutionError::Invalid(e) if e.field == "task" => ApiError::Conflict(e.message),
        other => other.into(),
    }
}
