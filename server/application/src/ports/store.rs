//! Every storage port at once, as one database serves them.

use std::sync::Arc;

use super::{
    AgentRepository, CredentialStore, DispatchQueue, InboxRepository, Outbox, SessionRepository,
    TaskRepository, UnitOfWork,
};

/// Every port of the store, all backed by the same database.
#[derive(Clone)]
pub struct Store {
    pub sessions: Arc<dyn SessionRepository>,
    pub tasks: Arc<dyn TaskRepository>,
    pub agents: Arc<dyn AgentRepository>,
    pub unit_of_work: Arc<dyn UnitOfWork>,
    pub outbox: Arc<dyn Outbox>,
    pub queue: Arc<dyn DispatchQueue>,
    pub credentials: Arc<dyn CredentialStore>,
    pub inbox: Arc<dyn InboxRepository>,
}

impl Store {
    /// One adapter serving every port.
    pub fn from_adapter<A>(adapter: A) -> Self
    where
        A: SessionRepository
            + TaskRepository
            + AgentRepository
            + UnitOfWork
            + Outbox
            + DispatchQueue
            + CredentialStore
            + InboxRepository,
    {
        let adapter = Arc::new(adapter);
        Self {
            sessions: adapter.clone(),
            tasks: adapter.clone(),
            agents: adapter.clone(),
            unit_of_work: adapter.clone(),
            outbox: adapter.clone(),
            queue: adapter.clone(),
            credentials: adapter.clone(),
            inbox: adapter,
        }
    }
}
