//! Recent performance: an agent's track record with exponential decay, so that recent sessions
//! count more than old ones, overall and per capability.
//!
//! Each finished session multiplies every running sum by [`DECAY`] and then adds itself with a
//! weight of one. Sums are kept in thousandths (integers: the record stays exact, comparable and
//! storable), and the last [`RECENT_DURATIONS`] durations are kept for a p90.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::agent::AgentCapability;
use crate::session::{ExecutionMetrics, SessionOutcome};

/// How much the past keeps per new session: 0.9, a half-life of about 6.6 sessions.
pub const DECAY: (u64, u64) = (9, 10);
/// Durations kept for the p90.
pub const RECENT_DURATIONS: usize = 20;

const SCALE: u64 = 1000;

/// Decayed sums over finished sessions (thousandths).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecayedStats {
    /// Decayed number of sessions.
    pub weight_milli: u64,
    /// Decayed number of completed sessions.
    pub completed_milli: u64,
    /// Decayed sum of durations, ms.
    pub duration_ms_milli: u64,
    /// Decayed sum of tokens.
    pub tokens_milli: u64,
    /// Decayed sum of cost, millionths of a USD.
    pub cost_micro_usd_milli: u64,
    /// Decayed sum of retries.
    pub retries_milli: u64,
    /// The latest durations (ms), oldest first.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<u64>))]
    pub recent_durations_ms: VecDeque<u64>,
}

fn decayed(sum: u64, add: u64) -> u64 {
    (u128::from(sum) * u128::from(DECAY.0) / u128::from(DECAY.1))
        .saturating_add(u128::from(add).saturating_mul(u128::from(SCALE)))
        .min(u128::from(u64::MAX)) as u64
}

impl DecayedStats {
    /// Adds one finished session.
    pub fn record(&mut self, outcome: SessionOutcome, metrics: &ExecutionMetrics) {
        self.weight_milli = decayed(self.weight_milli, 1);
        self.completed_milli = decayed(
            self.completed_milli,
            u64::from(outcome == SessionOutcome::Completed),
        );
        self.duration_ms_milli = decayed(self.duration_ms_milli, metrics.duration_ms);
        self.tokens_milli = decayed(self.tokens_milli, metrics.total_tokens());
        self.cost_micro_usd_milli = decayed(self.cost_micro_usd_milli, metrics.cost_micro_usd);
        self.retries_milli = decayed(self.retries_milli, u64::from(metrics.retries));
        self.recent_durations_ms.push_back(metrics.duration_ms);
        while self.recent_durations_ms.len() > RECENT_DURATIONS {
            self.recent_durations_ms.pop_front();
        }
    }

    /// The decayed number of sessions behind these figures.
    pub fn weight(&self) -> f64 {
        self.weight_milli as f64 / SCALE as f64
    }

    fn mean(&self, sum_milli: u64) -> Option<f64> {
        (self.weight_milli > 0).then(|| sum_milli as f64 / self.weight_milli as f64)
    }

    /// Recent success rate, `None` before any session.
    pub fn success_rate(&self) -> Option<f64> {
        self.mean(self.completed_milli)
    }

    /// Recent mean duration, ms.
    pub fn mean_duration_ms(&self) -> Option<f64> {
        self.mean(self.duration_ms_milli)
    }

    /// Recent mean tokens per session.
    pub fn mean_tokens(&self) -> Option<f64> {
        self.mean(self.tokens_milli)
    }

    /// Recent mean cost per session, USD.
    pub fn mean_cost_usd(&self) -> Option<f64> {
        self.mean(self.cost_micro_usd_milli)
            .map(|c| c / 1_000_000.0)
    }

    /// Recent mean retries per session.
    pub fn mean_retries(&self) -> Option<f64> {
        self.mean(self.retries_milli)
    }

    /// The 90th percentile of the latest durations (nearest rank), ms.
    pub fn p90_duration_ms(&self) -> Option<u64> {
        if self.recent_durations_ms.is_empty() {
            return None;
        }
        let mut sorted: Vec<u64> = self.recent_durations_ms.iter().copied().collect();
        sorted.sort_unstable();
        let rank = (sorted.len() * 9).div_ceil(10);
        Some(sorted[rank.max(1) - 1])
    }
}

/// An agent's recent performance: overall, and for each capability its sessions needed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecentPerformance {
    /// Every finished session.
    pub overall: DecayedStats,
    /// Sessions whose task required the capability.
    pub by_capability: BTreeMap<AgentCapability, DecayedStats>,
}

impl RecentPerformance {
    /// Adds one finished session that needed `capabilities` (empty for a session without a task).
    pub fn record(
        &mut self,
        outcome: SessionOutcome,
        metrics: &ExecutionMetrics,
        capabilities: &BTreeSet<AgentCapability>,
    ) {
        self.overall.record(outcome, metrics);
        for capability in capabilities {
            self.by_capability
                .entry(*capability)
                .or_default()
                .record(outcome, metrics);
        }
    }

    /// The figures that speak for `required`: the capabilities' own records merged when every
    /// required capability has one, else the overall record.
    pub fn for_capabilities(&self, required: &BTreeSet<AgentCapability>) -> DecayedStats {
        let own: Vec<&DecayedStats> = required
            .iter()
            .filter_map(|c| self.by_capability.get(c))
            .collect();
        if required.is_empty() || own.len() < required.len() {
            return self.overall.clone();
        }
        // The weakest capability speaks for the task: the one with the lowest success rate.
        own.into_iter()
            .min_by(|a, b| {
                let rate = |s: &DecayedStats| s.success_rate().unwrap_or(0.5);
                rate(a).total_cmp(&rate(b))
            })
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(duration_ms: u64) -> ExecutionMetrics {
        ExecutionMetrics {
            duration_ms,
            ..ExecutionMetrics::default()
        }
    }

    #[test]
    fn recent_results_count_more_than_old_ones() {
        let mut early_failures = DecayedStats::default();
        let mut late_failures = DecayedStats::default();
        for i in 0..20 {
            let (a, b) = if i < 10 {
                (SessionOutcome::Failed, SessionOutcome::Completed)
            } else {
                (SessionOutcome::Completed, SessionOutcome::Failed)
            };
            early_failures.record(a, &metrics(1_000));
            late_failures.record(b, &metrics(1_000));
        }
        // Same lifetime record (10 of 20), different recent ones.
        let early = early_failures.success_rate().unwrap();
        let late = late_failures.success_rate().unwrap();
        assert!(early > 0.6 && late < 0.4, "{early} vs {late}");
    }

    #[test]
    fn p90_and_means_over_the_recent_window() {
        let mut stats = DecayedStats::default();
        assert_eq!(stats.p90_duration_ms(), None);
        assert_eq!(stats.success_rate(), None);
        for d in 1..=30u64 {
            stats.record(SessionOutcome::Completed, &metrics(d * 100));
        }
        assert_eq!(stats.recent_durations_ms.len(), RECENT_DURATIONS);
        // The window holds 1100..=3000; nearest-rank p90 of 20 values is the 18th.
        assert_eq!(stats.p90_duration_ms(), Some(2800));
        assert!((stats.success_rate().unwrap() - 1.0).abs() < 1e-9);
        let mean = stats.mean_duration_ms().unwrap();
        assert!(
            mean > 2000.0 && mean < 3000.0,
            "recent-weighted mean {mean}"
        );
    }

    #[test]
    fn a_task_is_judged_by_its_weakest_required_capability_once_each_has_a_record() {
        let mut recent = RecentPerformance::default();
        let backend: BTreeSet<_> = [AgentCapability::Backend].into();
        let both: BTreeSet<_> = [AgentCapability::Backend, AgentCapability::Security].into();
        recent.record(SessionOutcome::Completed, &metrics(10), &backend);
        // Security has no record yet: the overall record speaks.
        assert_eq!(recent.for_capabilities(&both), recent.overall);
        recent.record(SessionOutcome::Failed, &metrics(10), &both);
        let judged = recent.for_capabilities(&both);
        assert_eq!(judged, recent.by_capability[&AgentCapability::Security]);
        assert_eq!(judged.success_rate(), Some(0.0));
    }
}
