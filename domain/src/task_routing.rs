//! Capability routing: which agent should take a task that needs some capabilities.
//!
//! Every candidate gets a score in `0.0..=1.0` from four parts, each in `0.0..=1.0`:
//!
//! - **fit** — the agent offers every required capability (otherwise it is not eligible at all);
//!   among those that do, specialists score higher: `required / offered` (a task needing nothing in
//!   particular gives every agent 1.0).
//! - **performance** — the measured track record, recent sessions first (the decayed record of
//!   [`crate::performance`], per required capability once each has one; the lifetime counters for
//!   agents without one): the success rate with a uniform prior
//!   (`(completed + 1) / (finished + 2)`, so an agent with no history scores 0.5 rather than 0 or 1),
//!   times a speed factor that falls as the mean duration grows (`1 / (1 + mean minutes / 10)`).
//! - **load** — free share of its concurrency: `1 - running / max_concurrency`.
//! - **cost** — `1 / (1 + mean USD per session)`; 0.5 before any session finished.
//!
//! The total is the weighted mean of the parts. The highest total wins; ties go to the lower load,
//! then to the name (so the choice is deterministic). The decision keeps every candidate's parts, so
//! the choice can be explained and shown.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::agent::{Agent, AgentCapability, AgentPerformanceMetrics};
use crate::performance::DecayedStats;

/// How much each part counts. Need not sum to 1: the total is normalised by their sum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutingWeights {
    /// Weight of capability fit.
    pub fit: f64,
    /// Weight of the measured track record.
    pub performance: f64,
    /// Weight of free capacity.
    pub load: f64,
    /// Weight of cheapness.
    pub cost: f64,
}

impl Default for RoutingWeights {
    fn default() -> Self {
        Self {
            fit: 0.3,
            performance: 0.4,
            load: 0.2,
            cost: 0.1,
        }
    }
}

/// An agent that could take the task, with the sessions it runs right now.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// The agent.
    pub agent: &'a Agent,
    /// Sessions it is running now.
    pub running: u32,
}

/// One candidate's score and its parts, each in `0.0..=1.0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentScore {
    /// The agent's name.
    pub agent: String,
    /// Whether it offers every required capability; an ineligible agent's total is 0.
    pub eligible: bool,
    /// Required capabilities it lacks.
    pub missing: Vec<AgentCapability>,
    /// Capability fit.
    pub fit: f64,
    /// Track record.
    pub performance: f64,
    /// Free capacity.
    pub load: f64,
    /// Cheapness.
    pub cost: f64,
    /// The weighted total.
    pub total: f64,
}

/// The chosen agent and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutingDecision {
    /// The winner's name.
    pub chosen: String,
    /// What was required.
    pub required: Vec<AgentCapability>,
    /// Every candidate, best first (ineligible ones last).
    pub scores: Vec<AgentScore>,
}

impl RoutingDecision {
    /// The winner's score.
    pub fn winner(&self) -> &AgentScore {
        &self.scores[0]
    }
}

impl fmt::Display for RoutingDecision {
    /// One line per candidate, e.g. for a task's routing explanation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let required: Vec<&str> = self.required.iter().map(|c| c.as_str()).collect();
        writeln!(f, "chose {} for [{}]", self.chosen, required.join(", "))?;
        for s in &self.scores {
            if s.eligible {
                writeln!(
                    f,
                    "  {:<20} total {:.3} = fit {:.2} · perf {:.2} · load {:.2} · cost {:.2}",
                    s.agent, s.total, s.fit, s.performance, s.load, s.cost
                )?;
            } else {
                let missing: Vec<&str> = s.missing.iter().map(|c| c.as_str()).collect();
                writeln!(
                    f,
                    "  {:<20} not eligible: lacks {}",
                    s.agent,
                    missing.join(", ")
                )?;
            }
        }
        Ok(())
    }
}

/// No agent can take the task.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum RoutingError {
    /// There are no agents at all.
    #[error("no agents are registered")]
    NoAgents,
    /// Nobody offers every required capability.
    #[error("no agent offers all of [{}]; closest: {}", names(required), closest)]
    NoCapableAgent {
        /// What was required.
        required: Vec<AgentCapability>,
        /// The candidate lacking the fewest capabilities, and what it lacks.
        closest: String,
        /// Every candidate's score (all ineligible).
        scores: Vec<AgentScore>,
    },
}

fn names(capabilities: &[AgentCapability]) -> String {
    capabilities
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The track-record part of the score; see the module docs.
pub fn performance_score(metrics: &AgentPerformanceMetrics) -> f64 {
    let finished = metrics.finished_sessions();
    let success = (metrics.sessions_completed as f64 + 1.0) / (finished as f64 + 2.0);
    let speed = match finished {
        0 => 1.0,
        n => {
            let mean_minutes = metrics.total_duration_ms as f64 / n as f64 / 60_000.0;
            1.0 / (1.0 + mean_minutes / 10.0)
        }
    };
    (success * speed).clamp(0.0, 1.0)
}

/// The track-record part from the recent, decayed record (same formula, decayed counts).
pub fn recent_performance_score(stats: &DecayedStats) -> f64 {
    let weight = stats.weight();
    let completed = stats.completed_milli as f64 / 1000.0;
    let success = (completed + 1.0) / (weight + 2.0);
    let speed = stats
        .mean_duration_ms()
        .map_or(1.0, |ms| 1.0 / (1.0 + ms / 60_000.0 / 10.0));
    (success * speed).clamp(0.0, 1.0)
}

/// The performance and cost parts for `required`: from the recent record (for those
/// capabilities when each has one) once the agent has finished a session with decay, else from the
/// lifetime counters.
fn track_record(agent: &Agent, required: &BTreeSet<AgentCapability>) -> (f64, f64) {
    let recent = agent.recent().for_capabilities(required);
    if recent.weight_milli == 0 {
        return (
            performance_score(agent.performance()),
            cost_score(agent.performance()),
        );
    }
    let cost = recent.mean_cost_usd().map_or(0.5, |usd| 1.0 / (1.0 + usd));
    (recent_performance_score(&recent), cost)
}

/// The cost part of the score; see the module docs.
pub fn cost_score(metrics: &AgentPerformanceMetrics) -> f64 {
    match metrics.finished_sessions() {
        0 => 0.5,
        n => {
            let mean_usd = metrics.total_cost_micro_usd as f64 / n as f64 / 1_000_000.0;
            1.0 / (1.0 + mean_usd)
        }
    }
}

/// Scores one candidate for `required`.
pub fn score(
    candidate: &Candidate<'_>,
    required: &BTreeSet<AgentCapability>,
    weights: &RoutingWeights,
) -> AgentScore {
    let agent = candidate.agent;
    let missing: Vec<AgentCapability> =
        required.difference(agent.capabilities()).copied().collect();
    let offered = agent.capabilities().len().max(1) as f64;
    let fit = if required.is_empty() {
        1.0
    } else {
        (required.len() as f64 / offered).min(1.0)
    };
    let capacity = f64::from(agent.max_concurrency().max(1));
    let load = (1.0 - f64::from(candidate.running) / capacity).clamp(0.0, 1.0);
    let (performance, cost) = track_record(agent, required);
    let eligible = missing.is_empty();
    let weight_sum = weights.fit + weights.performance + weights.load + weights.cost;
    let total = if !eligible || weight_sum <= 0.0 {
        0.0
    } else {
        (weights.fit * fit
            + weights.performance * performance
            + weights.load * load
            + weights.cost * cost)
            / weight_sum
    };
    AgentScore {
        agent: agent.name().as_str().to_owned(),
        eligible,
        missing,
        fit,
        performance,
        load,
        cost,
        total,
    }
}

/// Picks the best agent for `required` among `candidates`; see the module docs.
pub fn route(
    required: &BTreeSet<AgentCapability>,
    candidates: &[Candidate<'_>],
    weights: &RoutingWeights,
) -> Result<RoutingDecision, RoutingError> {
    if candidates.is_empty() {
        return Err(RoutingError::NoAgents);
    }
    let mut scores: Vec<AgentScore> = candidates
        .iter()
        .map(|c| score(c, required, weights))
        .collect();
    scores.sort_by(|a, b| {
        b.eligible
            .cmp(&a.eligible)
            .then(b.total.total_cmp(&a.total))
            .then(a.missing.len().cmp(&b.missing.len()))
            .then(b.load.total_cmp(&a.load))
            .then(a.agent.cmp(&b.agent))
    });
    let required: Vec<AgentCapability> = required.iter().copied().collect();
    if !scores[0].eligible {
        let closest = &scores[0];
        return Err(RoutingError::NoCapableAgent {
            closest: format!("{} (lacks {})", closest.agent, names(&closest.missing)),
            required,
            scores,
        });
    }
    Ok(RoutingDecision {
        chosen: scores[0].agent.clone(),
        required,
        scores,
    })
}
