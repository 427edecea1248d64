//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes and the DTOs.

use axum::Json;
use utoipa::OpenApi;

use super::{admission, agents, dto, fleet, inbox, sessions, sse, tasks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "OpenCode Industrial Orchestrator API",
        description = "Sessions, task trees, agents, the OpenCode fleet and a live event stream. \
                       Errors are `{\"error\": {\"field\": <name or null>, \"message\": \"...\"}}`."
    ),
    paths(
        sessions::list,
        sessions::create,
        sessions::get,
        sessions::events,
        sessions::diff,
        sessions::cancel,
        sessions::retry,
        tasks::list,
        tasks::create,
        tasks::tree,
        tasks::start,
        tasks::cancel,
        agents::list,
        agents::register,
        agents::get,
        agents::update,
        fleet::report,
        inbox::list,
        inbox::get,
        inbox::answer,
        admission::report,
        sse::stream,
        openapi_json,
    ),
    components(schemas(
        dto::ErrorBody,
        dto::ErrorDetail,
        dto::SessionDto,
        dto::SessionPage,
        dto::CreateSessionBody,
        dto::SessionEventDto,
        dto::SessionEvents,
        dto::SessionDiff,
        dto::DiffFile,
        dto::CancelBody,
        dto::CancelOutcomeDto,
        dto::CancelResponse,
        dto::RetryBody,
        dto::TaskDto,
        dto::TaskPage,
        dto::StartTaskBody,
        dto::CreateTaskBody,
        dto::CreatedTasks,
        dto::TaskTree,
        dto::AgentDto,
        dto::AgentList,
        dto::RegisterAgentBody,
        dto::UpdateAgentBody,
        dto::FleetReport,
        dto::FleetServer,
        dto::QueueDepthDto,
        admission::AdmissionReport,
        admission::AdmissionPool,
        admission::AdmissionWaiter,
        dto::StreamEvent,
        inbox::InboxItemDto,
        inbox::InboxList,
        inbox::AnswerBody,
    )),
    tags(
        (name = "sessions", description = "OpenCode sessions run by the engine"),
        (name = "tasks", description = "Requirements decomposed into task trees, and their runs"),
        (name = "agents", description = "The agent registry routing chooses from"),
        (name = "fleet", description = "OpenCode servers and the dispatch queue"),
        (name = "inbox", description = "Agents' permission requests and questions, answered by people or policies"),
        (name = "events", description = "Live domain events (Server-Sent Events)"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
