//! `InboxRepository`: one row per (server, request id), optimistic versions, open/all lists.

use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use domain::{
    InboxAnswer, InboxItem, InboxItemId, InboxKind, InboxOption, InboxQuestion, InboxReply,
    InboxRequest, InboxStatus, SessionId,
};
use server::ports::{EntityKey, InboxFilter, RepositoryError};
use server::storage::Store;
use uuid::Uuid;

/// Now, at the microsecond precision both stores keep.
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .unwrap()
}

fn permission(request_id: &str, at: DateTime<Utc>) -> InboxItem {
    InboxItem::new(
        InboxItemId::from_uuid(Uuid::new_v4()),
        InboxRequest {
            server: "http://127.0.0.1:4096".into(),
            remote_session: "ses_abc".into(),
            directory: Some("/work/trees/one".into()),
            session: Some(SessionId::from_uuid(Uuid::new_v4())),
            request_id: request_id.into(),
            kind: InboxKind::Permission {
                permission: "edit".into(),
                patterns: vec!["src/lib.rs".into()],
                always: vec!["*".into()],
            },
        },
        at,
    )
}

fn question(request_id: &str, at: DateTime<Utc>) -> InboxItem {
    InboxItem::new(
        InboxItemId::from_uuid(Uuid::new_v4()),
        InboxRequest {
            server: "http://127.0.0.1:4096".into(),
            remote_session: "ses_def".into(),
            directory: None,
            session: None,
            request_id: request_id.into(),
            kind: InboxKind::Question {
                questions: vec![InboxQuestion {
                    question: "Which database? \"quoted\" <b>".into(),
                    header: "DB".into(),
                    options: vec![
                        InboxOption {
                            label: "sqlite".into(),
                            description: "embedded".into(),
                        },
                        InboxOption {
                            label: "postgres".into(),
                            description: "server".into(),
                        },
                    ],
                    multiple: false,
                    custom: true,
                }],
            },
        },
        at,
    )
}

pub async fn a_recorded_item_reads_back_equal_at_version_1(store: &Store) {
    let inbox = &store.inbox;
    for item in [permission("per_1", now()), question("que_1", now())] {
        let recorded = inbox.insert_if_new(&item).await.unwrap();
        assert!(recorded.new);
        let expected = InboxItem {
            version: 1,
            ..item.clone()
        };
        assert_eq!(recorded.item, expected);
        assert_eq!(inbox.get(item.id).await.unwrap(), Some(expected.clone()));
        assert_eq!(
            inbox.find(&item.server, &item.request_id).await.unwrap(),
            Some(expected)
        );
    }
    assert_eq!(
        inbox
            .get(InboxItemId::from_uuid(Uuid::new_v4()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(inbox.find("elsewhere", "per_1").await.unwrap(), None);
}

pub async fn a_repeated_request_is_recorded_once(store: &Store) {
    let inbox = &store.inbox;
    let first = permission("per_dup", now());
    assert!(inbox.insert_if_new(&first).await.unwrap().new);
    // The same request seen again after a reconnect: a fresh item id, same server and request.
    let again = permission("per_dup", now() + TimeDelta::seconds(5));
    let recorded = inbox.insert_if_new(&again).await.unwrap();
    assert!(!recorded.new);
    assert_eq!(recorded.item.id, first.id);
    assert_eq!(recorded.item.created_at, first.created_at);
    assert_eq!(inbox.list(InboxFilter::All, 10).await.unwrap().len(), 1);
    // The same request id on another server is another request.
    let other = InboxItem {
        server: "http://127.0.0.1:4097".into(),
        ..permission("per_dup", now())
    };
    assert!(inbox.insert_if_new(&other).await.unwrap().new);
}

pub async fn racing_recorders_store_one_item(store: &Store) {
    let inbox = Arc::clone(&store.inbox);
    let at = now();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let inbox = Arc::clone(&inbox);
            tokio::spawn(async move { inbox.insert_if_new(&permission("per_race", at)).await })
        })
        .collect();
    let mut ids = Vec::new();
    let mut new = 0;
    for handle in handles {
        let recorded = handle.await.unwrap().unwrap();
        new += usize::from(recorded.new);
        ids.push(recorded.item.id);
    }
    assert_eq!(new, 1, "exactly one recorder stores the item");
    ids.dedup();
    assert_eq!(ids.len(), 1, "every recorder gets the one stored item");
}

pub async fn answering_bumps_the_version_and_keeps_the_resolution(store: &Store) {
    let inbox = &store.inbox;
    let stored = inbox
        .insert_if_new(&question("que_answer", now()))
        .await
        .unwrap()
        .item;
    let mut answered = stored.clone();
    answered
        .answer(
            InboxAnswer::Question {
                answers: vec![vec!["postgres".into()]],
            },
            "alice",
            now(),
        )
        .unwrap();
    let written = inbox.update(&answered).await.unwrap();
    assert_eq!(written.version, 2);
    let read = inbox.get(stored.id).await.unwrap().unwrap();
    assert_eq!(read, written);
    assert_eq!(read.status, InboxStatus::Answered);
    assert_eq!(read.resolution.as_ref().unwrap().by, "alice");
    assert_eq!(read.resolved_at, answered.resolved_at);
}

pub async fn a_stale_write_conflicts_and_changes_nothing(store: &Store) {
    let inbox = &store.inbox;
    let stored = inbox
        .insert_if_new(&permission("per_stale", now()))
        .await
        .unwrap()
        .item;
    let mut escalated = stored.clone();
    escalated.escalate(now()).unwrap();
    let escalated = inbox.update(&escalated).await.unwrap();

    // A writer that read version 1 answers: refused, and the escalation stands.
    let mut late = stored.clone();
    late.answer(
        InboxAnswer::Permission {
            reply: InboxReply::Always,
            message: None,
        },
        "bob",
        now(),
    )
    .unwrap();
    let err = inbox.update(&late).await.unwrap_err();
    assert!(
        matches!(
            err,
            RepositoryError::Conflict { key: EntityKey::InboxItem(id), expected: 1, actual: 2 }
                if id == stored.id
        ),
        "{err:?}"
    );
    assert_eq!(inbox.get(stored.id).await.unwrap(), Some(escalated));

    let ghost = InboxItem {
        version: 1,
        ..permission("per_ghost", now())
    };
    let err = inbox.update(&ghost).await.unwrap_err();
    assert!(
        matches!(err, RepositoryError::NotFound(EntityKey::InboxItem(id)) if id == ghost.id),
        "{err:?}"
    );
}

pub async fn lists_are_newest_first_and_open_lists_skip_closed_items(store: &Store) {
    let inbox = &store.inbox;
    let base = now();
    let mut ids = Vec::new();
    for i in 0..5 {
        let item = permission(&format!("per_list_{i}"), base + TimeDelta::seconds(i));
        ids.push(inbox.insert_if_new(&item).await.unwrap().item.id);
    }
    // Close two: one answered, one expired; escalate one (still open).
    let mut answered = inbox.get(ids[1]).await.unwrap().unwrap();
    answered
        .answer(
            InboxAnswer::Permission {
                reply: InboxReply::Reject,
                message: Some("not here".into()),
            },
            "policy:no-edits",
            now(),
        )
        .unwrap();
    inbox.update(&answered).await.unwrap();
    let mut expired = inbox.get(ids[3]).await.unwrap().unwrap();
    expired.expire(now()).unwrap();
    inbox.update(&expired).await.unwrap();
    let mut escalated = inbox.get(ids[4]).await.unwrap().unwrap();
    escalated.escalate(now()).unwrap();
    inbox.update(&escalated).await.unwrap();

    let all: Vec<_> = inbox
        .list(InboxFilter::All, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(all, vec![ids[4], ids[3], ids[2], ids[1], ids[0]]);
    let open: Vec<_> = inbox
        .list(InboxFilter::Open, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.id, i.status))
        .collect();
    assert_eq!(
        open,
        vec![
            (ids[4], InboxStatus::Escalated),
            (ids[2], InboxStatus::Pending),
            (ids[0], InboxStatus::Pending)
        ]
    );
    assert_eq!(inbox.list(InboxFilter::All, 2).await.unwrap().len(), 2);
}
