//! The task services, wired together over one store: agents, decomposition, routing of tasks to
//! agents, and the execution of task trees.

use std::sync::Arc;

use crate::ports::Store;
use crate::{
    AgentService, GuardrailConfig, SessionLifecycle, TaskDecompositionService, TaskExecutor,
    TaskRouter, TemplateLibrary,
};

/// Agents, decomposition, routing and execution of task trees.
#[derive(Clone)]
pub struct TaskServices {
    pub agents: Arc<AgentService>,
    pub decomposition: Arc<TaskDecompositionService>,
    pub router: Arc<TaskRouter>,
    pub executor: Arc<TaskExecutor>,
}

impl TaskServices {
    /// The task services over `store`, with the built-in decomposition templates; `lifecycle`
    /// creates the sessions of running trees, at most `max_parallel` leaves of a tree at once
    /// unless its start request says otherwise. Used by the binary's startup and its CLI.
    pub fn new(
        store: &Store,
        max_parallel: u32,
        guardrails: GuardrailConfig,
        lifecycle: Arc<SessionLifecycle>,
    ) -> Self {
        let router = Arc::new(TaskRouter::new(
            store.tasks.clone(),
            store.agents.clone(),
            store.queue.clone(),
            store.unit_of_work.clone(),
        ));
        Self {
            agents: Arc::new(AgentService::new(
                store.agents.clone(),
                store.unit_of_work.clone(),
            )),
            decomposition: Arc::new(TaskDecompositionService::new(
                store.unit_of_work.clone(),
                TemplateLibrary::builtin(),
            )),
            router: router.clone(),
            executor: Arc::new(
                TaskExecutor::new(
                    store.tasks.clone(),
                    store.sessions.clone(),
                    store.unit_of_work.clone(),
                    lifecycle,
                    router,
                    max_parallel,
                )
                .with_guardrails(guardrails),
            ),
        }
    }
}
