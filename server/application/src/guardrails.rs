//! Guardrails for running sessions: the configured budgets (per session, per task tree, per
//! agent) and runaway limits, and what has already been spent against each, read from the store.
//!
//! The runner adds what the current attempt spends live (from the agent server's assistant
//! messages) to the baselines read here, and stops the session on a breach (see
//! `engine::runner`). Spend of other sessions counts once they have recorded it (when an attempt
//! ends); the baselines are re-read every [`Guardrails::refresh_every`].
//!
//! ```toml
//! [guardrails]
//! max_steps = 200              # model steps per attempt
//! max_tool_calls = 500
//! max_wall_time_secs = 3600    # per attempt
//! max_repeated_failures = 5    # the same tool call (tool + input) failing
//! agent_window_hours = 24      # an agent's budget covers its sessions created in this window
//! [guardrails.session]
//! max_tokens = 2_000_000
//! max_cost_usd = 5.0
//! [guardrails.task_tree]
//! max_cost_usd = 50.0
//! [guardrails.agent]
//! max_cost_usd = 200.0
//! [guardrails.estimate]        # what a tree reserves per leaf before it fans out
//! tokens_per_leaf = { trivial = 20000, simple = 50000, moderate = 150000, complex = 400000, very_complex = 1000000 }
//! usd_per_million_tokens = 3.0
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::{
    AgentName, Budget, PageRequest, RunawayLimits, Session, SessionFilter, Spend, Task,
    TaskComplexity, TaskId,
};
use serde::{Deserialize, Serialize};

use crate::ports::{RepositoryError, SessionRepository, TaskRepository};

/// A budget as configured: tokens and US dollars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetSettings {
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
}

impl BudgetSettings {
    /// The budget in the domain's units (micro-USD), or the name of the bad figure.
    pub fn to_budget(self) -> Result<Budget, &'static str> {
        let cost = match self.max_cost_usd {
            None => None,
            Some(usd) if usd.is_finite() && usd > 0.0 && usd < 1e12 => {
                Some((usd * 1_000_000.0).round().max(1.0) as u64)
            }
            Some(_) => return Err("max_cost_usd"),
        };
        if self.max_tokens == Some(0) {
            return Err("max_tokens");
        }
        Ok(Budget {
            max_tokens: self.max_tokens,
            max_cost_micro_usd: cost,
        })
    }
}

/// What a task tree reserves per leaf before it fans out.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EstimateSettings {
    /// Tokens per leaf, by the leaf's complexity name (`trivial` … `very_complex`).
    pub tokens_per_leaf: BTreeMap<String, u64>,
    /// Price used to turn estimated tokens into an estimated cost.
    pub usd_per_million_tokens: f64,
}

impl Default for EstimateSettings {
    fn default() -> Self {
        Self {
            tokens_per_leaf: [
                ("trivial", 20_000),
                ("simple", 50_000),
                ("moderate", 150_000),
                ("complex", 400_000),
                ("very_complex", 1_000_000),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            usd_per_million_tokens: 3.0,
        }
    }
}

/// `[guardrails]`: see the module docs. Budgets default to none; the runaway guard stops a
/// session past 200 steps, 500 tool calls, or the same tool call failing 5 times.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardrailSettings {
    pub session: BudgetSettings,
    pub task_tree: BudgetSettings,
    pub agent: BudgetSettings,
    pub agent_window_hours: u64,
    pub max_steps: Option<u32>,
    pub max_tool_calls: Option<u32>,
    pub max_wall_time_secs: Option<u64>,
    pub max_repeated_failures: Option<u32>,
    pub estimate: EstimateSettings,
}

impl Default for GuardrailSettings {
    fn default() -> Self {
        Self {
            session: BudgetSettings::default(),
            task_tree: BudgetSettings::default(),
            agent: BudgetSettings::default(),
            agent_window_hours: 24,
            max_steps: Some(200),
            max_tool_calls: Some(500),
            max_wall_time_secs: None,
            max_repeated_failures: Some(5),
            estimate: EstimateSettings::default(),
        }
    }
}

/// A setting out of range, by its full name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct GuardrailSettingsError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: &str) -> GuardrailSettingsError {
    GuardrailSettingsError {
        field,
        message: message.to_owned(),
    }
}

impl GuardrailSettings {
    /// Checks every figure; the error names the setting.
    pub fn validate(&self) -> Result<GuardrailConfig, GuardrailSettingsError> {
        let budget = |settings: BudgetSettings, tokens, cost| {
            settings.to_budget().map_err(|which| match which {
                "max_tokens" => bad(tokens, "must be at least 1 (leave it out for no cap)"),
                _ => bad(cost, "must be a positive number of US dollars"),
            })
        };
        let session = budget(
            self.session,
            "guardrails.session.max_tokens",
            "guardrails.session.max_cost_usd",
        )?;
        let task_tree = budget(
            self.task_tree,
            "guardrails.task_tree.max_tokens",
            "guardrails.task_tree.max_cost_usd",
        )?;
        let agent = budget(
            self.agent,
            "guardrails.agent.max_tokens",
            "guardrails.agent.max_cost_usd",
        )?;
        if self.agent_window_hours == 0 || self.agent_window_hours > 24 * 366 {
            return Err(bad(
                "guardrails.agent_window_hours",
                "must be between 1 and 8784",
            ));
        }
        for (field, value) in [
            ("guardrails.max_steps", self.max_steps.map(u64::from)),
            (
                "guardrails.max_tool_calls",
                self.max_tool_calls.map(u64::from),
            ),
            ("guardrails.max_wall_time_secs", self.max_wall_time_secs),
            (
                "guardrails.max_repeated_failures",
                self.max_repeated_failures.map(u64::from),
            ),
        ] {
            if value == Some(0) {
                return Err(bad(field, "must be at least 1 (leave it out for no limit)"));
            }
        }
        let mut tokens_per_leaf = BTreeMap::new();
        for (name, tokens) in &self.estimate.tokens_per_leaf {
            let complexity: TaskComplexity = name.parse().map_err(|_| {
                bad(
                    "guardrails.estimate.tokens_per_leaf",
                    "keys must be complexity names: trivial, simple, moderate, complex, very_complex",
                )
            })?;
            tokens_per_leaf.insert(complexity, *tokens);
        }
        let price = self.estimate.usd_per_million_tokens;
        if !(price.is_finite() && price >= 0.0) {
            return Err(bad(
                "guardrails.estimate.usd_per_million_tokens",
                "must be a non-negative number",
            ));
        }
        Ok(GuardrailConfig {
            session,
            task_tree,
            agent,
            agent_window: Duration::from_secs(self.agent_window_hours * 3600),
            runaway: RunawayLimits {
                max_steps: self.max_steps,
                max_tool_calls: self.max_tool_calls,
                max_wall_time_secs: self.max_wall_time_secs,
                max_repeated_failures: self.max_repeated_failures,
            },
            tokens_per_leaf,
            micro_usd_per_token: price,
        })
    }
}

/// The validated guardrails.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardrailConfig {
    pub session: Budget,
    /// The default cap of a task tree started without one.
    pub task_tree: Budget,
    pub agent: Budget,
    pub agent_window: Duration,
    pub runaway: RunawayLimits,
    tokens_per_leaf: BTreeMap<TaskComplexity, u64>,
    /// USD per million tokens is micro-USD per token.
    micro_usd_per_token: f64,
}

impl Default for GuardrailConfig {
    fn default() -> Self {
        GuardrailSettings::default()
            .validate()
            .expect("the default guardrails are valid")
    }
}

impl GuardrailConfig {
    /// What a tree of these leaves is expected to spend.
    pub fn estimate<'a>(&self, leaves: impl IntoIterator<Item = &'a Task>) -> Spend {
        let tokens: u64 = leaves
            .into_iter()
            .map(|leaf| {
                self.tokens_per_leaf
                    .get(&leaf.complexity())
                    .copied()
                    .unwrap_or(0)
            })
            .fold(0u64, u64::saturating_add);
        Spend {
            tokens,
            cost_micro_usd: (tokens as f64 * self.micro_usd_per_token).round() as u64,
        }
    }
}

/// What a session has recorded (all its finished attempts).
pub fn spent_by(session: &Session) -> Spend {
    let m = session.metrics();
    Spend {
        tokens: m.total_tokens(),
        cost_micro_usd: m.cost_micro_usd,
    }
}

/// Budgets and baselines for the runner.
#[derive(Clone)]
pub struct Guardrails {
    config: GuardrailConfig,
    sessions: Arc<dyn SessionRepository>,
    tasks: Arc<dyn TaskRepository>,
}

/// Most sessions read for one baseline (pages of 200).
const MAX_BASELINE_SESSIONS: usize = 20_000;

impl Guardrails {
    pub fn new(
        config: GuardrailConfig,
        sessions: Arc<dyn SessionRepository>,
        tasks: Arc<dyn TaskRepository>,
    ) -> Self {
        Self {
            config,
            sessions,
            tasks,
        }
    }

    pub fn config(&self) -> &GuardrailConfig {
        &self.config
    }

    /// How often a runner re-reads the tree and agent baselines.
    pub fn refresh_every(&self) -> Duration {
        Duration::from_secs(5)
    }

    /// The root of the tree `task` belongs to.
    pub async fn root_of(&self, task: TaskId) -> Result<Option<Task>, RepositoryError> {
        let mut current = self.tasks.get_including_deleted(task).await?;
        // Bounded: a corrupt parent chain must not loop.
        for _ in 0..64 {
            match current {
                Some(ref t) => match t.parent() {
                    Some(parent) => current = self.tasks.get_including_deleted(parent).await?,
                    None => return Ok(current),
                },
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The cap of the tree rooted at `root`: its own when it was started with one, else the
    /// configured default.
    pub fn tree_cap(&self, root: &Task) -> Budget {
        root.execution()
            .run
            .as_ref()
            .and_then(|run| run.budget)
            .map(|b| b.cap)
            .unwrap_or(self.config.task_tree)
    }

    /// What every session of the tree under `root` has recorded, but `except`'s (counted live by
    /// its runner).
    pub async fn tree_spent(
        &self,
        root: TaskId,
        except: domain::SessionId,
    ) -> Result<Spend, RepositoryError> {
        let mut spent = Spend::default();
        let mut stack = vec![root];
        let mut seen = 0usize;
        while let Some(id) = stack.pop() {
            let Some(task) = self.tasks.get_including_deleted(id).await? else {
                continue;
            };
            stack.extend(task.subtasks().iter().copied());
            let filter = SessionFilter {
                parent_task: Some(id),
                ..SessionFilter::default()
            };
            spent = spent.plus(self.sum(&filter, except, &mut seen).await?);
        }
        Ok(spent)
    }

    /// What the agent's sessions created since `since` have recorded, but `except`'s.
    pub async fn agent_spent(
        &self,
        agent: &AgentName,
        since: DateTime<Utc>,
        except: domain::SessionId,
    ) -> Result<Spend, RepositoryError> {
        let filter = SessionFilter {
            agent: Some(agent.clone()),
            created_from: Some(since),
            ..SessionFilter::default()
        };
        let mut seen = 0usize;
        self.sum(&filter, except, &mut seen).await
    }

    async fn sum(
        &self,
        filter: &SessionFilter,
        except: domain::SessionId,
        seen: &mut usize,
    ) -> Result<Spend, RepositoryError> {
        let mut spent = Spend::default();
        let mut page = PageRequest::first(200).expect("200 is a valid page size");
        loop {
            let listed = self.sessions.list(filter, &page).await?;
            for session in listed.items.iter().filter(|s| s.id() != except) {
                spent = spent.plus(spent_by(session));
            }
            *seen += listed.items.len();
            match listed.next {
                Some(cursor) if *seen < MAX_BASELINE_SESSIONS => {
                    page = PageRequest::new(200, Some(cursor)).expect("200 is a valid page size")
                }
                _ => return Ok(spent),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_no_budgets_and_a_runaway_guard() {
        let config = GuardrailConfig::default();
        assert!(config.session.is_unlimited());
        assert!(config.task_tree.is_unlimited());
        assert_eq!(config.runaway.max_repeated_failures, Some(5));
        assert_eq!(config.agent_window, Duration::from_secs(24 * 3600));
    }

    #[test]
    fn dollars_become_micro_dollars_and_bad_figures_are_named() {
        let settings = GuardrailSettings {
            session: BudgetSettings {
                max_tokens: Some(1000),
                max_cost_usd: Some(0.25),
            },
            ..GuardrailSettings::default()
        };
        let config = settings.validate().unwrap();
        assert_eq!(config.session.max_cost_micro_usd, Some(250_000));
        assert_eq!(config.session.max_tokens, Some(1000));

        let negative = GuardrailSettings {
            agent: BudgetSettings {
                max_tokens: None,
                max_cost_usd: Some(-1.0),
            },
            ..GuardrailSettings::default()
        };
        assert_eq!(
            negative.validate().unwrap_err().field,
            "guardrails.agent.max_cost_usd"
        );
        let zero_steps = GuardrailSettings {
            max_steps: Some(0),
            ..GuardrailSettings::default()
        };
        assert_eq!(
            zero_steps.validate().unwrap_err().field,
            "guardrails.max_steps"
        );
        let mut unknown = GuardrailSettings::default();
        unknown.estimate.tokens_per_leaf.insert("huge".into(), 1);
        assert_eq!(
            unknown.validate().unwrap_err().field,
            "guardrails.estimate.tokens_per_leaf"
        );
    }
}
