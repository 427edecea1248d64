//! The outbox and the per-session event log: appended to by commits, drained by the relay.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::SessionId;
use sqlx::PgConnection;

use super::PostgresStore;
use crate::adapters::sql::{map_sqlx_error, outbox_message_from_row};
use crate::ports::{NewEvent, Outbox, OutboxMessage, RepositoryError};

pub(super) async fn append(
    conn: &mut PgConnection,
    event: &NewEvent,
) -> Result<(), RepositoryError> {
    sqlx::query(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, occurred_at)
         VALUES ($1, $2, $3, $4::jsonb, $5)",
    )
    .bind(event.aggregate.as_str())
    .bind(event.aggregate_id)
    .bind(&event.event_type)
    .bind(event.payload.to_string())
    .bind(event.occurred_at)
    .execute(conn)
    .await
    .map_err(map_sqlx_error)?;
    Ok(())
}

/// Takes the next `seq` of the session's log. The commit holds the session row's lock, so no
/// other writer can take the same one.
pub(super) async fn append_session_event(
    conn: &mut PgConnection,
    session: SessionId,
    event: &NewEvent,
) -> Result<(), RepositoryError> {
    sqlx::query(
        "INSERT INTO session_events (session_id, seq, event_type, payload, occurred_at)
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3::jsonb, $4 FROM session_events
         WHERE session_id = $1",
    )
    .bind(session.as_uuid())
    .bind(&event.event_type)
    .bind(event.payload.to_string())
    .bind(event.occurred_at)
    .execute(conn)
    .await
    .map_err(map_sqlx_error)?;
    Ok(())
}

#[async_trait]
impl Outbox for PostgresStore {
    async fn pending(&self, limit: u32) -> Result<Vec<OutboxMessage>, RepositoryError> {
        sqlx::query(
            "SELECT id, aggregate_type, aggregate_id, event_type, payload::text AS payload,
                occurred_at, published_at
             FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .iter()
        .map(outbox_message_from_row)
        .collect()
    }

    async fn after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, RepositoryError> {
        sqlx::query(
            "SELECT id, aggregate_type, aggregate_id, event_type, payload::text AS payload,
                occurred_at, published_at
             FROM outbox WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .iter()
        .map(outbox_message_from_row)
        .collect()
    }

    async fn last_id(&self) -> Result<i64, RepositoryError> {
        let (id,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM outbox")
            .fetch_one(&self.pool)
            .await
            .map_err(map_sqlx_error)?;
        Ok(id)
    }

    #[tracing::instrument(skip_all, fields(messages = ids.len()))]
    async fn mark_published(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), RepositoryError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE outbox SET published_at = $1 WHERE published_at IS NULL AND id = ANY($2)",
        )
        .bind(at)
        .bind(ids)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(())
    }
}
