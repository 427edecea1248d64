//! `/api/v1/inbox`: the human-in-the-loop inbox — list, read, and answer the permission requests
//! and questions of every agent server. An answer is relayed to the server that asked before it
//! is stored: a relay failure answers 502 and stores nothing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use domain::{InboxAnswer, InboxError, InboxItem, InboxItemId, InboxReply};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::{ErrorBody, ErrorDetail};
use super::errors::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{non_empty, parse_id, ApiState};
use oio_application::ports::InboxFilter;
use oio_application::{InboxServiceError, Principal};

/// Most items one list returns.
pub const MAX_LIMIT: u32 = 500;
/// Items a list returns by default.
pub const DEFAULT_LIMIT: u32 = 100;
/// Longest note sent with a permission reply, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Most questions (and labels per question) an answer may carry.
pub const MAX_ANSWERS: usize = 32;
/// Longest answer label or free text, in characters.
pub const MAX_LABEL_CHARS: usize = 2000;

/// One inbox item as stored: id, server, remote session, directory, our session, request id,
/// kind (`permission` with its patterns, or `question` with its options), status, times, and the
/// resolution (answer, by whom, when).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct InboxItemDto(pub InboxItem);

impl utoipa::PartialSchema for InboxItemDto {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .description(Some(
                "An inbox item as stored: id, server, remote_session, directory, session (ours), \
                 request_id, kind ({type: permission, permission, patterns, always} or {type: \
                 question, questions: [{question, header, options: [{label, description}], \
                 multiple, custom}]}), status (pending, escalated, answered, expired), \
                 created_at, escalated_at, resolved_at, resolution ({answer, by, at}), version.",
            ))
            .into()
    }
}

impl ToSchema for InboxItemDto {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("InboxItem")
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboxList {
    /// Newest first.
    pub items: Vec<InboxItemDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxListQuery {
    /// `open` (pending or escalated; the default) or `all`.
    pub status: Option<String>,
    /// Most items returned, 1..=500 (default 100).
    pub limit: Option<String>,
}

/// An answer. For a permission request: `{"reply": "once"|"always"|"reject", "message": "…"}`.
/// For a question: `{"answers": [["label", …], …]}` (one list per question, in order), or
/// `{"reject": true}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    pub reply: Option<String>,
    pub message: Option<String>,
    pub answers: Option<Vec<Vec<String>>>,
    pub reject: Option<bool>,
}

impl AnswerBody {
    /// The answer, and the body field it came from (named in refusals).
    fn into_answer(self) -> Result<(InboxAnswer, &'static str), ApiError> {
        let reject = self.reject.unwrap_or(false);
        let given = usize::from(self.reply.is_some())
            + usize::from(self.answers.is_some())
            + usize::from(reject);
        if given != 1 {
            let field = match (&self.reply, &self.answers) {
                (Some(_), _) => "reply",
                (None, Some(_)) => "answers",
                (None, None) => "reply",
            };
            return Err(ApiError::invalid(
                field,
                "give exactly one of `reply` (permissions), `answers` or `reject: true` (questions)",
            ));
        }
        if self.message.is_some() && self.reply.is_none() {
            return Err(ApiError::invalid(
                "message",
                "a message goes with a permission `reply` only",
            ));
        }
        if let Some(raw) = self.reply {
            let reply = raw
                .parse::<InboxReply>()
                .map_err(|e| ApiError::invalid("reply", e.to_string()))?;
            let message = self.message.filter(|m| !m.trim().is_empty());
            if let Some(message) = &message {
                let chars = message.chars().count();
                if chars > MAX_MESSAGE_CHARS {
                    return Err(ApiError::invalid(
                        "message",
                        format!("must be at most {MAX_MESSAGE_CHARS} characters (got {chars})"),
                    ));
                }
            }
            return Ok((InboxAnswer::Permission { reply, message }, "reply"));
        }
        if let Some(answers) = self.answers {
            if answers.len() > MAX_ANSWERS {
                return Err(ApiError::invalid(
                    "answers",
                    format!("must hold at most {MAX_ANSWERS} lists"),
                ));
            }
            for (i, labels) in answers.iter().enumerate() {
                if labels.len() > MAX_ANSWERS {
                    return Err(ApiError::invalid(
                        format!("answers[{i}]"),
                        format!("must hold at most {MAX_ANSWERS} labels"),
                    ));
                }
                if labels.iter().any(|l| l.chars().count() > MAX_LABEL_CHARS) {
                    return Err(ApiError::invalid(
                        format!("answers[{i}]"),
                        format!("labels must be at most {MAX_LABEL_CHARS} characters"),
                    ));
                }
            }
            return Ok((InboxAnswer::Question { answers }, "answers"));
        }
        Ok((InboxAnswer::QuestionRejected, "reject"))
    }
}

/// The inbox's refusals: the API's errors, plus 502 when the agent server did not take an answer.
#[derive(Debug)]
pub enum InboxApiError {
    Api(ApiError),
    BadGateway(String),
}

impl From<ApiError> for InboxApiError {
    fn from(error: ApiError) -> Self {
        InboxApiError::Api(error)
    }
}

impl IntoResponse for InboxApiError {
    fn into_response(self) -> Response {
        match self {
            InboxApiError::Api(error) => error.into_response(),
            InboxApiError::BadGateway(message) => {
                tracing::warn!(%message, "inbox answer not relayed");
                (
                    StatusCode::BAD_GATEWAY,
                    Json(ErrorBody {
                        error: ErrorDetail {
                            field: None,
                            message,
                        },
                    }),
                )
                    .into_response()
            }
        }
    }
}

/// Maps a service failure; `field` is the body field the answer came from.
fn refusal(error: InboxServiceError, field: &str) -> InboxApiError {
    match error {
        e @ InboxServiceError::NotFound(_) => ApiError::NotFound(e.to_string()).into(),
        InboxServiceError::Refused(e @ InboxError::NotOpen { .. }) => {
            ApiError::Conflict(e.to_string()).into()
        }
        InboxServiceError::Refused(e) => {
            let field = match &e {
                InboxError::EmptyAnswer { question }
                | InboxError::TooManyChoices { question, .. }
                | InboxError::UnknownOption { question, .. } => format!("answers[{question}]"),
                _ => field.to_owned(),
            };
            ApiError::invalid(field, e.to_string()).into()
        }
        e @ (InboxServiceError::UnknownServer(_) | InboxServiceError::Relay { .. }) => {
            InboxApiError::BadGateway(e.to_string())
        }
        InboxServiceError::Storage(e) => ApiError::from(e).into(),
    }
}

#[utoipa::path(
    get, path = "/api/v1/inbox", tag = "inbox",
    params(InboxListQuery),
    responses(
        (status = 200, description = "Items newest first", body = InboxList),
        (status = 400, description = "A bad status or limit (named)", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<InboxListQuery>,
) -> Result<Json<InboxList>, InboxApiError> {
    let filter = match non_empty(&query.status) {
        None | Some("open") => InboxFilter::Open,
        Some("all") => InboxFilter::All,
        Some(other) => {
            return Err(
                ApiError::invalid("status", format!("`{other}` is not one of open, all")).into(),
            )
        }
    };
    let limit = match non_empty(&query.limit) {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::invalid("limit", format!("must be 1..={MAX_LIMIT}")))?,
    };
    let items = state
        .inbox
        .list(filter, limit)
        .await
        .map_err(|e| refusal(e, "status"))?;
    Ok(Json(InboxList {
        items: items.into_iter().map(InboxItemDto).collect(),
    }))
}

#[utoipa::path(
    get, path = "/api/v1/inbox/{id}", tag = "inbox",
    params(("id" = Uuid, Path, description = "Inbox item id")),
    responses(
        (status = 200, body = InboxItemDto),
        (status = 400, description = "Not a uuid", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<InboxItemDto>, InboxApiError> {
    let id = parse_id::<InboxItemId>("id", &id)?;
    let item = state.inbox.get(id).await.map_err(|e| refusal(e, "id"))?;
    Ok(Json(InboxItemDto(item)))
}

#[utoipa::path(
    post, path = "/api/v1/inbox/{id}/answer", tag = "inbox",
    params(("id" = Uuid, Path, description = "Inbox item id")),
    request_body = AnswerBody,
    responses(
        (status = 200, description = "Relayed to the agent server and stored", body = InboxItemDto),
        (status = 400, description = "A bad or unfitting answer (field named)", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "Already answered or expired", body = ErrorBody),
        (status = 502, description = "The agent server did not take the answer; nothing stored", body = ErrorBody),
    )
)]
pub async fn answer(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AnswerBody>,
) -> Result<Json<InboxItemDto>, InboxApiError> {
    let id = parse_id::<InboxItemId>("id", &id)?;
    let (answer, field) = body.into_answer()?;
    let item = state
        .inbox
        .answer(id, answer, &principal.name)
        .await
        .map_err(|e| refusal(e, field))?;
    Ok(Json(InboxItemDto(item)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Result<(InboxAnswer, &'static str), ApiError> {
        super::super::extract::parse_json::<AnswerBody>(json.as_bytes())?.into_answer()
    }

    fn field_of(error: ApiError) -> Option<String> {
        match error {
            ApiError::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bodies_become_answers() {
        assert_eq!(
            body(r#"{"reply":"once"}"#).unwrap().0,
            InboxAnswer::Permission {
                reply: InboxReply::Once,
                message: None
            }
        );
        assert_eq!(
            body(r#"{"reply":"reject","message":"not now"}"#).unwrap().0,
            InboxAnswer::Permission {
                reply: InboxReply::Reject,
                message: Some("not now".into())
            }
        );
        assert_eq!(
            body(r#"{"answers":[["a"],["b","c"]]}"#).unwrap().0,
            InboxAnswer::Question {
                answers: vec![vec!["a".into()], vec!["b".into(), "c".into()]]
            }
        );
        assert_eq!(
            body(r#"{"reject":true}"#).unwrap().0,
            InboxAnswer::QuestionRejected
        );
    }

    #[test]
    fn bad_bodies_name_the_field() {
        assert_eq!(
            field_of(body(r#"{"reply":"sometimes"}"#).unwrap_err()),
            Some("reply".into())
        );
        assert_eq!(field_of(body("{}").unwrap_err()), Some("reply".into()));
        assert_eq!(
            field_of(body(r#"{"reply":"once","answers":[["a"]]}"#).unwrap_err()),
            Some("reply".into())
        );
        assert_eq!(
            field_of(body(r#"{"answers":[["a"]],"message":"x"}"#).unwrap_err()),
            Some("message".into())
        );
        assert_eq!(
            field_of(body(r#"{"reply":"once","colour":"red"}"#).unwrap_err()),
            Some("colour".into())
        );
        assert_eq!(
            field_of(body(r#"{"answers":"a"}"#).unwrap_err()),
            Some("answers".into())
        );
    }
}
