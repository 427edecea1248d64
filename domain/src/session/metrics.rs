//! What running a session consumed: tokens, cost, time, files, retries.
//!
//! Costs are integers in millionths of a USD so that summing many sessions is exact; floats appear
//! only at the display edge (`cost_usd`).

use serde::{Deserialize, Serialize};

/// Cumulative consumption of one session. Only ever grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecutionMetrics {
    /// Prompt tokens sent to the model.
    pub tokens_input: u64,
    /// Tokens the model generated.
    pub tokens_output: u64,
    /// Tokens spent on reasoning.
    pub tokens_reasoning: u64,
    /// Prompt tokens served from the provider's cache.
    pub tokens_cache_read: u64,
    /// Prompt tokens written to the provider's cache.
    pub tokens_cache_write: u64,
    /// Cost in millionths of a USD.
    pub cost_micro_usd: u64,
    /// Wall-clock time spent executing, in milliseconds.
    pub duration_ms: u64,
    /// Distinct files the agent changed so far.
    pub files_changed: u32,
    /// Retries performed (session retries plus any the agent reports).
    pub retries: u32,
}

/// One report of additional consumption, as an agent sends it while a session runs.
///
/// Every field is an increment, except `files_changed`, which is the agent's running count of
/// distinct files (see [`ExecutionMetrics::absorb`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricsDelta {
    /// Additional prompt tokens.
    pub tokens_input: u64,
    /// Additional generated tokens.
    pub tokens_output: u64,
    /// Additional reasoning tokens.
    pub tokens_reasoning: u64,
    /// Additional cache-read tokens.
    pub tokens_cache_read: u64,
    /// Additional cache-write tokens.
    pub tokens_cache_write: u64,
    /// Additional cost in millionths of a USD.
    pub cost_micro_usd: u64,
    /// Additional execution time in milliseconds.
    pub duration_ms: u64,
    /// The agent's current count of distinct changed files (a running total, not an increment).
    pub files_changed: u32,
    /// Additional retries.
    pub retries: u32,
}

impl ExecutionMetrics {
    /// Every token the session accounted for, cached ones included (they are billed too).
    pub fn total_tokens(&self) -> u64 {
        self.tokens_input
            .saturating_add(self.tokens_output)
            .saturating_add(self.tokens_reasoning)
            .saturating_add(self.tokens_cache_read)
            .saturating_add(self.tokens_cache_write)
    }

    /// The cost in USD, for display only; sum `cost_micro_usd` instead.
    pub fn cost_usd(&self) -> f64 {
        self.cost_micro_usd as f64 / 1_000_000.0
    }

    /// Adds a report. Saturating, so a bogus huge report pins a counter at its maximum instead of
    /// wrapping it to a small number: metrics never decrease.
    ///
    /// `files_changed` takes the maximum rather than the sum: agents report how many distinct
    /// files they have touched so far, and adding those snapshots would count a file once per
    /// report. Taking the maximum also keeps the count monotonic if reports arrive out of order.
    pub fn absorb(&mut self, delta: &MetricsDelta) {
        self.tokens_input = self.tokens_input.saturating_add(delta.tokens_input);
        self.tokens_output = self.tokens_output.saturating_add(delta.tokens_output);
        self.tokens_reasoning = self.tokens_reasoning.saturating_add(delta.tokens_reasoning);
        self.tokens_cache_read = self
            .tokens_cache_read
            .saturating_add(delta.tokens_cache_read);
        self.tokens_cache_write = self
            .tokens_cache_write
            .saturating_add(delta.tokens_cache_write);
        self.cost_micro_usd = self.cost_micro_usd.saturating_add(delta.cost_micro_usd);
        self.duration_ms = self.duration_ms.saturating_add(delta.duration_ms);
        self.files_changed = self.files_changed.max(delta.files_changed);
        self.retries = self.retries.saturating_add(delta.retries);
    }

    /// Whether no field of `self` is below the same field of `earlier`.
    pub fn dominates(&self, earlier: &ExecutionMetrics) -> bool {
        self.tokens_input >= earlier.tokens_input
            && self.tokens_output >= earlier.tokens_output
            && self.tokens_reasoning >= earlier.tokens_reasoning
            && self.tokens_cache_read >= earlier.tokens_cache_read
            && self.tokens_cache_write >= earlier.tokens_cache_write
            && self.cost_micro_usd >= earlier.cost_micro_usd
            && self.duration_ms >= earlier.duration_ms
            && self.files_changed >= earlier.files_changed
            && self.retries >= earlier.retries
    }
}

impl MetricsDelta {
    /// Whether absorbing this report would change nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorb_adds_counters_and_keeps_the_largest_file_count() {
        let mut m = ExecutionMetrics::default();
        m.absorb(&MetricsDelta {
            tokens_input: 10,
            tokens_output: 5,
            cost_micro_usd: 1_500,
            files_changed: 3,
            ..MetricsDelta::default()
        });
        m.absorb(&MetricsDelta {
            tokens_input: 1,
            cost_micro_usd: 500,
            files_changed: 2,
            retries: 1,
            ..MetricsDelta::default()
        });
        assert_eq!(m.tokens_input, 11);
        assert_eq!(m.tokens_output, 5);
        assert_eq!(m.cost_micro_usd, 2_000);
        assert_eq!(m.files_changed, 3);
        assert_eq!(m.retries, 1);
    }

    #[test]
    fn absorb_saturates_instead_of_wrapping() {
        let mut m = ExecutionMetrics {
            tokens_input: u64::MAX - 1,
            ..ExecutionMetrics::default()
        };
        m.absorb(&MetricsDelta {
            tokens_input: 10,
            ..MetricsDelta::default()
        });
        assert_eq!(m.tokens_input, u64::MAX);
    }

    #[test]
    fn total_tokens_includes_cached_and_reasoning_tokens() {
        let m = ExecutionMetrics {
            tokens_input: 1,
            tokens_output: 2,
            tokens_reasoning: 4,
            tokens_cache_read: 8,
            tokens_cache_write: 16,
            ..ExecutionMetrics::default()
        };
        assert_eq!(m.total_tokens(), 31);
    }

    #[test]
    fn cost_usd_converts_micro_dollars() {
        let m = ExecutionMetrics {
            cost_micro_usd: 1_234_500,
            ..ExecutionMetrics::default()
        };
        assert!((m.cost_usd() - 1.2345).abs() < 1e-12);
    }

    #[test]
    fn metrics_missing_fields_deserialize_as_zero() {
        let m: ExecutionMetrics = serde_json::from_str(r#"{"tokens_input":7}"#).unwrap();
        assert_eq!(m.tokens_input, 7);
        assert_eq!(m.retries, 0);
    }
}
