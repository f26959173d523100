//! The watch window of a rollout: while it pauses between batches, the hosts already
//! released keep being checked (each module's [`Watch`]); the first that turns unhealthy
//! is rolled back and stops the rollout. A check holds a connection only while it runs
//! (at most `forks` at once), so a long pause over many hosts holds no connection idle.

use super::{Connection, RunSettings, host_lock};
use crate::module::{Ctx, Failure, HostInfo, RestartBook, Watch};
use crate::report::{TaskReport, TaskStatus, redact};
use crate::transport::Transport;
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
    pub become_root: bool,
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
    /// A host turned unhealthy (and was rolled back, or could not be): the rollout stops.
    Unhealthy { host: String, task: TaskReport },
    /// A watched host could not be reached to check it: the rollout stops.
    Unreachable { host: String, reason: String },
    /// Ctrl-C: nothing was left half-done.
    Interrupted,
}

/// Watch `hosts` for `pause` (`after`: "batch 1/4 of play web", for messages).
pub async fn pause(
    hosts: &[WatchedHost],
    pause: Duration,
    after: &str,
    settings: &RunSettings<'_>,
    forks: &Semaphore,
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
            round = check_round(hosts, forks) => round,
            () = interrupted(settings) => return PauseEnd::Interrupted,
        };
        match round {
            Ok(Some((host, watched, why))) => {
                let task = roll_back(host, watched, &why, after).await;
                settings.reporter.task(&host.released.info.name, &task);
                return PauseEnd::Unhealthy {
                    host: host.released.info.name.clone(),
                    task,
                };
            }
            Ok(None) => {}
            Err((host, reason)) => {
                settings.reporter.unreachable(&host, &reason);
                return PauseEnd::Unreachable { host, reason };
            }
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

/// The first failing check (in inventory order) with why, or the first host that could
/// not be reached.
type Round<'h> = Result<Option<(&'h WatchedHost, &'h Watched, String)>, (String, String)>;

/// Check every watched host once, `forks` at a time.
async fn check_round<'h>(hosts: &'h [WatchedHost], forks: &Semaphore) -> Round<'h> {
    let checks = hosts.iter().map(|host| async move {
        let _permit = forks.acquire().await;
        let name = &host.released.info.name;
        let transport = host.connection.open().await.map_err(|e| {
            (
                name.clone(),
                redact(&e.to_string(), &host.released.info.secrets),
            )
        })?;
        let mut failing = None;
        for watched in &host.released.watched {
            match watched.watch.check(transport.as_ref()).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    failing = Some((host, watched, why));
                    break;
                }
                Err(e) => {
                    transport.close().await;
                    return Err((
                        name.clone(),
                        redact(&e.to_string(), &host.released.info.secrets),
                    ));
                }
            }
        }
        transport.close().await;
        Ok(failing)
    });
    let results = futures::future::join_all(checks).await;
    let mut first = None;
    for result in results {
        match result? {
            Some(failing) if first.is_none() => first = Some(failing),
            _ => {}
        }
    }
    Ok(first)
}

/// Roll `watched` back on `host` under the host lock; the failed task to report.
async fn roll_back(host: &WatchedHost, watched: &Watched, why: &str, after: &str) -> TaskReport {
    let started = Instant::now();
    let info = &host.released.info;
    let outcome: Result<String, String> = async {
        let transport = host.connection.open().await.map_err(|e| e.to_string())?;
        let undone = match host_lock::take(transport.as_ref()).await {
            Ok(host_lock::Taken::Held(_lock)) => {
                let mut restarts = RestartBook::default();
                let changed = HashSet::new();
                let mut ctx = Ctx::new(
                    true,
                    info,
                    transport.as_ref(),
                    watched.become_root,
                    &mut restarts,
                    &changed,
                );
                watched
                    .watch
                    .roll_back(why, &mut ctx)
                    .await
                    .map_err(|e: Failure| e.to_string())
            }
            Ok(host_lock::Taken::Refused(holder)) => Err(format!(
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
