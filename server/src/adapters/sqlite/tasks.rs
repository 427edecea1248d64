//! Tasks: one row each; ordered subtasks and dependencies in edge tables, read back aggregated
//! into JSON arrays.

use async_trait::async_trait;
use domain::{Cursor, Page, PageRequest, Task, TaskFilter, TaskId, TaskRecord};
use sqlx::{QueryBuilder, SqliteConnection};

use super::{json_array, ts, SqliteStore};
use crate::adapters::sql::{
    assignment_json, capabilities_json, execution_json, map_insert_error, map_sqlx_error,
    task_from_row, task_terms, to_i64,
};
use crate::ports::{RepositoryError, TaskRepository};

/// A task row with its edges: subtasks by position, dependencies by id.
const SELECT: &str = "SELECT id, title, description, complexity, parent_id, status,
        required_capabilities, created_at, updated_at, version, deleted_at, assignment, execution,
        (SELECT json_group_array(s.child_id ORDER BY s.position)
            FROM task_subtasks s WHERE s.parent_id = tasks.id) AS subtasks,
        (SELECT json_group_array(d.depends_on ORDER BY d.depends_on)
            FROM task_dependencies d WHERE d.task_id = tasks.id) AS dependencies
    FROM tasks";

#[tracing::instrument(level = "debug", skip_all, fields(task_id = %r.id))]
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    r: &TaskRecord,
) -> Result<(), RepositoryError> {
    sqlx::query(
        "INSERT INTO tasks (id, title, description, complexity, parent_id, status,
            required_capabilities, created_at, updated_at, deleted_at, assignment, execution,
            version)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
    )
    .bind(r.id.to_string())
    .bind(&r.title)
    .bind(&r.description)
    .bind(r.complexity.as_str())
    .bind(r.parent.map(|p| p.to_string()))
    .bind(r.status.as_str())
    .bind(capabilities_json(&r.required_capabilities))
    .bind(ts(r.created_at))
    .bind(ts(r.updated_at))
    .bind(r.deleted_at.map(ts))
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
    conn: &mut SqliteConnection,
    r: &TaskRecord,
) -> Result<bool, RepositoryError> {
    let done = sqlx::query(
        "UPDATE tasks SET title = ?, description = ?, complexity = ?, parent_id = ?, status = ?,
            required_capabilities = ?, created_at = ?, updated_at = ?, deleted_at = ?,
            assignment = ?, execution = ?, version = version + 1
         WHERE id = ? AND version = ?",
    )
    .bind(&r.title)
    .bind(&r.description)
    .bind(r.complexity.as_str())
    .bind(r.parent.map(|p| p.to_string()))
    .bind(r.status.as_str())
    .bind(capabilities_json(&r.required_capabilities))
    .bind(ts(r.created_at))
    .bind(ts(r.updated_at))
    .bind(r.deleted_at.map(ts))
    .bind(assignment_json(r.assignment.as_ref())?)
    .bind(execution_json(&r.execution)?)
    .bind(r.id.to_string())
    .bind(to_i64(r.version)?)
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx_error)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    for sql in [
        "DELETE FROM task_subtasks WHERE parent_id = ?",
        "DELETE FROM task_dependencies WHERE task_id = ?",
    ] {
        sqlx::query(sql)
            .bind(r.id.to_string())
            .execute(&mut *conn)
            .await
            .map_err(map_sqlx_error)?;
    }
    insert_edges(conn, r).await?;
    Ok(true)
}

/// One statement per edge table whatever the number of edges; `json_each` numbers the subtasks.
async fn insert_edges(conn: &mut SqliteConnection, r: &TaskRecord) -> Result<(), RepositoryError> {
    if !r.subtasks.is_empty() {
        sqlx::query(
            "INSERT INTO task_subtasks (parent_id, position, child_id)
             SELECT ?, key, value FROM json_each(?)",
        )
        .bind(r.id.to_string())
        .bind(json_array(&r.subtasks))
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    }
    if !r.dependencies.is_empty() {
        sqlx::query(
            "INSERT INTO task_dependencies (task_id, depends_on)
             SELECT ?, value FROM json_each(?)",
        )
        .bind(r.id.to_string())
        .bind(json_array(&r.dependencies))
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx_error)?;
    }
    Ok(())
}

impl SqliteStore {
    async fn fetch_task(
        &self,
        id: TaskId,
        live_only: bool,
    ) -> Result<Option<Task>, RepositoryError> {
        let mut query = QueryBuilder::new(SELECT);
        query.push(" WHERE id = ").push_bind(id.to_string());
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
impl TaskRepository for SqliteStore {
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
