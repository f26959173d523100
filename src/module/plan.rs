//! The change contract: a module plans, the engine applies.
//!
//! [`Action::plan`](super::Action::plan) is pure and synchronous: from the probed state
//! (and what earlier tasks will create) it decides the diffs to show, the read-only
//! checks to run and the changes to make. The engine runs the checks in both modes and
//! the changes only when applying. A module never learns which mode runs, so check mode
//! and apply mode cannot diverge.

use super::files::{LocalFile, PreviousFile, Source};
use super::{Diff, Failure, HostInfo, Resource, RestartBook};
use crate::transport::{ExecOutput, Input, Transport};
use async_trait::async_trait;
use std::borrow::Cow;
use std::collections::HashSet;

/// Reads a command's output: Ok, or why the task fails.
pub type Verdict<'a> = Box<dyn Fn(&ExecOutput) -> Result<(), String> + Send + Sync + 'a>;

/// What a command reads on its standard input.
pub enum Stdin<'a> {
    Bytes(Cow<'a, [u8]>),
    /// A file on this machine, streamed (see [`files::LocalFile`](super::files::LocalFile)).
    File(&'a LocalFile),
}

impl Stdin<'_> {
    pub fn input(&self) -> Input<'_> {
        match self {
            Stdin::Bytes(bytes) => Input::Bytes(bytes),
            Stdin::File(file) => Input::File {
                path: &file.path,
                sha256: &file.sha256,
            },
        }
    }
}

impl<'a> From<&'a [u8]> for Stdin<'a> {
    fn from(bytes: &'a [u8]) -> Stdin<'a> {
        Stdin::Bytes(Cow::Borrowed(bytes))
    }
}

impl From<Vec<u8>> for Stdin<'_> {
    fn from(bytes: Vec<u8>) -> Self {
        Stdin::Bytes(Cow::Owned(bytes))
    }
}

impl<'a> From<Source<'a>> for Stdin<'a> {
    fn from(source: Source<'a>) -> Stdin<'a> {
        match source {
            Source::Bytes(bytes) => Stdin::from(bytes),
            Source::Local(file) => Stdin::File(file),
        }
    }
}

/// One command for the host, with what to call it when it fails.
pub struct Command<'a> {
    /// Names the step in a failure message (`creating /opt/app failed (exit 1): ...`).
    pub what: String,
    pub script: String,
    pub stdin: Stdin<'a>,
    /// None: the command must exit 0.
    pub verdict: Option<Verdict<'a>>,
}

impl<'a> Command<'a> {
    pub fn new(what: impl Into<String>, script: impl Into<String>) -> Command<'a> {
        Command {
            what: what.into(),
            script: script.into(),
            stdin: Stdin::Bytes(Cow::Borrowed(&[])),
            verdict: None,
        }
    }

    pub fn with_stdin(mut self, stdin: impl Into<Stdin<'a>>) -> Command<'a> {
        self.stdin = stdin.into();
        self
    }

    /// Judge the output with `verdict` instead of by its exit status alone.
    pub fn judged_by(
        mut self,
        verdict: impl Fn(&ExecOutput) -> Result<(), String> + Send + Sync + 'a,
    ) -> Command<'a> {
        self.verdict = Some(Box::new(verdict));
        self
    }

    /// Ok, or the failure message the task reports.
    pub fn judge(&self, out: &ExecOutput) -> Result<(), String> {
        match &self.verdict {
            Some(verdict) => verdict(out),
            None if out.success() => Ok(()),
            None => Err(failed(&self.what, out)),
        }
    }
}

/// `WHAT failed (exit N): STDERR` (stdout when stderr is empty).
pub fn failed(what: &str, out: &ExecOutput) -> String {
    let stderr = out.stderr_text();
    let detail = if stderr.is_empty() {
        out.stdout_text().trim().to_string()
    } else {
        stderr
    };
    format!("{what} failed (exit {}): {detail}", out.status)
}

/// What only time tells about the changes (a unit started a moment ago stays up): a
/// read-only command made from the last change's output. Applying, the engine runs it
/// after the changes while the later tasks that touch none of `watches` go on; the task
/// is done, or failed, when it ends.
pub struct Settle<'a> {
    /// Names it in a failure message, as for a [`Command`].
    pub what: String,
    pub script: SettleScript<'a>,
    /// What a later task must leave alone until it ended.
    pub watches: Vec<Resource>,
}

/// A settle's script, from the last change's output: None when there is nothing to wait
/// for, Err when the output says the change did not do what it should.
pub type SettleScript<'a> =
    Box<dyn Fn(&ExecOutput) -> Result<Option<String>, String> + Send + Sync + 'a>;

/// Runs commands on the host for a [`FollowUp`]: only ever handed out when applying.
#[async_trait]
pub trait Exec: Send + Sync {
    /// Run `command`; its output once its verdict passed, or the task's failure.
    async fn run(&self, command: Command<'_>) -> Result<ExecOutput, Failure>;

    /// For what is not a shell command (a health check's TCP connection).
    fn transport(&self) -> &dyn Transport;

    /// The files changed in this run that owe `service` a restart, as they were before
    /// (the first time each changed): what a failed health check puts back.
    fn replaced_for(&self, service: &str) -> &[PreviousFile];
}

/// A step that must see the outcome of the one before (restart, then health check,
/// then roll back): the engine drives it after the changes, only when applying.
#[async_trait]
pub trait FollowUp: Send + Sync {
    /// What check mode leaves out, as a skip reason (`GET http://... not sent`).
    fn left_out(&self) -> String;

    async fn run(&self, host: &dyn Exec) -> Result<(), Failure>;
}

/// What a module decided for one task on one host, the same in check and apply mode.
#[derive(Default)]
pub struct Plan<'a> {
    pub diffs: Vec<Diff>,
    /// Read-only commands (`nginx -t` on a candidate, `systemd-analyze verify`), run in
    /// both modes before any change; the first failure fails the task.
    pub checks: Vec<Command<'a>>,
    /// Run in order only when applying; the first failure stops the rest.
    pub changes: Vec<Command<'a>>,
    /// A command line the task runs: shown as `would run: LINE`, then `ran: LINE`.
    pub runs: Option<String>,
    pub follow_up: Option<Box<dyn FollowUp + 'a>>,
    /// Run after the last change (before the follow-up), maybe overlapping later tasks.
    pub settle: Option<Settle<'a>>,
    /// Services whose running process must restart to pick up this change.
    pub restart_requests: Vec<String>,
    /// Services this task (re)starts, folding in the restarts pending so far.
    pub restarted: Vec<String>,
    /// Files the changes replace, as they were (see [`files::replace`](super::files::replace)).
    pub replaces: Vec<PreviousFile>,
    /// Why the task does nothing at all this time.
    pub skipped: Option<String>,
}

impl<'a> Plan<'a> {
    /// Nothing differs.
    pub fn unchanged() -> Plan<'a> {
        Plan::default()
    }

    pub fn skipped(reason: impl Into<String>) -> Plan<'a> {
        Plan {
            skipped: Some(reason.into()),
            ..Plan::default()
        }
    }

    pub fn with_diffs(diffs: impl IntoIterator<Item = Diff>) -> Plan<'a> {
        Plan {
            diffs: diffs.into_iter().collect(),
            ..Plan::default()
        }
    }

    /// Show `diff` and make it so with `change`.
    pub fn change(&mut self, diff: Option<Diff>, change: Command<'a>) {
        self.diffs.extend(diff);
        self.changes.push(change);
    }

    /// Whether the task changes something (a restart does, even with nothing to diff).
    pub fn changes_anything(&self) -> bool {
        !self.diffs.is_empty() || !self.changes.is_empty() || self.runs.is_some()
    }
}

/// What a module may read of the host and the run while it plans.
pub struct HostView<'a> {
    pub info: &'a HostInfo,
    pub restarts: &'a RestartBook,
    /// What earlier tasks will have created or changed by the time this task's changes
    /// run, though the probe cannot show it: their changes are still to come (check
    /// mode). Empty when applying, since the engine probes again after every change.
    coming: &'a HashSet<Resource>,
}

impl<'a> HostView<'a> {
    pub fn new(
        info: &'a HostInfo,
        restarts: &'a RestartBook,
        coming: &'a HashSet<Resource>,
    ) -> HostView<'a> {
        HostView {
            info,
            restarts,
            coming,
        }
    }

    /// Whether an earlier task will create or change `resource`, so that its absence
    /// from the probe is expected, not an error.
    pub fn coming(&self, resource: &Resource) -> bool {
        self.coming.iter().any(|r| r.satisfies(resource))
    }

    /// The same, for a verdict that reads a check's output after planning.
    pub fn coming_resources(&self) -> Vec<Resource> {
        self.coming.iter().cloned().collect()
    }

    pub fn is_secret(&self, bytes: &[u8]) -> bool {
        self.info.is_secret(bytes)
    }
}
