//! Tasks: one row each; ordered subtasks and dependencies in edge tables, read back as arrays.

use async_trait::async_trait;
use domain::{Cursor, Page, PageRequest, Task, TaskFilter, TaskId, TaskRecord};
use sqlx::{PgConnection, QueryBuilder};
use uuid::Uuid;

use super::PostgresStore;
use crate::adapters::sql::{
    assignment_json, capabilities_json, execution_json, map_insert_error, map_sqlx_error,
    task_from_row, task_terms, to_i64,
};
use crate::ports::{RepositoryError, TaskRepository};

/// A task row with its edges: subtasks by position, dependencies by id.
const SELECT: &str = "SELECT id, title, description, complexity, parent_id, status,
        required_capabilities::text AS required_capabilities, created_at, updated_at, version,
        deleted_at, assignment::text AS assignment, execution::text AS execution,
        ARRAY(SELECT s.child_id FROM task_subtasks s
            WHERE s.parent_id = tasks.id ORDER BY s.position) AS subtasks,
        ARRAY(SELECT d.depends_on FROM task_dependencies d
            WHERE d.task_id = tasks.id ORDER BY d.depends_on) AS dependencies
    FROM tasks";

#[tracing::instrument(level = "debug", skip_all, fields(task_id = %r.id))]
pub(super) async fn insert(conn: &mut PgConnection, r: &TaskRecord) -> Result<(), RepositoryError> {
    sqlx::query(
        "INSERT INTO tasks (id, title, description, complexity, parent_id, status,
            required_capabilities, created_at, updated_at, deleted_at, assignment, execution,
            version)
         VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11::jsonb, $12::jsonb, 1)",
    )
    .bind(r.id.as_uuid())
    .bind(&r.title)
    .bind(&r.description)
    .bind(r.complexity.as_str())
    .bind(r.parent.map(|p| p.as_uuid()))
    .bind(r.status.as_str())
    .bind(capabilities_json(&r.required_capabilities))
    .bind(r.created_at)
    .bind(r.updated_at)
    .bind(r.deleted_at)
    .bind(assignment_json(r.assignment.as_ref())?)
    .bind(execution_json(&r.execution)?)
    .execute(&mut *conn)
    .await
    .map_err(|e| map_insert_error(e, "task", r.id.to_string()))?;
    insert_edges(conn, r).await
}

/// `false` when no row has this id at the version the writer read; otherwise the task's edges are
/// replaced by the ones it lists now.
#[tracing::instrument(level = "debug", skip_all, fields(task_id = %r.id, version = r.version))]
pub(super) async fn update(
    conn: &mut PgConnection,
    r: &TaskRecord,
) -> Result<bool, RepositoryError> {
    let done = sqlx::query(
        "UPDATE tasks SET title = $1, description = $2, complexity = $3, parent_id = $4,
            status = $5, required_capabilities = $6::jsonb, created_at = $7, updated_at = $8,
            deleted_at = $9, assignment = $12::jsonb, execution = $13::jsonb,
            version = version + 1
         WHERE id = $10 AND version = $11",
    )
    .bind(&r.title)
    .bind(&r.description)
    .bind(r.complexity.as_str())
    .bind(r.parent.map(|p| p.as_uuid()))
    .bind(r.status.as_str())
    .bind(capabilities_json(&r.required_capabilities))
    .bind(r.created_at)
    .bind(r.updated_at)
    .bind(r.deleted_at)
    .bind(r.id.as_uuid())
    .bind(to_i64(r.version)?)
    .bind(assignment_json(r.assignment.as_ref())?)
    .bind(execution_json(&r.execution)?)
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx_error)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    for sql in [
        "DELETE FROM task_subtasks WHERE parent_id = $1",
        "DELETE FROM task_dependencies WHERE task_id = $1",
    ] {
        sqlx::query(sql)
            .bind(r.id.as_uuid())
            .execute(&mut *conn)
            .await
            .map_err(map_sqlx_error)?;
    }
    insert_edges(conn, r).await?;
    Ok(true)
}

/// One statement per edge table whatever the number of edges; `WITH ORDINALITY` numbers the
/// subtasks.
async fn insert_edges(conn: &mut PgConnection, r: &TaskRecord) -> Result<(), RepositoryError> {
    if !r.subtasks.is_empty() {
        let children: Vec<Uuid> = r.subtasks.iter().map(TaskId::as_uuid).collect();
        sqlx::query(
            "INSERT INTO task_subtasks (parent_id, position, child_id)
             SELECT $1, (s.ord - 1)::integer, s.child
             FROM unnest($2::uuid[]) WITH ORDINALITY AS s (child, ord)",
        )
        .bind(r.id.as_uuid())
        .bind(children)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    }
    if !r.dependencies.is_empty() {
        let dependencies: Vec<Uuid> = r.dependencies.iter().map(TaskId::as_uuid).collect();
        sqlx::query(
            "INSERT INTO task_dependencies (task_id, depends_on)
             SELECT $1, d FROM unnest($2::uuid[]) AS d",
        )
        .bind(r.id.as_uuid())
        .bind(dependencies)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    }
    Ok(())
}

impl PostgresStore {
    async fn fetch_task(
        &self,
        id: TaskId,
        live_only: bool,
    ) -> Result<Option<Task>, RepositoryError> {
        let mut query = QueryBuilder::new(SELECT);
        query.push(" WHERE id = ").push_bind(id.as_uuid());
        if live_only {
            query.push(" AND deleted_at IS NULL");
        }
        query
            .build()
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx_error)?
            .map(|row| task_from_row(&row))
            .transpose()
    }
}

#[async_trait]
impl TaskRepository for PostgresStore {
    async fn get(&self, id: TaskId) -> Result<Option<Task>, RepositoryError> {
        self.fetch_task(id, true).await
    }

    async fn get_including_deleted(&self, id: TaskId) -> Result<Option<Task>, RepositoryError> {
        self.fetch_task(id, false).await
    }

    async fn list(
        &self,
        filter: &TaskFilter,
        page: &PageRequest,
    ) -> Result<Page<Task>, RepositoryError> {
        self.list_page(SELECT, task_terms(filter, page), page, task_from_row, |t| {
            Cursor::new(t.created_at(), t.id().as_uuid())
        })
        .await
    }
}
