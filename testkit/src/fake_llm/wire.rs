//! OpenAI chat-completions wire format: turns a [`Reply`] into `chat.completion.chunk` SSE frames or
//! a `chat.completion` object, the way the OpenAI API (and so `@ai-sdk/openai-compatible`) expects.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::reply::{Reply, ReplyKind, ToolCall, Usage};

/// The SSE frame that ends every OpenAI stream.
pub(super) const DONE_FRAME: &str = "data: [DONE]\n\n";

/// Identity shared by all chunks of one completion, as OpenAI repeats it in each chunk.
pub(super) struct Completion {
    id: String,
    created: u64,
    model: String,
}

impl Completion {
    pub(super) fn new(model: &str) -> Self {
        Completion {
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            model: model.to_owned(),
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        frame(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }))
    }

    /// The last chunk, as OpenAI sends it with `stream_options.include_usage`: no choices, only usage.
    fn usage_chunk(&self, usage: &Usage) -> String {
        frame(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_json(usage),
        }))
    }

    /// Every frame of a streamed reply, in order, `[DONE]` included. A hanging reply yields only its
    /// first frame: the caller then holds the stream open. Error replies have no frames.
    pub(super) fn stream_frames(&self, reply: &Reply) -> Vec<String> {
        // The role comes alone first, as OpenAI does; for a hang it is the only frame ever sent.
        let mut frames = vec![self.chunk(json!({"role": "assistant", "content": null}), None)];
        match &reply.kind {
            ReplyKind::Text(text) => {
                frames.extend(
                    text_pieces(text).map(|piece| self.chunk(json!({"content": piece}), None)),
                );
            }
            ReplyKind::ToolCalls(calls) => {
                for (index, call) in calls.iter().enumerate() {
                    frames.extend(self.tool_call_chunks(index, call));
                }
            }
            ReplyKind::Hang => return frames,
            ReplyKind::Status { .. } => return Vec::new(),
        }
        frames.push(self.chunk(json!({}), reply.finish_reason()));
        frames.push(self.usage_chunk(&reply.usage));
        frames.push(DONE_FRAME.to_owned());
        frames
    }

    /// A tool call as OpenAI streams it: the first delta names it (id, type, name, empty
    /// arguments), later deltas carry only `index` and pieces of the JSON arguments string. The
    /// pieces are never valid JSON alone, so the client really has to concatenate them.
    fn tool_call_chunks(&self, index: usize, call: &ToolCall) -> Vec<String> {
        let mut chunks = vec![self.chunk(
            json!({"tool_calls": [{
                "index": index,
                "id": format!("call_{}", uuid::Uuid::new_v4().simple()),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }]}),
            None,
        )];
        let arguments = call.arguments.to_string();
        chunks.extend(split_in(&arguments, 3).into_iter().map(|piece| {
            self.chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                None,
            )
        }));
        chunks
    }

    /// A non-streamed `chat.completion` object. A hang or an error has none.
    pub(super) fn completion(&self, reply: &Reply) -> Option<Value> {
        let message = match &reply.kind {
            ReplyKind::Text(text) => json!({"role": "assistant", "content": text}),
            ReplyKind::ToolCalls(calls) => json!({
                "role": "assistant",
                "content": null,
                "tool_calls": calls.iter().map(|call| json!({
                    "id": format!("call_{}", uuid::Uuid::new_v4().simple()),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments.to_string()},
                })).collect::<Vec<_>>(),
            }),
            ReplyKind::Hang | ReplyKind::Status { .. } => return None,
        };
        Some(json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason()}],
            "usage": usage_json(&reply.usage),
        }))
    }
}

/// An OpenAI-style error body; `type` follows OpenAI's names so clients classify it as they would
/// a real provider's error.
pub(super) fn error_body(code: u16) -> Value {
    let kind = match code {
        429 => "rate_limit_exceeded",
        401 | 403 => "invalid_request_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    };
    json!({"error": {
        "message": format!("fake LLM: scripted HTTP {code}"),
        "type": kind,
        "param": null,
        "code": kind,
    }})
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens(),
    })
}

fn frame(value: &Value) -> String {
    format!("data: {value}\n\n")
}

/// Word-sized pieces whose concatenation is exactly `text` (spaces kept), so the client's
/// incremental text assembly is exercised.
fn text_pieces(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(' ')
}

/// Splits `s` into at most `parts` non-empty pieces on char boundaries.
fn split_in(s: &str, parts: usize) -> Vec<&str> {
    let chars = s.chars().count();
    let size = chars.div_ceil(parts.max(1)).max(1);
    let mut pieces = Vec::with_capacity(parts);
    let mut rest = s;
    while !rest.is_empty() {
        let cut = rest
            .char_indices()
            .nth(size)
            .map_or(rest.len(), |(index, _)| index);
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_in_keeps_every_char_and_respects_boundaries() {
        let s = r#"{"content":"héllo wörld ✓"}"#;
        let pieces = split_in(s, 3);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), s);
        assert!(pieces.iter().all(|p| !p.is_empty()));
        assert_eq!(split_in("ab", 3), vec!["a", "b"]);
        assert!(split_in("", 3).is_empty());
    }

    #[test]
    fn text_pieces_concatenate_back() {
        let text = "one two  three";
        assert_eq!(text_pieces(text).collect::<String>(), text);
        assert_eq!(text_pieces(text).count(), 4);
    }
}
