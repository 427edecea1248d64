//! The human-in-the-loop inbox (see migrations/*/0009_inbox.sql).

use async_trait::async_trait;
use domain::{InboxItem, InboxItemId};

use super::decode::inbox_item_from_row;
use super::driver::{Arg, Exec, Sql};
use super::{map_insert_error, map_sqlx_error, SqlStore};
use oio_application::ports::{EntityKey, InboxFilter, InboxRepository, Recorded, RepositoryError};

const COLUMNS: &str = "id, server, remote_session, directory, session_id, request_id, request, \
                       status, created_at, escalated_at, resolved_at, resolution, version";

impl SqlStore {
    async fn fetch_items(&self, sql: Sql) -> Result<Vec<InboxItem>, RepositoryError> {
        self.db()
            .fetch_all(sql)
            .await
            .map_err(map_sqlx_error)?
            .iter()
            .map(inbox_item_from_row)
            .collect()
    }
}

#[async_trait]
impl InboxRepository for SqlStore {
    async fn insert_if_new(&self, item: &InboxItem) -> Result<Recorded, RepositoryError> {
        let sql = Sql::new(
            "INSERT INTO inbox_items (id, server, remote_session, directory, session_id, \
             request_id, kind, request, status, created_at, escalated_at, resolved_at, \
             resolution, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1)
             ON CONFLICT (server, request_id) DO NOTHING",
        )
        .bind(item.id)
        .bind(&item.server)
        .bind(&item.remote_session)
        .bind(&item.directory)
        .bind(item.session)
        .bind(&item.request_id)
        .bind(item.kind.name())
        .bind(Arg::json(&item.kind, "inbox request")?)
        .bind(item.status.as_str())
        .bind(item.created_at)
        .bind(item.escalated_at)
        .bind(item.resolved_at)
        .bind(Arg::opt_json(item.resolution.as_ref(), "inbox resolution")?);
        let inserted = self
            .db()
            .execute(sql)
            .await
            .map_err(|e| map_insert_error(e, "inbox item", item.id.to_string()))?
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
        let sql = format!("SELECT {COLUMNS} FROM inbox_items WHERE id = $1");
        Ok(self.fetch_items(Sql::new(sql).bind(id)).await?.pop())
    }

    async fn find(
        &self,
        server: &str,
        request_id: &str,
    ) -> Result<Option<InboxItem>, RepositoryError> {
        let sql =
            format!("SELECT {COLUMNS} FROM inbox_items WHERE server = $1 AND request_id = $2");
        Ok(self
            .fetch_items(Sql::new(sql).bind(server).bind(request_id))
            .await?
            .pop())
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
        let sql = format!(
            "SELECT {COLUMNS} FROM inbox_items {filter} ORDER BY created_at DESC, id DESC LIMIT $1"
        );
        self.fetch_items(Sql::new(sql).bind(limit)).await
    }

    async fn update(&self, item: &InboxItem) -> Result<InboxItem, RepositoryError> {
        let sql = Sql::new(
            "UPDATE inbox_items SET session_id = $1, status = $2, escalated_at = $3, \
             resolved_at = $4, resolution = $5, version = version + 1
             WHERE id = $6 AND version = $7",
        )
        .bind(item.session)
        .bind(item.status.as_str())
        .bind(item.escalated_at)
        .bind(item.resolved_at)
        .bind(Arg::opt_json(item.resolution.as_ref(), "inbox resolution")?)
        .bind(item.id)
        .bind(Arg::count(item.version)?);
        if self.db().execute(sql).await.map_err(map_sqlx_error)? == 1 {
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
