//! `systemd_unit`: a service unit at /etc/systemd/system/NAME.service, rendered from
//! parameters (`unit.hbs`), given as `content` or rendered from a local `template`;
//! verified with `systemd-analyze verify` before it is installed, daemon-reloaded only
//! when it changed, and enabled / started or stopped like `service`.

mod verify;

use crate::error::{InputError, InputResult};
use crate::module::files::{self, DesiredFile, FileState, Kind};
use crate::module::systemd::{self, UnitState, yes_no};
use crate::module::{
    Account, Action, Command, Diff, Failure, HostView, Module, Params, Plan, Probed, Resource,
    Resources, one_or_many,
};
use crate::node::PathStep;
use crate::playbook::template::engine;
use crate::quote::quote;
use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

pub struct SystemdUnit;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitParams {
    name: String,
    description: Option<String>,
    #[serde(default, deserialize_with = "some_one_or_many")]
    after: Option<Vec<String>>,
    #[serde(default, deserialize_with = "some_one_or_many")]
    wants: Option<Vec<String>>,
    #[serde(rename = "type")]
    kind: Option<String>,
    user: Option<Account>,
    group: Option<Account>,
    working_directory: Option<String>,
    exec_start: Option<String>,
    exec_reload: Option<String>,
    restart: Option<String>,
    restart_sec: Option<Scalar>,
    environment: Option<IndexMap<String, Scalar>>,
    environment_file: Option<String>,
    limit_nofile: Option<Scalar>,
    #[serde(default, deserialize_with = "some_one_or_many")]
    wanted_by: Option<Vec<String>>,
    standard_output: Option<String>,
    standard_error: Option<String>,
    content: Option<String>,
    template: Option<String>,
    enabled: Option<bool>,
    state: Option<State>,
}

fn some_one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    one_or_many(d).map(Some)
}

/// A value written as a string or a number (`PORT: "{{port}}"` renders to a number).
#[derive(Debug, Clone)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Scalar(s)),
            Value::Number(n) => Ok(Scalar(n.to_string())),
            Value::Bool(b) => Ok(Scalar(b.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a string or a number, found {other}"
            ))),
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum State {
    Started,
    Stopped,
}

const TYPES: &[&str] = &[
    "simple",
    "exec",
    "forking",
    "oneshot",
    "dbus",
    "notify",
    "notify-reload",
    "idle",
];
const RESTARTS: &[&str] = &[
    "no",
    "always",
    "on-success",
    "on-failure",
    "on-abnormal",
    "on-abort",
    "on-watchdog",
];

impl Module for SystemdUnit {
    fn name(&self) -> &'static str {
        "systemd_unit"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("name")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let p: UnitParams = params.parse()?;
        let name = p.name.trim_end_matches(".service").to_string();
        systemd::check_unit_name(&name).map_err(|m| {
            params
                .error_at("name", m)
                .help("e.g. `myapp` for myapp.service")
        })?;
        let content = unit_text(&p, &name, params)?;
        Ok(vec![Box::new(UnitAction {
            exec_start: verify::exec_start_binaries(&content),
            path: format!("/etc/systemd/system/{name}.service"),
            unit: format!("{name}.service"),
            content,
            user: p.user.map(String::from),
            group: p.group.map(String::from),
            enabled: p.enabled,
            state: p.state,
        })])
    }
}

/// A secret in `environment` would sit in a world-readable unit file (and in
/// `systemctl show`): refused, on the key that holds it.
fn secret_in_environment(params: &Params<'_>, key: &str) -> InputError {
    let environment = params.node.find(&[PathStep::Key("environment".into())]);
    let at = environment
        .key_node(key)
        .or_else(|| params.node.key_node("environment"))
        .unwrap_or(params.node);
    at.error(format!(
        "systemd_unit: `environment.{key}` holds a secret, and a unit file is world-readable"
    ))
    .label("a secret")
    .help(format!(
        "write `{key}=...` into a file only root can read (a `template` or `file` task with \
         mode \"0600\") and name it in `environment_file:`"
    ))
}

/// The unit file's text, from `content`, `template` or the parameters.
fn unit_text(p: &UnitParams, name: &str, params: &Params<'_>) -> InputResult<String> {
    let rendering = [
        ("description", p.description.is_some()),
        ("after", p.after.is_some()),
        ("wants", p.wants.is_some()),
        ("type", p.kind.is_some()),
        ("user", p.user.is_some()),
        ("group", p.group.is_some()),
        ("working_directory", p.working_directory.is_some()),
        ("exec_start", p.exec_start.is_some()),
        ("exec_reload", p.exec_reload.is_some()),
        ("restart", p.restart.is_some()),
        ("restart_sec", p.restart_sec.is_some()),
        ("environment", p.environment.is_some()),
        ("environment_file", p.environment_file.is_some()),
        ("limit_nofile", p.limit_nofile.is_some()),
        ("wanted_by", p.wanted_by.is_some()),
        ("standard_output", p.standard_output.is_some()),
        ("standard_error", p.standard_error.is_some()),
    ];
    let given = if p.content.is_some() {
        Some("content")
    } else if p.template.is_some() {
        Some("template")
    } else {
        None
    };
    if let Some(given) = given {
        if p.content.is_some() && p.template.is_some() {
            return Err(params.error_at("template", "give either content or template, not both"));
        }
        if let Some((key, _)) = rendering.iter().find(|(_, set)| *set) {
            return Err(params
                .error_at(key, format!("`{key}` is part of the unit; with `{given}` write it there"))
                .help("`content` and `template` are the whole unit file; the other parameters build one"));
        }
    }
    if let Some(content) = &p.content {
        return Ok(content.clone());
    }
    if let Some(template) = &p.template {
        let local = params.local_path(template);
        let text = std::fs::read_to_string(&local).map_err(|e| {
            params
                .error_at("template", format!("cannot read {}: {e}", local.display()))
                .help("template is a file on this machine, relative to the playbook's folder")
        })?;
        return engine()
            .render_text(&text, params.vars)
            .map_err(|e| params.error_at("template", format!("{}: {e}", local.display())));
    }
    render(p, name, params)
}

fn render(p: &UnitParams, name: &str, params: &Params<'_>) -> InputResult<String> {
    let Some(exec_start) = &p.exec_start else {
        return Err(params
            .error_at("name", "missing parameter `exec_start`")
            .help("exec_start is the command line of the service; or give the whole unit as content or template"));
    };
    let kind = p.kind.as_deref().unwrap_or("simple");
    if !TYPES.contains(&kind) {
        return Err(params
            .error_at("type", format!("`{kind}` is not a service type"))
            .help(format!("one of {}", TYPES.join(", "))));
    }
    let restart = p.restart.as_deref().unwrap_or("on-failure");
    if !RESTARTS.contains(&restart) {
        return Err(params
            .error_at("restart", format!("`{restart}` is not a restart policy"))
            .help(format!("one of {}", RESTARTS.join(", "))));
    }
    // A newline would start a directive of its own: none of these may hold one.
    let single_line: [(&str, Option<&str>); 13] = [
        ("description", p.description.as_deref()),
        ("user", p.user.as_deref()),
        ("group", p.group.as_deref()),
        ("working_directory", p.working_directory.as_deref()),
        ("exec_start", Some(exec_start)),
        ("exec_reload", p.exec_reload.as_deref()),
        ("restart_sec", p.restart_sec.as_ref().map(|s| s.0.as_str())),
        ("environment_file", p.environment_file.as_deref()),
        (
            "limit_nofile",
            p.limit_nofile.as_ref().map(|s| s.0.as_str()),
        ),
        ("standard_output", p.standard_output.as_deref()),
        ("standard_error", p.standard_error.as_deref()),
        ("type", Some(kind)),
        ("restart", Some(restart)),
    ];
    for (key, value) in single_line {
        if value.is_some_and(|v| v.contains(['\n', '\r'])) {
            return Err(params.error_at(key, "must be one line"));
        }
        // systemd drops the spaces around a value: it would not be what was written.
        if value.is_some_and(|v| v.trim() != v) {
            return Err(params
                .error_at(
                    key,
                    "has spaces at its start or end, which systemd would drop",
                )
                .help("remove them, or write the value without them"));
        }
    }
    for (key, list) in [
        ("after", &p.after),
        ("wants", &p.wants),
        ("wanted_by", &p.wanted_by),
    ] {
        if let Some(Err(m)) = list
            .iter()
            .flatten()
            .map(|u| systemd::check_unit_name(u))
            .find(Result::is_err)
        {
            return Err(params.error_at(key, m));
        }
    }
    let mut environment = Vec::new();
    for (key, Scalar(value)) in p.environment.iter().flatten() {
        if params.taint.holds_at(params.node, &["environment", key]) {
            return Err(secret_in_environment(params, key));
        }
        let valid_key = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err(params.error_at(
                "environment",
                format!("`{key}` is not an environment variable name"),
            ));
        }
        if value.contains(['\n', '\r']) {
            return Err(params.error_at("environment", format!("`{key}` must be one line")));
        }
        environment.push(format!("\"{key}={}\"", escape_env(value)));
    }
    let ctx = json!({
        "description": p.description.as_deref().unwrap_or(name).replace('%', "%%"),
        "after": p.after.clone().unwrap_or_else(|| vec!["network.target".into()]),
        "wants": p.wants.clone().unwrap_or_default(),
        "type": kind,
        "user": p.user,
        "group": p.group,
        "working_directory": p.working_directory,
        "environment": environment,
        "environment_file": p.environment_file,
        "exec_start": exec_start,
        "exec_reload": p.exec_reload,
        "restart": restart,
        "restart_sec": p.restart_sec.as_ref().map(|s| &s.0),
        "limit_nofile": p.limit_nofile.as_ref().map(|s| &s.0),
        "standard_output": p.standard_output,
        "standard_error": p.standard_error,
        "wanted_by": p.wanted_by.clone().unwrap_or_else(|| vec!["multi-user.target".into()]),
    });
    engine()
        .render_text(include_str!("unit.hbs"), &ctx)
        .map_err(|e| params.error_at("name", format!("rendering unit.hbs: {e}")))
}

/// A value inside `Environment="K=V"`: systemd unquotes C-style and expands `%` specifiers
/// (as in `Description=`, where only `%` needs escaping).
fn escape_env(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
}

#[derive(Debug)]
struct UnitAction {
    unit: String,
    path: String,
    content: String,
    /// Absolute `ExecStart=` binaries: absent ones are deployed later by a `release`.
    exec_start: Vec<String>,
    user: Option<String>,
    group: Option<String>,
    enabled: Option<bool>,
    state: Option<State>,
}

impl UnitAction {
    /// `systemd-analyze verify` on the candidate; a unit it names that an earlier task
    /// creates (check mode) is excused.
    fn verify<'a>(&'a self, host: &HostView<'_>) -> Command<'a> {
        let coming = host.coming_resources();
        let command = verify::COMMAND;
        files::check_candidate(&self.unit, self.content.as_bytes(), command, move |check| {
            verify::verdict(
                &self.unit,
                &check.path,
                &self.path,
                check.output.status,
                &check.output.stderr_text(),
                &self.exec_start,
                |unit| coming.iter().any(|r| r.satisfies(&Resource::unit(unit))),
            )
        })
    }

    /// Start or stop as `state` says: the commands into `plan`, and the `active:`
    /// change, if any.
    fn plan_state<'a>(
        &'a self,
        unit: &UnitState,
        reloaded: bool,
        plan: &mut Plan<'a>,
    ) -> Option<(String, String)> {
        match self.state {
            Some(State::Started) if !unit.is_active() => {
                let what = format!("starting {}", self.unit);
                let (script, settle) =
                    systemd::systemctl_until_active("start", &self.unit, what.clone());
                plan.changes.push(Command::new(what, script));
                plan.settle = Some(settle);
                // A fresh start runs the new unit: pending restarts are folded in.
                plan.restarted.push(self.unit.clone());
                Some((unit.active_text(), yes_no(true)))
            }
            // A unit waiting to be restarted by `Restart=` is not stopped yet.
            Some(State::Stopped) if !unit.is_stopped() => {
                plan.changes.push(Command::new(
                    format!("stopping {}", self.unit),
                    systemd::systemctl("stop", &self.unit),
                ));
                Some((unit.active_text(), yes_no(false)))
            }
            _ => {
                if !unit.is_stopped() && reloaded {
                    // The running service still runs the old unit: one merged restart picks it up.
                    plan.restart_requests.push(self.unit.clone());
                }
                None
            }
        }
    }

    /// The first `ExecStart=` binary that is not on the host, as the probe saw it.
    fn missing_binary(&self, probed: &Probed) -> Option<&str> {
        self.exec_start
            .iter()
            .enumerate()
            .find(|(i, _)| probed.field(&format!("bin.{i}")).as_deref() == Some("no"))
            .map(|(_, b)| b.as_str())
    }
}

impl Action for UnitAction {
    /// A running service still runs the old unit until it restarts.
    fn owes_restart(&self) -> Option<&str> {
        Some(&self.unit)
    }

    fn resources(&self) -> Resources {
        let mut r = Resources::for_path(&self.path, self.user.as_deref(), self.group.as_deref());
        r.provides.push(Resource::unit(&self.unit));
        r
    }

    fn reads(&self, _found: &Probed) -> Option<Vec<Resource>> {
        let mut reads = systemd::show_reads(&self.unit);
        reads.push(Resource::Path(self.path.clone()));
        reads.extend(self.exec_start.iter().map(|b| Resource::Path(b.clone())));
        Some(reads)
    }

    /// A daemon-reload changes nothing a probe of another unit reads but its
    /// `NeedDaemonReload`, which that probe's reads of the unit directories cover.
    fn touches(&self) -> Option<Vec<Resource>> {
        Some(vec![
            Resource::Path(self.path.clone()),
            Resource::unit(&self.unit),
        ])
    }

    fn probe(&self) -> String {
        let mut s = files::probe("unit", &self.path, files::Read::Content);
        s.push_str(&systemd::show_probe("svc", &self.unit));
        for (i, bin) in self.exec_start.iter().enumerate() {
            s.push_str(&format!(
                "if [ -e {} ]; then echo bin.{i}=yes; else echo bin.{i}=no; fi\n",
                quote(bin)
            ));
        }
        s
    }

    fn plan<'a>(&'a self, probed: &'a Probed, host: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let file = FileState::from_probe(probed, "unit");
        if file.kind == Kind::Dir {
            return Err(Failure::new(format!("{} is a directory", self.path)));
        }
        let systemd = UnitState::from_probe(probed, "svc");
        if systemd.is_none() && (self.enabled.is_some() || self.state.is_some()) {
            return Err(Failure::new(
                "the host does not run systemd: cannot enable, start or stop the unit",
            ));
        }
        let desired = DesiredFile::system_config(&self.path, self.content.as_bytes(), host);
        let mut plan = Plan::with_diffs(files::diff(&file, &desired));
        let content_changed = desired.content_differs(&file);
        // A unit systemd does not know yet, or whose mask (a link to /dev/null at this
        // path) the new file replaces, is the one this task installs.
        let unit = systemd
            .clone()
            .filter(|u| u.found() && !(content_changed && u.masked()))
            .unwrap_or_else(UnitState::assumed_new);
        // What systemd loaded is what this task replaces when the file changes.
        if !content_changed
            && (self.enabled == Some(true) || self.state == Some(State::Started))
            && let Some(why) = unit.unusable(&self.unit)
        {
            return Err(Failure::new(why));
        }
        if content_changed {
            plan.checks.push(self.verify(host));
        }
        if !plan.diffs.is_empty() {
            files::replace(&mut plan, &file, &desired);
        }
        // A stale unit (a run that died before its daemon-reload) is reloaded too. A unit
        // systemd has not loaded needs no daemon-reload (a reparse of every unit, ~120 ms of
        // a host's CPU): systemd 246+ loads a new unit file when it is first named.
        let reload = systemd.is_some() && (content_changed || unit.need_reload);
        let load_only = reload && systemd.as_ref().is_some_and(|u| !u.found());

        let mut before: Vec<(&str, Option<String>)> = Vec::new();
        let mut after: Vec<(&str, Option<String>)> = Vec::new();
        if unit.need_reload && !content_changed {
            before.push(("daemon-reload", Some("needed".into())));
        }
        // Static and generated units have no install section to switch: left as they are.
        if let (Some(want), Some(is)) = (self.enabled, unit.enabled()) {
            before.push(("enabled", Some(yes_no(is))));
            after.push(("enabled", Some(yes_no(want))));
            if is != want {
                let verb = if want { "enable" } else { "disable" };
                // enable reads the file itself; the load or daemon-reload below then takes
                // both in (systemctl's own daemon-reload would cost systemd another reparse).
                let how = if reload {
                    format!("{verb} --no-reload")
                } else {
                    verb.to_string()
                };
                plan.changes.push(Command::new(
                    format!("{verb} {}", self.unit),
                    systemd::systemctl(&how, &self.unit),
                ));
            }
        }
        if load_only {
            plan.changes.push(Command::new(
                format!("loading {}", self.unit),
                systemd::load_new_unit(&self.unit),
            ));
        } else if reload {
            plan.changes.push(Command::new(
                "systemctl daemon-reload",
                "systemctl daemon-reload",
            ));
        }
        if self.state == Some(State::Started)
            && !unit.is_active()
            && let Some(bin) = self.missing_binary(probed)
        {
            let reason = format!(
                "start skipped: {bin} does not exist yet; the release that deploys it starts the service"
            );
            // Nothing but the start left to the release: no change to report on each run.
            if plan.diffs.is_empty() && Diff::of_metadata("", &before, &after).is_none() {
                return Ok(Plan::skipped(reason));
            }
            before.push(("active", Some(unit.active_text())));
            after.push(("active", Some(format!("no ({reason})"))));
        } else if let Some((was, will)) = self.plan_state(&unit, reload, &mut plan) {
            before.push(("active", Some(was)));
            after.push(("active", Some(will)));
        }
        plan.diffs
            .extend(Diff::of_metadata(self.unit.clone(), &before, &after));
        Ok(plan)
    }
}

#[cfg(test)]
mod tests;
