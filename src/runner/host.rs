//! One host's run: probe everything in one batch, walk the DAG, converge each node.

use super::RunSettings;
use super::batch::{Batch, Key};
use super::watch::{Released, Watched};
use crate::module::{
    Ctx, Diff, Failure, HostInfo, PendingSettle, Probed, Resource, RestartBook, Status, systemd,
};
use crate::plan::{EdgeKind, HostPlan, NodeState};
use crate::quote::quote;
use crate::report::{HostReport, TaskReport, TaskStatus, redact};
use crate::transport::{Input, PROBE_TIMEOUT, Purpose, RunAs, Script, Transport, TransportError};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Where a host records restarts that are owed (one empty file per service).
const PENDING_DIR: &str = "/var/lib/converge/restart-pending";

/// Lists the owed restarts (read in the first round trip).
pub fn pending_restarts_probe() -> String {
    // A glob, not ls: every rerun reads this, and a process costs the host ~2 ms.
    format!("for f in {PENDING_DIR}/*; do [ -e \"$f\" ] && printf '%s\\n' \"${{f##*/}}\"; done; :")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Done {
    Ran,
    /// Failed: its dependents skip.
    Failed,
    /// Skipped because the task at this index, which it needs (maybe through others),
    /// failed: its dependents skip too.
    Blocked(usize),
}

impl Done {
    /// When a task needs `dep`, which ended as `self`: the failed task that blocks it
    /// (`dep` or what blocked `dep`) and the skip reason; None when `dep` ran.
    fn blocks<'a>(self, dep: usize, name: impl Fn(usize) -> &'a str) -> Option<(usize, String)> {
        match self {
            Done::Ran => None,
            Done::Failed => Some((dep, format!("`{}` failed", name(dep)))),
            Done::Blocked(root) => Some((
                root,
                format!("`{}` was skipped: `{}` failed", name(dep), name(root)),
            )),
        }
    }
}

struct HostRun<'a> {
    plan: &'a HostPlan,
    transport: &'a dyn Transport,
    settings: &'a RunSettings<'a>,
    info: HostInfo,
    report: HostReport,
    watched: Vec<Watched>,
    /// While a settle runs, the reports of the tasks after it, held back so that tasks
    /// are reported in order; `None` marks the place of a task still settling.
    held: Vec<(usize, Option<TaskReport>)>,
}

/// A settle for the host's settler to run, and where to say how it went.
type SettleJob = (PendingSettle, oneshot::Sender<Result<(), Failure>>);

/// A task whose changes are done and whose settle still runs on the host.
struct Settling {
    node: usize,
    watches: Vec<Resource>,
    outcome: oneshot::Receiver<Result<(), Failure>>,
    started: Instant,
    status: TaskStatus,
    diff: Option<String>,
    skip: Option<String>,
}

/// Run one host's plan; its report, with `unreachable` set if the connection broke,
/// and the health checks that keep guarding what it changed.
pub async fn converge_host(
    plan: &HostPlan,
    transport: &dyn Transport,
    facts: serde_json::Value,
    prefetched: super::Prefetched,
    settings: &RunSettings<'_>,
) -> (HostReport, Released) {
    let mut run = HostRun {
        plan,
        transport,
        settings,
        info: HostInfo {
            name: plan.host.clone(),
            facts,
            secrets: plan.secrets.clone(),
        },
        report: HostReport {
            host: plan.host.clone(),
            ..HostReport::default()
        },
        watched: Vec::new(),
        held: Vec::new(),
    };
    // Settles run on their own session beside the walk; the walk's end closes `jobs`,
    // which ends the settler once the last settle ended.
    let (jobs, mut inbox) = mpsc::unbounded_channel::<SettleJob>();
    let settler = futures::StreamExt::for_each_concurrent(
        futures::stream::poll_fn(move |cx| inbox.poll_recv(cx)),
        None,
        |(settle, outcome)| async move {
            let _ = outcome.send(settle.run(transport).await);
        },
    );
    let (walked, ()) = futures::join!(run.walk(prefetched, jobs), settler);
    if let Err(e) = walked {
        let reason = redact(&e.to_string(), &plan.secrets);
        settings.reporter.unreachable(&plan.host, &reason);
        run.report.unreachable = Some(reason);
    }
    let released = Released {
        info: run.info,
        watched: run.watched,
    };
    (run.report, released)
}

/// Where the walk over a host's plan is.
struct Walk {
    done: HashMap<usize, Done>,
    /// Handlers a changed task woke.
    notified: HashSet<usize>,
    restarts: RestartBook,
    /// The owed restarts the host holds a record of.
    persisted: BTreeSet<String>,
    /// What changed tasks provided.
    changed: HashSet<Resource>,
    /// The state read for the nodes ahead.
    probes: HashMap<usize, Reading>,
    /// The nodes ahead whose probe a change made since may have altered: read again, all
    /// in one exec, when the first of them comes.
    stale: HashSet<usize>,
    /// Where settles go to run beside the walk.
    settler: mpsc::UnboundedSender<SettleJob>,
    /// The tasks settling, in order.
    settling: Vec<Settling>,
}

/// What a node's probe found, and what it read given that
/// ([`Action::reads`](crate::module::Action::reads)), asked once per reading rather than at
/// every change.
struct Reading {
    found: Probed,
    reads: Option<Vec<Resource>>,
}

impl HostRun<'_> {
    async fn walk(
        &mut self,
        prefetched: super::Prefetched,
        settler: mpsc::UnboundedSender<SettleJob>,
    ) -> Result<(), TransportError> {
        let mut walk = self.start(prefetched, settler).await?;
        let stepped = self.steps(&mut walk).await;
        let settled = self.settle_all(&mut walk).await;
        stepped?;
        settled?;
        if !self.settings.interrupted.load(Ordering::SeqCst) {
            self.flush_restarts(&mut walk.restarts).await?;
            self.persist_restarts(&walk.restarts, &mut walk.persisted)
                .await?;
        }
        Ok(())
    }

    async fn steps(&mut self, walk: &mut Walk) -> Result<(), TransportError> {
        for (position, &i) in self.plan.order.iter().enumerate() {
            if self.settings.interrupted.load(Ordering::SeqCst) {
                break;
            }
            if self.disturbs(walk, i) {
                self.settle_all(walk).await?;
            }
            self.step(walk, position, i).await?;
        }
        Ok(())
    }

    /// The walk's start: the restarts a run that died before doing them still owes, and
    /// every task's state, from the first round trip where its probe is still the same.
    async fn start(
        &self,
        prefetched: super::Prefetched,
        settler: mpsc::UnboundedSender<SettleJob>,
    ) -> Result<Walk, TransportError> {
        let super::Prefetched {
            probes: mut prefetched,
            pending_restarts,
        } = prefetched;
        let plan = self.plan;
        let mut restarts = RestartBook::default();
        for service in &pending_restarts {
            restarts.request(service);
        }
        let mut probes: HashMap<usize, Probed> = HashMap::new();
        let mut missing = Vec::new();
        for &i in plan
            .order
            .iter()
            .filter(|&&i| self.runnable(i) && !plan.nodes[i].is_handler)
        {
            let probe = plan.nodes[i].action().map(|a| a.probe());
            match prefetched.remove(&i) {
                Some((text, probed)) if Some(&text) == probe.as_ref() => {
                    probes.insert(i, probed);
                }
                _ => missing.push(i),
            }
        }
        if !missing.is_empty() {
            probes.extend(self.probe(missing.into_iter()).await?);
        }
        let mut walk = Walk {
            done: HashMap::new(),
            notified: HashSet::new(),
            restarts,
            persisted: pending_restarts.into_iter().collect(),
            changed: HashSet::new(),
            probes: HashMap::new(),
            stale: HashSet::new(),
            settler,
            settling: Vec::new(),
        };
        self.found(&mut walk, probes);
        Ok(walk)
    }

    /// Keeps what probes found, and what each read given what it found.
    fn found(&self, walk: &mut Walk, probes: HashMap<usize, Probed>) {
        for (i, found) in probes {
            let reads = self.plan.nodes[i].action().and_then(|a| a.reads(&found));
            walk.probes.insert(i, Reading { found, reads });
        }
    }

    fn runnable(&self, i: usize) -> bool {
        self.plan.nodes[i].action().is_some()
    }

    /// Node `i`, at `position` in the order: passed over (a handler nobody woke), skipped
    /// (a task it needs failed, or its condition), or carried out.
    async fn step(
        &mut self,
        walk: &mut Walk,
        position: usize,
        i: usize,
    ) -> Result<(), TransportError> {
        let plan = self.plan;
        let node = &plan.nodes[i];
        if node.is_handler && !walk.notified.contains(&i) {
            return Ok(());
        }
        let name = redact(&node.name, &plan.secrets);
        let total = plan.order.len();
        self.settings
            .reporter
            .progress(&plan.host, position, total, &name);
        let blocked_by = plan
            .graph
            .dependencies(i)
            .filter(|(_, kind)| **kind != EdgeKind::Notify)
            .find_map(|(d, _)| {
                walk.done
                    .get(&d)?
                    .blocks(d, |n| plan.nodes[n].name.as_str())
            });
        if let Some((root, reason)) = blocked_by {
            walk.done.insert(i, Done::Blocked(root));
            self.record(i, TaskStatus::Skipped, None, None, Some(reason), 0);
            return Ok(());
        }
        let action = match &node.state {
            NodeState::Runs(action) => action.as_ref(),
            NodeState::Skipped(reason) => {
                walk.done.insert(i, Done::Ran);
                self.record(i, TaskStatus::Skipped, None, None, Some(reason.clone()), 0);
                return Ok(());
            }
            NodeState::Unresolved => return Ok(()),
        };
        if walk.stale.contains(&i) || !walk.probes.contains_key(&i) {
            let rest: Vec<usize> = plan.order[position..]
                .iter()
                .copied()
                .filter(|&j| {
                    self.runnable(j) && (walk.stale.contains(&j) || !walk.probes.contains_key(&j))
                })
                .collect();
            for j in &rest {
                walk.stale.remove(j);
            }
            let probes = self.probe(rest.into_iter()).await?;
            self.found(walk, probes);
        }
        let probed = walk.probes.remove(&i).map(|r| r.found).unwrap_or_default();
        let started = Instant::now();
        let (intent, owed) = (
            self.restart_intent(i, &walk.persisted),
            self.owed_restarts(i),
        );
        let mut ctx = Ctx::new(
            !self.settings.check,
            &self.info,
            self.transport,
            node.run_as.clone(),
            &mut walk.restarts,
            &walk.changed,
        )
        .with_timeout(node.timeout)
        .with_restart_intent(intent)
        .owing_restarts(owed.clone())
        .overlapping_settles();
        let result = ctx.carry_out(action, &probed).await;
        let settle = ctx.take_settle();
        // Written, or never needed (all owed restarts were on the host already).
        if !ctx.restart_intent_pending() {
            walk.persisted.extend(owed);
        }
        let elapsed = started.elapsed().as_millis() as u64;
        match result {
            Ok(outcome) => {
                walk.done.insert(i, Done::Ran);
                self.finished(walk, position, action, outcome, (started, settle))
                    .await?;
            }
            Err(Failure::Task(message)) => {
                walk.done.insert(i, Done::Failed);
                self.record(i, TaskStatus::Failed, None, Some(message), None, elapsed);
            }
            Err(Failure::Connection(e)) => {
                let error = Some(e.to_string());
                self.record(i, TaskStatus::Failed, None, error, None, elapsed);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Node `i` ran: a change makes the state read ahead stale and is watched during a
    /// rollout's pauses; its report, and the handlers a change wakes, wait for its settle
    /// if it has one.
    async fn finished(
        &mut self,
        walk: &mut Walk,
        position: usize,
        action: &dyn crate::module::Action,
        outcome: crate::module::Outcome,
        (started, settle): (Instant, Option<PendingSettle>),
    ) -> Result<(), TransportError> {
        let plan = self.plan;
        let i = plan.order[position];
        let node = &plan.nodes[i];
        let diff_text: String = outcome
            .diffs
            .iter()
            .map(|d| d.unified(&plan.host))
            .collect();
        let diff = (!diff_text.is_empty()).then_some(diff_text);
        let (status, skip) = match outcome.status {
            Status::Changed if node.never_changed => (TaskStatus::Ok, None),
            Status::Changed => (TaskStatus::Changed, None),
            Status::Ok => (TaskStatus::Ok, None),
            Status::Skipped(reason) => (TaskStatus::Skipped, Some(reason)),
        };
        if status == TaskStatus::Changed {
            walk.changed.extend(action.resources().provides);
            if !self.settings.check {
                let altered = self.altered_by(&walk.probes, action, position);
                walk.stale.extend(altered);
            }
            if !self.settings.check
                && let Some(watch) = action.watch()
            {
                self.watched.push(Watched {
                    task: redact(&node.name, &plan.secrets),
                    module: node.module,
                    run_as: node.run_as.clone(),
                    watch,
                });
            }
        }
        match settle {
            Some(settle) => {
                let (sent, outcome) = oneshot::channel();
                let watches = settle.watches.clone();
                // The settler ends only after the walk; were it gone, settle here.
                if let Err(mpsc::error::SendError((settle, sent))) =
                    walk.settler.send((settle, sent))
                {
                    let _ = sent.send(settle.run(self.transport).await);
                }
                walk.settling.push(Settling {
                    node: i,
                    watches,
                    outcome,
                    started,
                    status,
                    diff,
                    skip,
                });
                self.held.push((i, None));
                Ok(())
            }
            None => {
                let elapsed = started.elapsed().as_millis() as u64;
                self.concluded(walk, i, status, diff, skip, elapsed).await
            }
        }
    }

    /// Node `i` is done: its report, and the handlers a change wakes.
    async fn concluded(
        &mut self,
        walk: &mut Walk,
        i: usize,
        status: TaskStatus,
        diff: Option<String>,
        skip: Option<String>,
        elapsed: u64,
    ) -> Result<(), TransportError> {
        let plan = self.plan;
        if status == TaskStatus::Changed {
            for (to, kind) in plan.graph.dependents(i) {
                if *kind == EdgeKind::Notify {
                    walk.notified.insert(to);
                    if let Some(service) = plan.nodes[to].action().and_then(|a| a.restarts()) {
                        walk.restarts.request(service);
                    }
                }
            }
        }
        self.record(i, status, diff, None, skip, elapsed);
        self.persist_restarts(&walk.restarts, &mut walk.persisted)
            .await
    }

    /// Whether node `i` must wait for the settles running: it needs or is woken by a
    /// settling task, it is a handler, restarts a service, or may touch what a settle
    /// watches (a command may touch anything).
    fn disturbs(&self, walk: &Walk, i: usize) -> bool {
        if walk.settling.is_empty() {
            return false;
        }
        let node = &self.plan.nodes[i];
        let Some(action) = node.action() else {
            return false;
        };
        let needs_settling = self
            .plan
            .graph
            .dependencies(i)
            .any(|(d, _)| walk.settling.iter().any(|s| s.node == d));
        let touches_watched = match action.touches() {
            Some(touched) => walk.settling.iter().any(|s| {
                s.watches
                    .iter()
                    .any(|w| touched.iter().any(|t| t.overlaps(w)))
            }),
            None => true,
        };
        needs_settling
            || node.is_handler
            || touches_watched
            || action.restarts().is_some()
            || action.owes_restart().is_some()
    }

    /// Wait for every settle running and conclude its task (in order), then report the
    /// tasks held back meanwhile.
    async fn settle_all(&mut self, walk: &mut Walk) -> Result<(), TransportError> {
        let mut lost = None;
        for settling in std::mem::take(&mut walk.settling) {
            let outcome = settling.outcome.await.unwrap_or_else(|_| {
                Err(Failure::new(
                    "the settle's outcome was lost (an engine bug)",
                ))
            });
            let (i, elapsed) = (settling.node, settling.started.elapsed().as_millis() as u64);
            match outcome {
                Ok(()) => {
                    let (status, diff, skip) = (settling.status, settling.diff, settling.skip);
                    self.concluded(walk, i, status, diff, skip, elapsed).await?;
                }
                Err(Failure::Task(message)) => {
                    walk.done.insert(i, Done::Failed);
                    self.record(i, TaskStatus::Failed, None, Some(message), None, elapsed);
                }
                Err(Failure::Connection(e)) => {
                    walk.done.insert(i, Done::Failed);
                    self.record(
                        i,
                        TaskStatus::Failed,
                        None,
                        Some(e.to_string()),
                        None,
                        elapsed,
                    );
                    lost.get_or_insert(e);
                }
            }
        }
        for (_, report) in std::mem::take(&mut self.held) {
            let report = report.expect("every settling task was concluded");
            self.settings.reporter.task(&self.plan.host, &report);
            self.report.tasks.push(report);
        }
        lost.map_or(Ok(()), Err)
    }

    /// The nodes after `position` whose probe the change `action` made may have altered:
    /// those that read something it touches, and all when either side says anything. A
    /// node not read yet is read when it comes anyway.
    fn altered_by(
        &self,
        probes: &HashMap<usize, Reading>,
        action: &dyn crate::module::Action,
        position: usize,
    ) -> Vec<usize> {
        let touched = action.touches();
        self.plan.order[position + 1..]
            .iter()
            .copied()
            .filter_map(|j| Some((j, &probes.get(&j)?.reads)))
            .filter(|(_, reads)| match (&touched, reads) {
                (Some(touched), Some(reads)) => {
                    touched.iter().any(|t| reads.iter().any(|r| t.overlaps(r)))
                }
                _ => true,
            })
            .map(|(j, _)| j)
            .collect()
    }

    /// The services node `i` owes a restart to if it changes: its own, and those of the
    /// handlers it notifies.
    fn owed_restarts(&self, i: usize) -> BTreeSet<String> {
        let plan = self.plan;
        let own = plan.nodes[i].action().and_then(|a| a.owes_restart());
        let notified = plan
            .graph
            .dependents(i)
            .filter(|(_, kind)| **kind == EdgeKind::Notify)
            .filter_map(|(to, _)| plan.nodes[to].action()?.restarts());
        own.into_iter()
            .chain(notified)
            .map(|s| s.trim_end_matches(".service").to_string())
            .collect()
    }

    /// The snippet recording node `i`'s owed restarts that the host does not hold yet
    /// (see [`Ctx::with_restart_intent`]); it never fails the task's command.
    fn restart_intent(&self, i: usize, persisted: &BTreeSet<String>) -> Option<String> {
        if self.settings.check {
            return None;
        }
        let owed: Vec<String> = self
            .owed_restarts(i)
            .into_iter()
            .filter(|s| !persisted.contains(s))
            .map(|s| format!("{PENDING_DIR}/{}", quote(&s)))
            .collect();
        (!owed.is_empty()).then(|| {
            format!(
                "{{ mkdir -p {PENDING_DIR} && touch -- {}; }} 2>/dev/null || :\n",
                owed.join(" ")
            )
        })
    }

    /// Keep the host's record of owed restarts equal to the book, so a crash between a
    /// change and its restart does not lose the restart (the next run performs it).
    async fn persist_restarts(
        &self,
        restarts: &RestartBook,
        persisted: &mut BTreeSet<String>,
    ) -> Result<(), TransportError> {
        let wanted: BTreeSet<String> = restarts.pending().into_iter().collect();
        if self.settings.check || wanted == *persisted {
            return Ok(());
        }
        let mut script = format!("mkdir -p {PENDING_DIR}\n");
        for service in wanted.difference(persisted) {
            script.push_str(&format!("touch {PENDING_DIR}/{}\n", quote(service)));
        }
        for service in persisted.difference(&wanted) {
            script.push_str(&format!("rm -f {PENDING_DIR}/{}\n", quote(service)));
        }
        self.transport
            .exec(Script {
                body: &script,
                stdin: Input::NONE,
                run_as: &RunAs::Root,
                timeout: Some(PROBE_TIMEOUT),
                purpose: Purpose::Change,
            })
            .await?;
        *persisted = wanted;
        Ok(())
    }

    /// Restarts asked for by changed units that no handler or release performed.
    async fn flush_restarts(&mut self, restarts: &mut RestartBook) -> Result<(), TransportError> {
        for service in restarts.pending() {
            let name = format!("restart {service} (pending)");
            let started = Instant::now();
            let diff = Diff::new(
                format!("service {service}"),
                Some("restarted: no\n".into()),
                Some("restarted: yes\n".into()),
            )
            .unified(&self.plan.host);
            let mut error = None;
            if !self.settings.check {
                let out = self
                    .transport
                    .exec(Script {
                        body: &systemd::systemctl("try-restart", &service),
                        stdin: Input::NONE,
                        run_as: &RunAs::Root,
                        timeout: None,
                        purpose: Purpose::Change,
                    })
                    .await?;
                if !out.success() {
                    error = Some(out.stderr_text());
                }
            }
            if error.is_none() {
                restarts.mark_restarted(&service);
            }
            let status = if error.is_some() {
                TaskStatus::Failed
            } else {
                TaskStatus::Changed
            };
            let report = TaskReport {
                name,
                module: "service".into(),
                item: None,
                status,
                diff: Some(diff),
                error,
                skip_reason: None,
                duration_ms: started.elapsed().as_millis() as u64,
            };
            self.settings.reporter.task(&self.plan.host, &report);
            self.report.tasks.push(report);
        }
        Ok(())
    }

    /// Probe the given nodes: one exec per user they run as (usually exactly one).
    async fn probe(
        &self,
        nodes: impl Iterator<Item = usize>,
    ) -> Result<HashMap<usize, Probed>, TransportError> {
        let mut batches: BTreeMap<&RunAs, Batch> = BTreeMap::new();
        for i in nodes {
            let node = &self.plan.nodes[i];
            if let Some(action) = node.action() {
                batches
                    .entry(&node.run_as)
                    .or_insert_with(Batch::new)
                    .add(Key::Node(i), &action.probe());
            }
        }
        let mut results = HashMap::new();
        for (run_as, batch) in &batches {
            // A user an earlier task creates cannot read its tasks' state yet: they are
            // read again after that change, or fail saying why when they run.
            let not_yet = matches!(run_as, RunAs::User(_));
            let out = match self
                .transport
                .exec(Script {
                    body: &batch.script(),
                    stdin: Input::NONE,
                    run_as,
                    timeout: Some(PROBE_TIMEOUT),
                    purpose: Purpose::Probe,
                })
                .await
            {
                Err(TransportError::Become { .. }) if not_yet => continue,
                out => out?,
            };
            if !out.success() && out.stdout.is_empty() && not_yet {
                continue;
            }
            if !out.success() && out.stdout.is_empty() {
                return Err(TransportError::Io(format!(
                    "reading the host's state failed (exit {}): {}",
                    out.status,
                    out.stderr_text()
                )));
            }
            results.extend(batch.split(&out.stdout_text()).into_iter().filter_map(
                |(key, probed)| match key {
                    Key::Node(i) => Some((i, probed)),
                    Key::Facts | Key::PendingRestarts => None,
                },
            ));
        }
        Ok(results)
    }

    fn record(
        &mut self,
        i: usize,
        status: TaskStatus,
        diff: Option<String>,
        error: Option<String>,
        skip_reason: Option<String>,
        duration_ms: u64,
    ) {
        let node = &self.plan.nodes[i];
        let secrets = &self.plan.secrets;
        let hide = |text: Option<String>| {
            text.map(|t| {
                if node.no_log {
                    "<secret>".to_string()
                } else {
                    redact(&t, secrets)
                }
            })
        };
        let report = TaskReport {
            name: redact(&node.name, secrets),
            module: node.module.to_string(),
            item: node.item.as_ref().map(|item| {
                if node.no_log {
                    serde_json::Value::String("<secret>".into())
                } else {
                    serde_json::from_str(&redact(&item.to_string(), secrets)).unwrap_or_default()
                }
            }),
            status,
            diff: hide(diff),
            error: hide(error),
            skip_reason: skip_reason.map(|r| redact(&r, secrets)),
            duration_ms,
        };
        let place = self
            .held
            .iter()
            .position(|(n, held)| *n == i && held.is_none());
        match place {
            Some(place) => self.held[place].1 = Some(report),
            None if !self.held.is_empty() => self.held.push((i, Some(report))),
            None => {
                self.settings.reporter.task(&self.plan.host, &report);
                self.report.tasks.push(report);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Done;

    #[test]
    fn a_skip_names_the_failure_behind_it() {
        let names = ["migrate", "after migrate", "report"];
        let name = |i: usize| names[i];
        assert_eq!(Done::Ran.blocks(0, name), None);
        assert_eq!(
            Done::Failed.blocks(0, name),
            Some((0, "`migrate` failed".to_string()))
        );
        // `report` needs `after migrate`, which was skipped because `migrate` failed.
        assert_eq!(
            Done::Blocked(0).blocks(1, name),
            Some((
                0,
                "`after migrate` was skipped: `migrate` failed".to_string()
            ))
        );
    }
}
