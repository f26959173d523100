//! Converging hosts: connect and gather facts everywhere, render every plan (a bad
//! template stops the run before any host changes), then run each host's plan over its
//! one connection, hosts in parallel.

mod batch;
mod counted;
mod host;
mod host_lock;
mod rollout;
mod watch;

use batch::{FACTS, facts_value};

pub use host::converge_host;

use crate::report::Reporter;
use crate::transport::{
    Bastions, BecomePassword, LocalTransport, RunAs, Session, SshOptions, SshTransport, Transport,
    TransportError,
};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// How to reach a host.
#[derive(Debug, Clone)]
pub enum Connection {
    /// This machine, with the password sudo may ask for.
    Local(Option<BecomePassword>),
    Ssh(SshOptions),
}

impl Connection {
    /// `read_only` (check mode) refuses every script meant to change the host.
    pub async fn open(&self, read_only: bool) -> Result<Arc<counted::Counted>, TransportError> {
        let inner: Arc<dyn Transport> = match self {
            Connection::Local(password) => {
                Arc::new(LocalTransport::new().with_become_password(password.clone()))
            }
            Connection::Ssh(options) => Arc::new(SshTransport::connect(options).await?),
        };
        Ok(Arc::new(counted::Counted::new(inner, read_only)))
    }
}

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
pub async fn first_read(
    transport: &dyn Transport,
    plan: &HostPlan,
) -> Result<(serde_json::Value, Prefetched), TransportError> {
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
    let out = transport
        .exec(crate::transport::Script {
            body: batch.script(),
            stdin: &[],
            run_as: &run_as,
            timeout: Some(crate::transport::PROBE_TIMEOUT),
            purpose: crate::transport::Purpose::Probe,
        })
        .await?;
    let mut results = batch.split(&out.stdout_text());
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
            batch::Key::Node(i) => texts.remove(&i).map(|text| (i, (text, probed))),
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

use crate::error::{InputError, InputResult};
use crate::inventory::Inventory;
use crate::plan::{self, Expansion, HostPlan, HostVars, Selection};
use crate::playbook::vars::Layer;
use crate::playbook::{Play, Playbook};
use crate::report::{HostReport, Stopped};
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
type Reached = (
    Arc<counted::Counted>,
    serde_json::Value,
    Prefetched,
    Option<host_lock::HostLock>,
);

/// What connecting to a host came to, short of an error.
enum Opened {
    Reached(Reached),
    /// Another controller holds the host (who, since when): nothing is done there.
    Locked(String),
}

/// Close every open connection; `verbose` says how many execs each took.
async fn close_all(connections: HashMap<String, Result<Reached, String>>, verbose: bool) {
    for (host, c) in connections {
        // The lock goes after the connection, which ends its script on the host anyway.
        if let Ok((transport, _, _, lock)) = c {
            if verbose {
                let plus = if lock.is_some() {
                    ", plus the host lock's channel"
                } else {
                    ""
                };
                eprintln!(
                    "{host}: {} exec(s) over one connection{plus}",
                    transport.execs()
                );
            }
            transport.close().await;
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
    // Everything that needs no facts is checked for every play before connecting.
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
    let mut reports: indexmap::IndexMap<String, HostReport> = indexmap::IndexMap::new();
    for host in inventory.hosts() {
        if targets
            .iter()
            .any(|(_, hosts, _, _)| hosts.iter().any(|h| h.name == host.name))
        {
            reports.insert(
                host.name.clone(),
                HostReport {
                    host: host.name.clone(),
                    ..HostReport::default()
                },
            );
        }
    }
    let forks = Semaphore::new(options.forks.max(1));
    // One connection per bastion, shared by every host behind it, for the whole run.
    let bastions = Arc::new(Bastions::default());
    let shapes: Vec<rollout::PlayShape> = targets
        .iter()
        .map(|(play, hosts, _, rollout)| (play.name.as_str(), hosts.len(), rollout))
        .collect();
    let plan = rollout::segments(&shapes, settings.check);
    for note in &plan.notes {
        settings.reporter.note(note);
    }
    let mut stopped: Option<Stopped> = None;
    let mut released: Vec<WatchedHost> = Vec::new();
    for segment in &plan.segments {
        if stopped.is_none() && settings.interrupted.load(Ordering::SeqCst) {
            stopped = Some(rollout::interrupted(&targets, segment));
        }
        if let Some(stop) = &stopped {
            rollout::not_reached(&targets, segment, stop, &mut reports, settings);
            continue;
        }
        let ran = run_segment(
            playbook,
            inventory,
            options,
            settings,
            &targets,
            segment,
            &forks,
            &bastions,
            &mut reports,
        )
        .await?;
        let Some(batch) = &segment.batch else {
            continue;
        };
        if batch.number == 1 {
            released.clear();
        }
        let (play, _, _, rollout) = &targets[batch.play];
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
        let end = watch::pause(&released, pause, &after, settings, &forks).await;
        stopped = end.record(&mut reports).map(stop);
    }
    if let Some(stop) = &stopped {
        settings.reporter.stopped(stop);
    }
    Ok(RunResult {
        hosts: reports.into_values().collect(),
        stopped,
    })
}

/// What one segment came to.
struct Ran {
    /// Hosts that failed a task or could not be reached (or were held by another run).
    failed: Vec<String>,
    /// What each reached host left to watch.
    released: Vec<WatchedHost>,
}

/// Connect to the segment's hosts and render each of its plays with facts (a mistake
/// found then stops the run before the segment changes anything), then run its plays.
#[allow(clippy::too_many_arguments)]
async fn run_segment(
    playbook: &Playbook,
    inventory: &Inventory,
    options: &RunOptions,
    settings: &RunSettings<'_>,
    targets: &[Target<'_, '_>],
    segment: &Segment,
    forks: &Semaphore,
    bastions: &Arc<Bastions<Session>>,
    reports: &mut indexmap::IndexMap<String, HostReport>,
) -> InputResult<Ran> {
    let mut connections: HashMap<String, Result<Reached, String>> = HashMap::new();
    let mut specs: HashMap<String, Connection> = HashMap::new();
    let mut failed: Vec<String> = Vec::new();
    let mut rendered = Vec::new();
    for (play_index, range) in &segment.plays {
        let (play, all_hosts, all_pre, _) = &targets[*play_index];
        let (hosts, pre) = (&all_hosts[range.clone()], &all_pre[range.clone()]);
        if let Some(batch) = &segment.batch {
            let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            settings
                .reporter
                .batch(&play.name, batch.number, batch.of, &names);
        }
        // Connect and gather facts on the hosts not reached yet, in parallel; a host
        // given up earlier in the run is not tried again.
        let mut pending = Vec::new();
        let mut warned = std::collections::HashSet::new();
        for (host, plan) in hosts.iter().zip(pre) {
            let given_up = reports
                .get(&host.name)
                .is_some_and(|r| r.unreachable.is_some() || r.locked.is_some());
            if given_up {
                failed.push(host.name.clone());
            }
            if given_up || connections.contains_key(&host.name) {
                continue;
            }
            let (connection, warnings) = inventory.connection(host, &plan.vars)?;
            for w in warnings {
                // The same ignored variable on many hosts is said once.
                if !options.quiet && warned.insert(w.clone()) {
                    eprintln!("warning: {w}");
                }
            }
            // As in Ansible, the inventory's password wins over the prompted one.
            let become_password = connection
                .become_password
                .clone()
                .or_else(|| options.become_password.clone());
            let spec = if connection.local {
                Connection::Local(become_password)
            } else {
                Connection::Ssh(SshOptions {
                    alias: host.name.clone(),
                    address: connection.address.clone(),
                    port: connection.port,
                    user: connection.user.clone(),
                    identity_file: connection.identity_file.clone(),
                    connect_timeout: connection
                        .timeout
                        .map_or(options.timeout, Duration::from_secs),
                    accept_new_host_keys: options.accept_new_host_keys,
                    home: None,
                    agent_socket: None,
                    become_password,
                    proxy_jump: connection.proxy_jump.clone(),
                    bastions: bastions.clone(),
                })
            };
            specs.insert(host.name.clone(), spec.clone());
            let name = host.name.clone();
            let check = settings.check;
            pending.push(async move {
                let _permit = forks.acquire().await;
                let result = async {
                    let transport = spec.open(check).await?;
                    // Alongside the first read, which changes nothing, so that a rerun
                    // waits for no extra round trip. Diff takes none (see host_lock).
                    let lock = async {
                        if check {
                            Ok(None)
                        } else {
                            host_lock::take(transport.as_ref()).await.map(Some)
                        }
                    };
                    let (read, lock) = tokio::join!(first_read(transport.as_ref(), plan), lock);
                    // First: sudo's refusal reads clearer there than in the lock's error.
                    let (facts, prefetched) = read?;
                    let lock = match lock? {
                        Some(host_lock::Taken::Refused(holder)) => {
                            transport.close().await;
                            return Ok(Opened::Locked(holder));
                        }
                        Some(host_lock::Taken::Held(lock)) => Some(lock),
                        None => None,
                    };
                    Ok::<_, TransportError>(Opened::Reached((transport, facts, prefetched, lock)))
                }
                .await;
                (name, result.map_err(|e| e.to_string()))
            });
        }
        for (name, result) in futures::future::join_all(pending).await {
            let result = match result {
                Ok(Opened::Reached(reached)) => Ok(reached),
                Ok(Opened::Locked(holder)) => {
                    settings.reporter.locked(&name, &holder);
                    if let Some(r) = reports.get_mut(&name) {
                        r.locked = Some(holder.clone());
                    }
                    Err(format!("locked by {holder}"))
                }
                Err(reason) => {
                    settings.reporter.unreachable(&name, &reason);
                    Err(reason)
                }
            };
            if result.is_err() {
                failed.push(name.clone());
            }
            connections.insert(name, result);
        }
        let reachable: Vec<&crate::inventory::Host> = hosts
            .iter()
            .copied()
            .filter(|h| matches!(connections.get(&h.name), Some(Ok(_))))
            .collect();
        for host in hosts {
            if let Some(Err(reason)) = connections.get(&host.name)
                && let Some(r) = reports.get_mut(&host.name)
                && r.locked.is_none()
            {
                r.unreachable.get_or_insert_with(|| reason.clone());
            }
        }
        let facts: HashMap<String, serde_json::Value> = reachable
            .iter()
            .filter_map(|h| match connections.get(&h.name) {
                Some(Ok((_, f, _, _))) => Some((h.name.clone(), f.clone())),
                _ => None,
            })
            .collect();
        match plans(playbook, play, inventory, &reachable, options, Some(&facts)) {
            Ok(final_plans) => rendered.push(final_plans),
            Err(e) => {
                close_all(connections, false).await;
                return Err(e);
            }
        }
    }
    let mut released = Vec::new();
    for final_plans in &rendered {
        let mut runs = Vec::new();
        for plan in final_plans {
            let Some(Ok((transport, facts, prefetched, _))) = connections.get_mut(&plan.host)
            else {
                continue;
            };
            let transport = transport.clone();
            let facts = facts.clone();
            // What the first round trip read serves only the first play.
            let prefetched = std::mem::take(prefetched);
            runs.push(async move {
                let _permit = forks.acquire().await;
                converge_host(plan, transport.as_ref(), facts, prefetched, settings).await
            });
        }
        for (report, left) in futures::future::join_all(runs).await {
            if report.unreachable.is_some() {
                connections.insert(
                    report.host.clone(),
                    Err(report.unreachable.clone().unwrap_or_default()),
                );
            }
            let recap = report.recap();
            if (recap.failed > 0 || recap.unreachable) && !failed.contains(&report.host) {
                failed.push(report.host.clone());
            }
            if let Some(connection) = specs.get(&report.host)
                && !left.watched.is_empty()
            {
                released.push(WatchedHost {
                    connection: connection.clone(),
                    released: left,
                });
            }
            if let Some(r) = reports.get_mut(&report.host) {
                r.absorb(report);
            }
        }
    }
    close_all(connections, options.verbose).await;
    Ok(Ran { failed, released })
}
