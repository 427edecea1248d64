//! `SessionRepository`: reads of live and soft-deleted sessions, filters, keyset pages, event log.

use std::collections::BTreeMap;

use chrono::Duration;
use domain::{
    AgentName, MetricsDelta, PageRequest, Session, SessionFilter, SessionId, SessionStatus, TaskId,
};
use server::ports::ChangeSet;
use server::storage::Store;
use uuid::Uuid;

use super::seed_sessions;
use crate::support::factories::{now, SessionFactory};

fn first(limit: u32) -> PageRequest {
    PageRequest::first(limit).unwrap()
}

async fn list_ids(store: &Store, filter: &SessionFilter) -> Vec<SessionId> {
    let page = store.sessions.list(filter, &first(100)).await.unwrap();
    page.items.iter().map(Session::id).collect()
}

pub async fn a_committed_session_reads_back_equal_at_version_1(store: &Store) {
    let session = SessionFactory::new().build();
    seed_sessions(store, &[&session]).await;
    let expected = session.clone().with_version(1);
    let got = store
        .sessions
        .get(session.id())
        .await
        .unwrap()
        .expect("found");
    assert_eq!(got, expected);
    let page = store
        .sessions
        .list(&SessionFilter::default(), &first(10))
        .await
        .unwrap();
    assert_eq!(page.items, vec![expected]);
    assert_eq!(page.next, None);
}

pub async fn every_field_round_trips(store: &Store) {
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
    seed_sessions(store, &[&session]).await;
    let got = store.sessions.get(session.id()).await.unwrap().unwrap();
    assert_eq!(got.to_record(), session.with_version(1).to_record());
}

pub async fn a_guardrail_stop_round_trips_typed_and_a_retry_clears_it(store: &Store) {
    let running = SessionFactory::new().status(SessionStatus::Running).build();
    seed_sessions(store, &[&running]).await;
    let mut session = store.sessions.get(running.id()).await.unwrap().unwrap();
    let reason = domain::StopReason::RepeatedToolFailure {
        tool: "bash".into(),
        times: 3,
        error: "exit 2: 'quoted' ünïcode".into(),
    };
    let mut changes = ChangeSet::new();
    changes.event(&session.stop(reason.clone(), now()).unwrap());
    changes.update_session(&session);
    let committed = store.unit_of_work.commit(changes).await.unwrap();
    let got = store.sessions.get(session.id()).await.unwrap().unwrap();
    assert_eq!(got.stop_reason(), Some(&reason));
    assert_eq!(got.status(), SessionStatus::Failed);
    assert_eq!(got.last_error(), Some(reason.to_string().as_str()));
    session.set_version(
        committed
            .version_of(server::ports::EntityKey::Session(session.id()))
            .unwrap(),
    );
    assert_eq!(got, session);

    let mut changes = ChangeSet::new();
    changes.event(&session.retry(now()).unwrap());
    changes.update_session(&session);
    store.unit_of_work.commit(changes).await.unwrap();
    let got = store.sessions.get(session.id()).await.unwrap().unwrap();
    assert_eq!(got.stop_reason(), None);
    assert_eq!(got.status(), SessionStatus::Queued);
}

pub async fn an_unknown_session_is_none(store: &Store) {
    let id = SessionId::from_uuid(Uuid::new_v4());
    assert!(store.sessions.get(id).await.unwrap().is_none());
    assert!(store
        .sessions
        .get_including_deleted(id)
        .await
        .unwrap()
        .is_none());
    assert!(store.sessions.events(id).await.unwrap().is_empty());
}

pub async fn the_list_is_newest_first_with_ties_broken_by_id(store: &Store) {
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
    seed_sessions(store, &[&old, &tie_a, &new, &tie_b]).await;
    let (hi, lo) = if tie_a.id().as_uuid() > tie_b.id().as_uuid() {
        (&tie_a, &tie_b)
    } else {
        (&tie_b, &tie_a)
    };
    assert_eq!(
        list_ids(store, &SessionFilter::default()).await,
        vec![new.id(), hi.id(), lo.id(), old.id()]
    );
}

pub async fn the_list_filters_by_status_agent_task_and_time_range(store: &Store) {
    let t0 = now();
    let task = TaskId::from_uuid(Uuid::new_v4());
    let failed_by_build = SessionFactory::new()
        .status(SessionStatus::Failed)
        .agent("build")
        .created_at(t0 - Duration::hours(2))
        .build();
    let running_for_task = SessionFactory::new()
        .status(SessionStatus::Running)
        .agent("plan")
        .parent_task(task)
        .created_at(t0 - Duration::hours(1))
        .build();
    let pending_recent = SessionFactory::new().created_at(t0).build();
    seed_sessions(
        store,
        &[&failed_by_build, &running_for_task, &pending_recent],
    )
    .await;

    let by_status = SessionFilter {
        status: Some(SessionStatus::Failed),
        ..Default::default()
    };
    assert_eq!(
        list_ids(store, &by_status).await,
        vec![failed_by_build.id()]
    );

    let by_agent = SessionFilter {
        agent: Some(AgentName::new("plan").unwrap()),
        ..Default::default()
    };
    assert_eq!(
        list_ids(store, &by_agent).await,
        vec![running_for_task.id()]
    );

    let by_task = SessionFilter {
        parent_task: Some(task),
        ..Default::default()
    };
    assert_eq!(list_ids(store, &by_task).await, vec![running_for_task.id()]);

    // From is inclusive, until is exclusive.
    let window = SessionFilter {
        created_from: Some(t0 - Duration::hours(1)),
        created_until: Some(t0),
        ..Default::default()
    };
    assert_eq!(list_ids(store, &window).await, vec![running_for_task.id()]);

    let combined = SessionFilter {
        status: Some(SessionStatus::Running),
        agent: Some(AgentName::new("build").unwrap()),
        ..Default::default()
    };
    assert!(list_ids(store, &combined).await.is_empty());
}

pub async fn keyset_pages_walk_every_session_once_in_order(store: &Store) {
    let t0 = now();
    let mut sessions = Vec::new();
    for i in 0..7 {
        // Two share each timestamp, so page boundaries fall between ties too.
        sessions.push(
            SessionFactory::new()
                .created_at(t0 - Duration::seconds(i / 2))
                .build(),
        );
    }
    let refs: Vec<&Session> = sessions.iter().collect();
    seed_sessions(store, &refs).await;
    let expected = list_ids(store, &SessionFilter::default()).await;
    assert_eq!(expected.len(), 7);

    let mut walked = Vec::new();
    let mut page = first(3);
    let mut pages = 0;
    loop {
        let got = store
            .sessions
            .list(&SessionFilter::default(), &page)
            .await
            .unwrap();
        pages += 1;
        assert!(got.items.len() <= 3);
        walked.extend(got.items.iter().map(Session::id));
        if pages == 1 {
            // A newer session arriving mid-walk must not shift later pages.
            let newcomer = SessionFactory::new()
                .created_at(t0 + Duration::minutes(1))
                .build();
            seed_sessions(store, &[&newcomer]).await;
        }
        match got.next {
            Some(cursor) => page = PageRequest::new(3, Some(cursor)).unwrap(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(walked, expected);
}

pub async fn soft_deleted_sessions_vanish_from_reads_and_can_be_restored(store: &Store) {
    let kept = SessionFactory::new().build();
    let doomed = SessionFactory::new()
        .status(SessionStatus::Completed)
        .build();
    seed_sessions(store, &[&kept, &doomed]).await;

    let mut deleted = doomed.clone().with_version(1);
    deleted.mark_deleted(now()).unwrap();
    let mut changes = ChangeSet::new();
    changes.update_session(&deleted);
    store.unit_of_work.commit(changes).await.unwrap();

    assert!(store.sessions.get(doomed.id()).await.unwrap().is_none());
    assert_eq!(
        list_ids(store, &SessionFilter::default()).await,
        vec![kept.id()]
    );
    // The `/metrics` gauges count live sessions only.
    assert_eq!(
        store.sessions.count_by_status().await.unwrap(),
        BTreeMap::from([(kept.status(), 1)])
    );
    let mut stored = store
        .sessions
        .get_including_deleted(doomed.id())
        .await
        .unwrap()
        .expect("still stored");
    assert!(stored.is_deleted());
    assert_eq!(stored.version(), 2);

    stored.restore(now());
    let mut changes = ChangeSet::new();
    changes.update_session(&stored);
    store.unit_of_work.commit(changes).await.unwrap();
    let back = store
        .sessions
        .get(doomed.id())
        .await
        .unwrap()
        .expect("restored");
    assert!(!back.is_deleted());
    assert_eq!(back.status(), SessionStatus::Completed);
    assert_eq!(back.version(), 3);
    assert_eq!(list_ids(store, &SessionFilter::default()).await.len(), 2);
    let mut expected = BTreeMap::from([(kept.status(), 1)]);
    *expected.entry(SessionStatus::Completed).or_insert(0) += 1;
    assert_eq!(store.sessions.count_by_status().await.unwrap(), expected);
}

pub async fn the_event_log_keeps_commit_order_with_gapless_seq(store: &Store) {
    let mut session = SessionFactory::new().build();
    seed_sessions(store, &[&session]).await;
    session = session.with_version(1);
    let mut expected_types = vec!["session.created".to_string()];
    let t = now();
    for (i, step) in ["enqueue", "start", "complete"].iter().enumerate() {
        let at = t + Duration::seconds(i as i64 + 1);
        let event = match *step {
            "enqueue" => session.enqueue(at),
            "start" => session.start(at),
            _ => session.complete(at),
        }
        .unwrap();
        expected_types.push(super::event_of(&event).event_type);
        let mut changes = ChangeSet::new();
        changes.update_session(&session).event(&event);
        let committed = store.unit_of_work.commit(changes).await.unwrap();
        session.set_version(
            committed
                .version_of(server::ports::EntityKey::Session(session.id()))
                .unwrap(),
        );
    }
    let log = store.sessions.events(session.id()).await.unwrap();
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let types: Vec<String> = log.iter().map(|e| e.event_type.clone()).collect();
    assert_eq!(types, expected_types);
    assert_eq!(log[3].payload["to"], "completed");
    assert!(log.iter().all(|e| e.session_id == session.id()));
}

pub async fn ping_answers(store: &Store) {
    store.sessions.ping().await.unwrap();
}
