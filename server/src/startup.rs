//! Wiring: settings in, a listening [`Application`] out. Used by `main` and by the tests, which
//! start the whole orchestrator on a random port against a fresh database.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use app::{shell, App};
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use tokio::net::TcpListener;

use secrecy::ExposeSecret;

use crate::adapters::git::GitWorktrees;
use crate::adapters::memory_lock::MemoryLock;
use crate::adapters::opencode::{Fleet, HealthChecks, ResiliencePolicy};
use crate::adapters::redis::{RedisLock, RedisLockConfig};
use crate::application::{
    Admission, AdmissionConfig, AuthService, Engine, EngineConfig, EngineDeps, InboxService,
    InboxWatch, SessionLifecycle,
};
use crate::config::Settings;
use crate::http;
use crate::ports::lock::{DistributedLock, LockError};
use crate::ports::workspaces::CleanupPolicy;
use crate::ports::AgentServerError;
use crate::storage::{self, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("leptos configuration: {0}")]
    Leptos(String),
    #[error("OpenCode fleet: {0}")]
    Fleet(#[from] AgentServerError),
    #[error("supervised OpenCode server: {0}")]
    Supervisor(#[from] crate::adapters::opencode::SupervisorError),
    #[error("distributed lock (Redis): {0}")]
    Lock(#[from] LockError),
}

/// The app's routes, listed once per process.
///
/// Listing them renders the app once with every resource suppressed, and Leptos keeps that
/// suppression in a process-wide flag (`leptos_server`'s `SuppressResourceLoad`, see
/// leptos-rs/leptos#4773): a resource whose fetch is first polled on any thread while the flag
/// is up never loads (its future parks on `pending()` for good), so the `SsrMode::Async` page
/// waiting for it never answers. An application built while another one in the same process
/// serves pages (tests, replicas side by side) would stall those pages at random. Listed once,
/// before the first application of the process serves anything, the flag is never raised again.
pub fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// How long a stopping replica waits for its runners to hand their leases back.
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

pub use crate::application::TaskServices;

pub struct Application {
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
    fleet: Arc<Fleet>,
    lifecycle: Arc<SessionLifecycle>,
    tasks: TaskServices,
    engine: Option<Engine>,
    /// Stops the task scheduler (when the engine runs).
    scheduler_stop: Option<tokio::sync::watch::Sender<bool>>,
    auth: Arc<AuthService>,
    /// Health checks of the fleet run while the application lives.
    _health_checks: Option<HealthChecks>,
    /// Supervised OpenCode servers: killed when the application is dropped.
    _supervisors: Vec<crate::adapters::opencode::Supervisor>,
    inbox: Arc<InboxService>,
    /// Follows the servers' permission requests and questions (where the engine runs).
    _inbox_watch: Option<InboxWatch>,
}

impl Application {
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let store = storage::connect(settings).await?;
        let policy = ResiliencePolicy::from(&settings.opencode.resilience);
        let mut fleet = Fleet::from_settings(&settings.opencode, &policy)?;
        let mut supervisors = Vec::new();
        for (supervisor, capacity) in crate::adapters::opencode::supervisor::start_configured(
            &settings.opencode,
            &settings.data_dir,
            &policy,
        )
        .await?
        {
            fleet.add(supervisor.client().clone(), capacity);
            supervisors.push(supervisor);
        }
        let fleet = Arc::new(fleet);
        let health_checks =
            (!fleet.is_empty()).then(|| fleet.spawn_health_checks(policy.health_check_interval));
        // With Redis, workspace locks hold across replicas; embedded, in process.
        let lock: Arc<dyn DistributedLock> = match &settings.redis_url {
            Some(url) => Arc::new(
                RedisLock::connect(RedisLockConfig::new(url.expose_secret().to_owned())).await?,
            ),
            None => Arc::new(MemoryLock::new()),
        };
        let lifecycle = Arc::new(SessionLifecycle::new(
            store.sessions.clone(),
            store.unit_of_work.clone(),
            store.queue.clone(),
            settings.engine.default_max_attempts,
        ));
        let tasks = TaskServices::new(
            &store,
            settings.engine.task_max_parallel,
            settings.guardrails.validate().unwrap_or_default(),
            lifecycle.clone(),
        );
        // Every replica with an engine advances running task trees (idempotent across replicas).
        let scheduler_stop = settings.engine.enabled.then(|| {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(tasks.executor.clone().run_scheduler(
                std::time::Duration::from_millis(settings.engine.task_tick_ms),
                stopped,
            ));
            stop
        });
        // Shared by the engine (its sessions wait here) and the API (which reports on it).
        let admission = Admission::new(AdmissionConfig::from_settings(&settings.admission));
        // Validated with the rest of the settings at load.
        let guardrails = settings.guardrails.validate().unwrap_or_default();
        let engine = settings.engine.enabled.then(|| {
            Engine::start_with(
                EngineDeps {
                    sessions: store.sessions.clone(),
                    agents: store.agents.clone(),
                    tasks: store.tasks.clone(),
                    unit_of_work: store.unit_of_work.clone(),
                    queue: store.queue.clone(),
                    servers: fleet.clone(),
                    workspaces: Arc::new(GitWorktrees::new(
                        settings.worktrees.root(&settings.data_dir),
                    )),
                    lock,
                },
                EngineConfig::from_settings(
                    &settings.engine,
                    CleanupPolicy::from(settings.worktrees.cleanup),
                ),
                admission.clone(),
                guardrails.clone(),
            )
        });

        let inbox = Arc::new(
            InboxService::from_settings(
                &settings.inbox,
                store.inbox.clone(),
                store.unit_of_work.clone(),
                fleet.clone(),
            )
            .map_err(StorageError::from)?,
        );
        let inbox_watch = settings.engine.enabled.then(|| {
            inbox.watch(
                fleet
                    .report()
                    .iter()
                    .filter_map(|r| crate::ports::AgentServers::get(fleet.as_ref(), &r.server))
                    .collect(),
            )
        });

        let mut leptos_options = get_configuration(None)
            .map_err(|e| StartupError::Leptos(e.to_string()))?
            .leptos_options;
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Listen {
                    addr: settings.listen,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: settings.listen,
                source,
            })?;
        leptos_options.site_addr = local_addr;
        // Plain `cargo test` builds do not get the name cargo-leptos compiles in.
        if leptos_options.output_name.is_empty() {
            leptos_options.output_name = "oio".into();
        }

        let services = http::app_services::DashboardServices::new(
            store.sessions.clone(),
            store.outbox.clone(),
            store.tasks.clone(),
            store.queue.clone(),
            lifecycle.clone(),
            tasks.clone(),
            fleet.clone(),
        )
        .with_inbox(inbox.clone())
        .with_guardrails(guardrails.clone())
        .into_app_services();
        let auth = Arc::new(AuthService::new(
            store.credentials.clone(),
            std::time::Duration::from_secs(settings.auth.session_ttl_hours * 3600),
        ));
        let auth_state = http::auth::AuthState {
            service: auth.clone(),
            secure_cookie: settings.auth.secure_cookie,
            public_status: settings.auth.public_status,
        };
        let routes = route_list();
        let router = Router::new()
            .leptos_routes_with_context(
                &leptos_options,
                routes,
                {
                    let services = services.clone();
                    move || provide_context(services.clone())
                },
                {
                    let leptos_options = leptos_options.clone();
                    move || shell(leptos_options.clone())
                },
            )
            .fallback(leptos_axum::file_and_error_handler(shell))
            .with_state(leptos_options)
            .merge(http::status_routes(services.clone()))
            .merge(http::health_routes(
                store.sessions.clone(),
                fleet.clone(),
                Some(store.queue.clone()),
            ))
            .merge(http::api::routes(
                http::api::ApiState::new(
                    &store,
                    lifecycle.clone(),
                    tasks.clone(),
                    fleet.clone(),
                    Arc::new(admission.clone()),
                )
                .with_inbox(inbox.clone()),
            ))
            .merge(http::auth::routes(auth_state.clone()))
            .layer(http::limits::layer(&settings.http)) // inside auth: it sets the RateKey
            // Every route above passes the access policy (src/http/auth.rs).
            .layer(axum::middleware::from_fn_with_state(
                auth_state,
                http::auth::authenticate,
            ))
            // Unauthenticated by design (src/http/metrics.rs): merged after the access policy.
            .merge(http::metrics::routes(
                store.sessions.clone(),
                store.queue.clone(),
                fleet.clone(),
            ));
        let router = http::metrics::request_id_layers(router);

        Ok(Self {
            listener,
            router,
            local_addr,
            fleet,
            lifecycle,
            tasks,
            engine,
            scheduler_stop,
            auth,
            _health_checks: health_checks,
            _supervisors: supervisors,
            inbox,
            _inbox_watch: inbox_watch,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configured OpenCode servers and their standing.
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// Session commands (create, cancel, retry).
    pub fn lifecycle(&self) -> &Arc<SessionLifecycle> {
        &self.lifecycle
    }

    /// Agents, decomposition, routing and task-tree execution.
    pub fn tasks(&self) -> &TaskServices {
        &self.tasks
    }

    /// The human-in-the-loop inbox.
    pub fn inbox(&self) -> &Arc<InboxService> {
        &self.inbox
    }

    /// Users, API tokens and browser sessions.
    pub fn auth(&self) -> &Arc<AuthService> {
        &self.auth
    }

    /// This replica's engine, unless disabled by configuration.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests and drains the engine
    /// (no new claims; running sessions' leases handed back for another replica to re-attach).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr, "listening");
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        if let Some(stop) = self.scheduler_stop {
            let _ = stop.send(true);
        }
        if let Some(engine) = self.engine {
            engine.stop(DRAIN_GRACE).await;
        }
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What an `SsrMode::Async` page waits for: a resource created, and awaited, under its own
    /// owner.
    async fn load_a_resource() -> Option<u32> {
        let owner = Owner::new();
        let resource = owner.with(|| ArcResource::<u32>::new(|| (), |_| async { 42 }));
        tokio::time::timeout(Duration::from_secs(5), resource)
            .await
            .ok()
    }

    /// Another application of the process listing its routes (as `Application::build` does)
    /// while a page loads its data must not leave that data pending for ever: when every build
    /// listed the routes anew, this resource parked on Leptos's process-wide suppression flag
    /// and the timeout fired.
    #[tokio::test]
    async fn listing_the_routes_again_never_stalls_a_resource_loading_meanwhile() {
        // As the first application of the process does before it serves.
        let routes = route_list().len();
        assert!(routes > 5, "the app's pages are listed: {routes}");
        let lister = std::thread::spawn(move || {
            // Listing renders the app, which spawns its tasks on the current runtime.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
            let _entered = runtime.enter();
            for _ in 0..50 {
                assert_eq!(route_list().len(), routes);
            }
        });
        let mut loads = 0;
        while !lister.is_finished() || loads < 50 {
            assert_eq!(load_a_resource().await, Some(42), "load {loads} stalled");
            loads += 1;
        }
        lister.join().expect("the routes were listed");
    }
}
