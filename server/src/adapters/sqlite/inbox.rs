//! The human-in-the-loop inbox (see migrations/sqlite/0009_inbox.sql).

use async_trait::async_trait;
use domain::{InboxItem, InboxItemId, InboxKind, InboxResolution, InboxStatus, SessionId};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{parse_ts, parse_uuid, ts, SqliteStore};
use crate::adapters::sql::{map_insert_error, map_sqlx_error, to_i64};
use crate::ports::{EntityKey, InboxFilter, InboxRepository, Recorded, RepositoryError};

const COLUMNS: &str = "id, server, remote_session, directory, session_id, request_id, request, \
                       status, created_at, escalated_at, resolved_at, resolution, version";

fn corrupt(id: &str, message: impl ToString) -> RepositoryError {
    RepositoryError::Corrupt {
        entity: "inbox item",
        id: id.to_owned(),
        message: message.to_string(),
    }
}

fn item_from_row(row: &SqliteRow) -> Result<InboxItem, RepositoryError> {
    let id: String = row.try_get("id").map_err(|e| corrupt("?", e))?;
    let get_text = |name: &str| -> Result<String, RepositoryError> {
        row.try_get(name).map_err(|e| corrupt(&id, e))
    };
    let get_opt = |name: &str| -> Result<Option<String>, RepositoryError> {
        row.try_get(name).map_err(|e| corrupt(&id, e))
    };
    let time = |raw: &str| parse_ts(raw).map_err(|e| corrupt(&id, e));
    let opt_time = |name: &str| -> Result<_, RepositoryError> {
        get_opt(name)?.as_deref().map(time).transpose()
    };
    let kind: InboxKind =
        serde_json::from_str(&get_text("request")?).map_err(|e| corrupt(&id, e))?;
    let resolution: Option<InboxResolution> = get_opt("resolution")?
        .map(|raw| serde_json::from_str(&raw).map_err(|e| corrupt(&id, e)))
        .transpose()?;
    let version: i64 = row.try_get("version").map_err(|e| corrupt(&id, e))?;
    Ok(InboxItem {
        id: InboxItemId::from_uuid(parse_uuid(&id).map_err(|e| corrupt(&id, e))?),
        server: get_text("server")?,
        remote_session: get_text("remote_session")?,
        directory: get_opt("directory")?,
        session: get_opt("session_id")?
            .map(|raw| parse_uuid(&raw).map(SessionId::from_uuid))
            .transpose()
            .map_err(|e| corrupt(&id, e))?,
        request_id: get_text("request_id")?,
        kind,
        status: get_text("status")?
            .parse::<InboxStatus>()
            .map_err(|e| corrupt(&id, e))?,
        created_at: time(&get_text("created_at")?)?,
        escalated_at: opt_time("escalated_at")?,
        resolved_at: opt_time("resolved_at")?,
        resolution,
        version: u64::try_from(version).map_err(|e| corrupt(&id, e))?,
    })
}

fn resolution_json(item: &InboxItem) -> Option<String> {
    // Plain data: serialising cannot fail.
    item.resolution
        .as_ref()
        .map(|r| serde_json::to_string(r).expect("resolutions serialise"))
}

#[async_trait]
impl InboxRepository for SqliteStore {
    async fn insert_if_new(&self, item: &InboxItem) -> Result<Recorded, RepositoryError> {
        let request = serde_json::to_string(&item.kind).expect("requests serialise");
        let inserted = sqlx::query(
            "INSERT INTO inbox_items (id, server, remote_session, directory, session_id, \
             request_id, kind, request, status, created_at, escalated_at, resolved_at, \
             resolution, version)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
             ON CONFLICT (server, request_id) DO NOTHING",
        )
        .bind(item.id.to_string())
        .bind(&item.server)
        .bind(&item.remote_session)
        .bind(&item.directory)
        .bind(item.session.map(|s| s.to_string()))
        .bind(&item.request_id)
        .bind(item.kind.name())
        .bind(request)
        .bind(item.status.as_str())
        .bind(ts(item.created_at))
        .bind(item.escalated_at.map(ts))
        .bind(item.resolved_at.map(ts))
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
        sqlx::query(&format!("SELECT {COLUMNS} FROM inbox_items WHERE id = ?"))
            .bind(id.to_string())
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
            "SELECT {COLUMNS} FROM inbox_items WHERE server = ? AND request_id = ?"
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
            "SELECT {COLUMNS} FROM inbox_items {filter} ORDER BY created_at DESC, id DESC LIMIT ?"
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
            "UPDATE inbox_items SET session_id = ?, status = ?, escalated_at = ?, \
             resolved_at = ?, resolution = ?, version = version + 1
             WHERE id = ? AND version = ?",
        )
        .bind(item.session.map(|s| s.to_string()))
        .bind(item.status.as_str())
        .bind(item.escalated_at.map(ts))
        .bind(item.resolved_at.map(ts))
        .bind(resolution_json(item))
        .bind(item.id.to_string())
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
