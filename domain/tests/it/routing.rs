//! Capability routing: properties over random fleets, and the cases operators meet.

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use domain::task_routing::{
    performance_score, route, score, Candidate, RoutingError, RoutingWeights,
};
use domain::{Agent, AgentCapability, AgentId, AgentPerformanceMetrics, AgentRecord};
use proptest::prelude::*;
use uuid::Uuid;

fn agent(
    name: &str,
    capabilities: &[AgentCapability],
    max_concurrency: u32,
    performance: AgentPerformanceMetrics,
) -> Agent {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    Agent::rehydrate(AgentRecord {
        id: AgentId::from_uuid(Uuid::from_u128(name.len() as u128 + 1)),
        name: name.into(),
        capabilities: capabilities.iter().copied().collect(),
        model: "fake/fake-coder".into(),
        max_concurrency,
        performance,
        recent: Default::default(),
        created_at: at,
        updated_at: at,
        version: 1,
    })
    .unwrap()
}

fn record(
    completed: u64,
    failed: u64,
    mean_ms: u64,
    mean_micro_usd: u64,
) -> AgentPerformanceMetrics {
    let n = completed + failed;
    AgentPerformanceMetrics {
        sessions_completed: completed,
        sessions_failed: failed,
        total_duration_ms: mean_ms * n,
        total_cost_micro_usd: mean_micro_usd * n,
        ..AgentPerformanceMetrics::default()
    }
}

fn caps(bits: u8) -> Vec<AgentCapability> {
    AgentCapability::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, c)| c)
        .collect()
}

fn arb_metrics() -> impl Strategy<Value = AgentPerformanceMetrics> {
    (0u64..200, 0u64..200, 0u64..3_600_000, 0u64..5_000_000)
        .prop_map(|(c, f, d, usd)| record(c, f, d, usd))
}

proptest! {
    #[test]
    fn the_chosen_agent_never_lacks_a_required_capability(
        fleet in prop::collection::vec((1u8..=255, 1u32..8, 0u32..8, arb_metrics()), 1..8),
        required_bits in 0u8..=255,
    ) {
        let agents: Vec<Agent> = fleet
            .iter()
            .enumerate()
            .map(|(i, (bits, max, _, m))| agent(&format!("agent-{i}"), &caps(*bits), *max, *m))
            .collect();
        let candidates: Vec<Candidate> = agents
            .iter()
            .zip(&fleet)
            .map(|(agent, (_, _, running, _))| Candidate { agent, running: *running })
            .collect();
        let required: BTreeSet<AgentCapability> = caps(required_bits).into_iter().collect();
        match route(&required, &candidates, &RoutingWeights::default()) {
            Ok(decision) => {
                let chosen = agents.iter().find(|a| a.name().as_str() == decision.chosen).unwrap();
                prop_assert!(chosen.has_capabilities(&required));
                let winner = decision.winner().total;
                for s in decision.scores.iter().filter(|s| s.eligible) {
                    prop_assert!(s.total <= winner);
                    prop_assert!((0.0..=1.0).contains(&s.total));
                }
            }
            Err(RoutingError::NoCapableAgent { .. }) => {
                prop_assert!(agents.iter().all(|a| !a.has_capabilities(&required)));
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn better_measured_performance_never_lowers_the_score(
        base in arb_metrics(),
        more_completed in 0u64..50,
        fewer_failed in 0u64..50,
        faster_ms in 0u64..600_000,
        cheaper in 0u64..1_000_000,
        running in 0u32..4,
    ) {
        let n = base.finished_sessions();
        let mean_ms = base.total_duration_ms.checked_div(n).unwrap_or(0);
        let mean_usd = base.total_cost_micro_usd.checked_div(n).unwrap_or(0);
        let completed = base.sessions_completed + more_completed;
        let failed = base.sessions_failed.saturating_sub(fewer_failed);
        // Same or better on every measure: more successes, fewer failures, faster, cheaper.
        let better = record(
            completed,
            failed,
            mean_ms.saturating_sub(faster_ms),
            mean_usd.saturating_sub(cheaper),
        );
        let worse = record(base.sessions_completed, base.sessions_failed, mean_ms, mean_usd);
        let required: BTreeSet<AgentCapability> = [AgentCapability::Backend].into();
        let a = agent("better", &[AgentCapability::Backend], 4, better);
        let b = agent("worse", &[AgentCapability::Backend], 4, worse);
        let weights = RoutingWeights::default();
        let sa = score(&Candidate { agent: &a, running }, &required, &weights);
        let sb = score(&Candidate { agent: &b, running }, &required, &weights);
        prop_assert!(sa.performance + 1e-12 >= sb.performance, "{sa:?} vs {sb:?}");
        prop_assert!(sa.total + 1e-12 >= sb.total, "{sa:?} vs {sb:?}");
    }
}

#[test]
fn a_new_agent_starts_in_the_middle_not_at_either_end() {
    let fresh = AgentPerformanceMetrics::default();
    assert!((performance_score(&fresh) - 0.5).abs() < 1e-9);
    // One success beats no history; one failure is worse than none.
    assert!(performance_score(&record(1, 0, 0, 0)) > 0.5);
    assert!(performance_score(&record(0, 1, 0, 0)) < 0.5);
}

#[test]
fn the_specialist_with_the_record_and_the_room_wins_and_the_choice_is_explained() {
    let required: BTreeSet<AgentCapability> =
        [AgentCapability::Backend, AgentCapability::Database].into();
    let generalist = agent(
        "generalist",
        &AgentCapability::ALL,
        4,
        record(20, 5, 300_000, 200_000),
    );
    let specialist = agent(
        "db-specialist",
        &[AgentCapability::Backend, AgentCapability::Database],
        4,
        record(20, 1, 240_000, 150_000),
    );
    let busy = agent(
        "busy-specialist",
        &[AgentCapability::Backend, AgentCapability::Database],
        2,
        record(20, 1, 240_000, 150_000),
    );
    let frontend = agent(
        "ui",
        &[AgentCapability::Frontend],
        4,
        record(50, 0, 60_000, 0),
    );
    let candidates = [
        Candidate {
            agent: &generalist,
            running: 0,
        },
        Candidate {
            agent: &specialist,
            running: 1,
        },
        Candidate {
            agent: &busy,
            running: 2,
        },
        Candidate {
            agent: &frontend,
            running: 0,
        },
    ];
    let decision = route(&required, &candidates, &RoutingWeights::default()).unwrap();
    assert_eq!(decision.chosen, "db-specialist");
    let order: Vec<&str> = decision.scores.iter().map(|s| s.agent.as_str()).collect();
    assert_eq!(order.last(), Some(&"ui"), "ineligible last: {order:?}");
    let text = decision.to_string();
    assert!(
        text.starts_with("chose db-specialist for [backend, database]"),
        "{text}"
    );
    assert!(
        text.contains("ui") && text.contains("not eligible: lacks backend, database"),
        "{text}"
    );
    assert!(text.contains("generalist"), "{text}");
}

#[test]
fn ties_are_broken_by_name_so_the_choice_is_stable() {
    let required: BTreeSet<AgentCapability> = [AgentCapability::Docs].into();
    let b = agent(
        "bravo",
        &[AgentCapability::Docs],
        2,
        AgentPerformanceMetrics::default(),
    );
    let a = agent(
        "alpha",
        &[AgentCapability::Docs],
        2,
        AgentPerformanceMetrics::default(),
    );
    for order in [[&a, &b], [&b, &a]] {
        let candidates: Vec<Candidate> = order
            .iter()
            .map(|agent| Candidate { agent, running: 0 })
            .collect();
        let decision = route(&required, &candidates, &RoutingWeights::default()).unwrap();
        assert_eq!(decision.chosen, "alpha");
    }
}

#[test]
fn no_capable_agent_is_a_clear_error_naming_the_closest() {
    let required: BTreeSet<AgentCapability> =
        [AgentCapability::Security, AgentCapability::Backend].into();
    let backend = agent(
        "api",
        &[AgentCapability::Backend],
        2,
        AgentPerformanceMetrics::default(),
    );
    let docs = agent(
        "writer",
        &[AgentCapability::Docs],
        2,
        AgentPerformanceMetrics::default(),
    );
    let candidates = [
        Candidate {
            agent: &docs,
            running: 0,
        },
        Candidate {
            agent: &backend,
            running: 0,
        },
    ];
    let error = route(&required, &candidates, &RoutingWeights::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no agent offers all of [backend, security]; closest: api (lacks security)"
    );
    assert_eq!(
        route(&required, &[], &RoutingWeights::default()).unwrap_err(),
        RoutingError::NoAgents
    );
}

#[test]
fn recent_results_outweigh_old_ones_in_routing() {
    use domain::{ExecutionMetrics, SessionOutcome};
    let required: BTreeSet<AgentCapability> = [AgentCapability::Backend].into();
    let mut improving = agent(
        "improving",
        &[AgentCapability::Backend],
        4,
        Default::default(),
    );
    let mut declining = agent(
        "declining",
        &[AgentCapability::Backend],
        4,
        Default::default(),
    );
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap();
    let metrics = ExecutionMetrics {
        duration_ms: 60_000,
        ..ExecutionMetrics::default()
    };
    for i in 0..20 {
        let (a, b) = if i < 10 {
            (SessionOutcome::Failed, SessionOutcome::Completed)
        } else {
            (SessionOutcome::Completed, SessionOutcome::Failed)
        };
        improving.record_outcome_for(a, &metrics, &required, at);
        declining.record_outcome_for(b, &metrics, &required, at);
    }
    // The same lifetime record: 10 of 20 each.
    assert_eq!(improving.performance(), declining.performance());
    let candidates = [
        Candidate {
            agent: &declining,
            running: 0,
        },
        Candidate {
            agent: &improving,
            running: 0,
        },
    ];
    let decision = route(&required, &candidates, &RoutingWeights::default()).unwrap();
    assert_eq!(decision.chosen, "improving", "{decision}");
}
