//! `DispatchQueue`: claim order, fencing, per-server and per-agent limits, re-attachment,
//! concurrent claimers, retries, signals and depth. Sessions are queued the way the application
//! queues them: the session, its events and a `QueueOp::Enqueue` in one commit.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{Session, SessionId, SessionStatus};
use server::ports::{
    ChangeSet, Claim, ClaimRequest, DispatchQueue, QueueDepth, QueueLease, QueueOp, QueueSignal,
    RemoteRef, RepositoryError, ServerCapacity,
};
use server::storage::Store;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use uuid::Uuid;

use crate::support::factories::{now, AgentFactory, SessionFactory};

const LONG: Duration = Duration::from_secs(60);
/// A lease short enough to lapse within a test, long enough to outlive a few queries on a busy
/// machine.
const SHORT: Duration = Duration::from_millis(1_000);
/// Sleeping this long lets a `SHORT` lease lapse.
const PAST_SHORT: Duration = Duration::from_millis(1_300);

fn request(owner: &str, lease_ttl: Duration, servers: &[(&str, u32)]) -> ClaimRequest {
    ClaimRequest {
        owner: owner.to_owned(),
        lease_ttl,
        servers: servers
            .iter()
            .map(|(server, capacity)| ServerCapacity {
                server: (*server).to_owned(),
                capacity: *capacity,
            })
            .collect(),
    }
}

fn millis(ms: i64) -> chrono::Duration {
    chrono::Duration::milliseconds(ms)
}

/// Creates and queues a session in one commit, as `Lifecycle::create` does; returns it as stored
/// (version 1, queued).
async fn enqueue(
    store: &Store,
    priority: i32,
    agent: Option<&str>,
    available_at: DateTime<Utc>,
) -> Session {
    let factory = match agent {
        Some(name) => SessionFactory::new().agent(name),
        None => SessionFactory::new(),
    };
    let mut session = factory.build();
    let created = session.created_event();
    let enqueued = session.enqueue(now()).expect("pending -> queued");
    let mut changes = ChangeSet::new();
    changes
        .insert_session(&session)
        .event(&created)
        .event(&enqueued)
        .queue(QueueOp::Enqueue {
            session: session.id(),
            priority,
            agent: agent.map(str::to_owned),
            available_at,
        });
    store.unit_of_work.commit(changes).await.expect("enqueue");
    session.set_version(1);
    session
}

/// Queues `n` sessions, each in its own commit, a few milliseconds apart (distinct enqueue
/// times).
async fn enqueue_many(store: &Store, n: usize) -> Vec<Session> {
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        sessions.push(enqueue(store, 0, None, now()).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    sessions
}

async fn claim(store: &Store, request: &ClaimRequest) -> Option<Claim> {
    store.queue.claim(request).await.expect("claim")
}

async fn commit(store: &Store, changes: ChangeSet) -> Result<(), RepositoryError> {
    store.unit_of_work.commit(changes).await.map(|_| ())
}

fn assert_fence_lost<T: std::fmt::Debug>(result: Result<T, RepositoryError>, lease: &QueueLease) {
    match result {
        Err(RepositoryError::FenceLost { session, fence }) => {
            assert_eq!(session, lease.session);
            assert_eq!(fence, lease.fence);
        }
        other => panic!("expected FenceLost for {lease:?}, got {other:?}"),
    }
}

fn close_to(a: DateTime<Utc>, b: DateTime<Utc>, tolerance_ms: i64) -> bool {
    (a - b).num_milliseconds().abs() <= tolerance_ms
}

pub async fn claims_go_by_priority_then_fifo_and_wait_for_available_at(store: &Store) {
    let req = request("r1", LONG, &[("a", 100)]);
    assert_eq!(claim(store, &req).await, None, "an empty queue has nothing");
    assert_eq!(store.queue.next_due().await.unwrap(), None);

    let t = now();
    let first_low = enqueue(store, 0, None, t).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let high = enqueue(store, 5, None, t).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second_low = enqueue(store, 0, None, t).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let negative = enqueue(store, -3, None, t).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let highest = enqueue(store, 10, None, t).await;
    let later_at = now() + millis(1_500);
    let later = enqueue(store, 100, None, later_at).await;

    let mut order = Vec::new();
    while let Some(c) = claim(store, &req).await {
        assert_eq!(c.lease.owner, "r1");
        assert_eq!(c.server, "a");
        assert!(!c.recovered);
        assert_eq!(c.lease.fence, 1);
        order.push(c.lease.session);
    }
    let expected: Vec<SessionId> = [&highest, &high, &first_low, &second_low, &negative]
        .iter()
        .map(|s| s.id())
        .collect();
    assert_eq!(order, expected, "priority first, then FIFO");
    assert!(
        Utc::now() < later_at,
        "the test ran too slowly to check available_at"
    );

    // Nothing claimable now: the next due instant is the delayed row's available_at (every
    // lease runs for a minute).
    let due = store.queue.next_due().await.unwrap().expect("a row is due");
    assert!(close_to(due, later_at, 1), "next_due {due} != {later_at}");
    let entry = store.queue.entry(later.id()).await.unwrap().expect("row");
    assert_eq!(entry.owner, None);
    assert_eq!(entry.priority, 100);
    assert!(close_to(entry.available_at, later_at, 1));

    let wait = (later_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100);
    tokio::time::sleep(wait).await;
    let c = claim(store, &req).await.expect("due now");
    assert_eq!(c.lease.session, later.id());
    assert_eq!(c.priority, 100);
    assert!(close_to(c.available_at, later_at, 1));
    assert_eq!(claim(store, &req).await, None);
}

pub async fn a_lapsed_lease_is_recovered_and_the_old_owner_is_fenced_off(store: &Store) {
    let mut session = enqueue(store, 0, None, now()).await;
    let servers = [("a", 10)];
    let first = claim(store, &request("r1", SHORT, &servers))
        .await
        .expect("claimable");
    assert_eq!(first.lease.fence, 1);
    assert!(!first.recovered);
    let renewal = store.queue.renew(&first.lease, SHORT).await.unwrap();
    assert!(!renewal.cancel_requested);
    assert_eq!(
        claim(store, &request("r2", LONG, &servers)).await,
        None,
        "a fresh lease is not claimable"
    );

    tokio::time::sleep(PAST_SHORT).await;
    let second = claim(store, &request("r2", LONG, &servers))
        .await
        .expect("a lapsed lease is claimable");
    assert_eq!(second.lease.session, session.id());
    assert_eq!(second.lease.owner, "r2");
    assert!(second.recovered);
    assert!(second.lease.fence > first.lease.fence);
    assert_eq!(second.lease.fence, 2);

    let old = first.lease.clone();
    let entry_before = store.queue.entry(session.id()).await.unwrap().unwrap();
    let events_before = store.sessions.events(session.id()).await.unwrap();
    assert_eq!(events_before.len(), 2, "created + queued");
    let outbox_before = store.outbox.pending(1_000).await.unwrap().len();

    assert_fence_lost(store.queue.renew(&old, LONG).await, &old);
    assert_fence_lost(store.queue.release(&old).await, &old);

    // A guarded transition by the old owner: nothing of the batch is stored.
    let mut started = session.clone();
    let event = started.start(now()).unwrap();
    let mut changes = ChangeSet::new();
    changes.update_session(&started).event(&event).guard(&old);
    assert_fence_lost(commit(store, changes).await, &old);

    // Removing the row (a terminal transition) with the old lease.
    let mut changes = ChangeSet::new();
    changes
        .update_session(&started)
        .event(&event)
        .queue(QueueOp::Remove { lease: old.clone() });
    assert_fence_lost(commit(store, changes).await, &old);

    // Attaching with the old lease.
    let mut changes = ChangeSet::new();
    changes.event(&event).queue(QueueOp::Attach {
        lease: old.clone(),
        remote: RemoteRef {
            server: "a".into(),
            session: "ses_old".into(),
            directory: "/srv/work/repo".into(),
            message_id: "msg_old".into(),
        },
        deadline: None,
    });
    assert_fence_lost(commit(store, changes).await, &old);

    assert_eq!(
        store.queue.entry(session.id()).await.unwrap().unwrap(),
        entry_before,
        "the row is the new owner's, untouched"
    );
    assert_eq!(
        store.sessions.events(session.id()).await.unwrap(),
        events_before,
        "no event of a fenced batch is stored"
    );
    assert_eq!(
        store.outbox.pending(1_000).await.unwrap().len(),
        outbox_before
    );
    let stored = store.sessions.get(session.id()).await.unwrap().unwrap();
    assert_eq!(stored.status(), SessionStatus::Queued);
    assert_eq!(stored.version(), 1);

    // The current owner's guarded batch goes through.
    let mut changes = ChangeSet::new();
    changes
        .update_session(&started)
        .event(&event)
        .guard(&second.lease);
    commit(store, changes).await.expect("current lease");
    session = store.sessions.get(session.id()).await.unwrap().unwrap();
    assert_eq!(session.status(), SessionStatus::Running);
    assert_eq!(store.sessions.events(session.id()).await.unwrap().len(), 3);
    store.queue.renew(&second.lease, LONG).await.unwrap();
}

pub async fn servers_take_no_more_sessions_than_their_capacity(store: &Store) {
    enqueue_many(store, 4).await;
    let req = request("r1", LONG, &[("a", 1), ("b", 2)]);
    let mut claims = Vec::new();
    for _ in 0..3 {
        claims.push(claim(store, &req).await.expect("room left"));
    }
    assert_eq!(claim(store, &req).await, None, "every server is full");
    let mut per_server: HashMap<&str, usize> = HashMap::new();
    for c in &claims {
        *per_server.entry(c.server.as_str()).or_default() += 1;
    }
    assert_eq!(per_server.get("a"), Some(&1));
    assert_eq!(per_server.get("b"), Some(&2));
    let depth = store.queue.depth().await.unwrap();
    assert_eq!(
        depth,
        QueueDepth {
            waiting: 1,
            leased: 3,
            expired: 0
        }
    );

    // Another replica sees the same counts.
    assert_eq!(
        claim(store, &request("r2", LONG, &[("a", 1), ("b", 2)])).await,
        None
    );

    let on_b = claims.iter().find(|c| c.server == "b").unwrap();
    let mut changes = ChangeSet::new();
    changes.queue(QueueOp::Remove {
        lease: on_b.lease.clone(),
    });
    commit(store, changes).await.expect("remove own lease");
    assert_eq!(store.queue.entry(on_b.lease.session).await.unwrap(), None);
    let freed = claim(store, &req).await.expect("b has room again");
    assert_eq!(freed.server, "b");
    assert_eq!(claim(store, &req).await, None);
}

pub async fn an_agent_runs_no_more_sessions_than_its_limit(store: &Store) {
    let mut agent = AgentFactory::new().build();
    agent.set_max_concurrency(1, now()).unwrap();
    let name = agent.name().as_str().to_owned();
    let mut changes = ChangeSet::new();
    changes.insert_agent(&agent);
    commit(store, changes).await.expect("agent");

    let first = enqueue(store, 0, Some(&name), now()).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = enqueue(store, 0, Some(&name), now()).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let free = enqueue(store, 0, None, now()).await;

    let req = request("r1", LONG, &[("a", 100)]);
    let c1 = claim(store, &req).await.expect("first of the agent");
    assert_eq!(c1.lease.session, first.id());
    let c2 = claim(store, &req).await.expect("a session without agent");
    assert_eq!(
        c2.lease.session,
        free.id(),
        "the agent is at its limit: its second session waits"
    );
    assert_eq!(claim(store, &req).await, None);
    assert_eq!(
        store.queue.entry(second.id()).await.unwrap().unwrap().owner,
        None
    );

    let mut changes = ChangeSet::new();
    changes.queue(QueueOp::Remove { lease: c1.lease });
    commit(store, changes).await.unwrap();
    let c3 = claim(store, &req).await.expect("the agent has room again");
    assert_eq!(c3.lease.session, second.id());
    assert_eq!(claim(store, &req).await, None);
}

pub async fn a_recovered_session_reattaches_on_its_listed_server(store: &Store) {
    let session = enqueue(store, 0, None, now()).await;
    let first = claim(store, &request("r1", SHORT, &[("b", 5)]))
        .await
        .unwrap();
    assert_eq!(first.server, "b");
    assert_eq!(first.remote, None);
    let remote = RemoteRef {
        server: "b".into(),
        session: "ses_0123abc".into(),
        directory: "/srv/work/repo/.oio/wt-1".into(),
        message_id: "msg_0456def".into(),
    };
    let deadline = now() + chrono::Duration::hours(1);
    let mut changes = ChangeSet::new();
    changes.queue(QueueOp::Attach {
        lease: first.lease.clone(),
        remote: remote.clone(),
        deadline: Some(deadline),
    });
    commit(store, changes).await.expect("attach");
    let entry = store.queue.entry(session.id()).await.unwrap().unwrap();
    assert_eq!(entry.remote.as_ref(), Some(&remote));
    assert_eq!(entry.deadline, Some(deadline));

    tokio::time::sleep(PAST_SHORT).await;
    // "a" is listed first and emptier, but the session stays where it runs.
    let second = claim(store, &request("r2", SHORT, &[("a", 5), ("b", 5)]))
        .await
        .expect("recovery");
    assert!(second.recovered);
    assert_eq!(second.server, "b");
    assert_eq!(second.remote, Some(remote.clone()));
    assert_eq!(second.deadline, Some(deadline));

    tokio::time::sleep(PAST_SHORT).await;
    // Its server is not reachable from this replica: it starts afresh elsewhere.
    let third = claim(store, &request("r3", LONG, &[("a", 5)]))
        .await
        .expect("recovery elsewhere");
    assert!(third.recovered);
    assert_eq!(third.server, "a");
    assert_eq!(third.remote, None);
    assert_eq!(third.lease.fence, 3);
    let entry = store.queue.entry(session.id()).await.unwrap().unwrap();
    assert_eq!(entry.server.as_deref(), Some("a"));
    assert_eq!(entry.remote, None);
}

pub async fn concurrent_claimers_take_every_session_exactly_once(store: &Store) {
    let mut changes = ChangeSet::new();
    let mut ids = BTreeSet::new();
    for _ in 0..40 {
        let mut session = SessionFactory::new().build();
        let created = session.created_event();
        let enqueued = session.enqueue(now()).unwrap();
        changes
            .insert_session(&session)
            .event(&created)
            .event(&enqueued)
            .queue(QueueOp::Enqueue {
                session: session.id(),
                priority: 0,
                agent: None,
                available_at: now(),
            });
        ids.insert(session.id());
    }
    commit(store, changes).await.expect("enqueue 40");

    let mut tasks = Vec::new();
    for n in 0..8 {
        let queue: Arc<dyn DispatchQueue> = store.queue.clone();
        tasks.push(tokio::spawn(async move {
            let req = request(&format!("r{n}"), LONG, &[("a", 1_000)]);
            let mut got = Vec::new();
            while let Some(c) = queue.claim(&req).await.expect("claim") {
                assert_eq!(c.lease.fence, 1);
                assert!(!c.recovered);
                got.push(c.lease.session);
            }
            got
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    let unique: BTreeSet<SessionId> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 40, "no session claimed twice");
    assert_eq!(unique, ids, "every session claimed");
    assert_eq!(
        store.queue.depth().await.unwrap(),
        QueueDepth {
            waiting: 0,
            leased: 40,
            expired: 0
        }
    );
}

pub async fn a_requeued_session_waits_for_its_backoff(store: &Store) {
    let session = enqueue(store, 0, None, now()).await;
    let req = request("r1", LONG, &[("a", 5)]);
    let first = claim(store, &req).await.unwrap();
    let available_at = now() + millis(1_000);
    let mut changes = ChangeSet::new();
    changes.queue(QueueOp::Requeue {
        lease: first.lease.clone(),
        available_at,
    });
    commit(store, changes).await.expect("requeue");

    let entry = store.queue.entry(session.id()).await.unwrap().unwrap();
    assert_eq!(entry.owner, None);
    assert_eq!(entry.server, None);
    assert_eq!(entry.lease_expires_at, None);
    assert_eq!(entry.fence, 1, "the fence stays");
    assert!(close_to(entry.available_at, available_at, 1));
    assert_eq!(
        store.queue.depth().await.unwrap(),
        QueueDepth {
            waiting: 1,
            leased: 0,
            expired: 0
        }
    );
    assert_fence_lost(store.queue.renew(&first.lease, LONG).await, &first.lease);
    assert_eq!(claim(store, &req).await, None, "still in backoff");
    assert!(Utc::now() < available_at, "the test ran too slowly");
    let due = store.queue.next_due().await.unwrap().expect("due");
    assert!(close_to(due, available_at, 1));

    let wait =
        (available_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100);
    tokio::time::sleep(wait).await;
    let second = claim(store, &req).await.expect("backoff over");
    assert_eq!(second.lease.session, session.id());
    assert_eq!(second.lease.fence, 2);
    assert!(!second.recovered);

    // RemoveWaiting refuses an owned row, and leaves it.
    let mut changes = ChangeSet::new();
    changes.queue(QueueOp::RemoveWaiting {
        session: session.id(),
    });
    match commit(store, changes).await {
        Err(RepositoryError::FenceLost { session: s, .. }) => assert_eq!(s, session.id()),
        other => panic!("expected FenceLost, got {other:?}"),
    }
    assert!(store.queue.entry(session.id()).await.unwrap().is_some());

    // ... and removes an unowned one.
    let waiting = enqueue(store, 0, None, now() + millis(60_000)).await;
    let mut changes = ChangeSet::new();
    changes.queue(QueueOp::RemoveWaiting {
        session: waiting.id(),
    });
    commit(store, changes).await.expect("remove waiting");
    assert_eq!(store.queue.entry(waiting.id()).await.unwrap(), None);
    assert!(!store.queue.request_cancel(waiting.id()).await.unwrap());
}

/// Waits up to 5 s for `want`, skipping other signals.
async fn wait_for(rx: &mut broadcast::Receiver<QueueSignal>, want: QueueSignal) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) | Ok(Err(RecvError::Closed)) => return false,
            Ok(Ok(signal)) if signal == want => return true,
            Ok(Ok(_)) => {}
            Ok(Err(RecvError::Lagged(_))) => {
                if want == QueueSignal::Changed {
                    return true;
                }
            }
        }
    }
}

pub async fn queue_changes_and_cancellations_are_signalled(store: &Store) {
    let mut rx = store.queue.signals();
    // PostgreSQL: give the listener time to connect, then forget what it said on connecting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    loop {
        match rx.try_recv() {
            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Closed) => panic!("signals closed"),
        }
    }

    let session = enqueue(store, 0, None, now()).await;
    assert!(
        wait_for(&mut rx, QueueSignal::Changed).await,
        "an enqueue is announced"
    );

    let c = claim(store, &request("r1", LONG, &[("a", 1)]))
        .await
        .unwrap();
    assert!(!c.cancel_requested);
    assert!(store.queue.request_cancel(session.id()).await.unwrap());
    assert!(
        wait_for(&mut rx, QueueSignal::Cancel(session.id())).await,
        "a cancellation is announced"
    );
    let renewal = store.queue.renew(&c.lease, LONG).await.unwrap();
    assert!(renewal.cancel_requested);
    assert!(
        store
            .queue
            .entry(session.id())
            .await
            .unwrap()
            .unwrap()
            .cancel_requested
    );
    let unknown = SessionId::from_uuid(Uuid::new_v4());
    assert!(!store.queue.request_cancel(unknown).await.unwrap());
}

pub async fn depth_counts_waiting_leased_and_expired_rows(store: &Store) {
    assert_eq!(store.queue.depth().await.unwrap(), QueueDepth::default());
    enqueue_many(store, 3).await;
    assert_eq!(
        store.queue.depth().await.unwrap(),
        QueueDepth {
            waiting: 3,
            leased: 0,
            expired: 0
        }
    );
    claim(store, &request("r1", SHORT, &[("a", 5)]))
        .await
        .unwrap();
    claim(store, &request("r1", LONG, &[("a", 5)]))
        .await
        .unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        store.queue.depth().await.unwrap(),
        QueueDepth {
            waiting: 1,
            leased: 1,
            expired: 1
        }
    );
    // Recovering the lapsed lease makes it leased again.
    let recovered = claim(store, &request("r2", LONG, &[("a", 5)]))
        .await
        .unwrap();
    assert!(recovered.recovered);
    assert_eq!(
        store.queue.depth().await.unwrap(),
        QueueDepth {
            waiting: 1,
            leased: 2,
            expired: 0
        }
    );
}
