//! A systemd unit's state as `systemctl show` reports it, and the commands that change
//! it: shared by the modules that manage services (systemd_unit, service).

use super::Probed;
use crate::transport::quote;

/// The unit's full name: `.service` is added to a bare name.
pub fn unit_name(name: &str) -> String {
    if name.ends_with(".service") {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// A probe snippet printing the unit's state as `TAG.Key=value` lines, and `TAG.systemd=no`
/// on a host not running systemd (where `systemctl show` cannot answer).
pub fn status_probe(tag: &str, unit: &str) -> String {
    format!(
        "if [ -d /run/systemd/system ]; then echo {tag}.systemd=yes; \
         systemctl show -p LoadState,ActiveState,UnitFileState,NeedDaemonReload -- {} 2>/dev/null \
         | sed 's/^/{tag}./'; else echo {tag}.systemd=no; fi\n",
        quote(unit)
    )
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitStatus {
    /// The host runs systemd.
    pub systemd: bool,
    /// `loaded`, `not-found`, `masked`, ...
    pub load: String,
    /// `active`, `inactive`, `failed`, `activating`, ...
    pub active: String,
    /// `enabled`, `disabled`, `static`, `masked`, ... (empty when there is no unit file)
    pub file_state: String,
    /// The unit file changed on disk since systemd read it.
    pub need_reload: bool,
}

impl UnitStatus {
    /// Read the fields [`status_probe`] printed under `tag`.
    pub fn from_probe(probed: &Probed, tag: &str) -> UnitStatus {
        let fields = probed.fields();
        let get = |k: &str| {
            fields
                .get(&format!("{tag}.{k}"))
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
                .unwrap_or_default()
        };
        UnitStatus {
            systemd: get("systemd") == "yes",
            load: get("LoadState"),
            active: get("ActiveState"),
            file_state: get("UnitFileState"),
            need_reload: get("NeedDaemonReload") == "yes",
        }
    }

    /// Running or on its way there: `activating` covers a unit waiting to be restarted
    /// by `Restart=`, which a start would not change.
    pub fn is_active(&self) -> bool {
        matches!(
            self.active.as_str(),
            "active" | "reloading" | "activating" | "refreshing"
        )
    }

    pub fn is_enabled(&self) -> bool {
        matches!(self.file_state.as_str(), "enabled" | "enabled-runtime")
    }

    /// The `active:` line of a diff.
    pub fn active_text(&self) -> &'static str {
        if self.is_active() { "yes" } else { "no" }
    }

    /// The `enabled:` line of a diff: yes or no, or what else systemd says (`masked`, `static`).
    pub fn enabled_text(&self) -> String {
        match self.file_state.as_str() {
            _ if self.is_enabled() => "yes".into(),
            "" | "disabled" => "no".into(),
            other => other.into(),
        }
    }
}

/// The command enabling or disabling a unit.
pub fn enable_script(unit: &str, enabled: bool) -> String {
    let verb = if enabled { "enable" } else { "disable" };
    format!("systemctl {verb} -- {}", quote(unit))
}

/// The command starting or stopping a unit.
pub fn start_script(unit: &str, start: bool) -> String {
    let verb = if start { "start" } else { "stop" };
    format!("systemctl {verb} -- {}", quote(unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_their_suffix_once() {
        assert_eq!(unit_name("myapp"), "myapp.service");
        assert_eq!(unit_name("myapp.service"), "myapp.service");
    }

    #[test]
    fn status_from_systemctl_show() {
        let probed = Probed {
            stdout: "s.systemd=yes\ns.LoadState=loaded\ns.ActiveState=activating\n\
                     s.UnitFileState=masked\ns.NeedDaemonReload=yes\n"
                .into(),
            status: 0,
        };
        let st = UnitStatus::from_probe(&probed, "s");
        assert!(st.systemd && st.need_reload && st.is_active());
        assert_eq!(st.enabled_text(), "masked");
        let missing = Probed {
            stdout: "s.systemd=yes\ns.LoadState=not-found\ns.ActiveState=inactive\n\
                     s.UnitFileState=\ns.NeedDaemonReload=no\n"
                .into(),
            status: 0,
        };
        let st = UnitStatus::from_probe(&missing, "s");
        assert_eq!((st.active_text(), st.enabled_text().as_str()), ("no", "no"));
    }

    #[test]
    fn the_probe_is_posix_sh_and_quiet_without_systemd() {
        // This machine may or may not run systemd: the probe must print one of the two forms.
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(status_probe("s", "no-such-unit-for-converge-tests"))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.starts_with("s.systemd=yes\n") || text == "s.systemd=no\n",
            "{text}"
        );
    }
}
