//! `UnitOfWork` and `Outbox`: all-or-nothing commits, optimistic locking under concurrent writers,
//! and events stored atomically with their change.

use std::sync::Arc;

use domain::{MetricsDelta, Session, SessionRecord, SessionStatus};
use server::ports::{ChangeSet, EntityKey, RepositoryError};
use server::storage::Store;

use super::{event_of, seed_sessions};
use crate::support::factories::{now, SessionFactory, TaskFactory};

/// How many writers race in the concurrency checks.
const WRITERS: usize = 16;

pub async fn an_update_bumps_the_version_and_stores_the_change(store: &Store) {
    let session = SessionFactory::new().build();
    seed_sessions(store, &[&session]).await;
    let mut read = store.sessions.get(session.id()).await.unwrap().unwrap();
    let event = read.enqueue(now()).unwrap();
    let mut changes = ChangeSet::new();
    changes.update_session(&read).event(&event);
    let committed = store.unit_of_work.commit(changes).await.unwrap();
    assert_eq!(
        committed.version_of(EntityKey::Session(session.id())),
        Some(2)
    );
    let stored = store.sessions.get(session.id()).await.unwrap().unwrap();
    assert_eq!(stored.status(), SessionStatus::Queued);
    assert_eq!(stored.version(), 2);
}

pub async fn a_stale_update_conflicts_and_changes_nothing(store: &Store) {
    let session = SessionFactory::new().build();
    seed_sessions(store, &[&session]).await;
    let read_once = store.sessions.get(session.id()).await.unwrap().unwrap();

    let mut first = read_once.clone();
    let event = first.enqueue(now()).unwrap();
    let mut changes = ChangeSet::new();
    changes.update_session(&first).event(&event);
    store.unit_of_work.commit(changes).await.unwrap();

    let mut stale = read_once.clone();
    let stale_event = stale.cancel(Some("too late".into()), now()).unwrap();
    let mut changes = ChangeSet::new();
    changes.update_session(&stale).event(&stale_event);
    let err = store.unit_of_work.commit(changes).await.unwrap_err();
    match err {
        RepositoryError::Conflict {
            key,
            expected,
            actual,
        } => {
            assert_eq!(key, EntityKey::Session(session.id()));
            assert_eq!((expected, actual), (1, 2));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let stored = store.sessions.get(session.id()).await.unwrap().unwrap();
    assert_eq!(
        stored.status(),
        SessionStatus::Queued,
        "the winner's write stands"
    );
    assert_eq!(stored.version(), 2);
    let log = store.sessions.events(session.id()).await.unwrap();
    assert_eq!(
        log.len(),
        2,
        "created + enqueued; the loser's event is not stored"
    );
}

pub async fn an_update_of_a_missing_entity_is_not_found(store: &Store) {
    let ghost = SessionFactory::new().build().with_version(1);
    let mut changes = ChangeSet::new();
    changes.update_session(&ghost);
    let err = store.unit_of_work.commit(changes).await.unwrap_err();
    assert!(
        matches!(err, RepositoryError::NotFound(EntityKey::Session(id)) if id == ghost.id()),
        "{err:?}"
    );
}

pub async fn a_duplicate_insert_is_refused_and_the_original_kept(store: &Store) {
    let original = SessionFactory::new().title("original").build();
    seed_sessions(store, &[&original]).await;
    let impostor = Session::rehydrate(SessionRecord {
        title: "impostor".into(),
        ..original.to_record()
    })
    .unwrap();
    let mut changes = ChangeSet::new();
    changes.insert_session(&impostor);
    let err = store.unit_of_work.commit(changes).await.unwrap_err();
    assert!(
        matches!(
            err,
            RepositoryError::Duplicate {
                entity: "session",
                ..
            }
        ),
        "{err:?}"
    );
    let stored = store.sessions.get(original.id()).await.unwrap().unwrap();
    assert_eq!(stored.title().as_str(), "original");
}

pub async fn a_value_beyond_the_column_range_is_refused_and_nothing_written(store: &Store) {
    let huge = SessionFactory::new()
        .status(SessionStatus::Running)
        .metrics(MetricsDelta {
            tokens_input: u64::MAX,
            ..MetricsDelta::default()
        })
        .build();
    let mut changes = ChangeSet::new();
    changes.insert_session(&huge).event(&huge.created_event());
    let err = store.unit_of_work.commit(changes).await.unwrap_err();
    assert!(matches!(err, RepositoryError::OutOfRange(_)), "{err:?}");
    assert!(store
        .sessions
        .get_including_deleted(huge.id())
        .await
        .unwrap()
        .is_none());
    assert!(store.outbox.pending(100).await.unwrap().is_empty());
}

pub async fn a_failing_change_rolls_back_the_whole_batch(store: &Store) {
    let existing = SessionFactory::new().build();
    seed_sessions(store, &[&existing]).await;
    let before_outbox = store.outbox.pending(1000).await.unwrap().len();

    let newcomer = SessionFactory::new().build();
    let task = TaskFactory::new().build();
    let mut stale = existing.clone().with_version(41); // the stored version is 1
    let stale_event = stale.enqueue(now()).unwrap();

    let mut changes = ChangeSet::new();
    changes
        .insert_session(&newcomer)
        .event(&newcomer.created_event())
        .insert_task(&task)
        .update_session(&stale)
        .event(&stale_event);
    let err = store.unit_of_work.commit(changes).await.unwrap_err();
    assert!(matches!(err, RepositoryError::Conflict { .. }), "{err:?}");

    assert!(
        store.sessions.get(newcomer.id()).await.unwrap().is_none(),
        "insert rolled back"
    );
    assert!(
        store.tasks.get(task.id()).await.unwrap().is_none(),
        "insert rolled back"
    );
    assert!(store
        .sessions
        .events(newcomer.id())
        .await
        .unwrap()
        .is_empty());
    let stored = store.sessions.get(existing.id()).await.unwrap().unwrap();
    assert_eq!(stored, existing.with_version(1), "prior state intact");
    assert_eq!(
        store.outbox.pending(1000).await.unwrap().len(),
        before_outbox
    );
}

pub async fn events_reach_the_outbox_with_their_change_in_order(store: &Store) {
    let a = SessionFactory::new().build();
    let b = SessionFactory::new().build();
    seed_sessions(store, &[&a, &b]).await;
    let pending = store.outbox.pending(10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending[0].id < pending[1].id, "ids increase");
    assert_eq!(pending[0].event, event_of(&a.created_event()));
    assert_eq!(pending[1].event, event_of(&b.created_event()));
    assert!(pending.iter().all(|m| m.published_at.is_none()));

    // Relay the first; only the second stays pending.
    let first_at = now();
    store
        .outbox
        .mark_published(&[pending[0].id], first_at)
        .await
        .unwrap();
    let still = store.outbox.pending(10).await.unwrap();
    assert_eq!(still.len(), 1);
    assert_eq!(still[0].id, pending[1].id);

    // Marking again is harmless and keeps the first time.
    store
        .outbox
        .mark_published(
            &[pending[0].id, pending[1].id],
            first_at + chrono::Duration::seconds(5),
        )
        .await
        .unwrap();
    assert!(store.outbox.pending(10).await.unwrap().is_empty());
    assert_eq!(store.outbox.pending(0).await.unwrap().len(), 0);
}

pub async fn the_outbox_pages_by_limit(store: &Store) {
    let sessions: Vec<Session> = (0..5).map(|_| SessionFactory::new().build()).collect();
    let refs: Vec<&Session> = sessions.iter().collect();
    seed_sessions(store, &refs).await;
    let two = store.outbox.pending(2).await.unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].event.aggregate_id, sessions[0].id().as_uuid());
}

/// N writers read the same version and race to update: exactly one wins, the rest conflict.
pub async fn exactly_one_of_many_racing_writers_wins_per_version(store: &Store) {
    let session = SessionFactory::new().build();
    seed_sessions(store, &[&session]).await;
    let read = store.sessions.get(session.id()).await.unwrap().unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut handles = Vec::new();
    for i in 0..WRITERS {
        let store = store.clone();
        let mut mine = read.clone();
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            let event = mine
                .cancel(Some(format!("writer {i}")), now())
                .expect("pending can be cancelled");
            let mut changes = ChangeSet::new();
            changes.update_session(&mine).event(&event);
            barrier.wait().await;
            store.unit_of_work.commit(changes).await
        }));
    }
    let mut wins = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => wins += 1,
            Err(RepositoryError::Conflict { expected: 1, .. }) => {}
            Err(other) => panic!("a racing writer failed with {other:?}, not a conflict"),
        }
    }
    assert_eq!(wins, 1);
    let stored = store.sessions.get(session.id()).await.unwrap().unwrap();
    assert_eq!(stored.version(), 2);
    assert_eq!(stored.status(), SessionStatus::Cancelled);
    assert_eq!(store.sessions.events(session.id()).await.unwrap().len(), 2);
}

/// N writers each add to the metrics with read-modify-write, retrying on conflict: no update is lost.
pub async fn retrying_writers_lose_no_update(store: &Store) {
    let session = SessionFactory::new().status(SessionStatus::Running).build();
    seed_sessions(store, &[&session]).await;
    let mut handles = Vec::new();
    for _ in 0..WRITERS {
        let store = store.clone();
        let id = session.id();
        handles.push(tokio::spawn(async move {
            let mut attempts = 0;
            loop {
                attempts += 1;
                assert!(attempts < 500, "writer starved");
                let mut current = store.sessions.get(id).await.unwrap().unwrap();
                let delta = MetricsDelta {
                    tokens_input: 1,
                    ..MetricsDelta::default()
                };
                let event = current.record_metrics(delta, now()).unwrap();
                let mut changes = ChangeSet::new();
                changes.update_session(&current).event(&event);
                match store.unit_of_work.commit(changes).await {
                    Ok(_) => return,
                    Err(RepositoryError::Conflict { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("writer failed: {other:?}"),
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let stored = store.sessions.get(session.id()).await.unwrap().unwrap();
    assert_eq!(stored.metrics().tokens_input, WRITERS as u64);
    assert_eq!(stored.version(), 1 + WRITERS as u64);
    let log = store.sessions.events(session.id()).await.unwrap();
    assert_eq!(
        log.len(),
        1 + WRITERS,
        "created + one event per successful write"
    );
}

/// The outbox tail: every message above an id, published or not, in id order, bounded by limit;
/// `last_id` is the newest id (0 when empty).
pub async fn the_outbox_tails_after_an_id_published_or_not(store: &Store) {
    assert_eq!(store.outbox.last_id().await.unwrap(), 0);
    assert!(store.outbox.after(0, 10).await.unwrap().is_empty());
    let sessions: Vec<Session> = (0..4).map(|_| SessionFactory::new().build()).collect();
    let refs: Vec<&Session> = sessions.iter().collect();
    seed_sessions(store, &refs).await;
    let all = store.outbox.after(0, 100).await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(store.outbox.last_id().await.unwrap(), all[3].id);
    // Published messages stay in the tail.
    store
        .outbox
        .mark_published(&[all[1].id], now())
        .await
        .unwrap();
    let tail = store.outbox.after(all[0].id, 2).await.unwrap();
    let ids: Vec<i64> = tail.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![all[1].id, all[2].id]);
    assert!(tail[0].published_at.is_some());
    assert_eq!(tail[1].event.aggregate_id, sessions[2].id().as_uuid());
    assert!(store.outbox.after(all[3].id, 10).await.unwrap().is_empty());
}
