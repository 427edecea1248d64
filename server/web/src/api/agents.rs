//! `/api/v1/agents`: the registry routing chooses from.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::dto::{AgentDto, AgentList, ErrorBody, RegisterAgentBody, UpdateAgentBody};
use super::errors::ApiError;
use super::extract::{ApiJson, ApiPath};
use super::ApiState;

#[utoipa::path(
    get, path = "/api/v1/agents", tag = "agents",
    responses(
        (status = 200, description = "Every registered agent", body = AgentList),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<ApiState>) -> Result<Json<AgentList>, ApiError> {
    let items = state.tasks.agents.list().await?;
    Ok(Json(AgentList { items }))
}

#[utoipa::path(
    post, path = "/api/v1/agents", tag = "agents",
    request_body = RegisterAgentBody,
    responses(
        (status = 201, description = "Registered", body = AgentDto),
        (status = 400, description = "An invalid field (named), or the name is taken", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<RegisterAgentBody>,
) -> Result<(StatusCode, Json<AgentDto>), ApiError> {
    body.validate()?;
    let agent = state.tasks.agents.register(body.into()).await?;
    Ok((StatusCode::CREATED, Json(AgentDto(agent))))
}

#[utoipa::path(
    get, path = "/api/v1/agents/{name}", tag = "agents",
    params(("name" = String, Path, description = "Agent name")),
    responses(
        (status = 200, body = AgentDto),
        (status = 404, description = "No such agent", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<AgentDto>, ApiError> {
    Ok(Json(AgentDto(state.tasks.agents.get(&name).await?)))
}

#[utoipa::path(
    put, path = "/api/v1/agents/{name}", tag = "agents",
    params(("name" = String, Path, description = "Agent name")),
    request_body = UpdateAgentBody,
    responses(
        (status = 200, description = "Updated", body = AgentDto),
        (status = 400, description = "An invalid field (named)", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody),
        (status = 409, description = "Changed since `expected_version`", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateAgentBody>,
) -> Result<Json<AgentDto>, ApiError> {
    body.validate()?;
    let agent = state.tasks.agents.update(&name, body.into()).await?;
    Ok(Json(AgentDto(agent)))
}
