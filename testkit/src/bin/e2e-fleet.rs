//! `e2e-fleet`: what the browser end-to-end suite runs the orchestrator against — the fake LLM,
//! one REAL `opencode serve` driven by it, and a throwaway git repository to work on. Prints
//!
//! ```text
//! e2e-fleet: llm http://127.0.0.1:PORT/v1
//! e2e-fleet: opencode http://127.0.0.1:PORT password SECRET
//! e2e-fleet: repo /tmp/oio-repo-…
//! e2e-fleet: ready
//! ```
//!
//! and runs until SIGTERM or Ctrl-C, then stops OpenCode (its whole process group) and removes the
//! repository.
//!
//! The fake LLM answers every session the same way, by its prompt: the first turn runs one shell
//! command that writes `<slug>.txt` (slug: the first words of the prompt) after a short pause, so
//! the dashboard can show the session running; the second says what it wrote. A prompt containing
//! `[hang]` gets an answer that never ends — a session to cancel. A prompt containing `[ask]`
//! writes its file with the `write` tool instead, which this OpenCode server asks permission for
//! (`edit: ask`): the request lands in the orchestrator's inbox. A prompt containing `[budget]`
//! reports [`HUGE_USAGE`] input tokens on its first step: past the e2e server's session budget.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::opencode::{OpenCodeServer, Options};

/// How long the first answer of each session takes, so "running" is visible.
const THINKING: Duration = Duration::from_millis(1_500);
/// The input tokens a `[budget]` session's first step reports (scripts/test.sh caps a session at
/// far fewer).
const HUGE_USAGE: u64 = 10_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let llm = FakeLlm::start([]).await?;
    llm.set_responder(respond);
    let repo = testkit::git::temp_repo()?;
    let home = tempfile::tempdir().context("a directory for the OpenCode server")?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    let server = OpenCodeServer::start(
        home.path(),
        &llm,
        Options::default()
            .with_password(password.clone())
            // Edits wait for a person (the `[ask]` sessions); shell commands do not.
            .with_config(json!({"permission": {"edit": "ask", "bash": "allow"}})),
    )
    .await?;
    println!("e2e-fleet: llm {}", llm.base_url());
    println!(
        "e2e-fleet: opencode {} password {password}",
        server.base_url()
    );
    println!("e2e-fleet: repo {}", repo.path().display());
    println!("e2e-fleet: ready");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(server);
    drop(llm);
    Ok(())
}

/// The text of a message's `content` (a string, or an array of `{type: "text", text}` parts).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Lowercase letters and digits of the prompt's first five words, joined by `-`: safe in a shell
/// command and a file name.
fn slug(prompt: &str) -> String {
    let words: Vec<String> = prompt
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase()
        })
        .filter(|w| !w.is_empty())
        .take(5)
        .collect();
    if words.is_empty() {
        "work".into()
    } else {
        words.join("-")
    }
}

fn respond(body: &Value) -> Option<Reply> {
    let messages = body["messages"].as_array()?;
    let prompt = messages
        .iter()
        .find(|m| m["role"] == "user")
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    if prompt.contains("[hang]") {
        return Some(Reply::hang());
    }
    let file = format!("{}.txt", slug(&prompt));
    let answered = messages.iter().any(|m| m["role"] == "tool");
    Some(if answered {
        Reply::text(format!("Wrote {file}.")).with_usage(1_200, 24)
    } else if prompt.contains("[ask]") {
        Reply::tool_call(
            "write",
            json!({"filePath": file, "content": "written by the e2e fleet, with permission\n"}),
        )
        .with_usage(1_000, 40)
    } else if prompt.contains("[budget]") {
        Reply::tool_call(
            "bash",
            json!({
                "command": format!("echo 'written by a big spender' > {file}"),
                "description": format!("Write {file}"),
            }),
        )
        .with_usage(HUGE_USAGE, 40)
        .with_delay(THINKING)
    } else {
        Reply::tool_call(
            "bash",
            json!({
                "command": format!("echo 'written by the e2e fleet' > {file}"),
                "description": format!("Write {file}"),
            }),
        )
        .with_usage(1_000, 40)
        .with_delay(THINKING)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_shell_safe() {
        assert_eq!(
            slug("Define the data model; rm -rf / `x`"),
            "define-the-data-model-rm"
        );
        assert_eq!(slug("!!!"), "work");
    }

    #[test]
    fn a_hang_marker_hangs_and_turns_alternate() {
        let first = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "Write docs"}]}]});
        let reply = respond(&first).unwrap();
        assert_eq!(reply.finish_reason(), Some("tool_calls"));
        let second = json!({"messages": [
            {"role": "user", "content": "Write docs"},
            {"role": "tool", "content": "ok"}
        ]});
        assert_eq!(respond(&second).unwrap().finish_reason(), Some("stop"));
        let hang = json!({"messages": [{"role": "user", "content": "slow one [hang]"}]});
        assert_eq!(respond(&hang).unwrap().finish_reason(), None);
    }

    #[test]
    fn ask_and_budget_markers_pick_their_first_step() {
        let ask = json!({"messages": [{"role": "user", "content": "Save notes [ask]"}]});
        let reply = respond(&ask).unwrap();
        assert_eq!(reply.finish_reason(), Some("tool_calls"));
        assert!(format!("{reply:?}").contains("write"), "{reply:?}");
        let spend = json!({"messages": [{"role": "user", "content": "Spend it all [budget]"}]});
        let reply = respond(&spend).unwrap();
        assert!(
            format!("{reply:?}").contains(&HUGE_USAGE.to_string()),
            "{reply:?}"
        );
    }
}
