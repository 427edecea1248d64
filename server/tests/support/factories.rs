//! Test-data factories: valid sessions with realistic fake text, any field overridable.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use domain::{
    AgentName, MetricsDelta, NewSession, Prompt, Session, SessionId, SessionStatus, SessionTitle,
    TaskId, WorkspacePath,
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
