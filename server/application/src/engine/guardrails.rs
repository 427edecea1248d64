//! One attempt's guardrails, as its runner keeps them: the budgets that apply to the session
//! (its own, its task tree's, its agent's) with what was spent before this attempt, what the
//! attempt spends live (from the agent server's assistant messages), and the runaway guard.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::event_log::GuardrailStopped;
use domain::{Budget, BudgetScope, RunawayGuard, Session, Spend, StopReason};

use crate::guardrails::{spent_by, Guardrails};
use crate::ports::{AssistantMessage, Part, PartContent, ToolCallState};

/// A budget that applies to the attempt, and what its scope had spent before the attempt.
#[derive(Clone, Debug)]
struct Scoped {
    scope: BudgetScope,
    cap: Budget,
    before: Spend,
}

/// Where the tree and agent baselines come from, for refreshing them.
#[derive(Clone, Debug)]
struct Sources {
    session: domain::SessionId,
    own: Spend,
    tree_root: Option<domain::TaskId>,
    agent: Option<domain::AgentName>,
}

pub(super) struct RunGuard {
    budgets: Vec<Scoped>,
    sources: Sources,
    /// Cost and tokens per assistant message of this attempt (messages are updated as they go).
    live: HashMap<String, Spend>,
    runaway: RunawayGuard,
    started: Instant,
    refreshed: Instant,
}

impl RunGuard {
    /// The guard of an attempt that started at `started`: reads the baselines (a store error
    /// leaves a baseline at what the session itself recorded, and is logged).
    pub(super) async fn start(
        guardrails: &Guardrails,
        session: &Session,
        started: Instant,
    ) -> Self {
        let config = guardrails.config();
        let own = spent_by(session);
        let mut budgets = Vec::new();
        if !config.session.is_unlimited() {
            budgets.push(Scoped {
                scope: BudgetScope::Session,
                cap: config.session,
                before: own,
            });
        }
        let mut tree_root = None;
        if let Some(task) = session.parent_task() {
            match guardrails.root_of(task).await {
                Ok(Some(root)) => {
                    let cap = guardrails.tree_cap(&root);
                    if !cap.is_unlimited() {
                        tree_root = Some(root.id());
                        budgets.push(Scoped {
                            scope: BudgetScope::TaskTree,
                            cap,
                            before: own,
                        });
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "task tree unreadable; its budget is skipped"),
            }
        }
        let agent = session
            .agent()
            .cloned()
            .filter(|_| !config.agent.is_unlimited());
        if agent.is_some() {
            budgets.push(Scoped {
                scope: BudgetScope::Agent,
                cap: config.agent,
                before: own,
            });
        }
        let mut guard = Self {
            budgets,
            sources: Sources {
                session: session.id(),
                own,
                tree_root,
                agent,
            },
            live: HashMap::new(),
            runaway: RunawayGuard::new(config.runaway),
            started,
            refreshed: Instant::now(),
        };
        guard.refresh(guardrails).await;
        guard
    }

    /// Re-reads the tree's and the agent's spend, at most every `refresh_every`.
    pub(super) async fn refresh_if_due(&mut self, guardrails: &Guardrails) {
        if self.refreshed.elapsed() >= guardrails.refresh_every() {
            self.refresh(guardrails).await;
        }
    }

    async fn refresh(&mut self, guardrails: &Guardrails) {
        self.refreshed = Instant::now();
        let sources = self.sources.clone();
        for scoped in &mut self.budgets {
            let others = match scoped.scope {
                BudgetScope::Session => continue,
                BudgetScope::TaskTree => match sources.tree_root {
                    Some(root) => guardrails.tree_spent(root, sources.session).await,
                    None => continue,
                },
                BudgetScope::Agent => match &sources.agent {
                    Some(agent) => {
                        let window = chrono::Duration::from_std(guardrails.config().agent_window)
                            .unwrap_or(chrono::Duration::MAX);
                        guardrails
                            .agent_spent(agent, Utc::now() - window, sources.session)
                            .await
                    }
                    None => continue,
                },
            };
            match others {
                Ok(others) => scoped.before = others.plus(sources.own),
                Err(error) => {
                    tracing::warn!(%error, scope = scoped.scope.as_str(), "budget baseline unreadable; the last one is kept")
                }
            }
        }
    }

    /// What this attempt has spent so far.
    pub(super) fn live(&self) -> Spend {
        self.live.values().fold(Spend::default(), |a, b| a.plus(*b))
    }

    /// The first budget passed, if any.
    pub(super) fn breach(&self) -> Option<StopReason> {
        let live = self.live();
        self.budgets
            .iter()
            .find_map(|b| b.cap.breach(b.scope, b.before.plus(live)))
    }

    /// An assistant message of the attempt, as reported (again) by the server.
    pub(super) fn message(&mut self, message: &AssistantMessage) -> Option<StopReason> {
        let t = &message.tokens;
        let spend = Spend {
            tokens: t.input + t.output + t.reasoning + t.cache_read + t.cache_write,
            cost_micro_usd: (message.cost.max(0.0) * 1_000_000.0).round() as u64,
        };
        self.live.insert(message.id.as_str().to_owned(), spend);
        self.breach()
    }

    /// A part of the attempt: steps and tool calls count towards the runaway limits.
    pub(super) fn part(&mut self, part: &Part) -> Option<StopReason> {
        match &part.content {
            PartContent::StepFinish { .. } => self.runaway.step(&part.id),
            PartContent::Tool {
                call_id,
                tool,
                state,
                input,
            } => {
                let call = if call_id.is_empty() {
                    &part.id
                } else {
                    call_id
                };
                if let Some(stop) = self.runaway.tool_call(call) {
                    return Some(stop);
                }
                match state {
                    ToolCallState::Failed { error } => {
                        // serde_json's maps are ordered: the same arguments print the same.
                        let input = input.to_string();
                        self.runaway.tool_failed(call, tool, &input, error)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// When the attempt passes its wall-time limit, if it has one.
    pub(super) fn wall_deadline(&self) -> Option<Instant> {
        self.runaway
            .limits()
            .max_wall_time_secs
            .map(|secs| self.started + Duration::from_secs(secs) + Duration::from_millis(1))
    }

    /// The wall-time check.
    pub(super) fn elapsed(&self) -> Option<StopReason> {
        self.runaway.elapsed(self.started.elapsed().as_secs())
    }

    /// What the log says about a stop: the reason, typed and in words, and the figures.
    pub(super) fn report(&self, reason: &StopReason) -> GuardrailStopped {
        GuardrailStopped::new(reason).with_figures(
            self.live(),
            self.runaway.steps(),
            self.runaway.tool_calls(),
        )
    }
}
