//! Converging hosts: connect and gather facts everywhere, render every plan (a bad
//! template stops the run before any host changes), then run each host's plan over its
//! one connection, hosts in parallel.

mod batch;
mod counted;
mod host;
mod host_lock;

use batch::{FACTS, facts_value};

pub use host::converge_host;

use crate::report::Reporter;
use crate::transport::{LocalTransport, SshOptions, SshTransport, Transport, TransportError};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// How to reach a host.
#[derive(Debug, Clone)]
pub enum Connection {
    Local,
    Ssh(SshOptions),
}

impl Connection {
    /// `read_only` (check mode) refuses every script meant to change the host.
    pub async fn open(&self, read_only: bool) -> Result<Arc<counted::Counted>, TransportError> {
        let inner: Arc<dyn Transport> = match self {
            Connection::Local => Arc::new(LocalTransport::new()),
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
    // One privilege level per exec: the one most tasks use (facts read the same either way).
    let become_count = prefetchable
        .iter()
        .filter(|&&i| plan.nodes[i].become_root)
        .count();
    let become_root = become_count * 2 > prefetchable.len();
    let mut batch = batch::Batch::new();
    batch.add(batch::Key::Facts, FACTS);
    batch.add(batch::Key::PendingRestarts, &host::pending_restarts_probe());
    let mut texts = HashMap::new();
    for &i in &prefetchable {
        if plan.nodes[i].become_root == become_root
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
            become_root,
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
use crate::report::HostReport;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Semaphore;

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
    let magic = plan::play_magic(inventory, hosts, &options.extra, &play.secrets);
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
            Ok(p) => plans.push(p),
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

/// Converge (or, in check mode, diff) every play of the playbook.
pub async fn run_playbook(
    playbook: &Playbook,
    inventory: &Inventory,
    options: &RunOptions,
    settings: &RunSettings<'_>,
) -> InputResult<RunResult> {
    // Everything that needs no facts is checked for every play before connecting.
    let mut targets = Vec::new();
    for play in &playbook.plays {
        let hosts = play_hosts(inventory, play, options.limit.as_deref())?;
        let pre = plans(playbook, play, inventory, &hosts, options, None)?;
        targets.push((play, hosts, pre));
    }
    if options.limit.is_some() && targets.iter().all(|(_, hosts, _)| hosts.is_empty()) {
        return Err(InputError::new("the limit matches no host of any play")
            .help("check -l against the inventory and the plays' hosts:"));
    }
    let mut connections: HashMap<String, Result<Reached, String>> = HashMap::new();
    let mut reports: indexmap::IndexMap<String, HostReport> = indexmap::IndexMap::new();
    for host in inventory.hosts() {
        if targets
            .iter()
            .any(|(_, hosts, _)| hosts.iter().any(|h| h.name == host.name))
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
    let forks = Arc::new(Semaphore::new(options.forks.max(1)));
    // Connect to every host of every play first: each play is rendered with facts
    // before the first change anywhere, so a mistake found only then touches nothing.
    let mut rendered = Vec::new();
    for (play, hosts, pre) in &targets {
        // Connect and gather facts on the hosts not reached yet, in parallel.
        let mut pending = Vec::new();
        let mut warned = std::collections::HashSet::new();
        for (host, plan) in hosts.iter().zip(pre) {
            if connections.contains_key(&host.name) {
                continue;
            }
            let (connection, warnings) = inventory.connection(host, &plan.vars)?;
            for w in warnings {
                // The same ignored variable on many hosts is said once.
                if !options.quiet && warned.insert(w.clone()) {
                    eprintln!("warning: {w}");
                }
            }
            let spec = if connection.local {
                Connection::Local
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
                })
            };
            let name = host.name.clone();
            let forks = forks.clone();
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
                    let lock = match lock? {
                        Some(host_lock::Taken::Refused(holder)) => {
                            transport.close().await;
                            return Ok(Opened::Locked(holder));
                        }
                        Some(host_lock::Taken::Held(lock)) => Some(lock),
                        None => None,
                    };
                    let (facts, prefetched) = read?;
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
    for final_plans in &rendered {
        let mut runs = Vec::new();
        for plan in final_plans {
            let Some(Ok((transport, facts, prefetched, _))) = connections.get_mut(&plan.host)
            else {
                continue;
            };
            let forks = forks.clone();
            let transport = transport.clone();
            let facts = facts.clone();
            // What the first round trip read serves only the first play.
            let prefetched = std::mem::take(prefetched);
            runs.push(async move {
                let _permit = forks.acquire().await;
                converge_host(plan, transport.as_ref(), facts, prefetched, settings).await
            });
        }
        for report in futures::future::join_all(runs).await {
            if report.unreachable.is_some() {
                connections.insert(
                    report.host.clone(),
                    Err(report.unreachable.clone().unwrap_or_default()),
                );
            }
            if let Some(r) = reports.get_mut(&report.host) {
                r.absorb(report);
            }
        }
    }
    close_all(connections, options.verbose).await;
    Ok(RunResult {
        hosts: reports.into_values().collect(),
    })
}
