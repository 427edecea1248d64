//! Reading the agent registry.

use async_trait::async_trait;
use domain::{Agent, AgentId, AgentName};

use super::RepositoryError;

#[async_trait]
pub trait AgentRepository: Send + Sync + 'static {
    async fn get(&self, id: AgentId) -> Result<Option<Agent>, RepositoryError>;
    /// Agent names are unique.
    async fn get_by_name(&self, name: &AgentName) -> Result<Option<Agent>, RepositoryError>;
    /// Every agent, by name. The registry is small (tens), so it is not paginated.
    async fn list(&self) -> Result<Vec<Agent>, RepositoryError>;
}
