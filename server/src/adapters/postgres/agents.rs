//! Agents: the registry, unique by name, capabilities as a JSONB array.

use async_trait::async_trait;
use domain::{Agent, AgentId, AgentName, AgentRecord};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};

use super::PostgresStore;
use crate::adapters::sql::{
    agent_from_row, capabilities_json, map_insert_error, map_sqlx_error, to_i32, to_i64,
};
use crate::ports::{AgentRepository, RepositoryError};

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// Every column, JSON as text.
const SELECT: &str = "SELECT id, name, capabilities::text AS capabilities, model, max_concurrency,
        sessions_completed, sessions_failed, sessions_timed_out, total_duration_ms, total_tokens,
        total_cost_micro_usd, total_retries, created_at, updated_at, version,
        recent_performance::text AS recent_performance
    FROM agents";

const INSERT: &str = "INSERT INTO agents (name, capabilities, model, max_concurrency,
        sessions_completed, sessions_failed, sessions_timed_out, total_duration_ms, total_tokens,
        total_cost_micro_usd, total_retries, created_at, updated_at, recent_performance, id,
        version)
    VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, 1)";

const UPDATE: &str = "UPDATE agents SET name = $1, capabilities = $2::jsonb, model = $3,
        max_concurrency = $4, sessions_completed = $5, sessions_failed = $6,
        sessions_timed_out = $7, total_duration_ms = $8, total_tokens = $9,
        total_cost_micro_usd = $10, total_retries = $11, created_at = $12, updated_at = $13,
        recent_performance = $14::jsonb, version = version + 1
    WHERE id = $15 AND version = $16";

/// Binds every column but `id` and `version` as `$1..=$14`, in the order [`INSERT`] and
/// [`UPDATE`] list them.
fn bind_fields<'q>(query: PgQuery<'q>, r: &'q AgentRecord) -> Result<PgQuery<'q>, RepositoryError> {
    let p = &r.performance;
    Ok(query
        .bind(&r.name)
        .bind(capabilities_json(&r.capabilities))
        .bind(&r.model)
        .bind(to_i32(r.max_concurrency)?)
        .bind(to_i64(p.sessions_completed)?)
        .bind(to_i64(p.sessions_failed)?)
        .bind(to_i64(p.sessions_timed_out)?)
        .bind(to_i64(p.total_duration_ms)?)
        .bind(to_i64(p.total_tokens)?)
        .bind(to_i64(p.total_cost_micro_usd)?)
        .bind(to_i64(p.total_retries)?)
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(recent_json(r)?))
}

fn recent_json(r: &AgentRecord) -> Result<String, RepositoryError> {
    serde_json::to_string(&r.recent)
        .map_err(|e| RepositoryError::OutOfRange(format!("recent performance: {e}")))
}

/// A taken name is reported by name, a taken id by id.
fn write_error(e: sqlx::Error, r: &AgentRecord) -> RepositoryError {
    let name_taken = e
        .as_database_error()
        .is_some_and(|db| db.is_unique_violation() && db.constraint() == Some("agents_name_key"));
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
    conn: &mut PgConnection,
    r: &AgentRecord,
) -> Result<(), RepositoryError> {
    bind_fields(sqlx::query(INSERT), r)?
        .bind(r.id.as_uuid())
        .execute(conn)
        .await
        .map_err(|e| write_error(e, r))?;
    Ok(())
}

/// `false` when no row has this id at the version the writer read.
#[tracing::instrument(level = "debug", skip_all, fields(agent_id = %r.id, version = r.version))]
pub(super) async fn update(
    conn: &mut PgConnection,
    r: &AgentRecord,
) -> Result<bool, RepositoryError> {
    let done = bind_fields(sqlx::query(UPDATE), r)?
        .bind(r.id.as_uuid())
        .bind(to_i64(r.version)?)
        .execute(conn)
        .await
        .map_err(|e| write_error(e, r))?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl AgentRepository for PostgresStore {
    async fn get(&self, id: AgentId) -> Result<Option<Agent>, RepositoryError> {
        sqlx::query(&format!("{SELECT} WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx_error)?
            .map(|row| agent_from_row(&row))
            .transpose()
    }

    async fn get_by_name(&self, name: &AgentName) -> Result<Option<Agent>, RepositoryError> {
        sqlx::query(&format!("{SELECT} WHERE name = $1"))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx_error)?
            .map(|row| agent_from_row(&row))
            .transpose()
    }

    /// Byte order (`COLLATE "C"`), as SQLite and Rust sort, whatever the database's locale.
    async fn list(&self) -> Result<Vec<Agent>, RepositoryError> {
        sqlx::query(&format!("{SELECT} ORDER BY name COLLATE \"C\""))
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx_error)?
            .iter()
            .map(agent_from_row)
            .collect()
    }
}
