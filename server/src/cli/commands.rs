//! The operator commands (`session`, `task`, `agent`): argument checks, calls into the
//! application services on the configured store, and the result handed to [`Console`].
//!
//! Nothing here exits the process: every failure is a [`CliError`], whose
//! [`exit_code`](CliError::exit_code) `main` uses (2 invalid input, 3 not found, 1 otherwise).

use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use domain::task::execution::{MAX_PARALLEL, MAX_RETRIES};
use domain::{
    AgentName, Cursor, FailurePolicy, PageRequest, SessionFilter, SessionId, SessionStatus, TaskId,
    ValidationError, WorkspacePath,
};
use serde::Serialize;

use super::output;
use super::{
    AddAgentArgs, AgentCommand, Command, CreateSessionArgs, CreateTaskArgs, ListSessionsArgs,
    PolicyArg, SessionCommand, TaskCommand,
};
use crate::application::{
    AgentServiceError, CancelOutcome, CreateSessionRequest, DecompositionError,
    DecompositionOptions, ExecutionError, LifecycleError, RegisterAgent, SessionLifecycle,
    StartTaskRequest,
};
use crate::config::Settings;
use crate::ports::RepositoryError;
use crate::startup::TaskServices;
use crate::storage::{self, StorageError, Store};

/// Why a command failed. The message is what the operator reads after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input, naming the field: exit code 2.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The session, task or agent does not exist: exit code 3.
    #[error("{0}")]
    NotFound(String),
    /// The command does not apply in the current state (e.g. cancelling a cancelled session).
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("storage: {0}")]
    Repository(#[from] RepositoryError),
    #[error("{0}")]
    Failed(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("cannot encode the output as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl CliError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The process exit code: 2 invalid input, 3 not found, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Invalid { .. } => 2,
            Self::NotFound(_) => 3,
            _ => 1,
        }
    }
}

impl From<ValidationError> for CliError {
    fn from(e: ValidationError) -> Self {
        Self::invalid(e.field, e.message)
    }
}

impl From<LifecycleError> for CliError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Invalid(v) => v.into(),
            LifecycleError::NotFound(_) => Self::NotFound(e.to_string()),
            LifecycleError::NotAllowed(message) => Self::NotAllowed(message),
            LifecycleError::Storage(r) => r.into(),
        }
    }
}

impl From<AgentServiceError> for CliError {
    fn from(e: AgentServiceError) -> Self {
        match e {
            AgentServiceError::Invalid(v) => v.into(),
            AgentServiceError::NotFound(_) => Self::NotFound(e.to_string()),
            AgentServiceError::Conflict { .. } => Self::NotAllowed(e.to_string()),
            AgentServiceError::Storage(r) => r.into(),
        }
    }
}

impl From<DecompositionError> for CliError {
    fn from(e: DecompositionError) -> Self {
        match e {
            DecompositionError::Invalid(v) => v.into(),
            DecompositionError::Graph(_) => Self::Failed(e.to_string()),
            DecompositionError::Storage(r) => r.into(),
        }
    }
}

impl From<ExecutionError> for CliError {
    fn from(e: ExecutionError) -> Self {
        match e {
            ExecutionError::Invalid(v) => v.into(),
            ExecutionError::NotFound(_) => Self::NotFound(e.to_string()),
            ExecutionError::NotAllowed(message) => Self::NotAllowed(message),
            ExecutionError::Storage(r) => r.into(),
        }
    }
}

/// Where results go: JSON (one document per command) or human tables and text.
pub struct Console<W> {
    out: W,
    json: bool,
}

impl<W: Write> Console<W> {
    pub fn new(out: W, json: bool) -> Self {
        Self { out, json }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// `value` as pretty JSON when `--json`, else `human()`.
    pub fn emit<T: Serialize>(
        &mut self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        if self.json {
            serde_json::to_writer_pretty(&mut self.out, value)?;
            writeln!(self.out)?;
        } else {
            let text = human();
            write!(self.out, "{text}")?;
            if !text.ends_with('\n') {
                writeln!(self.out)?;
            }
        }
        self.out.flush()?;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The application services the commands use, over one store.
pub struct Services {
    pub store: Store,
    pub auth: Arc<crate::application::AuthService>,
    pub lifecycle: Arc<SessionLifecycle>,
    pub tasks: TaskServices,
    /// Answers are relayed to the configured OpenCode servers.
    pub inbox: Arc<crate::application::InboxService>,
    /// The data directory (its first-run password file goes when the admin's password changes).
    pub data_dir: std::path::PathBuf,
}

impl Services {
    /// Opens the configured store (applying pending migrations) and builds the services on it.
    pub async fn connect(settings: &Settings) -> Result<Self, CliError> {
        let store = storage::connect(settings).await?;
        Ok(Self::new(store, settings))
    }

    pub fn new(store: Store, settings: &Settings) -> Self {
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
        let auth = Arc::new(crate::application::AuthService::new(
            store.credentials.clone(),
            std::time::Duration::from_secs(settings.auth.session_ttl_hours * 3600),
        ));
        let inbox = Arc::new(inbox_service(&store, settings));
        Self {
            data_dir: settings.data_dir.clone(),
            store,
            auth,
            lifecycle,
            tasks,
            inbox,
        }
    }
}

/// The inbox over `store`, relaying to the configured servers (no policies: they run in `serve`).
fn inbox_service(store: &Store, settings: &Settings) -> crate::application::InboxService {
    use crate::adapters::opencode::{Fleet, ResiliencePolicy};
    let policy = ResiliencePolicy::from(&settings.opencode.resilience);
    // The settings were validated: building the clients does not fail in practice.
    let fleet = Fleet::from_settings(&settings.opencode, &policy).unwrap_or_else(|error| {
        tracing::warn!(%error, "OpenCode servers unusable: inbox answers cannot be relayed");
        Fleet::new(std::iter::empty())
    });
    crate::application::InboxService::new(
        store.inbox.clone(),
        store.unit_of_work.clone(),
        Arc::new(fleet),
        Default::default(),
        None,
    )
}

/// Runs an operator command (`session`, `task`, `agent`) against the configured store, writing
/// its result to stdout. Other commands are refused (`main` runs them).
pub async fn execute(settings: &Settings, command: Command, json: bool) -> Result<(), CliError> {
    if !command.is_operator_command() {
        return Err(CliError::Failed(format!(
            "{command:?} is not an operator command"
        )));
    }
    let services = Services::connect(settings).await?;
    let mut console = Console::new(std::io::stdout().lock(), json);
    match run(&services, command, &mut console).await {
        // The reader went away (`| head`): what it read is all it wanted.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Runs an operator command on `services`, writing to `console`.
pub async fn run<W: Write>(
    services: &Services,
    command: Command,
    console: &mut Console<W>,
) -> Result<(), CliError> {
    match command {
        Command::Session { command } => session(services, command, console).await,
        Command::Task { command } => task(services, command, console).await,
        Command::Agent { command } => agent(services, command, console).await,
        Command::Token { command } => super::access::token(services, command, console).await,
        Command::User { command } => super::access::user(services, command, console).await,
        Command::Inbox { command } => super::inbox::run(services, command, console).await,
        other => Err(CliError::Failed(format!(
            "{other:?} is not an operator command"
        ))),
    }
}

async fn session<W: Write>(
    services: &Services,
    command: SessionCommand,
    console: &mut Console<W>,
) -> Result<(), CliError> {
    match command {
        SessionCommand::Create(args) => create_session(services, args, console).await,
        SessionCommand::List(args) => list_sessions(services, args, console).await,
        SessionCommand::Show { id } => {
            let id: SessionId = parse_id(&id)?;
            let session = services.lifecycle.get(id).await?;
            let events = services.store.sessions.events(id).await?;
            let detail = output::SessionDetail::new(session, &events);
            console.emit(&detail, || output::session_detail(&detail))
        }
        SessionCommand::Cancel { id, reason } => {
            let id: SessionId = parse_id(&id)?;
            let reason = reason.filter(|r| !r.trim().is_empty());
            let outcome = services.lifecycle.cancel(id, reason).await?;
            let session = services.lifecycle.get(id).await?;
            let result = output::CancelResult {
                outcome: match outcome {
                    CancelOutcome::Cancelled => "cancelled",
                    CancelOutcome::Requested => "requested",
                },
                session,
            };
            console.emit(&result, || match outcome {
                CancelOutcome::Cancelled => format!("session {id} cancelled"),
                CancelOutcome::Requested => format!(
                    "session {id} is running: cancellation requested from the replica running it"
                ),
            })
        }
        SessionCommand::Retry { id, priority } => {
            let id: SessionId = parse_id(&id)?;
            let session = services.lifecycle.retry(id, priority).await?;
            console.emit(&session, || {
                format!(
                    "session {id} queued again (attempt {} of {})",
                    session.attempt(),
                    session.max_attempts()
                )
            })
        }
    }
}

async fn create_session<W: Write>(
    services: &Services,
    args: CreateSessionArgs,
    console: &mut Console<W>,
) -> Result<(), CliError> {
    let request = CreateSessionRequest {
        title: args.title,
        prompt: args.prompt,
        workspace: absolute_workspace(&args.workspace),
        agent: args.agent,
        priority: args.priority,
        max_attempts: args.max_attempts,
    };
    let session = services.lifecycle.create(request).await?;
    console.emit(&session, || output::session_created(&session))
}

async fn list_sessions<W: Write>(
    services: &Services,
    args: ListSessionsArgs,
    console: &mut Console<W>,
) -> Result<(), CliError> {
    let status = args
        .status
        .as_deref()
        .map(SessionStatus::from_str)
        .transpose()
        .map_err(|e| CliError::invalid("status", e.to_string()))?;
    let agent = args
        .agent
        .map(AgentName::new)
        .transpose()
        .map_err(|e| e.in_field("agent"))?;
    let after = args
        .after
        .as_deref()
        .map(Cursor::from_str)
        .transpose()
        .map_err(|e| e.in_field("after"))?;
    let page = PageRequest::new(args.limit, after)?;
    let filter = SessionFilter {
        status,
        agent,
        ..SessionFilter::default()
    };
    let page = services.store.sessions.list(&filter, &page).await?;
    let page = output::SessionPage {
        items: page.items,
        next: page.next.map(|c| c.to_string()),
    };
    console.emit(&page, || output::session_list(&page))
}

async fn task<W: Write>(
    services: &Services,
    command: TaskCommand,
    console: &mut Console<W>,
) -> Result<(), CliError> {
    match command {
        TaskCommand::Create(args) => create_task(services, args, console).await,
        TaskCommand::Show { id } => {
            let id: TaskId = parse_id(&id)?;
            let tasks = services.tasks.executor.tree(id).await?;
            let tree = output::TaskTree { root: id, tasks };
            console.emit(&tree, || output::task_tree(&tree))
        }
    }
}

/// What `task create --start` is asked to run with, checked before anything is stored.
fn start_request(args: &CreateTaskArgs) -> Result<Option<StartTaskRequest>, CliError> {
    if !args.start {
        return Ok(None);
    }
    let raw = args
        .workspace
        .as_deref()
        .ok_or_else(|| CliError::invalid("workspace", "required with --start"))?;
    let workspace =
        WorkspacePath::new(absolute_workspace(raw)).map_err(|e| e.in_field("workspace"))?;
    if !Path::new(workspace.as_str()).join(".git").exists() {
        return Err(CliError::invalid(
            "workspace",
            format!("{} is not the root of a git repository", workspace.as_str()),
        ));
    }
    if let Some(max) = args.max_parallel {
        if !(1..=MAX_PARALLEL).contains(&max) {
            return Err(CliError::invalid(
                "max_parallel",
                format!("must be between 1 and {MAX_PARALLEL}"),
            ));
        }
    }
    let policy = match (args.policy, args.retries) {
        (Some(PolicyArg::Retry), Some(retries)) => {
            if !(1..=MAX_RETRIES).contains(&retries) {
                return Err(CliError::invalid(
                    "retries",
                    format!("must be between 1 and {MAX_RETRIES}"),
                ));
            }
            Some(FailurePolicy::Retry { retries })
        }
        (Some(PolicyArg::Retry), None) => {
            return Err(CliError::invalid("retries", "required with --policy retry"))
        }
        (_, Some(_)) => {
            return Err(CliError::invalid(
                "retries",
                "only applies with --policy retry",
            ))
        }
        (Some(PolicyArg::FailFast), None) => Some(FailurePolicy::FailFast),
        (Some(PolicyArg::Continue), None) => Some(FailurePolicy::Continue),
        (None, None) => None,
    };
    Ok(Some(StartTaskRequest {
        workspace: workspace.into_inner(),
        max_parallel: args.max_parallel,
        policy,
        ..StartTaskRequest::default()
    }))
}

async fn create_task<W: Write>(
    services: &Services,
    args: CreateTaskArgs,
    console: &mut Console<W>,
) -> Result<(), CliError> {
    let start = start_request(&args)?;
    let defaults = DecompositionOptions::default();
    let options = DecompositionOptions {
        max_depth: args.max_depth.unwrap_or(defaults.max_depth),
        template: args.template.filter(|t| !t.trim().is_empty()),
        ..defaults
    };
    let decomposition = services
        .tasks
        .decomposition
        .decompose_and_store(&args.requirement, &options)
        .await?;
    let root = decomposition.root;
    let (tasks, started) = match start {
        Some(request) => {
            services.tasks.executor.start(root, request).await?;
            (services.tasks.executor.tree(root).await?, true)
        }
        None => (decomposition.tasks.clone(), false),
    };
    let created = output::TaskCreated {
        root,
        started,
        tasks,
    };
    console.emit(&created, || {
        let mut text = decomposition.render();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "\nstored {} tasks; root task {root}\n",
            created.tasks.len()
        ));
        if started {
            let status = created
                .tasks
                .iter()
                .find(|t| t.id() == root)
                .map(|t| t.status().to_string())
                .unwrap_or_default();
            text.push_str(&format!(
                "started: the tree is {status}; follow it with `server task show {root}`\n"
            ));
        }
        text
    })
}

async fn agent<W: Write>(
    services: &Services,
    command: AgentCommand,
    console: &mut Console<W>,
) -> Result<(), CliError> {
    match command {
        AgentCommand::List => {
            let agents = services.tasks.agents.list().await?;
            console.emit(&agents, || output::agent_list(&agents))
        }
        AgentCommand::Add(AddAgentArgs {
            name,
            capabilities,
            model,
            max_concurrency,
        }) => {
            let agent = services
                .tasks
                .agents
                .register(RegisterAgent {
                    name,
                    capabilities,
                    model,
                    max_concurrency,
                })
                .await?;
            console.emit(&agent, || {
                format!(
                    "agent {} registered\n{}",
                    agent.name(),
                    output::agent_list(std::slice::from_ref(&agent))
                )
            })
        }
    }
}

/// A UUID argument (session or task id); a bad one is invalid input naming `id`.
fn parse_id<T: FromStr>(raw: &str) -> Result<T, CliError> {
    raw.trim()
        .parse()
        .map_err(|_| CliError::invalid("id", format!("`{raw}` is not a UUID")))
}

/// A workspace given relative to the current directory, made absolute when it exists (the
/// server resolves it elsewhere); anything else is passed on for the domain to judge.
fn absolute_workspace(raw: &str) -> String {
    let path = Path::new(raw);
    if raw.trim().is_empty() || path.is_absolute() {
        return raw.to_owned();
    }
    std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::adapters::sql::SqlStore;
    use crate::cli::Cli;
    use crate::storage::PoolSettings;

    fn task_args(args: &[&str]) -> CreateTaskArgs {
        let mut all = vec!["server", "task", "create", "--requirement", "r"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).unwrap().command {
            Some(Command::Task {
                command: TaskCommand::Create(args),
            }) => args,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn field(error: CliError) -> String {
        match error {
            CliError::Invalid { field, .. } => field,
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn exit_codes_follow_the_kind_of_failure() {
        let id = SessionId::from_uuid(uuid::Uuid::nil());
        assert_eq!(CliError::from(LifecycleError::NotFound(id)).exit_code(), 3);
        let invalid = CliError::from(ValidationError::new("title", "must not be empty"));
        assert_eq!(invalid.exit_code(), 2);
        assert_eq!(invalid.to_string(), "title: must not be empty");
        assert_eq!(
            CliError::from(LifecycleError::NotAllowed("no".into())).exit_code(),
            1
        );
        let missing = CliError::from(AgentServiceError::NotFound("x".into()));
        assert_eq!(
            (missing.exit_code(), missing.to_string().as_str()),
            (3, "agent x does not exist")
        );
    }

    #[test]
    fn start_options_are_checked_before_anything_is_stored() {
        assert!(start_request(&task_args(&[])).unwrap().is_none());
        let not_a_repo = tempfile::tempdir().unwrap();
        let dir = not_a_repo.path().to_str().unwrap();
        let err = start_request(&task_args(&["--start", "--workspace", dir])).unwrap_err();
        assert_eq!(field(err), "workspace");

        std::fs::create_dir(not_a_repo.path().join(".git")).unwrap();
        let ok = start_request(&task_args(&[
            "--start",
            "--workspace",
            dir,
            "--policy",
            "retry",
            "--retries",
            "3",
            "--max-parallel",
            "2",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(ok.policy, Some(FailurePolicy::Retry { retries: 3 }));
        assert_eq!(ok.max_parallel, Some(2));

        for (args, expected) in [
            (vec!["--policy", "retry"], "retries"),
            (vec!["--policy", "continue", "--retries", "2"], "retries"),
            (vec!["--policy", "retry", "--retries", "0"], "retries"),
            (vec!["--max-parallel", "0"], "max_parallel"),
        ] {
            let mut all = vec!["--start", "--workspace", dir];
            all.extend(args);
            let err = start_request(&task_args(&all)).unwrap_err();
            assert_eq!(field(err), expected, "{all:?}");
        }
    }

    #[test]
    fn ids_must_be_uuids() {
        assert_eq!(field(parse_id::<SessionId>("nope").unwrap_err()), "id");
        let id = uuid::Uuid::new_v4();
        assert_eq!(parse_id::<TaskId>(&id.to_string()).unwrap().as_uuid(), id);
    }

    async fn services(dir: &Path) -> Services {
        let url = format!("sqlite://{}?mode=rwc", dir.join("cli.db").display());
        let store = SqlStore::sqlite(
            &url,
            PoolSettings {
                max_connections: 2,
                acquire_timeout: Duration::from_secs(10),
            },
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let settings = Settings::load_from(None, Vec::new()).unwrap();
        Services::new(Store::from_adapter(store), &settings)
    }

    async fn run_json(services: &Services, args: &[&str]) -> Result<serde_json::Value, CliError> {
        let mut all = vec!["server", "--json"];
        all.extend_from_slice(args);
        let cli = Cli::try_parse_from(all).unwrap();
        assert!(cli.json);
        let mut console = Console::new(Vec::new(), cli.json);
        run(services, cli.command.unwrap(), &mut console).await?;
        Ok(serde_json::from_slice(&console.into_inner()).unwrap())
    }

    #[tokio::test]
    async fn a_session_created_through_the_commands_is_queued_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let services = services(dir.path()).await;
        let workspace = dir.path().to_str().unwrap();
        let created = run_json(
            &services,
            &[
                "session",
                "create",
                "--title",
                "T",
                "--prompt",
                "P",
                "--workspace",
                workspace,
            ],
        )
        .await
        .unwrap();
        assert_eq!(created["status"], "queued");
        let listed = run_json(&services, &["session", "list", "--status", "queued"])
            .await
            .unwrap();
        assert_eq!(listed["items"][0]["id"], created["id"]);
        assert_eq!(listed["next"], serde_json::Value::Null);

        let err = run_json(
            &services,
            &[
                "session",
                "create",
                "--title",
                "",
                "--prompt",
                "P",
                "--workspace",
                workspace,
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(field(err), "title");
        let retry = run_json(
            &services,
            &["session", "retry", created["id"].as_str().unwrap()],
        )
        .await
        .unwrap_err();
        assert!(matches!(retry, CliError::NotAllowed(_)), "{retry:?}");
    }
}
