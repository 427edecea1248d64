//! Agents: the registry, unique by name, capabilities as a JSON array.

use async_trait::async_trait;
use domain::{Agent, AgentId, AgentName, AgentRecord};
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqliteConnection};

use super::{ts, SqliteStore};
use crate::adapters::sql::{
    agent_from_row, capabilities_json, map_insert_error, map_sqlx_error, to_i64,
};
use crate::ports::{AgentRepository, RepositoryError};

type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

const INSERT: &str = "INSERT INTO agents (id, name, capabilities, model, max_concurrency,
        sessions_completed, sessions_failed, sessions_timed_out, total_duration_ms, total_tokens,
        total_cost_micro_usd, total_retries, created_at, updated_at, recent_performance, version)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)";

const UPDATE: &str = "UPDATE agents SET name = ?, capabilities = ?, model = ?, max_concurrency = ?,
        sessions_completed = ?, sessions_failed = ?, sessions_timed_out = ?,
        total_duration_ms = ?, total_tokens = ?, total_cost_micro_usd = ?, total_retries = ?,
        created_at = ?, updated_at = ?, recent_performance = ?, version = version + 1
    WHERE id = ? AND version = ?";

/// Binds every column but `id` and `version`, in the order [`INSERT`] and [`UPDATE`] list them.
fn bind_fields<'q>(
    query: SqliteQuery<'q>,
    r: &'q AgentRecord,
) -> Result<SqliteQuery<'q>, RepositoryError> {
    let p = &r.performance;
    Ok(query
        .bind(&r.name)
        .bind(capabilities_json(&r.capabilities))
        .bind(&r.model)
        .bind(i64::from(r.max_concurrency))
        .bind(to_i64(p.sessions_completed)?)
        .bind(to_i64(p.sessions_failed)?)
        .bind(to_i64(p.sessions_timed_out)?)
        .bind(to_i64(p.total_duration_ms)?)
        .bind(to_i64(p.total_tokens)?)
        .bind(to_i64(p.total_cost_micro_usd)?)
        .bind(to_i64(p.total_retries)?)
        .bind(ts(r.created_at))
        .bind(ts(r.updated_at))
        .bind(
            serde_json::to_string(&r.recent)
                .map_err(|e| RepositoryError::OutOfRange(format!("recent performance: {e}")))?,
        ))
}

/// A taken name is reported by name, a taken id by id.
fn write_error(e: sqlx::Error, r: &AgentRecord) -> RepositoryError {
    let name_taken = e
        .as_database_error()
        .is_some_and(|db| db.is_unique_violation() && db.message().contains("agents.name"));
    if name_taken {
        RepositoryError::Duplicate {
            entity: "agent",
            id: r.name.clone(),
        }
    } else {
        map_insert_error(e, "agent", r.id.to_string())
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(agent_id = %r.id, agent = %r.name))]
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    r: &AgentRecord,
) -> Result<(), RepositoryError> {
    bind_fields(sqlx::query(INSERT).bind(r.id.to_string()), r)?
        .execute(conn)
        .await
        .map_err(|e| write_error(e, r))?;
    Ok(())
}

/// `false` when no row has this id at the version the writer read.
#[tracing::instrument(level = "debug", skip_all, fields(agent_id = %r.id, version = r.version))]
pub(super) async fn update(
    conn: &mut SqliteConnection,
    r: &AgentRecord,
) -> Result<bool, RepositoryError> {
    let done = bind_fields(sqlx::query(UPDATE), r)?
        .bind(r.id.to_string())
        .bind(to_i64(r.version)?)
        .execute(conn)
        .await
        .map_err(|e| write_error(e, r))?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl AgentRepository for SqliteStore {
    async fn get(&self, id: AgentId) -> Result<Option<Agent>, RepositoryError> {
        sqlx::query("SELECT * FROM agents WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx_error)?
            .map(|row| agent_from_row(&row))
            .transpose()
    }

    async fn get_by_name(&self, name: &AgentName) -> Result<Option<Agent>, RepositoryError> {
        sqlx::query("SELECT * FROM agents WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx_error)?
            .map(|row| agent_from_row(&row))
            .transpose()
    }

    async fn list(&self) -> Result<Vec<Agent>, RepositoryError> {
        sqlx::query("SELECT * FROM agents ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx_error)?
            .iter()
            .map(agent_from_row)
            .collect()
    }
}
