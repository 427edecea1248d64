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
        dto::EventPayload,
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

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use utoipa::OpenApi;

    use super::ApiDoc;

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn entities_have_real_schemas_and_every_reference_resolves() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for (name, fields) in [
            (
                "Session",
                &["id", "status", "metrics", "stop_reason", "version"][..],
            ),
            (
                "Task",
                &["id", "status", "complexity", "execution", "assignment"],
            ),
            (
                "Agent",
                &["name", "capabilities", "model", "performance", "recent"],
            ),
        ] {
            let properties = schemas[name]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{name} has no properties: {}", schemas[name]));
            for field in fields {
                assert!(properties.contains_key(*field), "{name}.{field}");
            }
        }
        // Enumerations are spelled out.
        let statuses = &schemas["SessionStatus"]["enum"];
        assert!(
            statuses.as_array().unwrap().contains(&"running".into()),
            "{statuses}"
        );

        let mut all = Vec::new();
        refs(&doc, &mut all);
        for reference in all {
            let name = reference.strip_prefix("#/components/schemas/").unwrap();
            assert!(schemas.get(name).is_some(), "dangling {reference}");
        }
    }

    #[test]
    fn event_payloads_are_typed_by_event_type() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for dto in ["SessionEventDto", "StreamEvent"] {
            assert_eq!(
                schemas[dto]["properties"]["payload"]["$ref"], "#/components/schemas/EventPayload",
                "{dto}"
            );
        }
        let payload = &schemas["EventPayload"];
        let alternatives = payload["anyOf"].as_array().unwrap();
        assert_eq!(alternatives.len(), 16, "{payload}");
        let description = payload["description"].as_str().unwrap();
        assert!(
            description.contains("session.awaiting_slot: `AwaitingSlot`"),
            "{description}"
        );
        let slot = &schemas["AwaitingSlot"];
        assert_eq!(slot["properties"]["position"]["type"], "integer", "{slot}");
        let required = slot["required"].as_array().unwrap();
        assert_eq!(required.len(), 4, "{slot}");
        // The figures of a guardrail stop may be absent; the reason is typed.
        let stop = &schemas["GuardrailStopped"];
        assert!(!stop["required"]
            .as_array()
            .unwrap()
            .contains(&"steps".into()));
        assert_eq!(
            stop["properties"]["reason"]["$ref"],
            "#/components/schemas/StopReason"
        );
    }
}
