//! The dashboard's commands on sessions, tasks and agents: a form read by [`super::forms`], handed
//! to the application service, its error mapped. Nothing else happens here.

use async_trait::async_trait;

use app::api::{AgentForm, NewTaskForm};
use app::ports::{AgentCommands, CommandError, SessionCommands, TaskCommands};
use domain::{Agent, SessionId, TaskId};
use oio_application::{
    CancelOutcome, DecompositionError, DecompositionOptions, SessionLifecycle, TaskServices,
};
use std::sync::Arc;

use super::errors::{from_agents, from_execution, from_lifecycle, invalid_field, storage};
use super::forms;

pub(super) struct Commands {
    pub lifecycle: Arc<SessionLifecycle>,
    pub task_services: TaskServices,
}

#[async_trait]
impl SessionCommands for Commands {
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
impl TaskCommands for Commands {
    async fn create_task(&self, form: NewTaskForm) -> Result<TaskId, CommandError> {
        let task = forms::new_task(&form)?;
        let decomposition = self
            .task_services
            .decomposition
            .decompose_and_store(&task.requirement, &DecompositionOptions::default())
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
        if let Some(start) = task.start {
            self.task_services
                .executor
                .start(root, start)
                .await
                .map_err(from_execution)?;
        }
        Ok(root)
    }
}

#[async_trait]
impl AgentCommands for Commands {
    async fn register_agent(&self, form: AgentForm) -> Result<Agent, CommandError> {
        let agent = forms::register_agent(&form)?;
        self.task_services
            .agents
            .register(agent)
            .await
            .map_err(from_agents)
    }

    async fn update_agent(&self, form: AgentForm) -> Result<Agent, CommandError> {
        let changes = forms::update_agent(&form)?;
        self.task_services
            .agents
            .update(&form.name, changes)
            .await
            .map_err(from_agents)
    }
}
