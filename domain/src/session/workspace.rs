//! What a session's worktree held when an attempt ended: the payload of its `session.workspace`
//! event. One definition for the engine that writes it and every reader (task results, the REST
//! diff, the dashboard).

use serde::{Deserialize, Serialize};

/// The `session.workspace` event's payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkspaceRecord {
    /// The session branch, `oio/session-<uuid>`.
    #[serde(default)]
    pub branch: String,
    /// The worktree directory.
    #[serde(default)]
    pub path: String,
    /// The commit the worktree started from.
    #[serde(default)]
    pub base_commit: String,
    /// The commit that holds the attempt's work; `None` when it changed nothing.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Every file changed since `base_commit`, sorted by path.
    #[serde(default)]
    pub files: Vec<ChangedFileRecord>,
    /// The unified diff, cut to a bounded size (untrusted text).
    #[serde(default)]
    pub patch: String,
    /// Whether `patch` was cut.
    #[serde(default)]
    pub patch_truncated: bool,
}

/// One changed file of a [`WorkspaceRecord`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangedFileRecord {
    /// Path relative to the repository root.
    pub path: String,
    /// Lines added.
    #[serde(default)]
    pub additions: u64,
    /// Lines removed.
    #[serde(default)]
    pub deletions: u64,
}

impl WorkspaceRecord {
    /// The event kind it is stored under (`session.workspace` once prefixed).
    pub const KIND: &'static str = "workspace";
    /// The full event type.
    pub const EVENT_TYPE: &'static str = "session.workspace";

    /// The changed files' paths, in order.
    pub fn paths(&self) -> Vec<String> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }
}
