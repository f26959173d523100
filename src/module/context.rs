//! The engine's side of the change contract: it asks a module for its plan, runs the
//! checks in both modes and the changes only when applying.

use super::files::PreviousFile;
use super::plan::{Command, Exec, HostView, Plan, Stdin};
use super::steps;
use super::{Action, Diff, Failure, Outcome, Probed, Resource, Status};
use crate::transport::{ExecOutput, Input, Purpose, RunAs, Script, Transport};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The host a task runs on.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    pub name: String,
    /// `facts.*`, gathered in the first round trip.
    pub facts: Value,
    /// Every form the play's secrets took in this host's plan (their values, their
    /// fields, what templates made of them: `playbook::taint`), never to be shown.
    pub secrets: Vec<String>,
}

impl HostInfo {
    /// Whether `bytes` hold any form of a secret (or a private key).
    pub fn is_secret(&self, bytes: &[u8]) -> bool {
        super::files::holds_private_key(bytes)
            || self
                .secrets
                .iter()
                .filter(|s| !s.is_empty())
                .any(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
    }
}

/// Restarts asked for and done in this run, so each service restarts at most once, and
/// the files changed for each, so a restart that leaves it unhealthy can put them back.
#[derive(Debug, Default)]
pub struct RestartBook {
    pending: BTreeSet<String>,
    done: BTreeSet<String>,
    replaced: BTreeMap<String, Vec<PreviousFile>>,
}

impl RestartBook {
    fn key(service: &str) -> String {
        service.trim_end_matches(".service").to_string()
    }

    /// Something changed that the running service must pick up.
    pub fn request(&mut self, service: &str) {
        self.pending.insert(Self::key(service));
    }

    pub fn is_pending(&self, service: &str) -> bool {
        self.pending.contains(&Self::key(service))
    }

    /// The service was (re)started after every change so far: pending restarts are folded in.
    pub fn mark_restarted(&mut self, service: &str) {
        let key = Self::key(service);
        self.pending.remove(&key);
        self.done.insert(key);
    }

    pub fn was_restarted(&self, service: &str) -> bool {
        self.done.contains(&Self::key(service))
    }

    /// Services still waiting for a restart at the end of the run.
    pub fn pending(&self) -> Vec<String> {
        self.pending.iter().cloned().collect()
    }

    /// `files` are about to be replaced by a change owing `services` a restart. A file
    /// changed twice in the run keeps what it was before the first change.
    pub fn record_replaced(&mut self, services: &BTreeSet<String>, files: &[PreviousFile]) {
        for service in services {
            let kept = self.replaced.entry(Self::key(service)).or_default();
            for file in files {
                if !kept.iter().any(|k| k.path == file.path) {
                    kept.push(file.clone());
                }
            }
        }
    }

    /// The files changed in this run that owe `service` a restart, as they were.
    pub fn replaced_for(&self, service: &str) -> &[PreviousFile] {
        self.replaced
            .get(&Self::key(service))
            .map_or(&[], Vec::as_slice)
    }
}

pub struct Ctx<'a> {
    /// False in check mode: compute and report, change nothing.
    apply: bool,
    pub host: &'a HostInfo,
    transport: &'a dyn Transport,
    run_as: RunAs,
    /// The task's `timeout:` for each command; None: the transport's default.
    timeout: Option<std::time::Duration>,
    /// A snippet recording the restarts this task owes if it changes anything, run in
    /// front of its first command in apply mode: the intent is on the host before the
    /// change is live, so a crash in between cannot lose the restart.
    restart_intent: std::sync::Mutex<Option<String>>,
    /// The services this task owes a restart to when it changes something.
    owes: BTreeSet<String>,
    pub restarts: &'a mut RestartBook,
    /// Resources that earlier tasks changed, or in check mode would have changed.
    changed: &'a HashSet<Resource>,
    /// Whether the plan's settle may be left to the caller, to overlap later tasks.
    overlap_settle: bool,
    /// The settle left to the caller.
    settling: Option<PendingSettle>,
    /// Whether consecutive changes may share an exec (tests of canned answers say no).
    share_execs: bool,
}

/// A plan's [`Settle`](super::plan::Settle), made from its change's output, still to
/// run: owned, so that it can outlive the task's plan while later tasks run.
#[derive(Debug)]
pub struct PendingSettle {
    pub what: String,
    pub script: String,
    /// What a later task must leave alone until it ended.
    pub watches: Vec<Resource>,
    run_as: RunAs,
    timeout: Option<std::time::Duration>,
}

impl PendingSettle {
    /// Run it: Ok once what the changes did held.
    pub async fn run(&self, transport: &dyn Transport) -> Result<(), Failure> {
        let script = Script {
            body: &self.script,
            stdin: Input::NONE,
            run_as: &self.run_as,
            timeout: self.timeout,
            purpose: Purpose::Check,
        };
        let out = transport.exec(script).await?;
        if out.success() {
            Ok(())
        } else {
            Err(Failure::Task(super::failed(&self.what, &out)))
        }
    }
}

impl<'a> Ctx<'a> {
    pub fn new(
        apply: bool,
        host: &'a HostInfo,
        transport: &'a dyn Transport,
        run_as: RunAs,
        restarts: &'a mut RestartBook,
        changed: &'a HashSet<Resource>,
    ) -> Ctx<'a> {
        Ctx {
            apply,
            host,
            transport,
            run_as,
            timeout: None,
            restart_intent: std::sync::Mutex::new(None),
            owes: BTreeSet::new(),
            restarts,
            changed,
            overlap_settle: false,
            settling: None,
            share_execs: true,
        }
    }

    /// One exec per change, for a fake host that answers each change's script.
    #[cfg(test)]
    pub fn one_exec_per_change(mut self) -> Ctx<'a> {
        self.share_execs = false;
        self
    }

    /// Leave the plan's settle to the caller ([`Ctx::take_settle`]) unless a follow-up
    /// must see how it went.
    pub fn overlapping_settles(mut self) -> Ctx<'a> {
        self.overlap_settle = true;
        self
    }

    /// The settle the last plan left to the caller.
    pub fn take_settle(&mut self) -> Option<PendingSettle> {
        self.settling.take()
    }

    /// Run `snippet` in front of the first command this task runs when applying.
    pub fn with_restart_intent(self, snippet: Option<String>) -> Ctx<'a> {
        *self
            .restart_intent
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = snippet;
        self
    }

    /// The services this task owes a restart to (its own unit's, its notified
    /// handlers'): the files it replaces are booked under them.
    pub fn owing_restarts(mut self, services: BTreeSet<String>) -> Ctx<'a> {
        self.owes = services;
        self
    }

    /// Whether a restart intent is still waiting for the task's first command (none
    /// ran): once it went to the host, the slot is empty.
    pub fn restart_intent_pending(&self) -> bool {
        self.restart_intent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Each command of this task may run for `timeout` at most.
    pub fn with_timeout(mut self, timeout: Option<std::time::Duration>) -> Ctx<'a> {
        self.timeout = timeout;
        self
    }

    /// Plan `action` over its probed state and carry the plan out.
    pub async fn carry_out(
        &mut self,
        action: &dyn Action,
        probed: &Probed,
    ) -> Result<Outcome, Failure> {
        let plan = action.plan(probed, &self.view())?;
        self.apply_plan(plan).await
    }

    /// What the module may read while it plans. Applying, the engine probes again
    /// after every change: nothing earlier tasks do is still to come.
    pub fn view(&self) -> HostView<'_> {
        static NOTHING: std::sync::LazyLock<HashSet<Resource>> =
            std::sync::LazyLock::new(HashSet::new);
        let coming = if self.apply { &*NOTHING } else { self.changed };
        HostView::new(self.host, self.restarts, coming)
    }

    /// Run the plan's checks, book the restarts it asks for or makes, and, when
    /// applying, run its changes and follow-up.
    pub async fn apply_plan(&mut self, plan: Plan<'_>) -> Result<Outcome, Failure> {
        for check in &plan.checks {
            self.exec_judged(check, Purpose::Check).await?;
        }
        // Booked before the changes run: a restart that fails still stopped the old
        // process, so nothing pending survives it.
        for service in &plan.restart_requests {
            self.restarts.request(service);
        }
        for service in &plan.restarted {
            self.restarts.mark_restarted(service);
        }
        if self.apply {
            // Booked before the changes run: a change that fails halfway may have replaced
            // its file already, and putting back what was there is harmless if it did not.
            self.restarts.record_replaced(&self.owes, &plan.replaces);
            let last = self.run_changes(&plan.changes).await?;
            if let (Some(settle), Some(started)) = (&plan.settle, &last)
                && let Some(script) = (settle.script)(started).map_err(Failure::Task)?
            {
                let pending = PendingSettle {
                    what: settle.what.clone(),
                    script,
                    watches: settle.watches.clone(),
                    run_as: self.run_as.clone(),
                    timeout: self.timeout,
                };
                if self.overlap_settle && plan.follow_up.is_none() {
                    self.settling = Some(pending);
                } else {
                    pending.run(self.transport).await?;
                }
            }
            if let Some(follow_up) = &plan.follow_up {
                follow_up.run(&*self).await?;
            }
        }
        Ok(self.outcome(plan))
    }

    fn outcome(&self, plan: Plan<'_>) -> Outcome {
        if let Some(reason) = plan.skipped {
            return Outcome::skipped(reason);
        }
        if let (false, false, Some(follow_up)) =
            (self.apply, plan.changes_anything(), &plan.follow_up)
        {
            return Outcome::skipped(format!("check mode: {}", follow_up.left_out()));
        }
        let status = if plan.changes_anything() {
            Status::Changed
        } else {
            Status::Ok
        };
        let mut diffs = plan.diffs;
        if let Some(line) = plan.runs {
            let verb = if self.apply { "ran" } else { "would run" };
            diffs.push(Diff::new(
                "command",
                None,
                Some(format!("{verb}: {line}\n")),
            ));
        }
        Outcome { status, diffs }
    }

    /// Run `changes` in order, in as few execs as their shape allows (see
    /// [`steps`](super::steps)); the last one's output.
    async fn run_changes(&self, changes: &[Command<'_>]) -> Result<Option<ExecOutput>, Failure> {
        let mut last = None;
        let mut rest = changes;
        while !rest.is_empty() {
            let n = self.shareable(rest);
            let (group, after) = rest.split_at(n);
            last = Some(match group {
                [one] => self.exec_judged(one, Purpose::Change).await?,
                _ => self.exec_steps(group).await?,
            });
            rest = after;
        }
        Ok(last)
    }

    /// How many of `changes`, from the first, can share one exec: each but the last must
    /// exit 0 for the next to run (a verdict may accept a failure), at most one reads
    /// stdin, and a task's `timeout:` is for each command alone.
    fn shareable(&self, changes: &[Command<'_>]) -> usize {
        if self.timeout.is_some() || !self.share_execs {
            return 1;
        }
        let reads = |c: &Command<'_>| !matches!(&c.stdin, Stdin::Bytes(b) if b.is_empty());
        let mut readers = 0;
        let mut n = 0;
        for change in changes {
            readers += usize::from(reads(change));
            if readers > 1 {
                break;
            }
            n += 1;
            if change.verdict.is_some() {
                break;
            }
        }
        n.max(1)
    }

    /// `group` in one exec, each change judged on its own output.
    async fn exec_steps(&self, group: &[Command<'_>]) -> Result<ExecOutput, Failure> {
        let nonce = steps::nonce();
        let bodies: Vec<&str> = group.iter().map(|c| c.script.as_str()).collect();
        let reader = group
            .iter()
            .position(|c| !matches!(&c.stdin, Stdin::Bytes(b) if b.is_empty()));
        let script = steps::script(&nonce, &bodies, reader);
        let stdin = reader.map_or(Input::NONE, |k| group[k].stdin.input());
        let out = self.exec(&script, stdin, Purpose::Change).await?;
        let mut outputs = steps::split(&nonce, &out, group.len());
        for (change, output) in group.iter().zip(&outputs) {
            change.judge(output).map_err(Failure::Task)?;
        }
        if let Some(skipped) = group.get(outputs.len()) {
            // The exec ended before this change ran, yet what ran passed.
            return Err(Failure::Task(super::failed(&skipped.what, &out)));
        }
        Ok(outputs.pop().unwrap_or(out))
    }

    async fn exec_judged(
        &self,
        command: &Command<'_>,
        purpose: Purpose,
    ) -> Result<ExecOutput, Failure> {
        let out = self
            .exec(&command.script, command.stdin.input(), purpose)
            .await?;
        command.judge(&out).map_err(Failure::Task)?;
        Ok(out)
    }

    async fn exec(
        &self,
        body: &str,
        stdin: Input<'_>,
        purpose: Purpose,
    ) -> Result<ExecOutput, Failure> {
        let intent = if purpose == Purpose::Change {
            self.restart_intent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
        } else {
            None
        };
        let with_intent = intent.map(|snippet| format!("{snippet}{body}"));
        let body = with_intent.as_deref().unwrap_or(body);
        let script = Script {
            body,
            stdin,
            run_as: &self.run_as,
            timeout: self.timeout,
            purpose,
        };
        Ok(self.transport.exec(script).await?)
    }
}

#[async_trait]
impl Exec for Ctx<'_> {
    async fn run(&self, command: Command<'_>) -> Result<ExecOutput, Failure> {
        self.exec_judged(&command, Purpose::Change).await
    }

    fn transport(&self) -> &dyn Transport {
        self.transport
    }

    fn replaced_for(&self, service: &str) -> &[PreviousFile] {
        self.restarts.replaced_for(service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::files::FileState;

    fn was(path: &str, content: &str) -> PreviousFile {
        PreviousFile {
            path: path.into(),
            state: FileState {
                content: Some(content.as_bytes().to_vec()),
                ..FileState::absent()
            },
            kept_as: None,
        }
    }

    #[test]
    fn a_file_changed_twice_is_put_back_as_it_was_first() {
        let mut book = RestartBook::default();
        let owes = BTreeSet::from(["app.service".to_string(), "worker".to_string()]);
        book.record_replaced(&owes, &[was("/etc/app.yml", "first")]);
        book.record_replaced(&owes, &[was("/etc/app.yml", "second"), was("/etc/b", "b")]);
        assert_eq!(
            book.replaced_for("app"),
            [was("/etc/app.yml", "first"), was("/etc/b", "b")]
        );
        assert_eq!(book.replaced_for("worker.service").len(), 2);
        assert!(book.replaced_for("other").is_empty());
    }
}
