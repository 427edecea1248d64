//! Rules across a set of tasks: every reference resolves, the hierarchy is a consistent forest,
//! and the dependencies admit an execution order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::{Task, TaskError};
use crate::ids::TaskId;

/// Validation of a whole set of tasks (a plan), as opposed to one task's own fields.
#[derive(Clone, Copy, Debug)]
pub struct TaskGraph;

impl TaskGraph {
    /// Checks that `tasks` form a valid plan and returns an execution order: every task appears
    /// once, after all of its dependencies. Among tasks whose dependencies are met, input order
    /// is kept, so the result is deterministic.
    ///
    /// Refuses duplicate ids, references to tasks not in the slice, subtask lists and `parent`
    /// fields that disagree, parent cycles, and dependency cycles (reporting one concrete cycle).
    /// Soft-deleted tasks are treated like any other: filter them out first if they should not
    /// count.
    pub fn validate(tasks: &[Task]) -> Result<Vec<TaskId>, TaskError> {
        let index = index_by_id(tasks)?;
        check_references(tasks, &index)?;
        check_parent_cycles(tasks, &index)?;
        topological_order(tasks, &index)
    }
}

fn index_by_id(tasks: &[Task]) -> Result<BTreeMap<TaskId, usize>, TaskError> {
    let mut index = BTreeMap::new();
    for (i, task) in tasks.iter().enumerate() {
        if index.insert(task.id(), i).is_some() {
            return Err(TaskError::DuplicateTask { id: task.id() });
        }
    }
    Ok(index)
}

fn check_references(tasks: &[Task], index: &BTreeMap<TaskId, usize>) -> Result<(), TaskError> {
    for task in tasks {
        if let Some(&dependency) = task.dependencies().iter().find(|d| !index.contains_key(d)) {
            return Err(TaskError::UnknownDependency {
                task: task.id(),
                dependency,
            });
        }
        for &subtask in task.subtasks() {
            let Some(&i) = index.get(&subtask) else {
                return Err(TaskError::UnknownSubtask {
                    task: task.id(),
                    subtask,
                });
            };
            let actual = tasks[i].parent();
            if actual != Some(task.id()) {
                return Err(TaskError::SubtaskParentMismatch {
                    parent: task.id(),
                    subtask,
                    actual,
                });
            }
        }
        if let Some(parent) = task.parent() {
            let Some(&i) = index.get(&parent) else {
                return Err(TaskError::UnknownParent {
                    task: task.id(),
                    parent,
                });
            };
            if !tasks[i].subtasks().contains(&task.id()) {
                return Err(TaskError::NotListedByParent {
                    task: task.id(),
                    parent,
                });
            }
        }
    }
    Ok(())
}

/// Walks up from every task; each task is visited by at most one walk, so this is linear.
fn check_parent_cycles(tasks: &[Task], index: &BTreeMap<TaskId, usize>) -> Result<(), TaskError> {
    const UNSEEN: usize = usize::MAX;
    // For each task, the walk that first reached it.
    let mut walk_of = vec![UNSEEN; tasks.len()];
    for start in 0..tasks.len() {
        let mut path: Vec<usize> = Vec::new();
        let mut current = Some(start);
        while let Some(i) = current {
            if walk_of[i] != UNSEEN {
                if walk_of[i] == start {
                    // Back to a task of this very walk: the chain from it upward loops.
                    let first = path.iter().position(|&p| p == i).unwrap_or_default();
                    let mut cycle: Vec<TaskId> =
                        path[first..].iter().map(|&p| tasks[p].id()).collect();
                    cycle.push(tasks[i].id());
                    // The walk followed child -> parent; report parent -> child.
                    cycle.reverse();
                    return Err(TaskError::ParentCycle { path: cycle });
                }
                break;
            }
            walk_of[i] = start;
            path.push(i);
            current = tasks[i].parent().and_then(|p| index.get(&p).copied());
        }
    }
    Ok(())
}

/// Kahn's algorithm, preferring the earliest input position among ready tasks.
fn topological_order(
    tasks: &[Task],
    index: &BTreeMap<TaskId, usize>,
) -> Result<Vec<TaskId>, TaskError> {
    let mut waiting_on: Vec<usize> = tasks.iter().map(|t| t.dependencies().len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (i, task) in tasks.iter().enumerate() {
        for dependency in task.dependencies() {
            dependents[index[dependency]].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..tasks.len())
        .filter(|&i| waiting_on[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(tasks.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(tasks[i].id());
        for &dependent in &dependents[i] {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    if order.len() == tasks.len() {
        return Ok(order);
    }
    Err(TaskError::Cycle {
        path: find_cycle(tasks, index, &waiting_on),
    })
}

/// A cycle among the tasks Kahn's algorithm could not order. Each of them still waits on some
/// unordered dependency, so following those from any of them must eventually loop.
fn find_cycle(
    tasks: &[Task],
    index: &BTreeMap<TaskId, usize>,
    waiting_on: &[usize],
) -> Vec<TaskId> {
    let unordered = |i: usize| waiting_on[i] > 0;
    let mut position = BTreeMap::new();
    let mut path: Vec<usize> = Vec::new();
    let mut current = (0..tasks.len()).find(|&i| unordered(i));
    while let Some(i) = current {
        if let Some(&first) = position.get(&i) {
            let mut cycle: Vec<TaskId> = path[first..].iter().map(|&p| tasks[p].id()).collect();
            cycle.push(tasks[i].id());
            return cycle;
        }
        position.insert(i, path.len());
        path.push(i);
        current = tasks[i]
            .dependencies()
            .iter()
            .map(|d| index[d])
            .find(|&d| unordered(d));
    }
    unreachable!("every unordered task waits on another unordered task")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::{DateTime, TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::task::{NewTask, TaskComplexity, TaskTitle};

    fn t0() -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap()
    }

    fn id(n: u128) -> TaskId {
        TaskId::from_uuid(Uuid::from_u128(n))
    }

    fn task(n: u128, deps: &[u128]) -> Task {
        family(n, None, &[], deps)
    }

    fn family(n: u128, parent: Option<u128>, subtasks: &[u128], deps: &[u128]) -> Task {
        Task::new(
            NewTask {
                id: id(n),
                title: TaskTitle::new(format!("task {n}")).unwrap(),
                description: String::new(),
                complexity: TaskComplexity::Simple,
                parent: parent.map(id),
                subtasks: subtasks.iter().copied().map(id).collect(),
                dependencies: deps.iter().copied().map(id).collect(),
                required_capabilities: BTreeSet::new(),
            },
            t0(),
        )
        .unwrap()
    }

    #[test]
    fn empty_plan_is_valid() {
        assert_eq!(TaskGraph::validate(&[]).unwrap(), Vec::<TaskId>::new());
    }

    #[test]
    fn order_puts_dependencies_first_and_otherwise_keeps_input_order() {
        // 1 depends on 3, 2 is free, 3 depends on 4.
        let tasks = [task(1, &[3]), task(2, &[]), task(3, &[4]), task(4, &[])];
        let order = TaskGraph::validate(&tasks).unwrap();
        assert_eq!(order, [id(2), id(4), id(3), id(1)]);
    }

    #[test]
    fn dependency_cycle_is_reported_with_a_concrete_path() {
        // 1 -> 2 -> 3 -> 1, and 4 depends on the cycle without being part of it.
        let tasks = [task(4, &[1]), task(1, &[2]), task(2, &[3]), task(3, &[1])];
        let err = TaskGraph::validate(&tasks).unwrap_err();
        assert_eq!(
            err,
            TaskError::Cycle {
                path: vec![id(1), id(2), id(3), id(1)]
            }
        );
        assert!(err.to_string().starts_with("dependency cycle: "), "{err}");
        assert!(err.to_string().contains(" -> "), "{err}");
    }

    #[test]
    fn two_task_cycle_is_reported() {
        let err = TaskGraph::validate(&[task(1, &[2]), task(2, &[1])]).unwrap_err();
        assert_eq!(
            err,
            TaskError::Cycle {
                path: vec![id(1), id(2), id(1)]
            }
        );
    }

    #[test]
    fn unknown_dependency_is_rejected() {
        let err = TaskGraph::validate(&[task(1, &[9])]).unwrap_err();
        assert_eq!(
            err,
            TaskError::UnknownDependency {
                task: id(1),
                dependency: id(9)
            }
        );
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let err = TaskGraph::validate(&[task(1, &[]), task(1, &[])]).unwrap_err();
        assert_eq!(err, TaskError::DuplicateTask { id: id(1) });
    }

    #[test]
    fn consistent_hierarchy_is_valid() {
        let tasks = [
            family(1, None, &[2, 3], &[2, 3]),
            family(2, Some(1), &[], &[]),
            family(3, Some(1), &[], &[2]),
        ];
        assert_eq!(TaskGraph::validate(&tasks).unwrap(), [id(2), id(3), id(1)]);
    }

    #[test]
    fn subtask_whose_parent_does_not_point_back_is_rejected() {
        let tasks = [family(1, None, &[2], &[]), family(2, None, &[], &[])];
        assert_eq!(
            TaskGraph::validate(&tasks).unwrap_err(),
            TaskError::SubtaskParentMismatch {
                parent: id(1),
                subtask: id(2),
                actual: None
            }
        );
        let tasks = [
            family(1, None, &[2], &[]),
            family(2, Some(3), &[], &[]),
            family(3, None, &[2], &[]),
        ];
        assert!(matches!(
            TaskGraph::validate(&tasks).unwrap_err(),
            TaskError::SubtaskParentMismatch { actual: Some(p), .. } if p == id(3)
        ));
    }

    #[test]
    fn child_not_listed_by_its_parent_is_rejected() {
        let tasks = [family(1, None, &[], &[]), family(2, Some(1), &[], &[])];
        assert_eq!(
            TaskGraph::validate(&tasks).unwrap_err(),
            TaskError::NotListedByParent {
                task: id(2),
                parent: id(1)
            }
        );
    }

    #[test]
    fn unknown_subtask_and_parent_are_rejected() {
        assert!(matches!(
            TaskGraph::validate(&[family(1, None, &[7], &[])]).unwrap_err(),
            TaskError::UnknownSubtask { .. }
        ));
        assert!(matches!(
            TaskGraph::validate(&[family(1, Some(7), &[], &[])]).unwrap_err(),
            TaskError::UnknownParent { .. }
        ));
    }

    #[test]
    fn parent_cycle_is_rejected() {
        let tasks = [
            family(1, Some(3), &[2], &[]),
            family(2, Some(1), &[3], &[]),
            family(3, Some(2), &[1], &[]),
        ];
        let err = TaskGraph::validate(&tasks).unwrap_err();
        let TaskError::ParentCycle { path } = err else {
            panic!("expected a parent cycle, got {err:?}");
        };
        assert_eq!(path.len(), 4);
        assert_eq!(path.first(), path.last());
        for pair in path.windows(2) {
            let parent = tasks.iter().find(|t| t.id() == pair[0]).unwrap();
            assert!(parent.subtasks().contains(&pair[1]));
        }
    }
}
