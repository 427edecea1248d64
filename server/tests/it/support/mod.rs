//! Test support: the whole orchestrator on a random port against a fresh database, per test.

pub mod engine_rig;
pub mod factories;
pub mod fake_opencode;
pub mod postgres;
pub mod private_services;
pub mod store;

use std::net::SocketAddr;

use domain::{Agent, Session, Task};
use server::config::Settings;
use server::ports::ChangeSet;
use server::startup::Application;
use server::storage::{self, Store};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub struct TestApp {
    pub addr: SocketAddr,
    /// Sends an admin API token with every request.
    pub client: reqwest::Client,
    /// The admin bearer token `client` sends (for tests that build their own clients).
    pub admin_token: String,
    /// Users and tokens of the app (to make clients of other roles).
    pub auth: std::sync::Arc<server::application::AuthService>,
    /// A second handle on the app's store, opened the way the app opens it, for seeding.
    pub store: Store,
    shutdown: Option<oneshot::Sender<()>>,
    _data_dir: TempDir,
    _database: Option<postgres::TestDatabase>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A client sending a fresh token with `role` as its scope.
    pub async fn client_as(&self, role: domain::Role) -> reqwest::Client {
        let issued = self
            .auth
            .issue_token(&format!("test {role}"), role, "tests", None)
            .await
            .expect("token issued");
        bearer_client(secrecy::ExposeSecret::expose_secret(&issued.secret))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request failed")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Settings for a test: a free port, a private data dir, and `database_url` if given.
pub fn test_settings(data_dir: &std::path::Path, database_url: Option<&str>) -> Settings {
    let mut env = vec![
        ("OIO_LISTEN".to_string(), "127.0.0.1:0".to_string()),
        ("OIO_DATA_DIR".to_string(), data_dir.display().to_string()),
        ("OIO_LOG__FILTER".to_string(), "warn".to_string()),
    ];
    if let Some(url) = database_url {
        env.push(("DATABASE_URL".to_string(), url.to_string()));
    }
    Settings::load_from(None, env).expect("test settings are valid")
}

/// The orchestrator on the embedded SQLite default.
pub async fn spawn_app() -> TestApp {
    spawn(None).await
}

/// The orchestrator on a fresh PostgreSQL database, or `None` where PostgreSQL is not available
/// (never under CI=true: there it panics).
pub async fn spawn_app_on_postgres() -> Option<TestApp> {
    let database = postgres::TestDatabase::create().await?;
    Some(spawn(Some(database)).await)
}

async fn spawn(database: Option<postgres::TestDatabase>) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let settings = test_settings(data_dir.path(), database.as_ref().map(|d| d.url.as_str()));
    server::telemetry::init(&settings.log);
    let app = Application::build(&settings).await.expect("app starts");
    let addr = app.local_addr();
    let auth = app.auth().clone();
    let admin = auth
        .issue_token("tests", domain::Role::Admin, "tests", None)
        .await
        .expect("admin token issued");
    let (tx, rx) = oneshot::channel();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let store = storage::connect(&settings).await.expect("store opens");
    TestApp {
        addr,
        client: bearer_client(secrecy::ExposeSecret::expose_secret(&admin.secret)),
        admin_token: secrecy::ExposeSecret::expose_secret(&admin.secret).to_owned(),
        auth,
        store,
        shutdown: Some(tx),
        _data_dir: data_dir,
        _database: database,
    }
}

/// A client that sends `Authorization: Bearer <token>` with every request.
pub fn bearer_client(token: &str) -> reqwest::Client {
    bearer_client_builder(token).build().expect("client builds")
}

/// A client builder with `Authorization: Bearer <token>` set on every request.
pub fn bearer_client_builder(token: &str) -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("token is ascii");
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers)
}

/// Commits new sessions (each with its created event), one transaction for all.
pub async fn seed_sessions(store: &Store, sessions: &[&Session]) {
    let mut changes = ChangeSet::new();
    for s in sessions {
        changes.insert_session(s).event(&s.created_event());
    }
    store
        .unit_of_work
        .commit(changes)
        .await
        .expect("seed sessions");
}

pub async fn seed_tasks(store: &Store, tasks: &[&Task]) {
    let mut changes = ChangeSet::new();
    for t in tasks {
        changes.insert_task(t);
    }
    store
        .unit_of_work
        .commit(changes)
        .await
        .expect("seed tasks");
}

pub async fn seed_agents(store: &Store, agents: &[&Agent]) {
    let mut changes = ChangeSet::new();
    for a in agents {
        changes.insert_agent(a);
    }
    store
        .unit_of_work
        .commit(changes)
        .await
        .expect("seed agents");
}
