//! `systemd-analyze verify` on a candidate unit, and how to read its verdict.
//!
//! The candidate is verified under its real name (`NAME.service` in a fresh temp dir),
//! because systemd derives the unit's identity from the file name. What it prints:
//!
//! - `DIR/NAME.service:LINE: ...` — a setting of ours. Those that end in "ignoring" mean
//!   systemd would drop something the playbook says (`Restart=sometimes`, a typo in a
//!   key): an error here, although systemd-analyze exits 0 for them. Others are
//!   advice (`Special user nobody configured, this is not safe!`) and pass.
//! - `NAME.service: ...` and `Unit NAME.service ...` — verify's own checks, which make
//!   it exit non-zero: a missing `ExecStart=`, a `Requires=` on an unknown unit, a
//!   command that is not executable. One of them is expected and not an error:
//!   `NAME.service: Command BIN is not executable: No such file or directory` for the
//!   `ExecStart=` binary, which a `release` deploys later (fresh host, check mode).
//!   In check mode a unit that an earlier task would install (`Requires=` on it: `Unit
//!   X.service not found`) is excused too.
//! - Lines about other units (the host's own) are not ours to judge.

use crate::module::files::Findings;

/// The shell line verifying the candidate at `%s`; dependencies' problems are the host's
/// (`--recursive-errors=no`, where systemd is new enough to have it).
pub const COMMAND: &str = "opt=; systemd-analyze verify --help 2>/dev/null | grep -q -- --recursive-errors \
     && opt=--recursive-errors=no; systemd-analyze verify --man=no $opt %s";

/// What `systemd-analyze verify` said about the candidate `unit` (e.g. `myapp.service`)
/// verified at `candidate`: Ok, or the lines that make it unfit, naming `real_path`.
/// `exec_start` holds the absolute binaries of `ExecStart=` that may not exist yet;
/// `assumed_unit` says whether a missing unit would have been installed by now.
pub fn verdict(
    unit: &str,
    candidate: &str,
    real_path: &str,
    status: i32,
    stderr: &str,
    exec_start: &[String],
    assumed_unit: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let file_prefix = format!("{candidate}:");
    let unit_prefix = format!("{unit}: ");
    let unit_line = format!("Unit {unit} ");
    let missing_binary = |line: &str| {
        exec_start.iter().any(|bin| {
            line == format!("{unit}: Command {bin} is not executable: No such file or directory")
        })
    };
    let mut found = Findings::default();
    for line in stderr.lines() {
        let missing_unit = line
            .strip_prefix(&unit_prefix)
            .and_then(|rest| rest.split_once(": Unit "))
            .and_then(|(_, rest)| rest.strip_suffix(" not found."));
        if missing_binary(line) || missing_unit.is_some_and(&assumed_unit) {
            found.excused += 1;
        } else if line.starts_with(&file_prefix) {
            if line.to_ascii_lowercase().contains("ignoring") {
                found.errors.push(line.replacen(candidate, real_path, 1));
            }
        } else if status != 0 && (line.starts_with(&unit_prefix) || line.starts_with(&unit_line)) {
            found.errors.push(line.to_string());
        }
    }
    found.verdict(
        "systemd-analyze verify",
        status,
        stderr,
        candidate,
        real_path,
    )
}

/// The absolute binaries of the `ExecStart=` lines of a unit's text (`-`, `@`, `+`, `!`,
/// `:` prefixes removed); names looked up in `PATH` are left out.
pub fn exec_start_binaries(unit_text: &str) -> Vec<String> {
    unit_text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("ExecStart="))
        .filter_map(|cmd| {
            let cmd = cmd.trim_start_matches(['-', '@', '+', '!', ':']);
            let bin = cmd.split_whitespace().next()?;
            bin.starts_with('/').then(|| bin.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: &str = "myapp.service";
    const CAND: &str = "/tmp/tmp.X/myapp.service";
    const REAL: &str = "/etc/systemd/system/myapp.service";

    fn none(_: &str) -> bool {
        false
    }

    fn bins() -> Vec<String> {
        vec!["/opt/myapp/current/myapp".to_string()]
    }

    #[test]
    fn binaries_of_exec_start() {
        let text = "[Service]\nExecStart=-/opt/a/b --x\nExecStartPre=/bin/c\n  ExecStart=@/opt/d d0\nExecStart=\nExecStart=sleep 1\n";
        assert_eq!(exec_start_binaries(text), vec!["/opt/a/b", "/opt/d"]);
    }

    #[test]
    fn a_missing_exec_start_binary_is_excused_and_advice_passes() {
        let stderr = "/tmp/tmp.X/myapp.service:7: Special user nobody configured, this is not safe!\n\
                      myapp.service: Command /opt/myapp/current/myapp is not executable: No such file or directory\n";
        assert_eq!(verdict(UNIT, CAND, REAL, 1, stderr, &bins(), none), Ok(()));
    }

    #[test]
    fn other_missing_commands_are_errors() {
        let stderr = "myapp.service: Command /opt/c/d is not executable: No such file or directory\n\
                      myapp.service: Command /opt/myapp/current/myapp is not executable: No such file or directory\n";
        let err = verdict(UNIT, CAND, REAL, 1, stderr, &bins(), none).unwrap_err();
        assert!(err.contains("/opt/c/d"), "{err}");
        assert!(!err.contains("current/myapp"), "{err}");
    }

    #[test]
    fn ignored_settings_are_errors_even_with_exit_0() {
        let stderr = "/tmp/tmp.X/myapp.service:9: Failed to parse service restart specifier, ignoring: sometimes\n";
        insta::assert_snapshot!(verdict(UNIT, CAND, REAL, 0, stderr, &bins(), none).unwrap_err(), @r"
        systemd-analyze verify rejects /etc/systemd/system/myapp.service; it was not installed:
        /etc/systemd/system/myapp.service:9: Failed to parse service restart specifier, ignoring: sometimes
        ");
        let stderr = "/tmp/tmp.X/myapp.service:3: Unknown section 'Servic'. Ignoring.\n\
                      myapp.service: Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing.\n\
                      Unit myapp.service has a bad unit file setting.\n";
        let err = verdict(UNIT, CAND, REAL, 1, stderr, &bins(), none).unwrap_err();
        assert_eq!(err.lines().count(), 4, "{err}");
    }

    #[test]
    fn a_required_unit_is_excused_only_when_an_earlier_task_installs_it() {
        let stderr =
            "myapp.service: Failed to create myapp.service/start: Unit db.service not found.\n";
        assert!(verdict(UNIT, CAND, REAL, 1, stderr, &bins(), none).is_err());
        let db = |u: &str| u == "db.service";
        assert_eq!(verdict(UNIT, CAND, REAL, 1, stderr, &bins(), db), Ok(()));
    }

    #[test]
    fn other_units_are_not_ours_to_judge() {
        let stderr =
            "/lib/systemd/system/foo.service:3: Unknown key 'X' in section [Service], ignoring.\n";
        assert_eq!(verdict(UNIT, CAND, REAL, 0, stderr, &bins(), none), Ok(()));
    }

    #[test]
    fn an_unexplained_failure_is_shown_whole() {
        let err = verdict(
            UNIT,
            CAND,
            REAL,
            127,
            "sh: 1: systemd-analyze: not found",
            &[],
            none,
        )
        .unwrap_err();
        assert!(err.ends_with("sh: 1: systemd-analyze: not found"), "{err}");
    }
}
