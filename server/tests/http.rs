//! The running orchestrator over HTTP: probes, the server-rendered dashboard, server functions,
//! and start-up failures.

mod support;

use domain::SessionStatus;
use server::config::Settings;
use server::startup::Application;
use support::factories::SessionFactory;
use support::{spawn_app, spawn_app_on_postgres, TestApp};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "status": "ok" }));
}

#[tokio::test]
async fn readyz_reports_the_database_check() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
}

async fn dashboard_lists_stored_sessions_newest_first(app: &TestApp) {
    let t0 = support::factories::now();
    let older = SessionFactory::new()
        .title("older session")
        .created_at(t0 - chrono::Duration::minutes(1))
        .build();
    let newer = SessionFactory::new()
        .title("newer session")
        .status(SessionStatus::Failed)
        .created_at(t0)
        .build();
    app.store.sessions.insert(&older).await.unwrap();
    app.store.sessions.insert(&newer).await.unwrap();

    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let newer_at = html.find("newer session").expect("newer session rendered");
    let older_at = html.find("older session").expect("older session rendered");
    assert!(newer_at < older_at, "newest first");
    assert!(html.contains("2 session(s)"), "count rendered");
    assert!(html.contains(r#"data-status="failed""#));
}

#[tokio::test]
async fn dashboard_is_server_rendered_from_sqlite() {
    let app = spawn_app().await;
    dashboard_lists_stored_sessions_newest_first(&app).await;
}

#[tokio::test]
async fn dashboard_is_server_rendered_from_postgres() {
    let Some(app) = spawn_app_on_postgres().await else {
        return;
    };
    dashboard_lists_stored_sessions_newest_first(&app).await;
}

#[tokio::test]
async fn dashboard_escapes_untrusted_titles() {
    let app = spawn_app().await;
    let hostile = SessionFactory::new()
        .title(r#"<script>alert("pwned")</script> & <b>bold</b>"#)
        .build();
    app.store.sessions.insert(&hostile).await.unwrap();
    let html = app.get("/").await.text().await.unwrap();
    assert!(
        html.contains("&lt;script&gt;alert("),
        "title rendered as escaped text"
    );
    assert!(
        !html.contains(r#"<script>alert("pwned")"#),
        "raw markup injected"
    );
    assert!(!html.contains("<b>bold</b>"), "raw markup injected");
}

#[tokio::test]
async fn dashboard_filter_shows_only_the_chosen_status() {
    let app = spawn_app().await;
    let failed = SessionFactory::new()
        .title("the failed one")
        .status(SessionStatus::Failed)
        .build();
    let done = SessionFactory::new()
        .title("the completed one")
        .status(SessionStatus::Completed)
        .build();
    app.store.sessions.insert(&failed).await.unwrap();
    app.store.sessions.insert(&done).await.unwrap();
    let html = app.get("/?status=failed").await.text().await.unwrap();
    assert!(html.contains("the failed one"));
    assert!(!html.contains("the completed one"));
    assert!(
        html.contains(r#"<option value="failed" selected>"#),
        "choice kept"
    );
}

#[tokio::test]
async fn list_sessions_rejects_an_unknown_status_with_400_naming_the_field() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/sf/list_sessions"))
        .form(&[("status", "sleeping")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    assert!(body.contains("status"), "{body}");
    assert!(body.contains("sleeping"), "{body}");
}

#[tokio::test]
async fn list_sessions_returns_the_stored_sessions_as_json() {
    let app = spawn_app().await;
    let s = SessionFactory::new().title("over the wire").build();
    app.store.sessions.insert(&s).await.unwrap();
    let response = app
        .client
        .post(app.url("/api/sf/list_sessions"))
        .form(&[("status", "pending")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sessions: Vec<domain::Session> = response.json().await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].title().as_str(), "over the wire");
}

#[tokio::test]
async fn an_unreachable_database_fails_start_up_naming_the_url_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = support::test_settings(
        dir.path(),
        Some("postgres://postgres:hunter2@127.0.0.1:1/oio"),
    );
    settings.database.acquire_timeout_secs = 1;
    let err = match Application::build(&settings).await {
        Ok(_) => panic!("start-up succeeded against a closed port"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "password leaked: {err}");
}

#[tokio::test]
async fn a_file_setting_is_used_when_no_environment_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oio.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
            dir.path().join("from-file").display()
        ),
    )
    .unwrap();
    let settings = Settings::load_from(Some(&file), Vec::new()).unwrap();
    let app = Application::build(&settings).await.unwrap();
    assert_ne!(app.local_addr().port(), 0);
    assert!(
        dir.path().join("from-file/oio.db").exists(),
        "sqlite file created under data_dir"
    );
}
