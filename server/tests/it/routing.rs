//! Task routing through the application layer, on SQLite and PostgreSQL: the decision and its
//! explanation are stored with the task, load comes from the dispatch queue, and a task nobody
//! can take is left untouched with an error naming the closest agent.

use std::time::Duration;

use domain::{AgentCapability, TaskStatus};
use server::application::{
    AgentService, CreateSessionRequest, RegisterAgent, SessionLifecycle, TaskRouter,
    TaskRoutingError,
};
use server::ports::{ChangeSet, ClaimRequest, ServerCapacity};
use server::storage::{PoolSettings, Store};
use support::factories::TaskFactory;

use crate::support;

const POOL: PoolSettings = PoolSettings {
    max_connections: 5,
    acquire_timeout: Duration::from_secs(10),
};

async fn routes_tasks_and_explains_the_choice(store: Store) {
    let agents = AgentService::new(store.agents.clone(), store.unit_of_work.clone());
    for (name, capabilities) in [
        ("api", vec!["backend", "database"]),
        (
            "full",
            vec![
                "backend", "frontend", "database", "security", "testing", "docs", "devops",
                "refactor",
            ],
        ),
        ("ui", vec!["frontend"]),
    ] {
        agents
            .register(RegisterAgent {
                name: name.into(),
                capabilities: capabilities.into_iter().map(String::from).collect(),
                model: "fake/fake-coder".into(),
                max_concurrency: 2,
            })
            .await
            .unwrap();
    }
    // "api" is busy: two of its sessions hold leases.
    let lifecycle = SessionLifecycle::new(
        store.sessions.clone(),
        store.unit_of_work.clone(),
        store.queue.clone(),
        1,
    );
    for i in 0..2 {
        lifecycle
            .create(CreateSessionRequest {
                title: format!("busy {i}"),
                prompt: "work".into(),
                workspace: "/srv/repo".into(),
                agent: Some("api".into()),
                ..CreateSessionRequest::default()
            })
            .await
            .unwrap();
        let request = ClaimRequest {
            owner: "r1".into(),
            lease_ttl: Duration::from_secs(60),
            servers: vec![ServerCapacity {
                server: "s".into(),
                capacity: 10,
            }],
        };
        assert!(store.queue.claim(&request).await.unwrap().is_some());
    }
    assert_eq!(store.queue.leased_by_agent().await.unwrap()["api"], 2);

    let schema = TaskFactory::new()
        .title("orders schema")
        .capabilities(&[AgentCapability::Backend, AgentCapability::Database])
        .build();
    let audit = TaskFactory::new()
        .title("threat model")
        .capabilities(&[AgentCapability::Security, AgentCapability::Frontend])
        .build();
    let mut changes = ChangeSet::new();
    changes.insert_task(&schema).insert_task(&audit);
    store.unit_of_work.commit(changes).await.unwrap();

    let router = TaskRouter::new(
        store.tasks.clone(),
        store.agents.clone(),
        store.queue.clone(),
        store.unit_of_work.clone(),
    );
    let routed = router.route(schema.id()).await.unwrap();
    let assignment = routed.assignment().unwrap();
    // The specialist wins on fit even though it is fully loaded (load 0.00 in its line).
    assert_eq!(assignment.agent, "api");
    assert!(assignment.score_milli > 0 && assignment.score_milli <= 1000);
    let stored = store.tasks.get(schema.id()).await.unwrap().unwrap();
    assert_eq!(
        stored.assignment(),
        Some(assignment),
        "stored with the task"
    );
    assert_eq!(stored.version(), 2);
    let text = &assignment.explanation;
    assert!(
        text.starts_with("chose api for [backend, database]"),
        "{text}"
    );
    assert!(text.contains("load 0.00"), "api's load is shown: {text}");
    assert!(
        text.contains("ui") && text.contains("not eligible: lacks backend, database"),
        "{text}"
    );

    // Only "full" has security and frontend.
    assert_eq!(
        router
            .route(audit.id())
            .await
            .unwrap()
            .assignment()
            .unwrap()
            .agent,
        "full"
    );

    // A task nobody can take: a clear error naming the closest agent, the task untouched.
    let orphan = TaskFactory::new()
        .title("mainframe port")
        .capabilities(&[AgentCapability::Security, AgentCapability::Database])
        .build();
    let mut changes = ChangeSet::new();
    changes.insert_task(&orphan);
    store.unit_of_work.commit(changes).await.unwrap();
    // "full" has both security and database: take database away first.
    agents
        .update(
            "full",
            server::application::UpdateAgent {
                capabilities: Some(vec!["frontend".into(), "security".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let error = router.route(orphan.id()).await.unwrap_err();
    assert!(
        matches!(error, TaskRoutingError::NoCandidate(_)),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("no agent offers all of [database, security]; closest: "),
        "{error}"
    );
    let untouched = store.tasks.get(orphan.id()).await.unwrap().unwrap();
    assert_eq!(untouched.assignment(), None);
    assert_eq!(untouched.version(), 1);
    assert_eq!(untouched.status(), TaskStatus::Pending);
}

#[tokio::test]
async fn sqlite_routes_tasks_and_explains_the_choice() {
    let (store, _dir) = support::store::sqlite_with(POOL).await;
    routes_tasks_and_explains_the_choice(store).await;
}

#[tokio::test]
async fn postgres_routes_tasks_and_explains_the_choice() {
    let Some((store, _db)) = support::store::postgres_with(POOL).await else {
        return;
    };
    routes_tasks_and_explains_the_choice(store).await;
}
