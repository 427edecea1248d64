//! Guardrails on a running session: spending budgets (tokens and cost, per session, per task tree
//! and per agent) and the runaway guard (steps, tool calls, wall time, the same tool call failing
//! again and again). Both end a session with a [`StopReason`]: a distinct, typed terminal reason
//! that is never retried automatically.
//!
//! Pure bookkeeping: callers feed in what the agent server reports and ask whether a limit is
//! passed; stopping the session is theirs to do.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::validation::ValidationError;

/// Spending caps. `None` is no cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Budget {
    /// Most tokens (input + output + reasoning + cache reads and writes).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Most cost, in millionths of a US dollar.
    #[serde(default)]
    pub max_cost_micro_usd: Option<u64>,
}

/// What has been spent (or is estimated to be).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Spend {
    /// Tokens of every kind.
    pub tokens: u64,
    /// Cost in millionths of a US dollar.
    pub cost_micro_usd: u64,
}

impl Spend {
    /// Both figures added, saturating.
    pub fn plus(self, other: Spend) -> Spend {
        Spend {
            tokens: self.tokens.saturating_add(other.tokens),
            cost_micro_usd: self.cost_micro_usd.saturating_add(other.cost_micro_usd),
        }
    }
}

/// Whose budget a breach is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BudgetScope {
    /// The session's own (all its attempts).
    Session,
    /// The task tree the session works in (all its sessions).
    TaskTree,
    /// The agent running the session (its sessions within the budget window).
    Agent,
}

impl BudgetScope {
    /// The stable wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::TaskTree => "task_tree",
            Self::Agent => "agent",
        }
    }
}

/// Which figure a budget caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BudgetMetric {
    /// Tokens.
    Tokens,
    /// Cost in millionths of a US dollar.
    CostMicroUsd,
}

impl Budget {
    /// No caps at all.
    pub const UNLIMITED: Budget = Budget {
        max_tokens: None,
        max_cost_micro_usd: None,
    };

    /// Whether neither figure is capped.
    pub fn is_unlimited(&self) -> bool {
        self.max_tokens.is_none() && self.max_cost_micro_usd.is_none()
    }

    /// Refuses a zero cap (it would stop every session before its first token), naming the
    /// caller's field for each figure.
    pub fn validate(
        self,
        tokens_field: &'static str,
        cost_field: &'static str,
    ) -> Result<Self, ValidationError> {
        if self.max_tokens == Some(0) {
            return Err(ValidationError::new(
                tokens_field,
                "must be at least 1 (leave it out for no cap)",
            ));
        }
        if self.max_cost_micro_usd == Some(0) {
            return Err(ValidationError::new(
                cost_field,
                "must be above 0 (leave it out for no cap)",
            ));
        }
        Ok(self)
    }

    /// The breach `spent` makes of this budget, if any: a figure strictly above its cap (a cap
    /// reached exactly is still within budget). Tokens are checked before cost.
    pub fn breach(&self, scope: BudgetScope, spent: Spend) -> Option<StopReason> {
        if let Some(limit) = self.max_tokens.filter(|limit| spent.tokens > *limit) {
            return Some(StopReason::BudgetExceeded {
                scope,
                metric: BudgetMetric::Tokens,
                used: spent.tokens,
                limit,
            });
        }
        self.max_cost_micro_usd
            .filter(|limit| spent.cost_micro_usd > *limit)
            .map(|limit| StopReason::BudgetExceeded {
                scope,
                metric: BudgetMetric::CostMicroUsd,
                used: spent.cost_micro_usd,
                limit,
            })
    }

    /// Whether an estimate fits: what a task tree checks before it fans out.
    pub fn admits(&self, estimate: Spend) -> bool {
        self.breach(BudgetScope::TaskTree, estimate).is_none()
    }

    /// The tighter of two budgets, cap by cap.
    pub fn min(self, other: Budget) -> Budget {
        fn tighter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        Budget {
            max_tokens: tighter(self.max_tokens, other.max_tokens),
            max_cost_micro_usd: tighter(self.max_cost_micro_usd, other.max_cost_micro_usd),
        }
    }
}

/// Limits on how much a session may do in one attempt. `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunawayLimits {
    /// Most model steps (one step: one model call and the tools it asked for).
    #[serde(default)]
    pub max_steps: Option<u32>,
    /// Most tool calls.
    #[serde(default)]
    pub max_tool_calls: Option<u32>,
    /// Longest an attempt may run, in seconds.
    #[serde(default)]
    pub max_wall_time_secs: Option<u64>,
    /// How many times the same tool call (same tool, same input) may fail before the session
    /// counts as stuck.
    #[serde(default)]
    pub max_repeated_failures: Option<u32>,
}

/// Why a guardrail stopped a session: its distinct terminal reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum StopReason {
    /// A budget was passed.
    BudgetExceeded {
        /// Whose budget.
        scope: BudgetScope,
        /// Which figure.
        metric: BudgetMetric,
        /// What had been spent when the breach was seen.
        used: u64,
        /// The cap.
        limit: u64,
    },
    /// More model steps than allowed.
    StepLimit {
        /// Steps seen.
        steps: u32,
        /// The limit.
        limit: u32,
    },
    /// More tool calls than allowed.
    ToolCallLimit {
        /// Tool calls seen.
        calls: u32,
        /// The limit.
        limit: u32,
    },
    /// The attempt ran longer than allowed.
    WallTime {
        /// Seconds it had run.
        elapsed_secs: u64,
        /// The limit in seconds.
        limit_secs: u64,
    },
    /// The same tool call failed again and again.
    RepeatedToolFailure {
        /// The tool.
        tool: String,
        /// How many times it failed with the same input.
        times: u32,
        /// Its last error, shortened.
        error: String,
    },
}

impl StopReason {
    /// The stable code (`budget_exceeded`, `step_limit`, `tool_call_limit`, `wall_time`,
    /// `repeated_tool_failure`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::StepLimit { .. } => "step_limit",
            Self::ToolCallLimit { .. } => "tool_call_limit",
            Self::WallTime { .. } => "wall_time",
            Self::RepeatedToolFailure { .. } => "repeated_tool_failure",
        }
    }

    /// Whether a budget stopped the session (as opposed to the runaway guard).
    pub fn is_budget(&self) -> bool {
        matches!(self, Self::BudgetExceeded { .. })
    }
}

/// `1234567` micro-USD as `$1.234567`.
fn dollars(micro: u64) -> String {
    format!("${}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BudgetExceeded {
                scope,
                metric,
                used,
                limit,
            } => {
                let (used, limit) = match metric {
                    BudgetMetric::Tokens => (format!("{used} tokens"), format!("{limit} tokens")),
                    BudgetMetric::CostMicroUsd => (dollars(*used), dollars(*limit)),
                };
                write!(
                    f,
                    "budget exceeded: {} spent {used}, over its cap of {limit}",
                    match scope {
                        BudgetScope::Session => "the session",
                        BudgetScope::TaskTree => "the task tree",
                        BudgetScope::Agent => "the agent",
                    }
                )
            }
            Self::StepLimit { steps, limit } => {
                write!(f, "runaway: {steps} model steps, over the limit of {limit}")
            }
            Self::ToolCallLimit { calls, limit } => {
                write!(f, "runaway: {calls} tool calls, over the limit of {limit}")
            }
            Self::WallTime {
                elapsed_secs,
                limit_secs,
            } => write!(
                f,
                "runaway: ran {elapsed_secs} s, over the wall-time limit of {limit_secs} s"
            ),
            Self::RepeatedToolFailure { tool, times, error } => write!(
                f,
                "runaway: tool `{tool}` failed {times} times with the same input (last error: {error})"
            ),
        }
    }
}

/// Longest tool error kept in a [`StopReason::RepeatedToolFailure`], in characters.
const ERROR_CHARS: usize = 200;

/// Counts what one attempt did and says when a [`RunawayLimits`] is passed. Feed it every tool
/// call and step as the agent server reports them; repeated reports of the same call or step
/// (events repeat after reconnects) count once.
#[derive(Clone, Debug, Default)]
pub struct RunawayGuard {
    limits: RunawayLimits,
    steps: BTreeMap<String, ()>,
    tool_calls: BTreeMap<String, ()>,
    failed_calls: BTreeMap<String, ()>,
    /// Failures per (tool, input).
    failures: BTreeMap<(String, String), u32>,
}

impl RunawayGuard {
    /// A guard with nothing counted yet.
    pub fn new(limits: RunawayLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> RunawayLimits {
        self.limits
    }

    /// Steps counted so far.
    pub fn steps(&self) -> u32 {
        u32::try_from(self.steps.len()).unwrap_or(u32::MAX)
    }

    /// Tool calls counted so far.
    pub fn tool_calls(&self) -> u32 {
        u32::try_from(self.tool_calls.len()).unwrap_or(u32::MAX)
    }

    /// A finished model step, by its part id.
    pub fn step(&mut self, step_id: &str) -> Option<StopReason> {
        self.steps.insert(step_id.to_owned(), ());
        let limit = self.limits.max_steps?;
        (self.steps() > limit).then(|| StopReason::StepLimit {
            steps: self.steps(),
            limit,
        })
    }

    /// A tool call seen (in any state), by its call id.
    pub fn tool_call(&mut self, call_id: &str) -> Option<StopReason> {
        self.tool_calls.insert(call_id.to_owned(), ());
        let limit = self.limits.max_tool_calls?;
        (self.tool_calls() > limit).then(|| StopReason::ToolCallLimit {
            calls: self.tool_calls(),
            limit,
        })
    }

    /// A tool call that failed: `input` is its arguments in a canonical form (e.g. JSON with
    /// sorted keys), so "the same call" means same tool and same input.
    pub fn tool_failed(
        &mut self,
        call_id: &str,
        tool: &str,
        input: &str,
        error: &str,
    ) -> Option<StopReason> {
        if self.failed_calls.insert(call_id.to_owned(), ()).is_some() {
            return None;
        }
        let times = self
            .failures
            .entry((tool.to_owned(), input.to_owned()))
            .or_insert(0);
        *times += 1;
        let limit = self.limits.max_repeated_failures?;
        (*times >= limit).then(|| StopReason::RepeatedToolFailure {
            tool: tool.to_owned(),
            times: *times,
            error: error.chars().take(ERROR_CHARS).collect(),
        })
    }

    /// The wall-time check: `elapsed_secs` since the attempt started.
    pub fn elapsed(&self, elapsed_secs: u64) -> Option<StopReason> {
        let limit = self.limits.max_wall_time_secs?;
        (elapsed_secs > limit).then_some(StopReason::WallTime {
            elapsed_secs,
            limit_secs: limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(tokens: u64, cost: u64) -> Spend {
        Spend {
            tokens,
            cost_micro_usd: cost,
        }
    }

    #[test]
    fn a_budget_is_breached_only_strictly_above_its_cap_tokens_first() {
        let budget = Budget {
            max_tokens: Some(100),
            max_cost_micro_usd: Some(5_000),
        };
        assert_eq!(budget.breach(BudgetScope::Session, spend(100, 5_000)), None);
        assert_eq!(
            budget.breach(BudgetScope::Session, spend(101, 9_000)),
            Some(StopReason::BudgetExceeded {
                scope: BudgetScope::Session,
                metric: BudgetMetric::Tokens,
                used: 101,
                limit: 100
            })
        );
        assert_eq!(
            budget.breach(BudgetScope::Agent, spend(10, 5_001)),
            Some(StopReason::BudgetExceeded {
                scope: BudgetScope::Agent,
                metric: BudgetMetric::CostMicroUsd,
                used: 5_001,
                limit: 5_000
            })
        );
        assert_eq!(
            Budget::UNLIMITED.breach(BudgetScope::Session, spend(u64::MAX, u64::MAX)),
            None
        );
    }

    #[test]
    fn zero_caps_are_refused_naming_the_field() {
        let error = Budget {
            max_tokens: Some(0),
            max_cost_micro_usd: None,
        }
        .validate("max_tokens", "max_cost_usd")
        .unwrap_err();
        assert_eq!(error.field, "max_tokens");
        assert!(Budget::UNLIMITED
            .validate("max_tokens", "max_cost_usd")
            .is_ok());
    }

    #[test]
    fn the_tighter_budget_wins_cap_by_cap() {
        let a = Budget {
            max_tokens: Some(100),
            max_cost_micro_usd: None,
        };
        let b = Budget {
            max_tokens: Some(50),
            max_cost_micro_usd: Some(7),
        };
        assert_eq!(
            a.min(b),
            Budget {
                max_tokens: Some(50),
                max_cost_micro_usd: Some(7)
            }
        );
        assert_eq!(a.min(Budget::UNLIMITED), a);
        assert!(a.admits(spend(100, 1_000_000)));
        assert!(!b.admits(spend(10, 8)));
    }

    #[test]
    fn stop_reasons_read_as_operators_expect_and_keep_a_stable_code() {
        let reason = StopReason::BudgetExceeded {
            scope: BudgetScope::Session,
            metric: BudgetMetric::CostMicroUsd,
            used: 1_250_000,
            limit: 1_000_000,
        };
        assert_eq!(reason.code(), "budget_exceeded");
        assert_eq!(
            reason.to_string(),
            "budget exceeded: the session spent $1.250000, over its cap of $1.000000"
        );
        let json = serde_json::to_value(&reason).unwrap();
        assert_eq!(json["code"], "budget_exceeded");
        assert_eq!(json["scope"], "session");
        assert_eq!(serde_json::from_value::<StopReason>(json).unwrap(), reason);
        assert!(StopReason::WallTime {
            elapsed_secs: 5,
            limit_secs: 4
        }
        .to_string()
        .contains("wall-time limit of 4 s"));
    }

    #[test]
    fn steps_and_tool_calls_count_once_each_and_stop_past_the_limit() {
        let mut guard = RunawayGuard::new(RunawayLimits {
            max_steps: Some(2),
            max_tool_calls: Some(1),
            ..RunawayLimits::default()
        });
        assert_eq!(guard.step("s1"), None);
        assert_eq!(guard.step("s1"), None, "a repeated report counts once");
        assert_eq!(guard.step("s2"), None);
        assert_eq!(
            guard.step("s3"),
            Some(StopReason::StepLimit { steps: 3, limit: 2 })
        );
        assert_eq!(guard.tool_call("c1"), None);
        assert_eq!(guard.tool_call("c1"), None);
        assert_eq!(
            guard.tool_call("c2"),
            Some(StopReason::ToolCallLimit { calls: 2, limit: 1 })
        );
    }

    #[test]
    fn the_same_failing_call_stops_at_the_nth_failure_other_inputs_do_not_count() {
        let mut guard = RunawayGuard::new(RunawayLimits {
            max_repeated_failures: Some(3),
            ..RunawayLimits::default()
        });
        assert_eq!(
            guard.tool_failed("c1", "bash", "{\"cmd\":\"make\"}", "exit 2"),
            None
        );
        assert_eq!(
            guard.tool_failed("c1", "bash", "{\"cmd\":\"make\"}", "exit 2"),
            None
        );
        assert_eq!(
            guard.tool_failed("c2", "bash", "{\"cmd\":\"ls\"}", "exit 2"),
            None
        );
        assert_eq!(
            guard.tool_failed("c3", "bash", "{\"cmd\":\"make\"}", "exit 2"),
            None
        );
        assert_eq!(
            guard.tool_failed("c4", "bash", "{\"cmd\":\"make\"}", "exit 2"),
            Some(StopReason::RepeatedToolFailure {
                tool: "bash".into(),
                times: 3,
                error: "exit 2".into()
            })
        );
    }

    #[test]
    fn wall_time_stops_only_past_the_limit_and_no_limit_never_stops() {
        let guard = RunawayGuard::new(RunawayLimits {
            max_wall_time_secs: Some(60),
            ..RunawayLimits::default()
        });
        assert_eq!(guard.elapsed(60), None);
        assert_eq!(
            guard.elapsed(61),
            Some(StopReason::WallTime {
                elapsed_secs: 61,
                limit_secs: 60
            })
        );
        let mut free = RunawayGuard::new(RunawayLimits::default());
        assert_eq!(free.elapsed(u64::MAX), None);
        for i in 0..1000 {
            assert_eq!(free.step(&i.to_string()), None);
            assert_eq!(free.tool_failed(&i.to_string(), "t", "same", "e"), None);
        }
    }
}
