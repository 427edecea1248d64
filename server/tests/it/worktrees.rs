//! The git worktree adapter against real repositories (`testkit::git::temp_repo`): isolation,
//! idempotence, diffs of uncommitted work, snapshots, cleanup policies and failures.

use std::path::Path;
use std::sync::Arc;

use domain::SessionId;
use server::adapters::git::GitWorktrees;
use server::ports::workspaces::{
    ChangeStatus, CleanupPolicy, Workspace, WorkspaceError, WorkspaceRequest, Workspaces,
};
use tempfile::TempDir;
use testkit::git::{git, temp_repo};
use uuid::Uuid;

struct Fixture {
    repo: TempDir,
    /// Holds the worktree root; kept alive for the test.
    _root: TempDir,
    worktrees: GitWorktrees,
}

fn fixture() -> Fixture {
    let repo = temp_repo().expect("temp repo");
    let root = tempfile::tempdir().expect("worktree root");
    let worktrees = GitWorktrees::new(root.path().join("worktrees"));
    Fixture {
        repo,
        _root: root,
        worktrees,
    }
}

impl Fixture {
    fn request(&self, session: SessionId) -> WorkspaceRequest {
        WorkspaceRequest {
            repository: self.repo.path().to_path_buf(),
            session,
            base: None,
        }
    }

    async fn prepare(&self) -> Workspace {
        self.worktrees
            .prepare(&self.request(new_session()))
            .await
            .expect("prepare")
    }

    fn git(&self, args: &[&str]) -> String {
        git(self.repo.path(), args).expect("git").trim().to_owned()
    }

    fn branch_exists(&self, branch: &str) -> bool {
        !self.git(&["branch", "--list", branch]).trim().is_empty()
    }
}

fn new_session() -> SessionId {
    SessionId::from_uuid(Uuid::new_v4())
}

fn write(dir: &Path, file: &str, contents: &str) {
    std::fs::write(dir.join(file), contents).expect("write");
}

#[tokio::test]
async fn prepare_creates_an_isolated_worktree_on_a_new_branch_at_the_base() {
    let f = fixture();
    let head = f.git(&["rev-parse", "HEAD"]);
    let session = new_session();
    let ws = f
        .worktrees
        .prepare(&f.request(session))
        .await
        .expect("prepare");

    assert_eq!(ws.branch, format!("oio/session-{session}"));
    assert_eq!(ws.session, session);
    assert_eq!(ws.base_commit, head);
    assert!(ws.path.join("README.md").is_file());
    assert!(
        !ws.path.starts_with(f.repo.path()),
        "worktree inside the repository: {}",
        ws.path.display()
    );
    assert!(ws
        .path
        .starts_with(f.worktrees.root().canonicalize().unwrap()));
    assert_eq!(
        git(&ws.path, &["branch", "--show-current"]).unwrap().trim(),
        ws.branch
    );
    assert_eq!(git(&ws.path, &["rev-parse", "HEAD"]).unwrap().trim(), head);
    assert_eq!(
        f.git(&["branch", "--show-current"]),
        "main",
        "repository untouched"
    );

    let listed = f.worktrees.list(f.repo.path()).await.expect("list");
    assert_eq!(listed, vec![ws]);
}

#[tokio::test]
async fn prepare_starts_from_the_requested_base() {
    let f = fixture();
    let first = f.git(&["rev-parse", "HEAD"]);
    write(f.repo.path(), "later.txt", "later\n");
    f.git(&["add", "later.txt"]);
    f.git(&["commit", "--quiet", "-m", "later"]);
    f.git(&["tag", "v1", &first]);

    let mut request = f.request(new_session());
    request.base = Some("v1".to_owned());
    let ws = f.worktrees.prepare(&request).await.expect("prepare");
    assert_eq!(ws.base_commit, first);
    assert!(!ws.path.join("later.txt").exists());
}

#[tokio::test]
async fn two_sessions_get_two_worktrees_that_do_not_see_each_other() {
    let f = fixture();
    let a = f.prepare().await;
    let b = f.prepare().await;
    assert_ne!(a.path, b.path);
    assert_ne!(a.branch, b.branch);

    write(&a.path, "only-in-a.txt", "a\n");
    assert!(!b.path.join("only-in-a.txt").exists());
    assert!(!f.repo.path().join("only-in-a.txt").exists());
    assert!(f.worktrees.diff(&b).await.unwrap().is_empty());
    assert_eq!(f.worktrees.diff(&a).await.unwrap().files.len(), 1);
}

#[tokio::test]
async fn prepare_is_idempotent() {
    let f = fixture();
    let request = f.request(new_session());
    let first = f.worktrees.prepare(&request).await.expect("prepare");
    write(&first.path, "work.txt", "in progress\n");
    let second = f.worktrees.prepare(&request).await.expect("prepare again");
    assert_eq!(first, second);
    assert!(second.path.join("work.txt").exists(), "work kept");

    // Another adapter instance (a restarted process) finds it too.
    let restarted = GitWorktrees::new(f.worktrees.root().to_path_buf());
    assert_eq!(restarted.prepare(&request).await.expect("prepare"), first);
    assert_eq!(f.worktrees.list(f.repo.path()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn diff_reports_modified_untracked_and_deleted_files_with_counts_and_a_patch() {
    let f = fixture();
    // A second tracked file to delete.
    write(f.repo.path(), "doomed.txt", "one\ntwo\nthree\n");
    f.git(&["add", "doomed.txt"]);
    f.git(&["commit", "--quiet", "-m", "doomed"]);
    let ws = f.prepare().await;

    write(&ws.path, "README.md", "# changed title\nand a new line\n");
    write(&ws.path, "new.txt", "fresh\nfile\n");
    std::fs::remove_file(ws.path.join("doomed.txt")).unwrap();
    std::fs::write(ws.path.join(".gitignore"), "*.log\n").unwrap();
    write(&ws.path, "ignored.log", "noise\n");

    let index_before = git(&ws.path, &["status", "--porcelain"]).unwrap();
    let diff = f.worktrees.diff(&ws).await.expect("diff");
    assert_eq!(
        git(&ws.path, &["status", "--porcelain"]).unwrap(),
        index_before,
        "diff must not stage anything"
    );

    let summary: Vec<_> = diff
        .files
        .iter()
        .map(|c| (c.path.as_str(), c.status, c.additions, c.deletions))
        .collect();
    assert_eq!(
        summary,
        [
            (".gitignore", ChangeStatus::Added, 1, 0),
            ("README.md", ChangeStatus::Modified, 2, 1),
            ("doomed.txt", ChangeStatus::Deleted, 0, 3),
            ("new.txt", ChangeStatus::Added, 2, 0),
        ]
    );
    assert!(diff.patch.contains("+# changed title"), "{}", diff.patch);
    assert!(diff.patch.contains("-# test repository"), "{}", diff.patch);
    assert!(diff.patch.contains("+fresh"), "{}", diff.patch);
    assert!(diff.patch.contains("diff --git a/doomed.txt b/doomed.txt"));
    assert!(!diff.patch.contains("noise"), "ignored files are not work");
}

#[tokio::test]
async fn diff_includes_committed_work_and_detects_renames() {
    let f = fixture();
    let body = "a fairly long line so that rename detection has content to compare\n".repeat(5);
    write(f.repo.path(), "before.txt", &body);
    f.git(&["add", "before.txt"]);
    f.git(&["commit", "--quiet", "-m", "before"]);
    let ws = f.prepare().await;

    write(&ws.path, "committed.txt", "one\n");
    f.worktrees.snapshot(&ws, "add").await.unwrap();
    git(&ws.path, &["mv", "before.txt", "after.txt"]).unwrap();

    let diff = f.worktrees.diff(&ws).await.unwrap();
    let summary: Vec<_> = diff
        .files
        .iter()
        .map(|c| {
            (
                c.path.as_str(),
                c.previous_path.as_deref(),
                c.status,
                c.additions,
                c.deletions,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("after.txt", Some("before.txt"), ChangeStatus::Renamed, 0, 0),
            ("committed.txt", None, ChangeStatus::Added, 1, 0),
        ]
    );
}

#[tokio::test]
async fn snapshot_commits_on_the_branch_and_leaves_the_diff_unchanged() {
    let f = fixture();
    let ws = f.prepare().await;
    assert_eq!(f.worktrees.snapshot(&ws, "nothing").await.unwrap(), None);

    write(&ws.path, "README.md", "# changed\n");
    write(&ws.path, "new.txt", "new\n");
    let before = f.worktrees.diff(&ws).await.unwrap();

    let commit = f
        .worktrees
        .snapshot(&ws, "session work")
        .await
        .expect("snapshot")
        .expect("a commit");
    assert_eq!(f.git(&["rev-parse", &ws.branch]), commit);
    assert_eq!(f.git(&["rev-parse", &format!("{commit}^")]), ws.base_commit);
    assert_eq!(
        f.git(&["log", "-1", "--format=%an <%ae> %s", &commit]),
        "oio <oio@localhost> session work"
    );
    assert!(git(&ws.path, &["status", "--porcelain"])
        .unwrap()
        .is_empty());
    assert_eq!(f.worktrees.diff(&ws).await.unwrap(), before);
    assert_eq!(f.worktrees.snapshot(&ws, "again").await.unwrap(), None);
}

#[tokio::test]
async fn keep_leaves_worktree_and_branch() {
    let f = fixture();
    let ws = f.prepare().await;
    f.worktrees.remove(&ws, CleanupPolicy::Keep).await.unwrap();
    assert!(ws.path.is_dir());
    assert!(f.branch_exists(&ws.branch));
}

#[tokio::test]
async fn remove_worktree_keeps_the_branch_and_its_committed_work() {
    let f = fixture();
    let request = f.request(new_session());
    let ws = f.worktrees.prepare(&request).await.unwrap();
    write(&ws.path, "kept.txt", "kept\n");
    f.worktrees.snapshot(&ws, "keep me").await.unwrap();
    let diff = f.worktrees.diff(&ws).await.unwrap();

    f.worktrees
        .remove(&ws, CleanupPolicy::RemoveWorktreeKeepBranch)
        .await
        .unwrap();
    assert!(!ws.path.exists());
    assert!(f.branch_exists(&ws.branch));
    assert!(f.worktrees.list(f.repo.path()).await.unwrap().is_empty());
    // The diff now comes from the kept branch.
    assert_eq!(f.worktrees.diff(&ws).await.unwrap(), diff);
    // Removing again is not an error.
    f.worktrees
        .remove(&ws, CleanupPolicy::RemoveWorktreeKeepBranch)
        .await
        .unwrap();

    // Preparing the session again checks the kept branch out afresh.
    let again = f.worktrees.prepare(&request).await.unwrap();
    assert_eq!(again.base_commit, ws.base_commit);
    assert!(again.path.join("kept.txt").is_file());
}

#[tokio::test]
async fn remove_all_deletes_worktree_and_branch() {
    let f = fixture();
    let ws = f.prepare().await;
    write(&ws.path, "dirty.txt", "uncommitted\n");
    f.worktrees
        .remove(&ws, CleanupPolicy::RemoveAll)
        .await
        .unwrap();
    assert!(!ws.path.exists());
    assert!(!f.branch_exists(&ws.branch));
    assert!(
        f.git(&["for-each-ref", "refs/oio"]).is_empty(),
        "base ref removed"
    );
    f.worktrees
        .remove(&ws, CleanupPolicy::RemoveAll)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_path_that_is_not_a_repository_is_rejected() {
    let f = fixture();
    let plain = tempfile::tempdir().unwrap();
    let mut request = f.request(new_session());
    for path in [plain.path().to_path_buf(), plain.path().join("missing")] {
        request.repository = path.clone();
        match f.worktrees.prepare(&request).await {
            Err(WorkspaceError::NotARepository { path: reported }) => assert_eq!(reported, path),
            other => panic!("expected NotARepository, got {other:?}"),
        }
    }
    // A subdirectory of a repository is not a repository root.
    std::fs::create_dir(f.repo.path().join("sub")).unwrap();
    request.repository = f.repo.path().join("sub");
    assert!(matches!(
        f.worktrees.prepare(&request).await,
        Err(WorkspaceError::NotARepository { .. })
    ));
}

#[tokio::test]
async fn a_bad_base_ref_gives_a_clear_error() {
    let f = fixture();
    for base in ["no-such-branch", "--output=/tmp/x"] {
        let mut request = f.request(new_session());
        request.base = Some(base.to_owned());
        let err = f.worktrees.prepare(&request).await.unwrap_err();
        match &err {
            WorkspaceError::InvalidRef { reference, .. } => assert_eq!(reference, base),
            other => panic!("expected InvalidRef, got {other:?}"),
        }
        assert!(err.to_string().contains(base), "{err}");
    }
    assert!(f.worktrees.list(f.repo.path()).await.unwrap().is_empty());
    assert!(f
        .git(&["for-each-ref", "refs/oio", "refs/heads/oio"])
        .is_empty());
}

#[tokio::test]
async fn a_root_inside_the_repository_is_refused() {
    let f = fixture();
    let inside = GitWorktrees::new(f.repo.path().join(".worktrees"));
    let err = inside.prepare(&f.request(new_session())).await.unwrap_err();
    assert!(
        matches!(err, WorkspaceError::RootInsideRepository { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_prepares_on_one_repository_all_succeed() {
    let f = Arc::new(fixture());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let f = Arc::clone(&f);
            tokio::spawn(async move { f.prepare().await })
        })
        .collect();
    let mut paths = Vec::new();
    for task in tasks {
        let ws = task.await.expect("task");
        assert!(ws.path.join("README.md").is_file());
        paths.push(ws.path);
    }
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 8);
    assert_eq!(f.worktrees.list(f.repo.path()).await.unwrap().len(), 8);
}
