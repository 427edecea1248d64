//! The dispatch queue on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED` under one
//! transaction-scoped advisory lock (so per-server and per-agent counts are exact across
//! replicas), leases in database time (`now()`), wake-ups over `LISTEN/NOTIFY`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::SessionId;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool, Row};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::PostgresStore;
use crate::adapters::sql::{
    counts_from_rows, map_sqlx_error, queue_depth_from_row, queue_entry_from_row, QUEUE_COLUMNS,
};
use crate::ports::{
    Claim, ClaimRequest, DispatchQueue, QueueDepth, QueueEntry, QueueLease, QueueOp, QueueSignal,
    Renewal, RepositoryError,
};

/// The NOTIFY channel of queue changes.
pub(super) const CHANNEL: &str = "oio_queue";
/// The advisory lock every claim holds until it commits ("oio:disp").
const DISPATCH_LOCK: i64 = 0x6f69_6f3a_6469_7370;

fn payload_of(signal: &QueueSignal) -> String {
    match signal {
        QueueSignal::Changed => String::new(),
        QueueSignal::Cancel(id) => format!("cancel:{id}"),
    }
}

fn signal_of(payload: &str) -> QueueSignal {
    payload
        .strip_prefix("cancel:")
        .and_then(|id| Uuid::parse_str(id).ok())
        .map(|id| QueueSignal::Cancel(SessionId::from_uuid(id)))
        .unwrap_or(QueueSignal::Changed)
}

pub(super) async fn notify(
    conn: &mut PgConnection,
    signals: &[QueueSignal],
) -> Result<(), RepositoryError> {
    for signal in signals {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload_of(signal))
            .execute(&mut *conn)
            .await
            .map_err(map_sqlx_error)?;
    }
    Ok(())
}

/// Forwards NOTIFYs to the store's broadcast channel until aborted. After a lost connection
/// (notifications in between are gone) it announces `Changed`, so dispatchers look again.
pub(super) fn spawn_listener(
    pool: PgPool,
    signals: broadcast::Sender<QueueSignal>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "queue listener cannot connect; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(error) = listener.listen(CHANNEL).await {
                tracing::warn!(%error, "LISTEN failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let _ = signals.send(QueueSignal::Changed);
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        let _ = signals.send(signal_of(notification.payload()));
                    }
                    // The connection was lost and re-established: notifications may be missing.
                    Ok(None) => {
                        let _ = signals.send(QueueSignal::Changed);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "queue listener failed; reconnecting");
                        break;
                    }
                }
            }
        }
    })
}

fn fence_of(value: u64) -> Result<i64, RepositoryError> {
    crate::adapters::sql::to_i64(value)
}

pub(super) async fn apply_op(
    conn: &mut PgConnection,
    op: &QueueOp,
) -> Result<bool, RepositoryError> {
    let result = match op {
        QueueOp::Enqueue {
            session,
            priority,
            agent,
            available_at,
        } => sqlx::query(
            "INSERT INTO session_queue (session_id, priority, enqueued_at, available_at, agent)
             VALUES ($1, $2, now(), $3, $4)",
        )
        .bind(session.as_uuid())
        .bind(priority)
        .bind(available_at)
        .bind(agent)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            crate::adapters::sql::map_insert_error(e, "queue entry", session.to_string())
        })?,
        QueueOp::Attach {
            lease,
            remote,
            deadline,
        } => sqlx::query(
            "UPDATE session_queue SET server = $4, remote_session = $5, remote_directory = $6,
                message_id = $7, deadline_at = $8
             WHERE session_id = $1 AND owner = $2 AND fence = $3",
        )
        .bind(lease.session.as_uuid())
        .bind(&lease.owner)
        .bind(fence_of(lease.fence)?)
        .bind(&remote.server)
        .bind(&remote.session)
        .bind(&remote.directory)
        .bind(&remote.message_id)
        .bind(deadline)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?,
        QueueOp::Requeue {
            lease,
            available_at,
        } => sqlx::query(
            "UPDATE session_queue SET owner = NULL, lease_expires_at = NULL, claimed_at = NULL,
                server = NULL, remote_session = NULL, remote_directory = NULL, message_id = NULL,
                deadline_at = NULL, available_at = $4
             WHERE session_id = $1 AND owner = $2 AND fence = $3",
        )
        .bind(lease.session.as_uuid())
        .bind(&lease.owner)
        .bind(fence_of(lease.fence)?)
        .bind(available_at)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?,
        QueueOp::Remove { lease } => sqlx::query(
            "DELETE FROM session_queue WHERE session_id = $1 AND owner = $2 AND fence = $3",
        )
        .bind(lease.session.as_uuid())
        .bind(&lease.owner)
        .bind(fence_of(lease.fence)?)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?,
        QueueOp::RemoveWaiting { session } => {
            sqlx::query("DELETE FROM session_queue WHERE session_id = $1 AND owner IS NULL")
                .bind(session.as_uuid())
                .execute(&mut *conn)
                .await
                .map_err(map_sqlx_error)?
        }
        QueueOp::Guard { lease } => {
            let row = sqlx::query(
                "SELECT 1 FROM session_queue WHERE session_id = $1 AND owner = $2 AND fence = $3
                 FOR SHARE",
            )
            .bind(lease.session.as_uuid())
            .bind(&lease.owner)
            .bind(fence_of(lease.fence)?)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_sqlx_error)?;
            return Ok(row.is_some());
        }
    };
    Ok(result.rows_affected() == 1)
}

#[async_trait]
impl DispatchQueue for PostgresStore {
    #[tracing::instrument(skip_all, fields(owner = %request.owner))]
    async fn claim(&self, request: &ClaimRequest) -> Result<Option<Claim>, RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(DISPATCH_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx_error)?;
        // Lapsed leases first, then priority, then age. An agent at its limit is passed over;
        // rows another transaction is writing right now are skipped, not waited for.
        let Some(row) = sqlx::query(&format!(
            "SELECT {QUEUE_COLUMNS}, (owner IS NOT NULL) AS recovered FROM session_queue q
             WHERE ((q.owner IS NULL AND q.available_at <= now())
                    OR (q.owner IS NOT NULL AND q.lease_expires_at < now()))
               AND (q.agent IS NULL
                    OR (SELECT count(*) FROM session_queue o
                        WHERE o.owner IS NOT NULL AND o.agent = q.agent
                          AND o.session_id <> q.session_id)
                       < COALESCE((SELECT a.max_concurrency FROM agents a WHERE a.name = q.agent),
                                  2147483647))
             ORDER BY (q.owner IS NOT NULL) DESC, q.priority DESC, q.enqueued_at, q.session_id
             LIMIT 1
             FOR UPDATE OF q SKIP LOCKED"
        ))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_sqlx_error)?
        else {
            return Ok(None);
        };
        let entry = queue_entry_from_row(&row)?;
        let recovered: bool = row.try_get("recovered").map_err(map_sqlx_error)?;

        let names: Vec<String> = request.servers.iter().map(|s| s.server.clone()).collect();
        let loads = counts_from_rows(
            &sqlx::query(
                "SELECT server, count(*) AS n FROM session_queue
             WHERE owner IS NOT NULL AND server = ANY($1) AND session_id <> $2
             GROUP BY server",
            )
            .bind(&names)
            .bind(entry.session.as_uuid())
            .fetch_all(&mut *tx)
            .await
            .map_err(map_sqlx_error)?,
            "server",
        )?;
        let Some((server, keep_remote)) = crate::adapters::sql::place(&entry, request, |name| {
            loads
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, count)| *count)
        }) else {
            return Ok(None);
        };

        let ttl_ms = i64::try_from(request.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        let row = sqlx::query(&format!(
            "UPDATE session_queue SET owner = $2, fence = fence + 1, claimed_at = now(),
                lease_expires_at = now() + make_interval(secs => $3::double precision / 1000),
                server = $4,
                remote_session = CASE WHEN $5 THEN remote_session END,
                remote_directory = CASE WHEN $5 THEN remote_directory END,
                message_id = CASE WHEN $5 THEN message_id END
             WHERE session_id = $1
             RETURNING {QUEUE_COLUMNS}"
        ))
        .bind(entry.session.as_uuid())
        .bind(&request.owner)
        .bind(ttl_ms)
        .bind(&server)
        .bind(keep_remote)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        let claimed = queue_entry_from_row(&row)?;
        // Others may be able to claim too (another server still has room).
        notify(&mut tx, &[QueueSignal::Changed]).await?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(Some(crate::adapters::sql::claim_of(claimed, recovered)))
    }

    async fn renew(&self, lease: &QueueLease, ttl: Duration) -> Result<Renewal, RepositoryError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let row = sqlx::query(
            "UPDATE session_queue
             SET lease_expires_at = now() + make_interval(secs => $4::double precision / 1000)
             WHERE session_id = $1 AND owner = $2 AND fence = $3
             RETURNING cancel_requested",
        )
        .bind(lease.session.as_uuid())
        .bind(&lease.owner)
        .bind(fence_of(lease.fence)?)
        .bind(ttl_ms)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        match row {
            Some(row) => Ok(Renewal {
                cancel_requested: row.try_get("cancel_requested").map_err(map_sqlx_error)?,
            }),
            None => Err(RepositoryError::FenceLost {
                session: lease.session,
                fence: lease.fence,
            }),
        }
    }

    async fn release(&self, lease: &QueueLease) -> Result<(), RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        let result = sqlx::query(
            "UPDATE session_queue SET owner = NULL, lease_expires_at = NULL, claimed_at = NULL,
                available_at = now()
             WHERE session_id = $1 AND owner = $2 AND fence = $3",
        )
        .bind(lease.session.as_uuid())
        .bind(&lease.owner)
        .bind(fence_of(lease.fence)?)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx_error)?;
        if result.rows_affected() != 1 {
            return Err(RepositoryError::FenceLost {
                session: lease.session,
                fence: lease.fence,
            });
        }
        notify(&mut tx, &[QueueSignal::Changed]).await?;
        tx.commit().await.map_err(map_sqlx_error)
    }

    async fn request_cancel(&self, session: SessionId) -> Result<bool, RepositoryError> {
        let mut tx = self.pool.begin().await.map_err(map_sqlx_error)?;
        let result =
            sqlx::query("UPDATE session_queue SET cancel_requested = TRUE WHERE session_id = $1")
                .bind(session.as_uuid())
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx_error)?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        notify(&mut tx, &[QueueSignal::Cancel(session)]).await?;
        tx.commit().await.map_err(map_sqlx_error)?;
        Ok(true)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        let row = sqlx::query(
            "SELECT LEAST(
                (SELECT min(available_at) FROM session_queue
                 WHERE owner IS NULL AND available_at > now()),
                (SELECT min(lease_expires_at) FROM session_queue
                 WHERE owner IS NOT NULL AND lease_expires_at > now())) AS due",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_sqlx_error)?;
        row.try_get("due").map_err(map_sqlx_error)
    }

    async fn entry(&self, session: SessionId) -> Result<Option<QueueEntry>, RepositoryError> {
        sqlx::query(&format!(
            "SELECT {QUEUE_COLUMNS} FROM session_queue WHERE session_id = $1"
        ))
        .bind(session.as_uuid())
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
                count(*) FILTER (WHERE owner IS NOT NULL AND lease_expires_at >= now()) AS leased,
                count(*) FILTER (WHERE owner IS NOT NULL AND lease_expires_at < now()) AS expired
             FROM session_queue",
        )
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
