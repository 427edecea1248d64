//! A repository that carries every trap an agent could set for the orchestrator's own git calls
//! — hooks, a hooks path, an fsmonitor program, filter, diff and merge drivers (also through an
//! included file), an external diff, a signing program, a pager — and a worktree whose `.git`
//! file was pointed at another repository. The workspace life cycle (prepare, diff, snapshot,
//! remove) must run none of them and write nowhere but the session's branch.

use std::path::{Path, PathBuf};
use std::process::Command;

use domain::SessionId;
use oio_application::ports::workspaces::{CleanupPolicy, WorkspaceRequest, Workspaces};

use super::GitWorktrees;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A fresh repository with one commit, under the canonical temp dir.
fn repository(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "--quiet", "--initial-branch=main"]);
    git(&dir, &["config", "user.name", "t"]);
    git(&dir, &["config", "user.email", "t@example.invalid"]);
    std::fs::write(dir.join("README.md"), "# repo\n").unwrap();
    git(&dir, &["add", "README.md"]);
    git(&dir, &["commit", "--quiet", "--no-verify", "-m", "initial"]);
    dir
}

/// A program that records that it ran, by name, in `canaries`.
fn canary(canaries: &Path, name: &str) -> String {
    format!("touch {}/{name}; cat", canaries.display())
}

fn plant_traps(repo: &Path, canaries: &Path, scratch: &Path) {
    let hook = |dir: &Path, name: &str| {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\ntouch {}/hook-{name}\n", canaries.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let hooks = repo.join(".git/hooks");
    let other_hooks = scratch.join("evil-hooks");
    for name in [
        "post-checkout",
        "pre-commit",
        "commit-msg",
        "post-commit",
        "reference-transaction",
        "post-index-change",
        "fsmonitor-watchman",
    ] {
        hook(&hooks, name);
        hook(&other_hooks, name);
    }
    let config = |key: &str, value: &str| git(repo, &["config", key, value]);
    config("core.hooksPath", &other_hooks.display().to_string());
    config("core.fsmonitor", &canary(canaries, "fsmonitor"));
    config("core.pager", &canary(canaries, "pager"));
    config("diff.external", &canary(canaries, "diff-external"));
    config("filter.evil.clean", &canary(canaries, "filter-clean"));
    config("filter.evil.smudge", &canary(canaries, "filter-smudge"));
    config("filter.evil.required", "true");
    config("diff.evil.textconv", &canary(canaries, "textconv"));
    config("diff.evil.command", &canary(canaries, "diff-command"));
    config("merge.evil.driver", &canary(canaries, "merge-driver"));
    config("commit.gpgSign", "true");
    config("gpg.program", &canary(canaries, "gpg"));
    // A driver defined only in an included file, under a name of its own.
    let included = scratch.join("included.gitconfig");
    std::fs::write(
        &included,
        format!(
            "[filter \"sneaky\"]\n\tclean = {}\n\tsmudge = {}\n[core]\n\thooksPath = {}\n",
            canary(canaries, "included-clean"),
            canary(canaries, "included-smudge"),
            other_hooks.display()
        ),
    )
    .unwrap();
    config("include.path", &included.display().to_string());
    config(
        &format!("includeIf.gitdir:{}/.path", repo.display()),
        &included.display().to_string(),
    );
    std::fs::write(
        repo.join(".gitattributes"),
        "*.txt filter=evil diff=evil merge=evil\n*.md filter=sneaky\n",
    )
    .unwrap();
    std::fs::write(repo.join("notes.txt"), "checked in through the filter\n").unwrap();
    // Committed by the test itself, with every trap disarmed: it is the agent's repository.
    let disarmed = |args: &[&str]| {
        let mut all = Vec::new();
        for setting in [
            "core.hooksPath=/dev/null",
            "core.fsmonitor=false",
            "commit.gpgSign=false",
            "filter.evil.clean=",
            "filter.evil.smudge=",
            "filter.evil.required=false",
            "filter.sneaky.clean=",
            "filter.sneaky.smudge=",
        ] {
            all.extend(["-c", setting]);
        }
        all.extend_from_slice(args);
        git(repo, &all);
    };
    disarmed(&["add", "-A"]);
    disarmed(&["commit", "--quiet", "--no-verify", "-m", "traps"]);
}

fn ran(canaries: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(canaries)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn no_program_a_repository_names_runs_through_the_workspace_life_cycle() {
    let scratch = tempfile::tempdir_in(std::env::temp_dir().canonicalize().unwrap()).unwrap();
    let scratch = scratch.path();
    let canaries = scratch.join("canaries");
    std::fs::create_dir_all(&canaries).unwrap();
    let repo = repository(scratch, "repo");
    plant_traps(&repo, &canaries, scratch);
    assert!(
        ran(&canaries).is_empty(),
        "planting ran {:?}",
        ran(&canaries)
    );

    let worktrees = GitWorktrees::new(scratch.join("worktrees"));
    let session = SessionId::from_uuid(uuid::Uuid::new_v4());
    let workspace = worktrees
        .prepare(&WorkspaceRequest {
            repository: repo.clone(),
            session,
            base: None,
        })
        .await
        .unwrap();
    std::fs::write(workspace.path.join("notes.txt"), "edited by the agent\n").unwrap();
    std::fs::write(workspace.path.join("new.txt"), "new\n").unwrap();

    let diff = worktrees.diff(&workspace).await.unwrap();
    let mut paths: Vec<&str> = diff.files.iter().map(|f| f.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["new.txt", "notes.txt"]);
    let commit = worktrees
        .snapshot(&workspace, "session work")
        .await
        .unwrap()
        .expect("a change to commit");
    worktrees
        .remove(&workspace, CleanupPolicy::RemoveWorktreeKeepBranch)
        .await
        .unwrap();

    assert_eq!(ran(&canaries), Vec::<String>::new(), "programs ran");
    // The work is on the session's branch, committed as it was written (no clean filter).
    let branch = format!("refs/heads/{}", workspace.branch);
    assert_eq!(git(&repo, &["rev-parse", &branch]), commit);
    assert_eq!(
        git(&repo, &["show", &format!("{commit}:notes.txt")]),
        "edited by the agent"
    );
}

#[tokio::test]
async fn a_rewritten_dot_git_file_cannot_point_a_snapshot_at_another_repository() {
    let scratch = tempfile::tempdir_in(std::env::temp_dir().canonicalize().unwrap()).unwrap();
    let scratch = scratch.path();
    let repo = repository(scratch, "repo");
    let victim = repository(scratch, "victim");
    let victim_head = git(&victim, &["rev-parse", "HEAD"]);

    let worktrees = GitWorktrees::new(scratch.join("worktrees"));
    let workspace = worktrees
        .prepare(&WorkspaceRequest {
            repository: repo.clone(),
            session: SessionId::from_uuid(uuid::Uuid::new_v4()),
            base: None,
        })
        .await
        .unwrap();
    // The agent points its worktree at the other repository and leaves a change behind.
    std::fs::write(
        workspace.path.join(".git"),
        format!("gitdir: {}/.git\n", victim.display()),
    )
    .unwrap();
    std::fs::write(workspace.path.join("work.txt"), "work\n").unwrap();

    let commit = worktrees
        .snapshot(&workspace, "session work")
        .await
        .unwrap()
        .expect("a change to commit");

    assert_eq!(
        git(&victim, &["rev-parse", "HEAD"]),
        victim_head,
        "victim untouched"
    );
    assert_eq!(
        git(
            &repo,
            &["rev-parse", &format!("refs/heads/{}", workspace.branch)]
        ),
        commit
    );
}
