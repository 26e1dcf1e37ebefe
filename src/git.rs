//! Commits by gtmd (`--git`): the files a completed task's status listed, on
//! the phase's branch, with a message in the guide's convention.
//!
//! Only the `git` program is run (no shell, paths after `--`, literal
//! pathspecs). gtmd creates and switches branches and adds commits; it never
//! rewrites history, never pushes, and never commits a file that a status (or
//! the decision/conflict an apply task was about) did not name. When the
//! workspace is not in a git repository, or git fails, it says so once and
//! goes on without that commit.

use crate::diagnostic::chain;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a git command did not do its part.
#[derive(Debug, thiserror::Error)]
enum GitError {
    #[error("cannot run git (is it installed and on the PATH?)")]
    Run(#[source] std::io::Error),
    #[error("`git {command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
}

pub struct Git {
    workspace: PathBuf,
    /// `None` until first used; `Some(false)`: not a repository, never again.
    usable: Option<bool>,
    warned: bool,
}

impl Git {
    pub fn new(workspace: &Path) -> Git {
        Git {
            workspace: workspace.to_path_buf(),
            usable: None,
            warned: false,
        }
    }

    fn git(&self, args: &[&str]) -> Result<String, GitError> {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.workspace)
            .env("GIT_LITERAL_PATHSPECS", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .output()
            .map_err(GitError::Run)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(GitError::Failed {
                command: args.first().copied().unwrap_or("").to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Warn the first time; later failures are only debug lines.
    fn failed(&mut self, e: &GitError) {
        let why = chain(e);
        if self.warned {
            tracing::debug!("git: {why}");
        } else {
            self.warned = true;
            tracing::warn!("--git: {why}; going on without this commit (said once; later git failures are logged at debug)");
        }
    }

    /// Commit `paths` (workspace-relative) with `message`, on `branch` when given.
    pub fn commit(&mut self, task: &str, branch: Option<&str>, message: &str, paths: &[String]) {
        if self.usable.is_none() {
            let ok = self.git(&["rev-parse", "--show-toplevel"]).is_ok();
            if !ok {
                tracing::warn!(
                    workspace = %self.workspace.display(),
                    "--git: the workspace is not in a git repository (or git cannot run); gtmd goes on without committing"
                );
            }
            self.usable = Some(ok);
        }
        if self.usable != Some(true) {
            return;
        }
        // Only files that are there, never gtmd's own state or dot-files.
        let mut paths: Vec<&str> = paths
            .iter()
            .map(String::as_str)
            .filter(|p| {
                !p.is_empty()
                    && !p.starts_with('/')
                    && !p.split('/').any(|c| c.starts_with('.'))
                    && self.workspace.join(p).exists()
            })
            .collect();
        paths.sort_unstable();
        paths.dedup();
        if paths.is_empty() {
            return;
        }
        if let Some(b) = branch {
            if let Err(e) = self.on_branch(b) {
                self.failed(&e);
                return;
            }
        }
        let mut add = vec!["add", "--"];
        add.extend(&paths);
        if let Err(e) = self.git(&add) {
            self.failed(&e);
            return;
        }
        let mut staged = vec!["diff", "--cached", "--quiet", "--"];
        staged.extend(&paths);
        if self.git(&staged).is_ok() {
            tracing::info!(
                task,
                "--git: nothing changed in the task's files; no commit"
            );
            return;
        }
        let mut commit = vec!["commit", "-q", "--no-edit", "-m", message, "--"];
        commit.extend(&paths);
        match self.git(&commit) {
            Ok(_) => tracing::info!(task, branch = branch.unwrap_or(""), "committed: {message}"),
            Err(e) => self.failed(&e),
        }
    }

    /// Switch to `branch`, creating it from the current HEAD if it does not exist.
    fn on_branch(&self, branch: &str) -> Result<(), GitError> {
        let current = self.git(&["symbolic-ref", "--short", "-q", "HEAD"]).ok();
        if current.as_deref() == Some(branch) {
            return Ok(());
        }
        let exists = self
            .git(&[
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ])
            .is_ok();
        if exists {
            self.git(&["switch", "-q", branch]).map(|_| ())
        } else {
            tracing::info!(branch, "--git: creating the branch from the current HEAD");
            self.git(&["switch", "-q", "-c", branch]).map(|_| ())
        }
    }
}
