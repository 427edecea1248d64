//! The enumerations describing a task: how hard it is and where it is in its lifecycle.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How much work a task is, in increasing order (so `complexity >= TaskComplexity::Complex`
/// reads as expected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TaskComplexity {
    /// A one-line change.
    Trivial,
    /// A small, local change.
    Simple,
    /// Several files, one concern.
    Moderate,
    /// Several concerns; worth decomposing.
    Complex,
    /// Must be decomposed before anyone starts.
    VeryComplex,
}

impl TaskComplexity {
    /// Every complexity, easiest first.
    pub const ALL: [TaskComplexity; 5] = [
        Self::Trivial,
        Self::Simple,
        Self::Moderate,
        Self::Complex,
        Self::VeryComplex,
    ];

    /// The stable wire and storage name, e.g. `"very_complex"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Trivial => "trivial",
            Self::Simple => "simple",
            Self::Moderate => "moderate",
            Self::Complex => "complex",
            Self::VeryComplex => "very_complex",
        }
    }
}

impl fmt::Display for TaskComplexity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`TaskComplexity`] names.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown task complexity `{value}` (expected one of: trivial, simple, moderate, complex, very_complex)")]
pub struct ParseTaskComplexityError {
    /// The rejected input.
    pub value: String,
}

impl FromStr for TaskComplexity {
    type Err = ParseTaskComplexityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| ParseTaskComplexityError {
                value: s.to_owned(),
            })
    }
}

/// Where a task is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TaskStatus {
    /// Waiting for its dependencies.
    Pending,
    /// Dependencies met; may be picked up.
    Ready,
    /// A session works on it.
    Running,
    /// Done. Final.
    Completed,
    /// Its work failed; may be made ready again.
    Failed,
    /// Dropped. Final.
    Cancelled,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 6] = [
        Self::Pending,
        Self::Ready,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The stable wire and storage name, e.g. `"ready"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The statuses this one may move to: the task state machine's single table.
    pub const fn successors(self) -> &'static [TaskStatus] {
        use TaskStatus::*;
        match self {
            Pending => &[Ready, Cancelled],
            Ready => &[Running, Cancelled],
            Running => &[Completed, Failed, Cancelled],
            Failed => &[Ready, Cancelled],
            Completed | Cancelled => &[],
        }
    }

    /// Whether `self -> to` is legal. Never true for `self == to`.
    pub fn can_transition_to(self, to: TaskStatus) -> bool {
        self.successors().contains(&to)
    }

    /// The task's work is over (for now, in the case of `failed`).
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`TaskStatus`] names.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown task status `{value}` (expected one of: pending, ready, running, completed, failed, cancelled)")]
pub struct ParseTaskStatusError {
    /// The rejected input.
    pub value: String,
}

impl FromStr for TaskStatus {
    type Err = ParseTaskStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| ParseTaskStatusError {
                value: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complexity_is_ordered_from_trivial_to_very_complex() {
        let mut sorted = TaskComplexity::ALL;
        sorted.sort();
        assert_eq!(sorted, TaskComplexity::ALL);
        assert!(TaskComplexity::VeryComplex > TaskComplexity::Complex);
        assert!(TaskComplexity::Trivial < TaskComplexity::Simple);
    }

    #[test]
    fn complexity_names_round_trip() {
        for c in TaskComplexity::ALL {
            assert_eq!(c.as_str().parse::<TaskComplexity>().unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
        assert_eq!(TaskComplexity::VeryComplex.as_str(), "very_complex");
        let err = "huge".parse::<TaskComplexity>().unwrap_err();
        assert!(err.to_string().contains("`huge`"));
    }

    #[test]
    fn task_status_names_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), s);
            assert_eq!(
                serde_json::from_str::<TaskStatus>(&format!("\"{s}\"")).unwrap(),
                s
            );
        }
        assert!("done".parse::<TaskStatus>().is_err());
    }

    #[test]
    fn task_terminal_statuses_are_completed_failed_cancelled() {
        let terminal: Vec<_> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                TaskStatus::Completed,
                TaskStatus::Failed,
                TaskStatus::Cancelled
            ]
        );
    }

    #[test]
    fn task_completed_and_cancelled_are_final_and_nothing_loops() {
        assert!(TaskStatus::Completed.successors().is_empty());
        assert!(TaskStatus::Cancelled.successors().is_empty());
        for s in TaskStatus::ALL {
            assert!(!s.can_transition_to(s));
        }
        assert!(TaskStatus::Failed.can_transition_to(TaskStatus::Ready));
        assert!(!TaskStatus::Pending.can_transition_to(TaskStatus::Running));
    }
}
