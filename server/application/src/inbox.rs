//! The human-in-the-loop inbox: every permission request and question of every agent server
//! lands in one persisted queue; an operator (or a policy rule) answers, and the answer is relayed
//! to the server that asked.
//!
//! - [`InboxService::watch`] follows each server's event stream (all directories): it records
//!   `permission.asked` / `question.asked` (once per request, however often the stream repeats
//!   it), answers at once when a policy rule matches, expires items the server settled without us,
//!   re-reads the pending requests after a lost stream, and escalates items left unanswered past
//!   `escalate_after_secs`.
//! - [`InboxService::answer`] checks the answer, relays it, then stores it: a failed relay stores
//!   nothing.
//! - Items of our own sessions are mirrored on the session's event log (`inbox.asked`,
//!   `inbox.answered`, `inbox.escalated`, `inbox.expired`), and so reach the live SSE stream.
//!
//! Several replicas may each watch the same servers: the store keeps one item per request, and a
//! second answer to an answered item is refused.

mod policy;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use domain::event_log::{InboxChange, InboxLogged};
use domain::{
    InboxAnswer, InboxError, InboxItem, InboxItemId, InboxKind, InboxOption, InboxQuestion,
    InboxReply, InboxRequest, SessionId, SessionLogEvent,
};
use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tracing::Instrument;
use uuid::Uuid;

pub use policy::{InboxSettings, Policies, PolicyAnswer, PolicyRule, RuleAnswer, RuleKind};

use crate::ports::{
    AgentEvent, AgentServer, AgentServerError, AgentServers, AgentSessionId, ChangeSet, EventScope,
    InboxFilter, InboxRepository, NewEvent, PermissionReply, PermissionRequest, QuestionRequest,
    RepositoryError, SessionAddress, UnitOfWork,
};

/// Most open items one escalation sweep looks at.
const SWEEP_LIMIT: u32 = 1000;
/// The metadata key our sessions carry on the agent server (set by the engine's runner).
const SESSION_METADATA_KEY: &str = "oio_session";

/// Why an inbox command failed.
#[derive(Debug, thiserror::Error)]
pub enum InboxServiceError {
    #[error("inbox item {0} does not exist")]
    NotFound(InboxItemId),
    /// The answer does not fit the item, or the item is closed (see [`InboxError`]).
    #[error(transparent)]
    Refused(#[from] InboxError),
    /// The item's server is not (or no longer) configured.
    #[error("agent server {0} is not configured")]
    UnknownServer(String),
    /// The server did not take the answer; nothing was stored.
    #[error("relaying the answer to {server} failed: {source}")]
    Relay {
        server: String,
        #[source]
        source: AgentServerError,
    },
    #[error(transparent)]
    Storage(#[from] RepositoryError),
}

/// The inbox's use cases. Cheap to share: hold it in an `Arc`.
pub struct InboxService {
    inbox: Arc<dyn InboxRepository>,
    unit_of_work: Arc<dyn UnitOfWork>,
    servers: Arc<dyn AgentServers>,
    policies: Policies,
    escalate_after: Option<TimeDelta>,
    /// `(server, request id)` of answers being relayed by this process: the server's echo of our
    /// own reply must not expire the item before the answer is stored.
    answering: Mutex<HashSet<(String, String)>>,
}

/// Removes an entry of [`InboxService::answering`] when the answer is done, however it ends.
struct Answering<'a> {
    set: &'a Mutex<HashSet<(String, String)>>,
    key: (String, String),
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// The watcher's tasks; dropping it stops them.
#[derive(Debug)]
pub struct InboxWatch {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for InboxWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl InboxService {
    pub fn new(
        inbox: Arc<dyn InboxRepository>,
        unit_of_work: Arc<dyn UnitOfWork>,
        servers: Arc<dyn AgentServers>,
        policies: Policies,
        escalate_after: Option<Duration>,
    ) -> Self {
        Self {
            inbox,
            unit_of_work,
            servers,
            policies,
            escalate_after: escalate_after
                .filter(|d| !d.is_zero())
                .and_then(|d| TimeDelta::from_std(d).ok()),
            answering: Mutex::new(HashSet::new()),
        }
    }

    /// The service as `[inbox]` configures it. The settings were validated at load time.
    pub fn from_settings(
        settings: &InboxSettings,
        inbox: Arc<dyn InboxRepository>,
        unit_of_work: Arc<dyn UnitOfWork>,
        servers: Arc<dyn AgentServers>,
    ) -> Result<Self, crate::settings::ConfigError> {
        Ok(Self::new(
            inbox,
            unit_of_work,
            servers,
            settings.policies()?,
            Some(Duration::from_secs(settings.escalate_after_secs)),
        ))
    }

    /// Items newest first: the open ones, or all.
    pub async fn list(
        &self,
        filter: InboxFilter,
        limit: u32,
    ) -> Result<Vec<InboxItem>, InboxServiceError> {
        Ok(self.inbox.list(filter, limit).await?)
    }

    pub async fn get(&self, id: InboxItemId) -> Result<InboxItem, InboxServiceError> {
        self.inbox
            .get(id)
            .await?
            .ok_or(InboxServiceError::NotFound(id))
    }

    /// Answers an open item: checks the answer, relays it to the server that asked (in the
    /// item's directory), then stores it with `by` and the time. When the relay fails nothing is
    /// stored and the item stays open.
    #[tracing::instrument(skip(self, answer), fields(by = %by))]
    pub async fn answer(
        &self,
        id: InboxItemId,
        answer: InboxAnswer,
        by: &str,
    ) -> Result<InboxItem, InboxServiceError> {
        let item = self.get(id).await?;
        item.check_answer(&answer)?;
        let server = self
            .servers
            .get(&item.server)
            .ok_or_else(|| InboxServiceError::UnknownServer(item.server.clone()))?;
        let key = (item.server.clone(), item.request_id.clone());
        self.answering
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone());
        let _answering = Answering {
            set: &self.answering,
            key,
        };
        relay(server.as_ref(), &item, &answer)
            .await
            .map_err(|source| InboxServiceError::Relay {
                server: item.server.clone(),
                source,
            })?;
        let mut answered = item.clone();
        answered.answer(answer.clone(), by, Utc::now())?;
        let stored = match self.inbox.update(&answered).await {
            Ok(stored) => stored,
            // Changed since read: escalated by a sweep, or expired by another replica's watcher
            // that saw the server's echo of this very answer first. Answer the fresh copy.
            Err(RepositoryError::Conflict { .. }) => {
                let mut fresh = self.get(id).await?;
                fresh.answer_expired_echo(answer, by, Utc::now())?;
                self.inbox.update(&fresh).await?
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(
            item = %stored.id,
            server = %stored.server,
            request = %stored.request_id,
            kind = stored.kind.name(),
            "inbox item answered"
        );
        self.mirror(&stored, InboxChange::Answered).await;
        Ok(stored)
    }

    /// Records a request (once: a repeat returns the item recorded first) and, for a new one,
    /// answers it when a policy rule matches. A rule whose relay fails leaves the item pending
    /// for an operator.
    #[tracing::instrument(skip(self, request), fields(server = %request.server, request = %request.request_id))]
    pub async fn record(&self, request: InboxRequest) -> Result<InboxItem, InboxServiceError> {
        let item = InboxItem::new(InboxItemId::from_uuid(Uuid::new_v4()), request, Utc::now());
        let recorded = self.inbox.insert_if_new(&item).await?;
        if !recorded.new {
            return Ok(recorded.item);
        }
        let item = recorded.item;
        tracing::info!(
            item = %item.id,
            kind = item.kind.name(),
            session = ?item.session,
            "inbox item recorded"
        );
        self.mirror(&item, InboxChange::Asked).await;
        let Some(decision) = self.policies.decide(&item) else {
            return Ok(item);
        };
        match self
            .answer(item.id, decision.answer.clone(), &decision.by())
            .await
        {
            Ok(answered) => Ok(answered),
            Err(error) => {
                tracing::warn!(
                    item = %item.id,
                    rule = %decision.rule,
                    %error,
                    "policy answer failed; the item waits for an operator"
                );
                Ok(self.get(item.id).await.unwrap_or(item))
            }
        }
    }

    /// Closes the open item of a request the server settled without us (answered elsewhere,
    /// rejected, or gone). `None` when there is no such open item, or we are answering it.
    pub async fn settled_elsewhere(
        &self,
        server: &str,
        request_id: &str,
    ) -> Result<Option<InboxItem>, InboxServiceError> {
        let key = (server.to_owned(), request_id.to_owned());
        if self
            .answering
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(None);
        }
        let Some(mut item) = self.inbox.find(server, request_id).await? else {
            return Ok(None);
        };
        if !item.is_open() {
            return Ok(None);
        }
        item.expire(Utc::now())?;
        match self.inbox.update(&item).await {
            Ok(stored) => {
                tracing::info!(item = %stored.id, "inbox item settled elsewhere: expired");
                self.mirror(&stored, InboxChange::Expired).await;
                Ok(Some(stored))
            }
            // Answered (by us, another replica) meanwhile: nothing to expire.
            Err(RepositoryError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Escalates every pending item older than `escalate_after` at `now`; returns them.
    pub async fn escalate_overdue(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<InboxItem>, InboxServiceError> {
        let Some(after) = self.escalate_after else {
            return Ok(Vec::new());
        };
        let mut escalated = Vec::new();
        for mut item in self.inbox.list(InboxFilter::Open, SWEEP_LIMIT).await? {
            if !item.is_overdue(now, after) {
                continue;
            }
            item.escalate(now)?;
            match self.inbox.update(&item).await {
                Ok(stored) => {
                    tracing::warn!(
                        item = %stored.id,
                        server = %stored.server,
                        session = ?stored.session,
                        kind = stored.kind.name(),
                        waiting_secs = (now - stored.created_at).num_seconds(),
                        "inbox item unanswered: escalated"
                    );
                    crate::metrics::inbox_escalated();
                    self.mirror(&stored, InboxChange::Escalated).await;
                    escalated.push(stored);
                }
                // Answered or expired meanwhile.
                Err(RepositoryError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(escalated)
    }

    /// Follows every server's events (one task each) and runs the escalation sweep, until the
    /// returned handle is dropped.
    pub fn watch(self: &Arc<Self>, servers: Vec<Arc<dyn AgentServer>>) -> InboxWatch {
        let mut tasks: Vec<JoinHandle<()>> = servers
            .into_iter()
            .map(|server| {
                let span = tracing::info_span!("inbox_watch", server = %server.name());
                tokio::spawn(self.clone().follow(server).instrument(span))
            })
            .collect();
        if let Some(after) = self.escalate_after {
            // Often enough that an item escalates within a quarter of its deadline.
            let every = (after / 4)
                .to_std()
                .unwrap_or(Duration::from_secs(30))
                .clamp(Duration::from_millis(100), Duration::from_secs(30));
            let service = self.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(error) = service.escalate_overdue(Utc::now()).await {
                        tracing::warn!(%error, "inbox escalation sweep failed");
                    }
                }
            }));
        }
        InboxWatch { tasks }
    }

    async fn follow(self: Arc<Self>, server: Arc<dyn AgentServer>) {
        let mut events = server.events(EventScope::AllDirectories);
        while let Some(event) = events.next().await {
            if let Err(error) = self.on_event(server.as_ref(), event).await {
                tracing::warn!(%error, "inbox: handling a server event failed");
            }
        }
    }

    /// Acts on one server event (public for tests driving the watcher by hand).
    pub async fn on_event(
        &self,
        server: &dyn AgentServer,
        event: AgentEvent,
    ) -> Result<(), InboxServiceError> {
        match event {
            AgentEvent::PermissionAsked(request) => {
                let request = self.permission_request(server, request).await;
                self.record(request).await?;
            }
            AgentEvent::QuestionAsked(request) => {
                let request = self.question_request(server, request).await;
                self.record(request).await?;
            }
            AgentEvent::PermissionReplied { request_id, .. }
            | AgentEvent::QuestionReplied { request_id, .. }
            | AgentEvent::QuestionRejected { request_id, .. } => {
                self.settled_elsewhere(server.name(), &request_id).await?;
            }
            AgentEvent::Resynced => self.catch_up(server).await?,
            _ => {}
        }
        Ok(())
    }

    /// After a lost stream: records the requests still pending in every directory we know open
    /// items in (and the server's own), and expires our open items the server no longer has.
    async fn catch_up(&self, server: &dyn AgentServer) -> Result<(), InboxServiceError> {
        let open: Vec<InboxItem> = self
            .inbox
            .list(InboxFilter::Open, SWEEP_LIMIT)
            .await?
            .into_iter()
            .filter(|i| i.server == server.name())
            .collect();
        let mut directories: Vec<Option<String>> = vec![None];
        for item in &open {
            if !directories.contains(&item.directory) {
                directories.push(item.directory.clone());
            }
        }
        for directory in directories {
            let dir = directory.as_deref();
            let (permissions, questions) = match tokio::try_join!(
                server.pending_permissions(dir),
                server.pending_questions(dir)
            ) {
                Ok(pending) => pending,
                Err(error) => {
                    tracing::warn!(%error, directory = ?dir, "inbox: cannot list pending requests");
                    continue;
                }
            };
            let mut pending: HashSet<String> = HashSet::new();
            for request in permissions {
                pending.insert(request.id.clone());
                let request = self.permission_request(server, request).await;
                self.record(request).await?;
            }
            for request in questions {
                pending.insert(request.id.clone());
                let request = self.question_request(server, request).await;
                self.record(request).await?;
            }
            for item in open.iter().filter(|i| i.directory == directory) {
                if !pending.contains(&item.request_id) {
                    self.settled_elsewhere(&item.server, &item.request_id)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn permission_request(
        &self,
        server: &dyn AgentServer,
        request: PermissionRequest,
    ) -> InboxRequest {
        let (directory, session) = locate(server, &request.session_id).await;
        InboxRequest {
            server: server.name().to_owned(),
            remote_session: request.session_id.to_string(),
            directory,
            session,
            request_id: request.id,
            kind: InboxKind::Permission {
                permission: request.permission,
                patterns: request.patterns,
                always: request.always,
            },
        }
    }

    async fn question_request(
        &self,
        server: &dyn AgentServer,
        request: QuestionRequest,
    ) -> InboxRequest {
        let (directory, session) = locate(server, &request.session_id).await;
        InboxRequest {
            server: server.name().to_owned(),
            remote_session: request.session_id.to_string(),
            directory,
            session,
            request_id: request.id,
            kind: InboxKind::Question {
                questions: request
                    .questions
                    .into_iter()
                    .map(|q| InboxQuestion {
                        question: q.question,
                        header: q.header,
                        options: q
                            .options
                            .into_iter()
                            .map(|o| InboxOption {
                                label: o.label,
                                description: o.description,
                            })
                            .collect(),
                        multiple: q.multiple,
                        custom: q.custom,
                    })
                    .collect(),
            },
        }
    }

    /// Appends `inbox.<change>` to the item's session log (and so to the outbox and the live
    /// stream), when the session is ours. Best effort: the item is already stored.
    async fn mirror(&self, item: &InboxItem, change: InboxChange) {
        let Some(session) = item.session else {
            return;
        };
        let mut changes = ChangeSet::new();
        changes.event(NewEvent::session_log(
            session,
            &SessionLogEvent::Inbox(change, InboxLogged::of(item)),
            Utc::now(),
        ));
        if let Err(error) = self.unit_of_work.commit(changes).await {
            tracing::debug!(%error, item = %item.id, "inbox event not logged on the session");
        }
    }
}

/// The session's directory on the server, and our session id from its metadata. A session the
/// server cannot describe is recorded without them (and cannot be answered in its directory).
async fn locate(
    server: &dyn AgentServer,
    session: &AgentSessionId,
) -> (Option<String>, Option<SessionId>) {
    // OpenCode finds a session by id whatever directory it works in.
    match server
        .get_session(&SessionAddress::new(session.clone(), None))
        .await
    {
        Ok(found) => {
            let ours = found
                .metadata
                .get(SESSION_METADATA_KEY)
                .and_then(|v| v.as_str())
                .and_then(|raw| raw.parse::<SessionId>().ok());
            (Some(found.directory), ours)
        }
        Err(error) => {
            tracing::warn!(%error, session = %session, "inbox: cannot read the asking session");
            (None, None)
        }
    }
}

/// Sends `answer` to the server, in the item's directory.
async fn relay(
    server: &dyn AgentServer,
    item: &InboxItem,
    answer: &InboxAnswer,
) -> Result<(), AgentServerError> {
    let directory = item.directory.as_deref();
    match answer {
        InboxAnswer::Permission { reply, message } => {
            let reply = match reply {
                InboxReply::Once => PermissionReply::Once,
                InboxReply::Always => PermissionReply::Always,
                InboxReply::Reject => PermissionReply::Reject,
            };
            server
                .reply_permission(directory, &item.request_id, reply, message.as_deref())
                .await
        }
        InboxAnswer::Question { answers } => {
            server
                .reply_question(directory, &item.request_id, answers)
                .await
        }
        InboxAnswer::QuestionRejected => server.reject_question(directory, &item.request_id).await,
    }
}
