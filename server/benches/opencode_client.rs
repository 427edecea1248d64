//! Figures for the OpenCode adapter, printed (never asserted):
//! - create+prompt round trip through `OpenCodeClient` against the REAL `opencode serve` driven by
//!   the scripted fake LLM (a one-step text reply, so the figure is OpenCode + client overhead, not a
//!   model's thinking time): p50 / p99;
//! - SSE decoder throughput (events/s) over an in-memory stream cut into network-sized chunks.
//!
//! Run: `cargo bench -p server --bench opencode_client` (needs `npm ci` for the OpenCode binary).

use std::time::{Duration, Instant};

use server::adapters::opencode::{events::measure_decode, OpenCodeClient, ResiliencePolicy};
use server::bench::percentile;
use server::ports::{AgentServer, CreateSession, MessageId, PromptRequest};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::opencode::{OpenCodeServer, Options};
use url::Url;

const ROUND_TRIPS: usize = 40;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let figures = measure_decode(200_000, 16 * 1024).await;
    println!(
        "sse decode: {} events, {:.1} MB in {:.2?} -> {:.0} events/s",
        figures.events,
        figures.bytes as f64 / 1e6,
        figures.elapsed,
        figures.events_per_second()
    );

    let repo = testkit::git::temp_repo()?;
    let directory = repo.path().display().to_string();
    let llm = FakeLlm::start(std::iter::empty::<Reply>()).await?;
    let server = OpenCodeServer::start(repo.path(), &llm, Options::default()).await?;
    println!(
        "opencode {} ready in {:.2?}",
        server.version(),
        server.startup_time()
    );
    let client = OpenCodeClient::new(
        Url::parse(server.base_url())?,
        None,
        ResiliencePolicy::default(),
    )?;

    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..=ROUND_TRIPS {
        llm.push(Reply::text("ok"));
        let started = Instant::now();
        let session = client
            .create_session(&CreateSession {
                title: Some(format!("bench {i}")),
                directory: Some(directory.clone()),
                ..CreateSession::default()
            })
            .await?;
        client
            .prompt(
                &session.address(),
                &PromptRequest {
                    message_id: MessageId::generate(),
                    text: "say ok".into(),
                    agent: None,
                    model: None,
                },
            )
            .await?;
        // The first round trip warms the instance up (plugins, catalog); it is not a sample.
        if i > 0 {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    println!(
        "create+prompt round trip, {ROUND_TRIPS} sequential: p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        samples.last().copied().unwrap_or(Duration::ZERO)
    );
    server.stop().await?;
    Ok(())
}
