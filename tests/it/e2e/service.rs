//! `service` on a real host: started + enabled, idempotent rerun, drift repaired,
//! stopped + disabled, a restart handler notified by a change, a missing unit.

use crate::scenario::Scenario;

const UNIT: &str = "[Unit]\nDescription=converge e2e sleeper\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n";

fn play(tasks: &str) -> String {
    format!("- hosts: all\n  tasks:\n{tasks}")
}

fn state(s: &Scenario) -> String {
    s.sh(
        "h1",
        "echo $(systemctl is-active sleeper; systemctl is-enabled sleeper) || true",
    )
    .trim()
    .to_string()
}

#[test]
fn service_converges_and_repairs_drift() {
    let s = Scenario::new(1);
    s.sh(
        "h1",
        &format!(
            "printf '{UNIT}' > /etc/systemd/system/sleeper.service && systemctl daemon-reload"
        ),
    );
    s.playbook(&play(
        "    - service: { name: sleeper, state: started, enabled: true }\n",
    ));
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("--- h1:service sleeper (current)")
        .expect_stdout_contains("-active: no\n-enabled: no\n+active: yes\n+enabled: yes");
    assert_eq!(state(&s), "inactive disabled");

    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(state(&s), "active enabled");
    s.converge().expect_code(0).expect_changed("h1", 0);
    s.diff().expect_code(0);

    // Drift: stopped behind our back.
    s.sh("h1", "systemctl stop sleeper");
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("-active: no\n+active: yes");
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(state(&s), "active enabled");

    s.playbook(&play(
        "    - service: { name: sleeper.service, state: stopped, enabled: false }\n",
    ));
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(state(&s), "inactive disabled");
    s.converge().expect_changed("h1", 0);
}

#[test]
fn a_restart_handler_runs_only_on_change() {
    let s = Scenario::new(1);
    s.sh(
        "h1",
        &format!("printf '{UNIT}' > /etc/systemd/system/sleeper.service && systemctl daemon-reload && systemctl start sleeper"),
    );
    let pid = |s: &Scenario| s.sh("h1", "systemctl show -p MainPID --value sleeper");
    s.playbook(&format!(
        "{}  handlers:\n    - name: restart sleeper\n      service: {{ name: sleeper, state: restarted }}\n",
        play("    - file: { path: /etc/sleeper.conf, content: \"a\\n\" }\n      notify: restart sleeper\n")
    ));
    let before = pid(&s);
    s.converge()
        .expect_code(0)
        .expect_changed("h1", 2)
        .expect_stdout_contains("restart sleeper");
    let after = pid(&s);
    assert_ne!(before, after, "not restarted");
    s.converge().expect_code(0).expect_changed("h1", 0);
    assert_eq!(pid(&s), after, "restarted without a change");
}

#[test]
fn a_missing_unit_fails_the_task() {
    let s = Scenario::new(1);
    s.playbook(&play("    - service: { name: nosuch, state: started }\n"));
    s.converge()
        .expect_code(1)
        .expect_stdout_contains("nosuch.service not found");
}

/// Installs `name.service` running `sh -c 'sleep 0.3; exit 1'`, with `restart` as its
/// `Restart=` setting.
fn dying_unit(s: &Scenario, name: &str, restart: &str) {
    s.sh(
        "h1",
        &format!(
            "printf '[Service]\\nExecStart=/bin/sh -c \"sleep 0.3; exit 1\"\\nRestart={restart}\\nRestartSec=200ms\\n' \
             > /etc/systemd/system/{name}.service && systemctl daemon-reload"
        ),
    );
}

#[test]
fn a_unit_that_dies_right_after_start_fails_the_task() {
    let s = Scenario::new(1);
    dying_unit(&s, "dies", "no");
    dying_unit(&s, "loops", "always");
    for (task, says) in [
        (
            "{ name: dies, state: started }",
            "dies stopped (Result=exit-code)",
        ),
        (
            "{ name: dies, state: restarted }",
            "dies stopped (Result=exit-code)",
        ),
        (
            "{ name: loops, state: restarted }",
            "loops was restarted by systemd within 1 s of starting",
        ),
    ] {
        s.playbook(&play(&format!("    - service: {task}\n")));
        s.converge()
            .expect_code(1)
            .expect_changed("h1", 0)
            .expect_stdout_contains(says);
    }
}

/// The second a started unit must stay up overlaps the later tasks that leave it alone;
/// the task still fails when the unit dies within it, tasks are reported in playbook
/// order, and a task that needs the unit waits for that second and is skipped.
#[test]
fn the_second_a_unit_must_stay_up_overlaps_independent_tasks() {
    let s = Scenario::new(1);
    s.sh(
        "h1",
        "printf '[Service]\\nExecStart=/bin/sh -c \"sleep 0.8; date +%%%%s%%%%N > /root/late-exit; exit 1\"\\n' \
         > /etc/systemd/system/late.service && systemctl daemon-reload",
    );
    s.playbook(&play(
        "    - name: start late\n      service: { name: late, state: started }\n\
         \x20   - name: independent\n      file: { path: /root/independent, content: \"x\\n\" }\n\
         \x20   - name: needs late\n      file: { path: /root/dependent, content: \"x\\n\" }\n      requires: start late\n",
    ));
    let run = s.converge();
    run.expect_code(1)
        .expect_changed("h1", 1)
        .expect_stdout_contains("late stopped (Result=exit-code) within 1 s of starting")
        .expect_stdout_contains("`start late` failed");
    let at = |needle: &str| {
        run.stdout
            .find(needle)
            .unwrap_or_else(|| panic!("no `{needle}`\n{}", run.context()))
    };
    assert!(at("start late") < at("independent") && at("independent") < at("needs late"));
    assert_eq!(
        s.sh("h1", "test -e /root/dependent || echo absent").trim(),
        "absent"
    );
    // Written while the unit still ran, which it did for 0.8 s.
    let ns = |cmd: &str| -> u128 { s.sh("h1", cmd).trim().parse().unwrap() };
    let written = ns("date +%s%N -r /root/independent");
    let exited = ns("cat /root/late-exit");
    assert!(
        written < exited,
        "written at {written}, the unit exited at {exited}"
    );
}
