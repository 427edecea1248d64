//! Property tests of task-graph validation on random plans.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{TimeZone, Utc};
use domain::{NewTask, Task, TaskComplexity, TaskError, TaskGraph, TaskId, TaskTitle};
use proptest::prelude::*;
use proptest::sample::Index;
use uuid::Uuid;

fn id(n: usize) -> TaskId {
    TaskId::from_uuid(Uuid::from_u128(n as u128 + 1))
}

/// A random DAG over `n` tasks: task `i` may depend only on lower indices, so no cycle exists.
/// Returned as per-task dependency lists plus a random input order.
fn dag() -> impl Strategy<Value = (Vec<BTreeSet<usize>>, Vec<usize>)> {
    (1usize..20).prop_flat_map(|n| {
        let edges = proptest::collection::vec(proptest::collection::vec(any::<Index>(), 0..4), n);
        let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
        (edges, order).prop_map(|(edges, order)| {
            let deps = edges
                .into_iter()
                .enumerate()
                .map(|(i, picks)| {
                    if i == 0 {
                        BTreeSet::new()
                    } else {
                        picks.into_iter().map(|p| p.index(i)).collect()
                    }
                })
                .collect();
            (deps, order)
        })
    })
}

fn build(deps: &[BTreeSet<usize>], order: &[usize]) -> Vec<Task> {
    let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    order
        .iter()
        .map(|&i| {
            Task::new(
                NewTask {
                    id: id(i),
                    title: TaskTitle::new(format!("task {i}")).unwrap(),
                    description: String::new(),
                    complexity: TaskComplexity::Simple,
                    parent: None,
                    subtasks: Vec::new(),
                    dependencies: deps[i].iter().map(|&d| id(d)).collect(),
                    required_capabilities: BTreeSet::new(),
                },
                now,
            )
            .unwrap()
        })
        .collect()
}

/// Every `(a, b)` with `a != b` where `a` depends on `b`, directly or not.
fn reachable_pairs(deps: &[BTreeSet<usize>]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for start in 0..deps.len() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = deps[start].iter().copied().collect();
        while let Some(d) = stack.pop() {
            if seen.insert(d) {
                stack.extend(deps[d].iter().copied());
            }
        }
        pairs.extend(seen.into_iter().map(|d| (start, d)));
    }
    pairs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_dags_validate_with_dependencies_ordered_first((deps, order) in dag()) {
        let tasks = build(&deps, &order);
        let sorted = TaskGraph::validate(&tasks).unwrap();

        prop_assert_eq!(sorted.len(), tasks.len());
        let position: BTreeMap<TaskId, usize> =
            sorted.iter().enumerate().map(|(p, id)| (*id, p)).collect();
        prop_assert_eq!(position.len(), tasks.len(), "every task exactly once");
        for task in &tasks {
            for dependency in task.dependencies() {
                prop_assert!(position[dependency] < position[&task.id()]);
            }
        }
    }

    #[test]
    fn a_back_edge_closing_a_cycle_is_rejected(
        (deps, order) in dag(),
        pick in any::<Index>(),
    ) {
        let pairs = reachable_pairs(&deps);
        prop_assume!(!pairs.is_empty());
        // `a` already depends on `b`; making `b` depend on `a` closes a loop.
        let (a, b) = pairs[pick.index(pairs.len())];
        let mut tasks = build(&deps, &order);
        let now = Utc.timestamp_opt(1_700_000_001, 0).unwrap();
        tasks
            .iter_mut()
            .find(|t| t.id() == id(b))
            .unwrap()
            .add_dependency(id(a), now)
            .unwrap();

        let err = TaskGraph::validate(&tasks).unwrap_err();
        let TaskError::Cycle { path } = err else {
            return Err(TestCaseError::fail(format!("expected a cycle, got {err:?}")));
        };
        // A real cycle: closed, simple, and every step an actual dependency.
        prop_assert!(path.len() >= 3, "{path:?}");
        prop_assert_eq!(path.first(), path.last());
        let inner: BTreeSet<_> = path[1..].iter().collect();
        prop_assert_eq!(inner.len(), path.len() - 1, "no task repeats inside the cycle");
        let by_id: BTreeMap<TaskId, &Task> = tasks.iter().map(|t| (t.id(), t)).collect();
        for step in path.windows(2) {
            prop_assert!(by_id[&step[0]].dependencies().contains(&step[1]));
        }
    }
}
