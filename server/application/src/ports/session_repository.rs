//! Reading sessions and their event log.

use std::collections::BTreeMap;

use async_trait::async_trait;
use domain::query::MAX_PAGE_SIZE;
use domain::{Page, PageRequest, Session, SessionFilter, SessionId, SessionStatus};

use super::{RepositoryError, StoredSessionEvent};

/// Timestamps round-trip at microsecond precision (what both SQL stores keep).
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// A live session; `None` if it does not exist or is soft-deleted.
    async fn get(&self, id: SessionId) -> Result<Option<Session>, RepositoryError>;
    /// A session whether or not it is soft-deleted (to restore it, or audit it).
    async fn get_including_deleted(
        &self,
        id: SessionId,
    ) -> Result<Option<Session>, RepositoryError>;
    /// Live sessions matching `filter`, newest first (creation time, then id, both descending),
    /// one keyset page at a time.
    async fn list(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> Result<Page<Session>, RepositoryError>;
    /// The session's events in the order they were committed (`seq` 1, 2, …).
    async fn events(&self, id: SessionId) -> Result<Vec<StoredSessionEvent>, RepositoryError>;
    /// Whether the store answers at all: the readiness probe.
    async fn ping(&self) -> Result<(), RepositoryError>;
    /// How many live sessions are in each status, statuses without any left out: the `/metrics`
    /// gauges, read at every scrape. The SQL stores answer with one `GROUP BY`; this default walks
    /// every page of [`SessionRepository::list`] and is only fit for small test doubles.
    async fn count_by_status(&self) -> Result<BTreeMap<SessionStatus, u64>, RepositoryError> {
        let mut counts = BTreeMap::new();
        let mut after = None;
        loop {
            let page = PageRequest::new(MAX_PAGE_SIZE, after)
                .map_err(|e| RepositoryError::OutOfRange(e.to_string()))?;
            let page = self.list(&SessionFilter::default(), &page).await?;
            for session in &page.items {
                *counts.entry(session.status()).or_insert(0) += 1;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(counts),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use domain::{Cursor, NewSession, Prompt, SessionTitle, WorkspacePath};
    use std::sync::Mutex;
    use uuid::Uuid;

    /// Serves `pages` in order, whatever the cursor, and records the cursors it was asked for.
    struct Paged {
        pages: Mutex<Vec<Vec<Session>>>,
        asked: Mutex<Vec<Option<Cursor>>>,
    }

    #[async_trait]
    impl SessionRepository for Paged {
        async fn get(&self, _: SessionId) -> Result<Option<Session>, RepositoryError> {
            unreachable!()
        }
        async fn get_including_deleted(
            &self,
            _: SessionId,
        ) -> Result<Option<Session>, RepositoryError> {
            unreachable!()
        }
        async fn list(
            &self,
            _: &SessionFilter,
            page: &PageRequest,
        ) -> Result<Page<Session>, RepositoryError> {
            self.asked.lock().unwrap().push(page.after);
            let mut pages = self.pages.lock().unwrap();
            let items = pages.remove(0);
            let next = (!pages.is_empty()).then(|| Cursor::new(Utc::now(), Uuid::new_v4()));
            Ok(Page { items, next })
        }
        async fn events(&self, _: SessionId) -> Result<Vec<StoredSessionEvent>, RepositoryError> {
            unreachable!()
        }
        async fn ping(&self) -> Result<(), RepositoryError> {
            Ok(())
        }
    }

    fn session(queued: bool) -> Session {
        let now = Utc::now();
        let mut session = Session::new(
            NewSession {
                id: SessionId::from_uuid(Uuid::new_v4()),
                title: SessionTitle::new("t".to_owned()).unwrap(),
                prompt: Prompt::new("p".to_owned()).unwrap(),
                workspace: WorkspacePath::new("/w".to_owned()).unwrap(),
                agent: None,
                parent_task: None,
                max_attempts: 1,
            },
            now,
        )
        .unwrap();
        if queued {
            session.enqueue(now).unwrap();
        }
        session
    }

    #[tokio::test]
    async fn the_default_count_walks_every_page() {
        let store = Paged {
            pages: Mutex::new(vec![
                vec![session(true), session(false)],
                vec![session(true)],
            ]),
            asked: Mutex::new(Vec::new()),
        };
        let counts = store.count_by_status().await.unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([(SessionStatus::Pending, 1), (SessionStatus::Queued, 2)])
        );
        let asked = store.asked.lock().unwrap();
        assert_eq!(asked.len(), 2);
        assert!(asked[0].is_none() && asked[1].is_some());
    }
}
