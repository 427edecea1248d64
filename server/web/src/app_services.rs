//! The dashboard's driving ports ([`app::ports`]) implemented with the application services, the
//! store's repositories, the OpenCode fleet and the dispatch queue. Wired in `startup`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use app::api::{
    AgentForm, AgentRow, FleetServer, FleetStatus, GuardrailsView, HourBucket, InboxView,
    NewTaskForm, QueueFigures, SessionDetail, SessionStats, StatusBoard, StatusCount,
    TreeBudgetView,
};
use app::ports::{
    AgentCommands, AgentQueries, AppServices, CommandError, FleetQueries, GuardrailQueries,
    InboxPort, QueryError, SessionCommands, SessionInsights, SessionQueries, TaskCommands,
    TaskQueries,
};
use async_trait::async_trait;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, DurationRound, Utc};
use domain::{
    Agent, FailurePolicy, InboxAnswer, InboxError, InboxItem, InboxItemId, InboxStatus, Page,
    PageRequest, Session, SessionFilter, SessionId, SessionStatus, Task, TaskFilter, TaskId,
    TaskStatus, ValidationError,
};

use oio_application::ports::AgentServers;
use oio_application::ports::{
    DispatchQueue, InboxFilter, Outbox, RepositoryError, SessionRepository, TaskRepository,
};
use oio_application::TaskServices;
use oio_application::{
    AgentServiceError, CancelOutcome, DecompositionError, DecompositionOptions, ExecutionError,
    GuardrailConfig, Guardrails, InboxService, InboxServiceError, LifecycleError, RegisterAgent,
    SessionLifecycle, StartTaskRequest, UpdateAgent,
};

/// Failures listed on the overview.
const RECENT_FAILURES: usize = 10;
/// Counting a status stops at this many sessions (shown as "500+").
const COUNT_CAP: u32 = domain::query::MAX_PAGE_SIZE;
/// Most sessions per status scanned for the 24-hour chart.
const SCAN_CAP: usize = 2_000;
/// Most open inbox items shown.
const INBOX_OPEN_LIMIT: u32 = 500;
/// Items read to find the latest resolved ones.
const INBOX_ALL_LIMIT: u32 = 200;
/// Resolved inbox items shown.
const INBOX_RESOLVED_SHOWN: usize = 25;

/// Everything the dashboard reads and commands, behind the app's driving ports.
pub struct DashboardServices {
    sessions: Arc<dyn SessionRepository>,
    outbox: Arc<dyn Outbox>,
    tasks: Arc<dyn TaskRepository>,
    queue: Arc<dyn DispatchQueue>,
    lifecycle: Arc<SessionLifecycle>,
    task_services: TaskServices,
    fleet: Arc<dyn AgentServers>,
    /// `None`: the inbox is not wired (its page says so).
    inbox: Option<Arc<InboxService>>,
    guardrails: Guardrails,
}

impl DashboardServices {
    pub fn new(
        sessions: Arc<dyn SessionRepository>,
        outbox: Arc<dyn Outbox>,
        tasks: Arc<dyn TaskRepository>,
        queue: Arc<dyn DispatchQueue>,
        lifecycle: Arc<SessionLifecycle>,
        task_services: TaskServices,
        fleet: Arc<dyn AgentServers>,
    ) -> Self {
        let guardrails =
            Guardrails::new(GuardrailConfig::default(), sessions.clone(), tasks.clone());
        Self {
            sessions,
            outbox,
            tasks,
            queue,
            lifecycle,
            task_services,
            fleet,
            inbox: None,
            guardrails,
        }
    }

    /// Answers the inbox page with `inbox`.
    pub fn with_inbox(mut self, inbox: Arc<InboxService>) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Shows `config` as the guardrails in force (the default ones otherwise).
    pub fn with_guardrails(mut self, config: GuardrailConfig) -> Self {
        self.guardrails = Guardrails::new(config, self.sessions.clone(), self.tasks.clone());
        self
    }

    fn inbox_service(&self) -> Result<&Arc<InboxService>, String> {
        self.inbox
            .as_ref()
            .ok_or_else(|| "the inbox is not enabled on this replica".to_owned())
    }

    /// The [`AppServices`] the Leptos routes get: all of them this.
    pub fn into_app_services(self) -> AppServices {
        let this = Arc::new(self);
        AppServices {
            sessions: this.clone(),
            insights: this.clone(),
            session_commands: this.clone(),
            tasks: this.clone(),
            task_commands: this.clone(),
            agents: this.clone(),
            agent_commands: this.clone(),
            fleet: this.clone(),
            inbox: this.clone(),
            guardrails: this,
        }
    }

    /// How many live sessions are in `status` (capped at [`COUNT_CAP`]; `true` when capped).
    async fn count(&self, status: SessionStatus) -> Result<(u64, bool), QueryError> {
        let page = self
            .sessions
            .list(
                &SessionFilter {
                    status: Some(status),
                    ..SessionFilter::default()
                },
                &PageRequest::first(COUNT_CAP).map_err(invalid_query)?,
            )
            .await
            .map_err(unavailable)?;
        Ok((page.items.len() as u64, page.next.is_some()))
    }

    /// Sessions in `status` created since `from`, newest first, at most [`SCAN_CAP`].
    async fn scan(
        &self,
        status: SessionStatus,
        from: DateTime<Utc>,
    ) -> Result<Vec<Session>, QueryError> {
        let filter = SessionFilter {
            status: Some(status),
            created_from: Some(from),
            ..SessionFilter::default()
        };
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = PageRequest::new(COUNT_CAP, after).map_err(invalid_query)?;
            let page = self
                .sessions
                .list(&filter, &page)
                .await
                .map_err(unavailable)?;
            out.extend(page.items);
            match page.next {
                Some(next) if out.len() < SCAN_CAP => after = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// Finished sessions (any terminal status) created in the last week, for time windows.
    async fn finished_recently(&self, now: DateTime<Utc>) -> Result<Vec<Session>, QueryError> {
        let from = now - Duration::days(7);
        let mut out = Vec::new();
        for status in [
            SessionStatus::Completed,
            SessionStatus::Failed,
            SessionStatus::TimedOut,
            SessionStatus::Cancelled,
        ] {
            out.extend(self.scan(status, from).await?);
        }
        Ok(out)
    }
}

/// `/status`: the wall screen, rendered whole here so that it carries no script at all.
pub fn status_routes<S: Clone + Send + Sync + 'static>(services: AppServices) -> Router<S> {
    Router::new()
        .route(app::pages::STATUS_PATH, get(status_page))
        .with_state(services)
}

async fn status_page(State(services): State<AppServices>) -> Html<String> {
    let board = services.fleet.status_board().await.map_err(|e| {
        tracing::warn!(error = %e, "status wall: figures unavailable");
        e.to_string()
    });
    Html(app::pages::render_status_document(board))
}

fn unavailable(error: RepositoryError) -> QueryError {
    QueryError::Unavailable(error.to_string())
}

fn invalid_query(error: ValidationError) -> QueryError {
    QueryError::Invalid {
        field: error.field,
        message: error.message,
    }
}

fn invalid(error: ValidationError) -> CommandError {
    CommandError::Invalid {
        field: error.field.to_owned(),
        message: error.message,
    }
}

fn invalid_field(field: &str, message: impl Into<String>) -> CommandError {
    CommandError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn storage(error: RepositoryError) -> CommandError {
    CommandError::Unavailable(error.to_string())
}

fn from_lifecycle(error: LifecycleError) -> CommandError {
    match error {
        LifecycleError::Invalid(e) => invalid(e),
        LifecycleError::NotFound(id) => CommandError::NotFound(format!("session {id}")),
        LifecycleError::NotAllowed(message) => CommandError::NotAllowed(message),
        LifecycleError::Storage(e) => storage(e),
    }
}

fn from_execution(error: ExecutionError) -> CommandError {
    match error {
        ExecutionError::Invalid(e) => invalid(e),
        ExecutionError::NotFound(id) => CommandError::NotFound(format!("task {id}")),
        ExecutionError::NotAllowed(message) => CommandError::NotAllowed(message),
        ExecutionError::Storage(e) => storage(e),
    }
}

fn from_agents(error: AgentServiceError) -> CommandError {
    match error {
        AgentServiceError::Invalid(e) => invalid(e),
        AgentServiceError::NotFound(name) => CommandError::NotFound(format!("agent {name}")),
        conflict @ AgentServiceError::Conflict { .. } => {
            CommandError::NotAllowed(conflict.to_string())
        }
        AgentServiceError::Storage(e) => storage(e),
    }
}

fn from_inbox(error: InboxServiceError) -> CommandError {
    match error {
        InboxServiceError::NotFound(id) => CommandError::NotFound(format!("inbox item {id}")),
        InboxServiceError::Refused(refused @ InboxError::NotOpen { .. }) => {
            CommandError::NotAllowed(refused.to_string())
        }
        InboxServiceError::Refused(refused) => invalid_field("answer", refused.to_string()),
        unknown @ InboxServiceError::UnknownServer(_) => {
            CommandError::NotAllowed(unknown.to_string())
        }
        relay @ InboxServiceError::Relay { .. } => {
            // The source says why the server refused; the server's name carries no secret.
            let mut message = relay.to_string();
            let mut source = std::error::Error::source(&relay);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !message.contains(&cause_text) {
                    message.push_str(": ");
                    message.push_str(&cause_text);
                }
                source = cause.source();
            }
            CommandError::Upstream(message)
        }
        InboxServiceError::Storage(e) => storage(e),
    }
}

/// The open items (escalated first, then oldest first) and the latest closed ones of `all`.
fn inbox_view(mut open: Vec<InboxItem>, all: Vec<InboxItem>, now: DateTime<Utc>) -> InboxView {
    open.sort_by_key(|item| (item.status != InboxStatus::Escalated, item.created_at));
    let mut resolved: Vec<InboxItem> = all.into_iter().filter(|item| !item.is_open()).collect();
    resolved.sort_by_key(|item| std::cmp::Reverse(item.resolved_at.unwrap_or(item.created_at)));
    resolved.truncate(INBOX_RESOLVED_SHOWN);
    InboxView {
        open,
        resolved,
        at: now,
    }
}

/// Sessions that finished in each of the 24 hours before `now` (the current hour last).
fn hourly(finished: &[Session], now: DateTime<Utc>) -> Vec<HourBucket> {
    let this_hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
    let first = this_hour - Duration::hours(23);
    let mut hours: Vec<HourBucket> = (0..24)
        .map(|i| HourBucket {
            start: first + Duration::hours(i),
            finished: 0,
            failed: 0,
            cost_micro_usd: 0,
        })
        .collect();
    for session in finished {
        let Some(at) = session.finished_at() else {
            continue;
        };
        // A finish a little ahead of this replica's clock counts in the current hour.
        if at < first {
            continue;
        }
        let index = ((at - first).num_hours()).clamp(0, 23) as usize;
        let bucket = &mut hours[index];
        bucket.finished += 1;
        if session.status().is_failure() {
            bucket.failed += 1;
        }
        bucket.cost_micro_usd += session.metrics().cost_micro_usd;
    }
    hours
}

/// `fail_fast`, `continue` or `retry:N`; empty means the default (fail fast).
fn parse_policy(raw: &str) -> Result<Option<FailurePolicy>, CommandError> {
    match raw.trim() {
        "" => Ok(None),
        "fail_fast" => Ok(Some(FailurePolicy::FailFast)),
        "continue" => Ok(Some(FailurePolicy::Continue)),
        other => {
            let retries = other
                .strip_prefix("retry:")
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| {
                    invalid_field(
                        "policy",
                        format!("unknown policy {other:?}; use fail_fast, continue or retry:N"),
                    )
                })?;
            FailurePolicy::Retry { retries }
                .validate()
                .map(Some)
                .map_err(|e| invalid_field("policy", e.to_string()))
        }
    }
}

fn parse_count(field: &str, raw: &str) -> Result<Option<u32>, CommandError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<u32>()
        .map(Some)
        .map_err(|_| invalid_field(field, format!("{raw:?} is not a whole number")))
}

#[async_trait]
impl SessionInsights for DashboardServices {
    async fn session_detail(&self, id: SessionId) -> Result<Option<SessionDetail>, QueryError> {
        // Read first: whatever commits after it reaches the page through the stream.
        let stream_after = self.outbox.last_id().await.map_err(unavailable)?;
        let Some(session) = self.sessions.get(id).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let events = self.sessions.events(id).await.map_err(unavailable)?;
        let mut detail = SessionDetail::assemble(
            session,
            events
                .into_iter()
                .map(|e| (e.seq, e.event_type, e.payload, e.occurred_at)),
        );
        detail.stream_after = Some(stream_after);
        Ok(Some(detail))
    }

    async fn session_stats(&self) -> Result<SessionStats, QueryError> {
        let now = Utc::now();
        let mut counts = Vec::with_capacity(SessionStatus::ALL.len());
        for status in SessionStatus::ALL {
            let (count, more) = self.count(status).await?;
            counts.push(StatusCount {
                status,
                count,
                more,
            });
        }
        let finished = self.finished_recently(now).await?;
        let hours = hourly(&finished, now);

        let mut failures = Vec::new();
        for status in [SessionStatus::Failed, SessionStatus::TimedOut] {
            let page = self
                .sessions
                .list(
                    &SessionFilter {
                        status: Some(status),
                        ..SessionFilter::default()
                    },
                    &PageRequest::first(RECENT_FAILURES as u32).map_err(invalid_query)?,
                )
                .await
                .map_err(unavailable)?;
            failures.extend(page.items);
        }
        failures.sort_by_key(|s| std::cmp::Reverse(s.finished_at().unwrap_or(s.updated_at())));
        failures.truncate(RECENT_FAILURES);
        Ok(SessionStats {
            counts,
            hours,
            recent_failures: failures,
        })
    }
}

#[async_trait]
impl SessionCommands for DashboardServices {
    async fn cancel_session(&self, id: SessionId) -> Result<String, CommandError> {
        match self
            .lifecycle
            .cancel(id, Some("cancelled from the dashboard".into()))
            .await
            .map_err(from_lifecycle)?
        {
            CancelOutcome::Cancelled => Ok("cancelled".into()),
            CancelOutcome::Requested => {
                Ok("cancellation requested from the running replica".into())
            }
        }
    }

    async fn retry_session(&self, id: SessionId) -> Result<(), CommandError> {
        self.lifecycle
            .retry(id, 0)
            .await
            .map(|_| ())
            .map_err(from_lifecycle)
    }
}

#[async_trait]
impl TaskQueries for DashboardServices {
    async fn list_root_tasks(&self, page: PageRequest) -> Result<Page<Task>, QueryError> {
        self.tasks
            .list(
                &TaskFilter {
                    roots_only: true,
                    ..TaskFilter::default()
                },
                &page,
            )
            .await
            .map_err(unavailable)
    }

    async fn task_tree(&self, root: TaskId) -> Result<Option<Vec<Task>>, QueryError> {
        match self.task_services.executor.tree(root).await {
            Ok(tree) => Ok(Some(tree)),
            Err(ExecutionError::NotFound(_)) => Ok(None),
            Err(other) => Err(QueryError::Unavailable(other.to_string())),
        }
    }
}

#[async_trait]
impl TaskCommands for DashboardServices {
    async fn create_task(&self, form: NewTaskForm) -> Result<TaskId, CommandError> {
        if form.requirement.trim().is_empty() {
            return Err(invalid_field("requirement", "must not be empty"));
        }
        let max_parallel = parse_count("max_parallel", &form.max_parallel)?;
        if let Some(n) = max_parallel {
            let limit = domain::task::execution::MAX_PARALLEL;
            if !(1..=limit).contains(&n) {
                return Err(invalid_field(
                    "max_parallel",
                    format!("must be between 1 and {limit}"),
                ));
            }
        }
        let policy = parse_policy(&form.policy)?;
        let workspace = form.workspace.trim().to_owned();
        // Checked before anything is stored, so a refused start leaves no orphan tree behind.
        if form.start {
            if workspace.is_empty() {
                return Err(invalid_field("workspace", "required to start the task"));
            }
            if !Path::new(&workspace).join(".git").exists() {
                return Err(invalid_field(
                    "workspace",
                    format!("{workspace} is not the root of a git repository"),
                ));
            }
        }
        let decomposition = self
            .task_services
            .decomposition
            .decompose_and_store(form.requirement.trim(), &DecompositionOptions::default())
            .await
            .map_err(|e| match e {
                DecompositionError::Invalid(e) => {
                    // The requirement is the only thing the caller gave the decomposition.
                    invalid_field("requirement", format!("{}: {}", e.field, e.message))
                }
                DecompositionError::Storage(e) => storage(e),
                other => CommandError::NotAllowed(other.to_string()),
            })?;
        let root = decomposition.root;
        if form.start {
            self.task_services
                .executor
                .start(
                    root,
                    StartTaskRequest {
                        workspace,
                        max_parallel,
                        policy,
                        ..StartTaskRequest::default()
                    },
                )
                .await
                .map_err(from_execution)?;
        }
        Ok(root)
    }
}

#[async_trait]
impl AgentQueries for DashboardServices {
    async fn list_agents(&self) -> Result<Vec<AgentRow>, QueryError> {
        let agents = self
            .task_services
            .agents
            .list()
            .await
            .map_err(|e| QueryError::Unavailable(e.to_string()))?;
        let load: BTreeMap<String, u64> =
            self.queue.leased_by_agent().await.map_err(unavailable)?;
        Ok(agents
            .into_iter()
            .map(|agent| AgentRow {
                load: load.get(agent.name().as_str()).copied().unwrap_or(0),
                agent,
            })
            .collect())
    }

    async fn get_agent(&self, name: &str) -> Result<Option<Agent>, QueryError> {
        match self.task_services.agents.get(name).await {
            Ok(agent) => Ok(Some(agent)),
            Err(AgentServiceError::NotFound(_) | AgentServiceError::Invalid(_)) => Ok(None),
            Err(other) => Err(QueryError::Unavailable(other.to_string())),
        }
    }
}

#[async_trait]
impl AgentCommands for DashboardServices {
    async fn register_agent(&self, form: AgentForm) -> Result<Agent, CommandError> {
        let max_concurrency = parse_count("max_concurrency", &form.max_concurrency)?
            .ok_or_else(|| invalid_field("max_concurrency", "required"))?;
        self.task_services
            .agents
            .register(RegisterAgent {
                name: form.name.clone(),
                capabilities: form.capability_list(),
                model: form.model.trim().to_owned(),
                max_concurrency,
            })
            .await
            .map_err(from_agents)
    }

    async fn update_agent(&self, form: AgentForm) -> Result<Agent, CommandError> {
        let max_concurrency = parse_count("max_concurrency", &form.max_concurrency)?;
        let model = Some(form.model.trim().to_owned()).filter(|m| !m.is_empty());
        self.task_services
            .agents
            .update(
                &form.name,
                UpdateAgent {
                    capabilities: Some(form.capability_list()),
                    model,
                    max_concurrency,
                    expected_version: None,
                },
            )
            .await
            .map_err(from_agents)
    }
}

#[async_trait]
impl FleetQueries for DashboardServices {
    async fn fleet_status(&self) -> FleetStatus {
        let servers = self
            .fleet
            .report()
            .into_iter()
            .map(|r| FleetServer {
                name: r.server,
                healthy: r.healthy,
                breaker: r.breaker.as_str().to_owned(),
                in_flight: r.in_flight,
                capacity: r.capacity,
            })
            .collect();
        let (queue, queue_error) = match self.queue.depth().await {
            Ok(depth) => (
                Some(QueueFigures {
                    waiting: depth.waiting,
                    leased: depth.leased,
                    expired: depth.expired,
                }),
                None,
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        FleetStatus {
            servers,
            queue,
            queue_error,
        }
    }

    async fn status_board(&self) -> Result<StatusBoard, QueryError> {
        let now = Utc::now();
        let (running, _) = self.count(SessionStatus::Running).await?;
        let (queued, _) = self.count(SessionStatus::Queued).await?;
        let hour_ago = now - Duration::hours(1);
        let mut failed_last_hour = 0;
        for status in [SessionStatus::Failed, SessionStatus::TimedOut] {
            failed_last_hour += self
                .scan(status, now - Duration::days(7))
                .await?
                .iter()
                .filter(|s| s.finished_at().is_some_and(|at| at >= hour_ago))
                .count() as u64;
        }
        let running_trees = self
            .tasks
            .list(
                &TaskFilter {
                    status: Some(TaskStatus::Running),
                    roots_only: true,
                    ..TaskFilter::default()
                },
                &PageRequest::first(50).map_err(invalid_query)?,
            )
            .await
            .map_err(unavailable)?
            .items;
        Ok(StatusBoard {
            running,
            queued,
            failed_last_hour,
            fleet: self.fleet_status().await,
            running_trees,
            at: now,
        })
    }
}

#[async_trait]
impl InboxPort for DashboardServices {
    async fn inbox(&self) -> Result<InboxView, QueryError> {
        let inbox = self.inbox_service().map_err(QueryError::Unavailable)?;
        let query = |e: InboxServiceError| QueryError::Unavailable(e.to_string());
        let open = inbox
            .list(InboxFilter::Open, INBOX_OPEN_LIMIT)
            .await
            .map_err(query)?;
        let all = inbox
            .list(InboxFilter::All, INBOX_ALL_LIMIT)
            .await
            .map_err(query)?;
        Ok(inbox_view(open, all, Utc::now()))
    }

    async fn answer(
        &self,
        id: InboxItemId,
        answer: InboxAnswer,
        by: &str,
    ) -> Result<InboxItem, CommandError> {
        let inbox = self.inbox_service().map_err(CommandError::NotAllowed)?;
        inbox.answer(id, answer, by).await.map_err(from_inbox)
    }
}

#[async_trait]
impl GuardrailQueries for DashboardServices {
    async fn guardrails(&self) -> GuardrailsView {
        let config = self.guardrails.config();
        GuardrailsView {
            session: config.session,
            task_tree: config.task_tree,
            agent: config.agent,
            agent_window_hours: config.agent_window.as_secs() / 3600,
            runaway: config.runaway,
        }
    }

    async fn tree_budget(&self, root: TaskId) -> Result<Option<TreeBudgetView>, QueryError> {
        let Some(task) = self.tasks.get(root).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let Some(budget) = task.execution().run.as_ref().and_then(|run| run.budget) else {
            return Ok(None);
        };
        // No session is excluded: every recorded attempt counts.
        let nobody = SessionId::from_uuid(uuid::Uuid::nil());
        let spent = self
            .guardrails
            .tree_spent(task.id(), nobody)
            .await
            .map_err(unavailable)?;
        Ok(Some(TreeBudgetView {
            cap: budget.cap,
            reserved: budget.reserved,
            spent,
        }))
    }
}

#[async_trait]
impl SessionQueries for DashboardServices {
    #[tracing::instrument(skip(self), fields(status = ?filter.status, limit = page.limit()))]
    async fn list_sessions(
        &self,
        filter: SessionFilter,
        page: PageRequest,
    ) -> Result<Page<Session>, QueryError> {
        self.sessions
            .list(&filter, &page)
            .await
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_name_the_field_when_wrong() {
        assert_eq!(parse_policy("").unwrap(), None);
        assert_eq!(
            parse_policy("continue").unwrap(),
            Some(FailurePolicy::Continue)
        );
        assert_eq!(
            parse_policy("retry:2").unwrap(),
            Some(FailurePolicy::Retry { retries: 2 })
        );
        for bad in ["sometimes", "retry:0", "retry:x"] {
            match parse_policy(bad) {
                Err(CommandError::Invalid { field, .. }) => assert_eq!(field, "policy"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn counts_must_be_numbers() {
        assert_eq!(parse_count("max_parallel", " ").unwrap(), None);
        assert_eq!(parse_count("max_parallel", "4").unwrap(), Some(4));
        assert!(matches!(
            parse_count("max_parallel", "four"),
            Err(CommandError::Invalid { field, .. }) if field == "max_parallel"
        ));
    }

    fn item(status: InboxStatus, created_secs: i64, resolved_secs: Option<i64>) -> InboxItem {
        let at = |secs| DateTime::from_timestamp(1_764_000_000 + secs, 0).unwrap();
        let mut item = InboxItem::new(
            InboxItemId::from_uuid(uuid::Uuid::new_v4()),
            domain::InboxRequest {
                server: "s".into(),
                remote_session: "ses_1".into(),
                directory: None,
                session: None,
                request_id: format!("per_{created_secs}"),
                kind: domain::InboxKind::Permission {
                    permission: "edit".into(),
                    patterns: vec![],
                    always: vec![],
                },
            },
            at(created_secs),
        );
        item.status = status;
        item.resolved_at = resolved_secs.map(at);
        item
    }

    #[test]
    fn the_inbox_lists_escalated_then_oldest_open_and_newest_resolved() {
        let open = vec![
            item(InboxStatus::Pending, 30, None),
            item(InboxStatus::Pending, 10, None),
            item(InboxStatus::Escalated, 20, None),
        ];
        let mut all = open.clone();
        all.push(item(InboxStatus::Answered, 1, Some(40)));
        all.push(item(InboxStatus::Expired, 2, Some(50)));
        let view = inbox_view(open, all, Utc::now());
        let created: Vec<i64> = view
            .open
            .iter()
            .map(|i| i.created_at.timestamp() - 1_764_000_000)
            .collect();
        assert_eq!(created, vec![20, 10, 30]);
        let resolved: Vec<InboxStatus> = view.resolved.iter().map(|i| i.status).collect();
        assert_eq!(resolved, vec![InboxStatus::Expired, InboxStatus::Answered]);
    }

    #[test]
    fn the_chart_has_24_hours_ending_with_the_current_one() {
        let now = Utc::now();
        let hours = hourly(&[], now);
        assert_eq!(hours.len(), 24);
        assert!(hours[23].start <= now && now - hours[23].start < Duration::hours(1));
        assert!(hours.iter().all(|h| h.finished == 0));
    }
}
