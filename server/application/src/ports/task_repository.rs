//! Reading tasks: the decomposition tree, with ordered subtasks and dependency edges.

use async_trait::async_trait;
use domain::{Page, PageRequest, Task, TaskFilter, TaskId};

use super::RepositoryError;

#[async_trait]
pub trait TaskRepository: Send + Sync + 'static {
    /// A live task (with its subtasks in order and its dependencies); `None` if absent or deleted.
    async fn get(&self, id: TaskId) -> Result<Option<Task>, RepositoryError>;
    /// A task whether or not it is soft-deleted.
    async fn get_including_deleted(&self, id: TaskId) -> Result<Option<Task>, RepositoryError>;
    /// Live tasks matching `filter`, newest first (creation time, then id), one keyset page.
    async fn list(
        &self,
        filter: &TaskFilter,
        page: &PageRequest,
    ) -> Result<Page<Task>, RepositoryError>;
}
