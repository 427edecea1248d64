//! Test-data factories: valid sessions, tasks and agents with realistic fake text, any field
//! overridable.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use domain::{
    Agent, AgentCapability, AgentId, AgentName, MetricsDelta, ModelRef, NewAgent, NewSession,
    NewTask, Prompt, Session, SessionId, SessionStatus, SessionTitle, Task, TaskComplexity, TaskId,
    TaskTitle, WorkspacePath,
};
use fake::faker::lorem::en::{Sentence, Words};
use fake::Fake;
use uuid::Uuid;

/// Builds a [`Session`] and walks it through the domain's own commands to the wanted status, so
/// every factory-made session is one the state machine could really produce.
pub struct SessionFactory {
    title: Option<String>,
    agent: Option<String>,
    parent_task: Option<TaskId>,
    status: SessionStatus,
    created_at: DateTime<Utc>,
    metrics: Option<MetricsDelta>,
    max_attempts: u32,
    deleted: bool,
}

/// Now, at the microsecond precision both SQL stores keep.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl Default for SessionFactory {
    fn default() -> Self {
        Self {
            title: None,
            agent: None,
            parent_task: None,
            status: SessionStatus::Pending,
            created_at: now(),
            metrics: None,
            max_attempts: 3,
            deleted: false,
        }
    }
}

impl SessionFactory {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn title(mut self, title: &str) -> Self {
        self.title = Some(title.to_string());
        self
    }
    pub fn agent(mut self, agent: &str) -> Self {
        self.agent = Some(agent.to_string());
        self
    }
    pub fn parent_task(mut self, task: TaskId) -> Self {
        self.parent_task = Some(task);
        self
    }
    pub fn status(mut self, status: SessionStatus) -> Self {
        self.status = status;
        self
    }
    pub fn created_at(mut self, at: DateTime<Utc>) -> Self {
        self.created_at = at;
        self
    }
    pub fn metrics(mut self, delta: MetricsDelta) -> Self {
        self.metrics = Some(delta);
        self
    }
    #[allow(dead_code)] // no test seeds a soft-deleted session today
    pub fn deleted(mut self) -> Self {
        self.deleted = true;
        self
    }

    pub fn build(self) -> Session {
        let title = self.title.unwrap_or_else(|| {
            let words: Vec<String> = Words(3..6).fake();
            words.join(" ")
        });
        let prompt: String = Sentence(8..20).fake();
        let mut at = self.created_at;
        let mut session = Session::new(
            NewSession {
                id: SessionId::from_uuid(Uuid::new_v4()),
                title: SessionTitle::new(title).expect("valid title"),
                prompt: Prompt::new(prompt).expect("valid prompt"),
                workspace: WorkspacePath::new("/srv/work/repo").expect("valid path"),
                agent: self
                    .agent
                    .map(|a| AgentName::new(a).expect("valid agent name")),
                parent_task: self.parent_task,
                max_attempts: self.max_attempts,
            },
            at,
        )
        .expect("valid session");
        use SessionStatus::*;
        let path: &[SessionStatus] = match self.status {
            Pending => &[],
            Queued => &[Queued],
            Running => &[Queued, Running],
            Paused => &[Queued, Running, Paused],
            Completed => &[Queued, Running, Completed],
            Failed => &[Queued, Running, Failed],
            Cancelled => &[Cancelled],
            TimedOut => &[Queued, Running, TimedOut],
        };
        for target in path {
            at += Duration::milliseconds(250);
            apply(&mut session, *target, at);
            if let (Running, Some(delta)) = (target, self.metrics) {
                at += Duration::milliseconds(250);
                session
                    .record_metrics(delta, at)
                    .expect("metrics while running");
            }
        }
        if self.deleted {
            at += Duration::milliseconds(250);
            session.mark_deleted(at).expect("deletable");
        }
        session
    }
}

fn apply(session: &mut Session, target: SessionStatus, at: DateTime<Utc>) {
    use SessionStatus::*;
    let result = match target {
        Queued => session.enqueue(at),
        Running => session.start(at),
        Paused => session.pause(at),
        Completed => session.complete(at),
        Failed => session.fail("agent gave up".into(), at),
        Cancelled => session.cancel(Some("operator".into()), at),
        TimedOut => session.time_out(at),
        Pending => unreachable!("sessions start pending"),
    };
    result.expect("factory walks only legal transitions");
}

/// Builds a valid [`Task`]; subtasks and dependencies are whatever the test names.
pub struct TaskFactory {
    title: Option<String>,
    parent: Option<TaskId>,
    subtasks: Vec<TaskId>,
    dependencies: Vec<TaskId>,
    capabilities: Vec<AgentCapability>,
    complexity: TaskComplexity,
    created_at: DateTime<Utc>,
    id: TaskId,
}

impl Default for TaskFactory {
    fn default() -> Self {
        Self {
            title: None,
            parent: None,
            subtasks: Vec::new(),
            dependencies: Vec::new(),
            capabilities: vec![AgentCapability::Backend],
            complexity: TaskComplexity::Moderate,
            created_at: now(),
            id: TaskId::from_uuid(Uuid::new_v4()),
        }
    }
}

impl TaskFactory {
    pub fn new() -> Self {
        Self::default()
    }
    /// The id the task will have, known before it is built (to wire edges both ways).
    pub fn id(&self) -> TaskId {
        self.id
    }
    pub fn title(mut self, title: &str) -> Self {
        self.title = Some(title.to_string());
        self
    }
    pub fn parent(mut self, parent: TaskId) -> Self {
        self.parent = Some(parent);
        self
    }
    pub fn subtasks(mut self, subtasks: &[TaskId]) -> Self {
        self.subtasks = subtasks.to_vec();
        self
    }
    pub fn depends_on(mut self, dependencies: &[TaskId]) -> Self {
        self.dependencies = dependencies.to_vec();
        self
    }
    pub fn capabilities(mut self, capabilities: &[AgentCapability]) -> Self {
        self.capabilities = capabilities.to_vec();
        self
    }
    pub fn complexity(mut self, complexity: TaskComplexity) -> Self {
        self.complexity = complexity;
        self
    }
    pub fn created_at(mut self, at: DateTime<Utc>) -> Self {
        self.created_at = at;
        self
    }

    pub fn build(self) -> Task {
        let title = self.title.unwrap_or_else(|| {
            let words: Vec<String> = Words(2..5).fake();
            words.join(" ")
        });
        Task::new(
            NewTask {
                id: self.id,
                title: TaskTitle::new(title).expect("valid title"),
                description: Sentence(10..30).fake(),
                complexity: self.complexity,
                parent: self.parent,
                subtasks: self.subtasks,
                dependencies: self.dependencies.into_iter().collect(),
                required_capabilities: self.capabilities.into_iter().collect(),
            },
            self.created_at,
        )
        .expect("valid task")
    }
}

/// Builds a valid [`Agent`] with a unique fake name unless one is given.
pub struct AgentFactory {
    name: Option<String>,
    capabilities: Vec<AgentCapability>,
    model: String,
    max_concurrency: u32,
}

impl Default for AgentFactory {
    fn default() -> Self {
        Self {
            name: None,
            capabilities: vec![AgentCapability::Backend, AgentCapability::Testing],
            model: "fake/fake-coder".to_string(),
            max_concurrency: 4,
        }
    }
}

impl AgentFactory {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    pub fn capabilities(mut self, capabilities: &[AgentCapability]) -> Self {
        self.capabilities = capabilities.to_vec();
        self
    }

    pub fn build(self) -> Agent {
        let name = self
            .name
            .unwrap_or_else(|| format!("agent-{}", &Uuid::new_v4().simple().to_string()[..12]));
        Agent::new(
            NewAgent {
                id: AgentId::from_uuid(Uuid::new_v4()),
                name: AgentName::new(name).expect("valid agent name"),
                capabilities: self.capabilities.into_iter().collect(),
                model: self.model.parse::<ModelRef>().expect("valid model"),
                max_concurrency: self.max_concurrency,
            },
            now(),
        )
        .expect("valid agent")
    }
}
