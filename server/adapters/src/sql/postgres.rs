//! PostgreSQL: the production store, for several orchestrator replicas sharing one database.
//! Native types (UUID, TIMESTAMPTZ with microseconds, JSONB, BOOLEAN, BIGINT); queue changes wake
//! every replica over LISTEN/NOTIFY.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::SessionId;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow, Postgres};
use sqlx::{PgPool, Row};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::decode::Columns;
use super::driver::{Exec, Sql, Tx};
use super::{map_sqlx_error, PoolSettings};
use oio_application::ports::{QueueSignal, RepositoryError};

/// The NOTIFY channel of queue changes.
const CHANNEL: &str = "oio_queue";

pub(super) async fn connect(url: &str, pool: PoolSettings) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("oio");
    PgPoolOptions::new()
        .max_connections(pool.max_connections)
        .acquire_timeout(pool.acquire_timeout)
        .connect_with(options)
        .await
}

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

/// NOTIFYs every replica, delivered when `tx` commits.
pub(super) async fn notify(tx: &mut Tx, signals: &[QueueSignal]) -> Result<(), RepositoryError> {
    for signal in signals {
        tx.execute(
            Sql::new("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload_of(signal)),
        )
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

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, String>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(|e| e.to_string())
}

impl Columns for PgRow {
    fn text(&self, column: &str) -> Result<String, String> {
        get(self, column)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, String> {
        get(self, column)
    }

    fn uuid(&self, column: &str) -> Result<Uuid, String> {
        get(self, column)
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, String> {
        get(self, column)
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>, String> {
        get(self, column)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        get(self, column)
    }

    fn int(&self, column: &str) -> Result<i64, String> {
        get(self, column)
    }

    /// Lists arrive as `uuid[]` (`ARRAY(SELECT …)`).
    fn uuids(&self, column: &str) -> Result<Vec<Uuid>, String> {
        get(self, column)
    }

    fn flag(&self, column: &str) -> Result<bool, String> {
        get(self, column)
    }

    /// JSONB, read as a document and handed on as its text.
    fn opt_json_text(&self, column: &str) -> Result<Option<String>, String> {
        get::<Option<serde_json::Value>>(self, column).map(|v| v.map(|v| v.to_string()))
    }
}
