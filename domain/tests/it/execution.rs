//! The task-tree planner (`domain::task::execution::plan`): execution order, parallelism, failure
//! policies, cancellation, nested parents — driven by a small simulated world that applies each
//! plan the way the server's executor does.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use domain::task::execution::{plan, Advance, SessionView};
use domain::{
    FailurePolicy, NewTask, SessionId, SessionStatus, Task, TaskComplexity, TaskId, TaskResult,
    TaskStatus, TaskTitle, TreeRun,
};
use proptest::prelude::*;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

fn id(n: u128) -> TaskId {
    TaskId::from_uuid(Uuid::from_u128(n))
}

/// A tree being run: tasks, sessions, and a log of which leaf started when.
struct World {
    root: TaskId,
    tasks: BTreeMap<TaskId, Task>,
    sessions: BTreeMap<SessionId, SessionView>,
    next_session: u128,
    started: Vec<TaskId>,
}

impl World {
    /// `spec`: (task, parent, dependencies); task 0 is the root. Subtasks are listed in order.
    fn new(
        spec: &[(u128, Option<u128>, &[u128])],
        max_parallel: u32,
        policy: FailurePolicy,
    ) -> Self {
        let mut tasks: BTreeMap<TaskId, Task> = BTreeMap::new();
        for &(n, parent, deps) in spec {
            let subtasks: Vec<TaskId> = spec
                .iter()
                .filter(|(_, p, _)| *p == Some(n))
                .map(|(c, _, _)| id(*c))
                .collect();
            let task = Task::new(
                NewTask {
                    id: id(n),
                    title: TaskTitle::new(format!("task {n}")).unwrap(),
                    description: String::new(),
                    complexity: TaskComplexity::Simple,
                    parent: parent.map(id),
                    subtasks,
                    dependencies: deps.iter().map(|d| id(*d)).collect(),
                    required_capabilities: BTreeSet::new(),
                },
                now(),
            )
            .unwrap();
            tasks.insert(id(n), task);
        }
        let root = id(0);
        tasks
            .get_mut(&root)
            .unwrap()
            .start_run(
                TreeRun {
                    workspace: "/repo".into(),
                    max_parallel,
                    policy,
                    started_at: now(),
                    cancel_requested: None,
                    budget: None,
                },
                now(),
            )
            .unwrap();
        World {
            root,
            tasks,
            sessions: BTreeMap::new(),
            next_session: 1000,
            started: Vec::new(),
        }
    }

    fn plan(&self) -> Advance {
        let tasks: Vec<Task> = self.tasks.values().cloned().collect();
        plan(self.root, &tasks, &self.sessions, now()).unwrap()
    }

    /// Plans and applies: stores the updates, starts a session per leaf to start, and marks the
    /// sessions to stop cancelled. Returns the plan.
    fn step(&mut self) -> Advance {
        let advance = self.plan();
        for task in &advance.updated {
            self.tasks.insert(task.id(), task.clone());
        }
        for leaf in &advance.start {
            self.next_session += 1;
            let session = SessionId::from_uuid(Uuid::from_u128(self.next_session));
            self.tasks
                .get_mut(leaf)
                .unwrap()
                .begin_attempt(session, now())
                .unwrap();
            self.sessions.insert(
                session,
                SessionView {
                    status: SessionStatus::Running,
                    error: None,
                    result: None,
                },
            );
            self.started.push(*leaf);
        }
        for session in &advance.stop_sessions {
            self.sessions.get_mut(session).unwrap().status = SessionStatus::Cancelled;
        }
        advance
    }

    fn session_of(&self, n: u128) -> SessionId {
        self.tasks[&id(n)].execution().current_session().unwrap()
    }

    fn end(&mut self, n: u128, status: SessionStatus) {
        let session = self.session_of(n);
        let view = self.sessions.get_mut(&session).unwrap();
        view.status = status;
        if status == SessionStatus::Completed {
            view.result = Some(TaskResult {
                session: Some(session),
                summary: format!("did task {n}"),
                ..TaskResult::default()
            });
        } else {
            view.error = Some("boom".into());
        }
    }

    fn status(&self, n: u128) -> TaskStatus {
        self.tasks[&id(n)].status()
    }

    fn running_leaves(&self) -> usize {
        self.tasks
            .values()
            .filter(|t| t.subtasks().is_empty() && t.status() == TaskStatus::Running)
            .count()
    }
}

fn ids(list: &[u128]) -> Vec<TaskId> {
    list.iter().map(|n| id(*n)).collect()
}

/// root 0 with leaves 1 -> {2, 3} -> 4 (a diamond).
const DIAMOND: &[(u128, Option<u128>, &[u128])] = &[
    (0, None, &[]),
    (1, Some(0), &[]),
    (2, Some(0), &[1]),
    (3, Some(0), &[1]),
    (4, Some(0), &[2, 3]),
];

#[test]
fn a_diamond_runs_in_dependency_order_with_the_middle_in_parallel() {
    let mut w = World::new(DIAMOND, 4, FailurePolicy::FailFast);
    assert_eq!(w.step().start, ids(&[1]));
    assert_eq!(w.status(2), TaskStatus::Pending);
    // Nothing changes while 1 runs: planning is idempotent.
    assert!(w.step().is_idle());
    w.end(1, SessionStatus::Completed);
    let advance = w.step();
    assert_eq!(
        advance.start,
        ids(&[2, 3]),
        "both middle tasks start together"
    );
    assert_eq!(w.status(1), TaskStatus::Completed);
    assert_eq!(
        w.tasks[&id(1)].execution().result.as_ref().unwrap().summary,
        "did task 1"
    );
    w.end(2, SessionStatus::Completed);
    assert!(w.step().start.is_empty(), "4 still waits on 3");
    assert_eq!(w.status(4), TaskStatus::Pending);
    w.end(3, SessionStatus::Completed);
    assert_eq!(w.step().start, ids(&[4]));
    assert_eq!(w.status(0), TaskStatus::Running);
    w.end(4, SessionStatus::Completed);
    let last = w.step();
    assert_eq!(last.root_status, TaskStatus::Completed);
    assert_eq!(w.status(0), TaskStatus::Completed);
    assert_eq!(w.started, ids(&[1, 2, 3, 4]));
}

#[test]
fn parallelism_is_capped_and_ready_leaves_wait_their_turn() {
    let mut w = World::new(DIAMOND, 1, FailurePolicy::FailFast);
    w.step();
    w.end(1, SessionStatus::Completed);
    assert_eq!(w.step().start, ids(&[2]));
    assert_eq!(w.status(3), TaskStatus::Ready, "met dependencies, no room");
    assert_eq!(w.running_leaves(), 1);
    w.end(2, SessionStatus::Completed);
    assert_eq!(w.step().start, ids(&[3]));
}

#[test]
fn fail_fast_stops_running_siblings_cancels_the_rest_and_fails_the_root() {
    let mut w = World::new(DIAMOND, 4, FailurePolicy::FailFast);
    w.step();
    w.end(1, SessionStatus::Completed);
    w.step();
    let three = w.session_of(3);
    w.end(2, SessionStatus::Failed);
    let advance = w.step();
    assert_eq!(advance.stop_sessions, vec![three]);
    assert!(advance.start.is_empty());
    assert_eq!(w.status(2), TaskStatus::Failed);
    assert_eq!(w.status(4), TaskStatus::Cancelled);
    assert!(w.tasks[&id(4)]
        .execution()
        .note
        .as_ref()
        .unwrap()
        .contains("fail fast"));
    // 3 is still running until its session is really stopped; the root waits for it.
    assert_eq!(w.status(0), TaskStatus::Running);
    let advance = w.step();
    assert_eq!(w.status(3), TaskStatus::Cancelled);
    assert_eq!(advance.root_status, TaskStatus::Failed);
    assert!(w.tasks[&id(0)]
        .execution()
        .note
        .as_ref()
        .unwrap()
        .contains("3 of 4"));
}

#[test]
fn continue_cancels_only_the_dependents_of_a_failure() {
    let spec: &[(u128, Option<u128>, &[u128])] = &[
        (0, None, &[]),
        (1, Some(0), &[]),
        (2, Some(0), &[1]),
        (3, Some(0), &[]),
        (4, Some(0), &[3]),
    ];
    let mut w = World::new(spec, 4, FailurePolicy::Continue);
    assert_eq!(w.step().start, ids(&[1, 3]));
    w.end(1, SessionStatus::Failed);
    let advance = w.step();
    assert!(advance.stop_sessions.is_empty());
    assert_eq!(w.status(1), TaskStatus::Failed);
    assert_eq!(w.status(2), TaskStatus::Cancelled);
    assert!(w.tasks[&id(2)]
        .execution()
        .note
        .as_ref()
        .unwrap()
        .contains("dependency"));
    assert_eq!(
        w.status(3),
        TaskStatus::Running,
        "the independent branch goes on"
    );
    w.end(3, SessionStatus::Completed);
    assert_eq!(w.step().start, ids(&[4]));
    w.end(4, SessionStatus::Completed);
    assert_eq!(w.step().root_status, TaskStatus::Failed);
}

#[test]
fn retry_starts_a_new_session_then_fails_fast_when_exhausted() {
    let mut w = World::new(DIAMOND, 4, FailurePolicy::Retry { retries: 1 });
    w.step();
    let first = w.session_of(1);
    w.end(1, SessionStatus::Failed);
    let advance = w.step();
    assert_eq!(advance.start, ids(&[1]), "retried");
    assert_ne!(w.session_of(1), first);
    assert_eq!(w.tasks[&id(1)].execution().sessions.len(), 2);
    assert_eq!(w.status(1), TaskStatus::Running);
    w.end(1, SessionStatus::Failed);
    let advance = w.step();
    assert!(advance.start.is_empty());
    assert_eq!(w.status(1), TaskStatus::Failed);
    assert_eq!(advance.root_status, TaskStatus::Failed);
}

#[test]
fn a_task_policy_overrides_the_runs_default() {
    let mut w = World::new(DIAMOND, 4, FailurePolicy::FailFast);
    w.tasks
        .get_mut(&id(1))
        .unwrap()
        .set_policy(Some(FailurePolicy::Retry { retries: 2 }), now())
        .unwrap();
    w.step();
    w.end(1, SessionStatus::TimedOut);
    assert_eq!(w.step().start, ids(&[1]));
}

#[test]
fn an_operator_cancel_stops_everything_and_cancels_the_root() {
    let mut w = World::new(DIAMOND, 4, FailurePolicy::FailFast);
    w.step();
    let one = w.session_of(1);
    w.tasks
        .get_mut(&id(0))
        .unwrap()
        .request_cancel("operator".into(), now())
        .unwrap();
    let advance = w.step();
    assert_eq!(advance.stop_sessions, vec![one]);
    assert_eq!(w.status(2), TaskStatus::Cancelled);
    let advance = w.step();
    assert_eq!(w.status(1), TaskStatus::Cancelled);
    assert_eq!(advance.root_status, TaskStatus::Cancelled);
}

#[test]
fn subtasks_of_a_parent_wait_for_the_parents_dependencies_and_parents_roll_up() {
    // 0 -> [1 (-> 11, 12 after 11), 2 after 1 (-> 21)]
    let spec: &[(u128, Option<u128>, &[u128])] = &[
        (0, None, &[]),
        (1, Some(0), &[]),
        (11, Some(1), &[]),
        (12, Some(1), &[11]),
        (2, Some(0), &[1]),
        (21, Some(2), &[]),
    ];
    let mut w = World::new(spec, 8, FailurePolicy::FailFast);
    assert_eq!(w.step().start, ids(&[11]));
    assert_eq!(w.status(1), TaskStatus::Running);
    assert_eq!(w.status(2), TaskStatus::Pending);
    w.end(11, SessionStatus::Completed);
    assert_eq!(w.step().start, ids(&[12]), "21 waits for all of 1");
    w.end(12, SessionStatus::Completed);
    assert_eq!(w.step().start, ids(&[21]));
    assert_eq!(w.status(1), TaskStatus::Completed);
    assert_eq!(w.status(2), TaskStatus::Running);
    w.end(21, SessionStatus::Completed);
    w.step();
    assert_eq!(w.status(2), TaskStatus::Completed);
    assert_eq!(w.status(0), TaskStatus::Completed);
}

#[test]
fn a_root_without_subtasks_is_its_own_leaf() {
    let mut w = World::new(&[(0, None, &[])], 2, FailurePolicy::FailFast);
    assert_eq!(w.status(0), TaskStatus::Ready);
    assert_eq!(w.step().start, ids(&[0]));
    assert_eq!(w.status(0), TaskStatus::Running);
    w.end(0, SessionStatus::Completed);
    assert_eq!(w.step().root_status, TaskStatus::Completed);
}

#[test]
fn a_tree_that_was_not_started_is_refused() {
    let tasks = vec![Task::new(
        NewTask {
            id: id(0),
            title: TaskTitle::new("root").unwrap(),
            description: String::new(),
            complexity: TaskComplexity::Simple,
            parent: None,
            subtasks: vec![],
            dependencies: BTreeSet::new(),
            required_capabilities: BTreeSet::new(),
        },
        now(),
    )
    .unwrap()];
    let err = plan(id(0), &tasks, &BTreeMap::new(), now()).unwrap_err();
    assert!(err.to_string().contains("not started"), "{err}");
}

#[test]
fn bad_run_settings_are_refused_naming_the_field() {
    let mut w = World::new(DIAMOND, 1, FailurePolicy::FailFast);
    let mut fresh = w.tasks[&id(1)].clone();
    let err = fresh
        .set_policy(Some(FailurePolicy::Retry { retries: 0 }), now())
        .unwrap_err();
    assert!(err.to_string().contains("retries"), "{err}");
    let root = w.tasks.get_mut(&id(0)).unwrap();
    let err = root
        .start_run(
            TreeRun {
                workspace: "/repo".into(),
                max_parallel: 1,
                policy: FailurePolicy::FailFast,
                started_at: now(),
                cancel_requested: None,
                budget: None,
            },
            now(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("already started"), "{err}");
}

/// A random DAG of `n` leaves under one root (edges only from lower to higher index, so acyclic).
fn dag() -> impl Strategy<Value = (Vec<Vec<usize>>, u32, Vec<usize>)> {
    (2usize..10).prop_flat_map(|n| {
        let deps = (0..n)
            .map(|i| proptest::collection::vec(0..i.max(1), 0..=i.min(3)))
            .collect::<Vec<_>>();
        (deps, 1u32..4, proptest::collection::vec(0usize..100, 64))
    })
}

proptest! {
    /// Whatever the shape, the parallelism and the order sessions finish in: no leaf starts before
    /// every dependency completed, never more than `max_parallel` run, and the root completes.
    #[test]
    fn random_dags_respect_dependencies_and_parallelism((deps, max_parallel, picks) in dag()) {
        let deps: Vec<Vec<u128>> = deps
            .iter()
            .enumerate()
            .map(|(i, d)| d.iter().filter(|&&x| x < i).map(|&x| x as u128 + 1).collect::<BTreeSet<_>>().into_iter().collect())
            .collect();
        let mut spec: Vec<(u128, Option<u128>, &[u128])> = vec![(0, None, &[])];
        for (i, d) in deps.iter().enumerate() {
            spec.push((i as u128 + 1, Some(0), d.as_slice()));
        }
        let mut w = World::new(&spec, max_parallel, FailurePolicy::FailFast);
        let mut finished: Vec<u128> = Vec::new();
        let mut pick = picks.into_iter().cycle();
        for _ in 0..200 {
            let advance = w.step();
            prop_assert!(w.running_leaves() <= max_parallel as usize);
            for leaf in &advance.start {
                let n = leaf.as_uuid().as_u128();
                for d in &deps[n as usize - 1] {
                    prop_assert!(finished.contains(d), "{n} started before {d} finished");
                }
            }
            if advance.root_status == TaskStatus::Completed {
                break;
            }
            let running: Vec<u128> = (1..=deps.len() as u128)
                .filter(|n| w.status(*n) == TaskStatus::Running)
                .collect();
            prop_assert!(!running.is_empty(), "stuck with nothing running");
            let n = running[pick.next().unwrap() % running.len()];
            w.end(n, SessionStatus::Completed);
            finished.push(n);
        }
        prop_assert_eq!(w.status(0), TaskStatus::Completed);
        prop_assert_eq!(w.started.len(), deps.len());
    }
}
