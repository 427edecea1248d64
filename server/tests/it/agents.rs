//! The agent registry through the application layer: validation naming the field, unique names,
//! optimistic locking on updates, listing by name.

use std::time::Duration;

use server::application::{AgentService, AgentServiceError, RegisterAgent, UpdateAgent};
use server::storage::{PoolSettings, Store};
use tempfile::TempDir;

use crate::support;

async fn service() -> (AgentService, Store, TempDir) {
    let (store, dir) = support::store::sqlite_with(PoolSettings {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
    })
    .await;
    (
        AgentService::new(store.agents.clone(), store.unit_of_work.clone()),
        store,
        dir,
    )
}

fn build() -> RegisterAgent {
    RegisterAgent {
        name: "build".into(),
        capabilities: vec!["backend".into(), "testing".into()],
        model: "fake/fake-coder".into(),
        max_concurrency: 2,
    }
}

fn field_of(result: Result<impl std::fmt::Debug, AgentServiceError>) -> &'static str {
    match result {
        Err(AgentServiceError::Invalid(e)) => e.field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_agent_is_registered_read_back_and_listed_by_name() {
    let (agents, _store, _dir) = service().await;
    let created = agents.register(build()).await.unwrap();
    assert_eq!(created.version(), 1);
    agents
        .register(RegisterAgent {
            name: "audit".into(),
            capabilities: vec!["security".into()],
            ..build()
        })
        .await
        .unwrap();
    let read = agents.get("build").await.unwrap();
    assert_eq!(read.model().to_string(), "fake/fake-coder");
    assert_eq!(read.capabilities().len(), 2);
    let names: Vec<String> = agents
        .list()
        .await
        .unwrap()
        .iter()
        .map(|a| a.name().to_string())
        .collect();
    assert_eq!(names, ["audit", "build"]);
    assert!(matches!(
        agents.get("missing").await,
        Err(AgentServiceError::NotFound(name)) if name == "missing"
    ));
}

#[tokio::test]
async fn bad_fields_are_refused_naming_the_field_and_nothing_is_stored() {
    let (agents, _store, _dir) = service().await;
    let bad_capability = RegisterAgent {
        capabilities: vec!["backend".into(), "wizardry".into()],
        ..build()
    };
    assert_eq!(
        field_of(agents.register(bad_capability).await),
        "capabilities"
    );
    let bad_model = RegisterAgent {
        model: "no-slash".into(),
        ..build()
    };
    assert_eq!(field_of(agents.register(bad_model).await), "model");
    let bad_name = RegisterAgent {
        name: "Not A Name".into(),
        ..build()
    };
    assert_eq!(field_of(agents.register(bad_name).await), "name");
    let bad_limit = RegisterAgent {
        max_concurrency: 0,
        ..build()
    };
    assert_eq!(
        field_of(agents.register(bad_limit).await),
        "max_concurrency"
    );
    assert!(
        agents.list().await.unwrap().is_empty(),
        "nothing was stored"
    );

    agents.register(build()).await.unwrap();
    assert_eq!(
        field_of(agents.register(build()).await),
        "name",
        "names are unique"
    );
}

#[tokio::test]
async fn updates_use_optimistic_locking_and_keep_what_they_do_not_name() {
    let (agents, _store, _dir) = service().await;
    agents.register(build()).await.unwrap();
    let updated = agents
        .update(
            "build",
            UpdateAgent {
                max_concurrency: Some(8),
                expected_version: Some(1),
                ..UpdateAgent::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.version(), 2);
    assert_eq!(updated.max_concurrency(), 8);
    assert_eq!(updated.capabilities().len(), 2, "capabilities untouched");

    let stale = agents
        .update(
            "build",
            UpdateAgent {
                model: Some("other/model".into()),
                expected_version: Some(1),
                ..UpdateAgent::default()
            },
        )
        .await;
    assert!(
        matches!(
            stale,
            Err(AgentServiceError::Conflict {
                expected: 1,
                actual: 2,
                ..
            })
        ),
        "{stale:?}"
    );
    assert_eq!(
        agents.get("build").await.unwrap().model().to_string(),
        "fake/fake-coder",
        "a refused update changes nothing"
    );
    let invalid = agents
        .update(
            "build",
            UpdateAgent {
                capabilities: Some(vec![]),
                ..UpdateAgent::default()
            },
        )
        .await;
    assert_eq!(field_of(invalid), "capabilities");
}
