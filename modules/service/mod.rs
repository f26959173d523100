//! `service`: a systemd service started or stopped, enabled or not; restarted or
//! reloaded as a handler, with the restarts of one service merged within a run. A
//! restart with `health` is checked, and when the service is unhealthy the files
//! changed for it in this run are put back, as a release is rolled back.

mod rollback;

use crate::error::InputResult;
use crate::module::http::{CheckParams, HealthCheck};
use crate::module::systemd::{self, UnitState, yes_no};
use crate::module::{
    Action, Command, Diff, Failure, HostView, Module, Params, Plan, Probed, Resource, Resources,
};
use rollback::CheckedRestart;
use serde::Deserialize;

pub struct Service;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceParams {
    name: String,
    state: Option<State>,
    enabled: Option<bool>,
    health: Option<CheckParams>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

impl Module for Service {
    fn name(&self) -> &'static str {
        "service"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("name")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let p: ServiceParams = params.parse()?;
        systemd::check_unit_name(&p.name).map_err(|m| params.error_at("name", m))?;
        if p.state.is_none() && p.enabled.is_none() {
            return Err(params
                .node
                .error("service: give `state`, `enabled` or both")
                .help("state: started|stopped|restarted|reloaded; enabled: true|false"));
        }
        let health = p
            .health
            .map(|h| HealthCheck::prepare(params, &["health"], h))
            .transpose()?;
        if health.is_some() && p.state != Some(State::Restarted) {
            return Err(params
                .error_at("health", "is checked after a restart only")
                .help("give `state: restarted` (a handler), or check with `http_check`"));
        }
        Ok(vec![Box::new(ServiceAction {
            name: p.name,
            state: p.state,
            enabled: p.enabled,
            health,
        })])
    }
}

#[derive(Debug)]
struct ServiceAction {
    name: String,
    state: Option<State>,
    enabled: Option<bool>,
    /// Checked after a restart; an unhealthy service gets this run's files back.
    health: Option<HealthCheck>,
}

impl ServiceAction {
    /// The unit as probed; in check mode a unit an earlier task would create counts as
    /// present, stopped and disabled.
    fn unit(&self, probed: &Probed, host: &HostView<'_>) -> Result<UnitState, Failure> {
        let unit = UnitState::from_probe(probed, "unit").ok_or_else(|| {
            Failure::new(format!(
                "systemctl show {} printed nothing: is systemd running on this host?",
                self.name
            ))
        })?;
        if unit.found() {
            return Ok(unit);
        }
        if host.coming(&Resource::unit(&self.name)) {
            return Ok(UnitState::assumed_new());
        }
        Err(Failure::new(format!(
            "{} not found (create it with systemd_unit, or install its package, first)",
            systemd::unit_file(&self.name)
        )))
    }
}

impl Action for ServiceAction {
    fn resources(&self) -> Resources {
        Resources {
            provides: Vec::new(),
            needs: vec![Resource::unit(&self.name)],
        }
    }

    /// Starting a service may change anything it writes: touches keeps the default.
    fn reads(&self, _found: &Probed) -> Option<Vec<Resource>> {
        Some(systemd::show_reads(&self.name))
    }

    fn restarts(&self) -> Option<&str> {
        (self.state == Some(State::Restarted)).then_some(self.name.as_str())
    }

    fn probe(&self) -> String {
        systemd::show_probe("unit", &self.name)
    }

    fn plan<'a>(&'a self, probed: &'a Probed, host: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let name = self.name.as_str();
        if self.state == Some(State::Restarted)
            && host.restarts.was_restarted(name)
            && !host.restarts.is_pending(name)
        {
            return Ok(Plan::skipped(format!(
                "restart merged: {name} was already restarted in this run after the change"
            )));
        }
        let unit = self.unit(probed, host)?;
        let mut plan = Plan::unchanged();
        let starts = matches!(
            self.state,
            Some(State::Started | State::Restarted | State::Reloaded)
        );
        if let Some(why) = unit.unusable(name)
            && (starts || self.enabled == Some(true))
        {
            return Err(Failure::new(why));
        }

        let mut script = String::new();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let active = unit.is_active();
        if let Some(state) = self.state {
            let (verb, now_active) = match state {
                State::Started if !active => (Some("start"), true),
                // A unit waiting to be restarted by `Restart=` is not stopped yet.
                State::Stopped if !unit.is_stopped() => (Some("stop"), false),
                State::Restarted => (Some("restart"), true),
                State::Reloaded if active => (Some("reload"), true),
                State::Reloaded => (Some("start"), true),
                State::Started | State::Stopped => (None, active),
            };
            if let (Some("restart"), Some(health)) = (verb, &self.health) {
                // Restarted by the follow-up, which must see how the restart went.
                plan.follow_up = Some(Box::new(CheckedRestart {
                    service: name,
                    health,
                }));
                after.push((
                    "health",
                    Some(format!("GET {} after the restart", health.url.text)),
                ));
            } else if let Some(verb) = verb {
                // Reported as running only once it runs, and stays up.
                if now_active {
                    let what = format!("systemctl on {name}");
                    let (started, settle) = systemd::systemctl_until_active(verb, name, what);
                    script.push_str(&started);
                    plan.settle = Some(settle);
                } else {
                    script.push_str(&systemd::systemctl(verb, name));
                }
            }
            // A fresh start or a restart picks up every change made so far.
            if matches!(verb, Some("start" | "restart")) {
                plan.restarted.push(name.to_string());
            }
            before.push(("active", Some(unit.active_text())));
            after.push(("active", Some(yes_no(now_active))));
        }
        if let (Some(want), Some(is)) = (self.enabled, unit.enabled()) {
            if want != is {
                // Enabling first: a unit is never left running but disabled by a failed start.
                let verb = if want { "enable" } else { "disable" };
                script.insert_str(0, &systemd::systemctl(verb, name));
            }
            before.push(("enabled", Some(yes_no(is))));
            after.push(("enabled", Some(yes_no(want))));
        }
        // Restarts and reloads always act (that is what a handler is for), so the
        // status follows the commands, not the diff.
        let diff = Diff::of_metadata(format!("service {name}"), &before, &after);
        if !script.is_empty() {
            let command = Command::new(format!("systemctl on {name}"), format!("set -e\n{script}"));
            plan.change(diff, command);
        } else if plan.follow_up.is_some() {
            plan.diffs.extend(diff);
        } else {
            return Ok(Plan::unchanged());
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests;
