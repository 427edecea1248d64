//! Sessions as the outside sees them. Grows into the full lifecycle (queue, dispatch, leases) later;
//! for now it answers the dashboard's reads.

use std::sync::Arc;

use app::api::SessionListQuery;
use app::ports::{QueryError, SessionQueries};
use async_trait::async_trait;
use domain::Session;

use crate::ports::{RepositoryError, SessionRepository};

pub struct SessionService<R: ?Sized> {
    repository: Arc<R>,
}

impl<R: SessionRepository + ?Sized> SessionService<R> {
    pub fn new(repository: Arc<R>) -> Self {
        Self { repository }
    }
}

#[async_trait]
impl<R: SessionRepository + ?Sized> SessionQueries for SessionService<R> {
    #[tracing::instrument(skip(self), fields(status = ?query.status, limit = query.limit))]
    async fn list_sessions(&self, query: SessionListQuery) -> Result<Vec<Session>, QueryError> {
        self.repository.list(&query).await.map_err(|e| match e {
            RepositoryError::Unavailable(m) => QueryError::Unavailable(m),
            other => QueryError::Unavailable(other.to_string()),
        })
    }
}
