//! Running a task tree: what each task remembers of its execution, and the pure planner that,
//! given the tree and what its sessions did, decides the next moves — which leaves finished, which
//! fail, which are cancelled because something they need failed, which parents roll up, and which
//! ready leaves may start within the tree's parallelism.
//!
//! The planner only reads; callers apply its [`Advance`] (status changes as updated tasks, sessions
//! to start and to stop) in their own transactions. Running it again on the same inputs gives the
//! same answer, which is what lets several replicas drive one tree: whoever commits first wins and
//! the others' stale writes are refused by optimistic locking.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Task, TaskError, TaskGraph, TaskStatus};
use crate::ids::{SessionId, TaskId};
use crate::session::SessionStatus;

/// Most leaves of one tree that may run at once.
pub const MAX_PARALLEL: u32 = 64;
/// Most extra attempts a [`FailurePolicy::Retry`] may allow.
pub const MAX_RETRIES: u32 = 10;

/// What happens when a leaf task's session fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FailurePolicy {
    /// The tree fails: nothing new starts, running sessions are cancelled, the rest is cancelled.
    #[default]
    FailFast,
    /// The failed task's dependents are cancelled; independent branches go on; the tree ends
    /// failed once nothing else can run.
    Continue,
    /// A new session tries again, up to `retries` more times; then as [`FailurePolicy::FailFast`].
    Retry {
        /// Extra attempts after the first, `1..=MAX_RETRIES`.
        retries: u32,
    },
}

impl FailurePolicy {
    /// Checks the retry count.
    pub fn validate(self) -> Result<Self, TaskError> {
        match self {
            Self::Retry { retries } if !(1..=MAX_RETRIES).contains(&retries) => {
                Err(TaskError::invalid(
                    "policy",
                    format!("retries must be between 1 and {MAX_RETRIES}"),
                ))
            }
            other => Ok(other),
        }
    }

    /// The stable name: `fail_fast`, `continue`, `retry`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::FailFast => "fail_fast",
            Self::Continue => "continue",
            Self::Retry { .. } => "retry",
        }
    }
}

/// How a root task's tree runs. Present on a root once it was started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TreeRun {
    /// The git repository every session of the tree works on (each in its own worktree).
    pub workspace: String,
    /// Most leaves running at once, `1..=MAX_PARALLEL`.
    pub max_parallel: u32,
    /// The policy of tasks that name none (see [`TaskExecution::policy`]).
    pub policy: FailurePolicy,
    /// When it was started.
    pub started_at: DateTime<Utc>,
    /// Set when an operator cancels the tree: nothing new starts, running sessions are stopped.
    #[serde(default)]
    pub cancel_requested: Option<String>,
    /// The tree's spending cap and the estimate it reserved against it before fanning out;
    /// `None`: no tree cap.
    #[serde(default)]
    pub budget: Option<TreeBudget>,
}

/// A task tree's budget: every session of the tree counts against `cap`; `reserved` is the
/// estimate checked against it when the tree started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TreeBudget {
    /// The caps for the whole tree.
    pub cap: crate::guardrails::Budget,
    /// What the tree was estimated to spend when it started.
    pub reserved: crate::guardrails::Spend,
}

/// What a finished leaf leaves for the tasks that depend on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskResult {
    /// The session that did the work.
    pub session: Option<SessionId>,
    /// The branch its work is on.
    pub branch: Option<String>,
    /// The commit that holds its work (`None`: it changed nothing).
    pub commit: Option<String>,
    /// The files it changed.
    #[serde(default)]
    pub files: Vec<String>,
    /// The agent's closing words, shortened.
    #[serde(default)]
    pub summary: String,
}

/// A task's execution record: stored with the task, shown with it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskExecution {
    /// Only on a started root: how its tree runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<TreeRun>,
    /// This task's own failure policy; `None` inherits the nearest ancestor's, then the run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<FailurePolicy>,
    /// The sessions started for this leaf, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<SessionId>,
    /// What its last successful session left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskResult>,
    /// Why it is waiting, failed or was cancelled, for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TaskExecution {
    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The session working on the task now (or last).
    pub fn current_session(&self) -> Option<SessionId> {
        self.sessions.last().copied()
    }
}

/// What the planner knows of a session: its status and, once it completed, what it left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    /// Where the session is.
    pub status: SessionStatus,
    /// Its last error, for the task's note.
    pub error: Option<String>,
    /// Its result (read when it completed).
    pub result: Option<TaskResult>,
}

/// The planner's answer for one tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Advance {
    /// Tasks whose status or record changed, as they should be stored (versions as read).
    pub updated: Vec<Task>,
    /// Leaves that may start a session now, in execution order, within the tree's parallelism.
    /// Their updates are not in `updated`: the caller routes them, creates the session and then
    /// applies [`Task::begin_attempt`].
    pub start: Vec<TaskId>,
    /// Running sessions to stop (fail fast or cancellation).
    pub stop_sessions: Vec<SessionId>,
    /// The root's status after the changes.
    pub root_status: TaskStatus,
}

impl Advance {
    /// Whether applying it changes nothing.
    pub fn is_idle(&self) -> bool {
        self.updated.is_empty() && self.start.is_empty() && self.stop_sessions.is_empty()
    }
}

/// Plans the next moves of the tree under `root`. `tasks` must hold the root and every
/// descendant (live ones); `sessions` the views of the sessions the leaves list as current.
pub fn plan(
    root: TaskId,
    tasks: &[Task],
    sessions: &BTreeMap<SessionId, SessionView>,
    now: DateTime<Utc>,
) -> Result<Advance, TaskError> {
    let order = TaskGraph::validate(tasks)?;
    let mut tree: BTreeMap<TaskId, Task> = tasks.iter().map(|t| (t.id(), t.clone())).collect();
    let original = tree.clone();
    let run = tree
        .get(&root)
        .and_then(|t| t.execution().run.clone())
        .ok_or_else(|| TaskError::invalid("run", format!("task {root} was not started")))?;
    let is_leaf = |t: &Task| t.subtasks().is_empty();
    let mut stop_sessions = Vec::new();

    // 1. Leaves whose session ended.
    for id in &order {
        let task = &tree[id];
        if !is_leaf(task) || task.status() != TaskStatus::Running {
            continue;
        }
        let Some(session) = task.execution().current_session() else {
            continue;
        };
        let Some(view) = sessions.get(&session) else {
            continue;
        };
        let policy = effective_policy(&tree, *id, run.policy);
        let attempts = u32::try_from(task.execution().sessions.len()).unwrap_or(u32::MAX);
        let stopping = run.cancel_requested.is_some() || failing_fast(&tree, run.policy).is_some();
        let task = tree.get_mut(id).expect("listed");
        match view.status {
            SessionStatus::Completed => {
                task.finish(
                    TaskStatus::Completed,
                    view.result.clone(),
                    Some(format!("completed by session {session}")),
                    now,
                )?;
            }
            SessionStatus::Failed | SessionStatus::TimedOut | SessionStatus::Cancelled => {
                let why = match (&view.error, view.status) {
                    (Some(error), _) => format!("session {session} {}: {error}", view.status),
                    (None, status) => format!("session {session} {status}"),
                };
                if stopping {
                    task.finish(TaskStatus::Cancelled, None, Some(why), now)?;
                } else if matches!(policy, FailurePolicy::Retry { retries } if attempts <= retries)
                    && view.status != SessionStatus::Cancelled
                {
                    task.finish(TaskStatus::Failed, None, Some(why.clone()), now)?;
                    task.transition_to(TaskStatus::Ready, now)?;
                    task.set_note(Some(format!("retrying after: {why}")), now);
                } else {
                    task.finish(TaskStatus::Failed, None, Some(why), now)?;
                }
            }
            SessionStatus::Pending
            | SessionStatus::Queued
            | SessionStatus::Running
            | SessionStatus::Paused => {}
        }
    }

    // 2. Stopping: fail fast or an operator's cancel.
    let stop_reason = run
        .cancel_requested
        .clone()
        .map(|reason| format!("tree cancelled: {reason}"))
        .or_else(|| {
            failing_fast(&tree, run.policy).map(|failed| format!("fail fast: task {failed} failed"))
        });
    if let Some(reason) = &stop_reason {
        for id in &order {
            let task = tree.get_mut(id).expect("listed");
            if !is_leaf(task) {
                continue;
            }
            match task.status() {
                TaskStatus::Pending | TaskStatus::Ready => {
                    task.finish(TaskStatus::Cancelled, None, Some(reason.clone()), now)?;
                }
                TaskStatus::Running => {
                    if let Some(session) = task.execution().current_session() {
                        stop_sessions.push(session);
                    }
                }
                _ => {}
            }
        }
    } else {
        // 3. Continue: what depends on a failed or cancelled task cannot run.
        loop {
            let mut changed = false;
            for id in &order {
                let task = &tree[id];
                if !is_leaf(task)
                    || !matches!(task.status(), TaskStatus::Pending | TaskStatus::Ready)
                {
                    continue;
                }
                let blocked = effective_dependencies(&tree, *id).into_iter().find(|d| {
                    matches!(tree[d].status(), TaskStatus::Failed | TaskStatus::Cancelled)
                });
                if let Some(dependency) = blocked {
                    let note = format!(
                        "dependency {dependency} ({}) {}",
                        tree[&dependency].title(),
                        tree[&dependency].status()
                    );
                    tree.get_mut(id).expect("listed").finish(
                        TaskStatus::Cancelled,
                        None,
                        Some(note),
                        now,
                    )?;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    // 4. Parents roll up (a finished parent releases what waits on it), then leaves whose
    // dependencies are met become ready.
    roll_up(&mut tree, root, &[], stop_reason.as_deref(), &run, now)?;
    for id in &order {
        let task = &tree[id];
        if is_leaf(task)
            && task.status() == TaskStatus::Pending
            && stop_reason.is_none()
            && dependencies_met(&tree, *id)
        {
            tree.get_mut(id)
                .expect("listed")
                .transition_to(TaskStatus::Ready, now)?;
        }
    }

    // 5. Start ready leaves within the parallelism.
    let running = tree
        .values()
        .filter(|t| is_leaf(t) && t.status() == TaskStatus::Running)
        .count();
    let room = usize::try_from(run.max_parallel)
        .unwrap_or(usize::MAX)
        .saturating_sub(running);
    let start: Vec<TaskId> = if stop_reason.is_some() {
        Vec::new()
    } else {
        order
            .iter()
            .filter(|id| is_leaf(&tree[id]) && tree[id].status() == TaskStatus::Ready)
            .take(room)
            .copied()
            .collect()
    };

    // 6. Parents roll up again, now counting the leaves that start.
    roll_up(&mut tree, root, &start, stop_reason.as_deref(), &run, now)?;

    let root_status = tree[&root].status();
    let updated = order
        .iter()
        .filter(|id| tree[id] != original[id])
        .map(|id| tree[id].clone())
        .collect();
    Ok(Advance {
        updated,
        start,
        stop_sessions,
        root_status,
    })
}

/// Moves every parent to what its children say, deepest first (the reverse of a pre-order walk).
fn roll_up(
    tree: &mut BTreeMap<TaskId, Task>,
    root: TaskId,
    starting: &[TaskId],
    stop_reason: Option<&str>,
    run: &TreeRun,
    now: DateTime<Utc>,
) -> Result<(), TaskError> {
    let mut walk = Vec::new();
    preorder(tree, root, &mut walk);
    for id in walk.iter().rev() {
        if tree[id].subtasks().is_empty() {
            continue;
        }
        let children: Vec<TaskStatus> = tree[id]
            .subtasks()
            .iter()
            .map(|c| effective_status(&tree[c], starting))
            .collect();
        let task = tree.get_mut(id).expect("listed");
        if let Some((status, note)) = rollup(&children, stop_reason, run) {
            if rank(status) > rank(task.status()) {
                task.walk_to(status, now)?;
                if note.is_some() {
                    task.set_note(note, now);
                }
            }
        }
    }
    Ok(())
}

/// How far along the lifecycle a status is; parents only ever move forward.
fn rank(status: TaskStatus) -> u8 {
    match status {
        TaskStatus::Pending => 0,
        TaskStatus::Ready => 1,
        TaskStatus::Running => 2,
        TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled => 3,
    }
}

/// A leaf about to start counts as running for its parent.
fn effective_status(task: &Task, starting: &[TaskId]) -> TaskStatus {
    if starting.contains(&task.id()) {
        TaskStatus::Running
    } else {
        task.status()
    }
}

/// The status a parent takes from its children, with a note; `None` to leave it.
fn rollup(
    children: &[TaskStatus],
    stop_reason: Option<&str>,
    run: &TreeRun,
) -> Option<(TaskStatus, Option<String>)> {
    if children.iter().all(|s| s.is_terminal()) {
        let completed = children
            .iter()
            .filter(|s| **s == TaskStatus::Completed)
            .count();
        if completed == children.len() {
            return Some((TaskStatus::Completed, None));
        }
        if run.cancel_requested.is_some() {
            return Some((TaskStatus::Cancelled, stop_reason.map(str::to_owned)));
        }
        return Some((
            TaskStatus::Failed,
            Some(format!(
                "{} of {} subtasks did not complete",
                children.len() - completed,
                children.len()
            )),
        ));
    }
    if children
        .iter()
        .any(|s| !matches!(s, TaskStatus::Pending | TaskStatus::Ready))
    {
        return Some((TaskStatus::Running, None));
    }
    if children.contains(&TaskStatus::Ready) {
        return Some((TaskStatus::Ready, None));
    }
    None
}

/// The first leaf that failed for good under a fail-fast (or exhausted retry) policy.
fn failing_fast(tree: &BTreeMap<TaskId, Task>, default: FailurePolicy) -> Option<TaskId> {
    tree.values()
        .filter(|t| t.subtasks().is_empty() && t.status() == TaskStatus::Failed)
        .find(|t| {
            !matches!(
                effective_policy(tree, t.id(), default),
                FailurePolicy::Continue
            )
        })
        .map(Task::id)
}

/// The task's own policy, else its nearest ancestor's, else the run's.
pub fn effective_policy(
    tree: &BTreeMap<TaskId, Task>,
    id: TaskId,
    default: FailurePolicy,
) -> FailurePolicy {
    let mut current = tree.get(&id);
    while let Some(task) = current {
        if let Some(policy) = task.execution().policy {
            return policy;
        }
        current = task.parent().and_then(|p| tree.get(&p));
    }
    default
}

/// The task's dependencies and those of every ancestor inside the tree: a subtask of a task that
/// waits on X waits on X too.
pub fn effective_dependencies(tree: &BTreeMap<TaskId, Task>, id: TaskId) -> BTreeSet<TaskId> {
    let mut deps = BTreeSet::new();
    let mut current = tree.get(&id);
    while let Some(task) = current {
        deps.extend(
            task.dependencies()
                .iter()
                .copied()
                .filter(|d| tree.contains_key(d)),
        );
        current = task.parent().and_then(|p| tree.get(&p));
    }
    deps
}

fn dependencies_met(tree: &BTreeMap<TaskId, Task>, id: TaskId) -> bool {
    effective_dependencies(tree, id)
        .iter()
        .all(|d| tree[d].status() == TaskStatus::Completed)
}

fn preorder(tree: &BTreeMap<TaskId, Task>, id: TaskId, out: &mut Vec<TaskId>) {
    out.push(id);
    if let Some(task) = tree.get(&id) {
        for child in task.subtasks() {
            preorder(tree, *child, out);
        }
    }
}
