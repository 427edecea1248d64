//! Tasks: planned work, its decomposition into subtasks and its dependency graph.

mod entity;
mod error;
pub mod execution;
mod graph;
mod kinds;

pub use entity::{NewTask, Task, TaskAssignment, TaskRecord, TaskTitle};
pub use error::TaskError;
pub use execution::{FailurePolicy, TaskExecution, TaskResult, TreeBudget, TreeRun};
pub use graph::TaskGraph;
pub use kinds::{ParseTaskComplexityError, ParseTaskStatusError, TaskComplexity, TaskStatus};
