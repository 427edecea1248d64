//! The human-in-the-loop inbox: every permission request and question an agent server raises,
//! across all servers and sessions, waiting for an operator's (or a policy's) answer.
//!
//! An item is opened `pending` when the server asks, may be `escalated` when nobody answered in
//! time, and ends either `answered` (by us: an operator or a policy rule) or `expired` (answered
//! elsewhere, or the session went away). Ids on the far side (`ses…`, `per…`, `que…`) are kept as
//! opaque strings.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::ids::SessionId;

/// Identifies one inbox item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxItemId(Uuid);

impl InboxItemId {
    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The wrapped UUID.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for InboxItemId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl fmt::Display for InboxItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for InboxItemId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// One choice offered by a question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxOption {
    /// What the answer says (and what is sent back when chosen).
    pub label: String,
    /// The agent's explanation of the choice.
    pub description: String,
}

/// One question of a question request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxQuestion {
    /// The question in full.
    pub question: String,
    /// A short title.
    pub header: String,
    /// The offered choices.
    pub options: Vec<InboxOption>,
    /// Whether several options may be chosen.
    pub multiple: bool,
    /// Whether a free-text answer (not among the options) is accepted.
    pub custom: bool,
}

/// What is asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboxKind {
    /// A tool wants permission: `edit`, `bash`, `webfetch`, …
    Permission {
        /// The permission asked for (`edit`, `bash`, `webfetch`, …).
        permission: String,
        /// What it applies to (paths, commands, URLs).
        patterns: Vec<String>,
        /// The patterns an `always` reply would allow from now on.
        always: Vec<String>,
    },
    /// The agent asks the user one or more questions.
    Question {
        /// The questions, answered together.
        questions: Vec<InboxQuestion>,
    },
}

impl InboxKind {
    /// `permission` or `question`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Permission { .. } => "permission",
            Self::Question { .. } => "question",
        }
    }
}

/// Where an item stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum InboxStatus {
    /// Waiting for an answer.
    Pending,
    /// Still waiting, past the escalation deadline.
    Escalated,
    /// Answered by us (an operator or a policy) and relayed to the server.
    Answered,
    /// Closed without our answer: the server answered or rejected it elsewhere, or the session
    /// ended.
    Expired,
}

impl InboxStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [InboxStatus; 4] = [
        InboxStatus::Pending,
        InboxStatus::Escalated,
        InboxStatus::Answered,
        InboxStatus::Expired,
    ];

    /// Whether the item still waits for an answer.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Escalated)
    }

    /// The name used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Escalated => "escalated",
            Self::Answered => "answered",
            Self::Expired => "expired",
        }
    }
}

impl fmt::Display for InboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not an inbox status.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown inbox status {0:?}")]
pub struct ParseInboxStatusError(pub String);

impl FromStr for InboxStatus {
    type Err = ParseInboxStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ParseInboxStatusError(s.to_string()))
    }
}

/// The reply to a permission request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxReply {
    /// Allow this one call.
    Once,
    /// Allow this call and, from now on, the request's `always` patterns.
    Always,
    /// Refuse.
    Reject,
}

impl InboxReply {
    /// `once`, `always` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Always => "always",
            Self::Reject => "reject",
        }
    }
}

impl fmt::Display for InboxReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a permission reply.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown reply {0:?}: expected once, always or reject")]
pub struct ParseInboxReplyError(pub String);

impl FromStr for InboxReply {
    type Err = ParseInboxReplyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "once" => Ok(Self::Once),
            "always" => Ok(Self::Always),
            "reject" => Ok(Self::Reject),
            other => Err(ParseInboxReplyError(other.to_string())),
        }
    }
}

/// An answer to an item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboxAnswer {
    /// The reply to a permission request.
    Permission {
        /// Once, always or reject.
        reply: InboxReply,
        /// An optional note for the agent (mostly with `reject`).
        message: Option<String>,
    },
    /// The answers to a question request: per question, the labels chosen (or one free text).
    Question {
        /// One list per question, in the request's order.
        answers: Vec<Vec<String>>,
    },
    /// The question request is refused as a whole.
    QuestionRejected,
}

impl InboxAnswer {
    /// The kind of item this answer fits: `permission` or `question`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Permission { .. } => "permission",
            Self::Question { .. } | Self::QuestionRejected => "question",
        }
    }
}

/// Who answered what, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxResolution {
    /// The answer relayed to the server.
    pub answer: InboxAnswer,
    /// A user name, or `policy:<rule name>` for an automatic answer.
    pub by: String,
    /// When it was answered.
    pub at: DateTime<Utc>,
}

/// What an agent server asked, as the inbox records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRequest {
    /// The agent server (as its adapter names it).
    pub server: String,
    /// The session on that server (`ses…`).
    pub remote_session: String,
    /// The server directory (worktree) that hosts the session.
    pub directory: Option<String>,
    /// Our session, when the remote one is known to be ours.
    pub session: Option<SessionId>,
    /// The server's id for the request (`per…` or `que…`): what the reply names.
    pub request_id: String,
    /// What is asked.
    pub kind: InboxKind,
}

/// One request waiting for (or given) an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxItem {
    /// Our id for the item.
    pub id: InboxItemId,
    /// The agent server (as its adapter names it).
    pub server: String,
    /// The session on that server (`ses…`).
    pub remote_session: String,
    /// The server directory (worktree) that hosts the session.
    pub directory: Option<String>,
    /// Our session, when known.
    pub session: Option<SessionId>,
    /// The server's id for the request (`per…` or `que…`).
    pub request_id: String,
    /// What is asked.
    pub kind: InboxKind,
    /// Where the item stands.
    pub status: InboxStatus,
    /// When the request was recorded.
    pub created_at: DateTime<Utc>,
    /// When the item was escalated, if it was.
    pub escalated_at: Option<DateTime<Utc>>,
    /// When the item was closed (answered or expired).
    pub resolved_at: Option<DateTime<Utc>>,
    /// Our answer, for answered items.
    pub resolution: Option<InboxResolution>,
    /// The optimistic-locking version as read from storage. Only repositories change it.
    pub version: u64,
}

/// An inbox command was refused. A refused command changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum InboxError {
    /// The item is already answered or expired.
    #[error("inbox item is already {status}")]
    NotOpen {
        /// Its status.
        status: InboxStatus,
    },
    /// Only pending items escalate.
    #[error("only pending items escalate; this one is {status}")]
    NotPending {
        /// Its status.
        status: InboxStatus,
    },
    /// The answer is for the other kind of item.
    #[error("a {answer} answer cannot answer a {item} request")]
    KindMismatch {
        /// The item's kind.
        item: &'static str,
        /// The answer's kind.
        answer: &'static str,
    },
    /// A question request needs one answer per question.
    #[error("expected {expected} answer(s), one per question, got {got}")]
    AnswerCount {
        /// The number of questions.
        expected: usize,
        /// The number of answers given.
        got: usize,
    },
    /// A question was left without a choice.
    #[error("question {question} has no answer")]
    EmptyAnswer {
        /// Its index (0-based).
        question: usize,
    },
    /// A single-choice question got several.
    #[error("question {question} takes one answer, got {got}")]
    TooManyChoices {
        /// Its index (0-based).
        question: usize,
        /// The number of choices given.
        got: usize,
    },
    /// A label is not among the question's options and free text is not accepted.
    #[error("question {question} has no option {label:?}")]
    UnknownOption {
        /// Its index (0-based).
        question: usize,
        /// The label given.
        label: String,
    },
}

impl InboxItem {
    /// A new `pending` item for a request, with version 0.
    pub fn new(id: InboxItemId, request: InboxRequest, now: DateTime<Utc>) -> Self {
        Self {
            id,
            server: request.server,
            remote_session: request.remote_session,
            directory: request.directory,
            session: request.session,
            request_id: request.request_id,
            kind: request.kind,
            status: InboxStatus::Pending,
            created_at: now,
            escalated_at: None,
            resolved_at: None,
            resolution: None,
            version: 0,
        }
    }

    /// Whether the item still waits for an answer.
    pub fn is_open(&self) -> bool {
        self.status.is_open()
    }

    /// Checks that `answer` can answer this item: the item is open, the answer is of its kind,
    /// and a question's answers name offered options (unless free text is accepted), one per
    /// question, a single one where only one is allowed.
    pub fn check_answer(&self, answer: &InboxAnswer) -> Result<(), InboxError> {
        if !self.is_open() {
            return Err(InboxError::NotOpen {
                status: self.status,
            });
        }
        match (&self.kind, answer) {
            (InboxKind::Permission { .. }, InboxAnswer::Permission { .. })
            | (InboxKind::Question { .. }, InboxAnswer::QuestionRejected) => Ok(()),
            (InboxKind::Question { questions }, InboxAnswer::Question { answers }) => {
                check_question_answers(questions, answers)
            }
            (kind, answer) => Err(InboxError::KindMismatch {
                item: kind.name(),
                answer: answer.kind_name(),
            }),
        }
    }

    /// Records our answer: the item becomes `answered`. Refused (and nothing changes) when
    /// [`InboxItem::check_answer`] refuses the answer.
    pub fn answer(
        &mut self,
        answer: InboxAnswer,
        by: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<(), InboxError> {
        self.check_answer(&answer)?;
        self.status = InboxStatus::Answered;
        self.resolved_at = Some(now);
        self.resolution = Some(InboxResolution {
            answer,
            by: by.into(),
            at: now,
        });
        Ok(())
    }

    /// Records an answer that was relayed while another watcher expired the item on seeing the
    /// server's echo of that very answer: an `expired` item without a resolution becomes
    /// `answered`. Anything else is refused as [`InboxItem::answer`] would refuse it.
    pub fn answer_expired_echo(
        &mut self,
        answer: InboxAnswer,
        by: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<(), InboxError> {
        if self.status != InboxStatus::Expired || self.resolution.is_some() {
            return self.answer(answer, by, now);
        }
        self.status = InboxStatus::Pending;
        let answered = self.answer(answer, by, now);
        if answered.is_err() {
            self.status = InboxStatus::Expired;
        }
        answered
    }

    /// Marks a pending item as escalated (nobody answered in time).
    pub fn escalate(&mut self, now: DateTime<Utc>) -> Result<(), InboxError> {
        if self.status != InboxStatus::Pending {
            return Err(InboxError::NotPending {
                status: self.status,
            });
        }
        self.status = InboxStatus::Escalated;
        self.escalated_at = Some(now);
        Ok(())
    }

    /// Closes an open item that was settled elsewhere (or whose session ended).
    pub fn expire(&mut self, now: DateTime<Utc>) -> Result<(), InboxError> {
        if !self.is_open() {
            return Err(InboxError::NotOpen {
                status: self.status,
            });
        }
        self.status = InboxStatus::Expired;
        self.resolved_at = Some(now);
        Ok(())
    }

    /// Whether a pending item has waited at least `after` by `now` and should escalate.
    pub fn is_overdue(&self, now: DateTime<Utc>, after: TimeDelta) -> bool {
        self.status == InboxStatus::Pending && now - self.created_at >= after
    }
}

fn check_question_answers(
    questions: &[InboxQuestion],
    answers: &[Vec<String>],
) -> Result<(), InboxError> {
    if questions.len() != answers.len() {
        return Err(InboxError::AnswerCount {
            expected: questions.len(),
            got: answers.len(),
        });
    }
    for (index, (question, chosen)) in questions.iter().zip(answers).enumerate() {
        if chosen.is_empty() || chosen.iter().all(|label| label.trim().is_empty()) {
            return Err(InboxError::EmptyAnswer { question: index });
        }
        if !question.multiple && chosen.len() > 1 {
            return Err(InboxError::TooManyChoices {
                question: index,
                got: chosen.len(),
            });
        }
        if !question.custom {
            if let Some(label) = chosen
                .iter()
                .find(|label| !question.options.iter().any(|o| &o.label == *label))
            {
                return Err(InboxError::UnknownOption {
                    question: index,
                    label: label.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn request(kind: InboxKind) -> InboxRequest {
        InboxRequest {
            server: "http://127.0.0.1:4096".into(),
            remote_session: "ses_1".into(),
            directory: Some("/w/1".into()),
            session: None,
            request_id: "per_1".into(),
            kind,
        }
    }

    fn permission() -> InboxItem {
        InboxItem::new(
            InboxItemId::from_uuid(Uuid::nil()),
            request(InboxKind::Permission {
                permission: "edit".into(),
                patterns: vec!["src/a.rs".into()],
                always: vec!["*".into()],
            }),
            now(),
        )
    }

    fn question(multiple: bool, custom: bool) -> InboxItem {
        InboxItem::new(
            InboxItemId::from_uuid(Uuid::nil()),
            request(InboxKind::Question {
                questions: vec![InboxQuestion {
                    question: "Which colour?".into(),
                    header: "Colour".into(),
                    options: vec![
                        InboxOption {
                            label: "red".into(),
                            description: String::new(),
                        },
                        InboxOption {
                            label: "blue".into(),
                            description: String::new(),
                        },
                    ],
                    multiple,
                    custom,
                }],
            }),
            now(),
        )
    }

    fn labels(labels: &[&str]) -> InboxAnswer {
        InboxAnswer::Question {
            answers: vec![labels.iter().map(|l| l.to_string()).collect()],
        }
    }

    #[test]
    fn a_new_item_is_pending_at_version_zero() {
        let item = permission();
        assert_eq!(item.status, InboxStatus::Pending);
        assert!(item.is_open());
        assert_eq!(item.version, 0);
        assert_eq!(item.created_at, now());
    }

    #[test]
    fn answering_a_permission_records_who_and_when() {
        let mut item = permission();
        let answer = InboxAnswer::Permission {
            reply: InboxReply::Once,
            message: None,
        };
        item.answer(answer.clone(), "alice", now()).unwrap();
        assert_eq!(item.status, InboxStatus::Answered);
        assert_eq!(item.resolved_at, Some(now()));
        let resolution = item.resolution.unwrap();
        assert_eq!(resolution.by, "alice");
        assert_eq!(resolution.answer, answer);
    }

    #[test]
    fn an_answered_item_cannot_be_answered_again() {
        let mut item = permission();
        let answer = InboxAnswer::Permission {
            reply: InboxReply::Reject,
            message: Some("no".into()),
        };
        item.answer(answer.clone(), "alice", now()).unwrap();
        let before = item.clone();
        assert_eq!(
            item.answer(answer, "bob", now()),
            Err(InboxError::NotOpen {
                status: InboxStatus::Answered
            })
        );
        assert_eq!(item, before);
    }

    #[test]
    fn answers_must_match_the_kind() {
        let mut item = permission();
        assert_eq!(
            item.answer(labels(&["red"]), "alice", now()),
            Err(InboxError::KindMismatch {
                item: "permission",
                answer: "question"
            })
        );
        assert_eq!(item.status, InboxStatus::Pending);
        let mut q = question(false, false);
        assert!(matches!(
            q.answer(
                InboxAnswer::Permission {
                    reply: InboxReply::Once,
                    message: None
                },
                "alice",
                now()
            ),
            Err(InboxError::KindMismatch { .. })
        ));
        q.answer(InboxAnswer::QuestionRejected, "alice", now())
            .unwrap();
        assert_eq!(q.status, InboxStatus::Answered);
    }

    #[test]
    fn question_answers_name_offered_options_one_per_question() {
        let item = question(false, false);
        assert!(item.check_answer(&labels(&["red"])).is_ok());
        assert_eq!(
            item.check_answer(&labels(&["green"])),
            Err(InboxError::UnknownOption {
                question: 0,
                label: "green".into()
            })
        );
        assert_eq!(
            item.check_answer(&labels(&["red", "blue"])),
            Err(InboxError::TooManyChoices {
                question: 0,
                got: 2
            })
        );
        assert_eq!(
            item.check_answer(&labels(&[])),
            Err(InboxError::EmptyAnswer { question: 0 })
        );
        assert_eq!(
            item.check_answer(&InboxAnswer::Question { answers: vec![] }),
            Err(InboxError::AnswerCount {
                expected: 1,
                got: 0
            })
        );
    }

    #[test]
    fn multiple_and_custom_questions_accept_several_and_free_text() {
        assert!(question(true, false)
            .check_answer(&labels(&["red", "blue"]))
            .is_ok());
        assert!(question(false, true)
            .check_answer(&labels(&["green"]))
            .is_ok());
    }

    #[test]
    fn only_pending_items_escalate_and_only_open_items_expire() {
        let mut item = permission();
        assert!(!item.is_overdue(now(), TimeDelta::seconds(60)));
        let later = now() + TimeDelta::seconds(60);
        assert!(item.is_overdue(later, TimeDelta::seconds(60)));
        item.escalate(later).unwrap();
        assert_eq!(item.status, InboxStatus::Escalated);
        assert_eq!(item.escalated_at, Some(later));
        assert!(item.is_open());
        assert!(!item.is_overdue(later, TimeDelta::seconds(60)));
        assert_eq!(
            item.escalate(later),
            Err(InboxError::NotPending {
                status: InboxStatus::Escalated
            })
        );
        item.expire(later).unwrap();
        assert_eq!(item.status, InboxStatus::Expired);
        assert!(item.expire(later).is_err());
    }

    #[test]
    fn an_answer_relayed_before_its_echo_expired_the_item_is_still_recorded() {
        let mut item = permission();
        item.expire(now()).unwrap();
        let answer = InboxAnswer::Permission {
            reply: InboxReply::Once,
            message: None,
        };
        assert!(matches!(
            item.answer_expired_echo(labels(&["red"]), "alice", now()),
            Err(InboxError::KindMismatch { .. })
        ));
        assert_eq!(item.status, InboxStatus::Expired);
        item.answer_expired_echo(answer.clone(), "alice", now())
            .unwrap();
        assert_eq!(item.status, InboxStatus::Answered);
        assert_eq!(
            item.answer_expired_echo(answer, "bob", now()),
            Err(InboxError::NotOpen {
                status: InboxStatus::Answered
            })
        );
    }

    #[test]
    fn statuses_and_replies_round_trip_through_text() {
        for status in InboxStatus::ALL {
            assert_eq!(status.as_str().parse::<InboxStatus>(), Ok(status));
        }
        assert!("open".parse::<InboxStatus>().is_err());
        for reply in [InboxReply::Once, InboxReply::Always, InboxReply::Reject] {
            assert_eq!(reply.as_str().parse::<InboxReply>(), Ok(reply));
        }
        assert!("never".parse::<InboxReply>().is_err());
    }

    #[test]
    fn items_serialize_with_tagged_kinds_and_answers() {
        let mut item = permission();
        item.answer(
            InboxAnswer::Permission {
                reply: InboxReply::Always,
                message: None,
            },
            "policy:edits",
            now(),
        )
        .unwrap();
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(json["kind"]["type"], "permission");
        assert_eq!(json["status"], "answered");
        assert_eq!(json["resolution"]["answer"]["type"], "permission");
        assert_eq!(json["resolution"]["answer"]["reply"], "always");
        let back: InboxItem = serde_json::from_value(json).unwrap();
        assert_eq!(back, item);
    }
}
