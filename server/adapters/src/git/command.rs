//! Running the `git` CLI: non-interactive, independent of the caller's git environment variables,
//! killed when the caller stops waiting, and failing with a bounded excerpt of git's stderr.
//!
//! Hardened: the repositories we run git in are written by agents, which may be prompt-injected,
//! so nothing in a repository may make git run a program (see `docs/security.md`). Every call
//! carries [`HARDENED`] on its command line, which outranks every configuration file — the
//! repository's `.git/config`, its worktree config and whatever they include (`include.path`,
//! `includeIf`) — and the filter, diff and merge drivers a repository defines are switched off by
//! name (see [`Git::output`]). Calls inside a worktree name its git directory explicitly
//! ([`Git::in_worktree`]), so a rewritten `.git` file cannot point them at another repository.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Output, Stdio};

use tokio::process::Command;

use oio_application::ports::workspaces::WorkspaceError;

/// Git's stderr kept in an error: enough to diagnose, never a whole hook's output.
const MAX_STDERR: usize = 2048;

/// Variables that would point git at another repository or index than the one we name with `-C`
/// (set, for instance, when the server is itself started from a git hook).
const INHERITED_GIT_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
];

/// Configuration every call carries: no hooks, no fsmonitor daemon, no pager, editor, askpass,
/// credential helper, external diff, signing program, ssh command, proxy or alternate-refs
/// command, and no transport at all (nothing we run fetches or pushes).
const HARDENED: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "core.editor=true",
    "core.askPass=",
    "core.sshCommand=",
    "core.gitProxy=",
    "core.alternateRefsCommand=",
    "credential.helper=",
    "diff.external=",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "protocol.allow=never",
    "submodule.recurse=false",
];

/// Driver settings that name a program (`filter.<d>.clean` …), and `filter.<d>.required`, which
/// would make a switched-off filter an error. A repository may define any number of drivers under
/// names of its choosing, so they are found per call and switched off.
const DRIVER_KEYS: &str =
    r"^(filter|diff|merge)\..+\.(clean|smudge|process|required|command|textconv|driver)$";

/// One git invocation in a directory.
pub(super) struct Git<'a> {
    dir: &'a Path,
    /// A worktree's own git directory, named explicitly instead of found through its `.git` file.
    git_dir: Option<&'a Path>,
    args: Vec<&'a OsStr>,
    envs: Vec<(&'static str, &'a OsStr)>,
}

impl<'a> Git<'a> {
    pub(super) fn new(dir: &'a Path) -> Self {
        Self {
            dir,
            git_dir: None,
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    /// A call in `worktree` whose git directory is `git_dir` (found from the repository, never
    /// from the worktree's `.git` file, which the agent can rewrite).
    pub(super) fn in_worktree(worktree: &'a Path, git_dir: &'a Path) -> Self {
        Self {
            git_dir: Some(git_dir),
            ..Self::new(worktree)
        }
    }

    pub(super) fn arg(mut self, arg: &'a (impl AsRef<OsStr> + ?Sized)) -> Self {
        self.args.push(arg.as_ref());
        self
    }

    pub(super) fn args<S: AsRef<OsStr> + 'a>(mut self, args: &'a [S]) -> Self {
        self.args.extend(args.iter().map(AsRef::as_ref));
        self
    }

    pub(super) fn env(
        mut self,
        key: &'static str,
        value: &'a (impl AsRef<OsStr> + ?Sized),
    ) -> Self {
        self.envs.push((key, value.as_ref()));
        self
    }

    /// `git -C dir args…` as shown in errors and logs (without the hardening settings).
    fn display(&self) -> String {
        let mut shown = format!("git -C {}", self.dir.display());
        if let Some(git_dir) = self.git_dir {
            shown.push_str(&format!(" --git-dir={}", git_dir.display()));
        }
        for arg in &self.args {
            shown.push(' ');
            shown.push_str(&arg.to_string_lossy());
        }
        shown
    }

    /// Runs git and returns its output whatever its exit status.
    pub(super) async fn output(&self) -> Result<Output, WorkspaceError> {
        let drivers = self.repository_drivers().await?;
        let mut command = self.command();
        for key in &drivers {
            // An empty program is no program; a filter that is not required may then be absent.
            let off = if key.ends_with(".required") {
                "false"
            } else {
                ""
            };
            command.arg("-c").arg(format!("{key}={off}"));
        }
        command.args(&self.args);
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        tracing::trace!(command = %self.display(), "running git");
        command.output().await.map_err(|source| WorkspaceError::Io {
            context: format!("running `{}` (is git installed?)", self.display()),
            source,
        })
    }

    /// `git` in our directory with the hardened settings and environment, before its arguments.
    fn command(&self) -> Command {
        let mut command = Command::new("git");
        command.arg("-C").arg(self.dir);
        if let Some(git_dir) = self.git_dir {
            command
                .arg(format!("--git-dir={}", git_dir.display()))
                .arg(format!("--work-tree={}", self.dir.display()));
        }
        for setting in HARDENED {
            command.arg("-c").arg(setting);
        }
        for var in INHERITED_GIT_VARS {
            command.env_remove(var);
        }
        command
            // Never wait for credentials or an editor: there is nobody to answer.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_EDITOR", "true")
            // Messages we match on are git's English ones.
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// The program-naming driver keys (`filter.<d>.clean`, `diff.<d>.textconv`, …) that the
    /// repository's own configuration defines — local and worktree scope, includes followed —
    /// each to be switched off (git then runs no program for that driver).
    /// The user's and the system's configuration are the operator's and are trusted.
    async fn repository_drivers(&self) -> Result<Vec<String>, WorkspaceError> {
        let output = self
            .command()
            .args(["config", "--show-scope", "--includes", "--name-only"])
            .args(["--get-regexp", DRIVER_KEYS])
            .output()
            .await
            .map_err(|source| WorkspaceError::Io {
                context: format!("reading the git configuration in {}", self.dir.display()),
                source,
            })?;
        // Exit 1: no such key. Outside a repository (exit 128) there is no repository config.
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(scope, _)| !matches!(*scope, "global" | "system"))
            .map(|(_, key)| key.to_owned())
            .collect())
    }

    /// Runs git, failing unless it exits 0; returns its stdout.
    pub(super) async fn run(&self) -> Result<Vec<u8>, WorkspaceError> {
        let output = self.output().await?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(self.failed(&output))
        }
    }

    /// As [`Git::run`], with stdout as text, trailing whitespace trimmed.
    pub(super) async fn run_text(&self) -> Result<String, WorkspaceError> {
        let stdout = self.run().await?;
        Ok(String::from_utf8_lossy(&stdout).trim_end().to_owned())
    }

    /// The error for a git run that exited unsuccessfully.
    pub(super) fn failed(&self, output: &Output) -> WorkspaceError {
        WorkspaceError::Git {
            command: self.display(),
            status: output.status.to_string(),
            stderr: bounded(&String::from_utf8_lossy(&output.stderr)),
        }
    }
}

/// `text` trimmed, and cut to [`MAX_STDERR`] bytes (on a character boundary) if longer.
pub(super) fn bounded(text: &str) -> String {
    let text = text.trim();
    if text.len() <= MAX_STDERR {
        return text.to_owned();
    }
    let mut end = MAX_STDERR;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes omitted)", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_trims_and_cuts_long_output_on_a_char_boundary() {
        assert_eq!(bounded("  fatal: x \n"), "fatal: x");
        let long = "é".repeat(MAX_STDERR);
        let cut = bounded(&long);
        assert!(cut.len() < MAX_STDERR + 40, "{}", cut.len());
        assert!(cut.ends_with("bytes omitted)"));
    }
}
