//! The dispatch queue: one row per session waiting or leased. A claim takes the best row and leases
//! it in one transaction: on SQLite `BEGIN IMMEDIATE` makes the claimer the only writer while it
//! counts and leases; on PostgreSQL a transaction-scoped advisory lock serialises claimers (so
//! per-server and per-agent counts are exact across replicas) and `FOR UPDATE SKIP LOCKED` passes
//! over rows another transaction is writing. Leases run on [`Backend::now`].

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::SessionId;
use tokio::sync::broadcast;

use super::decode::{counts_from_rows, queue_depth_from_row, queue_entry_from_row, Columns};
use super::driver::{Arg, Backend, Exec, Sql, Tx};
use super::placement::{claim_of, place};
use super::{map_insert_error, map_sqlx_error, SqlStore};
use oio_application::ports::{
    Claim, ClaimRequest, DispatchQueue, QueueDepth, QueueEntry, QueueLease, QueueOp, QueueSignal,
    Renewal, RepositoryError,
};

/// The `session_queue` columns every read selects (see `queue_entry_from_row`).
const COLUMNS: &str = "session_id, priority, agent, owner, fence, server, remote_session,
    remote_directory, message_id, cancel_requested, enqueued_at, available_at, lease_expires_at,
    deadline_at";

/// The advisory lock every PostgreSQL claim holds until it commits ("oio:disp").
const DISPATCH_LOCK: i64 = 0x6f69_6f3a_6469_7370;

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// `$1..=$3`: the row a lease names, at its fence.
fn leased(sql: String, lease: &QueueLease) -> Result<Sql, RepositoryError> {
    Ok(Sql::new(sql)
        .bind(lease.session)
        .bind(&lease.owner)
        .bind(Arg::count(lease.fence)?))
}

/// Applies one queue change inside a commit. `false` when a lease-guarded op found the row gone or
/// owned under another fence (or a `RemoveWaiting` found it owned).
pub(super) async fn apply_op(tx: &mut Tx, op: &QueueOp) -> Result<bool, RepositoryError> {
    const AT_FENCE: &str = "session_id = $1 AND owner = $2 AND fence = $3";
    let backend = tx.backend();
    let sql = match op {
        QueueOp::Enqueue {
            session,
            priority,
            agent,
            available_at,
        } => {
            let sql = format!(
                "INSERT INTO session_queue (session_id, priority, enqueued_at, available_at, agent)
                 VALUES ($1, $2, {}, $3, $4)",
                backend.now()
            );
            let sql = Sql::new(sql)
                .bind(*session)
                .bind(*priority)
                .bind(*available_at)
                .bind(agent.clone());
            tx.execute(sql)
                .await
                .map_err(|e| map_insert_error(e, "queue entry", session.to_string()))?;
            return Ok(true);
        }
        QueueOp::Attach {
            lease,
            remote,
            deadline,
        } => leased(
            format!(
                "UPDATE session_queue SET server = $4, remote_session = $5, remote_directory = $6,
                    message_id = $7, deadline_at = $8
                 WHERE {AT_FENCE}"
            ),
            lease,
        )?
        .bind(&remote.server)
        .bind(&remote.session)
        .bind(&remote.directory)
        .bind(&remote.message_id)
        .bind(*deadline),
        QueueOp::Requeue {
            lease,
            available_at,
        } => leased(
            format!(
                "UPDATE session_queue SET owner = NULL, lease_expires_at = NULL, claimed_at = NULL,
                    server = NULL, remote_session = NULL, remote_directory = NULL,
                    message_id = NULL, deadline_at = NULL, available_at = $4
                 WHERE {AT_FENCE}"
            ),
            lease,
        )?
        .bind(*available_at),
        QueueOp::Remove { lease } => {
            leased(format!("DELETE FROM session_queue WHERE {AT_FENCE}"), lease)?
        }
        QueueOp::RemoveWaiting { session } => {
            Sql::new("DELETE FROM session_queue WHERE session_id = $1 AND owner IS NULL")
                .bind(*session)
        }
        QueueOp::Guard { lease } => {
            let sql = format!(
                "SELECT 1 FROM session_queue WHERE {AT_FENCE}{}",
                backend.share_row()
            );
            let row = tx
                .fetch_optional(leased(sql, lease)?)
                .await
                .map_err(map_sqlx_error)?;
            return Ok(row.is_some());
        }
    };
    Ok(tx.execute(sql).await.map_err(map_sqlx_error)? == 1)
}

/// Takes the best claimable row and leases it to `request.owner`, inside `tx`.
async fn claim_in(tx: &mut Tx, request: &ClaimRequest) -> Result<Option<Claim>, RepositoryError> {
    let backend = tx.backend();
    let now = backend.now();
    if backend == Backend::Postgres {
        tx.execute(Sql::new("SELECT pg_advisory_xact_lock($1)").bind(DISPATCH_LOCK))
            .await
            .map_err(map_sqlx_error)?;
    }
    // Lapsed leases first, then priority, then age. An agent at its limit is passed over; on
    // PostgreSQL rows another transaction is writing right now are skipped, not waited for.
    let skip_locked = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE OF q SKIP LOCKED",
    };
    let sql = format!(
        "SELECT {COLUMNS}, (owner IS NOT NULL) AS recovered FROM session_queue q
         WHERE ((q.owner IS NULL AND q.available_at <= {now})
                OR (q.owner IS NOT NULL AND q.lease_expires_at < {now}))
           AND (q.agent IS NULL
                OR (SELECT count(*) FROM session_queue o
                    WHERE o.owner IS NOT NULL AND o.agent = q.agent
                      AND o.session_id <> q.session_id)
                   < COALESCE((SELECT a.max_concurrency FROM agents a WHERE a.name = q.agent),
                              2147483647))
         ORDER BY (q.owner IS NOT NULL) DESC, q.priority DESC, q.enqueued_at, q.session_id
         LIMIT 1{skip_locked}"
    );
    let Some(row) = tx
        .fetch_optional(Sql::new(sql))
        .await
        .map_err(map_sqlx_error)?
    else {
        return Ok(None);
    };
    let entry = queue_entry_from_row(&row)?;
    let recovered = row
        .flag("recovered")
        .map_err(|message| RepositoryError::Corrupt {
            entity: "queue entry",
            id: entry.session.to_string(),
            message,
        })?;

    let names: Vec<String> = request.servers.iter().map(|s| s.server.clone()).collect();
    let sql = format!(
        "SELECT server, count(*) AS n FROM session_queue
         WHERE owner IS NOT NULL AND {} AND session_id <> $2
         GROUP BY server",
        backend.any_of("server", 1)
    );
    let loads = counts_from_rows(
        &tx.fetch_all(Sql::new(sql).bind(names).bind(entry.session))
            .await
            .map_err(map_sqlx_error)?,
        "queue count",
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

    let sql = format!(
        "UPDATE session_queue SET owner = $2, fence = fence + 1, claimed_at = {now},
            lease_expires_at = {}, server = $4,
            remote_session = CASE WHEN $5 THEN remote_session END,
            remote_directory = CASE WHEN $5 THEN remote_directory END,
            message_id = CASE WHEN $5 THEN message_id END
         WHERE session_id = $1
         RETURNING {COLUMNS}",
        backend.now_plus_ms(3)
    );
    let sql = Sql::new(sql)
        .bind(entry.session)
        .bind(&request.owner)
        .bind(ttl_ms(request.lease_ttl))
        .bind(server)
        .bind(keep_remote);
    let row = tx.fetch_one(sql).await.map_err(map_sqlx_error)?;
    Ok(Some(claim_of(queue_entry_from_row(&row)?, recovered)))
}

#[async_trait]
impl DispatchQueue for SqlStore {
    #[tracing::instrument(skip_all, fields(owner = %request.owner))]
    async fn claim(&self, request: &ClaimRequest) -> Result<Option<Claim>, RepositoryError> {
        let mut tx = self.pool.begin_write().await.map_err(map_sqlx_error)?;
        let claim = claim_in(&mut tx, request).await?;
        if claim.is_some() {
            // Other replicas may be able to claim too (another server still has room).
            let signals: &[QueueSignal] = match self.backend() {
                Backend::Postgres => &[QueueSignal::Changed],
                Backend::Sqlite => &[],
            };
            self.commit_announcing(tx, signals).await?;
        }
        Ok(claim)
    }

    async fn renew(&self, lease: &QueueLease, ttl: Duration) -> Result<Renewal, RepositoryError> {
        let sql = format!(
            "UPDATE session_queue SET lease_expires_at = {}
             WHERE session_id = $1 AND owner = $2 AND fence = $3
             RETURNING cancel_requested",
            self.backend().now_plus_ms(4)
        );
        let row = self
            .db()
            .fetch_optional(leased(sql, lease)?.bind(ttl_ms(ttl)))
            .await
            .map_err(map_sqlx_error)?;
        match row {
            Some(row) => Ok(Renewal {
                cancel_requested: row.flag("cancel_requested").map_err(|message| {
                    RepositoryError::Corrupt {
                        entity: "queue entry",
                        id: lease.session.to_string(),
                        message,
                    }
                })?,
            }),
            None => Err(RepositoryError::FenceLost {
                session: lease.session,
                fence: lease.fence,
            }),
        }
    }

    async fn release(&self, lease: &QueueLease) -> Result<(), RepositoryError> {
        let sql = format!(
            "UPDATE session_queue SET owner = NULL, lease_expires_at = NULL, claimed_at = NULL,
                available_at = {}
             WHERE session_id = $1 AND owner = $2 AND fence = $3",
            self.backend().now()
        );
        let mut tx = self.pool.begin_write().await.map_err(map_sqlx_error)?;
        if tx
            .execute(leased(sql, lease)?)
            .await
            .map_err(map_sqlx_error)?
            != 1
        {
            return Err(RepositoryError::FenceLost {
                session: lease.session,
                fence: lease.fence,
            });
        }
        self.commit_announcing(tx, &[QueueSignal::Changed]).await
    }

    async fn request_cancel(&self, session: SessionId) -> Result<bool, RepositoryError> {
        let mut tx = self.pool.begin_write().await.map_err(map_sqlx_error)?;
        let sql = Sql::new("UPDATE session_queue SET cancel_requested = $2 WHERE session_id = $1")
            .bind(session)
            .bind(true);
        if tx.execute(sql).await.map_err(map_sqlx_error)? == 0 {
            return Ok(false);
        }
        self.commit_announcing(tx, &[QueueSignal::Cancel(session)])
            .await?;
        Ok(true)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        let now = self.backend().now();
        let sql = format!(
            "SELECT min(t) AS due FROM (
                SELECT min(available_at) AS t FROM session_queue
                WHERE owner IS NULL AND available_at > {now}
                UNION ALL
                SELECT min(lease_expires_at) AS t FROM session_queue
                WHERE owner IS NOT NULL AND lease_expires_at > {now}) AS d"
        );
        let row = self
            .db()
            .fetch_one(Sql::new(sql))
            .await
            .map_err(map_sqlx_error)?;
        row.opt_time("due")
            .map_err(|message| RepositoryError::Corrupt {
                entity: "queue",
                id: "next_due".into(),
                message,
            })
    }

    async fn entry(&self, session: SessionId) -> Result<Option<QueueEntry>, RepositoryError> {
        let sql = format!("SELECT {COLUMNS} FROM session_queue WHERE session_id = $1");
        self.db()
            .fetch_optional(Sql::new(sql).bind(session))
            .await
            .map_err(map_sqlx_error)?
            .as_ref()
            .map(queue_entry_from_row)
            .transpose()
    }

    async fn depth(&self) -> Result<QueueDepth, RepositoryError> {
        let now = self.backend().now();
        let sql = format!(
            "SELECT count(*) FILTER (WHERE owner IS NULL) AS waiting,
                count(*) FILTER (WHERE owner IS NOT NULL AND lease_expires_at >= {now}) AS leased,
                count(*) FILTER (WHERE owner IS NOT NULL AND lease_expires_at < {now}) AS expired
             FROM session_queue"
        );
        let row = self
            .db()
            .fetch_one(Sql::new(sql))
            .await
            .map_err(map_sqlx_error)?;
        queue_depth_from_row(&row)
    }

    async fn leased_by_agent(&self) -> Result<BTreeMap<String, u64>, RepositoryError> {
        let rows = self
            .db()
            .fetch_all(Sql::new(
                "SELECT agent, count(*) AS n FROM session_queue
                 WHERE owner IS NOT NULL AND agent IS NOT NULL GROUP BY agent",
            ))
            .await
            .map_err(map_sqlx_error)?;
        Ok(counts_from_rows(&rows, "queue count", "agent")?
            .into_iter()
            .collect())
    }

    fn signals(&self) -> broadcast::Receiver<QueueSignal> {
        self.signals.subscribe()
    }
}
