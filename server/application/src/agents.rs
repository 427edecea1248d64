//! The agent registry: agents routing chooses from (an OpenCode agent name, the model it runs,
//! its capabilities and how many sessions it takes at once), created and changed through the Unit
//! of Work with optimistic locking. Track records are written by the engine when sessions end.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use domain::{
    Agent, AgentCapability, AgentError, AgentId, AgentName, ModelRef, NewAgent, ValidationError,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ports::{AgentRepository, ChangeSet, EntityKey, RepositoryError, UnitOfWork};

/// A new agent, as a caller gives it. Validated before anything is stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterAgent {
    /// OpenCode agent name (`build`, `plan`, or a custom one) — also the registry's key.
    pub name: String,
    pub capabilities: Vec<String>,
    /// `provider/model`.
    pub model: String,
    pub max_concurrency: u32,
}

/// Changes to an agent; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateAgent {
    pub capabilities: Option<Vec<String>>,
    pub model: Option<String>,
    pub max_concurrency: Option<u32>,
    /// The version the caller read; the update fails with a conflict if the agent changed since.
    pub expected_version: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentServiceError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("agent {0} does not exist")]
    NotFound(String),
    #[error("agent {name} was changed concurrently (expected version {expected}, found {actual})")]
    Conflict {
        name: String,
        expected: u64,
        actual: u64,
    },
    #[error(transparent)]
    Storage(RepositoryError),
}

impl From<AgentError> for AgentServiceError {
    fn from(error: AgentError) -> Self {
        match error {
            AgentError::Invalid { field, message } => {
                AgentServiceError::Invalid(ValidationError::new(field, message))
            }
        }
    }
}

fn capabilities(raw: &[String]) -> Result<BTreeSet<AgentCapability>, ValidationError> {
    raw.iter()
        .map(|name| {
            name.trim()
                .parse::<AgentCapability>()
                .map_err(|e| ValidationError::new("capabilities", e.to_string()))
        })
        .collect()
}

pub struct AgentService {
    agents: Arc<dyn AgentRepository>,
    unit_of_work: Arc<dyn UnitOfWork>,
}

impl AgentService {
    pub fn new(agents: Arc<dyn AgentRepository>, unit_of_work: Arc<dyn UnitOfWork>) -> Self {
        Self {
            agents,
            unit_of_work,
        }
    }

    /// Adds an agent. A taken name is refused (`Invalid` naming `name`).
    #[tracing::instrument(skip_all, fields(agent = %request.name))]
    pub async fn register(&self, request: RegisterAgent) -> Result<Agent, AgentServiceError> {
        let new = NewAgent {
            id: AgentId::from_uuid(Uuid::new_v4()),
            name: AgentName::new(request.name)?,
            capabilities: capabilities(&request.capabilities)?,
            model: request
                .model
                .parse::<ModelRef>()
                .map_err(|e: ValidationError| e.in_field("model"))?,
            max_concurrency: request.max_concurrency,
        };
        let agent = Agent::new(new, Utc::now())?;
        let mut changes = ChangeSet::new();
        changes.insert_agent(&agent);
        match self.unit_of_work.commit(changes).await {
            Ok(_) => Ok(agent.with_version(1)),
            Err(RepositoryError::Duplicate { .. }) => Err(ValidationError::new(
                "name",
                format!("an agent named {} already exists", agent.name()),
            )
            .into()),
            Err(other) => Err(AgentServiceError::Storage(other)),
        }
    }

    #[tracing::instrument(skip(self, update))]
    pub async fn update(
        &self,
        name: &str,
        update: UpdateAgent,
    ) -> Result<Agent, AgentServiceError> {
        let mut agent = self.get(name).await?;
        if let Some(expected) = update.expected_version {
            if expected != agent.version() {
                return Err(AgentServiceError::Conflict {
                    name: name.to_owned(),
                    expected,
                    actual: agent.version(),
                });
            }
        }
        let now = Utc::now();
        if let Some(raw) = &update.capabilities {
            agent.set_capabilities(capabilities(raw)?, now)?;
        }
        if let Some(model) = &update.model {
            let model = model
                .parse::<ModelRef>()
                .map_err(|e: ValidationError| e.in_field("model"))?;
            agent.set_model(model, now);
        }
        if let Some(max) = update.max_concurrency {
            agent.set_max_concurrency(max, now)?;
        }
        let mut changes = ChangeSet::new();
        changes.update_agent(&agent);
        match self.unit_of_work.commit(changes).await {
            Ok(committed) => {
                if let Some(version) = committed.version_of(EntityKey::Agent(agent.id())) {
                    agent.set_version(version);
                }
                Ok(agent)
            }
            Err(RepositoryError::Conflict {
                expected, actual, ..
            }) => Err(AgentServiceError::Conflict {
                name: name.to_owned(),
                expected,
                actual,
            }),
            Err(other) => Err(AgentServiceError::Storage(other)),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Agent, AgentServiceError> {
        let name = AgentName::new(name)?;
        self.agents
            .get_by_name(&name)
            .await
            .map_err(AgentServiceError::Storage)?
            .ok_or_else(|| AgentServiceError::NotFound(name.into_inner()))
    }

    /// Every agent, by name.
    pub async fn list(&self) -> Result<Vec<Agent>, AgentServiceError> {
        let mut agents = self
            .agents
            .list()
            .await
            .map_err(AgentServiceError::Storage)?;
        agents.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(agents)
    }
}
