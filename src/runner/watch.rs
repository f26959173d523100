//! The watch window of a rollout: while it pauses between batches, the hosts already
//! released keep being checked (each module's [`Watch`]); the first that turns unhealthy
//! is rolled back and stops the rollout. A check holds a connection only while it runs
//! (at most `forks` at once), so a long pause over many hosts holds no connection idle.

use super::RunSettings;
use super::dialer::Dialer;
use super::host_lock::Taken;
use crate::inventory::Connection;
use crate::module::{Ctx, Failure, HostInfo, RestartBook, Watch};
use crate::report::{HostReport, TaskReport, TaskStatus, redact};
use crate::transport::{RunAs, Transport};
use indexmap::IndexMap;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Time between two rounds of checks.
const ROUND_EVERY: Duration = Duration::from_secs(2);
/// How often a pause looks for Ctrl-C.
const INTERRUPT_POLL: Duration = Duration::from_millis(100);

/// A change a task made that a health check keeps guarding.
pub struct Watched {
    /// The task's name (redacted), for the report.
    pub task: String,
    pub module: &'static str,
    pub run_as: RunAs,
    pub watch: Box<dyn Watch>,
}

/// What a host's run left to watch.
pub struct Released {
    pub info: HostInfo,
    pub watched: Vec<Watched>,
}

/// A released host and how to reach it again.
pub struct WatchedHost {
    pub connection: Connection,
    pub released: Released,
}

/// How a pause ended.
pub enum PauseEnd {
    /// Every watched host stayed healthy.
    Quiet,
    /// Hosts turned unhealthy (each rolled back, or said why not) or could not be
    /// checked: the rollout stops. Their failed tasks, and the hosts lost with why.
    Unhealthy {
        failed: Vec<(String, TaskReport)>,
        lost: Vec<(String, String)>,
    },
    /// Ctrl-C: nothing was left half-done.
    Interrupted,
}

impl PauseEnd {
    /// Book what the pause found in the hosts' reports (each host's own line already
    /// said what was found and done there); why the rollout stops, if it does.
    pub fn record(self, reports: &mut IndexMap<String, HostReport>) -> Option<String> {
        match self {
            PauseEnd::Quiet => None,
            PauseEnd::Interrupted => Some("interrupted (Ctrl-C) during the pause".to_string()),
            PauseEnd::Unhealthy { failed, lost } => {
                let mut why = Vec::new();
                let names = |hosts: Vec<&str>| hosts.join(", ");
                if !failed.is_empty() {
                    why.push(format!(
                        "watched hosts turned unhealthy during the pause: {}",
                        names(failed.iter().map(|(h, _)| h.as_str()).collect())
                    ));
                }
                if !lost.is_empty() {
                    why.push(format!(
                        "watched hosts could not be checked during the pause: {}",
                        names(lost.iter().map(|(h, _)| h.as_str()).collect())
                    ));
                }
                for (host, task) in failed {
                    if let Some(r) = reports.get_mut(&host) {
                        r.tasks.push(task);
                    }
                }
                for (host, reason) in lost {
                    if let Some(r) = reports.get_mut(&host) {
                        r.unreachable.get_or_insert(reason);
                    }
                }
                Some(why.join("; "))
            }
        }
    }
}

/// What one check of one host found.
enum Checked<'h> {
    Healthy,
    Failing(&'h WatchedHost, &'h Watched, String),
    Lost(String, String),
}

/// Watch `hosts` for `pause` (`after`: "batch 1/4 of play web", for messages).
pub async fn pause(
    hosts: &[WatchedHost],
    pause: Duration,
    after: &str,
    settings: &RunSettings<'_>,
    forks: &Semaphore,
    dialer: &Dialer,
) -> PauseEnd {
    let deadline = Instant::now() + pause;
    let watched: Vec<String> = hosts
        .iter()
        .map(|h| {
            let what: Vec<String> = h
                .released
                .watched
                .iter()
                .map(|w| w.watch.describe())
                .collect();
            format!("{}: {}", h.released.info.name, what.join(", "))
        })
        .collect();
    settings.reporter.pause_started(after, pause, &watched);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        settings.reporter.pause_left(left);
        if settings.interrupted.load(Ordering::SeqCst) {
            return PauseEnd::Interrupted;
        }
        if left.is_zero() {
            settings.reporter.pause_ended(after, hosts.len());
            return PauseEnd::Quiet;
        }
        let round = tokio::select! {
            round = check_round(hosts, forks, dialer) => round,
            () = interrupted(settings) => return PauseEnd::Interrupted,
        };
        let (mut failed, mut lost) = (Vec::new(), Vec::new());
        // Every host found unhealthy is rolled back, also when Ctrl-C comes meanwhile.
        for checked in round {
            match checked {
                Checked::Healthy => {}
                Checked::Failing(host, watched, why) => {
                    let name = host.released.info.name.clone();
                    let task = roll_back(host, watched, &why, after, dialer).await;
                    settings.reporter.task(&name, &task);
                    failed.push((name, task));
                }
                Checked::Lost(name, reason) => {
                    settings.reporter.unreachable(&name, &reason);
                    lost.push((name, reason));
                }
            }
        }
        if !failed.is_empty() || !lost.is_empty() {
            return PauseEnd::Unhealthy { failed, lost };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            () = tokio::time::sleep(left.min(ROUND_EVERY)) => {}
            () = interrupted(settings) => return PauseEnd::Interrupted,
        }
    }
}

/// Resolves once Ctrl-C was pressed.
async fn interrupted(settings: &RunSettings<'_>) {
    while !settings.interrupted.load(Ordering::SeqCst) {
        tokio::time::sleep(INTERRUPT_POLL).await;
    }
}

/// Check every watched host once, `forks` at a time; in the hosts' order.
async fn check_round<'h>(
    hosts: &'h [WatchedHost],
    forks: &Semaphore,
    dialer: &Dialer,
) -> Vec<Checked<'h>> {
    let checks = hosts.iter().map(|host| async move {
        let _permit = forks.acquire().await;
        let info = &host.released.info;
        let lost = |e: crate::transport::TransportError| {
            Checked::Lost(info.name.clone(), redact(&e.to_string(), &info.secrets))
        };
        let transport = match dialer.open(&info.name, &host.connection, true).await {
            Ok(t) => t,
            Err(e) => return lost(e),
        };
        let mut checked = Checked::Healthy;
        for watched in &host.released.watched {
            match watched.watch.check(transport.as_ref()).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    checked = Checked::Failing(host, watched, redact(&why, &info.secrets));
                    break;
                }
                Err(e) => {
                    checked = lost(e);
                    break;
                }
            }
        }
        transport.close().await;
        checked
    });
    futures::future::join_all(checks).await
}

/// Roll `watched` back on `host` under the host lock; the failed task to report.
async fn roll_back(
    host: &WatchedHost,
    watched: &Watched,
    why: &str,
    after: &str,
    dialer: &Dialer,
) -> TaskReport {
    let started = Instant::now();
    let info = &host.released.info;
    let outcome: Result<String, String> = async {
        let transport = dialer
            .open(&info.name, &host.connection, false)
            .await
            .map_err(|e| e.to_string())?;
        let undone = match dialer
            .lock(&host.connection, transport.as_ref(), None)
            .await
        {
            Ok((Taken::Held(_lock), _)) => {
                let mut restarts = RestartBook::default();
                let changed = HashSet::new();
                let ctx = Ctx::new(
                    true,
                    info,
                    transport.as_ref(),
                    watched.run_as.clone(),
                    &mut restarts,
                    &changed,
                );
                watched
                    .watch
                    .roll_back(why, &ctx)
                    .await
                    .map_err(|e: Failure| e.to_string())
            }
            Ok((Taken::Refused(holder), _)) => Err(format!(
                "not rolled back: another converge run holds this host ({holder})"
            )),
            Err(e) => Err(e.to_string()),
        };
        transport.close().await;
        undone
    }
    .await;
    // What was done, or why it could not be: the task fails either way.
    let (Ok(done) | Err(done)) = outcome;
    let message = format!(
        "{} turned unhealthy during the pause after {after}: {why}; {done}",
        watched.watch.describe()
    );
    TaskReport {
        name: format!("watch: {}", watched.task),
        module: watched.module.to_string(),
        item: None,
        status: TaskStatus::Failed,
        diff: None,
        error: Some(redact(&message, &info.secrets)),
        skip_reason: None,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}
