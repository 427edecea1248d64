//! The git adapter: [`Workspaces`](oio_application::ports::workspaces::Workspaces) over the `git` command-line tool
//! (git 2.36 or later), one worktree per session.
//!
//! - `worktrees`: [`GitWorktrees`], the port's implementation.
//! - `command`: running git with a clean, non-interactive environment, hardened against the
//!   programs a repository can name (hooks, fsmonitor, filter/diff drivers…), and bounded error
//!   output.

mod command;
#[cfg(test)]
mod traps;
mod worktrees;

pub use worktrees::GitWorktrees;
