//! Converging hosts: connect and gather facts everywhere, render every plan (a bad
//! template stops the run before any host changes), then run each host's plan over its
//! one connection, hosts in parallel.

mod batch;
mod counted;
mod dialer;
mod host;
mod host_lock;
mod rollout;
mod watch;

use batch::{FACTS, facts_value};

pub use host::converge_host;

use crate::report::Reporter;
use crate::transport::{
    BecomePassword, ExecOutput, Input, RunAs, Script, Transport, TransportError,
};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Settings shared by every host of a run.
pub struct RunSettings<'a> {
    /// Check mode (`converge diff`): compute and report, change nothing.
    pub check: bool,
    pub reporter: &'a dyn Reporter,
    /// Set on Ctrl-C: finish the task in progress, start no other.
    pub interrupted: Arc<AtomicBool>,
}

/// What the first round trip read besides facts.
#[derive(Default)]
pub struct Prefetched {
    /// Probe results read before the final plan existed, with the probe text they
    /// answer, so a node whose probe came out the same once facts were known reuses them.
    pub probes: HashMap<usize, (String, crate::module::Probed)>,
    /// Restarts a previous run asked for but did not live to perform.
    pub pending_restarts: Vec<String>,
}

/// The first round trip to a host: its facts, plus the state of every task that needed
/// no facts to render, in one exec. A no-change rerun needs no other.
pub struct FirstRead {
    batch: batch::Batch,
    /// The batch's script, built once.
    body: String,
    /// Each node's probe text, by node.
    texts: HashMap<usize, String>,
    run_as: RunAs,
}

impl FirstRead {
    pub fn new(plan: &HostPlan) -> FirstRead {
        let prefetchable: Vec<usize> = plan
            .order
            .iter()
            .copied()
            .filter(|&i| {
                let n = &plan.nodes[i];
                n.action().is_some() && !n.is_handler
            })
            .collect();
        // One user per exec: the login or root, whichever most tasks run as (facts read the
        // same either way; another user may not exist before the run creates it).
        let mut users: HashMap<&RunAs, usize> = HashMap::new();
        for &i in &prefetchable {
            let run_as = &plan.nodes[i].run_as;
            if !matches!(run_as, RunAs::User(_)) {
                *users.entry(run_as).or_default() += 1;
            }
        }
        let run_as = users
            .into_iter()
            .max_by_key(|(run_as, count)| (*count, std::cmp::Reverse(*run_as)))
            .map_or(RunAs::Login, |(run_as, _)| run_as.clone());
        let mut batch = batch::Batch::new();
        batch.add(batch::Key::Facts, FACTS);
        batch.add(batch::Key::PendingRestarts, &host::pending_restarts_probe());
        let mut texts = HashMap::new();
        for &i in &prefetchable {
            if plan.nodes[i].run_as == run_as
                && let Some(action) = plan.nodes[i].action()
            {
                let probe = action.probe();
                batch.add(batch::Key::Node(i), &probe);
                texts.insert(i, probe);
            }
        }
        FirstRead {
            body: batch.script(),
            batch,
            texts,
            run_as,
        }
    }

    fn script(&self) -> Script<'_> {
        Script {
            body: &self.body,
            stdin: Input::NONE,
            run_as: &self.run_as,
            timeout: Some(crate::transport::PROBE_TIMEOUT),
            purpose: crate::transport::Purpose::Probe,
        }
    }

    /// The script, when it may run inside the host lock's script, which runs as root.
    pub fn as_root(&self, transport: &dyn Transport) -> Option<Script<'_>> {
        let root = match self.run_as {
            RunAs::Root => true,
            RunAs::Login => transport.login_is_root(),
            RunAs::User(_) => false,
        };
        root.then(|| self.script())
    }

    pub async fn exec(&self, transport: &dyn Transport) -> Result<ExecOutput, TransportError> {
        transport.exec(self.script()).await
    }

    /// Facts and the probes' results, from what the script printed.
    pub fn parse(
        mut self,
        out: &ExecOutput,
    ) -> Result<(serde_json::Value, Prefetched), TransportError> {
        let mut results = self.batch.split(&out.stdout_text());
        let Some(facts) = results.remove(&batch::Key::Facts) else {
            return Err(TransportError::Io(format!(
                "reading the host's facts failed (exit {}): {}",
                out.status,
                out.stderr_text()
            )));
        };
        let pending_restarts = results
            .remove(&batch::Key::PendingRestarts)
            .map(|p| {
                p.stdout
                    .lines()
                    .map(str::to_string)
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let probes = results
            .into_iter()
            .filter_map(|(key, probed)| match key {
                batch::Key::Node(i) => self.texts.remove(&i).map(|text| (i, (text, probed))),
                batch::Key::Facts | batch::Key::PendingRestarts => None,
            })
            .collect();
        Ok((
            facts_value(&facts.stdout),
            Prefetched {
                probes,
                pending_restarts,
            },
        ))
    }
}

use crate::error::{InputError, InputResult};
use crate::inventory::{Connection, Inventory};
use crate::plan::{self, Expansion, HostPlan, HostVars, Selection};
use crate::playbook::vars::Layer;
use crate::playbook::{Play, Playbook};
use crate::report::{HostReport, Stopped};
use dialer::Dialer;
use host_lock::{HostLock, Taken};
use indexmap::IndexMap;
use rollout::Segment;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::Semaphore;
use watch::WatchedHost;

/// Everything a run needs besides the playbook and inventory.
pub struct RunOptions {
    pub limit: Option<String>,
    pub selection: Selection,
    pub extra: Layer,
    pub forks: usize,
    pub timeout: Duration,
    pub accept_new_host_keys: bool,
    pub verbose: bool,
    /// `-q`: no warnings either.
    pub quiet: bool,
    /// `--ask-become-pass`: for the hosts whose inventory gives none.
    pub become_password: Option<BecomePassword>,
}

/// The hosts a play runs on, in inventory order, after `-l`.
pub fn play_hosts<'i>(
    inventory: &'i Inventory,
    play: &Play,
    limit: Option<&str>,
) -> InputResult<Vec<&'i crate::inventory::Host>> {
    let selected = inventory.select(&play.hosts.0, Some(&play.hosts.1))?;
    let allowed: Option<Vec<&str>> = match limit {
        Some(l) => Some(
            inventory
                .limit(l)?
                .into_iter()
                .map(|h| h.name.as_str())
                .collect(),
        ),
        None => None,
    };
    Ok(selected
        .hosts
        .into_iter()
        .filter(|h| {
            allowed
                .as_ref()
                .is_none_or(|a| a.contains(&h.name.as_str()))
        })
        .collect())
}

/// Build every host's plan for a play; all errors at once.
pub fn plans(
    playbook: &Playbook,
    play: &Play,
    inventory: &Inventory,
    hosts: &[&crate::inventory::Host],
    options: &RunOptions,
    facts: Option<&HashMap<String, serde_json::Value>>,
) -> InputResult<Vec<HostPlan>> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    let secret_names = play.secret_names();
    let magic = plan::play_magic(inventory, hosts, &options.extra, &secret_names);
    for host in hosts {
        let vars = HostVars {
            host: &host.name,
            groups: &host.groups,
            inventory: inventory.var_layers(host),
            extra: &options.extra,
            magic: Some(&magic),
        };
        let expansion = match facts.and_then(|f| f.get(&host.name)) {
            Some(f) => Expansion::WithFacts(f),
            None => Expansion::WithoutFacts,
        };
        match plan::build(playbook, play, &vars, expansion, &options.selection) {
            Ok(mut p) => {
                // The prompted password shows nowhere either, whatever a host echoes.
                p.secrets.extend(
                    options
                        .become_password
                        .iter()
                        .map(|pw| pw.expose().to_string()),
                );
                plans.push(p);
            }
            // The same mistake on every host is reported once.
            Err(e) if errors.iter().any(|x: &InputError| x.message == e.message) => {}
            Err(e) => errors.push(e),
        }
    }
    InputError::combine(errors).map_or(Ok(plans), Err)
}

/// How a run ended, before the exit code is chosen.
pub struct RunResult {
    pub hosts: Vec<HostReport>,
    /// A rollout that stopped before its last batch: which batch, and why.
    pub stopped: Option<Stopped>,
}

/// A host we are connected to, with its facts, and in apply mode its lock.
struct Reached {
    /// How it was reached, to reach it again during a watch window.
    connection: Connection,
    transport: Arc<counted::Counted>,
    facts: serde_json::Value,
    prefetched: Prefetched,
    lock: Option<Arc<HostLock>>,
    /// The first read ran in the lock's channel, not as an exec of its own.
    read_in_lock: bool,
}

/// What connecting to a host came to, short of an error.
enum Opened {
    Reached(Box<Reached>),
    /// Another controller holds the host (who, since when): nothing is done there.
    Locked(String),
}

/// The hosts of one segment: reached, or why not.
#[derive(Default)]
struct Reach {
    hosts: HashMap<String, Result<Reached, String>>,
    /// Hosts that failed a task or could not be reached (or were held by another run).
    failed: Vec<String>,
}

impl Reach {
    fn reached(&self, host: &str) -> Option<&Reached> {
        self.hosts.get(host).and_then(|r| r.as_ref().ok())
    }

    /// Close every open connection; `verbose` says how many execs each took.
    async fn close(self, verbose: bool) {
        for (host, reached) in self.hosts {
            // The lock goes after the connection, which ends its script on the host anyway.
            let Ok(reached) = reached else {
                continue;
            };
            if verbose {
                // The lock's channel counts as an exec when it made the first read.
                let (execs, plus) = match (&reached.lock, reached.read_in_lock) {
                    (Some(_), true) => (
                        reached.transport.execs() + 1,
                        " (the first in the host lock's channel)",
                    ),
                    (Some(_), false) => {
                        (reached.transport.execs(), ", plus the host lock's channel")
                    }
                    (None, _) => (reached.transport.execs(), ""),
                };
                eprintln!("{host}: {execs} exec(s) over one connection{plus}");
            }
            reached.transport.close().await;
        }
    }
}

/// A play with its hosts (inventory order), their plans rendered without facts, and
/// its rollout.
type Target<'p, 'i> = (
    &'p Play,
    Vec<&'i crate::inventory::Host>,
    Vec<HostPlan>,
    crate::rollout::Rollout,
);

/// Converge (or, in check mode, diff) every play of the playbook.
pub async fn run_playbook(
    playbook: &Playbook,
    inventory: &Inventory,
    options: &RunOptions,
    settings: &RunSettings<'_>,
) -> InputResult<RunResult> {
    let targets = targets(playbook, inventory, options)?;
    let mut reports = empty_reports(inventory, &targets);
    let run = Run {
        playbook,
        inventory,
        options,
        settings,
        targets,
        forks: Semaphore::new(options.forks.max(1)),
        dialer: Dialer::new(options),
    };
    let stopped = run.segments(&mut reports).await?;
    if let Some(stop) = &stopped {
        settings.reporter.stopped(stop);
    }
    Ok(RunResult {
        hosts: reports.into_values().collect(),
        stopped,
    })
}

/// Every play's hosts, plans and rollout: everything that needs no facts is checked for
/// every play before connecting.
fn targets<'p>(
    playbook: &'p Playbook,
    inventory: &'p Inventory,
    options: &RunOptions,
) -> InputResult<Vec<Target<'p, 'p>>> {
    let mut targets: Vec<Target> = Vec::new();
    for play in &playbook.plays {
        let hosts = play_hosts(inventory, play, options.limit.as_deref())?;
        let pre = plans(playbook, play, inventory, &hosts, options, None)?;
        let rollout = crate::rollout::of_play(play, &options.extra)?;
        targets.push((play, hosts, pre, rollout));
    }
    if options.limit.is_some() && targets.iter().all(|(_, hosts, _, _)| hosts.is_empty()) {
        return Err(InputError::new("the limit matches no host of any play")
            .help("check -l against the inventory and the plays' hosts:"));
    }
    Ok(targets)
}

/// An empty report for every host a play targets, in inventory order.
fn empty_reports(inventory: &Inventory, targets: &[Target]) -> IndexMap<String, HostReport> {
    inventory
        .hosts()
        .iter()
        .filter(|host| {
            targets
                .iter()
                .any(|(_, hosts, _, _)| hosts.iter().any(|h| h.name == host.name))
        })
        .map(|host| {
            let report = HostReport {
                host: host.name.clone(),
                ..HostReport::default()
            };
            (host.name.clone(), report)
        })
        .collect()
}

/// One run of a playbook: what its segments share.
struct Run<'r, 's> {
    playbook: &'r Playbook,
    inventory: &'r Inventory,
    options: &'r RunOptions,
    settings: &'r RunSettings<'s>,
    targets: Vec<Target<'r, 'r>>,
    forks: Semaphore,
    dialer: Dialer,
}

/// What one segment came to.
struct Ran {
    /// Hosts that failed a task or could not be reached (or were held by another run).
    failed: Vec<String>,
    /// What each reached host left to watch.
    released: Vec<WatchedHost>,
}

impl Run<'_, '_> {
    /// Run the segments in order, each batch followed by its watch window; where the
    /// rollout stopped, if it did.
    async fn segments(
        &self,
        reports: &mut IndexMap<String, HostReport>,
    ) -> InputResult<Option<Stopped>> {
        let shapes: Vec<rollout::PlayShape> = self
            .targets
            .iter()
            .map(|(play, hosts, _, rollout)| (play.name.as_str(), hosts.len(), rollout))
            .collect();
        let plan = rollout::segments(&shapes, self.settings.check);
        for note in &plan.notes {
            self.settings.reporter.note(note);
        }
        let mut stopped: Option<Stopped> = None;
        let mut released: Vec<WatchedHost> = Vec::new();
        for segment in &plan.segments {
            if stopped.is_none() && self.settings.interrupted.load(Ordering::SeqCst) {
                stopped = Some(rollout::interrupted(&self.targets, segment));
            }
            if let Some(stop) = &stopped {
                rollout::not_reached(&self.targets, segment, stop, reports, self.settings);
                continue;
            }
            let ran = self.segment(segment, reports).await?;
            let Some(batch) = &segment.batch else {
                continue;
            };
            if batch.number == 1 {
                released.clear();
            }
            let (play, _, _, rollout) = &self.targets[batch.play];
            let stop = |reason: String| Stopped {
                play: play.name.clone(),
                batch: batch.number,
                batches: batch.of,
                reason,
            };
            if rollout.stops(ran.failed.len(), batch.size) {
                let reason = rollout::failure_reason(rollout, &ran.failed, batch.size);
                stopped = Some(stop(reason));
                continue;
            }
            released.extend(ran.released);
            let pause = rollout.batch_pause.unwrap_or_default();
            if batch.number == batch.of || pause.is_zero() || released.is_empty() {
                continue;
            }
            let after = format!("batch {}/{} of play {}", batch.number, batch.of, play.name);
            let (settings, forks, dialer) = (self.settings, &self.forks, &self.dialer);
            let end = watch::pause(&released, pause, &after, settings, forks, dialer).await;
            stopped = end.record(reports).map(stop);
        }
        Ok(stopped)
    }

    /// Connect to the segment's hosts and render each of its plays with facts (a mistake
    /// found then stops the run before the segment changes anything), then run its plays.
    async fn segment(
        &self,
        segment: &Segment,
        reports: &mut IndexMap<String, HostReport>,
    ) -> InputResult<Ran> {
        let mut reach = Reach::default();
        let mut rendered = Vec::new();
        for (play_index, range) in &segment.plays {
            let (play, all_hosts, all_pre, _) = &self.targets[*play_index];
            let (hosts, pre) = (&all_hosts[range.clone()], &all_pre[range.clone()]);
            if let Some(batch) = &segment.batch {
                let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
                self.settings
                    .reporter
                    .batch(&play.name, batch.number, batch.of, &names);
            }
            let plans = match self.connect(hosts, pre, &mut reach, reports).await {
                Ok(()) => self.render(play, hosts, &reach),
                Err(e) => Err(e),
            };
            match plans {
                Ok(plans) => rendered.push(plans),
                Err(e) => {
                    reach.close(false).await;
                    return Err(e);
                }
            }
        }
        let released = self.converge(&rendered, &mut reach, reports).await;
        let failed = std::mem::take(&mut reach.failed);
        reach.close(self.options.verbose).await;
        Ok(Ran { failed, released })
    }

    /// Connect and read facts on the hosts not reached yet, in parallel; a host given up
    /// earlier in the run is not tried again.
    async fn connect(
        &self,
        hosts: &[&crate::inventory::Host],
        pre: &[HostPlan],
        reach: &mut Reach,
        reports: &mut IndexMap<String, HostReport>,
    ) -> InputResult<()> {
        let mut pending = Vec::new();
        let mut warned = std::collections::HashSet::new();
        for (host, plan) in hosts.iter().zip(pre) {
            let given_up = reports
                .get(&host.name)
                .is_some_and(|r| r.unreachable.is_some() || r.locked.is_some());
            if given_up {
                reach.failed.push(host.name.clone());
            }
            if given_up || reach.hosts.contains_key(&host.name) {
                continue;
            }
            let (connection, warnings) = self.inventory.connection(host, &plan.vars)?;
            for w in warnings {
                // The same ignored variable on many hosts is said once.
                if !self.options.quiet && warned.insert(w.clone()) {
                    eprintln!("warning: {w}");
                }
            }
            pending.push(self.open(&host.name, connection, plan));
        }
        for (name, result) in futures::future::join_all(pending).await {
            let result = match result {
                Ok(Opened::Reached(reached)) => Ok(*reached),
                Ok(Opened::Locked(holder)) => {
                    self.settings.reporter.locked(&name, &holder);
                    if let Some(r) = reports.get_mut(&name) {
                        r.locked = Some(holder.clone());
                    }
                    Err(format!("locked by {holder}"))
                }
                Err(reason) => {
                    self.settings.reporter.unreachable(&name, &reason);
                    if let Some(r) = reports.get_mut(&name) {
                        r.unreachable.get_or_insert_with(|| reason.clone());
                    }
                    Err(reason)
                }
            };
            if result.is_err() {
                reach.failed.push(name.clone());
            }
            reach.hosts.insert(name, result);
        }
        Ok(())
    }

    /// Open one host's connection and make the first read. In apply mode the read runs
    /// under the host lock, in the lock's own exec when it reads as root: one session, and
    /// no state read while another controller is halfway through its run. Diff takes no
    /// lock (see host_lock).
    async fn open(
        &self,
        host: &str,
        connection: Connection,
        plan: &HostPlan,
    ) -> (String, Result<Opened, String>) {
        let _permit = self.forks.acquire().await;
        let check = self.settings.check;
        let result = async {
            let transport = self.dialer.open(host, &connection, check).await?;
            let first = FirstRead::new(plan);
            let (out, lock, read_in_lock) = if check {
                (first.exec(transport.as_ref()).await?, None, false)
            } else {
                let read = first.as_root(transport.as_ref());
                let (taken, out) = match self
                    .dialer
                    .lock(&connection, transport.as_ref(), read.as_ref())
                    .await
                {
                    Ok(taken) => taken,
                    Err(e) => {
                        // sudo's refusal reads clearer from an exec, which sees its stderr.
                        first.exec(transport.as_ref()).await?;
                        return Err(e);
                    }
                };
                let lock = match taken {
                    Taken::Refused(holder) => {
                        transport.close().await;
                        return Ok(Opened::Locked(holder));
                    }
                    Taken::Held(lock) => lock,
                };
                let read_in_lock = out.is_some();
                let out = match out {
                    Some(out) => out,
                    None => first.exec(transport.as_ref()).await?,
                };
                (out, Some(lock), read_in_lock)
            };
            let (facts, prefetched) = first.parse(&out)?;
            Ok::<_, TransportError>(Opened::Reached(Box::new(Reached {
                connection,
                transport,
                facts,
                prefetched,
                lock,
                read_in_lock,
            })))
        }
        .await;
        (host.to_string(), result.map_err(|e| e.to_string()))
    }

    /// A play's final plans, rendered with the facts of its hosts that were reached.
    fn render(
        &self,
        play: &Play,
        hosts: &[&crate::inventory::Host],
        reach: &Reach,
    ) -> InputResult<Vec<HostPlan>> {
        let reachable: Vec<&crate::inventory::Host> = hosts
            .iter()
            .copied()
            .filter(|h| reach.reached(&h.name).is_some())
            .collect();
        let facts: HashMap<String, serde_json::Value> = reachable
            .iter()
            .filter_map(|h| Some((h.name.clone(), reach.reached(&h.name)?.facts.clone())))
            .collect();
        let (playbook, inventory) = (self.playbook, self.inventory);
        plans(
            playbook,
            play,
            inventory,
            &reachable,
            self.options,
            Some(&facts),
        )
    }

    /// Run the rendered plays in order, each on its hosts in parallel; what the hosts
    /// left to watch.
    async fn converge(
        &self,
        rendered: &[Vec<HostPlan>],
        reach: &mut Reach,
        reports: &mut IndexMap<String, HostReport>,
    ) -> Vec<WatchedHost> {
        let mut released = Vec::new();
        for final_plans in rendered {
            let mut runs = Vec::new();
            for plan in final_plans {
                let Some(Ok(host)) = reach.hosts.get_mut(&plan.host) else {
                    continue;
                };
                let transport = host.transport.clone();
                let facts = host.facts.clone();
                // What the first round trip read serves only the first play.
                let prefetched = std::mem::take(&mut host.prefetched);
                runs.push(async move {
                    let _permit = self.forks.acquire().await;
                    converge_host(plan, transport.as_ref(), facts, prefetched, self.settings).await
                });
            }
            for (report, left) in futures::future::join_all(runs).await {
                let recap = report.recap();
                if (recap.failed > 0 || recap.unreachable) && !reach.failed.contains(&report.host) {
                    reach.failed.push(report.host.clone());
                }
                if !left.watched.is_empty()
                    && let Some(host) = reach.reached(&report.host)
                {
                    released.push(WatchedHost {
                        connection: host.connection.clone(),
                        released: left,
                    });
                }
                if let Some(reason) = &report.unreachable {
                    reach.hosts.insert(report.host.clone(), Err(reason.clone()));
                }
                if let Some(r) = reports.get_mut(&report.host) {
                    r.absorb(report);
                }
            }
        }
        released
    }
}
