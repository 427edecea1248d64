//! The dashboard's driving ports ([`app::ports`]) implemented with the application services, the
//! store's repositories, the OpenCode fleet and the dispatch queue. Wired in `startup`.
//!
//! [`DashboardServices`] only assembles: the reads are the [`read_model`], the commands on
//! sessions, tasks and agents are [`commands`] (their forms read by [`forms`]), the inbox is
//! [`inbox`]. The `/status` wall is routed in [`crate::status`].

mod commands;
mod errors;
mod forms;
mod inbox;
mod read_model;

use std::sync::Arc;

use app::ports::AppServices;
use oio_application::ports::{
    AgentServers, DispatchQueue, Outbox, SessionRepository, TaskRepository,
};
use oio_application::{GuardrailConfig, Guardrails, InboxService, SessionLifecycle, TaskServices};

use commands::Commands;
use inbox::Inbox;
use read_model::ReadModel;

/// Everything the dashboard reads and commands, assembled into the app's driving ports.
pub struct DashboardServices {
    sessions: Arc<dyn SessionRepository>,
    outbox: Arc<dyn Outbox>,
    tasks: Arc<dyn TaskRepository>,
    queue: Arc<dyn DispatchQueue>,
    lifecycle: Arc<SessionLifecycle>,
    task_services: TaskServices,
    fleet: Arc<dyn AgentServers>,
    inbox: Option<Arc<InboxService>>,
    guardrails: GuardrailConfig,
}

impl DashboardServices {
    pub fn new(
        sessions: Arc<dyn SessionRepository>,
        outbox: Arc<dyn Outbox>,
        tasks: Arc<dyn TaskRepository>,
        queue: Arc<dyn DispatchQueue>,
        lifecycle: Arc<SessionLifecycle>,
        task_services: TaskServices,
        fleet: Arc<dyn AgentServers>,
    ) -> Self {
        Self {
            sessions,
            outbox,
            tasks,
            queue,
            lifecycle,
            task_services,
            fleet,
            inbox: None,
            guardrails: GuardrailConfig::default(),
        }
    }

    /// Answers the inbox page with `inbox` (without it, the page says the inbox is not enabled).
    pub fn with_inbox(mut self, inbox: Arc<InboxService>) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Shows `config` as the guardrails in force (the default ones otherwise).
    pub fn with_guardrails(mut self, config: GuardrailConfig) -> Self {
        self.guardrails = config;
        self
    }

    /// The [`AppServices`] the Leptos routes get.
    pub fn into_app_services(self) -> AppServices {
        let reads = Arc::new(ReadModel {
            guardrails: Guardrails::new(self.guardrails, self.sessions.clone(), self.tasks.clone()),
            sessions: self.sessions,
            outbox: self.outbox,
            tasks: self.tasks,
            queue: self.queue,
            fleet: self.fleet,
            task_services: self.task_services.clone(),
        });
        let commands = Arc::new(Commands {
            lifecycle: self.lifecycle,
            task_services: self.task_services,
        });
        AppServices {
            sessions: reads.clone(),
            insights: reads.clone(),
            session_commands: commands.clone(),
            tasks: reads.clone(),
            task_commands: commands.clone(),
            agents: reads.clone(),
            agent_commands: commands,
            fleet: reads.clone(),
            inbox: Arc::new(Inbox {
                service: self.inbox,
            }),
            guardrails: reads,
        }
    }
}
