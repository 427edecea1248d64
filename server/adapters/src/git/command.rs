//! Running the `git` CLI: non-interactive, independent of the caller's git environment variables,
//! killed when the caller stops waiting, and failing with a bounded excerpt of git's stderr.

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

/// One git invocation in a directory.
pub(super) struct Git<'a> {
    dir: &'a Path,
    args: Vec<&'a OsStr>,
    envs: Vec<(&'static str, &'a OsStr)>,
}

impl<'a> Git<'a> {
    pub(super) fn new(dir: &'a Path) -> Self {
        Self {
            dir,
            args: Vec::new(),
            envs: Vec::new(),
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

    /// `git -C dir args…` as shown in errors and logs.
    fn display(&self) -> String {
        let mut shown = format!("git -C {}", self.dir.display());
        for arg in &self.args {
            shown.push(' ');
            shown.push_str(&arg.to_string_lossy());
        }
        shown
    }

    /// Runs git and returns its output whatever its exit status.
    pub(super) async fn output(&self) -> Result<Output, WorkspaceError> {
        let mut command = Command::new("git");
        command.arg("-C").arg(self.dir).args(&self.args);
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
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        tracing::trace!(command = %self.display(), "running git");
        command.output().await.map_err(|source| WorkspaceError::Io {
            context: format!("running `{}` (is git installed?)", self.display()),
            source,
        })
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
