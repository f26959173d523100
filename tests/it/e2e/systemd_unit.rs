//! systemd_unit on real hosts: install, enable, start; one merged restart on a change;
//! drift repaired; a start left to the release; an invalid unit never installed.

use crate::scenario::Scenario;

const SITE: &str = r#"
- name: unit
  hosts: all
  vars: { app: demo, port: 8080, mode: release }
  tasks:
    - name: docroot
      file: { path: /srv/index.html, content: "hello from demo\n" }
    - name: unit
      systemd_unit:
        name: "{{app}}"
        description: demo app
        exec_start: "/usr/bin/python3 -m http.server {{port}} --bind 127.0.0.1 --directory /srv"
        environment: { MODE: "{{mode}}", PORT: "{{port}}" }
        restart: always
        enabled: true
        state: started
"#;

fn main_pid(s: &Scenario) -> String {
    s.sh("h1", "systemctl show -p MainPID --value demo")
        .trim()
        .to_string()
}

#[test]
fn a_unit_converges_restarts_once_and_drift_is_repaired() {
    let s = Scenario::new(1);
    s.playbook(SITE);
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("+ExecStart=/usr/bin/python3 -m http.server 8080")
        .expect_stdout_contains("+active: yes");
    assert_eq!(
        s.hosts
            .exec("h1", "test -e /etc/systemd/system/demo.service")
            .status
            .code(),
        Some(1)
    );

    s.converge().expect_code(0).expect_changed("h1", 2);
    assert_eq!(s.sh("h1", "systemctl is-active demo").trim(), "active");
    assert_eq!(s.sh("h1", "systemctl is-enabled demo").trim(), "enabled");
    s.sh_until(
        "h1",
        "curl -s http://127.0.0.1:8080/index.html",
        "hello from demo",
    );
    let unit_file = s.sh("h1", "cat /etc/systemd/system/demo.service");
    assert!(
        unit_file.contains("Environment=\"MODE=release\"\n"),
        "{unit_file}"
    );
    assert!(
        s.sh("h1", "ls -a /etc/systemd/system")
            .lines()
            .all(|l| !l.contains("converge~"))
    );

    // Idempotent: nothing changes, nothing restarts.
    let pid = main_pid(&s);
    s.converge().expect_code(0).expect_changed("h1", 0);
    s.diff().expect_code(0);
    assert_eq!(main_pid(&s), pid);

    // A changed unit: daemon-reload and exactly one restart, merged at the end.
    let changed = s.run(&["site.yml", "-e", "mode=debug"]);
    changed
        .expect_code(0)
        .expect_changed("h1", 2)
        .expect_stdout_contains("+Environment=\"MODE=debug\"")
        .expect_stdout_contains("restart demo (pending)");
    assert_eq!(changed.stdout.matches("restarted: yes").count(), 1);
    assert_ne!(main_pid(&s), pid);
    assert!(
        s.sh("h1", "systemctl show -p Environment --value demo")
            .contains("MODE=debug")
    );
    assert_eq!(
        s.sh("h1", "systemctl show -p NeedDaemonReload --value demo")
            .trim(),
        "no"
    );
    s.run(&["site.yml", "-e", "mode=debug"])
        .expect_code(0)
        .expect_changed("h1", 0);

    // Drift: a stopped service is started again.
    s.sh("h1", "systemctl stop demo");
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("-active: no\n+active: yes");
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(s.sh("h1", "systemctl is-active demo").trim(), "active");

    // Drift: a hand-edited unit is put back (and the service restarted onto it).
    s.sh(
        "h1",
        "echo 'Nice=5' >> /etc/systemd/system/demo.service && systemctl daemon-reload && systemctl restart demo",
    );
    s.diff().expect_code(2).expect_stdout_contains("-Nice=5");
    let pid = main_pid(&s);
    s.converge()
        .expect_code(0)
        .expect_stdout_contains("restart demo (pending)");
    assert_ne!(main_pid(&s), pid);
    assert_eq!(
        s.sh("h1", "systemctl show -p Nice --value demo").trim(),
        "0"
    );
    s.diff().expect_code(0);
}

#[test]
fn a_unit_whose_binary_is_not_deployed_yet_is_installed_but_not_started() {
    let s = Scenario::new(1);
    s.playbook(
        r#"
- hosts: all
  tasks:
    - systemd_unit: { name: app, exec_start: /opt/app/current/app --port 9000, user: nobody,
                      enabled: true, state: started }
"#,
    );
    s.diff().expect_code(2).expect_stdout_contains(
        "+active: no (start skipped: /opt/app/current/app does not exist yet",
    );
    s.converge()
        .expect_code(0)
        .expect_changed("h1", 1)
        .expect_stdout_contains("start skipped");
    assert_eq!(s.sh("h1", "systemctl is-enabled app").trim(), "enabled");
    assert_eq!(
        s.hosts.exec("h1", "systemctl is-active app").status.code(),
        Some(3)
    );
    // Nothing else to do: skipped, not changed, so cron reruns stay quiet.
    let rerun = s.converge();
    rerun.expect_code(0).expect_changed("h1", 0);
    assert_eq!(rerun.recap("h1").3, 1);
    s.diff().expect_code(0);

    // Once the binary is there (the release's job), the unit task starts it.
    s.sh(
        "h1",
        "mkdir -p /opt/app/current && printf '#!/bin/sh\\nexec sleep 1000\\n' > /opt/app/current/app && chmod 755 /opt/app/current/app",
    );
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(s.sh("h1", "systemctl is-active app").trim(), "active");
}

#[test]
fn an_invalid_unit_is_never_installed() {
    let s = Scenario::new(1);
    s.playbook(
        r#"
- hosts: all
  tasks:
    - systemd_unit: { name: bad, exec_start: /bin/sleep 1000, restart: always }
"#,
    );
    s.converge().expect_code(0);
    let good = s.sh("h1", "cat /etc/systemd/system/bad.service");
    s.playbook(
        r#"
- hosts: all
  tasks:
    - systemd_unit:
        name: bad
        content: "[Service]\nExecStart=/bin/sleep 1000\nRestart=sometimes\n"
"#,
    );
    for run in [s.diff(), s.converge()] {
        run.expect_code(1).expect_stdout_contains(
            "/etc/systemd/system/bad.service:3: Failed to parse service restart specifier, ignoring: sometimes",
        );
    }
    assert_eq!(s.sh("h1", "cat /etc/systemd/system/bad.service"), good);
    assert!(
        s.sh("h1", "ls -a /etc/systemd/system")
            .lines()
            .all(|l| !l.contains("converge~"))
    );
}
