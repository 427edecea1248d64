//! `/api/v1/events`: a live tail of the transactional outbox as Server-Sent Events. Each client
//! polls the outbox from its own position (every [`POLL`]); `Last-Event-ID` or `?after=` resume.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use uuid::Uuid;

use super::dto::{ErrorBody, EventStreamQuery, StreamEvent};
use super::errors::ApiError;
use super::extract::ApiQuery;
use super::{non_empty, ApiState};
use oio_application::ports::{Aggregate, Outbox, OutboxMessage};

/// How often each stream looks for new messages.
const POLL: Duration = Duration::from_millis(250);
/// Most messages read per poll.
const BATCH: u32 = 200;

/// Which messages a client wants.
#[derive(Clone, Copy, Debug)]
struct Filter {
    session: Option<Uuid>,
    aggregate: Option<Aggregate>,
}

impl Filter {
    fn accepts(&self, message: &OutboxMessage) -> bool {
        self.session
            .is_none_or(|id| message.event.aggregate_id == id)
            && self.aggregate.is_none_or(|a| message.event.aggregate == a)
    }
}

#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    params(
        EventStreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this outbox id"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `id:` outbox id, `event:` event type, `data:` a StreamEvent", body = StreamEvent, content_type = "text/event-stream"),
        (status = 400, description = "A bad `after`, `session` or `aggregate` (named)", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventStreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filter = Filter {
        session: non_empty(&query.session)
            .map(|raw| {
                Uuid::parse_str(raw)
                    .map_err(|_| ApiError::invalid("session", format!("`{raw}` is not a uuid")))
            })
            .transpose()?,
        aggregate: non_empty(&query.aggregate)
            .map(|raw| {
                Aggregate::parse(raw).ok_or_else(|| {
                    ApiError::invalid(
                        "aggregate",
                        format!("`{raw}` is not one of session, task, agent"),
                    )
                })
            })
            .transpose()?,
    };
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|id| *id >= 0)
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID", "must be a non-negative outbox id")
                })
        })
        .transpose()?;
    let after = match last_event_id {
        Some(id) => id,
        None => match non_empty(&query.after) {
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|id| *id >= 0)
                .ok_or_else(|| ApiError::invalid("after", "must be a non-negative outbox id"))?,
            None => state.outbox.last_id().await?,
        },
    };
    tracing::debug!(after, ?filter, "event stream opened");
    Ok(Sse::new(tail(state.outbox.clone(), after, filter)).keep_alive(KeepAlive::default()))
}

struct Tail {
    outbox: Arc<dyn Outbox>,
    /// The last id read (delivered or filtered out).
    position: i64,
    filter: Filter,
    ready: VecDeque<OutboxMessage>,
    /// Wait [`POLL`] before the next read (not before the first, nor after a full batch).
    wait: bool,
}

fn tail(
    outbox: Arc<dyn Outbox>,
    after: i64,
    filter: Filter,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = Tail {
        outbox,
        position: after,
        filter,
        ready: VecDeque::new(),
        wait: false,
    };
    stream::unfold(start, |mut tail| async move {
        loop {
            if let Some(message) = tail.ready.pop_front() {
                return Some((Ok(to_event(message)), tail));
            }
            if tail.wait {
                tokio::time::sleep(POLL).await;
            }
            tail.wait = true;
            match tail.outbox.after(tail.position, BATCH).await {
                Ok(messages) => {
                    // A full batch: more are waiting, read on at once.
                    tail.wait = messages.len() < BATCH as usize;
                    if let Some(last) = messages.last() {
                        tail.position = last.id;
                    }
                    let filter = tail.filter;
                    tail.ready
                        .extend(messages.into_iter().filter(|m| filter.accepts(m)));
                }
                Err(error) => tracing::warn!(%error, "event stream: outbox read failed"),
            }
        }
    })
}

fn to_event(message: OutboxMessage) -> Event {
    let data = StreamEvent {
        id: message.id,
        aggregate: message.event.aggregate.as_str().to_owned(),
        aggregate_id: message.event.aggregate_id,
        event_type: message.event.event_type.clone(),
        payload: message.event.payload,
        occurred_at: message.event.occurred_at,
    };
    let event = Event::default().id(message.id.to_string());
    // SSE field values cannot hold line breaks; event types never do, but be safe.
    let event = if message.event.event_type.contains(['\n', '\r']) {
        event
    } else {
        event.event(&message.event.event_type)
    };
    match serde_json::to_string(&data) {
        Ok(json) => event.data(json),
        Err(error) => {
            tracing::warn!(%error, id = message.id, "event stream: unserialisable message");
            event.comment("unserialisable message")
        }
    }
}
