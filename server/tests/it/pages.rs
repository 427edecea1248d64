//! The server-rendered dashboard pages: each answers 200 with its key content from the HTML alone
//! (no JavaScript), untrusted text is escaped, forms work as plain posts, unknown ids are 404.

use domain::{
    AgentCapability, NewSession, Prompt, Session, SessionId, SessionStatus, SessionTitle,
    WorkspacePath,
};
use server::ports::{Aggregate, ChangeSet, NewEvent};
use support::factories::{now, AgentFactory, SessionFactory};
use support::{seed_agents, seed_sessions, spawn_app, TestApp};
use uuid::Uuid;

use crate::support;

const XSS: &str = "<script>alert(1)</script>";

/// A page as a browser without JavaScript gets it. Bounded, so a stuck render fails the test.
async fn html(app: &TestApp, path: &str) -> (u16, String) {
    let response = support::bearer_client_builder(&app.admin_token)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
        .get(app.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A client that does not follow redirects and posts like a browser without JavaScript.
fn form_client(app: &TestApp) -> reqwest::Client {
    support::bearer_client_builder(&app.admin_token)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Posts `fields` to a server function as a plain HTML form; returns the status and `Location`.
async fn post_form(app: &TestApp, endpoint: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let response = form_client(app)
        .post(app.url(&format!("/api/sf/{endpoint}")))
        .header("accept", "text/html,application/xhtml+xml")
        .header("referer", app.url("/"))
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location)
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// A queued session whose prompt and workspace patch carry markup, with its full event log.
async fn seed_hostile_session(app: &TestApp) -> Session {
    let at = now();
    let mut session = Session::new(
        NewSession {
            id: SessionId::from_uuid(Uuid::new_v4()),
            title: SessionTitle::new("hostile output").unwrap(),
            prompt: Prompt::new(format!("please {XSS} now")).unwrap(),
            workspace: WorkspacePath::new("/srv/work/repo").unwrap(),
            agent: None,
            parent_task: None,
            max_attempts: 3,
        },
        at,
    )
    .unwrap();
    let created = session.created_event();
    let queued = session.enqueue(at).unwrap();
    let patch =
        format!("--- a/index.html\n+++ b/index.html\n@@ -1 +1 @@\n-old line\n+{XSS}\n unchanged");
    let mut changes = ChangeSet::new();
    changes
        .insert_session(&session)
        .event(&created)
        .event(&queued)
        .event(NewEvent::new(
            Aggregate::Session,
            session.id().as_uuid(),
            "workspace",
            serde_json::json!({
                "patch": patch,
                "patch_truncated": true,
                "files": [{"path": "index.html", "additions": 1, "deletions": 0}],
            }),
            at,
        ));
    app.store.unit_of_work.commit(changes).await.unwrap();
    session
}

#[tokio::test]
async fn the_overview_shows_fleet_counts_chart_failures_and_the_nav() {
    let app = spawn_app().await;
    let failed = SessionFactory::new()
        .title("broke the build")
        .status(SessionStatus::Failed)
        .build();
    let done = SessionFactory::new()
        .title("went fine")
        .status(SessionStatus::Completed)
        .build();
    seed_sessions(&app.store, &[&failed, &done]).await;

    let (status, html) = html(&app, "/").await;
    assert_eq!(status, 200);
    for nav in ["OVERVIEW", "SESSIONS", "TASKS", "AGENTS", "STATUS"] {
        assert!(html.contains(&format!(">{nav}</a>")), "nav {nav}");
    }
    assert!(
        html.contains(r#"data-testid="fleet-empty""#),
        "no fleet configured"
    );
    assert!(html.contains("queue: 0 waiting"), "queue depth shown");
    assert!(html.contains(r#"data-testid="status-count" data-status="failed""#));
    assert!(html.contains(r#"data-testid="throughput-chart""#));
    assert!(html.contains(r#"data-testid="cost-chart""#));
    // Both sessions finished just now: the current hour's bar is drawn, and the totals say so.
    assert!(count(&html, "<rect") >= 4, "bars drawn");
    assert!(html.contains("2 finished (1 failed)"), "24 h totals");
    assert_eq!(count(&html, r#"data-testid="failure-row""#), 1);
    assert!(html.contains(&format!(r#"href="/sessions/{}""#, failed.id())));
    assert!(
        html.contains("agent gave up"),
        "the failure's error is shown"
    );
}

#[tokio::test]
async fn the_session_list_filters_by_status_and_agent_and_pages_with_a_cursor() {
    let app = spawn_app().await;
    let t0 = now();
    let a = SessionFactory::new()
        .title("api work")
        .agent("api")
        .created_at(t0 - chrono::Duration::seconds(10))
        .build();
    let b = SessionFactory::new()
        .title("ui work")
        .agent("ui")
        .status(SessionStatus::Failed)
        .created_at(t0)
        .build();
    seed_sessions(&app.store, &[&a, &b]).await;

    let (status, page) = html(&app, "/sessions?agent=api").await;
    assert_eq!(status, 200);
    assert!(page.contains("api work") && !page.contains("ui work"));
    assert!(
        page.contains(r#"value="api""#),
        "the agent filter keeps its value"
    );

    let (_, page) = html(&app, "/sessions?status=failed").await;
    assert!(page.contains("ui work") && !page.contains("api work"));
    assert!(page.contains(r#"<option value="failed" selected>"#));

    // Keyset pagination: one per page, newest first; NEXT carries the cursor.
    let (_, first) = html(&app, "/sessions?limit=1").await;
    assert!(first.contains("ui work") && !first.contains("api work"));
    let start = first.find("/sessions?after=").expect("a next link");
    let end = start + first[start..].find('"').unwrap();
    let next = first[start..end].replace("&amp;", "&");
    assert!(next.contains("limit=1"), "{next}");
    let (status, second) = html(&app, &next).await;
    assert_eq!(status, 200);
    assert!(second.contains("api work") && !second.contains("ui work"));
}

#[tokio::test]
async fn the_session_detail_shows_everything_and_escapes_untrusted_text() {
    let app = spawn_app().await;
    let session = seed_hostile_session(&app).await;

    let (status, html) = html(&app, &format!("/sessions/{}", session.id())).await;
    assert_eq!(status, 200);
    assert!(html.contains("hostile output"));
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "prompt and patch shown escaped"
    );
    assert!(!html.contains("<script>alert"), "raw markup injected");
    assert!(html.contains(r#"data-testid="session-status""#));
    assert!(html.contains(">queued</td>"), "status shown");
    // Timeline from the status_changed event; every event in the log.
    assert_eq!(count(&html, r#"data-testid="timeline-row""#), 1);
    assert!(html.contains("<td>pending</td>"));
    assert_eq!(count(&html, r#"data-testid="event-row""#), 3);
    assert!(html.contains(r#"data-event-type="session.workspace""#));
    // The diff: escaped, lines marked, truncation and files noted.
    assert!(html.contains(r#"data-testid="diff""#));
    assert!(html.contains(r#"data-line="add""#) && html.contains(r#"data-line="del""#));
    assert!(html.contains(r#"data-testid="diff-truncated""#));
    assert!(html.contains("<li>index.html</li>"));
    // Queued: cancellable, not retryable.
    assert!(html.contains(r#"data-testid="cancel""#));
    assert!(!html.contains(r#"data-testid="retry""#));
}

#[tokio::test]
async fn unknown_or_malformed_session_ids_are_404_pages() {
    let app = spawn_app().await;
    for path in [
        format!("/sessions/{}", Uuid::new_v4()),
        "/sessions/not-a-uuid".to_owned(),
        format!("/tasks/{}", Uuid::new_v4()),
        "/agents/nobody".to_owned(),
    ] {
        let (status, html) = html(&app, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("404 // NOT FOUND"), "{path}");
    }
}

#[tokio::test]
async fn cancel_and_retry_work_as_plain_form_posts() {
    let app = spawn_app().await;
    let waiting = seed_hostile_session(&app).await;
    let failed = SessionFactory::new().status(SessionStatus::Failed).build();
    seed_sessions(&app.store, &[&failed]).await;

    let id = waiting.id().to_string();
    let (status, location) = post_form(&app, "cancel_session", &[("id", &id)]).await;
    assert_eq!(status, 302);
    assert_eq!(location, format!("/sessions/{id}"));
    let (_, page) = html(&app, &location).await;
    assert!(page.contains(">cancelled</td>"), "cancelled");
    assert!(
        !page.contains(r#"data-testid="cancel""#),
        "no longer cancellable"
    );

    let failed_page = format!("/sessions/{}", failed.id());
    let (_, page) = html(&app, &failed_page).await;
    assert!(page.contains(r#"data-testid="retry""#));
    let (status, location) =
        post_form(&app, "retry_session", &[("id", &failed.id().to_string())]).await;
    assert_eq!(status, 302);
    assert_eq!(location, failed_page);
    let (_, page) = html(&app, &failed_page).await;
    assert!(page.contains(">queued</td>"), "queued again");
    assert!(page.contains("2/3"), "second attempt");

    // Retrying what is not failed is refused, not redirected.
    let (status, _) = post_form(&app, "retry_session", &[("id", &id)]).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn the_task_form_reports_the_wrong_field_inline_and_creates_a_tree() {
    let app = spawn_app().await;
    let (status, page) = html(&app, "/tasks").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"data-testid="tasks-empty""#));
    assert!(page.contains(r#"name="requirement""#) && page.contains(r#"name="policy""#));

    // Starting needs a git repository: refused before anything is stored, values kept.
    let not_a_repo = tempfile::tempdir().unwrap();
    let workspace = not_a_repo.path().display().to_string();
    let (status, location) = post_form(
        &app,
        "create_task",
        &[
            ("requirement", "Add customer records & a list screen"),
            ("workspace", &workspace),
            ("max_parallel", "2"),
            ("policy", "continue"),
            ("start", "on"),
        ],
    )
    .await;
    assert_eq!(status, 302);
    assert!(
        location.starts_with("/tasks?error_field=workspace"),
        "{location}"
    );
    let (_, page) = html(&app, &location).await;
    assert!(page.contains(r#"data-testid="form-error" data-field="workspace""#));
    assert!(!page.contains(r#"data-testid="form-error" data-field="requirement""#));
    assert!(
        page.contains(">Add customer records & a list screen</textarea>"),
        "typed text kept"
    );
    assert!(
        page.contains(r#"<option value="continue" selected>"#),
        "policy kept"
    );
    assert!(
        page.contains(r#"data-testid="tasks-empty""#),
        "nothing stored"
    );

    let (_, location) = post_form(&app, "create_task", &[("requirement", "  ")]).await;
    assert!(location.contains("error_field=requirement"), "{location}");
    let (_, location) = post_form(
        &app,
        "create_task",
        &[("requirement", "x"), ("max_parallel", "lots")],
    )
    .await;
    assert!(location.contains("error_field=max_parallel"), "{location}");

    // Without starting, a requirement is decomposed and stored; the tree page shows it.
    let (status, location) = post_form(
        &app,
        "create_task",
        &[(
            "requirement",
            "Add customer records with create, list, edit and delete screens",
        )],
    )
    .await;
    assert_eq!(status, 302);
    assert!(location.starts_with("/tasks/"), "{location}");
    let (status, tree) = html(&app, &location).await;
    assert_eq!(status, 200);
    assert!(tree.contains(r#"data-testid="task-tree""#));
    assert!(count(&tree, r#"data-testid="task-node""#) > 1, "decomposed");
    assert!(tree.contains(r#"data-depth="1""#));
    let (_, list) = html(&app, "/tasks").await;
    assert_eq!(count(&list, r#"data-testid="task-row""#), 1);
}

#[tokio::test]
async fn the_task_tree_shows_the_routing_explanation() {
    let app = spawn_app().await;
    let agent = AgentFactory::new()
        .name("allrounder")
        .capabilities(&AgentCapability::ALL)
        .build();
    seed_agents(&app.store, &[&agent]).await;
    let (_, location) = post_form(
        &app,
        "create_task",
        &[("requirement", "Write a short README for the tool")],
    )
    .await;
    let root: domain::TaskId = location
        .trim_start_matches("/tasks/")
        .parse()
        .unwrap_or_else(|e| panic!("{location}: {e}"));
    let router = server::application::TaskRouter::new(
        app.store.tasks.clone(),
        app.store.agents.clone(),
        app.store.queue.clone(),
        app.store.unit_of_work.clone(),
    );
    let root_task = app.store.tasks.get(root).await.unwrap().unwrap();
    let leaf = root_task.subtasks().first().copied().unwrap_or(root);
    router.route(leaf).await.unwrap();

    let (status, tree) = html(&app, &location).await;
    assert_eq!(status, 200);
    assert!(tree.contains(r#"data-testid="routing-explanation""#));
    assert!(tree.contains("chose allrounder"), "the explanation");
    assert!(tree.contains("allrounder ("), "agent and score");
}

#[tokio::test]
async fn agents_are_listed_registered_and_edited_with_inline_errors() {
    let app = spawn_app().await;
    let (status, page) = html(&app, "/agents").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"data-testid="agents-empty""#));

    let bad = [
        ("mode", "create"),
        ("name", "api"),
        ("capabilities", "backend, telepathy"),
        ("model", "fake/fake-coder"),
        ("max_concurrency", "2"),
    ];
    let (status, location) = post_form(&app, "save_agent", &bad).await;
    assert_eq!(status, 302);
    assert!(
        location.starts_with("/agents?error_field=capabilities"),
        "{location}"
    );
    let (_, page) = html(&app, &location).await;
    assert!(page.contains(r#"data-testid="form-error" data-field="capabilities""#));
    assert!(
        page.contains(r#"value="backend, telepathy""#),
        "typed value kept"
    );

    let good = [
        ("mode", "create"),
        ("name", "api"),
        ("capabilities", "backend database"),
        ("model", "fake/fake-coder"),
        ("max_concurrency", "2"),
    ];
    let (_, location) = post_form(&app, "save_agent", &good).await;
    assert_eq!(location, "/agents");
    let (_, page) = html(&app, "/agents").await;
    assert_eq!(count(&page, r#"data-testid="agent-row""#), 1);
    assert!(page.contains("backend, database") && page.contains("fake/fake-coder"));

    let (status, edit) = html(&app, "/agents/api").await;
    assert_eq!(status, 200);
    assert!(edit.contains(r#"value="update""#) && edit.contains(r#"value="2""#));
    let (_, location) = post_form(
        &app,
        "save_agent",
        &[
            ("mode", "update"),
            ("name", "api"),
            ("capabilities", "backend"),
            ("model", "fake/fake-coder"),
            ("max_concurrency", "many"),
        ],
    )
    .await;
    assert!(
        location.starts_with("/agents/api?error_field=max_concurrency"),
        "{location}"
    );
    let (_, page) = html(&app, &location).await;
    assert!(page.contains(r#"data-testid="form-error" data-field="max_concurrency""#));
    let (_, location) = post_form(
        &app,
        "save_agent",
        &[
            ("mode", "update"),
            ("name", "api"),
            ("capabilities", "backend"),
            ("model", "fake/other"),
            ("max_concurrency", "7"),
        ],
    )
    .await;
    assert_eq!(location, "/agents");
    let (_, page) = html(&app, "/agents").await;
    assert!(page.contains("fake/other") && page.contains("<td>7</td>"));
}

#[tokio::test]
async fn the_status_wall_needs_no_javascript_and_refreshes_itself() {
    let app = spawn_app().await;
    let failed = SessionFactory::new().status(SessionStatus::Failed).build();
    let running = SessionFactory::new().status(SessionStatus::Running).build();
    seed_sessions(&app.store, &[&failed, &running]).await;

    let (status, html) = html(&app, "/status").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<meta http-equiv="refresh" content="10">"#));
    assert!(!html.contains("<script"), "no script at all");
    assert!(html.contains(r#"data-testid="status-running" class="text-7xl font-bold">1<"#));
    assert!(html.contains(r#"data-testid="status-failed" class="text-7xl font-bold">1<"#));
    assert!(html.contains(r#"data-testid="status-fleet""#));
    assert!(html.contains(r#"data-testid="status-no-trees""#));

    // Every other page is hydrated (and has no refresh).
    let (_, overview) = self::html(&app, "/").await;
    assert!(overview.contains("<script"));
    assert!(!overview.contains("http-equiv=\"refresh\""));
}
