//! Agents: named OpenCode configurations with capabilities, a model, a concurrency limit and a
//! track record.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::AgentId;
use crate::performance::RecentPerformance;
use crate::session::{ExecutionMetrics, SessionOutcome};
use crate::validation::{validated_string, ValidationError};

/// Longest agent name, in characters.
pub const MAX_AGENT_NAME_CHARS: usize = 64;
/// Most sessions one agent may run at once.
pub const MAX_AGENT_CONCURRENCY: u32 = 1024;

validated_string!(
    /// An agent's name: 1..=64 of `a-z`, `0-9`, `-`, `_`, starting with a letter. Safe to use in
    /// URLs, file names and OpenCode's `--agent` flag without quoting.
    AgentName,
    agent_name
);

fn agent_name(raw: String) -> Result<String, ValidationError> {
    let err = |message: String| Err(ValidationError::new("name", message));
    let Some(first) = raw.chars().next() else {
        return err("must not be empty".into());
    };
    if raw.chars().count() > MAX_AGENT_NAME_CHARS {
        return err(format!("must be at most {MAX_AGENT_NAME_CHARS} characters"));
    }
    if !first.is_ascii_lowercase() {
        return err("must start with a lowercase letter".into());
    }
    if let Some(bad) = raw
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
    {
        return err(format!(
            "may contain only lowercase letters, digits, `-` and `_` (found {bad:?})"
        ));
    }
    Ok(raw)
}

/// A kind of work an agent is fit for; tasks require them, agents offer them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AgentCapability {
    /// Server-side code.
    Backend,
    /// User interfaces.
    Frontend,
    /// Schemas, queries, migrations.
    Database,
    /// Audits and hardening.
    Security,
    /// Writing and running tests.
    Testing,
    /// Documentation.
    Docs,
    /// Builds, deployment, infrastructure.
    Devops,
    /// Restructuring existing code.
    Refactor,
}

impl AgentCapability {
    /// Every capability.
    pub const ALL: [AgentCapability; 8] = [
        Self::Backend,
        Self::Frontend,
        Self::Database,
        Self::Security,
        Self::Testing,
        Self::Docs,
        Self::Devops,
        Self::Refactor,
    ];

    /// The stable wire and storage name, e.g. `"devops"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Backend => "backend",
            Self::Frontend => "frontend",
            Self::Database => "database",
            Self::Security => "security",
            Self::Testing => "testing",
            Self::Docs => "docs",
            Self::Devops => "devops",
            Self::Refactor => "refactor",
        }
    }
}

impl fmt::Display for AgentCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`AgentCapability`] names.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown agent capability `{value}` (expected one of: backend, frontend, database, security, testing, docs, devops, refactor)")]
pub struct ParseAgentCapabilityError {
    /// The rejected input.
    pub value: String,
}

impl FromStr for AgentCapability {
    type Err = ParseAgentCapabilityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| ParseAgentCapabilityError {
                value: s.to_owned(),
            })
    }
}

/// The model an agent runs, in OpenCode's `provider/model` form. The model part may itself
/// contain `/` (e.g. `openrouter/anthropic/claude-sonnet-4`); the provider ends at the first one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelRef {
    provider: String,
    model: String,
}

impl ModelRef {
    /// A model reference from its two parts; both non-empty, without whitespace or control
    /// characters, and the provider without `/`. Errors name the field `model`.
    pub fn new(
        provider: impl Into<String>,
        model: impl Into<String>,
    ) -> Result<Self, ValidationError> {
        let (provider, model) = (provider.into(), model.into());
        let err = |message: &str| Err(ValidationError::new("model", message));
        if provider.is_empty() || model.is_empty() {
            return err("must have the form `provider/model` with both parts non-empty");
        }
        if provider.contains('/') {
            return err("the provider must not contain `/`");
        }
        if provider
            .chars()
            .chain(model.chars())
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return err("must not contain whitespace or control characters");
        }
        Ok(Self { provider, model })
    }

    /// The provider, e.g. `anthropic`.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The model within the provider, e.g. `claude-sonnet-4`.
    pub fn model(&self) -> &str {
        &self.model
    }
}

impl FromStr for ModelRef {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (provider, model) = s
            .split_once('/')
            .ok_or_else(|| ValidationError::new("model", "must have the form `provider/model`"))?;
        Self::new(provider, model)
    }
}

impl TryFrom<String> for ModelRef {
    type Error = ValidationError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<ModelRef> for String {
    fn from(value: ModelRef) -> Self {
        value.to_string()
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// An agent's track record over finished sessions. Counters only grow (saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentPerformanceMetrics {
    /// Sessions that completed.
    pub sessions_completed: u64,
    /// Sessions that failed.
    pub sessions_failed: u64,
    /// Sessions that timed out.
    pub sessions_timed_out: u64,
    /// Execution time over all recorded sessions, in milliseconds.
    pub total_duration_ms: u64,
    /// Tokens over all recorded sessions.
    pub total_tokens: u64,
    /// Cost over all recorded sessions, in millionths of a USD.
    pub total_cost_micro_usd: u64,
    /// Retries over all recorded sessions.
    pub total_retries: u64,
}

impl AgentPerformanceMetrics {
    /// Sessions with an outcome recorded.
    pub fn finished_sessions(&self) -> u64 {
        self.sessions_completed
            .saturating_add(self.sessions_failed)
            .saturating_add(self.sessions_timed_out)
    }

    /// Completed over finished sessions, in `0.0..=1.0`; `None` before any session finished,
    /// so a new agent is "unknown" rather than "always fails".
    pub fn success_rate(&self) -> Option<f64> {
        match self.finished_sessions() {
            0 => None,
            n => Some(self.sessions_completed as f64 / n as f64),
        }
    }

    /// Adds one finished session with its outcome and final metrics.
    pub fn record_outcome(&mut self, outcome: SessionOutcome, metrics: &ExecutionMetrics) {
        let counter = match outcome {
            SessionOutcome::Completed => &mut self.sessions_completed,
            SessionOutcome::Failed => &mut self.sessions_failed,
            SessionOutcome::TimedOut => &mut self.sessions_timed_out,
        };
        *counter = counter.saturating_add(1);
        self.total_duration_ms = self.total_duration_ms.saturating_add(metrics.duration_ms);
        self.total_tokens = self.total_tokens.saturating_add(metrics.total_tokens());
        self.total_cost_micro_usd = self
            .total_cost_micro_usd
            .saturating_add(metrics.cost_micro_usd);
        self.total_retries = self
            .total_retries
            .saturating_add(u64::from(metrics.retries));
    }
}

/// A rule of the agent's fields was violated.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AgentError {
    /// A field value broke its rule.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The offending field, e.g. `"capabilities"`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl From<ValidationError> for AgentError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

/// What a caller supplies to create an agent. The id is generated by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAgent {
    /// The new agent's id.
    pub id: AgentId,
    /// Its unique name.
    pub name: AgentName,
    /// What it can do; at least one.
    pub capabilities: BTreeSet<AgentCapability>,
    /// The model it runs.
    pub model: ModelRef,
    /// Most sessions at once, `1..=1024`.
    pub max_concurrency: u32,
}

/// A configured agent. Serializes as its [`AgentRecord`]; deserializing validates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AgentRecord", into = "AgentRecord")]
pub struct Agent {
    id: AgentId,
    name: AgentName,
    capabilities: BTreeSet<AgentCapability>,
    model: ModelRef,
    max_concurrency: u32,
    performance: AgentPerformanceMetrics,
    recent: RecentPerformance,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
}

/// Every field of an agent as plain values, for storage and the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentRecord {
    /// See [`Agent::id`].
    pub id: AgentId,
    /// See [`Agent::name`].
    pub name: String,
    /// See [`Agent::capabilities`].
    pub capabilities: BTreeSet<AgentCapability>,
    /// See [`Agent::model`], as `provider/model`.
    pub model: String,
    /// See [`Agent::max_concurrency`].
    pub max_concurrency: u32,
    /// See [`Agent::performance`].
    pub performance: AgentPerformanceMetrics,
    /// See [`Agent::recent`].
    #[serde(default)]
    pub recent: RecentPerformance,
    /// See [`Agent::created_at`].
    pub created_at: DateTime<Utc>,
    /// See [`Agent::updated_at`].
    pub updated_at: DateTime<Utc>,
    /// See [`Agent::version`].
    pub version: u64,
}

impl Agent {
    /// A new agent with an empty track record and version 0.
    pub fn new(new: NewAgent, now: DateTime<Utc>) -> Result<Self, AgentError> {
        check_capabilities(&new.capabilities)?;
        check_concurrency(new.max_concurrency)?;
        Ok(Self {
            id: new.id,
            name: new.name,
            capabilities: new.capabilities,
            model: new.model,
            max_concurrency: new.max_concurrency,
            performance: AgentPerformanceMetrics::default(),
            recent: RecentPerformance::default(),
            created_at: now,
            updated_at: now,
            version: 0,
        })
    }

    /// Rebuilds a stored agent, re-checking every rule.
    pub fn rehydrate(record: AgentRecord) -> Result<Self, AgentError> {
        check_capabilities(&record.capabilities)?;
        check_concurrency(record.max_concurrency)?;
        Ok(Self {
            id: record.id,
            name: AgentName::new(record.name)?,
            capabilities: record.capabilities,
            model: record.model.parse()?,
            max_concurrency: record.max_concurrency,
            performance: record.performance,
            recent: record.recent,
            created_at: record.created_at,
            updated_at: record.updated_at,
            version: record.version,
        })
    }

    /// The agent as plain values.
    pub fn to_record(&self) -> AgentRecord {
        self.clone().into()
    }

    /// The agent's id.
    pub fn id(&self) -> AgentId {
        self.id
    }

    /// Its unique name.
    pub fn name(&self) -> &AgentName {
        &self.name
    }

    /// What it can do; never empty.
    pub fn capabilities(&self) -> &BTreeSet<AgentCapability> {
        &self.capabilities
    }

    /// The model it runs.
    pub fn model(&self) -> &ModelRef {
        &self.model
    }

    /// Most sessions it runs at once.
    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency
    }

    /// Its track record.
    pub fn performance(&self) -> &AgentPerformanceMetrics {
        &self.performance
    }

    /// When it was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// When it last changed.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }

    /// The optimistic-locking version as read from storage. Only repositories change it.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether it offers every capability in `required` (trivially true for none).
    pub fn has_capabilities(&self, required: &BTreeSet<AgentCapability>) -> bool {
        required.is_subset(&self.capabilities)
    }

    /// Replaces its capabilities; refuses an empty set.
    pub fn set_capabilities(
        &mut self,
        capabilities: BTreeSet<AgentCapability>,
        now: DateTime<Utc>,
    ) -> Result<(), AgentError> {
        check_capabilities(&capabilities)?;
        self.capabilities = capabilities;
        self.updated_at = now;
        Ok(())
    }

    /// Switches the model.
    pub fn set_model(&mut self, model: ModelRef, now: DateTime<Utc>) {
        self.model = model;
        self.updated_at = now;
    }

    /// Changes the concurrency limit; refuses values outside `1..=1024`.
    pub fn set_max_concurrency(
        &mut self,
        max_concurrency: u32,
        now: DateTime<Utc>,
    ) -> Result<(), AgentError> {
        check_concurrency(max_concurrency)?;
        self.max_concurrency = max_concurrency;
        self.updated_at = now;
        Ok(())
    }

    /// Adds a finished session (not part of a task) to its track record.
    pub fn record_outcome(
        &mut self,
        outcome: SessionOutcome,
        metrics: &ExecutionMetrics,
        now: DateTime<Utc>,
    ) {
        self.record_outcome_for(outcome, metrics, &BTreeSet::new(), now);
    }

    /// Adds a finished session whose task required `capabilities`: to the lifetime counters and
    /// to the recent (decayed) record, overall and per capability.
    pub fn record_outcome_for(
        &mut self,
        outcome: SessionOutcome,
        metrics: &ExecutionMetrics,
        capabilities: &BTreeSet<AgentCapability>,
        now: DateTime<Utc>,
    ) {
        self.performance.record_outcome(outcome, metrics);
        self.recent.record(outcome, metrics, capabilities);
        self.updated_at = now;
    }

    /// The recent, decayed track record (recent sessions count more).
    pub fn recent(&self) -> &RecentPerformance {
        &self.recent
    }

    /// The agent with the version its storage row carries.
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    /// Records the version storage assigned after a write.
    pub fn set_version(&mut self, version: u64) {
        self.version = version;
    }
}

impl From<Agent> for AgentRecord {
    fn from(a: Agent) -> Self {
        Self {
            id: a.id,
            name: a.name.into(),
            capabilities: a.capabilities,
            model: a.model.into(),
            max_concurrency: a.max_concurrency,
            performance: a.performance,
            recent: a.recent,
            created_at: a.created_at,
            updated_at: a.updated_at,
            version: a.version,
        }
    }
}

impl TryFrom<AgentRecord> for Agent {
    type Error = AgentError;

    fn try_from(record: AgentRecord) -> Result<Self, Self::Error> {
        Self::rehydrate(record)
    }
}

fn check_capabilities(capabilities: &BTreeSet<AgentCapability>) -> Result<(), AgentError> {
    if capabilities.is_empty() {
        return Err(
            ValidationError::new("capabilities", "must name at least one capability").into(),
        );
    }
    Ok(())
}

fn check_concurrency(max_concurrency: u32) -> Result<(), AgentError> {
    if !(1..=MAX_AGENT_CONCURRENCY).contains(&max_concurrency) {
        return Err(ValidationError::new(
            "max_concurrency",
            format!("must be between 1 and {MAX_AGENT_CONCURRENCY}, got {max_concurrency}"),
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::AgentCapability::*;
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    fn new_agent() -> NewAgent {
        NewAgent {
            id: AgentId::from_uuid(Uuid::from_u128(7)),
            name: AgentName::new("backend-dev").unwrap(),
            capabilities: BTreeSet::from([Backend, Database]),
            model: "anthropic/claude-sonnet-4".parse().unwrap(),
            max_concurrency: 2,
        }
    }

    fn field_of(err: AgentError) -> &'static str {
        let AgentError::Invalid { field, .. } = err;
        field
    }

    #[test]
    fn agent_name_accepts_lowercase_slugs() {
        for ok in ["a", "backend-dev", "qa_2", &"a".repeat(64)] {
            assert!(AgentName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn agent_name_rejects_bad_names_naming_the_field() {
        for bad in ["", "1abc", "-a", "Backend", "a b", "ä", &"a".repeat(65)] {
            let err = AgentName::new(bad).unwrap_err();
            assert_eq!(err.field, "name", "{bad:?}");
        }
    }

    #[test]
    fn capability_names_round_trip_through_from_str_and_serde() {
        for c in AgentCapability::ALL {
            assert_eq!(c.as_str().parse::<AgentCapability>().unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<AgentCapability>(&json).unwrap(), c);
        }
        let err = "cooking".parse::<AgentCapability>().unwrap_err();
        assert!(err.to_string().contains("`cooking`"), "{err}");
    }

    #[test]
    fn model_ref_splits_at_the_first_slash() {
        let m: ModelRef = "openrouter/anthropic/claude-sonnet-4".parse().unwrap();
        assert_eq!(m.provider(), "openrouter");
        assert_eq!(m.model(), "anthropic/claude-sonnet-4");
        assert_eq!(m.to_string(), "openrouter/anthropic/claude-sonnet-4");
    }

    #[test]
    fn model_ref_requires_both_parts() {
        for bad in ["", "anthropic", "/claude", "anthropic/", "a b/c"] {
            let err = bad.parse::<ModelRef>().unwrap_err();
            assert_eq!(err.field, "model", "{bad:?}");
        }
    }

    #[test]
    fn model_ref_serializes_as_one_string() {
        let m: ModelRef = "openai/gpt-5".parse().unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"openai/gpt-5\"");
        assert!(serde_json::from_str::<ModelRef>("\"nope\"").is_err());
    }

    #[test]
    fn success_rate_is_unknown_until_a_session_finishes() {
        let mut p = AgentPerformanceMetrics::default();
        assert_eq!(p.success_rate(), None);
        let m = ExecutionMetrics {
            tokens_input: 10,
            tokens_output: 5,
            cost_micro_usd: 300,
            duration_ms: 1_000,
            retries: 1,
            ..ExecutionMetrics::default()
        };
        p.record_outcome(SessionOutcome::Completed, &m);
        p.record_outcome(SessionOutcome::Completed, &m);
        p.record_outcome(SessionOutcome::Failed, &m);
        p.record_outcome(SessionOutcome::TimedOut, &m);
        assert_eq!(p.finished_sessions(), 4);
        assert_eq!(p.success_rate(), Some(0.5));
        assert_eq!(p.total_tokens, 60);
        assert_eq!(p.total_cost_micro_usd, 1_200);
        assert_eq!(p.total_duration_ms, 4_000);
        assert_eq!(p.total_retries, 4);
    }

    #[test]
    fn agent_requires_a_capability() {
        let err = Agent::new(
            NewAgent {
                capabilities: BTreeSet::new(),
                ..new_agent()
            },
            t(0),
        )
        .unwrap_err();
        assert_eq!(field_of(err), "capabilities");
    }

    #[test]
    fn agent_concurrency_is_bounded() {
        for bad in [0, MAX_AGENT_CONCURRENCY + 1] {
            let err = Agent::new(
                NewAgent {
                    max_concurrency: bad,
                    ..new_agent()
                },
                t(0),
            )
            .unwrap_err();
            assert_eq!(field_of(err), "max_concurrency");
        }
        let mut agent = Agent::new(new_agent(), t(0)).unwrap();
        let before = agent.clone();
        assert!(agent.set_max_concurrency(0, t(1)).is_err());
        assert!(agent.set_capabilities(BTreeSet::new(), t(1)).is_err());
        assert_eq!(agent, before);
        agent
            .set_max_concurrency(MAX_AGENT_CONCURRENCY, t(2))
            .unwrap();
        assert_eq!(agent.max_concurrency(), MAX_AGENT_CONCURRENCY);
        assert_eq!(agent.updated_at(), t(2));
    }

    #[test]
    fn agent_has_capabilities_when_it_offers_all_required() {
        let agent = Agent::new(new_agent(), t(0)).unwrap();
        assert!(agent.has_capabilities(&BTreeSet::new()));
        assert!(agent.has_capabilities(&BTreeSet::from([Backend])));
        assert!(agent.has_capabilities(&BTreeSet::from([Backend, Database])));
        assert!(!agent.has_capabilities(&BTreeSet::from([Backend, Frontend])));
    }

    #[test]
    fn agent_json_round_trip_validates() {
        let mut agent = Agent::new(new_agent(), t(0)).unwrap().with_version(4);
        agent.record_outcome(
            SessionOutcome::Completed,
            &ExecutionMetrics::default(),
            t(1),
        );
        let json = serde_json::to_value(&agent).unwrap();
        assert_eq!(json["name"], "backend-dev");
        assert_eq!(json["model"], "anthropic/claude-sonnet-4");
        assert_eq!(
            json["capabilities"],
            serde_json::json!(["backend", "database"])
        );
        let back: Agent = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, agent);

        let mut broken = json;
        broken["capabilities"] = serde_json::json!([]);
        assert!(serde_json::from_value::<Agent>(broken).is_err());
        let record = AgentRecord {
            model: "no-slash".into(),
            ..agent.to_record()
        };
        assert_eq!(field_of(Agent::rehydrate(record).unwrap_err()), "model");
    }
}
