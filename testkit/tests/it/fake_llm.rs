//! The fake LLM over real HTTP: its OpenAI stream format, its script semantics, its error and
//! timing replies. These pin what OpenCode's `@ai-sdk/openai-compatible` client relies on.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply, DEFAULT_TEXT, MODEL_ID, TITLE};

/// A tool definition as OpenCode sends them: its presence makes a request an agent turn.
fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "write", "parameters": {"type": "object"}}}])
}

fn agent_body(stream: bool) -> Value {
    json!({
        "model": MODEL_ID,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": tools(),
    })
}

fn title_body() -> Value {
    json!({
        "model": MODEL_ID,
        "stream": true,
        "messages": [{"role": "system", "content": "Generate a title"}, {"role": "user", "content": "hi"}],
    })
}

async fn post(llm: &FakeLlm, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", llm.base_url()))
        .json(body)
        .send()
        .await
        .expect("request reaches the fake")
}

/// Splits an SSE body into its `data:` payloads, checking the framing on the way.
fn data_frames(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "SSE body must end with a blank line: {body:?}"
    );
    body.split_terminator("\n\n")
        .map(|frame| {
            frame
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("frame without `data: `: {frame:?}"))
                .to_owned()
        })
        .collect()
}

/// The JSON chunks of a complete stream, checking it ends with `[DONE]` and nothing else.
fn chunks(body: &str) -> Vec<Value> {
    let mut frames = data_frames(body);
    assert_eq!(
        frames.pop().as_deref(),
        Some("[DONE]"),
        "stream must end with [DONE]"
    );
    frames
        .iter()
        .map(|frame| {
            let chunk: Value = serde_json::from_str(frame)
                .unwrap_or_else(|e| panic!("chunk is not JSON ({e}): {frame}"));
            assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
            assert!(chunk["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("chatcmpl-")));
            assert_eq!(chunk["model"], MODEL_ID);
            chunk
        })
        .collect()
}

fn content_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect()
}

fn finish_reasons(chunks: &[Value]) -> Vec<&str> {
    chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/finish_reason")
                .and_then(Value::as_str)
        })
        .collect()
}

fn usage_of(chunks: &[Value]) -> Value {
    let with_usage: Vec<&Value> = chunks.iter().filter(|c| c.get("usage").is_some()).collect();
    assert_eq!(with_usage.len(), 1, "exactly one usage chunk");
    let last = chunks.last().expect("chunks");
    assert!(
        std::ptr::eq(with_usage[0], last),
        "usage comes in the last chunk"
    );
    assert_eq!(last["choices"], json!([]), "the usage chunk has no choices");
    last["usage"].clone()
}

#[tokio::test]
async fn a_text_reply_streams_openai_chunks_with_usage_and_done() {
    let llm = FakeLlm::start([Reply::text("Hello from the fake.").with_usage(1234, 56)])
        .await
        .unwrap();
    let response = post(&llm, &agent_body(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let chunks = chunks(&response.text().await.unwrap());

    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.len() > 4, "the text is streamed in pieces");
    assert_eq!(content_of(&chunks), "Hello from the fake.");
    assert_eq!(finish_reasons(&chunks), vec!["stop"]);
    assert_eq!(
        usage_of(&chunks),
        json!({"prompt_tokens": 1234, "completion_tokens": 56, "total_tokens": 1290})
    );
    assert_eq!(llm.remaining(), 0);
}

#[tokio::test]
async fn tool_calls_stream_as_well_formed_deltas() {
    let write = json!({"filePath": "/tmp/x/hello.txt", "content": "héllo\nwörld"});
    let bash = json!({"command": "ls", "description": "list"});
    let llm = FakeLlm::start([Reply::tool_calls([
        ("write", write.clone()),
        ("bash", bash.clone()),
    ])])
    .await
    .unwrap();
    let chunks = chunks(&post(&llm, &agent_body(true)).await.text().await.unwrap());

    assert_eq!(content_of(&chunks), "", "a tool-call reply carries no text");
    assert_eq!(finish_reasons(&chunks), vec!["tool_calls"]);
    usage_of(&chunks);

    // Group the deltas per tool-call index, as a client does.
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls"))
        .flat_map(|calls| calls.as_array().expect("tool_calls is an array"))
        .collect();
    for (index, (name, arguments)) in [("write", &write), ("bash", &bash)].into_iter().enumerate() {
        let mine: Vec<&&Value> = deltas.iter().filter(|d| d["index"] == index).collect();
        let first = mine[0];
        assert!(
            first["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("call_")),
            "{first}"
        );
        assert_eq!(first["type"], "function");
        assert_eq!(first["function"]["name"], name);
        assert!(mine.len() > 2, "arguments arrive in several pieces");
        for later in &mine[1..] {
            assert!(later.get("id").is_none() && later["function"].get("name").is_none());
        }
        let joined: String = mine
            .iter()
            .map(|d| {
                d["function"]["arguments"]
                    .as_str()
                    .expect("arguments is a string")
            })
            .collect();
        let parsed: Value = serde_json::from_str(&joined).expect("arguments join into JSON");
        assert_eq!(&parsed, arguments);
    }
}

#[tokio::test]
async fn title_requests_get_a_title_and_do_not_consume_the_script() {
    let llm = FakeLlm::start([Reply::text("scripted")]).await.unwrap();

    let title = chunks(&post(&llm, &title_body()).await.text().await.unwrap());
    assert_eq!(content_of(&title), TITLE);
    assert_eq!(
        llm.remaining(),
        1,
        "the title request left the script alone"
    );

    let agent = chunks(&post(&llm, &agent_body(true)).await.text().await.unwrap());
    assert_eq!(content_of(&agent), "scripted");
    assert_eq!(llm.remaining(), 0);

    // Script exhausted: a plain text that ends the turn rather than an error or a hang.
    let after = chunks(&post(&llm, &agent_body(true)).await.text().await.unwrap());
    assert_eq!(content_of(&after), DEFAULT_TEXT);
    assert_eq!(finish_reasons(&after), vec!["stop"]);

    let recorded = llm.requests();
    assert_eq!(
        recorded.iter().map(|r| r.is_title).collect::<Vec<_>>(),
        [true, false, false]
    );
    assert_eq!(
        recorded.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(recorded[0].reply.is_none());
    assert_eq!(recorded[1].reply, Some(Reply::text("scripted")));
    assert!(recorded[2].reply.is_none());
    assert_eq!(recorded[1].tool_names(), ["write"]);
    assert!(recorded[1].is_streaming());
    assert_eq!(llm.agent_requests().len(), 2);
}

#[tokio::test]
async fn pushed_replies_are_served_in_order() {
    let llm = FakeLlm::start([]).await.unwrap();
    llm.push(Reply::text("first"));
    llm.push(Reply::text("second"));
    for expected in ["first", "second"] {
        let body = post(&llm, &agent_body(true)).await.text().await.unwrap();
        assert_eq!(content_of(&chunks(&body)), expected);
    }
}

#[tokio::test]
async fn a_status_reply_is_an_http_error_with_retry_after() {
    let llm = FakeLlm::start([
        Reply::status(429, Some(Duration::from_millis(1500))),
        Reply::status(500, None),
    ])
    .await
    .unwrap();

    let limited = post(&llm, &agent_body(true)).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2", "seconds, rounded up");
    assert_eq!(limited.headers()["retry-after-ms"], "1500");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_exceeded");

    let failed = post(&llm, &agent_body(true)).await;
    assert_eq!(failed.status(), 500);
    assert!(failed.headers().get("retry-after").is_none());
    let body: Value = failed.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(llm.remaining(), 0, "error replies consume the script too");
}

#[tokio::test]
async fn non_streaming_requests_get_a_chat_completion() {
    let llm = FakeLlm::start([
        Reply::tool_call("write", json!({"filePath": "/a", "content": "b"})),
        Reply::text("all done").with_usage(10, 2),
    ])
    .await
    .unwrap();

    let tool: Value = post(&llm, &agent_body(false)).await.json().await.unwrap();
    assert_eq!(tool["object"], "chat.completion");
    assert_eq!(tool["choices"][0]["finish_reason"], "tool_calls");
    let call = &tool["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "write");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"filePath": "/a", "content": "b"}));

    let text: Value = post(&llm, &agent_body(false)).await.json().await.unwrap();
    assert_eq!(text["choices"][0]["message"]["content"], "all done");
    assert_eq!(text["choices"][0]["finish_reason"], "stop");
    assert_eq!(text["usage"]["total_tokens"], 12);
}

#[tokio::test]
async fn delays_hold_the_first_chunk_and_slow_the_stream() {
    let llm = FakeLlm::start([Reply::text("a b c d")
        .with_delay(Duration::from_millis(300))
        .with_chunk_delay(Duration::from_millis(50))])
    .await
    .unwrap();
    let started = Instant::now();
    let mut response = post(&llm, &agent_body(true)).await;
    let headers_after = started.elapsed();
    let first = response.chunk().await.unwrap().expect("a first chunk");
    let first_after = started.elapsed();
    let mut body = String::from_utf8(first.to_vec()).unwrap();
    while let Some(more) = response.chunk().await.unwrap() {
        body.push_str(std::str::from_utf8(&more).unwrap());
    }
    let done_after = started.elapsed();

    assert!(
        headers_after < Duration::from_millis(300),
        "headers come at once: {headers_after:?}"
    );
    assert!(
        first_after >= Duration::from_millis(300),
        "first chunk waited: {first_after:?}"
    );
    // role + 4 words + finish + usage + [DONE] = 8 frames, 7 gaps of 50 ms after the first.
    assert!(
        done_after >= Duration::from_millis(300 + 7 * 50),
        "slow stream: {done_after:?}"
    );
    assert_eq!(content_of(&chunks(&body)), "a b c d");
}

#[tokio::test]
async fn a_hanging_reply_sends_its_first_chunk_then_nothing_until_the_fake_stops() {
    let llm = FakeLlm::start([Reply::hang()]).await.unwrap();
    let mut response = post(&llm, &agent_body(true)).await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().expect("the first chunk");
    let first = data_frames(std::str::from_utf8(&first).unwrap());
    let chunk: Value = serde_json::from_str(&first[0]).unwrap();
    assert_eq!(chunk["choices"][0]["delta"]["role"], "assistant");

    let more = tokio::time::timeout(Duration::from_millis(500), response.chunk()).await;
    assert!(more.is_err(), "nothing after the first chunk: {more:?}");
    assert_eq!(llm.open_streams(), 1);

    drop(llm);
    let end = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the stream ends when the fake drops");
    assert!(
        !matches!(end, Ok(Some(_))),
        "no more data, only the end: {end:?}"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_closes_the_hanging_stream() {
    let llm = FakeLlm::start([Reply::hang()]).await.unwrap();
    let mut response = post(&llm, &agent_body(true)).await;
    response.chunk().await.unwrap().expect("the first chunk");
    assert_eq!(llm.open_streams(), 1);
    // What an abort does to the model request: the client drops the connection.
    drop(response);
    let deadline = Instant::now() + Duration::from_secs(5);
    while llm.open_streams() > 0 {
        assert!(Instant::now() < deadline, "the stream stayed open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn records_tool_results_and_wakes_waiters() {
    let llm = FakeLlm::start([]).await.unwrap();
    let waiter = llm.wait_for_agent_requests(1, Duration::from_secs(5));
    let sender = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let body = json!({
            "model": MODEL_ID,
            "stream": true,
            "tools": tools(),
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "write", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "Wrote file successfully."},
            ],
        });
        post(&llm, &body).await.text().await.unwrap()
    };
    let (seen, _) = tokio::join!(waiter, sender);
    let seen = seen.expect("the waiter wakes");
    assert_eq!(seen.len(), 1);
    let results = seen[0].tool_results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["tool_call_id"], "call_1");
    assert_eq!(seen[0].messages().len(), 3);

    let timeout = llm
        .wait_for_agent_requests(2, Duration::from_millis(100))
        .await;
    assert!(timeout.is_err(), "a second request never came");
}

#[tokio::test]
async fn lists_its_model() {
    let llm = FakeLlm::start([]).await.unwrap();
    let models: Value = reqwest::get(format!("{}/models", llm.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], MODEL_ID);
}
