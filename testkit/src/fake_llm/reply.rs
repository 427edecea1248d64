//! The script language of the fake LLM: what one scripted [`Reply`] says and how it is delivered.
//!
//! A reply is plain data; turning it into OpenAI wire frames is `wire`'s job, and serving it is the
//! server's (`super`).

use std::time::Duration;

use serde_json::Value;

/// Token counts reported in a reply's `usage` (OpenAI names). `total_tokens` is their sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Reported as `usage.prompt_tokens` (OpenCode's `tokens.input`).
    pub prompt_tokens: u64,
    /// Reported as `usage.completion_tokens` (OpenCode's `tokens.output`).
    pub completion_tokens: u64,
}

impl Usage {
    /// `prompt_tokens + completion_tokens`, sent as `usage.total_tokens`.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

impl Default for Usage {
    /// Non-zero and distinct so a test can tell the numbers really came from the fake.
    fn default() -> Self {
        Usage {
            prompt_tokens: 120,
            completion_tokens: 30,
        }
    }
}

/// One function call the model asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// The tool's name as OpenCode offers it (`write`, `bash`, `edit`, `read`, ...).
    pub name: String,
    /// The tool's input; sent as the JSON-encoded `function.arguments` string.
    pub arguments: Value,
}

/// What a reply contains.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyKind {
    /// An assistant text answer, finishing with `finish_reason: "stop"`.
    Text(String),
    /// One or more tool calls, finishing with `finish_reason: "tool_calls"`.
    ToolCalls(Vec<ToolCall>),
    /// Headers and the first chunk, then nothing until the client goes away or the fake stops.
    Hang,
    /// An HTTP error instead of a completion.
    Status {
        /// The HTTP status code (e.g. 429, 500).
        code: u16,
        /// Sent as `retry-after` (whole seconds, rounded up) and `retry-after-ms`.
        retry_after: Option<Duration>,
    },
}

/// One scripted answer of the fake LLM, consumed by one request that offers tools.
///
/// ```
/// use std::time::Duration;
/// use serde_json::json;
/// use testkit::fake_llm::Reply;
///
/// let script = vec![
///     Reply::tool_call("write", json!({"filePath": "/tmp/x/hello.txt", "content": "hi"})),
///     Reply::text("Done.").with_usage(1_000, 50).with_chunk_delay(Duration::from_millis(20)),
/// ];
/// # let _ = script;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// What is said.
    pub kind: ReplyKind,
    /// The `usage` reported at the end of the reply.
    pub usage: Usage,
    /// Waited before the first chunk (or before the whole answer when not streaming).
    pub first_chunk_delay: Duration,
    /// Waited between two chunks of a streamed answer: a slow stream.
    pub chunk_delay: Duration,
}

impl Reply {
    fn new(kind: ReplyKind) -> Self {
        Reply {
            kind,
            usage: Usage::default(),
            first_chunk_delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
        }
    }

    /// A text answer that ends the turn (`finish_reason: "stop"`).
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(ReplyKind::Text(text.into()))
    }

    /// A single tool call, e.g. `Reply::tool_call("write", json!({"filePath": p, "content": c}))`.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Self::tool_calls([(name, arguments)])
    }

    /// Several tool calls in one assistant turn (parallel tool calls), in order.
    pub fn tool_calls<N: Into<String>>(calls: impl IntoIterator<Item = (N, Value)>) -> Self {
        let calls: Vec<ToolCall> = calls
            .into_iter()
            .map(|(name, arguments)| ToolCall {
                name: name.into(),
                arguments,
            })
            .collect();
        assert!(
            !calls.is_empty(),
            "Reply::tool_calls needs at least one call"
        );
        Self::new(ReplyKind::ToolCalls(calls))
    }

    /// Starts answering, then never finishes: for abort and timeout tests. The stream ends only
    /// when the client disconnects (e.g. OpenCode aborts) or the [`FakeLlm`](super::FakeLlm) drops.
    pub fn hang() -> Self {
        Self::new(ReplyKind::Hang)
    }

    /// An HTTP error (`429`, `500`, ...) with an OpenAI-style error body instead of a completion.
    ///
    /// # Panics
    /// When `code` is not a 4xx or 5xx status: anything else is not an error reply.
    pub fn status(code: u16, retry_after: Option<Duration>) -> Self {
        assert!(
            (400..=599).contains(&code),
            "Reply::status wants an HTTP error code, got {code}"
        );
        Self::new(ReplyKind::Status { code, retry_after })
    }

    /// Reports these token counts in the reply's `usage`.
    pub fn with_usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        self.usage = Usage {
            prompt_tokens,
            completion_tokens,
        };
        self
    }

    /// Waits this long before the first chunk (headers of a stream are sent at once).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.first_chunk_delay = delay;
        self
    }

    /// Waits this long between chunks: a slow stream.
    pub fn with_chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// The `finish_reason` this reply ends with, if it ends at all.
    pub fn finish_reason(&self) -> Option<&'static str> {
        match self.kind {
            ReplyKind::Text(_) => Some("stop"),
            ReplyKind::ToolCalls(_) => Some("tool_calls"),
            ReplyKind::Hang | ReplyKind::Status { .. } => None,
        }
    }
}
