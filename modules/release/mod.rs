//! `release`: a locally built binary deployed at a version as a transaction —
//! upload (only when the checksum differs), switch `current` atomically, restart the
//! service, check its health, and roll back to the previous release when it is unhealthy.

mod layout;
mod state;

use crate::error::InputResult;
use crate::module::files::{self, LocalFile, Source};
use crate::module::http::{CheckParams, HealthCheck, Unhealthy};
use crate::module::systemd::{self, yes_no};
use crate::module::{
    self, Action, Command, Diff, Exec, Failure, FollowUp, HostView, Module, Params, Probed,
    Resource, Resources, Watch, opt_number,
};
use crate::transport::{Transport, TransportError};
use async_trait::async_trait;
use layout::{HostRelease, Layout, Live, Observed, choose_pruned};
use serde::Deserialize;
use state::{Entry, ReleaseState};
use std::sync::Arc;
use std::time::Duration;

pub struct Release;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseParams {
    name: String,
    version: String,
    src: String,
    sha256: Option<String>,
    dest: String,
    /// Default 5.
    #[serde(default, deserialize_with = "opt_number")]
    keep: Option<u32>,
    service: Option<String>,
    health: Option<CheckParams>,
    #[serde(default)]
    force: bool,
}

/// Versions and binary names become folder and file names and state-file words:
/// letters, digits and `._+~@-`, not starting with `.` or `-`.
pub fn check_word(word: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._+~@-".contains(c);
    if word.is_empty() || word.len() > 128 {
        return Err("must have 1 to 128 characters".into());
    }
    if word.starts_with(['.', '-']) || !word.chars().all(allowed) {
        return Err(format!(
            "`{word}` has characters a release folder cannot have (letters, digits and \
             `._+~@-` only, not starting with `.` or `-`)"
        ));
    }
    Ok(())
}

impl Module for Release {
    fn name(&self) -> &'static str {
        "release"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("name")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let p: ReleaseParams = params.parse()?;
        check_word(&p.name).map_err(|m| params.error_at("name", m))?;
        check_word(&p.version).map_err(|m| {
            params
                .error_at("version", m)
                .help("a version like v1.2.0 names the folder DEST/releases/VERSION")
        })?;
        let dest = p.dest.trim_end_matches('/');
        if !p.dest.starts_with('/') || dest.is_empty() {
            return Err(
                params.error_at("dest", "must be an absolute path below /, like /opt/myapp")
            );
        }
        let keep = p.keep.unwrap_or(5);
        if keep < 2 {
            return Err(params
                .error_at("keep", format!("{keep} is too small: keep at least 2"))
                .help("keep counts the live release, and the previous one is always kept for rollback"));
        }
        if let Some(service) = &p.service {
            systemd::check_unit_name(service).map_err(|m| params.error_at("service", m))?;
        }
        let health = p
            .health
            .map(|h| HealthCheck::prepare(params, &["health"], h))
            .transpose()?;
        let local = params.local_path(&p.src);
        let artifact = files::load_local(&local).map_err(|e| {
            params
                .error_at("src", format!("cannot read {}: {e}", local.display()))
                .help("src is the built binary on this machine, relative to the playbook's folder")
        })?;
        if let Some(want) = &p.sha256 {
            let want = want.trim().to_ascii_lowercase();
            if want.len() != 64 || !want.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(params.error_at("sha256", "must be 64 hex digits (sha256sum's output)"));
            }
            if want != artifact.sha256 {
                return Err(params
                    .error_at(
                        "sha256",
                        format!(
                            "does not match {}: its sha256 is {}",
                            local.display(),
                            artifact.sha256
                        ),
                    )
                    .help(
                        "the build is not the one the checksum names: rebuild, or update sha256",
                    ));
            }
        }
        Ok(vec![Box::new(ReleaseAction {
            name: p.name,
            version: p.version,
            dest: dest.to_string(),
            keep: keep as usize,
            service: p.service,
            health,
            force: p.force,
            artifact,
        })])
    }
}

#[derive(Debug, Clone)]
struct ReleaseAction {
    name: String,
    version: String,
    dest: String,
    keep: usize,
    service: Option<String>,
    health: Option<HealthCheck>,
    force: bool,
    /// The build, streamed to each host that needs it.
    artifact: Arc<LocalFile>,
}

/// What this run does, decided from the probe alone (so check mode shows exactly it).
#[derive(Debug)]
struct Plan {
    /// The binary goes up (new version, or new content under `force`).
    upload: bool,
    /// `current` moves to the version.
    switch: bool,
    /// The transaction runs: switch, restart, health check, rollback if unhealthy.
    deploy: bool,
    /// The version is live and unchanged but the service is down: start it.
    start: bool,
    /// The release to switch back to if the new one is unhealthy.
    rollback_to: Option<Entry>,
    /// `previous` in the state file after a rollback.
    previous_after_rollback: Option<Entry>,
    /// Release folders to delete.
    pruned: Vec<String>,
    /// The releases listed before and after, newest first, when the set changes.
    listing: Option<(String, String)>,
}

/// The outcome of a restart and health check: Err holds why it is unhealthy.
type Verdict = Result<(), String>;

impl ReleaseAction {
    fn layout(&self) -> Layout<'_> {
        Layout {
            dest: &self.dest,
            name: &self.name,
        }
    }

    /// Whether the service runs (None without a service). In check mode a unit an
    /// earlier task would create counts as stopped.
    fn service_active(
        &self,
        host: &Observed,
        view: &HostView<'_>,
    ) -> Result<Option<bool>, Failure> {
        let Some(service) = &self.service else {
            return Ok(None);
        };
        let unit = host.unit.as_ref().ok_or_else(|| {
            Failure::new(format!(
                "systemctl show {service} printed nothing: is systemd running on this host?"
            ))
        })?;
        if !unit.found() {
            if view.coming(&Resource::unit(service)) {
                return Ok(Some(false));
            }
            return Err(Failure::new(format!(
                "{} not found: create it (systemd_unit) before the release",
                systemd::unit_file(service)
            )));
        }
        if let Some(why) = unit.unusable(service) {
            return Err(Failure::new(why));
        }
        Ok(Some(unit.is_active()))
    }

    fn decide(&self, host: &Observed, active: Option<bool>) -> Result<Plan, Failure> {
        let (v, sha) = (self.version.as_str(), self.artifact.sha256.as_str());
        if host.live == Live::NotALink {
            return Err(Failure::new(format!(
                "{} exists and is not a symlink: move it away so that release can manage it",
                self.layout().current()
            )));
        }
        let rolled_back = host.state.rolled_back_sha(v);
        if rolled_back == Some(sha) && !self.force {
            return Err(Failure::new(format!(
                "{v} was rolled back on this host after failing its health check: not deploying \
                 the same build again (deploy a new build, or set force: true)"
            )));
        }
        let on_host = host.sha256.as_deref();
        // A rolled-back version may be rebuilt under the same name: that is the fix.
        if on_host.is_some_and(|h| h != sha) && !self.force && rolled_back.is_none() {
            return Err(Failure::new(format!(
                "{v} is already on the host with other content (sha256 {} there, {sha} here): \
                 a released version must not change; bump the version, or set force: true",
                on_host.unwrap_or_default()
            )));
        }
        let live = host.live.version();
        let upload = on_host != Some(sha);
        let switch = live != Some(v);
        let deploying = host.state.deploying.as_ref().map(|e| e.version.as_str());
        // A run that died after the switch left the transaction unfinished: finish it.
        let unverified = !switch && deploying == Some(v);
        let deploy = upload || switch || unverified;
        let start = !deploy && active == Some(false);

        let complete = |version: &str| {
            version != v
                && host
                    .releases
                    .iter()
                    .any(|r| r.version == version && r.complete)
        };
        let known = |version: &str| {
            [&host.state.current, &host.state.previous]
                .into_iter()
                .flatten()
                .find(|e| e.version == version)
                .cloned()
                .unwrap_or_else(|| Entry::new(version, "-"))
        };
        let recorded = [&host.state.current, &host.state.previous]
            .into_iter()
            .flatten()
            .map(|e| e.version.as_str());
        // The release to fall back on: the one live before this run (unless it is itself
        // an unverified deploy), else the last verified ones on record.
        let rollback_to = live
            .filter(|l| Some(*l) != deploying)
            .into_iter()
            .chain(recorded.clone())
            .find(|c| complete(c))
            .map(known);
        let previous_after_rollback = recorded
            .clone()
            .find(|c| complete(c) && Some(*c) != rollback_to.as_ref().map(|e| e.version.as_str()))
            .map(known);
        let previous = if deploy {
            rollback_to.clone()
        } else {
            recorded.clone().find(|c| complete(c)).map(known)
        };

        let mut after: Vec<HostRelease> = host.releases.clone();
        if deploy {
            // The switch touches the folder: it becomes the newest.
            after.retain(|r| r.version != v);
            after.push(HostRelease {
                version: v.to_string(),
                mtime: (i64::MAX, 0),
                complete: true,
            });
        }
        let protected: Vec<&str> = [Some(v), previous.as_ref().map(|e| e.version.as_str())]
            .into_iter()
            .flatten()
            .collect();
        let pruned = choose_pruned(&after, self.keep, &protected);
        let listing = listing(&host.releases, v, deploy, &pruned);
        Ok(Plan {
            upload,
            switch,
            deploy,
            start,
            rollback_to,
            previous_after_rollback,
            pruned,
            listing,
        })
    }

    fn diffs(&self, host: &Observed, plan: &Plan, active: Option<bool>) -> Vec<Diff> {
        let layout = self.layout();
        let v = &self.version;
        let mut diffs = Vec::new();
        let live = match &host.live {
            Live::Version(l) => Some(format!("version: {l}\n")),
            Live::Elsewhere(target) => Some(format!("link: {target}\n")),
            Live::Absent | Live::NotALink => None,
        };
        if plan.switch {
            diffs.push(Diff::new(
                layout.current(),
                live,
                Some(format!("version: {v}\n")),
            ));
        } else if plan.deploy && !plan.upload {
            diffs.push(Diff::new(
                layout.current(),
                Some(format!(
                    "version: {v} (not verified: its deploy was interrupted)\n"
                )),
                Some(format!("version: {v}\n")),
            ));
        }
        if plan.upload {
            diffs.push(Diff::new(
                layout.binary(v),
                host.sha256.as_ref().map(|s| format!("sha256: {s}\n")),
                Some(format!("sha256: {}\n", self.artifact.sha256)),
            ));
        }
        if let Some((before, after)) = &plan.listing {
            diffs.push(Diff::new(
                layout.releases(),
                Some(before.clone()),
                Some(after.clone()),
            ));
        }
        if let (Some(service), Some(false)) = (&self.service, active)
            && (plan.deploy || plan.start)
        {
            diffs.extend(Diff::of_metadata(
                format!("service {service}"),
                &[("active", Some(yes_no(false)))],
                &[("active", Some(yes_no(true)))],
            ));
        }
        diffs
    }

    /// Restart the service (which starts a stopped one) and check its health.
    async fn restart_and_check(&self, host: &dyn Exec) -> Result<Verdict, Failure> {
        match &self.service {
            Some(service) => systemd::restart_checked(host, service, self.health.as_ref()).await,
            None => self.check_health(host).await,
        }
    }

    async fn check_health(&self, host: &dyn Exec) -> Result<Verdict, Failure> {
        match &self.health {
            Some(health) => health.verdict(host).await,
            None => Ok(Ok(())),
        }
    }

    /// Upload, switch, restart, check; roll back when unhealthy.
    async fn transaction(
        &self,
        host: &Observed,
        plan: &Plan,
        exec: &dyn Exec,
    ) -> Result<(), Failure> {
        let layout = self.layout();
        let (v, sha) = (&self.version, &self.artifact.sha256);
        let this = Entry::new(v, sha);

        // Recorded before the switch, so a run that dies after it finishes the job.
        let mut state = host.state.clone();
        state.deploying = Some(this.clone());
        let mut script = String::new();
        if plan.upload {
            script.push_str(&layout.upload_script(v, &self.artifact));
        }
        script.push_str(&layout.state_script(&state));
        if plan.switch {
            script.push_str(&layout.switch_script(v));
        }
        let mut deploy = Command::new(format!("deploying {v}"), script);
        if plan.upload {
            deploy = deploy.with_stdin(Source::Local(&self.artifact));
        }
        exec.run(deploy).await?;

        let reason = match self.restart_and_check(exec).await? {
            Ok(()) => {
                state.deploying = None;
                state.current = Some(this);
                state.previous = plan.rollback_to.clone();
                state.forget_rolled_back(v);
                let script = format!(
                    "set -e\n{}{}",
                    layout.state_script(&state),
                    layout.prune_script(&plan.pruned)
                );
                exec.run(Command::new(format!("recording {v}"), script))
                    .await?;
                return Ok(());
            }
            Err(reason) => reason,
        };

        state.deploying = None;
        let Some(target) = &plan.rollback_to else {
            // Nothing to go back to: the new release stays, as the only one there is.
            state.current = Some(this);
            state.previous = None;
            exec.run(Command::new(
                format!("recording {v}"),
                layout.state_script(&state),
            ))
            .await?;
            return Err(Failure::new(format!(
                "{v} unhealthy: {reason}; no previous release to roll back to, so {v} stays live"
            )));
        };
        let done = self
            .switch_back(state, target, plan.previous_after_rollback.clone(), exec)
            .await?;
        Err(Failure::new(format!("{v} unhealthy: {reason}; {done}")))
    }

    /// Switch back to `target`, recording this build as rolled back, restart and check
    /// again: `rolled back to v1` (`, which is unhealthy too: ...`).
    async fn switch_back(
        &self,
        mut state: ReleaseState,
        target: &Entry,
        previous: Option<Entry>,
        exec: &dyn Exec,
    ) -> Result<String, Failure> {
        let layout = self.layout();
        // Recorded with the switch back, before the restart: a run that dies during the
        // restart still knows that this build was rolled back and must not be deployed again.
        state.current = Some(target.clone());
        state.previous = previous;
        state.record_rolled_back(Entry::new(&self.version, &self.artifact.sha256));
        exec.run(Command::new(
            format!("rolling back to {}", target.version),
            format!(
                "set -e\n{}{}",
                layout.state_script(&state),
                layout.switch_script(&target.version)
            ),
        ))
        .await?;
        let again = self.restart_and_check(exec).await?;
        let mut done = format!("rolled back to {}", target.version);
        if let Err(also) = again {
            done.push_str(&format!(", which is unhealthy too: {also}"));
        }
        Ok(done)
    }
}

/// How long a watched release may stay unhealthy before it is rolled back: a restart
/// by systemd or a slow answer is not a failure yet.
const WATCH_GRACE: Duration = Duration::from_secs(3);

/// A deployed release with a health check stays watched while a rollout pauses.
#[async_trait]
impl Watch for ReleaseAction {
    fn describe(&self) -> String {
        let url = self.health.as_ref().map_or("", |h| h.url.text.as_str());
        format!("release {} {} (GET {url})", self.name, self.version)
    }

    async fn check(&self, transport: &dyn Transport) -> Result<Result<(), String>, TransportError> {
        let Some(health) = &self.health else {
            return Ok(Ok(()));
        };
        let once = HealthCheck {
            timeout: WATCH_GRACE.min(health.timeout),
            ..health.clone()
        };
        match once.wait(transport).await {
            Ok(()) => Ok(Ok(())),
            Err(Unhealthy::Failed(reason)) => Ok(Err(reason)),
            Err(Unhealthy::Connection(e)) => Err(e),
        }
    }

    /// Back to the release live before this one, as the transaction does when its own
    /// check fails; only while this build is still the live one.
    async fn roll_back(&self, why: &str, exec: &dyn Exec) -> Result<String, Failure> {
        let read = Command::new(format!("reading release {}", self.version), self.probe())
            .judged_by(|_| Ok(()));
        let out = exec.run(read).await?;
        let host = self.layout().parse(&Probed {
            stdout: out.stdout_text(),
            status: out.status,
        });
        let v = &self.version;
        let this = Entry::new(v, &self.artifact.sha256);
        if host.state.current.as_ref() != Some(&this) || host.live.version() != Some(v.as_str()) {
            return Err(Failure::new(format!(
                "{v} turned unhealthy ({why}) but is no longer the live release: nothing rolled back"
            )));
        }
        let complete = |e: &&Entry| {
            host.releases
                .iter()
                .any(|r| r.version == e.version && r.complete)
        };
        let Some(target) = host.state.previous.as_ref().filter(complete) else {
            return Err(Failure::new(format!(
                "{v} turned unhealthy: {why}; no previous release to roll back to, so {v} stays live"
            )));
        };
        self.switch_back(host.state.clone(), target, None, exec)
            .await
    }
}

/// The release folders, newest first, before and after; None when the set stays.
fn listing(
    releases: &[HostRelease],
    version: &str,
    deploy: bool,
    pruned: &[String],
) -> Option<(String, String)> {
    let mut newest_first: Vec<&HostRelease> = releases.iter().collect();
    newest_first.sort_by(|a, b| {
        b.mtime
            .cmp(&a.mtime)
            .then_with(|| b.version.cmp(&a.version))
    });
    let before: Vec<&str> = newest_first.iter().map(|r| r.version.as_str()).collect();
    let added = deploy && !before.contains(&version);
    if !added && pruned.is_empty() {
        return None;
    }
    let lines = |list: &[&str]| list.iter().map(|v| format!("{v}\n")).collect::<String>();
    let mut after: Vec<&str> = if added { vec![version] } else { Vec::new() };
    after.extend(before.iter().filter(|v| !pruned.iter().any(|p| p == *v)));
    Some((lines(&before), lines(&after)))
}

impl Action for ReleaseAction {
    fn resources(&self) -> Resources {
        let layout = self.layout();
        let mut needs = vec![
            Resource::Path(layout.binary(&self.version)),
            Resource::Path(layout.current()),
        ];
        needs.extend(self.service.as_deref().map(Resource::unit));
        Resources {
            provides: Vec::new(),
            needs,
        }
    }

    fn restarts(&self) -> Option<&str> {
        self.service.as_deref()
    }

    fn probe(&self) -> String {
        self.layout().probe(&self.version, self.service.as_deref())
    }

    fn watch(&self) -> Option<Box<dyn Watch>> {
        self.health
            .is_some()
            .then(|| Box::new(self.clone()) as Box<dyn Watch>)
    }

    fn plan<'a>(
        &'a self,
        probed: &'a Probed,
        view: &HostView<'_>,
    ) -> Result<module::Plan<'a>, Failure> {
        let host = self.layout().parse(probed);
        let active = self.service_active(&host, view)?;
        let plan = self.decide(&host, active)?;
        let diffs = self.diffs(&host, &plan, active);
        if diffs.is_empty() {
            return Ok(module::Plan::unchanged());
        }
        // The restart or start picks up every change made so far.
        let restarted = match &self.service {
            Some(service) if plan.deploy || plan.start => vec![service.clone()],
            _ => Vec::new(),
        };
        Ok(module::Plan {
            diffs,
            follow_up: Some(Box::new(Transaction {
                action: self,
                host,
                plan,
            })),
            restarted,
            ..module::Plan::unchanged()
        })
    }
}

/// The release's steps, each depending on how the one before went: the engine runs
/// them only when applying.
struct Transaction<'a> {
    action: &'a ReleaseAction,
    host: Observed,
    plan: Plan,
}

#[async_trait]
impl FollowUp for Transaction<'_> {
    fn left_out(&self) -> String {
        format!("release {}", self.action.version)
    }

    async fn run(&self, exec: &dyn Exec) -> Result<(), Failure> {
        let (action, plan) = (self.action, &self.plan);
        if plan.deploy {
            return action.transaction(&self.host, plan, exec).await;
        }
        let mut script = action.layout().prune_script(&plan.pruned);
        if let (Some(service), true) = (&action.service, plan.start) {
            script.push_str(&systemd::systemctl_until_running("start", service));
        }
        exec.run(Command::new(
            format!("release {}", action.version),
            format!("set -e\n{script}"),
        ))
        .await?;
        if plan.start
            && let Err(reason) = action.check_health(exec).await?
        {
            return Err(Failure::new(format!(
                "{} started, but {} is unhealthy: {reason}",
                action.service.as_deref().unwrap_or_default(),
                action.version
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
