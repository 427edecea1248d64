//! The session lifecycle: its statuses, the one table of legal transitions, and the commands that
//! walk it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where a session is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SessionStatus {
    /// Created, not yet handed to the scheduler.
    Pending,
    /// Waiting for a free agent slot.
    Queued,
    /// An OpenCode session is executing it.
    Running,
    /// Suspended mid-run; may resume.
    Paused,
    /// Finished successfully. Final.
    Completed,
    /// Finished with an error; may be retried.
    Failed,
    /// Stopped on request. Final.
    Cancelled,
    /// Exceeded its time budget; may be retried.
    TimedOut,
}

impl SessionStatus {
    /// Every status, in lifecycle order (for filters and exhaustive tests).
    pub const ALL: [SessionStatus; 8] = [
        Self::Pending,
        Self::Queued,
        Self::Running,
        Self::Paused,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::TimedOut,
    ];

    /// The stable wire and storage name, e.g. `"timed_out"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
        }
    }

    /// The statuses this one may move to: the single source of truth for the state machine.
    ///
    /// `failed` and `timed_out` lead back to `queued` only through a retry, which counts an attempt.
    pub const fn successors(self) -> &'static [SessionStatus] {
        use SessionStatus::*;
        match self {
            Pending => &[Queued, Cancelled],
            Queued => &[Running, Failed, Cancelled],
            Running => &[Paused, Completed, Failed, Cancelled, TimedOut],
            Paused => &[Running, Failed, Cancelled, TimedOut],
            Failed | TimedOut => &[Queued],
            Completed | Cancelled => &[],
        }
    }

    /// Whether `self -> to` is a legal transition. Never true for `self == to`.
    pub fn can_transition_to(self, to: SessionStatus) -> bool {
        self.successors().contains(&to)
    }

    /// The session has finished; it holds a `finished_at`.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Cancelled | Self::TimedOut
        )
    }

    /// The attempt went wrong (`failed` or `timed_out`): what operators are alerted to, and what
    /// a retry may take back to the queue.
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::TimedOut)
    }

    /// Nothing can ever happen to the session again (no retry out of it).
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }

    /// The session holds, or waits for, an agent slot.
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running | Self::Paused)
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`SessionStatus`] names.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown session status `{value}` (expected one of: pending, queued, running, paused, completed, failed, cancelled, timed_out)")]
pub struct ParseSessionStatusError {
    /// The rejected input.
    pub value: String,
}

impl FromStr for SessionStatus {
    type Err = ParseSessionStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ParseSessionStatusError {
                value: s.to_owned(),
            })
    }
}

/// The transition commands of a session. Each legal edge of the table is walked by exactly one
/// command, so the command says *why* the status changed (a resume, not a second start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionCommand {
    /// `pending -> queued`.
    Enqueue,
    /// `queued -> running`.
    Start,
    /// `running -> paused`.
    Pause,
    /// `paused -> running`.
    Resume,
    /// `running -> completed`.
    Complete,
    /// `queued | running | paused -> failed`.
    Fail,
    /// `pending | queued | running | paused -> cancelled`.
    Cancel,
    /// `running | paused -> timed_out`.
    TimeOut,
    /// `failed | timed_out -> queued`, counting one more attempt.
    Retry,
}

impl SessionCommand {
    /// Every command.
    pub const ALL: [SessionCommand; 9] = [
        Self::Enqueue,
        Self::Start,
        Self::Pause,
        Self::Resume,
        Self::Complete,
        Self::Fail,
        Self::Cancel,
        Self::TimeOut,
        Self::Retry,
    ];

    /// The command's name, e.g. `"time_out"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Enqueue => "enqueue",
            Self::Start => "start",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Complete => "complete",
            Self::Fail => "fail",
            Self::Cancel => "cancel",
            Self::TimeOut => "time_out",
            Self::Retry => "retry",
        }
    }

    /// The status the command moves a session to.
    pub const fn target(self) -> SessionStatus {
        match self {
            Self::Enqueue | Self::Retry => SessionStatus::Queued,
            Self::Start | Self::Resume => SessionStatus::Running,
            Self::Pause => SessionStatus::Paused,
            Self::Complete => SessionStatus::Completed,
            Self::Fail => SessionStatus::Failed,
            Self::Cancel => SessionStatus::Cancelled,
            Self::TimeOut => SessionStatus::TimedOut,
        }
    }

    /// The command that walks `from -> to`, or `None` when the edge is not legal.
    pub fn for_transition(from: SessionStatus, to: SessionStatus) -> Option<SessionCommand> {
        if !from.can_transition_to(to) {
            return None;
        }
        Self::ALL.into_iter().find(|command| {
            command.target() == to
                && match command {
                    Self::Enqueue => from == SessionStatus::Pending,
                    Self::Retry => from != SessionStatus::Pending,
                    Self::Start => from == SessionStatus::Queued,
                    Self::Resume => from == SessionStatus::Paused,
                    _ => true,
                }
        })
    }
}

impl fmt::Display for SessionCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a finished session went, as far as judging its agent goes. Cancellation is a decision of
/// the operator, not a result of the agent, so it has no outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionOutcome {
    /// The session completed.
    Completed,
    /// The session failed.
    Failed,
    /// The session ran out of time.
    TimedOut,
}

impl SessionOutcome {
    /// The outcome a status represents, if any.
    pub const fn from_status(status: SessionStatus) -> Option<Self> {
        match status {
            SessionStatus::Completed => Some(Self::Completed),
            SessionStatus::Failed => Some(Self::Failed),
            SessionStatus::TimedOut => Some(Self::TimedOut),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SessionStatus::*;
    use super::*;

    /// The table from the specification, written out independently of `successors`.
    const LEGAL: [(SessionStatus, SessionStatus); 15] = [
        (Pending, Queued),
        (Pending, Cancelled),
        (Queued, Running),
        (Queued, Failed),
        (Queued, Cancelled),
        (Running, Paused),
        (Running, Completed),
        (Running, Failed),
        (Running, Cancelled),
        (Running, TimedOut),
        (Paused, Running),
        (Paused, Failed),
        (Paused, Cancelled),
        (Paused, TimedOut),
        (Failed, Queued),
    ];

    #[test]
    fn failures_are_failed_and_timed_out_only() {
        let failures: Vec<_> = SessionStatus::ALL
            .into_iter()
            .filter(|s| s.is_failure())
            .collect();
        assert_eq!(failures, [SessionStatus::Failed, SessionStatus::TimedOut]);
    }

    #[test]
    fn transition_table_is_exactly_the_specified_one() {
        for from in SessionStatus::ALL {
            for to in SessionStatus::ALL {
                let expected = LEGAL.contains(&(from, to)) || (from, to) == (TimedOut, Queued);
                assert_eq!(from.can_transition_to(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn no_status_transitions_to_itself() {
        for status in SessionStatus::ALL {
            assert!(!status.can_transition_to(status), "{status}");
        }
    }

    #[test]
    fn completed_and_cancelled_are_final() {
        assert!(Completed.successors().is_empty());
        assert!(Cancelled.successors().is_empty());
        assert!(Completed.is_final() && Cancelled.is_final());
        assert!(!Failed.is_final() && !TimedOut.is_final());
    }

    #[test]
    fn terminal_and_active_partition_all_but_pending() {
        for status in SessionStatus::ALL {
            let classes = [status.is_terminal(), status.is_active(), status == Pending];
            assert_eq!(classes.iter().filter(|c| **c).count(), 1, "{status}");
        }
    }

    #[test]
    fn status_names_round_trip_through_from_str_and_serde() {
        let names = [
            "pending",
            "queued",
            "running",
            "paused",
            "completed",
            "failed",
            "cancelled",
            "timed_out",
        ];
        for (status, name) in SessionStatus::ALL.into_iter().zip(names) {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.to_string(), name);
            assert_eq!(name.parse::<SessionStatus>().unwrap(), status);
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<SessionStatus>(&json).unwrap(),
                status
            );
        }
    }

    #[test]
    fn parse_error_names_the_bad_value() {
        let err = "Running".parse::<SessionStatus>().unwrap_err();
        assert_eq!(err.value, "Running");
        assert!(err.to_string().contains("`Running`"), "{err}");
    }

    #[test]
    fn every_legal_edge_has_exactly_one_command() {
        for from in SessionStatus::ALL {
            for to in SessionStatus::ALL {
                let command = SessionCommand::for_transition(from, to);
                assert_eq!(
                    command.is_some(),
                    from.can_transition_to(to),
                    "{from} -> {to}"
                );
                if let Some(command) = command {
                    assert_eq!(command.target(), to);
                }
            }
        }
        assert_eq!(
            SessionCommand::for_transition(Paused, Running),
            Some(SessionCommand::Resume)
        );
        assert_eq!(
            SessionCommand::for_transition(TimedOut, Queued),
            Some(SessionCommand::Retry)
        );
        assert_eq!(
            SessionCommand::for_transition(Pending, Queued),
            Some(SessionCommand::Enqueue)
        );
    }

    #[test]
    fn only_agent_results_have_an_outcome() {
        assert_eq!(
            SessionOutcome::from_status(Completed),
            Some(SessionOutcome::Completed)
        );
        assert_eq!(
            SessionOutcome::from_status(TimedOut),
            Some(SessionOutcome::TimedOut)
        );
        assert_eq!(SessionOutcome::from_status(Cancelled), None);
        assert_eq!(SessionOutcome::from_status(Running), None);
    }
}
