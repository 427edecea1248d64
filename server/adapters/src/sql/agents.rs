//! Agents: the registry, unique by name, capabilities as a JSON array.

use async_trait::async_trait;
use domain::{Agent, AgentId, AgentName, AgentRecord};

use super::decode::agent_from_row;
use super::driver::{Arg, Exec, Sql, Tx};
use super::{capabilities_json, map_insert_error, map_sqlx_error, SqlStore};
use oio_application::ports::{AgentRepository, RepositoryError};

const INSERT: &str = "INSERT INTO agents (name, capabilities, model, max_concurrency,
        sessions_completed, sessions_failed, sessions_timed_out, total_duration_ms, total_tokens,
        total_cost_micro_usd, total_retries, created_at, updated_at, recent_performance, id,
        version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 1)";

const UPDATE: &str = "UPDATE agents SET name = $1, capabilities = $2, model = $3,
        max_concurrency = $4, sessions_completed = $5, sessions_failed = $6,
        sessions_timed_out = $7, total_duration_ms = $8, total_tokens = $9,
        total_cost_micro_usd = $10, total_retries = $11, created_at = $12, updated_at = $13,
        recent_performance = $14, version = version + 1
    WHERE id = $15 AND version = $16";

/// Binds every column but `id` and `version` as `$1..=$14`, in the order [`INSERT`] and
/// [`UPDATE`] list them.
fn bind_fields(sql: &'static str, r: &AgentRecord) -> Result<Sql, RepositoryError> {
    let p = &r.performance;
    Ok(Sql::new(sql)
        .bind(&r.name)
        .bind(Arg::Json(Some(capabilities_json(&r.capabilities))))
        .bind(&r.model)
        .bind(r.max_concurrency)
        .bind(Arg::count(p.sessions_completed)?)
        .bind(Arg::count(p.sessions_failed)?)
        .bind(Arg::count(p.sessions_timed_out)?)
        .bind(Arg::count(p.total_duration_ms)?)
        .bind(Arg::count(p.total_tokens)?)
        .bind(Arg::count(p.total_cost_micro_usd)?)
        .bind(Arg::count(p.total_retries)?)
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(Arg::json(&r.recent, "recent performance")?))
}

/// A taken name is reported by name, a taken id by id. SQLite names the column in its message,
/// PostgreSQL the constraint.
fn write_error(e: sqlx::Error, r: &AgentRecord) -> RepositoryError {
    let name_taken = e.as_database_error().is_some_and(|db| {
        db.is_unique_violation()
            && (db.constraint() == Some("agents_name_key") || db.message().contains("agents.name"))
    });
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
pub(super) async fn insert(tx: &mut Tx, r: &AgentRecord) -> Result<(), RepositoryError> {
    tx.execute(bind_fields(INSERT, r)?.bind(r.id))
        .await
        .map_err(|e| write_error(e, r))?;
    Ok(())
}

/// `false` when no row has this id at the version the writer read.
#[tracing::instrument(level = "debug", skip_all, fields(agent_id = %r.id, version = r.version))]
pub(super) async fn update(tx: &mut Tx, r: &AgentRecord) -> Result<bool, RepositoryError> {
    let changed = tx
        .execute(
            bind_fields(UPDATE, r)?
                .bind(r.id)
                .bind(Arg::count(r.version)?),
        )
        .await
        .map_err(|e| write_error(e, r))?;
    Ok(changed == 1)
}

impl SqlStore {
    async fn fetch_agents(&self, sql: Sql) -> Result<Vec<Agent>, RepositoryError> {
        self.db()
            .fetch_all(sql)
            .await
            .map_err(map_sqlx_error)?
            .iter()
            .map(agent_from_row)
            .collect()
    }
}

#[async_trait]
impl AgentRepository for SqlStore {
    async fn get(&self, id: AgentId) -> Result<Option<Agent>, RepositoryError> {
        let sql = Sql::new("SELECT * FROM agents WHERE id = $1").bind(id);
        Ok(self.fetch_agents(sql).await?.pop())
    }

    async fn get_by_name(&self, name: &AgentName) -> Result<Option<Agent>, RepositoryError> {
        let sql = Sql::new("SELECT * FROM agents WHERE name = $1").bind(name.as_str());
        Ok(self.fetch_agents(sql).await?.pop())
    }

    async fn list(&self) -> Result<Vec<Agent>, RepositoryError> {
        self.fetch_agents(Sql::new("SELECT * FROM agents ORDER BY name"))
            .await
    }
}
