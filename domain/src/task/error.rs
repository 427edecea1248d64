//! Why a task or a set of tasks was refused.

use thiserror::Error;

use super::TaskStatus;
use crate::ids::TaskId;
use crate::validation::ValidationError;

/// A rule of a task, or of the graph a set of tasks forms, was violated.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TaskError {
    /// A field value broke its rule.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The offending field, e.g. `"dependencies"`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The task state machine has no edge `from -> to`.
    #[error("illegal task transition from `{from}` to `{to}`")]
    IllegalTransition {
        /// The task's status.
        from: TaskStatus,
        /// The status asked for.
        to: TaskStatus,
    },
    /// A running task has a session working on it; it must be cancelled first.
    #[error("a running task cannot be deleted; cancel it first")]
    DeleteWhileRunning,
    /// Two tasks in one graph share an id.
    #[error("task {id} appears more than once")]
    DuplicateTask {
        /// The repeated id.
        id: TaskId,
    },
    /// Dependencies form a cycle, so no order can satisfy them.
    #[error("dependency cycle: {}", join(.path))]
    Cycle {
        /// The cycle, each task depending on the next; the first task is repeated at the end.
        path: Vec<TaskId>,
    },
    /// Parents form a cycle, so the hierarchy is not a tree.
    #[error("parent cycle: {}", join(.path))]
    ParentCycle {
        /// The cycle, each task being the parent of the next; the first is repeated at the end.
        path: Vec<TaskId>,
    },
    /// A task depends on a task that is not in the graph.
    #[error("task {task} depends on unknown task {dependency}")]
    UnknownDependency {
        /// The dependent task.
        task: TaskId,
        /// The missing dependency.
        dependency: TaskId,
    },
    /// A task lists a subtask that is not in the graph.
    #[error("task {task} lists unknown subtask {subtask}")]
    UnknownSubtask {
        /// The listing task.
        task: TaskId,
        /// The missing subtask.
        subtask: TaskId,
    },
    /// A task names a parent that is not in the graph.
    #[error("task {task} has unknown parent {parent}")]
    UnknownParent {
        /// The child task.
        task: TaskId,
        /// The missing parent.
        parent: TaskId,
    },
    /// A task lists a subtask whose `parent` is another task (or none).
    #[error("task {parent} lists subtask {subtask}, whose parent is {}", display_parent(.actual))]
    SubtaskParentMismatch {
        /// The listing task.
        parent: TaskId,
        /// The subtask.
        subtask: TaskId,
        /// The subtask's actual parent.
        actual: Option<TaskId>,
    },
    /// A task names a parent that does not list it as a subtask.
    #[error("task {task} names {parent} as parent, which does not list it as a subtask")]
    NotListedByParent {
        /// The child task.
        task: TaskId,
        /// Its parent.
        parent: TaskId,
    },
}

impl TaskError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<ValidationError> for TaskError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

fn join(path: &[TaskId]) -> String {
    path.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn display_parent(parent: &Option<TaskId>) -> String {
    parent.map_or_else(|| "none".to_owned(), |p| p.to_string())
}
