//! Sessions as the outside sees them. Grows into the full lifecycle (queue, dispatch, leases) later;
//! for now it answers the dashboard's reads.

use std::sync::Arc;

use app::ports::{QueryError, SessionQueries};
use async_trait::async_trait;
use domain::{Page, PageRequest, Session, SessionFilter};

use crate::ports::SessionRepository;

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
    #[tracing::instrument(skip(self), fields(status = ?filter.status, limit = page.limit()))]
    async fn list_sessions(
        &self,
        filter: SessionFilter,
        page: PageRequest,
    ) -> Result<Page<Session>, QueryError> {
        self.repository
            .list(&filter, &page)
            .await
            .map_err(|e| QueryError::Unavailable(e.to_string()))
    }
}
