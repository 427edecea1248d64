//! In-process stand-ins for the engine benchmark (`server bench engine`): an agent server whose
//! every turn is over the moment it is prompted, a fleet of one such server, and workspaces that
//! touch no git — so what is measured is the engine's own overhead (queue, commits, lock) and the
//! database behind it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use futures_util::StreamExt as _;
use uuid::Uuid;

use crate::ports::workspaces::{
    session_branch, CleanupPolicy, Workspace, WorkspaceDiff, WorkspaceError, WorkspaceRequest,
    Workspaces,
};
use crate::ports::{
    AgentEvent, AgentEventStream, AgentServer, AgentServerError, AgentServers, AgentSession,
    AgentSessionId, AgentSessionStatus, AssistantMessage, AssistantReply, BreakerState,
    CreateSession, EventScope, FileDiff, Message, MessageId, MessageRecord, PermissionReply,
    PromptRequest, ServerCapacity, ServerHealth, ServerReport, SessionAddress, TokenUsage,
    UserMessage,
};

/// Tokens every instant reply reports.
pub const INSTANT_TOKENS: TokenUsage = TokenUsage {
    input: 100,
    output: 20,
    reasoning: 0,
    cache_read: 0,
    cache_write: 0,
};
/// What every instant reply costs (USD).
pub const INSTANT_COST: f64 = 0.0001;

struct Remote {
    session: AgentSession,
    /// The prompt and the reply that answers it, once prompted.
    turn: Option<(UserMessage, AssistantMessage)>,
}

/// An agent server that answers every prompt at once: `prompt_async` stores the prompt and a
/// completed reply to it (tokens and cost set); `status` reports everything idle; the event
/// stream says `ServerConnected` and then nothing, so the engine reconciles once and finds the
/// turn done.
pub struct InstantAgent {
    name: String,
    sessions: Mutex<HashMap<AgentSessionId, Remote>>,
}

impl InstantAgent {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Sessions created and not deleted.
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<AgentSessionId, Remote>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn not_found(session: &SessionAddress) -> AgentServerError {
        AgentServerError::NotFound(format!("session {}", session.id))
    }

    /// Records the prompt and its finished reply.
    fn answer(
        &self,
        session: &SessionAddress,
        request: &PromptRequest,
    ) -> Result<AssistantMessage, AgentServerError> {
        let mut sessions = self.sessions();
        let remote = sessions
            .get_mut(&session.id)
            .ok_or_else(|| Self::not_found(session))?;
        let now = Utc::now();
        let user = UserMessage {
            id: request.message_id.clone(),
            session_id: session.id.clone(),
            created_at: now,
            agent: request.agent.clone(),
            model: request.model.clone(),
        };
        let reply = AssistantMessage {
            id: MessageId::generate(),
            session_id: session.id.clone(),
            parent_id: Some(request.message_id.clone()),
            created_at: now,
            completed_at: Some(now),
            agent: request.agent.clone(),
            model: request.model.clone(),
            cost: INSTANT_COST,
            tokens: INSTANT_TOKENS,
            error: None,
            finish: Some("stop".into()),
        };
        remote.session.tokens = INSTANT_TOKENS;
        remote.session.cost = INSTANT_COST;
        remote.session.updated_at = now;
        remote.turn = Some((user, reply.clone()));
        Ok(reply)
    }
}

#[async_trait]
impl AgentServer for InstantAgent {
    fn name(&self) -> &str {
        &self.name
    }

    async fn health(&self) -> Result<ServerHealth, AgentServerError> {
        Ok(ServerHealth {
            healthy: true,
            version: "instant".into(),
        })
    }

    async fn create_session(
        &self,
        request: &CreateSession,
    ) -> Result<AgentSession, AgentServerError> {
        let now = Utc::now();
        let session = AgentSession {
            id: AgentSessionId::new(format!("ses_{}", Uuid::new_v4().simple())),
            title: request.title.clone().unwrap_or_default(),
            directory: request.directory.clone().unwrap_or_else(|| "/".into()),
            parent: request.parent.clone(),
            agent: request.agent.clone(),
            model: request.model.clone(),
            metadata: request.metadata.clone().unwrap_or(serde_json::Value::Null),
            cost: 0.0,
            tokens: TokenUsage::default(),
            created_at: now,
            updated_at: now,
        };
        self.sessions().insert(
            session.id.clone(),
            Remote {
                session: session.clone(),
                turn: None,
            },
        );
        Ok(session)
    }

    async fn get_session(
        &self,
        session: &SessionAddress,
    ) -> Result<AgentSession, AgentServerError> {
        self.sessions()
            .get(&session.id)
            .map(|r| r.session.clone())
            .ok_or_else(|| Self::not_found(session))
    }

    async fn list_sessions(
        &self,
        directory: Option<&str>,
    ) -> Result<Vec<AgentSession>, AgentServerError> {
        let mut list: Vec<AgentSession> = self
            .sessions()
            .values()
            .filter(|r| directory.is_none_or(|d| r.session.directory == d))
            .map(|r| r.session.clone())
            .collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.updated_at));
        Ok(list)
    }

    async fn delete_session(&self, session: &SessionAddress) -> Result<(), AgentServerError> {
        self.sessions().remove(&session.id);
        Ok(())
    }

    async fn prompt(
        &self,
        session: &SessionAddress,
        request: &PromptRequest,
    ) -> Result<AssistantReply, AgentServerError> {
        let message = self.answer(session, request)?;
        Ok(AssistantReply {
            message,
            parts: Vec::new(),
        })
    }

    async fn prompt_async(
        &self,
        session: &SessionAddress,
        request: &PromptRequest,
    ) -> Result<(), AgentServerError> {
        self.answer(session, request).map(drop)
    }

    async fn abort(&self, _session: &SessionAddress) -> Result<bool, AgentServerError> {
        Ok(true)
    }

    async fn messages(
        &self,
        session: &SessionAddress,
    ) -> Result<Vec<MessageRecord>, AgentServerError> {
        let sessions = self.sessions();
        let remote = sessions
            .get(&session.id)
            .ok_or_else(|| Self::not_found(session))?;
        Ok(match &remote.turn {
            Some((user, reply)) => vec![
                MessageRecord {
                    message: Message::User(user.clone()),
                    parts: Vec::new(),
                },
                MessageRecord {
                    message: Message::Assistant(reply.clone()),
                    parts: Vec::new(),
                },
            ],
            None => Vec::new(),
        })
    }

    async fn diff(&self, session: &SessionAddress) -> Result<Vec<FileDiff>, AgentServerError> {
        if self.sessions().contains_key(&session.id) {
            Ok(Vec::new())
        } else {
            Err(Self::not_found(session))
        }
    }

    async fn status(
        &self,
        _directory: Option<&str>,
    ) -> Result<BTreeMap<AgentSessionId, AgentSessionStatus>, AgentServerError> {
        // Absent means idle: every turn is over as soon as it is prompted.
        Ok(BTreeMap::new())
    }

    async fn reply_permission(
        &self,
        _directory: Option<&str>,
        request_id: &str,
        _reply: PermissionReply,
        _message: Option<&str>,
    ) -> Result<(), AgentServerError> {
        Err(AgentServerError::NotFound(format!(
            "permission request {request_id}"
        )))
    }

    async fn reply_question(
        &self,
        _directory: Option<&str>,
        request_id: &str,
        _answers: &[Vec<String>],
    ) -> Result<(), AgentServerError> {
        Err(AgentServerError::NotFound(format!("question {request_id}")))
    }

    async fn reject_question(
        &self,
        _directory: Option<&str>,
        request_id: &str,
    ) -> Result<(), AgentServerError> {
        Err(AgentServerError::NotFound(format!("question {request_id}")))
    }

    fn events(&self, _scope: EventScope) -> AgentEventStream {
        Box::pin(
            futures_util::stream::once(async { AgentEvent::ServerConnected })
                .chain(futures_util::stream::pending()),
        )
    }
}

/// A fleet of one instant server that always has room.
pub struct InstantServers {
    server: Arc<InstantAgent>,
    capacity: u32,
}

impl InstantServers {
    pub fn new(server: Arc<InstantAgent>, capacity: u32) -> Self {
        Self { server, capacity }
    }
}

impl AgentServers for InstantServers {
    fn available(&self) -> Vec<ServerCapacity> {
        vec![ServerCapacity {
            server: self.server.name().to_owned(),
            capacity: self.capacity,
        }]
    }

    fn get(&self, name: &str) -> Option<Arc<dyn AgentServer>> {
        (name == self.server.name()).then(|| self.server.clone() as Arc<dyn AgentServer>)
    }

    fn report(&self) -> Vec<ServerReport> {
        vec![ServerReport {
            server: self.server.name().to_owned(),
            healthy: true,
            breaker: BreakerState::Closed,
            in_flight: 0,
            capacity: self.capacity,
        }]
    }
}

/// Workspaces without git: every session "works" in one existing directory, nothing changes,
/// nothing is committed or removed.
pub struct NoopWorkspaces {
    path: PathBuf,
}

impl NoopWorkspaces {
    /// `path`: the directory every workspace points at (a temp dir).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[async_trait]
impl Workspaces for NoopWorkspaces {
    async fn prepare(&self, request: &WorkspaceRequest) -> Result<Workspace, WorkspaceError> {
        Ok(Workspace {
            repository: request.repository.clone(),
            session: request.session,
            path: self.path.clone(),
            branch: session_branch(request.session),
            base_commit: "0".repeat(40),
        })
    }

    async fn diff(&self, _workspace: &Workspace) -> Result<WorkspaceDiff, WorkspaceError> {
        Ok(WorkspaceDiff::default())
    }

    async fn snapshot(
        &self,
        _workspace: &Workspace,
        _message: &str,
    ) -> Result<Option<String>, WorkspaceError> {
        Ok(None)
    }

    async fn remove(
        &self,
        _workspace: &Workspace,
        _policy: CleanupPolicy,
    ) -> Result<(), WorkspaceError> {
        Ok(())
    }

    async fn list(&self, _repository: &std::path::Path) -> Result<Vec<Workspace>, WorkspaceError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_prompt_is_answered_at_once_with_a_completed_reply_to_it() {
        let agent = InstantAgent::new("instant");
        let created = agent
            .create_session(&CreateSession {
                directory: Some("/tmp/x".into()),
                ..CreateSession::default()
            })
            .await
            .unwrap();
        let address = created.address();
        assert!(agent.messages(&address).await.unwrap().is_empty());
        let prompt = MessageId::generate();
        agent
            .prompt_async(
                &address,
                &PromptRequest {
                    message_id: prompt.clone(),
                    text: "hi".into(),
                    agent: None,
                    model: None,
                },
            )
            .await
            .unwrap();
        let messages = agent.messages(&address).await.unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].message.id(), &prompt);
        let reply = messages[1].message.as_assistant().unwrap();
        assert_eq!(reply.parent_id.as_ref(), Some(&prompt));
        assert!(reply.completed_at.is_some());
        assert_eq!(reply.tokens, INSTANT_TOKENS);
        assert!(agent.status(None).await.unwrap().is_empty());
        assert!(agent.abort(&address).await.unwrap());
        let first = agent.events(EventScope::AllDirectories).next().await;
        assert_eq!(first, Some(AgentEvent::ServerConnected));
    }
}
