//! `AgentRepository`: the registry, unique by name, versioned like every entity.

use domain::{AgentCapability, AgentName, ExecutionMetrics, SessionOutcome};
use server::ports::{ChangeSet, EntityKey, RepositoryError};
use server::storage::Store;

use super::seed_agents;
use crate::support::factories::{now, AgentFactory};

pub async fn agents_read_back_by_id_and_name_and_list_by_name(store: &Store) {
    let zed = AgentFactory::new().name("zed").build();
    let build = AgentFactory::new()
        .name("build")
        .capabilities(&[
            AgentCapability::Backend,
            AgentCapability::Frontend,
            AgentCapability::Docs,
        ])
        .build();
    seed_agents(store, &[&zed, &build]).await;
    assert_eq!(
        store.agents.get(zed.id()).await.unwrap(),
        Some(zed.clone().with_version(1))
    );
    let by_name = store
        .agents
        .get_by_name(&AgentName::new("build").unwrap())
        .await
        .unwrap()
        .expect("found by name");
    assert_eq!(by_name, build.clone().with_version(1));
    let names: Vec<String> = store
        .agents
        .list()
        .await
        .unwrap()
        .iter()
        .map(|a| a.name().as_str().to_owned())
        .collect();
    assert_eq!(names, ["build", "zed"]);
    assert!(store
        .agents
        .get_by_name(&AgentName::new("nobody").unwrap())
        .await
        .unwrap()
        .is_none());
}

pub async fn a_second_agent_with_a_taken_name_is_refused(store: &Store) {
    let first = AgentFactory::new().name("build").build();
    seed_agents(store, &[&first]).await;
    let second = AgentFactory::new().name("build").build();
    let mut changes = ChangeSet::new();
    changes.insert_agent(&second);
    let err = store.unit_of_work.commit(changes).await.unwrap_err();
    assert!(
        matches!(
            err,
            RepositoryError::Duplicate {
                entity: "agent",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(store.agents.get(second.id()).await.unwrap().is_none());
}

pub async fn performance_updates_are_versioned(store: &Store) {
    let agent = AgentFactory::new().build();
    seed_agents(store, &[&agent]).await;
    let read = store.agents.get(agent.id()).await.unwrap().unwrap();
    let metrics = ExecutionMetrics {
        tokens_input: 100,
        cost_micro_usd: 2_500,
        duration_ms: 4_000,
        ..ExecutionMetrics::default()
    };

    let mut winner = read.clone();
    winner.record_outcome(SessionOutcome::Completed, &metrics, now());
    let mut changes = ChangeSet::new();
    changes.update_agent(&winner);
    let committed = store.unit_of_work.commit(changes).await.unwrap();
    assert_eq!(committed.version_of(EntityKey::Agent(agent.id())), Some(2));

    let mut loser = read;
    loser.record_outcome(SessionOutcome::Failed, &metrics, now());
    let mut changes = ChangeSet::new();
    changes.update_agent(&loser);
    let err = store.unit_of_work.commit(changes).await.unwrap_err();
    assert!(
        matches!(
            err,
            RepositoryError::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err:?}"
    );

    let stored = store.agents.get(agent.id()).await.unwrap().unwrap();
    assert_eq!(stored.performance().sessions_completed, 1);
    assert_eq!(stored.performance().sessions_failed, 0);
    assert_eq!(stored.performance().total_cost_micro_usd, 2_500);
}

/// The recent (decayed) record, overall and per capability, round-trips whole.
pub async fn the_recent_track_record_round_trips(store: &Store) {
    let agent = AgentFactory::new().build();
    seed_agents(store, &[&agent]).await;
    let mut agent = store.agents.get(agent.id()).await.unwrap().unwrap();
    let needed: std::collections::BTreeSet<AgentCapability> =
        [AgentCapability::Backend, AgentCapability::Security].into();
    for (i, outcome) in [
        SessionOutcome::Completed,
        SessionOutcome::Failed,
        SessionOutcome::Completed,
    ]
    .into_iter()
    .enumerate()
    {
        let metrics = ExecutionMetrics {
            duration_ms: 1_000 * (i as u64 + 1),
            cost_micro_usd: 10,
            ..ExecutionMetrics::default()
        };
        agent.record_outcome_for(outcome, &metrics, &needed, now());
    }
    let mut changes = ChangeSet::new();
    changes.update_agent(&agent);
    store.unit_of_work.commit(changes).await.unwrap();

    let stored = store.agents.get(agent.id()).await.unwrap().unwrap();
    assert_eq!(stored.recent(), agent.recent());
    let security = &stored.recent().by_capability[&AgentCapability::Security];
    assert_eq!(security.recent_durations_ms, [1_000, 2_000, 3_000]);
    assert!(security.success_rate().unwrap() > 0.6);
}
