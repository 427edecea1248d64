//! Tasks: one row each; ordered subtasks and dependencies in edge tables, read back as lists.

use async_trait::async_trait;
use domain::{Cursor, Page, PageRequest, Task, TaskFilter, TaskId, TaskRecord};
use uuid::Uuid;

use super::decode::task_from_row;
use super::driver::{Arg, Backend, Exec, Sql, Tx};
use super::filter::task_terms;
use super::{capabilities_json, map_insert_error, map_sqlx_error, SqlStore};
use oio_application::ports::{RepositoryError, TaskRepository};

/// A task row with its edges: subtasks by position, dependencies by id.
fn select(backend: Backend) -> String {
    let subtasks = backend.id_array(
        "s.child_id",
        "task_subtasks s WHERE s.parent_id = tasks.id",
        "s.position",
    );
    let dependencies = backend.id_array(
        "d.depends_on",
        "task_dependencies d WHERE d.task_id = tasks.id",
        "d.depends_on",
    );
    format!(
        "SELECT id, title, description, complexity, parent_id, status, required_capabilities,
            created_at, updated_at, version, deleted_at, assignment, execution,
            {subtasks} AS subtasks, {dependencies} AS dependencies
         FROM tasks"
    )
}

/// Binds every column but `id` and `version` as `$1..=$11`.
fn bind_fields(sql: &'static str, r: &TaskRecord) -> Result<Sql, RepositoryError> {
    // An empty execution record is stored as NULL.
    let execution = (!r.execution.is_empty()).then_some(&r.execution);
    Ok(Sql::new(sql)
        .bind(&r.title)
        .bind(&r.description)
        .bind(r.complexity.as_str())
        .bind(r.parent)
        .bind(r.status.as_str())
        .bind(Arg::Json(Some(capabilities_json(&r.required_capabilities))))
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(r.deleted_at)
        .bind(Arg::opt_json(r.assignment.as_ref(), "task assignment")?)
        .bind(Arg::opt_json(execution, "task execution")?))
}

#[tracing::instrument(level = "debug", skip_all, fields(task_id = %r.id))]
pub(super) async fn insert(tx: &mut Tx, r: &TaskRecord) -> Result<(), RepositoryError> {
    let sql = bind_fields(
        "INSERT INTO tasks (title, description, complexity, parent_id, status,
            required_capabilities, created_at, updated_at, deleted_at, assignment, execution, id,
            version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1)",
        r,
    )?
    .bind(r.id);
    tx.execute(sql)
        .await
        .map_err(|e| map_insert_error(e, "task", r.id.to_string()))?;
    insert_edges(tx, r).await
}

/// `false` when no row has this id at the version the writer read; otherwise the task's edges are
/// replaced by the ones it lists now.
#[tracing::instrument(level = "debug", skip_all, fields(task_id = %r.id, version = r.version))]
pub(super) async fn update(tx: &mut Tx, r: &TaskRecord) -> Result<bool, RepositoryError> {
    let sql = bind_fields(
        "UPDATE tasks SET title = $1, description = $2, complexity = $3, parent_id = $4,
            status = $5, required_capabilities = $6, created_at = $7, updated_at = $8,
            deleted_at = $9, assignment = $10, execution = $11, version = version + 1
         WHERE id = $12 AND version = $13",
        r,
    )?
    .bind(r.id)
    .bind(Arg::count(r.version)?);
    if tx.execute(sql).await.map_err(map_sqlx_error)? == 0 {
        return Ok(false);
    }
    for sql in [
        "DELETE FROM task_subtasks WHERE parent_id = $1",
        "DELETE FROM task_dependencies WHERE task_id = $1",
    ] {
        tx.execute(Sql::new(sql).bind(r.id))
            .await
            .map_err(map_sqlx_error)?;
    }
    insert_edges(tx, r).await?;
    Ok(true)
}

/// One statement per edge table whatever the number of edges.
async fn insert_edges(tx: &mut Tx, r: &TaskRecord) -> Result<(), RepositoryError> {
    let ids =
        |list: &mut dyn Iterator<Item = &TaskId>| list.map(TaskId::as_uuid).collect::<Vec<Uuid>>();
    let edges = tx.backend().id_rows(2);
    if !r.subtasks.is_empty() {
        let sql = format!(
            "INSERT INTO task_subtasks (parent_id, position, child_id)
             SELECT $1, e.pos, e.id FROM {edges} AS e"
        );
        tx.execute(Sql::new(sql).bind(r.id).bind(ids(&mut r.subtasks.iter())))
            .await
            .map_err(map_sqlx_error)?;
    }
    if !r.dependencies.is_empty() {
        let sql = format!(
            "INSERT INTO task_dependencies (task_id, depends_on) SELECT $1, e.id FROM {edges} AS e"
        );
        tx.execute(
            Sql::new(sql)
                .bind(r.id)
                .bind(ids(&mut r.dependencies.iter())),
        )
        .await
        .map_err(map_sqlx_error)?;
    }
    Ok(())
}

impl SqlStore {
    async fn fetch_task(
        &self,
        id: TaskId,
        live_only: bool,
    ) -> Result<Option<Task>, RepositoryError> {
        let mut sql = Sql::new(select(self.backend()));
        sql.push(" WHERE id = ").push_bind(id);
        if live_only {
            sql.push(" AND deleted_at IS NULL");
        }
        self.db()
            .fetch_optional(sql)
            .await
            .map_err(map_sqlx_error)?
            .map(|row| task_from_row(&row))
            .transpose()
    }
}

#[async_trait]
impl TaskRepository for SqlStore {
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
        self.list_page(
            select(self.backend()),
            task_terms(filter, page),
            page,
            task_from_row,
            |t| Cursor::new(t.created_at(), t.id().as_uuid()),
        )
        .await
    }
}
