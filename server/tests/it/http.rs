//! The running orchestrator over HTTP: probes, the server-rendered dashboard, server functions,
//! and start-up failures.

use domain::SessionStatus;
use server::config::Settings;
use server::startup::Application;
use support::factories::SessionFactory;
use support::{seed_sessions, spawn_app, spawn_app_on_postgres, TestApp};

use crate::support;

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

#[tokio::test]
async fn readyz_shows_the_dispatch_queue_with_work_waiting_when_no_agent_server_is_configured() {
    let app = spawn_app().await;
    let lifecycle = server::application::SessionLifecycle::new(
        app.store.sessions.clone(),
        app.store.unit_of_work.clone(),
        app.store.queue.clone(),
        3,
    );
    for title in ["one", "two"] {
        lifecycle
            .create(server::application::CreateSessionRequest {
                title: title.into(),
                prompt: "do it".into(),
                workspace: "/srv/repo".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let body: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    // No OpenCode server: nothing is claimed, the work waits (and the app stays ready).
    assert_eq!(body["status"], "ready");
    assert_eq!(
        body["queue"],
        serde_json::json!({ "waiting": 2, "leased": 0, "expired": 0 })
    );
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
    seed_sessions(&app.store, &[&older]).await;
    seed_sessions(&app.store, &[&newer]).await;

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
    seed_sessions(&app.store, &[&hostile]).await;
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
    seed_sessions(&app.store, &[&failed]).await;
    seed_sessions(&app.store, &[&done]).await;
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
    seed_sessions(&app.store, &[&s]).await;
    let response = app
        .client
        .post(app.url("/api/sf/list_sessions"))
        .form(&[("status", "pending")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: domain::Page<domain::Session> = response.json().await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].title().as_str(), "over the wire");
    assert_eq!(page.next, None);
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

#[tokio::test]
async fn dashboard_pages_with_a_next_link_until_the_last_session() {
    let app = spawn_app().await;
    let t0 = support::factories::now();
    let sessions: Vec<domain::Session> = (0..app::api::DEFAULT_LIST_LIMIT as i64 + 20)
        .map(|i| {
            SessionFactory::new()
                .title(&format!("session number {i:03}"))
                .created_at(t0 - chrono::Duration::seconds(i))
                .build()
        })
        .collect();
    let refs: Vec<&domain::Session> = sessions.iter().collect();
    seed_sessions(&app.store, &refs).await;

    let first = app.get("/").await.text().await.unwrap();
    assert!(first.contains("100 session(s)"));
    assert!(first.contains("session number 000"));
    assert!(!first.contains("session number 100"));
    let href = first
        .split(r#"data-testid="next-page" href=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a next-page link")
        .replace("&amp;", "&");

    let second = app.get(&href).await.text().await.unwrap();
    assert!(second.contains("20 session(s)"), "the rest");
    assert!(second.contains("session number 100"));
    assert!(second.contains("session number 119"));
    assert!(!second.contains("session number 099"));
    assert!(
        !second.contains(r#"data-testid="next-page""#),
        "last page has no next"
    );
}

#[tokio::test]
async fn failing_migrations_stop_start_up_naming_the_database() {
    use sqlx::{Connection, Executor};
    let Some(db) = support::postgres::TestDatabase::create().await else {
        return;
    };
    // Something else already owns a `sessions` table of another shape.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    conn.execute("CREATE TABLE sessions (something_else INTEGER)")
        .await
        .unwrap();
    conn.close().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let settings = support::test_settings(dir.path(), Some(&db.url));
    let err = match Application::build(&settings).await {
        Ok(_) => panic!("start-up succeeded over a conflicting schema"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with("migrations failed on database postgres://"),
        "{err}"
    );
    assert!(
        err.contains(db.url.rsplit('/').next().unwrap()),
        "names the database: {err}"
    );
}

#[tokio::test]
async fn an_unreachable_opencode_server_is_reported_but_does_not_make_the_app_unready() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = support::test_settings(dir.path(), None);
    settings.opencode.servers = vec![server::config::OpenCodeServerSettings {
        url: url::Url::parse("http://127.0.0.1:1/").unwrap(),
        password: Some(secrecy::SecretString::from("never-shown".to_string())),
        capacity: 2,
    }];
    settings.opencode.resilience.health_check_interval_secs = 1;
    settings.opencode.resilience.connect_timeout_secs = 1;
    let app = Application::build(&settings).await.unwrap();
    let addr = app.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let body = loop {
        let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "storage is fine, so the app is ready"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        if body["opencode"][0]["healthy"] == false {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never marked unhealthy: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(body["opencode"][0]["capacity"], 2);
    assert_eq!(body["opencode"][0]["in_flight"], 0);
    assert!(
        !body.to_string().contains("never-shown"),
        "password leaked: {body}"
    );
    let _ = tx.send(());
}
