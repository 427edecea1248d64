//! The dispatch queue in embedded mode. One process owns the file; `BEGIN IMMEDIATE` makes each
//! claim the only writer while it counts and leases (SQLite's equivalent of `SKIP LOCKED`
//! claims), and signals travel in process, sent after the commit that caused them.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::SessionId;
use sqlx::{Row, SqliteConnection};
use tokio::sync::broadcast;

use super::{parse_ts, ts, SqliteStore};
use crate::adapters::sql::{
    claim_of, counts_from_rows, map_insert_error, map_sqlx_error, place, queue_depth_from_row,
    queue_entry_from_row, to_i64, QUEUE_COLUMNS,
};
use crate::ports::{
    Claim, ClaimRequest, DispatchQueue, QueueDepth, QueueEntry, QueueLease, QueueOp, QueueSignal,
    Renewal, RepositoryError,
};

fn plus(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

pub(super) async fn apply_op(
    conn: &mut SqliteConnection,
    op: &QueueOp,
) -> Result<bool, RepositoryError> {
    let now = Utc::now();
    let result = match op {
        QueueOp::Enqueue {
            session,
            priority,
            agent,
            available_at,
        } => sqlx::query(
            "INSERT INTO session_queue (session_id, priority, enqueued_at, available_at, agent)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(session.to_string())
        .bind(priority)
        .bind(ts(now))
        .bind(ts(*available_at))
        .bind(agent)
        .execute(&mut *conn)
        .await
        .map_err(|e| map_insert_error(e, "queue entry", session.to_string()))?,
        QueueOp::Attach {
            lease,
            remote,
            deadline,
        } => sqlx::query(
            "UPDATE session_queue SET server = ?, remote_session = ?, remote_directory = ?,
                message_id = ?, deadline_at = ?
             WHERE session_id = ? AND owner = ? AND fence = ?",
        )
        .bind(&remote.server)
        .bind(&remote.session)
        .bind(&remote.directory)
        .bind(&remote.message_id)
        .bind(deadline.map(ts))
        .bind(lease.session.to_string())
        .bind(&lease.owner)
        .bind(to_i64(lease.fence)?)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?,
        QueueOp::Requeue {
            lease,
            available_at,
        } => sqlx::query(
            "UPDATE session_queue SET owner = NULL, lease_expires_at = NULL, claimed_at = NULL,
                server = NULL, remote_session = NULL, remote_directory = NULL, message_id = NULL,
                deadline_at = NULL, available_at = ?
             WHERE session_id = ? AND owner = ? AND fence = ?",
        )
        .bind(ts(*available_at))
        .bind(lease.session.to_string())
        .bind(&lease.owner)
        .bind(to_i64(lease.fence)?)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?,
        QueueOp::Remove { lease } => sqlx::query(
            "DELETE FROM session_queue WHERE session_id = ? AND owner = ? AND fence = ?",
        )
        .bind(lease.session.to_string())
        .bind(&lease.owner)
        .bind(to_i64(lease.fence)?)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?,
        QueueOp::RemoveWaiting { session } => {
            sqlx::query("DELETE FROM session_queue WHERE session_id = ? AND owner IS NULL")
                .bind(session.to_string())
                .execute(&mut *conn)
                .await
                .map_err(map_sqlx_error)?
        }
        QueueOp::Guard { lease } => {
            let row = sqlx::query(
                "SELECT 1 FROM session_queue WHERE session_id = ? AND owner = ? AND fence = ?",
            )
            .bind(lease.session.to_string())
            .bind(&lease.owner)
            .bind(to_i64(lease.fence)?)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_sqlx_error)?;
            return Ok(row.is_some());
        }
    };
    Ok(result.rows_affected() == 1)
}

impl SqliteStore {
    fn announce(&self, signal: QueueSignal) {
        // No receiver is not an error: nobody dispatches in this process.
        let _ = self.signals.send(signal);
    }

    async fn claim_in(
        conn: &mut SqliteConnection,
        request: &ClaimRequest,
    ) -> Result<Option<Claim>, RepositoryError> {
        let now = ts(Utc::now());
        let Some(row) = sqlx::query(&format!(
            "SELECT {QUEUE_COLUMNS}, (owner IS NOT NULL) AS recovered FROM session_queue q
             WHERE ((q.owner IS NULL AND q.available_at <= ?1)
                    OR (q.owner IS NOT NULL AND q.lease_expires_at < ?1))
               AND (q.agent IS NULL
                    OR (SELECT count(*) FROM session_queue o
                        WHERE o.owner IS NOT NULL AND o.agent = q.agent
                          AND o.session_id <> q.session_id)
                       < COALESCE((SELECT a.max_concurrency FROM agents a WHERE a.name = q.agent),
                                  2147483647))
             ORDER BY (q.owner IS NOT NULL) DESC, q.priority DESC, q.enqueued_at, q.session_id
             LIMIT 1"
        ))
        .bind(&now)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_sqlx_error)?
        else {
            return Ok(None);
        };
        let entry = queue_entry_from_row(&row)?;
        let recovered: i64 = row.try_get("recovered").map_err(map_sqlx_error)?;

        let loads = counts_from_rows(
            &sqlx::query(
                "SELECT server, count(*) AS n FROM session_queue
             WHERE owner IS NOT NULL AND server IS NOT NULL AND session_id <> ?
             GROUP BY server",
            )
            .bind(entry.session.to_string())
            .fetch_all(&mut *conn)
            .await
            .map_err(map_sqlx_error)?,
            "server",
        )?;
        let Some((server, keep_remote)) = place(&entry, request, |name| {
            loads
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, count)| *count)
        }) else {
            return Ok(None);
        };

        let row = sqlx::query(&format!(
            "UPDATE session_queue SET owner = ?, fence = fence + 1, claimed_at = ?,
                lease_expires_at = ?, server = ?,
                remote_session = CASE WHEN ? THEN remote_session END,
                remote_directory = CASE WHEN ? THEN remote_directory END,
                message_id = CASE WHEN ? THEN message_id END
             WHERE session_id = ?
             RETURNING {QUEUE_COLUMNS}"
        ))
        .bind(&request.owner)
        .bind(&now)
        .bind(ts(plus(Utc::now(), request.lease_ttl)))
        .bind(&server)
        .bind(keep_remote)
        .bind(keep_remote)
        .bind(keep_remote)
        .bind(entry.session.to_string())
        .fetch_one(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
        Ok(Some(claim_of(queue_entry_from_row(&row)?, recovered != 0)))
    }
}

#[async_trait]
impl DispatchQueue for SqliteStore {
    #[tracing::instrument(skip_all, fields(owner = %request.owner))]
    async fn claim(&self, request: &ClaimRequest) -> Result<Option<Claim>, RepositoryError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_sqlx_error)?;
        let claim = Self::claim_in(&mut tx, request).await?;
        if claim.is_some() {
            tx.commit().await.map_err(map_sqlx_error)?;
        }
        Ok(claim)
    }

    async fn renew(&self, lease: &QueueLease, ttl: Duration) -> Result<Renewal, RepositoryError> {
        let row = sqlx::query(
            "UPDATE session_queue SET lease_expires_at = ?
             WHERE session_id = ? AND owner = ? AND fence = ?
             RETURNING cancel_requested",
        )
        .bind(ts(plus(Utc::now(), ttl)))
        .bind(lease.session.to_string())
        .bind(&lease.owner)
        .bind(to_i64(lease.fence)?)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        match row {
            Some(row) => {
                let cancel: i64 = row.try_get("cancel_requested").map_err(map_sqlx_error)?;
                Ok(Renewal {
                    cancel_requested: cancel != 0,
                })
            }
            None => Err(RepositoryError::FenceLost {
                session: lease.session,
                fence: lease.fence,
            }),
        }
    }

    async fn release(&self, lease: &QueueLease) -> Result<(), RepositoryError> {
        let result = sqlx::query(
            "UPDATE session_queue SET owner = NULL, lease_expires_at = NULL, claimed_at = NULL,
                available_at = ?
             WHERE session_id = ? AND owner = ? AND fence = ?",
        )
        .bind(ts(Utc::now()))
        .bind(lease.session.to_string())
        .bind(&lease.owner)
        .bind(to_i64(lease.fence)?)
        .execute(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        if result.rows_affected() != 1 {
            return Err(RepositoryError::FenceLost {
                session: lease.session,
                fence: lease.fence,
            });
        }
        self.announce(QueueSignal::Changed);
        Ok(())
    }

    async fn request_cancel(&self, session: SessionId) -> Result<bool, RepositoryError> {
        let result =
            sqlx::query("UPDATE session_queue SET cancel_requested = 1 WHERE session_id = ?")
                .bind(session.to_string())
                .execute(&self.pool)
                .await
                .map_err(map_sqlx_error)?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        self.announce(QueueSignal::Cancel(session));
        Ok(true)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        let now = ts(Utc::now());
        let row = sqlx::query(
            "SELECT min(t) AS due FROM (
                SELECT min(available_at) AS t FROM session_queue
                WHERE owner IS NULL AND available_at > ?1
                UNION ALL
                SELECT min(lease_expires_at) FROM session_queue
                WHERE owner IS NOT NULL AND lease_expires_at > ?1)",
        )
        .bind(&now)
        .fetch_one(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        let due: Option<String> = row.try_get("due").map_err(map_sqlx_error)?;
        due.as_deref()
            .map(parse_ts)
            .transpose()
            .map_err(|message| RepositoryError::Corrupt {
                entity: "queue",
                id: "next_due".into(),
                message,
            })
    }

    async fn entry(&self, session: SessionId) -> Result<Option<QueueEntry>, RepositoryError> {
        sqlx::query(&format!(
            "SELECT {QUEUE_COLUMNS} FROM session_queue WHERE session_id = ?"
        ))
        .bind(session.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?
        .as_ref()
        .map(queue_entry_from_row)
        .transpose()
    }

    async fn depth(&self) -> Result<QueueDepth, RepositoryError> {
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE owner IS NULL) AS waiting,
                count(*) FILTER (WHERE owner IS NOT NULL AND lease_expires_at >= ?1) AS leased,
                count(*) FILTER (WHERE owner IS NOT NULL AND lease_expires_at < ?1) AS expired
             FROM session_queue",
        )
        .bind(ts(Utc::now()))
        .fetch_one(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        queue_depth_from_row(&row)
    }

    async fn leased_by_agent(
        &self,
    ) -> Result<std::collections::BTreeMap<String, u64>, RepositoryError> {
        let rows = sqlx::query(
            "SELECT agent, count(*) AS n FROM session_queue WHERE owner IS NOT NULL AND agent IS NOT NULL GROUP BY agent",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        Ok(counts_from_rows(&rows, "agent")?.into_iter().collect())
    }

    fn signals(&self) -> broadcast::Receiver<QueueSignal> {
        self.signals.subscribe()
    }
}
