//! The outbox and the per-session event log: appended to by commits, drained by the relay.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::SessionId;

use super::decode::outbox_message_from_row;
use super::driver::{Arg, Exec, Sql, Tx};
use super::{map_sqlx_error, SqlStore};
use oio_application::ports::{NewEvent, Outbox, OutboxMessage, RepositoryError};

const COLUMNS: &str =
    "id, aggregate_type, aggregate_id, event_type, payload, occurred_at, published_at";

pub(super) async fn append(tx: &mut Tx, event: &NewEvent) -> Result<(), RepositoryError> {
    tx.execute(
        Sql::new(
            "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, occurred_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(event.aggregate.as_str())
        .bind(event.aggregate_id)
        .bind(&event.event_type)
        .bind(Arg::Json(Some(event.payload.clone())))
        .bind(event.occurred_at),
    )
    .await
    .map_err(map_sqlx_error)?;
    Ok(())
}

/// Takes the next `seq` of the session's log. The commit holds the session row's lock (SQLite:
/// the database's write lock), so no other writer can take the same one.
pub(super) async fn append_session_event(
    tx: &mut Tx,
    session: SessionId,
    event: &NewEvent,
) -> Result<(), RepositoryError> {
    tx.execute(
        Sql::new(
            "INSERT INTO session_events (session_id, seq, event_type, payload, occurred_at)
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM session_events
             WHERE session_id = $1",
        )
        .bind(session)
        .bind(&event.event_type)
        .bind(Arg::Json(Some(event.payload.clone())))
        .bind(event.occurred_at),
    )
    .await
    .map_err(map_sqlx_error)?;
    Ok(())
}

impl SqlStore {
    async fn fetch_messages(&self, sql: Sql) -> Result<Vec<OutboxMessage>, RepositoryError> {
        self.db()
            .fetch_all(sql)
            .await
            .map_err(map_sqlx_error)?
            .iter()
            .map(outbox_message_from_row)
            .collect()
    }
}

#[async_trait]
impl Outbox for SqlStore {
    async fn pending(&self, limit: u32) -> Result<Vec<OutboxMessage>, RepositoryError> {
        let sql =
            format!("SELECT {COLUMNS} FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1");
        self.fetch_messages(Sql::new(sql).bind(limit)).await
    }

    async fn after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, RepositoryError> {
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id > $1 ORDER BY id LIMIT $2");
        self.fetch_messages(Sql::new(sql).bind(after_id).bind(limit))
            .await
    }

    async fn last_id(&self) -> Result<i64, RepositoryError> {
        let row = self
            .db()
            .fetch_one(Sql::new("SELECT COALESCE(MAX(id), 0) AS id FROM outbox"))
            .await
            .map_err(map_sqlx_error)?;
        super::decode::Columns::int(&row, "id").map_err(|message| RepositoryError::Corrupt {
            entity: "outbox",
            id: "last id".into(),
            message,
        })
    }

    #[tracing::instrument(skip_all, fields(messages = ids.len()))]
    async fn mark_published(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), RepositoryError> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE outbox SET published_at = $1 WHERE published_at IS NULL AND {}",
            self.backend().any_of("id", 2)
        );
        self.db()
            .execute(Sql::new(sql).bind(at).bind(ids.to_vec()))
            .await
            .map_err(map_sqlx_error)?;
        Ok(())
    }
}
