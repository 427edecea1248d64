//! [`GitWorktrees`]: each session's workspace is a `git worktree` of its target repository, on its
//! own branch `oio/session-<uuid>`, in a directory under a root of ours (never inside the
//! repository), `<root>/<repo-name>-<hash of its path>/<session uuid>`.
//!
//! The commit a workspace started from is recorded as the ref `refs/oio/base/<uuid>`, so that it
//! is known again after a restart (and kept from garbage collection) without a database.
//!
//! Operations that change a repository's shared `.git` (adding and removing worktrees, branches
//! and refs, committing) are serialised per repository within this process; serialising across
//! processes is the distributed lock's job.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use domain::SessionId;
use tokio::sync::OwnedMutexGuard;

use super::command::Git;
use oio_application::ports::workspaces::{
    session_branch, ChangeStatus, ChangedFile, CleanupPolicy, Workspace, WorkspaceDiff,
    WorkspaceError, WorkspaceRequest, Workspaces, BRANCH_PREFIX,
};

/// Session workspaces as git worktrees, created under one root directory.
#[derive(Debug)]
pub struct GitWorktrees {
    root: PathBuf,
    /// One lock per repository, keyed by its canonical common git directory (so two paths to the
    /// same repository, or one of its worktrees, share a lock).
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// A repository we have checked: its root and its common git directory, both canonical.
struct Repository {
    root: PathBuf,
    common_dir: PathBuf,
}

impl GitWorktrees {
    /// Workspaces will be created under `root` (created when first needed). `root` must not lie
    /// inside a repository whose sessions it will hold.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The root directory the worktrees live under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Checks that `path` is the root of a non-bare repository and finds its common git dir.
    async fn open(&self, path: &Path) -> Result<Repository, WorkspaceError> {
        let not_a_repository = || WorkspaceError::NotARepository {
            path: path.to_path_buf(),
        };
        let canonical = tokio::fs::canonicalize(path)
            .await
            .map_err(|_| not_a_repository())?;
        let output = Git::new(&canonical)
            .args(&[
                "rev-parse",
                "--path-format=absolute",
                "--show-toplevel",
                "--git-common-dir",
            ])
            .output()
            .await?;
        if !output.status.success() {
            return Err(not_a_repository());
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut lines = stdout.lines();
        let (Some(toplevel), Some(common_dir)) = (lines.next(), lines.next()) else {
            return Err(not_a_repository());
        };
        let toplevel = tokio::fs::canonicalize(toplevel)
            .await
            .map_err(|_| not_a_repository())?;
        // A directory inside some other repository is not that repository: refusing it keeps a
        // misconfigured path from putting sessions into whatever repository happens to enclose it.
        if toplevel != canonical {
            return Err(not_a_repository());
        }
        let common_dir = tokio::fs::canonicalize(common_dir)
            .await
            .map_err(|source| WorkspaceError::Io {
                context: format!("resolving the git directory of {}", canonical.display()),
                source,
            })?;
        Ok(Repository {
            root: canonical,
            common_dir,
        })
    }

    async fn lock(&self, repository: &Repository) -> OwnedMutexGuard<()> {
        let lock = {
            // Poisoning cannot leave the map inconsistent (inserts are single calls), so carry on.
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(repository.common_dir.clone()).or_default())
        };
        lock.lock_owned().await
    }

    /// The directory holding a repository's worktrees, created and canonical.
    async fn repository_dir(&self, repository: &Repository) -> Result<PathBuf, WorkspaceError> {
        let dir = self.root.join(repository_dir_name(&repository.root));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| WorkspaceError::Io {
                context: format!("creating worktree directory {}", dir.display()),
                source,
            })?;
        let dir = tokio::fs::canonicalize(&dir)
            .await
            .map_err(|source| WorkspaceError::Io {
                context: format!("resolving worktree directory {}", dir.display()),
                source,
            })?;
        if dir.starts_with(&repository.root) {
            return Err(WorkspaceError::RootInsideRepository {
                root: self.root.clone(),
                repository: repository.root.clone(),
            });
        }
        Ok(dir)
    }

    /// The commit `reference` names, or `None` if it names none.
    async fn commit_of(
        &self,
        dir: &Path,
        reference: &str,
    ) -> Result<Option<String>, WorkspaceError> {
        let spec = format!("{reference}^{{commit}}");
        let git = Git::new(dir)
            .args(&["rev-parse", "--verify", "--quiet"])
            .arg(&spec);
        let output = git.output().await?;
        match output.status.code() {
            Some(0) => Ok(Some(
                String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            )),
            Some(1) => Ok(None),
            _ => Err(git.failed(&output)),
        }
    }

    /// The session's base commit as recorded, if it is.
    async fn recorded_base(
        &self,
        repository: &Path,
        session: SessionId,
    ) -> Result<Option<String>, WorkspaceError> {
        self.commit_of(repository, &base_ref(session)).await
    }

    /// Resolves the requested base revision to a commit.
    async fn resolve_base(
        &self,
        repository: &Path,
        base: Option<&str>,
    ) -> Result<String, WorkspaceError> {
        let reference = base.unwrap_or("HEAD");
        // A leading dash would be taken as an option by git.
        if reference.is_empty() || reference.starts_with('-') {
            return Err(WorkspaceError::InvalidRef {
                reference: reference.to_owned(),
                message: "not a revision name".to_owned(),
            });
        }
        self.commit_of(repository, reference)
            .await?
            .ok_or_else(|| WorkspaceError::InvalidRef {
                reference: reference.to_owned(),
                message: format!("names no commit in {}", repository.display()),
            })
    }

    /// The registered worktrees of a repository: (path, checked-out branch ref if any).
    async fn worktrees(
        &self,
        repository: &Path,
    ) -> Result<Vec<(PathBuf, Option<String>)>, WorkspaceError> {
        let git = Git::new(repository).args(&["worktree", "list", "--porcelain", "-z"]);
        let stdout = git.run().await?;
        Ok(parse_worktree_list(&String::from_utf8_lossy(&stdout)))
    }

    /// A worktree's own git directory, found from the repository's side: the entry under
    /// `<common dir>/worktrees/` whose `gitdir` file names this worktree. The worktree's `.git`
    /// file is the agent's to rewrite, so it is never what decides which repository we write to.
    async fn worktree_git_dir(
        &self,
        repository: &Repository,
        worktree: &Path,
    ) -> Result<PathBuf, WorkspaceError> {
        let admin = repository.common_dir.join("worktrees");
        let expected = worktree.join(".git");
        let io = |source| WorkspaceError::Io {
            context: format!(
                "finding the git directory of worktree {}",
                worktree.display()
            ),
            source,
        };
        let mut entries = tokio::fs::read_dir(&admin).await.map_err(io)?;
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            let Ok(named) = tokio::fs::read_to_string(entry.path().join("gitdir")).await else {
                continue;
            };
            if Path::new(named.trim_end()) == expected {
                return Ok(entry.path());
            }
        }
        Err(io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the repository lists no such worktree",
        )))
    }

    /// Where the session branch is checked out, if anywhere.
    async fn find_worktree(
        &self,
        repository: &Path,
        branch: &str,
    ) -> Result<Option<PathBuf>, WorkspaceError> {
        let full = format!("refs/heads/{branch}");
        Ok(self
            .worktrees(repository)
            .await?
            .into_iter()
            .find(|(_, b)| b.as_deref() == Some(full.as_str()))
            .map(|(path, _)| path))
    }

    /// The tree of a worktree's current files (tracked and untracked, not ignored), written to the
    /// object store through a throwaway index so the worktree's own index is left alone.
    async fn working_tree(
        &self,
        worktree: &Path,
        git_dir: &Path,
    ) -> Result<String, WorkspaceError> {
        let scratch = tempfile::tempdir().map_err(|source| WorkspaceError::Io {
            context: "creating a scratch directory for a diff".to_owned(),
            source,
        })?;
        let index = scratch.path().join("index");
        let real_index = git_dir.join("index");
        // Starting from a copy of the real index keeps git's stat cache, so unchanged files are
        // not re-hashed; a worktree without an index yet starts from its HEAD.
        if tokio::fs::copy(&real_index, &index).await.is_err() {
            Git::in_worktree(worktree, git_dir)
                .args(&["read-tree", "HEAD"])
                .env("GIT_INDEX_FILE", &index)
                .run()
                .await?;
        }
        Git::in_worktree(worktree, git_dir)
            .args(&["add", "--all", "--", "."])
            .env("GIT_INDEX_FILE", &index)
            .run()
            .await?;
        Git::in_worktree(worktree, git_dir)
            .arg("write-tree")
            .env("GIT_INDEX_FILE", &index)
            .run_text()
            .await
    }
}

#[async_trait]
impl Workspaces for GitWorktrees {
    #[tracing::instrument(skip_all, fields(session = %request.session, repository = %request.repository.display()))]
    async fn prepare(&self, request: &WorkspaceRequest) -> Result<Workspace, WorkspaceError> {
        let repository = self.open(&request.repository).await?;
        let _guard = self.lock(&repository).await;
        let repo = repository.root.as_path();
        let session = request.session;
        let branch = session_branch(session);

        // Forget worktrees whose directory was deleted behind git's back, so their branch can be
        // checked out again.
        Git::new(repo).args(&["worktree", "prune"]).run().await?;

        let recorded = self.recorded_base(repo, session).await?;
        let base_commit = match recorded {
            Some(commit) => commit,
            None => {
                let commit = self.resolve_base(repo, request.base.as_deref()).await?;
                // Recorded before the worktree exists: a crash in between leaves a ref that the
                // next prepare reuses, never a workspace without a known base.
                Git::new(repo)
                    .args(&["update-ref", &base_ref(session), &commit])
                    .run()
                    .await?;
                commit
            }
        };

        // Prepared before (idempotence): the session's branch is checked out already. Otherwise
        // create the worktree, on the kept branch if there is one.
        let path = match self.find_worktree(repo, &branch).await? {
            Some(path) => {
                tracing::debug!(path = %path.display(), "workspace already prepared");
                path
            }
            None => {
                let path = self
                    .repository_dir(&repository)
                    .await?
                    .join(session.to_string());
                let branch_exists = self
                    .commit_of(repo, &format!("refs/heads/{branch}"))
                    .await?
                    .is_some();
                let path_arg = path.as_os_str();
                let git = Git::new(repo).args(&["worktree", "add", "--quiet"]);
                let git = if branch_exists {
                    git.arg(path_arg).arg(&branch)
                } else {
                    git.arg("-b").arg(&branch).arg(path_arg).arg(&base_commit)
                };
                git.run().await?;
                tracing::info!(path = %path.display(), %branch, %base_commit, "workspace prepared");
                path
            }
        };
        Ok(Workspace {
            repository: repository.root.clone(),
            session,
            path,
            branch,
            base_commit,
        })
    }

    #[tracing::instrument(skip_all, fields(session = %workspace.session))]
    async fn diff(&self, workspace: &Workspace) -> Result<WorkspaceDiff, WorkspaceError> {
        // With the worktree gone, the kept branch is what the session left behind. Either way the
        // diff runs in the repository: the trees it compares are in its object store.
        let repository = self.open(&workspace.repository).await?;
        let tree = if tokio::fs::metadata(&workspace.path).await.is_ok() {
            let git_dir = self.worktree_git_dir(&repository, &workspace.path).await?;
            self.working_tree(&workspace.path, &git_dir).await?
        } else {
            format!("refs/heads/{}", workspace.branch)
        };
        let dir = repository.root.as_path();
        // The trailing `--` keeps a revision from being read as a path.
        let range = [workspace.base_commit.as_str(), tree.as_str(), "--"];
        // Options fixed here rather than left to user config (diff.renames, diff.external,
        // textconv drivers, prefixes, colour), which would change what is reported.
        const DIFF: &[&str] = &[
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--find-renames",
        ];
        let numstat = Git::new(dir)
            .args(DIFF)
            .args(&["--numstat", "-z"])
            .args(&range)
            .run()
            .await?;
        let name_status = Git::new(dir)
            .args(DIFF)
            .args(&["--name-status", "-z"])
            .args(&range)
            .run()
            .await?;
        let patch = Git::new(dir)
            .args(DIFF)
            .args(&["--src-prefix=a/", "--dst-prefix=b/"])
            .args(&range)
            .run()
            .await?;
        let files = parse_changes(
            &String::from_utf8_lossy(&name_status),
            &String::from_utf8_lossy(&numstat),
        )
        .map_err(|message| WorkspaceError::UnexpectedOutput {
            command: "git diff --name-status/--numstat -z".to_owned(),
            message,
        })?;
        Ok(WorkspaceDiff {
            files,
            patch: String::from_utf8_lossy(&patch).into_owned(),
        })
    }

    #[tracing::instrument(skip_all, fields(session = %workspace.session))]
    async fn snapshot(
        &self,
        workspace: &Workspace,
        message: &str,
    ) -> Result<Option<String>, WorkspaceError> {
        let repository = self.open(&workspace.repository).await?;
        let _guard = self.lock(&repository).await;
        let dir = workspace.path.as_path();
        if tokio::fs::metadata(dir).await.is_err() {
            return Err(WorkspaceError::Io {
                context: format!("snapshotting workspace {}", dir.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the worktree no longer exists",
                ),
            });
        }
        let git_dir = self.worktree_git_dir(&repository, dir).await?;
        Git::in_worktree(dir, &git_dir)
            .args(&["add", "--all", "--", "."])
            .run()
            .await?;
        let staged = Git::in_worktree(dir, &git_dir).args(&["diff", "--cached", "--quiet"]);
        let output = staged.output().await?;
        match output.status.code() {
            Some(0) => return Ok(None),
            Some(1) => {}
            _ => return Err(staged.failed(&output)),
        }
        // Identity and signing fixed here: a commit must not depend on (or be refused by) the
        // machine's git config; hooks are skipped because the work is kept as it is, checked or not
        // (and `Git` runs none anyway).
        Git::in_worktree(dir, &git_dir)
            .args(&[
                "-c",
                "user.name=oio",
                "-c",
                "user.email=oio@localhost",
                "-c",
                "commit.gpgsign=false",
                "commit",
                "--quiet",
                "--no-verify",
                "--allow-empty-message",
                "-m",
            ])
            .arg(message)
            .run()
            .await?;
        let commit = Git::in_worktree(dir, &git_dir)
            .args(&["rev-parse", "HEAD"])
            .run_text()
            .await?;
        tracing::info!(%commit, "workspace snapshot committed");
        Ok(Some(commit))
    }

    #[tracing::instrument(skip_all, fields(session = %workspace.session, ?policy))]
    async fn remove(
        &self,
        workspace: &Workspace,
        policy: CleanupPolicy,
    ) -> Result<(), WorkspaceError> {
        if policy == CleanupPolicy::Keep {
            return Ok(());
        }
        let repository = self.open(&workspace.repository).await?;
        let _guard = self.lock(&repository).await;
        let repo = repository.root.as_path();

        if tokio::fs::metadata(&workspace.path).await.is_ok() {
            Git::new(repo)
                .args(&["worktree", "remove", "--force"])
                .arg(&workspace.path)
                .run()
                .await?;
        } else {
            Git::new(repo).args(&["worktree", "prune"]).run().await?;
        }
        // The per-repository directory goes with its last worktree; failing (not empty) is fine.
        if let Some(parent) = workspace.path.parent() {
            let _ = tokio::fs::remove_dir(parent).await;
        }

        if policy == CleanupPolicy::RemoveAll {
            let branch_ref = format!("refs/heads/{}", workspace.branch);
            if self.commit_of(repo, &branch_ref).await?.is_some() {
                Git::new(repo)
                    .args(&["branch", "--quiet", "-D"])
                    .arg(&workspace.branch)
                    .run()
                    .await?;
            }
            Git::new(repo)
                .args(&["update-ref", "-d", &base_ref(workspace.session)])
                .run()
                .await?;
        }
        tracing::info!("workspace removed");
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(repository = %repository.display()))]
    async fn list(&self, repository: &Path) -> Result<Vec<Workspace>, WorkspaceError> {
        let repository = self.open(repository).await?;
        let prefix = format!("refs/heads/{BRANCH_PREFIX}session-");
        let mut workspaces = Vec::new();
        for (path, branch) in self.worktrees(&repository.root).await? {
            let Some(session) = branch
                .as_deref()
                .and_then(|b| b.strip_prefix(prefix.as_str()))
                .and_then(|uuid| uuid.parse::<SessionId>().ok())
            else {
                continue;
            };
            let Some(base_commit) = self.recorded_base(&repository.root, session).await? else {
                tracing::warn!(%session, "session branch without a recorded base; skipped");
                continue;
            };
            workspaces.push(Workspace {
                repository: repository.root.clone(),
                session,
                path,
                branch: session_branch(session),
                base_commit,
            });
        }
        Ok(workspaces)
    }
}

/// The ref recording a session's base commit.
fn base_ref(session: SessionId) -> String {
    format!("refs/oio/base/{session}")
}

/// `<name>-<hash>`: readable, and distinct for distinct repositories with the same name (a stable
/// hash: see [`path_hash`](oio_application::ports::workspaces::path_hash)).
fn repository_dir_name(root: &Path) -> String {
    let name: String = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let hash = oio_application::ports::workspaces::path_hash(root);
    let name = name.trim_start_matches('.');
    if name.is_empty() {
        format!("repo-{hash:016x}")
    } else {
        format!("{name}-{hash:016x}")
    }
}

/// Parses `git worktree list --porcelain -z`: records of NUL-terminated `key value` lines, each
/// record ended by an empty line.
fn parse_worktree_list(output: &str) -> Vec<(PathBuf, Option<String>)> {
    let mut worktrees = Vec::new();
    let mut current: Option<(PathBuf, Option<String>)> = None;
    for line in output.split('\0') {
        if let Some(path) = line.strip_prefix("worktree ") {
            worktrees.extend(current.take());
            current = Some((PathBuf::from(path), None));
        } else if let Some(branch) = line.strip_prefix("branch ") {
            if let Some((_, b)) = current.as_mut() {
                *b = Some(branch.to_owned());
            }
        }
    }
    worktrees.extend(current);
    worktrees
}

/// Joins `git diff --name-status -z` and `git diff --numstat -z` (same revisions, same rename
/// detection) into changed files, sorted by path.
fn parse_changes(name_status: &str, numstat: &str) -> Result<Vec<ChangedFile>, String> {
    // numstat: "added\tdeleted\tpath\0", or for a rename "added\tdeleted\t\0old\0new\0";
    // "-\t-" for a binary file.
    let mut counts: HashMap<String, (u64, u64, bool)> = HashMap::new();
    let mut tokens = numstat.split('\0').filter(|t| !t.is_empty()).peekable();
    while let Some(token) = tokens.next() {
        let mut fields = token.splitn(3, '\t');
        let (Some(added), Some(deleted), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("numstat record {token:?}"));
        };
        let path = if path.is_empty() {
            // A rename: the old path, then the new one.
            tokens.next();
            tokens
                .next()
                .ok_or_else(|| format!("numstat rename {token:?} without paths"))?
                .to_owned()
        } else {
            path.to_owned()
        };
        let binary = added == "-" && deleted == "-";
        let number = |n: &str| -> Result<u64, String> {
            if binary {
                Ok(0)
            } else {
                n.parse().map_err(|_| format!("numstat count {n:?}"))
            }
        };
        counts.insert(path, (number(added)?, number(deleted)?, binary));
    }

    // name-status: "X\0path\0", or "Rnnn\0old\0new\0" for a rename (copies are not detected).
    let mut files = Vec::new();
    let mut tokens = name_status.split('\0').filter(|t| !t.is_empty());
    while let Some(code) = tokens.next() {
        let mut path = || {
            tokens
                .next()
                .map(str::to_owned)
                .ok_or_else(|| format!("name-status {code:?} without a path"))
        };
        let (status, previous_path, path) = match code.chars().next() {
            Some('A') => (ChangeStatus::Added, None, path()?),
            Some('D') => (ChangeStatus::Deleted, None, path()?),
            Some('R') => {
                let old = path()?;
                (ChangeStatus::Renamed, Some(old), path()?)
            }
            Some('C') => {
                path()?;
                (ChangeStatus::Added, None, path()?)
            }
            // M, T (type change) and anything newer: the file is there, and different.
            Some(_) => (ChangeStatus::Modified, None, path()?),
            None => return Err("empty name-status code".to_owned()),
        };
        let (additions, deletions, binary) = counts.get(&path).copied().unwrap_or_default();
        files.push(ChangedFile {
            path,
            previous_path,
            status,
            additions,
            deletions,
            binary,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worktree_list_is_parsed_with_branches_and_detached_heads() {
        let output = "worktree /r\0HEAD abc\0branch refs/heads/main\0\0\
                      worktree /w/x\0HEAD def\0detached\0\0\
                      worktree /w/y\0HEAD 123\0branch refs/heads/oio/session-1\0locked\0\0";
        assert_eq!(
            parse_worktree_list(output),
            vec![
                (PathBuf::from("/r"), Some("refs/heads/main".to_owned())),
                (PathBuf::from("/w/x"), None),
                (
                    PathBuf::from("/w/y"),
                    Some("refs/heads/oio/session-1".to_owned())
                ),
            ]
        );
    }

    #[test]
    fn changes_join_statuses_and_counts_including_renames_and_binaries() {
        let name_status = "M\0a.txt\0A\0bin.png\0R087\0old name.rs\0new name.rs\0D\0gone\0";
        let numstat = "3\t1\ta.txt\0-\t-\tbin.png\0\
                       2\t2\t\0old name.rs\0new name.rs\0\
                       0\t4\tgone\0";
        let files = parse_changes(name_status, numstat).unwrap();
        let summary: Vec<_> = files
            .iter()
            .map(|f| {
                (
                    f.path.as_str(),
                    f.status,
                    f.additions,
                    f.deletions,
                    f.binary,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("a.txt", ChangeStatus::Modified, 3, 1, false),
                ("bin.png", ChangeStatus::Added, 0, 0, true),
                ("gone", ChangeStatus::Deleted, 0, 4, false),
                ("new name.rs", ChangeStatus::Renamed, 2, 2, false),
            ]
        );
        assert_eq!(files[3].previous_path.as_deref(), Some("old name.rs"));
    }

    #[test]
    fn repository_dir_names_are_readable_and_distinct() {
        let a = repository_dir_name(Path::new("/src/my repo"));
        let b = repository_dir_name(Path::new("/other/my repo"));
        assert!(a.starts_with("my_repo-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, repository_dir_name(Path::new("/src/my repo")), "stable");
        assert!(repository_dir_name(Path::new("/")).starts_with("repo-"));
    }
}
