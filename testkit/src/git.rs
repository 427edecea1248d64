//! Throwaway git repositories for tests: OpenCode identifies a project by its git root and first
//! commit, so the workspaces the harness runs in are real repositories with one commit.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};
use tempfile::TempDir;

/// A temp dir holding a git repository (branch `main`) with a local user.name/user.email, signing
/// off, and one initial commit of a `README.md`. Deleted when the returned `TempDir` drops.
///
/// The path is canonical (symlinks resolved), so absolute paths built from it match what OpenCode
/// reports for its worktree.
pub fn temp_repo() -> anyhow::Result<TempDir> {
    // Created under the canonical temp dir so the repo's path has no symlink in it.
    let base = std::env::temp_dir()
        .canonicalize()
        .context("resolving the temp dir")?;
    let dir = tempfile::Builder::new()
        .prefix("oio-repo-")
        .tempdir_in(base)
        .context("creating a temp dir for a git repo")?;
    let path = dir.path();
    git(path, &["init", "--quiet", "--initial-branch=main"])?;
    // Local config only: the repo must not depend on (or be broken by) the machine's git config.
    git(path, &["config", "user.name", "OIO Test"])?;
    git(path, &["config", "user.email", "oio-test@example.invalid"])?;
    git(path, &["config", "commit.gpgsign", "false"])?;
    std::fs::write(path.join("README.md"), "# test repository\n")?;
    git(path, &["add", "README.md"])?;
    git(
        path,
        &["commit", "--quiet", "--no-verify", "-m", "initial commit"],
    )?;
    Ok(dir)
}

/// Runs `git ARGS` in `dir`, failing with git's stderr when it fails.
pub fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        // Keep the user's global and system config (hooks, templates, signing) out of test repos.
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .with_context(|| format!("running git {args:?} (is git installed?)"))?;
    if !output.status.success() {
        bail!(
            "git {args:?} in {} failed ({}): {}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
