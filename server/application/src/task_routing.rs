//! Routes a task to the agent that fits it best (`domain::routing`): every registered agent is a
//! candidate, its load is what the dispatch queue says it runs now, its track record is the one
//! the engine keeps. The decision — winner, score and every candidate's parts — is stored with the
//! task. With no capable agent the task stays as it was and the error says who came closest.

use std::sync::Arc;

use chrono::Utc;
use domain::task_routing::{route, Candidate, RoutingError, RoutingWeights};
use domain::{Task, TaskError, TaskId};

use crate::ports::{
    AgentRepository, ChangeSet, DispatchQueue, EntityKey, RepositoryError, TaskRepository,
    UnitOfWork,
};

#[derive(Debug, thiserror::Error)]
pub enum TaskRoutingError {
    #[error("task {0} does not exist")]
    NotFound(TaskId),
    /// No agent can take it (none registered, or none with every required capability).
    #[error(transparent)]
    NoCandidate(#[from] RoutingError),
    /// The task cannot be (re-)routed in its state.
    #[error(transparent)]
    NotAllowed(#[from] TaskError),
    #[error(transparent)]
    Storage(#[from] RepositoryError),
}

pub struct TaskRouter {
    tasks: Arc<dyn TaskRepository>,
    agents: Arc<dyn AgentRepository>,
    queue: Arc<dyn DispatchQueue>,
    unit_of_work: Arc<dyn UnitOfWork>,
    weights: RoutingWeights,
}

impl TaskRouter {
    pub fn new(
        tasks: Arc<dyn TaskRepository>,
        agents: Arc<dyn AgentRepository>,
        queue: Arc<dyn DispatchQueue>,
        unit_of_work: Arc<dyn UnitOfWork>,
    ) -> Self {
        Self {
            tasks,
            agents,
            queue,
            unit_of_work,
            weights: RoutingWeights::default(),
        }
    }

    pub fn with_weights(mut self, weights: RoutingWeights) -> Self {
        self.weights = weights;
        self
    }

    /// Chooses the task's agent and stores the decision with it (one versioned update).
    #[tracing::instrument(skip(self), fields(agent))]
    pub async fn route(&self, id: TaskId) -> Result<Task, TaskRoutingError> {
        let mut task = self
            .tasks
            .get(id)
            .await?
            .ok_or(TaskRoutingError::NotFound(id))?;
        let agents = self.agents.list().await?;
        let load = self.queue.leased_by_agent().await?;
        let candidates: Vec<Candidate> = agents
            .iter()
            .map(|agent| Candidate {
                agent,
                running: load
                    .get(agent.name().as_str())
                    .map_or(0, |n| u32::try_from(*n).unwrap_or(u32::MAX)),
            })
            .collect();
        let decision = match route(task.required_capabilities(), &candidates, &self.weights) {
            Ok(decision) => decision,
            Err(error) => {
                tracing::warn!(%error, "task not routed; it stays pending");
                return Err(error.into());
            }
        };
        tracing::Span::current().record("agent", decision.chosen.as_str());
        task.assign(&decision, Utc::now())?;
        let mut changes = ChangeSet::new();
        changes.update_task(&task);
        let committed = self.unit_of_work.commit(changes).await?;
        if let Some(version) = committed.version_of(EntityKey::Task(id)) {
            task.set_version(version);
        }
        tracing::info!(score = decision.winner().total, "task routed");
        Ok(task)
    }
}
