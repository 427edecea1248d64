//! `GET /metrics`: the storage gauges after real API calls, the exposition format, every declared
//! family present (histograms as real histograms), request ids, and the Grafana dashboard's
//! queries naming only families the server declares.
//!
//! The recorder is process-wide: every test module of this binary shares its counters, so counter
//! checks compare before and after (or read series of their own), and the storage gauges (set at
//! each scrape, under one lock) are exact.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use server::adapters::opencode::{OpenCodeClient, ResiliencePolicy};
use server::metrics::ALL;
use server::ports::AgentServer;
use support::fake_opencode::{FakeOpenCode, Reply};
use support::TestApp;

use crate::support;

async fn create_session(app: &TestApp, title: &str) -> String {
    let response = app
        .client
        .post(app.url("/api/v1/sessions"))
        .json(&json!({
            "title": title,
            "prompt": "Write a README",
            "workspace": "/tmp/some-repo",
            "priority": 5,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// Scraped without credentials: `/metrics` is open by design.
async fn scrape(app: &TestApp) -> (reqwest::header::HeaderMap, String) {
    let response = reqwest::Client::new()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

/// The value of one exact series (`name{labels}` as rendered), if present.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}

/// Every value of `family` whose labels contain `needle`, summed (0 when none).
fn sum_matching(body: &str, family: &str, needle: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(needle))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn sessions_by_status_and_queue_depth_follow_the_api() {
    let app = support::spawn_app().await;
    for title in ["one", "two", "three"] {
        create_session(&app, title).await;
    }
    let (headers, body) = scrape(&app).await;
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(value(&body, r#"oio_sessions{status="queued"}"#), Some(3.0));
    assert_eq!(value(&body, r#"oio_sessions{status="running"}"#), Some(0.0));
    assert_eq!(
        value(&body, r#"oio_sessions{status="cancelled"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&body, r#"oio_queue_depth{state="waiting"}"#),
        Some(3.0)
    );
    assert_eq!(
        value(&body, r#"oio_queue_depth{state="leased"}"#),
        Some(0.0)
    );
    let cancels_before = value(
        &body,
        r#"oio_session_transitions_total{from="queued",to="cancelled"}"#,
    )
    .expect("every legal transition is declared at zero");

    let id = create_session(&app, "four").await;
    let response = app
        .client
        .post(app.url(&format!("/api/v1/sessions/{id}/cancel")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    let (_, body) = scrape(&app).await;
    assert_eq!(value(&body, r#"oio_sessions{status="queued"}"#), Some(3.0));
    assert_eq!(
        value(&body, r#"oio_sessions{status="cancelled"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&body, r#"oio_queue_depth{state="waiting"}"#),
        Some(3.0)
    );
    let cancels_after = value(
        &body,
        r#"oio_session_transitions_total{from="queued",to="cancelled"}"#,
    )
    .unwrap();
    assert!(
        cancels_after >= cancels_before + 1.0,
        "{cancels_before} -> {cancels_after}"
    );
    assert!(
        sum_matching(&body, "oio_session_transitions_total", r#"to="queued""#) >= 4.0,
        "creating a session counts pending -> queued"
    );
}

#[tokio::test]
async fn every_declared_family_is_exposed_with_histograms_as_histograms() {
    let app = support::spawn_app().await;
    create_session(&app, "exercise").await;
    // An OpenCode client in this process records into the same recorder: one failed call (a 400
    // is not retried) and one that succeeds.
    // Named so no other client in the process shares its series: every test module records into
    // this recorder, and a port can be reused by a later fake.
    let fake = FakeOpenCode::start().await;
    fake.reply("GET", "/global/health", [Reply::Status(400)]);
    let server = format!("metrics-test-{}", uuid::Uuid::new_v4().simple());
    let client = OpenCodeClient::named(
        server.clone(),
        fake.url(),
        None,
        ResiliencePolicy::default(),
    )
    .unwrap();
    assert!(client.health().await.is_err());
    client.health().await.unwrap();

    let (_, body) = scrape(&app).await;
    for family in ALL {
        assert!(
            body.contains(&format!("# TYPE {family} ")),
            "{family} missing from /metrics:\n{body}"
        );
    }
    for histogram in [
        "oio_dispatch_latency_seconds",
        "oio_lock_wait_seconds",
        "oio_opencode_call_duration_seconds",
    ] {
        assert!(
            body.contains(&format!("# TYPE {histogram} histogram")),
            "{histogram} is not a histogram"
        );
    }
    assert!(body.contains(r#"oio_dispatch_latency_seconds_bucket{le="0.01"}"#));
    let errors = sum_matching(&body, "oio_opencode_call_errors_total", &server);
    assert_eq!(errors, 1.0, "one failed call to {server}");
    let calls = body
        .lines()
        .find(|l| {
            l.starts_with("oio_opencode_call_duration_seconds_count{")
                && l.contains(&server)
                && l.contains(r#"operation="health""#)
        })
        .expect("the calls' latency, by server and operation");
    assert!(calls.ends_with(" 2"), "{calls}");
    assert_eq!(
        sum_matching(&body, "oio_opencode_breaker_state", &server),
        0.0,
        "a 400 is the caller's fault: the breaker stays closed"
    );
    assert!(body
        .lines()
        .any(|l| l.starts_with("oio_opencode_breaker_state{") && l.contains(&server)));
}

#[tokio::test]
async fn responses_carry_a_request_id_and_keep_the_callers() {
    let app = support::spawn_app().await;
    let response = app.get("/healthz").await;
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let response = app
        .client
        .get(app.url("/metrics"))
        .header("x-request-id", "scrape-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "scrape-42");
}

/// Every `expr` in the dashboard, at any depth.
fn expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "query", Value::String(expr)) => out.push(expr.clone()),
                    _ => expressions(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}

/// The metric families an expression names: `oio_…` identifiers, histogram series suffixes
/// folded into their family.
fn families(expr: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find("oio_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|base| ALL.contains(base)))
            .unwrap_or(name);
        found.insert(family.to_owned());
        rest = &tail[end..];
    }
    found
}

#[test]
fn histogram_series_fold_into_their_family() {
    let expr = "histogram_quantile(0.95, sum by (le) (rate(oio_dispatch_latency_seconds_bucket[5m]))) + oio_tokens_total";
    assert_eq!(
        families(expr),
        BTreeSet::from([
            "oio_dispatch_latency_seconds".to_owned(),
            "oio_tokens_total".to_owned()
        ])
    );
    assert_eq!(
        families("rate(oio_nope_count[1m])"),
        BTreeSet::from(["oio_nope_count".to_owned()])
    );
}

#[test]
fn the_grafana_dashboard_queries_exactly_the_declared_families() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/oio.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();

    // A Grafana 10+ model with a Prometheus data source variable every panel uses.
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 38);
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(variables.iter().any(|v| v["type"] == "datasource"
        && v["query"] == "prometheus"
        && v["name"] == "datasource"));
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        assert!(
            !panel["targets"].as_array().unwrap().is_empty(),
            "{}",
            panel["title"]
        );
    }

    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| families(e)).collect();
    let declared: BTreeSet<String> = ALL.iter().map(|s| s.to_string()).collect();
    let undeclared: Vec<_> = used.difference(&declared).collect();
    assert!(undeclared.is_empty(), "dashboard queries {undeclared:?}");
    let unused: Vec<_> = declared.difference(&used).collect();
    assert!(unused.is_empty(), "no panel shows {unused:?}");
    assert!(exprs.iter().any(|e| e.contains("histogram_quantile(0.99")
        && e.contains("oio_dispatch_latency_seconds_bucket")));
}
