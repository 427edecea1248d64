//! The `SessionRepository` contract. Every check takes a fresh, empty repository.

use app::api::SessionListQuery;
use chrono::Duration;
use domain::{MetricsDelta, SessionStatus, TaskId};
use server::ports::{RepositoryError, SessionRepository};
use uuid::Uuid;

use crate::support::factories::{now, SessionFactory};

fn all(limit: u32) -> SessionListQuery {
    SessionListQuery {
        status: None,
        limit,
    }
}

pub async fn a_stored_session_reads_back_equal_at_version_1(repo: &dyn SessionRepository) {
    let session = SessionFactory::new().build();
    repo.insert(&session).await.unwrap();
    let listed = repo.list(&all(10)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version(), 1);
    assert_eq!(
        listed[0].to_record(),
        session.clone().with_version(1).to_record()
    );
}

pub async fn every_field_round_trips(repo: &dyn SessionRepository) {
    let session = SessionFactory::new()
        .title("round trip: ünïcode, 'quotes' & <tags>")
        .agent("build")
        .parent_task(TaskId::from_uuid(Uuid::new_v4()))
        .metrics(MetricsDelta {
            tokens_input: 1_200,
            tokens_output: 345,
            tokens_reasoning: 67,
            tokens_cache_read: 8_900,
            tokens_cache_write: 10,
            cost_micro_usd: 123_456,
            duration_ms: 9_876,
            files_changed: 3,
            retries: 0,
        })
        .status(SessionStatus::Completed)
        .build();
    repo.insert(&session).await.unwrap();
    let listed = repo.list(&all(10)).await.unwrap();
    assert_eq!(listed[0].to_record(), session.with_version(1).to_record());
}

pub async fn the_list_is_newest_first_with_ties_broken_by_id(repo: &dyn SessionRepository) {
    let t0 = now();
    let old = SessionFactory::new()
        .created_at(t0 - Duration::minutes(5))
        .build();
    let new = SessionFactory::new().created_at(t0).build();
    let tie_a = SessionFactory::new()
        .created_at(t0 - Duration::minutes(1))
        .build();
    let tie_b = SessionFactory::new()
        .created_at(t0 - Duration::minutes(1))
        .build();
    for s in [&old, &tie_a, &new, &tie_b] {
        repo.insert(s).await.unwrap();
    }
    let (hi, lo) = if tie_a.id().as_uuid() > tie_b.id().as_uuid() {
        (&tie_a, &tie_b)
    } else {
        (&tie_b, &tie_a)
    };
    let ids: Vec<_> = repo
        .list(&all(10))
        .await
        .unwrap()
        .iter()
        .map(|s| s.id())
        .collect();
    assert_eq!(ids, vec![new.id(), hi.id(), lo.id(), old.id()]);
}

pub async fn the_list_filters_by_status(repo: &dyn SessionRepository) {
    let failed = SessionFactory::new().status(SessionStatus::Failed).build();
    let running = SessionFactory::new().status(SessionStatus::Running).build();
    let pending = SessionFactory::new().build();
    for s in [&failed, &running, &pending] {
        repo.insert(s).await.unwrap();
    }
    let only_failed = repo
        .list(&SessionListQuery {
            status: Some(SessionStatus::Failed),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(only_failed.len(), 1);
    assert_eq!(only_failed[0].id(), failed.id());
    assert_eq!(repo.list(&all(10)).await.unwrap().len(), 3);
}

pub async fn the_list_honours_its_limit(repo: &dyn SessionRepository) {
    let t0 = now();
    for i in 0..5 {
        let s = SessionFactory::new()
            .created_at(t0 + Duration::seconds(i))
            .build();
        repo.insert(&s).await.unwrap();
    }
    let two = repo.list(&all(2)).await.unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].created_at(), t0 + Duration::seconds(4));
}

pub async fn soft_deleted_sessions_are_not_listed(repo: &dyn SessionRepository) {
    let kept = SessionFactory::new().build();
    let deleted = SessionFactory::new()
        .status(SessionStatus::Completed)
        .deleted()
        .build();
    repo.insert(&kept).await.unwrap();
    repo.insert(&deleted).await.unwrap();
    let ids: Vec<_> = repo
        .list(&all(10))
        .await
        .unwrap()
        .iter()
        .map(|s| s.id())
        .collect();
    assert_eq!(ids, vec![kept.id()]);
}

pub async fn a_duplicate_id_is_refused_and_the_original_kept(repo: &dyn SessionRepository) {
    let original = SessionFactory::new().title("original").build();
    repo.insert(&original).await.unwrap();
    let impostor = domain::Session::rehydrate(domain::SessionRecord {
        title: "impostor".into(),
        ..original.to_record()
    })
    .unwrap();
    let err = repo.insert(&impostor).await.unwrap_err();
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
    let listed = repo.list(&all(10)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].title().as_str(), "original");
}

pub async fn a_value_beyond_the_column_range_is_refused_and_nothing_written(
    repo: &dyn SessionRepository,
) {
    let huge = SessionFactory::new()
        .status(SessionStatus::Running)
        .metrics(MetricsDelta {
            tokens_input: u64::MAX,
            ..MetricsDelta::default()
        })
        .build();
    let err = repo.insert(&huge).await.unwrap_err();
    assert!(matches!(err, RepositoryError::OutOfRange(_)), "{err:?}");
    assert!(repo.list(&all(10)).await.unwrap().is_empty());
}

pub async fn ping_answers(repo: &dyn SessionRepository) {
    repo.ping().await.unwrap();
}
