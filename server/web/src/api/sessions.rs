//! `/api/v1/sessions`: list, create, read, event log, diff, cancel and retry.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use domain::{AgentName, SessionFilter, SessionId, SessionStatus, TaskId, WorkspaceRecord};

use super::dto::{
    CancelBody, CancelOutcomeDto, CancelResponse, CreateSessionBody, ErrorBody, RetryBody,
    SessionDiff, SessionDto, SessionEventDto, SessionEvents, SessionListQuery, SessionPage,
};
use super::errors::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{non_empty, page_request, parse_id, ApiState};
use oio_application::lifecycle::PRIORITY_RANGE;
use oio_application::CancelOutcome;

/// The event that carries a session's worktree diff.

#[utoipa::path(
    get, path = "/api/v1/sessions", tag = "sessions",
    params(SessionListQuery),
    responses(
        (status = 200, description = "One page, newest first", body = SessionPage),
        (status = 400, description = "A bad filter, limit or cursor (named)", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<SessionListQuery>,
) -> Result<Json<SessionPage>, ApiError> {
    let status = match non_empty(&query.status) {
        None | Some("all") => None,
        Some(raw) => Some(
            raw.parse::<SessionStatus>()
                .map_err(|e| ApiError::invalid("status", e.to_string()))?,
        ),
    };
    let agent = non_empty(&query.agent)
        .map(|raw| AgentName::new(raw).map_err(|e| ApiError::invalid("agent", e.message)))
        .transpose()?;
    let parent_task = non_empty(&query.task)
        .map(|raw| parse_id::<TaskId>("task", raw))
        .transpose()?;
    let page = page_request(&query.limit, &query.after)?;
    let filter = SessionFilter {
        status,
        agent,
        parent_task,
        ..SessionFilter::default()
    };
    let page = state.sessions.list(&filter, &page).await?;
    Ok(Json(SessionPage {
        items: page.items,
        next: page.next.map(|c| c.to_string()),
    }))
}

#[utoipa::path(
    post, path = "/api/v1/sessions", tag = "sessions",
    request_body = CreateSessionBody,
    responses(
        (status = 201, description = "Created and queued", body = SessionDto),
        (status = 400, description = "An invalid field (named)", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<CreateSessionBody>,
) -> Result<(StatusCode, Json<SessionDto>), ApiError> {
    let session = state.lifecycle.create(body.into()).await?;
    Ok((StatusCode::CREATED, Json(SessionDto(session))))
}

#[utoipa::path(
    get, path = "/api/v1/sessions/{id}", tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, body = SessionDto),
        (status = 400, description = "Not a uuid", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionDto>, ApiError> {
    let id = parse_id::<SessionId>("id", &id)?;
    Ok(Json(SessionDto(state.lifecycle.get(id).await?)))
}

#[utoipa::path(
    get, path = "/api/v1/sessions/{id}/events", tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session's event log, in commit order", body = SessionEvents),
        (status = 400, description = "Not a uuid", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionEvents>, ApiError> {
    let id = parse_id::<SessionId>("id", &id)?;
    state.lifecycle.get(id).await?;
    let items = state.sessions.events(id).await?;
    Ok(Json(SessionEvents {
        session_id: id.as_uuid(),
        items: items.into_iter().map(SessionEventDto::from).collect(),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/sessions/{id}/diff", tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 200, description = "Files changed and the patch of the session's last run", body = SessionDiff),
        (status = 400, description = "Not a uuid", body = ErrorBody),
        (status = 404, description = "No such session, or no diff recorded yet", body = ErrorBody),
    )
)]
pub async fn diff(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SessionDiff>, ApiError> {
    let id = parse_id::<SessionId>("id", &id)?;
    state.lifecycle.get(id).await?;
    let events = state.sessions.events(id).await?;
    let last = events
        .into_iter()
        .rev()
        .find(|e| e.event_type == WorkspaceRecord::EVENT_TYPE)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "session {id} has no workspace diff yet (it is recorded when a run ends)"
            ))
        })?;
    let record: WorkspaceRecord = serde_json::from_value(last.payload).map_err(|e| {
        ApiError::Internal(format!("session {id}: unreadable workspace event: {e}"))
    })?;
    Ok(Json(record.into()))
}

#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/cancel", tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body(content = CancelBody, description = "Optional"),
    responses(
        (status = 202, description = "Cancelled, or cancellation requested from the running replica", body = CancelResponse),
        (status = 400, description = "Not a uuid, or a bad body", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "The session has ended", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CancelBody>,
) -> Result<(StatusCode, Json<CancelResponse>), ApiError> {
    let id = parse_id::<SessionId>("id", &id)?;
    body.validate()?;
    let outcome = match state.lifecycle.cancel(id, body.reason).await? {
        CancelOutcome::Cancelled => CancelOutcomeDto::Cancelled,
        CancelOutcome::Requested => CancelOutcomeDto::Requested,
    };
    Ok((StatusCode::ACCEPTED, Json(CancelResponse { outcome })))
}

#[utoipa::path(
    post, path = "/api/v1/sessions/{id}/retry", tag = "sessions",
    params(("id" = Uuid, Path, description = "Session id")),
    request_body(content = RetryBody, description = "Optional"),
    responses(
        (status = 200, description = "Queued for another attempt", body = SessionDto),
        (status = 400, description = "Not a uuid, or a bad priority", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "Only failed or timed-out sessions can be retried", body = ErrorBody),
    )
)]
pub async fn retry(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RetryBody>,
) -> Result<Json<SessionDto>, ApiError> {
    let id = parse_id::<SessionId>("id", &id)?;
    let priority = body.priority.unwrap_or(0);
    if !PRIORITY_RANGE.contains(&priority) {
        return Err(ApiError::invalid(
            "priority",
            format!(
                "must be between {} and {}",
                PRIORITY_RANGE.start(),
                PRIORITY_RANGE.end()
            ),
        ));
    }
    Ok(Json(SessionDto(state.lifecycle.retry(id, priority).await?)))
}
