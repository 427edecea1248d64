//! Runs task trees (issue 6, part 5): a started root's ready leaves become sessions — routed to the
//! best agent, in parallel up to the tree's limit — and what each finished session left (its
//! branch, commit, changed files and closing words) goes into the prompts of the tasks that depend
//! on it. Parents complete when their children do; failures follow the task's policy.
//!
//! The decisions are the domain planner's (`domain::task::execution::plan`); this service loads
//! the tree and the sessions' outcomes, applies the plan in Unit of Work commits and creates the
//! sessions through [`SessionLifecycle`]. Every replica's scheduler may advance the same tree: a
//! leaf's session is created in the same commit as the leaf's versioned update, so when two
//! replicas race, one commit is refused (`Conflict`) with its session, and the next tick sees the
//! winner's state. Advancing is idempotent.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::task::execution::{effective_dependencies, plan, Advance, SessionView};
use domain::{
    Budget, BudgetMetric, FailurePolicy, SessionId, SessionLogEvent, SessionStatus, StopReason,
    Task, TaskError, TaskFilter, TaskGraph, TaskId, TaskResult, TaskStatus, TreeBudget, TreeRun,
    ValidationError, WorkspacePath, WorkspaceRecord,
};
use domain::{PageRequest, RoutingError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::guardrails::{BudgetSettings, GuardrailConfig};
use super::lifecycle::{CreateSessionRequest, LifecycleError, SessionLifecycle};
use super::task_routing::{TaskRouter, TaskRoutingError};
use crate::ports::{
    ChangeSet, EntityKey, RepositoryError, SessionRepository, TaskRepository, UnitOfWork,
};

/// How to run a task tree.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StartTaskRequest {
    /// The git repository the tree's sessions work on (each in its own worktree).
    pub workspace: String,
    /// Leaves running at once; the configured default when absent.
    #[serde(default)]
    pub max_parallel: Option<u32>,
    /// What a failed leaf does to the tree; fail fast when absent.
    #[serde(default)]
    pub policy: Option<FailurePolicy>,
    /// The tree's token cap (all its sessions); `guardrails.task_tree` when absent.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// The tree's cost cap in US dollars; `guardrails.task_tree` when absent.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
}

impl StartTaskRequest {
    /// The tree's own caps, if it names any (checked).
    fn budget(&self) -> Result<Option<Budget>, ValidationError> {
        if self.max_tokens.is_none() && self.max_cost_usd.is_none() {
            return Ok(None);
        }
        BudgetSettings {
            max_tokens: self.max_tokens,
            max_cost_usd: self.max_cost_usd,
        }
        .to_budget()
        .map(Some)
        .map_err(|field| match field {
            "max_tokens" => ValidationError::new(
                "max_tokens",
                "must be at least 1 (leave it out for the configured cap)",
            ),
            _ => ValidationError::new("max_cost_usd", "must be a positive number of US dollars"),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("task {0} does not exist")]
    NotFound(TaskId),
    /// The command does not apply to the task in its state.
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Storage(#[from] RepositoryError),
}

impl From<TaskError> for ExecutionError {
    fn from(error: TaskError) -> Self {
        match error {
            TaskError::Invalid { field, message } => {
                ExecutionError::Invalid(ValidationError::new(field, message))
            }
            other => ExecutionError::NotAllowed(other.to_string()),
        }
    }
}

impl From<LifecycleError> for ExecutionError {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::Invalid(e) => ExecutionError::Invalid(e),
            LifecycleError::Storage(e) => ExecutionError::Storage(e),
            other => ExecutionError::NotAllowed(other.to_string()),
        }
    }
}

/// What one advance did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdvanceReport {
    /// Tasks whose status or record changed.
    pub updated: usize,
    /// Sessions created for leaves.
    pub started: Vec<SessionId>,
    /// Sessions asked to stop.
    pub stopped: usize,
    /// Leaves that could not start because no agent can take them.
    pub unroutable: usize,
    /// The root's status afterwards.
    pub root_status: Option<TaskStatus>,
    /// Another replica changed the tree meanwhile; the next tick continues.
    pub lost_race: bool,
}

pub struct TaskExecutor {
    tasks: Arc<dyn TaskRepository>,
    sessions: Arc<dyn SessionRepository>,
    unit_of_work: Arc<dyn UnitOfWork>,
    lifecycle: Arc<SessionLifecycle>,
    router: Arc<TaskRouter>,
    default_max_parallel: u32,
    guardrails: GuardrailConfig,
}

impl TaskExecutor {
    /// The executor with these guardrails: a tree's default cap and its estimate per leaf.
    pub fn with_guardrails(mut self, guardrails: GuardrailConfig) -> Self {
        self.guardrails = guardrails;
        self
    }

    pub fn new(
        tasks: Arc<dyn TaskRepository>,
        sessions: Arc<dyn SessionRepository>,
        unit_of_work: Arc<dyn UnitOfWork>,
        lifecycle: Arc<SessionLifecycle>,
        router: Arc<TaskRouter>,
        default_max_parallel: u32,
    ) -> Self {
        Self {
            tasks,
            sessions,
            unit_of_work,
            lifecycle,
            router,
            default_max_parallel,
            guardrails: GuardrailConfig::default(),
        }
    }

    /// Checks a start request on its own (workspace is a git repository root, parallelism and
    /// policy in range) without reading or writing anything: callers that store something first
    /// (a new decomposition) check before, so a bad request leaves no half-state.
    pub fn check_start(&self, request: &StartTaskRequest) -> Result<(), ExecutionError> {
        let workspace = WorkspacePath::new(request.workspace.clone())?;
        if !Path::new(workspace.as_str()).join(".git").exists() {
            return Err(ValidationError::new(
                "workspace",
                format!("{} is not the root of a git repository", workspace.as_str()),
            )
            .into());
        }
        let max_parallel = request.max_parallel.unwrap_or(self.default_max_parallel);
        if !(1..=domain::task::execution::MAX_PARALLEL).contains(&max_parallel) {
            return Err(ValidationError::new(
                "max_parallel",
                format!(
                    "must be between 1 and {}",
                    domain::task::execution::MAX_PARALLEL
                ),
            )
            .into());
        }
        request.policy.unwrap_or_default().validate()?;
        request.budget()?;
        Ok(())
    }

    /// Starts the tree under `root`: validates the request and the tree, records the run on the
    /// root (`running`), and starts the first leaves.
    #[tracing::instrument(skip(self, request), fields(task_id = %root))]
    pub async fn start(
        &self,
        root: TaskId,
        request: StartTaskRequest,
    ) -> Result<Task, ExecutionError> {
        let cap = request.budget()?.unwrap_or(self.guardrails.task_tree);
        let workspace = WorkspacePath::new(request.workspace)?;
        if !Path::new(workspace.as_str()).join(".git").exists() {
            return Err(ValidationError::new(
                "workspace",
                format!("{} is not the root of a git repository", workspace.as_str()),
            )
            .into());
        }
        let policy = request.policy.unwrap_or_default().validate()?;
        let mut task = self.get(root).await?;
        // The tree reserves its estimate before it fans out: one that cannot fit is refused
        // whole, rather than stopped halfway with part of the work done.
        let mut budget = None;
        if !cap.is_unlimited() && task.parent().is_none() {
            let tree = self.tree(root).await?;
            let estimate = self
                .guardrails
                .estimate(tree.iter().filter(|t| t.subtasks().is_empty()));
            if let Some(StopReason::BudgetExceeded { metric, .. }) =
                cap.breach(domain::BudgetScope::TaskTree, estimate)
            {
                let (field, used, limit) = match metric {
                    BudgetMetric::Tokens => (
                        "max_tokens",
                        format!("{} tokens", estimate.tokens),
                        format!("{} tokens", cap.max_tokens.unwrap_or_default()),
                    ),
                    BudgetMetric::CostMicroUsd => (
                        "max_cost_usd",
                        format!("${:.2}", estimate.cost_micro_usd as f64 / 1e6),
                        format!(
                            "${:.2}",
                            cap.max_cost_micro_usd.unwrap_or_default() as f64 / 1e6
                        ),
                    ),
                };
                return Err(ValidationError::new(
                    field,
                    format!(
                        "the tree's estimate ({used} for {} leaves) does not fit its budget of {limit}",
                        tree.iter().filter(|t| t.subtasks().is_empty()).count()
                    ),
                )
                .into());
            }
            budget = Some(TreeBudget {
                cap,
                reserved: estimate,
            });
            tracing::info!(
                reserved_tokens = estimate.tokens,
                reserved_micro_usd = estimate.cost_micro_usd,
                "task tree budget reserved"
            );
        }
        task.start_run(
            TreeRun {
                workspace: workspace.as_str().to_owned(),
                max_parallel: request.max_parallel.unwrap_or(self.default_max_parallel),
                policy,
                started_at: Utc::now(),
                cancel_requested: None,
                budget,
            },
            Utc::now(),
        )?;
        // Checked only now: `start_run` refuses a subtask, whose tree would lack its parent.
        let tree = self.tree(root).await?;
        TaskGraph::validate(&tree)?;

        let mut changes = ChangeSet::new();
        changes.update_task(&task);
        self.unit_of_work.commit(changes).await?;
        tracing::info!(
            tasks = tree.len(),
            policy = policy.name(),
            "task tree started"
        );
        self.advance(root).await?;
        self.get(root).await
    }

    /// Asks a running tree to stop: nothing new starts, running sessions are cancelled, and the
    /// root ends `cancelled` once they have stopped.
    #[tracing::instrument(skip(self, reason), fields(task_id = %root))]
    pub async fn cancel(
        &self,
        root: TaskId,
        reason: Option<String>,
    ) -> Result<Task, ExecutionError> {
        let mut task = self.get(root).await?;
        task.request_cancel(
            reason.unwrap_or_else(|| "cancelled on request".into()),
            Utc::now(),
        )?;
        let mut changes = ChangeSet::new();
        changes.update_task(&task);
        self.unit_of_work.commit(changes).await?;
        tracing::info!("task tree cancellation requested");
        self.advance(root).await?;
        self.get(root).await
    }

    /// The root and every live descendant, parents before children, subtasks in order.
    pub async fn tree(&self, root: TaskId) -> Result<Vec<Task>, ExecutionError> {
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            let task = self.get(id).await?;
            stack.extend(task.subtasks().iter().rev().copied());
            out.push(task);
        }
        Ok(out)
    }

    /// One step of the tree under `root`: records finished sessions, applies the failure policy,
    /// rolls parents up, and starts what may start. Safe to call at any time, from any replica.
    #[tracing::instrument(skip(self), fields(task_id = %root))]
    pub async fn advance(&self, root: TaskId) -> Result<AdvanceReport, ExecutionError> {
        let tasks = self.tree(root).await?;
        let mut views = BTreeMap::new();
        for task in tasks
            .iter()
            .filter(|t| t.subtasks().is_empty() && t.status() == TaskStatus::Running)
        {
            let Some(id) = task.execution().current_session() else {
                continue;
            };
            let Some(session) = self.sessions.get(id).await? else {
                continue;
            };
            let result = if session.status() == SessionStatus::Completed {
                Some(self.result_of(id).await?)
            } else {
                None
            };
            views.insert(
                id,
                SessionView {
                    status: session.status(),
                    error: session.last_error().map(str::to_owned),
                    result,
                },
            );
        }
        let now = Utc::now();
        let Advance {
            updated,
            start,
            stop_sessions,
            root_status,
        } = plan(root, &tasks, &views, now)?;
        let mut report = AdvanceReport {
            updated: updated.len(),
            root_status: Some(root_status),
            ..AdvanceReport::default()
        };
        let mut tree: BTreeMap<TaskId, Task> = tasks.into_iter().map(|t| (t.id(), t)).collect();
        if !updated.is_empty() {
            let mut changes = ChangeSet::new();
            for task in &updated {
                changes.update_task(task);
            }
            match self.unit_of_work.commit(changes).await {
                Ok(committed) => {
                    for mut task in updated {
                        if let Some(version) = committed.version_of(EntityKey::Task(task.id())) {
                            task.set_version(version);
                        }
                        if task.status() != tree[&task.id()].status() {
                            tracing::info!(
                                task = %task.id(),
                                from = %tree[&task.id()].status(),
                                to = %task.status(),
                                note = task.execution().note.as_deref().unwrap_or(""),
                                "task transition"
                            );
                        }
                        tree.insert(task.id(), task);
                    }
                }
                Err(RepositoryError::Conflict { .. }) => {
                    report.lost_race = true;
                    return Ok(report);
                }
                Err(other) => return Err(other.into()),
            }
        }
        for session in stop_sessions {
            match self
                .lifecycle
                .cancel(session, Some("the task tree is stopping".into()))
                .await
            {
                Ok(_) => report.stopped += 1,
                // Finished meanwhile: the next tick records it.
                Err(LifecycleError::NotAllowed(_) | LifecycleError::NotFound(_)) => {}
                Err(other) => return Err(other.into()),
            }
        }
        let Some(run) = tree[&root].execution().run.clone() else {
            return Ok(report);
        };
        for leaf in start {
            match self.start_leaf(leaf, &tree, &run).await? {
                LeafStart::Started(session) => report.started.push(session),
                LeafStart::NoAgent => report.unroutable += 1,
                LeafStart::LostRace => {
                    report.lost_race = true;
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Advances every started tree that is not over once (all replicas do this on their tick):
    /// running roots, and ready ones (a lone root task waiting to start, e.g. for an agent).
    pub async fn advance_all(&self) -> Result<usize, ExecutionError> {
        let mut advanced = 0;
        for status in [TaskStatus::Running, TaskStatus::Ready] {
            let filter = TaskFilter {
                status: Some(status),
                roots_only: true,
                ..TaskFilter::default()
            };
            let mut page = PageRequest::first(100)?;
            loop {
                let roots = self.tasks.list(&filter, &page).await?;
                for root in roots.items.iter().filter(|r| r.execution().run.is_some()) {
                    match self.advance(root.id()).await {
                        Ok(_) => advanced += 1,
                        Err(error) => {
                            tracing::warn!(task = %root.id(), %error, "advancing a task tree failed")
                        }
                    }
                }
                match roots.next {
                    Some(cursor) => page = PageRequest::new(100, Some(cursor))?,
                    None => break,
                }
            }
        }
        Ok(advanced)
    }

    /// Advances running trees every `tick` until `shutdown` turns true.
    pub async fn run_scheduler(
        self: Arc<Self>,
        tick: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        tracing::info!(tick_ms = tick.as_millis() as u64, "task scheduler running");
        loop {
            if let Err(error) = self.advance_all().await {
                tracing::warn!(%error, "task scheduler pass failed");
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }

    async fn start_leaf(
        &self,
        leaf: TaskId,
        tree: &BTreeMap<TaskId, Task>,
        run: &TreeRun,
    ) -> Result<LeafStart, ExecutionError> {
        let mut task = tree[&leaf].clone();
        if task.assignment().is_none() {
            match self.router.route(leaf).await {
                Ok(routed) => task = routed,
                Err(TaskRoutingError::NoCandidate(error)) => {
                    return self.wait_for_agent(task, &error).await;
                }
                Err(TaskRoutingError::Storage(RepositoryError::Conflict { .. })) => {
                    return Ok(LeafStart::LostRace)
                }
                Err(TaskRoutingError::Storage(e)) => return Err(e.into()),
                Err(TaskRoutingError::NotFound(id)) => return Err(ExecutionError::NotFound(id)),
                Err(TaskRoutingError::NotAllowed(e)) => return Err(e.into()),
            }
        }
        let agent = task.assignment().map(|a| a.agent.clone());
        let (session, mut changes) = self.lifecycle.plan_create(
            CreateSessionRequest {
                title: task.title().as_str().to_owned(),
                prompt: prompt_for(&task, tree),
                workspace: run.workspace.clone(),
                agent,
                priority: 0,
                max_attempts: None,
            },
            Some(leaf),
        )?;
        task.begin_attempt(session.id(), Utc::now())?;
        changes.update_task(&task);
        match self.unit_of_work.commit(changes).await {
            Ok(_) => {
                tracing::info!(
                    task = %leaf,
                    session_id = %session.id(),
                    agent = task.assignment().map_or("", |a| a.agent.as_str()),
                    attempt = task.execution().sessions.len(),
                    "task leaf started a session"
                );
                Ok(LeafStart::Started(session.id()))
            }
            Err(RepositoryError::Conflict { .. }) => Ok(LeafStart::LostRace),
            Err(other) => Err(other.into()),
        }
    }

    /// No agent can take the leaf: it stays where it is, with a note saying why.
    async fn wait_for_agent(
        &self,
        mut task: Task,
        error: &RoutingError,
    ) -> Result<LeafStart, ExecutionError> {
        let note = Some(format!("waiting for an agent: {error}"));
        if task.execution().note != note {
            task.set_note(note, Utc::now());
            let mut changes = ChangeSet::new();
            changes.update_task(&task);
            match self.unit_of_work.commit(changes).await {
                Ok(_) | Err(RepositoryError::Conflict { .. }) => {}
                Err(other) => return Err(other.into()),
            }
            tracing::warn!(task = %task.id(), %error, "task leaf waits for an agent");
        }
        Ok(LeafStart::NoAgent)
    }

    /// What a completed session left: its workspace summary and closing words, from its log.
    async fn result_of(&self, session: SessionId) -> Result<TaskResult, ExecutionError> {
        let events = self.sessions.events(session).await?;
        let mut result = TaskResult {
            session: Some(session),
            ..TaskResult::default()
        };
        for event in events {
            match SessionLogEvent::parse(&event.event_type, &event.payload) {
                Some(SessionLogEvent::Workspace(record)) => {
                    result.files = record.paths();
                    result.branch = Some(record.branch);
                    result.commit = record.snapshot;
                }
                Some(SessionLogEvent::Result(said)) => result.summary = said.summary,
                None if [WorkspaceRecord::EVENT_TYPE, "session.result"]
                    .contains(&event.event_type.as_str()) =>
                {
                    tracing::warn!(%session, kind = %event.event_type, "unreadable event skipped")
                }
                _ => {}
            }
        }
        Ok(result)
    }

    async fn get(&self, id: TaskId) -> Result<Task, ExecutionError> {
        self.tasks
            .get(id)
            .await?
            .ok_or(ExecutionError::NotFound(id))
    }
}

enum LeafStart {
    Started(SessionId),
    NoAgent,
    LostRace,
}

/// The prompt of a leaf's session: the task, where it sits in the tree, and what the tasks it
/// depends on left (their branches and commits are in the same repository, so the agent can look
/// at them with git).
pub fn prompt_for(task: &Task, tree: &BTreeMap<TaskId, Task>) -> String {
    let mut prompt = task.title().as_str().to_owned();
    if !task.description().trim().is_empty() {
        prompt.push_str("\n\n");
        prompt.push_str(task.description().trim());
    }
    let mut chain = Vec::new();
    let mut parent = task.parent().and_then(|p| tree.get(&p));
    while let Some(p) = parent {
        chain.push(p.title().as_str());
        parent = p.parent().and_then(|pp| tree.get(&pp));
    }
    if !chain.is_empty() {
        chain.reverse();
        prompt.push_str(&format!("\n\nThis is one step of: {}.", chain.join(" > ")));
    }
    if !task.required_capabilities().is_empty() {
        let caps: Vec<&str> = task
            .required_capabilities()
            .iter()
            .map(|c| c.as_str())
            .collect();
        prompt.push_str(&format!("\nSkills it needs: {}.", caps.join(", ")));
    }
    let dependencies = effective_dependencies(tree, task.id());
    let done: Vec<&Task> = dependencies
        .iter()
        .filter_map(|d| tree.get(d))
        .filter(|d| d.execution().result.is_some())
        .collect();
    if !done.is_empty() {
        prompt.push_str(
            "\n\nWork already done by the tasks this one depends on. Each is committed on its own \
             branch of this repository; read it with `git show <commit>` and merge what you need.",
        );
        for dependency in done {
            let result = dependency.execution().result.as_ref().expect("filtered");
            prompt.push_str(&format!("\n\n- {}", dependency.title()));
            if let Some(session) = result.session {
                prompt.push_str(&format!("\n  session: {session}"));
            }
            match (&result.branch, &result.commit) {
                (Some(branch), Some(commit)) => {
                    prompt.push_str(&format!("\n  branch: {branch}\n  commit: {commit}"))
                }
                (Some(branch), None) => {
                    prompt.push_str(&format!("\n  branch: {branch} (no changes committed)"))
                }
                _ => {}
            }
            if !result.files.is_empty() {
                prompt.push_str(&format!("\n  files changed: {}", result.files.join(", ")));
            }
            if !result.summary.trim().is_empty() {
                let summary = result.summary.trim().replace('\n', "\n    ");
                prompt.push_str(&format!("\n  summary: {summary}"));
            }
        }
    }
    prompt
}
