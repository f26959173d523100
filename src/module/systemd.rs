//! systemd units as modules see them: one `systemctl show` in the probe, one state type,
//! the unit-name rule, and the `systemctl` lines that change a unit. Used by `service`,
//! `release` and `systemd_unit`.

use super::http::HealthCheck;
use super::plan::Settle;
use super::{Command, Exec, Failure, Probed};
use crate::module::Resource;
use crate::quote::quote;
use crate::transport::ExecOutput;

/// The properties every unit probe reads.
const PROPERTIES: &str = "ActiveState,UnitFileState,LoadState,MainPID,NeedDaemonReload";

/// A probe snippet printing the unit's state as `TAG.Property=value` lines; nothing on a
/// host without a running systemd (systemctl cannot answer there). The shell prefixes the
/// lines itself: a forked loop costs the host less than starting sed.
pub fn show_probe(tag: &str, unit: &str) -> String {
    format!(
        "systemctl show -p {PROPERTIES} -- {} 2>/dev/null | while IFS= read -r l; do echo \"{tag}.$l\"; done\n",
        quote(unit)
    )
}

/// What `systemctl show` of `unit` reads: the unit, and the unit files, which any change
/// of (before a daemon-reload) shows in `NeedDaemonReload`.
pub fn show_reads(unit: &str) -> Vec<Resource> {
    let mut reads = vec![Resource::unit(unit)];
    reads.extend(UNIT_DIRS.map(|d| Resource::Dir(d.to_string())));
    reads
}

/// Where systemd reads unit files from.
const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd",
    "/run/systemd",
    "/lib/systemd",
    "/usr/lib/systemd",
];

/// What `systemctl show` said about a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// `loaded`, `not-found`, `masked`, `error`, `bad-setting`.
    pub load: String,
    /// `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`.
    pub active: String,
    /// `enabled`, `disabled`, `static`, `masked`, ... or empty for a unit without a file.
    pub file_state: String,
    pub main_pid: u32,
    /// The unit file changed on disk since systemd read it.
    pub need_reload: bool,
}

impl UnitState {
    /// The state [`show_probe`] printed under `tag`; None when systemctl printed
    /// nothing (no systemd running on the host).
    pub fn from_probe(probed: &Probed, tag: &str) -> Option<UnitState> {
        let fields = probed.fields();
        let text = |k: &str| {
            fields
                .get(&format!("{tag}.{k}"))
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
        };
        Some(UnitState {
            load: text("LoadState")?,
            active: text("ActiveState").unwrap_or_default(),
            file_state: text("UnitFileState").unwrap_or_default(),
            main_pid: text("MainPID").and_then(|p| p.parse().ok()).unwrap_or(0),
            need_reload: text("NeedDaemonReload").as_deref() == Some("yes"),
        })
    }

    /// The state of a unit not installed yet, once it is: by an earlier task in this
    /// (check mode) run, or by the task itself.
    pub fn assumed_new() -> UnitState {
        UnitState {
            load: "loaded".into(),
            active: "inactive".into(),
            file_state: "disabled".into(),
            main_pid: 0,
            need_reload: false,
        }
    }

    pub fn found(&self) -> bool {
        self.load != "not-found"
    }

    pub fn masked(&self) -> bool {
        self.load == "masked" || self.file_state.starts_with("masked")
    }

    /// A unit file systemd could not load (`error`, `bad-setting`).
    pub fn broken(&self) -> bool {
        self.found() && !self.masked() && self.load != "loaded"
    }

    /// Running (or reloading). `activating` is not: a crash-looping service sits in
    /// `activating (auto-restart)` and must not pass for started.
    pub fn is_active(&self) -> bool {
        matches!(self.active.as_str(), "active" | "reloading")
    }

    /// Nothing runs and nothing is about to: `activating` is not stopped either, since
    /// `Restart=` brings a unit waiting in `auto-restart` back by itself.
    pub fn is_stopped(&self) -> bool {
        matches!(self.active.as_str(), "inactive" | "failed")
    }

    /// The `active:` line of a state diff: yes, no, or what systemd says in between
    /// (`activating`, `deactivating`).
    pub fn active_text(&self) -> String {
        if self.is_active() {
            yes_no(true)
        } else if self.is_stopped() {
            yes_no(false)
        } else {
            self.active.clone()
        }
    }

    /// Some(enabled) for a unit `systemctl enable/disable` can switch; None for static,
    /// indirect, generated or transient units, which have no install section to switch.
    /// `enabled-runtime` (in /run only) counts as disabled: enabling makes it persistent.
    pub fn enabled(&self) -> Option<bool> {
        match self.file_state.as_str() {
            "enabled" | "alias" | "linked" => Some(true),
            "disabled" | "enabled-runtime" | "linked-runtime" => Some(false),
            _ => None,
        }
    }

    /// Why the unit cannot be managed at all, if it cannot.
    pub fn unusable(&self, unit: &str) -> Option<String> {
        if self.masked() {
            Some(format!(
                "{} is masked (systemctl unmask {} to use it)",
                unit_file(unit),
                quote(unit)
            ))
        } else if self.broken() {
            Some(format!(
                "{} cannot be loaded (LoadState={}); see systemctl status {}",
                unit_file(unit),
                self.load,
                quote(unit)
            ))
        } else {
            None
        }
    }
}

/// `yes` / `no`, as state diffs show booleans.
pub fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// The unit's file name: a bare name means a `.service`.
pub fn unit_file(unit: &str) -> String {
    const TYPES: &[&str] = &[
        "service",
        "socket",
        "target",
        "timer",
        "mount",
        "automount",
        "path",
        "slice",
        "scope",
        "device",
        "swap",
    ];
    match unit.rsplit_once('.') {
        Some((_, suffix)) if TYPES.contains(&suffix) => unit.to_string(),
        _ => format!("{unit}.service"),
    }
}

/// Whether `name` is a unit name systemd accepts (`[A-Za-z0-9:_.@\-]`, no leading
/// `-` or `.`): an error message when it is not.
pub fn check_unit_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c);
    if name.is_empty() || name.len() > 255 {
        return Err("a unit name must have 1 to 255 characters".into());
    }
    if name.starts_with(['-', '.']) || !name.chars().all(allowed) {
        return Err(format!(
            "`{name}` is not a systemd unit name (letters, digits and `:_.@-\\` only)"
        ));
    }
    Ok(())
}

/// `systemctl VERB -- UNIT`; on failure the unit's status goes to stderr after
/// systemctl's own message, so the task's error says why.
pub fn systemctl(verb: &str, unit: &str) -> String {
    let u = quote(unit);
    format!(
        "systemctl {verb} -- {u} || {{ rc=$?; systemctl status --no-pager --lines=10 -- {u} >&2 || true; exit $rc; }}\n"
    )
}

/// Has systemd load a unit file it did not know: naming the unit does on systemd 246+,
/// which looks for new files when the unit directories changed; older ones need a
/// daemon-reload.
pub fn load_new_unit(unit: &str) -> String {
    format!(
        "[ \"$(systemctl show -p LoadState --value -- {})\" = loaded ] || systemctl daemon-reload\n",
        quote(unit)
    )
}

/// `systemctl VERB UNIT` for a verb that leaves the unit running (start, restart,
/// reload), reported as done only once it runs ([`until_running`]).
pub fn systemctl_until_running(verb: &str, unit: &str) -> String {
    format!("{}{}", systemctl(verb, unit), until_running(unit))
}

/// Restart `unit`, wait until it runs, then check `health`: Ok(Err(why)) when it did not
/// come up or is unhealthy; Err only when the task itself fails (the connection broke).
pub async fn restart_checked(
    exec: &dyn Exec,
    unit: &str,
    health: Option<&HealthCheck>,
) -> Result<Result<(), String>, Failure> {
    let restart = Command::new(
        format!("restarting {unit}"),
        systemctl_until_running("restart", unit),
    )
    .judged_by(|_| Ok(()));
    let out = exec.run(restart).await?;
    if !out.success() {
        let stderr = out.stderr_text();
        let why = stderr.lines().next().unwrap_or("no message");
        return Ok(Err(format!(
            "systemctl restart {unit} failed (exit {}): {why}",
            out.status
        )));
    }
    match health {
        Some(health) => health.verdict(exec).await,
        None => Ok(Ok(())),
    }
}

/// How long a started unit may stay `activating` (systemctl returns at once for
/// `Type=simple`; `notify` and `forking` units are ready when it returns).
pub const START_WAIT_SECS: u32 = 10;

/// How long a started unit must then stay up, unrestarted, to count as started.
pub const SETTLE_SECS: u32 = 1;

/// The lines run after `systemctl start|restart|reload UNIT`, so that the task reports
/// the unit as running only once it runs: they wait (at most [`START_WAIT_SECS`]) until
/// the unit is active, then look again after [`SETTLE_SECS`] ([`settled`]). A
/// `Type=oneshot` unit that ran to success counts as started.
pub fn until_running(unit: &str) -> String {
    format!("{}{}", until_active(unit), settle_lines())
}

/// `systemctl VERB UNIT` for a verb that leaves the unit running, done once the unit is
/// active; the second it must then stay up is the returned [`Settle`], which later tasks
/// that leave the unit alone may overlap.
pub fn systemctl_until_active<'a>(verb: &str, unit: &str, what: String) -> (String, Settle<'a>) {
    let script = format!(
        "{}{}printf '{SETTLE_FROM}%s\\n' \"$was\"\n",
        systemctl(verb, unit),
        until_active(unit)
    );
    let name = unit.to_string();
    let settle = Settle {
        what,
        script: Box::new(move |started: &ExecOutput| {
            let said = started.stdout_text();
            let was = said.lines().find_map(|l| l.strip_prefix(SETTLE_FROM));
            match was {
                Some(RAN_TO_SUCCESS) => Ok(None),
                Some(was) if is_restarts_and_time(was) => Ok(Some(settled(&name, was))),
                _ => Err(format!(
                    "{name} became active, but systemctl show gave no restart count and start time"
                )),
            }
        }),
        watches: vec![Resource::unit(unit)],
    };
    (script, settle)
}

/// `NRestarts/ActiveEnterTimestampMonotonic`: two numbers (empty where systemd does not
/// say, as the old look compared them).
fn is_restarts_and_time(was: &str) -> bool {
    let number = |n: &str| n.bytes().all(|c| c.is_ascii_digit());
    was.split_once('/')
        .is_some_and(|(a, b)| number(a) && number(b))
}

/// The line [`systemctl_until_active`] ends with: the unit's restart count and when it
/// became active, for [`settled`] to compare.
const SETTLE_FROM: &str = "settle-from=";

/// Fails with the unit's status if it stopped, went back to `activating` or was
/// restarted within [`SETTLE_SECS`] of becoming active, when its `NRestarts` and
/// `ActiveEnterTimestampMonotonic` were `was`: they record any restart in between, so
/// one look at the end sees what polling through the second would (at a tenth of the
/// host's CPU). A process that dies of a bad configuration, a missing file or a busy
/// port does so within that second; a unit that dies later is beyond what a bounded
/// wait can know.
pub fn settled(unit: &str, was: &str) -> String {
    format!(
        "{}was={}\n{}",
        show_functions(unit),
        quote(was),
        settle_lines()
    )
}

/// `show` reads the unit's state into shell variables (builtins but for systemctl: each
/// process costs a host ~1 ms; the values are single words, split on blanks); `down`
/// fails with its status.
fn show_functions(unit: &str) -> String {
    let u = quote(unit);
    format!(
        r#"show() {{
  s=$(systemctl show -p ActiveState,SubState,Result,Type,NRestarts,ActiveEnterTimestampMonotonic -- {u}) || return
  for l in $s; do
    case $l in
      ActiveState=*) active=${{l#*=}} ;; SubState=*) sub=${{l#*=}} ;; Result=*) result=${{l#*=}} ;;
      Type=*) type=${{l#*=}} ;; NRestarts=*) restarts=${{l#*=}} ;; ActiveEnterTimestampMonotonic=*) since=${{l#*=}} ;;
    esac
  done
}}
down() {{ printf '%s %s\n' {u} "$1" >&2; systemctl status --no-pager --lines=10 -- {u} >&2; exit 1; }}
"#
    )
}

/// Waits until the unit is active and sets `was` to its restart count and start time.
fn until_active(unit: &str) -> String {
    format!(
        r#"{}tries={start_tries}
while show; do
  case $active/$sub in
    active/* | reloading/*) break ;;
    activating/auto-restart) down "exited (Result=$result) and waits to be restarted" ;;
    activating/*) [ $((tries -= 1)) -gt 0 ] || down "is still starting after {START_WAIT_SECS} s" ;;
    *) [ "$type/$result" = oneshot/success ] && {{ echo {SETTLE_FROM}{RAN_TO_SUCCESS}; exit 0; }}
       down "is $active (Result=$result) right after it started" ;;
  esac
  sleep 0.1
done
was=$restarts/$since
"#,
        show_functions(unit),
        start_tries = START_WAIT_SECS * 10,
    )
}

/// What [`until_active`] says of a `Type=oneshot` unit that ran to success: it has no
/// second to stay up for.
const RAN_TO_SUCCESS: &str = "oneshot";

fn settle_lines() -> String {
    format!(
        r#"sleep {SETTLE_SECS}
show
[ "$restarts/$since" = "$was" ] || down "was restarted by systemd within {SETTLE_SECS} s of starting"
case $active in active | reloading) ;; *) down "stopped (Result=$result) within {SETTLE_SECS} s of starting" ;; esac
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(stdout: &str, tag: &str) -> Option<UnitState> {
        let probed = Probed {
            stdout: stdout.into(),
            status: 0,
        };
        UnitState::from_probe(&probed, tag)
    }

    #[test]
    fn show_output_is_parsed() {
        let out = "unit.MainPID=812\nunit.LoadState=loaded\nunit.ActiveState=active\nunit.UnitFileState=enabled\nunit.NeedDaemonReload=no\n";
        let s = state(out, "unit").unwrap();
        assert_eq!(s.main_pid, 812);
        assert!(s.found() && s.is_active() && !s.masked() && !s.broken() && !s.need_reload);
        assert_eq!(s.enabled(), Some(true));
        assert_eq!(s.active_text(), "yes");

        let missing = "unit.LoadState=not-found\nunit.ActiveState=inactive\nunit.UnitFileState=\nunit.MainPID=0\n";
        let s = state(missing, "unit").unwrap();
        assert!(!s.found() && !s.is_active() && s.is_stopped());
        assert_eq!(s.enabled(), None);
        assert_eq!(s.active_text(), "no");

        assert_eq!(state("", "unit"), None);
    }

    #[test]
    fn a_stale_unit_needs_a_daemon_reload() {
        let s = state("s.LoadState=loaded\ns.NeedDaemonReload=yes\n", "s").unwrap();
        assert!(s.need_reload);
    }

    #[test]
    fn static_and_masked_units() {
        let s = state("u.LoadState=masked\nu.UnitFileState=masked\n", "u").unwrap();
        assert!(s.unusable("app").unwrap().contains("app.service is masked"));
        let s = state("u.LoadState=loaded\nu.UnitFileState=static\n", "u").unwrap();
        assert_eq!(s.enabled(), None);
        assert_eq!(s.unusable("app"), None);
        let s = state("u.LoadState=bad-setting\n", "u").unwrap();
        assert!(s.unusable("app").unwrap().contains("LoadState=bad-setting"));
        let s = state("u.LoadState=loaded\nu.UnitFileState=enabled-runtime\n", "u").unwrap();
        assert_eq!(s.enabled(), Some(false));
    }

    #[test]
    fn crash_looping_is_neither_active_nor_stopped() {
        let s = state("u.LoadState=loaded\nu.ActiveState=activating\n", "u").unwrap();
        assert!(!s.is_active() && !s.is_stopped());
        assert_eq!(s.active_text(), "activating");
    }

    #[test]
    fn unit_names() {
        assert!(check_unit_name("myapp").is_ok());
        assert!(check_unit_name("getty@tty1.service").is_ok());
        assert!(check_unit_name("").is_err());
        assert!(check_unit_name("-rf").is_err());
        assert!(check_unit_name("a b").is_err());
        assert!(check_unit_name("x;reboot").is_err());
        assert_eq!(unit_file("myapp"), "myapp.service");
        assert_eq!(unit_file("nginx.service"), "nginx.service");
        assert_eq!(unit_file("php8.2-fpm"), "php8.2-fpm.service");
    }

    #[test]
    fn the_probe_quotes_the_name() {
        insta::assert_snapshot!(show_probe("unit", "my app"), @r#"systemctl show -p ActiveState,UnitFileState,LoadState,MainPID,NeedDaemonReload -- 'my app' 2>/dev/null | while IFS= read -r l; do echo "unit.$l"; done"#);
    }

    #[test]
    fn the_probe_is_posix_sh_and_quiet_without_systemd() {
        // This machine may or may not run systemd: either it answers for the unit (not
        // found) or the probe prints nothing.
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(show_probe("s", "no-such-unit-for-converge-tests"))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        match state(&text, "s") {
            Some(s) => assert!(!s.found() && s.is_stopped(), "{text}"),
            None => assert_eq!(text, "", "{text}"),
        }
    }
}
