//! Session isolation: every session works in its own checkout (a git worktree on its own branch)
//! of its target repository. This port owns that checkout's life: creating it before dispatch,
//! reporting what the session changed, preserving the work as a commit, and cleaning up after.
//!
//! Everything here is addressed by [`SessionId`], so a restarted orchestrator can find a session's
//! checkout again ([`Workspaces::prepare`] is idempotent).

use std::path::PathBuf;

use async_trait::async_trait;
use domain::SessionId;

/// The branch prefix of every session branch; nothing else in a repository is ours.
pub const BRANCH_PREFIX: &str = "oio/";

/// The branch a session works on: `oio/session-<uuid>`.
pub fn session_branch(session: SessionId) -> String {
    format!("{BRANCH_PREFIX}session-{session}")
}

/// A 64-bit FNV-1a hash of a path, the same in every process and Rust release (std's hasher
/// promises neither), so that names derived from a repository's path — its worktree directory,
/// the lock serialising work in it — agree across replicas and upgrades.
pub fn path_hash(path: &std::path::Path) -> u64 {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// What to isolate: a session, in a repository, starting from a base revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRequest {
    /// The root of an existing, non-bare git repository.
    pub repository: PathBuf,
    pub session: SessionId,
    /// The revision to start from (a branch, tag or commit); `HEAD` of the repository when absent.
    /// Only used when the workspace is first created: preparing again returns the existing one.
    pub base: Option<String>,
}

/// A session's isolated checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The repository the workspace belongs to (canonical path of its root).
    pub repository: PathBuf,
    pub session: SessionId,
    /// The worktree directory the session works in; outside the repository.
    pub path: PathBuf,
    /// The session branch, `oio/session-<uuid>`.
    pub branch: String,
    /// The full hash of the commit the workspace started from; diffs are taken against it.
    pub base_commit: String,
}

/// How a changed file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeStatus {
    Added,
    Modified,
    Deleted,
    Renamed,
}

/// One file changed in a workspace since its base commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// Path relative to the repository root (the new path of a renamed file).
    pub path: String,
    /// The old path of a renamed file.
    pub previous_path: Option<String>,
    pub status: ChangeStatus,
    /// Lines added and removed; both 0 for a binary file.
    pub additions: u64,
    pub deletions: u64,
    pub binary: bool,
}

/// Everything a session changed since its base commit: committed, staged, unstaged and untracked
/// (but not ignored) files alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceDiff {
    /// Sorted by path.
    pub files: Vec<ChangedFile>,
    /// A unified diff of the same changes (binary files are named, not included).
    pub patch: String,
}

impl WorkspaceDiff {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// What [`Workspaces::remove`] removes once a session is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CleanupPolicy {
    /// Leave the worktree and the branch as they are (to inspect or continue).
    #[default]
    Keep,
    /// Delete the worktree directory; keep the branch, so committed work (see
    /// [`Workspaces::snapshot`]) survives and can be reviewed or merged.
    RemoveWorktreeKeepBranch,
    /// Delete the worktree and the branch: the session's work is gone.
    RemoveAll,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The path does not exist or is not the root of a non-bare git repository.
    #[error("{} is not the root of a git repository", path.display())]
    NotARepository { path: PathBuf },
    /// The base revision does not name a commit in the repository.
    #[error("invalid base revision {reference:?}: {message}")]
    InvalidRef { reference: String, message: String },
    /// The configured worktree root lies inside the repository (its checkouts would show up as
    /// untracked files of the repository itself).
    #[error("worktree root {} is inside repository {}", root.display(), repository.display())]
    RootInsideRepository { root: PathBuf, repository: PathBuf },
    /// A git command failed. `stderr` is trimmed and bounded.
    #[error("`{command}` failed ({status}): {stderr}")]
    Git {
        command: String,
        status: String,
        stderr: String,
    },
    /// Git's output could not be understood (a git version this adapter does not know).
    #[error("unexpected output from `{command}`: {message}")]
    UnexpectedOutput { command: String, message: String },
    /// A filesystem operation, or starting git, failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Per-session isolated checkouts of git repositories.
#[async_trait]
pub trait Workspaces: Send + Sync + 'static {
    /// Creates the session's worktree on a new branch `oio/session-<uuid>` at `request.base`, or
    /// returns the existing one: preparing a session twice (say, after a crash) yields the same
    /// workspace. A session whose worktree was removed but whose branch was kept gets a fresh
    /// worktree of that branch.
    async fn prepare(&self, request: &WorkspaceRequest) -> Result<Workspace, WorkspaceError>;

    /// What changed in the workspace since its base commit, including uncommitted and untracked
    /// files. Read-only: neither the workspace's index nor its files are touched.
    async fn diff(&self, workspace: &Workspace) -> Result<WorkspaceDiff, WorkspaceError>;

    /// Commits every change in the workspace (untracked files included, ignored ones not) to the
    /// session branch, so the work survives removal of the worktree. Returns the new commit, or
    /// `None` when there was nothing to commit.
    async fn snapshot(
        &self,
        workspace: &Workspace,
        message: &str,
    ) -> Result<Option<String>, WorkspaceError>;

    /// Cleans up per `policy`. Uncommitted changes in the worktree are discarded: snapshot first
    /// to keep them. Removing what is already gone is not an error.
    async fn remove(
        &self,
        workspace: &Workspace,
        policy: CleanupPolicy,
    ) -> Result<(), WorkspaceError>;

    /// The session workspaces (branches `oio/…` checked out in a worktree) of a repository.
    async fn list(&self, repository: &std::path::Path) -> Result<Vec<Workspace>, WorkspaceError>;
}
