//! `server inbox`: list the human-in-the-loop inbox and answer its items from the shell. Answers
//! are relayed to the configured OpenCode servers (`opencode.servers`) before they are stored,
//! exactly as through the API.

use std::io::Write;

use clap::{Args, Subcommand};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, ContentArrangement, Table};
use domain::{InboxAnswer, InboxError, InboxItem, InboxItemId, InboxKind, InboxReply};

use super::commands::{CliError, Console, Services};
use crate::application::InboxServiceError;
use crate::ports::InboxFilter;

/// Most items `inbox list` prints.
const LIST_LIMIT: u32 = 500;

#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// Items waiting for an answer (pending or escalated), newest first; `--all` for every one.
    List {
        /// Closed items (answered, expired) too.
        #[arg(long)]
        all: bool,
    },
    /// Answer an item: `--reply` for a permission request, `--answer` for a question.
    Answer(AnswerArgs),
    /// Reject an item: refuse a permission request, or decline a question.
    Reject {
        /// The item id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// The item id.
    pub id: String,
    /// A permission reply: once, always or reject.
    #[arg(long, conflicts_with = "answer")]
    pub reply: Option<String>,
    /// A note for the agent, with `--reply`.
    #[arg(long, requires = "reply")]
    pub message: Option<String>,
    /// A question's answer (an option label, or free text where accepted). Repeat it: for one
    /// question every label is one of its choices; for several, one per question in order.
    #[arg(long, required_unless_present = "reply")]
    pub answer: Vec<String>,
}

impl From<InboxServiceError> for CliError {
    fn from(e: InboxServiceError) -> Self {
        match e {
            InboxServiceError::NotFound(_) => Self::NotFound(e.to_string()),
            InboxServiceError::Refused(InboxError::NotOpen { .. }) => {
                Self::NotAllowed(e.to_string())
            }
            InboxServiceError::Refused(refused) => Self::invalid("answer", refused.to_string()),
            InboxServiceError::Storage(r) => r.into(),
            other => Self::Failed(other.to_string()),
        }
    }
}

fn parse_item_id(raw: &str) -> Result<InboxItemId, CliError> {
    raw.trim()
        .parse()
        .map_err(|_| CliError::invalid("id", format!("`{raw}` is not a uuid")))
}

/// Who answers from the shell, as the resolution records it.
fn operator() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "operator".to_owned());
    format!("cli:{user}")
}

pub async fn run<W: Write>(
    services: &Services,
    command: InboxCommand,
    console: &mut Console<W>,
) -> Result<(), CliError> {
    let inbox = &services.inbox;
    match command {
        InboxCommand::List { all } => {
            let filter = if all {
                InboxFilter::All
            } else {
                InboxFilter::Open
            };
            let items = inbox.list(filter, LIST_LIMIT).await?;
            console.emit(&items, || list(&items))
        }
        InboxCommand::Answer(args) => {
            let id = parse_item_id(&args.id)?;
            let answer = match args.reply {
                Some(raw) => InboxAnswer::Permission {
                    reply: raw
                        .parse::<InboxReply>()
                        .map_err(|e| CliError::invalid("--reply", e.to_string()))?,
                    message: args.message,
                },
                None => {
                    let item = inbox.get(id).await?;
                    let questions = match &item.kind {
                        InboxKind::Question { questions } => questions.len(),
                        InboxKind::Permission { .. } => {
                            return Err(CliError::invalid(
                                "--answer",
                                "this is a permission request: answer it with --reply",
                            ))
                        }
                    };
                    let answers = if questions <= 1 {
                        vec![args.answer]
                    } else {
                        args.answer.into_iter().map(|label| vec![label]).collect()
                    };
                    InboxAnswer::Question { answers }
                }
            };
            let item = inbox.answer(id, answer, &operator()).await?;
            console.emit(&item, || resolved(&item))
        }
        InboxCommand::Reject { id } => {
            let id = parse_item_id(&id)?;
            let item = inbox.get(id).await?;
            let answer = match item.kind {
                InboxKind::Permission { .. } => InboxAnswer::Permission {
                    reply: InboxReply::Reject,
                    message: None,
                },
                InboxKind::Question { .. } => InboxAnswer::QuestionRejected,
            };
            let item = inbox.answer(id, answer, &operator()).await?;
            console.emit(&item, || resolved(&item))
        }
    }
}

/// What is asked, in one line.
fn summary(item: &InboxItem) -> String {
    match &item.kind {
        InboxKind::Permission {
            permission,
            patterns,
            ..
        } => format!("{permission}: {}", patterns.join(", ")),
        InboxKind::Question { questions } => questions
            .iter()
            .map(|q| {
                let options: Vec<&str> = q.options.iter().map(|o| o.label.as_str()).collect();
                format!("{} [{}]", q.question, options.join(" | "))
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Agent text without control characters (no terminal escapes from an agent's question).
fn printable(text: String) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn list(items: &[InboxItem]) -> String {
    if items.is_empty() {
        return "no items".to_owned();
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["id", "status", "kind", "asked", "session", "request", "by"]);
    for item in items {
        table.add_row([
            Cell::new(item.id),
            Cell::new(item.status),
            Cell::new(item.kind.name()),
            Cell::new(item.created_at.format("%Y-%m-%d %H:%M:%S")),
            Cell::new(
                item.session
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| item.remote_session.clone()),
            ),
            Cell::new(printable(summary(item))),
            Cell::new(
                item.resolution
                    .as_ref()
                    .map(|r| r.by.as_str())
                    .unwrap_or(""),
            ),
        ]);
    }
    table.to_string()
}

fn resolved(item: &InboxItem) -> String {
    let by = item
        .resolution
        .as_ref()
        .map(|r| r.by.as_str())
        .unwrap_or("?");
    format!(
        "{} {} by {by}: {}",
        item.id,
        item.status,
        printable(summary(item))
    )
}
