//! The inbox page's port: what waits for an answer and what was answered lately, and answering.
//! A replica without the inbox wired says so on the page.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use app::api::InboxView;
use app::ports::{CommandError, InboxPort, QueryError};
use domain::{InboxAnswer, InboxItem, InboxItemId, InboxStatus};
use oio_application::ports::InboxFilter;
use oio_application::{InboxService, InboxServiceError};

use super::errors::from_inbox;

/// Most open inbox items shown.
const INBOX_OPEN_LIMIT: u32 = 500;
/// Items read to find the latest resolved ones.
const INBOX_ALL_LIMIT: u32 = 200;
/// Resolved inbox items shown.
const INBOX_RESOLVED_SHOWN: usize = 25;

pub(super) struct Inbox {
    /// `None`: the inbox is not wired (its page says so).
    pub service: Option<Arc<InboxService>>,
}

impl Inbox {
    fn service(&self) -> Result<&Arc<InboxService>, String> {
        self.service
            .as_ref()
            .ok_or_else(|| "the inbox is not enabled on this replica".to_owned())
    }
}

#[async_trait]
impl InboxPort for Inbox {
    async fn inbox(&self) -> Result<InboxView, QueryError> {
        let inbox = self.service().map_err(QueryError::Unavailable)?;
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
        let inbox = self.service().map_err(CommandError::NotAllowed)?;
        inbox.answer(id, answer, by).await.map_err(from_inbox)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
