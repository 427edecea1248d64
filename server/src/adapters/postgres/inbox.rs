//! The human-in-the-loop inbox (see migrations/postgres/0009_inbox.sql).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{InboxItem, InboxItemId, InboxKind, InboxResolution, InboxStatus, SessionId};
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::PostgresStore;
use crate::adapters::sql::{map_insert_error, map_sqlx_error, to_i64};
use crate::ports::{EntityKey, InboxFilter, InboxRepository, Recorded, RepositoryError};

const COLUMNS: &str = "id, server, remote_session, directory, session_id, request_id, \
                       request::text AS request, status, created_at, escalated_at, resolved_at, \
                       resolution::text AS resolution, version";

fn corrupt(id: &str, message: impl ToString) -> RepositoryError {
    RepositoryError::Corrupt {
        entity: "inbox item",
        id: id.to_owned(),
        message: message.to_string(),
    }
}

fn item_from_row(row: &PgRow) -> Result<InboxItem, RepositoryError> {
    let id: Uuid = row.try_get("id").map_err(|e| corrupt("?", e))?;
    let shown = id.to_string();
    let text = |name: &str| -> Result<String, RepositoryError> {
        row.try_get(name).map_err(|e| corrupt(&shown, e))
    };
    let opt_text = |name: &str| -> Result<Option<String>, RepositoryError> {
        row.try_get(name).map_err(|e| corrupt(&shown, e))
    };
    let opt_time = |name: &str| -> Result<Option<DateTime<Utc>>, RepositoryError> {
        row.try_get(name).map_err(|e| corrupt(&shown, e))
    };
    let kind: InboxKind =
        serde_json::from_str(&text("request")?).map_err(|e| corrupt(&shown, e))?;
    let resolution: Option<InboxResolution> = opt_text("resolution")?
        .map(|raw| serde_json::from_str(&raw).map_err(|e| corrupt(&shown, e)))
        .transpose()?;
    let session: Option<Uuid> = row.try_get("session_id").map_err(|e| corrupt(&shown, e))?;
    let version: i64 = row.try_get("version").map_err(|e| corrupt(&shown, e))?;
    Ok(InboxItem {
        id: InboxItemId::from_uuid(id),
        server: text("server")?,
        remote_session: text("remote_session")?,
        directory: opt_text("directory")?,
        session: session.map(SessionId::from_uuid),
        request_id: text("request_id")?,
        kind,
        status: text("status")?
            .parse::<InboxStatus>()
            .map_err(|e| corrupt(&shown, e))?,
        created_at: row.try_get("created_at").map_err(|e| corrupt(&shown, e))?,
        escalated_at: opt_time("escalated_at")?,
        resolved_at: opt_time("resolved_at")?,
        resolution,
        version: u64::try_from(version).map_err(|e| corrupt(&shown, e))?,
    })
}

fn resolution_json(item: &InboxItem) -> Option<String> {
    // Plain data: serialising cannot fail.
    item.resolution
        .as_ref()
        .map(|r| serde_json::to_string(r).expect("resolutions serialise"))
}

#[async_trait]
impl InboxRepository for PostgresStore {
    async fn insert_if_new(&self, item: &InboxItem) -> Result<Recorded, RepositoryError> {
        let request = serde_json::to_string(&item.kind).expect("requests serialise");
        let inserted = sqlx::query(
            "INSERT INTO inbox_items (id, server, remote_session, directory, session_id, \
             request_id, kind, request, status, created_at, escalated_at, resolved_at, \
             resolution, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13::jsonb, 1)
             ON CONFLICT (server, request_id) DO NOTHING",
        )
        .bind(item.id.as_uuid())
        .bind(&item.server)
        .bind(&item.remote_session)
        .bind(&item.directory)
        .bind(item.session.map(|s| s.as_uuid()))
        .bind(&item.request_id)
        .bind(item.kind.name())
        .bind(request)
        .bind(item.status.as_str())
        .bind(item.created_at)
        .bind(item.escalated_at)
        .bind(item.resolved_at)
        .bind(resolution_json(item))
        .execute(&self.pool)
        .await
        .map_err(|e| map_insert_error(e, "inbox item", item.id.to_string()))?
        .rows_affected()
            == 1;
        let stored = self
            .find(&item.server, &item.request_id)
            .await?
            .ok_or_else(|| {
                RepositoryError::Unavailable("inbox item vanished after insert".into())
            })?;
        Ok(Recorded {
            item: stored,
            new: inserted,
        })
    }

    async fn get(&self, id: InboxItemId) -> Result<Option<InboxItem>, RepositoryError> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM inbox_items WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx_error)?
            .as_ref()
            .map(item_from_row)
            .transpose()
    }

    async fn find(
        &self,
        server: &str,
        request_id: &str,
    ) -> Result<Option<InboxItem>, RepositoryError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM inbox_items WHERE server = $1 AND request_id = $2"
        ))
        .bind(server)
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(item_from_row)
        .transpose()
    }

    async fn list(
        &self,
        filter: InboxFilter,
        limit: u32,
    ) -> Result<Vec<InboxItem>, RepositoryError> {
        let filter = match filter {
            InboxFilter::Open => "WHERE status IN ('pending', 'escalated')",
            InboxFilter::All => "",
        };
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM inbox_items {filter} ORDER BY created_at DESC, id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .iter()
        .map(item_from_row)
        .collect()
    }

    async fn update(&self, item: &InboxItem) -> Result<InboxItem, RepositoryError> {
        let expected = to_i64(item.version)?;
        let updated = sqlx::query(
            "UPDATE inbox_items SET session_id = $1, status = $2, escalated_at = $3, \
             resolved_at = $4, resolution = $5::jsonb, version = version + 1
             WHERE id = $6 AND version = $7",
        )
        .bind(item.session.map(|s| s.as_uuid()))
        .bind(item.status.as_str())
        .bind(item.escalated_at)
        .bind(item.resolved_at)
        .bind(resolution_json(item))
        .bind(item.id.as_uuid())
        .bind(expected)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .rows_affected();
        if updated == 1 {
            let mut stored = item.clone();
            stored.version = item.version + 1;
            return Ok(stored);
        }
        let key = EntityKey::InboxItem(item.id);
        match self.get(item.id).await? {
            None => Err(RepositoryError::NotFound(key)),
            Some(current) => Err(RepositoryError::Conflict {
                key,
                expected: item.version,
                actual: current.version,
            }),
        }
    }
}
