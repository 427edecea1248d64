//! The dashboard's read model: the overview (exact counts per status, the 24-hour chart, recent
//! failures), the fleet, the status wall, and the lists and details the pages show. Only reads:
//! the stores, the fleet and the queue.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, Utc};

use app::api::{
    AgentRow, FleetServer, FleetStatus, GuardrailsView, HourBucket, QueueFigures, SessionDetail,
    SessionStats, StatusBoard, StatusCount, TreeBudgetView,
};
use app::ports::{
    AgentQueries, FleetQueries, GuardrailQueries, QueryError, SessionInsights, SessionQueries,
    TaskQueries,
};
use domain::{
    Agent, Page, PageRequest, Session, SessionFilter, SessionId, SessionStatus, Task, TaskFilter,
    TaskId, TaskStatus,
};
use oio_application::ports::{
    AgentServers, DispatchQueue, Outbox, SessionRepository, TaskRepository,
};
use oio_application::{AgentServiceError, ExecutionError, Guardrails, TaskServices};

use super::errors::{invalid_query, unavailable};
use crate::fleet::fleet_view;

/// Failures listed on the overview.
const RECENT_FAILURES: usize = 10;
/// Sessions per page when scanning for the time windows.
const SCAN_PAGE: u32 = domain::query::MAX_PAGE_SIZE;
/// Most sessions per status scanned for the time windows (the chart, the last hour's failures).
const SCAN_CAP: usize = 2_000;
/// How far back (by creation) finished sessions are looked for: a session created earlier that
/// finishes within the windows is missed.
const SCAN_WINDOW_DAYS: i64 = 7;
/// Running task trees shown on the status wall.
const RUNNING_TREES_SHOWN: u32 = 50;

pub(super) struct ReadModel {
    pub sessions: Arc<dyn SessionRepository>,
    pub outbox: Arc<dyn Outbox>,
    pub tasks: Arc<dyn TaskRepository>,
    pub queue: Arc<dyn DispatchQueue>,
    pub fleet: Arc<dyn AgentServers>,
    pub task_services: TaskServices,
    pub guardrails: Guardrails,
}

impl ReadModel {
    /// Live sessions in every status, exactly (one `GROUP BY` in the SQL stores).
    async fn counts(&self) -> Result<BTreeMap<SessionStatus, u64>, QueryError> {
        self.sessions.count_by_status().await.map_err(unavailable)
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
            let page = PageRequest::new(SCAN_PAGE, after).map_err(invalid_query)?;
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

    /// Sessions in any of `statuses` created within the scan window before `now`.
    async fn finished_recently(
        &self,
        statuses: &[SessionStatus],
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, QueryError> {
        let from = now - Duration::days(SCAN_WINDOW_DAYS);
        let mut out = Vec::new();
        for &status in statuses {
            out.extend(self.scan(status, from).await?);
        }
        Ok(out)
    }

    /// The latest failed or timed-out sessions, newest first.
    async fn recent_failures(&self) -> Result<Vec<Session>, QueryError> {
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
        Ok(failures)
    }
}

/// One count per status, in [`SessionStatus::ALL`]'s order; statuses without sessions count 0.
fn status_counts(counts: &BTreeMap<SessionStatus, u64>) -> Vec<StatusCount> {
    SessionStatus::ALL
        .into_iter()
        .map(|status| StatusCount {
            status,
            count: counts.get(&status).copied().unwrap_or(0),
        })
        .collect()
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

#[async_trait]
impl SessionQueries for ReadModel {
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

#[async_trait]
impl SessionInsights for ReadModel {
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
        let counts = status_counts(&self.counts().await?);
        let finished = self
            .finished_recently(
                &[
                    SessionStatus::Completed,
                    SessionStatus::Failed,
                    SessionStatus::TimedOut,
                    SessionStatus::Cancelled,
                ],
                now,
            )
            .await?;
        Ok(SessionStats {
            counts,
            hours: hourly(&finished, now),
            recent_failures: self.recent_failures().await?,
        })
    }
}

#[async_trait]
impl FleetQueries for ReadModel {
    async fn fleet_status(&self) -> FleetStatus {
        let view = fleet_view(self.fleet.as_ref(), Some(self.queue.as_ref())).await;
        let servers = view
            .servers
            .into_iter()
            .map(|r| FleetServer {
                name: r.server,
                healthy: r.healthy,
                breaker: r.breaker.as_str().to_owned(),
                in_flight: r.in_flight,
                capacity: r.capacity,
            })
            .collect();
        let (queue, queue_error) = match view.queue {
            Some(Ok(depth)) => (
                Some(QueueFigures {
                    waiting: depth.waiting,
                    leased: depth.leased,
                    expired: depth.expired,
                }),
                None,
            ),
            Some(Err(error)) => (None, Some(error)),
            None => (None, None),
        };
        FleetStatus {
            servers,
            queue,
            queue_error,
        }
    }

    async fn status_board(&self) -> Result<StatusBoard, QueryError> {
        let now = Utc::now();
        let counts = self.counts().await?;
        let count = |status| counts.get(&status).copied().unwrap_or(0);
        let hour_ago = now - Duration::hours(1);
        let failed_last_hour = self
            .finished_recently(&[SessionStatus::Failed, SessionStatus::TimedOut], now)
            .await?
            .iter()
            .filter(|s| s.finished_at().is_some_and(|at| at >= hour_ago))
            .count() as u64;
        let running_trees = self
            .tasks
            .list(
                &TaskFilter {
                    status: Some(TaskStatus::Running),
                    roots_only: true,
                    ..TaskFilter::default()
                },
                &PageRequest::first(RUNNING_TREES_SHOWN).map_err(invalid_query)?,
            )
            .await
            .map_err(unavailable)?
            .items;
        Ok(StatusBoard {
            running: count(SessionStatus::Running),
            queued: count(SessionStatus::Queued),
            failed_last_hour,
            fleet: self.fleet_status().await,
            running_trees,
            at: now,
        })
    }
}

#[async_trait]
impl TaskQueries for ReadModel {
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
impl AgentQueries for ReadModel {
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
impl GuardrailQueries for ReadModel {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_24_hours_ending_with_the_current_one() {
        let now = Utc::now();
        let hours = hourly(&[], now);
        assert_eq!(hours.len(), 24);
        assert!(hours[23].start <= now && now - hours[23].start < Duration::hours(1));
        assert!(hours.iter().all(|h| h.finished == 0));
    }

    #[test]
    fn every_status_is_counted_exactly_and_absent_ones_as_zero() {
        let counts = BTreeMap::from([(SessionStatus::Running, 1_234), (SessionStatus::Queued, 7)]);
        let shown = status_counts(&counts);
        assert_eq!(shown.len(), SessionStatus::ALL.len());
        let of = |status| shown.iter().find(|c| c.status == status).unwrap().count;
        assert_eq!(of(SessionStatus::Running), 1_234, "no cap at 500");
        assert_eq!(of(SessionStatus::Queued), 7);
        assert_eq!(of(SessionStatus::Failed), 0);
    }
}
