//! The engine's promises on real hosts: converge, idempotent rerun, drift, bad input,
//! unreachable hosts, host keys.

use crate::scenario::Scenario;

const SITE: &str = r#"
- name: engine
  hosts: all
  vars: { app: demo, greeting: hello }
  tasks:
    - name: app dir
      file: { path: "/etc/{{app}}.conf", content: "greeting={{greeting}}\nhost={{inventory_hostname}}\n", mode: "0640" }
    - name: link
      file: { path: /etc/demo.link, link: "/etc/{{app}}.conf" }
      notify: marker
  handlers:
    - name: marker
      file: { path: /etc/demo.notified, content: "notified\n" }
"#;

fn mtime(s: &Scenario, host: &str, path: &str) -> String {
    s.sh(host, &format!("stat -c %Y.%y {path}"))
}

#[test]
fn converge_rerun_and_drift_on_three_hosts() {
    let s = Scenario::new(3);
    s.playbook(SITE);
    // A fresh host: diff shows what would change and exits 2, touching nothing.
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("+++ h1:/etc/demo.conf (desired)");
    assert_eq!(
        s.hosts.exec("h1", "test -e /etc/demo.conf").status.code(),
        Some(1)
    );

    let first = s.converge();
    first.expect_code(0);
    for h in ["h1", "h2", "h3"] {
        first.expect_changed(h, 3);
        assert_eq!(
            s.sh(h, "cat /etc/demo.conf"),
            format!("greeting=hello\nhost={h}\n")
        );
        assert_eq!(s.sh(h, "stat -c %a /etc/demo.conf").trim(), "640");
        assert_eq!(s.sh(h, "readlink /etc/demo.link").trim(), "/etc/demo.conf");
    }
    let before = mtime(&s, "h2", "/etc/demo.conf");

    // The rerun changes nothing and touches nothing.
    let rerun = s.converge();
    rerun.expect_code(0);
    for h in ["h1", "h2", "h3"] {
        rerun.expect_changed(h, 0);
    }
    assert_eq!(mtime(&s, "h2", "/etc/demo.conf"), before);
    s.diff().expect_code(0);

    // Drift on one host: diff shows exactly it, apply repairs it.
    s.sh(
        "h2",
        "echo tampered >> /etc/demo.conf; chmod 0666 /etc/demo.conf",
    );
    let drift = s.diff();
    drift
        .expect_code(2)
        .expect_stdout_contains("-tampered")
        .expect_stdout_contains("-mode: 0666")
        .expect_stdout_contains("+mode: 0640");
    drift
        .expect_changed("h1", 0)
        .expect_changed("h2", 1)
        .expect_changed("h3", 0);
    s.converge().expect_code(0).expect_changed("h2", 1);
    assert_eq!(
        s.sh("h2", "cat /etc/demo.conf"),
        "greeting=hello\nhost=h2\n"
    );
    s.diff().expect_code(0);
}

#[test]
fn bad_input_exits_3_and_touches_no_host() {
    let s = Scenario::new(1);
    s.playbook(
        "- hosts: all\n  tasks:\n    - file: { path: /etc/x.conf, content: \"{{ nope }}\" }\n",
    );
    let run = s.converge();
    run.expect_code(3)
        .expect_stderr_contains("undefined variable `nope`");
    assert!(run.stderr.contains("site.yml:3:"), "{}", run.stderr);

    s.playbook("- hosts: all\n  tasks:\n    - file: { path: /etc/x.conf, mode: 0644 }\n");
    s.converge()
        .expect_code(3)
        .expect_stderr_contains("quoted octal string");

    s.playbook("- hosts: all\n  tasks:\n    - fiel: { path: /etc/x.conf }\n");
    s.converge()
        .expect_code(3)
        .expect_stderr_contains("did you mean `file`?");
    assert_eq!(
        s.hosts.exec("h1", "test -e /etc/x.conf").status.code(),
        Some(1)
    );
}

#[test]
fn an_unreachable_host_fails_alone() {
    let s = Scenario::new(2);
    s.playbook("- hosts: all\n  tasks:\n    - file: { path: /etc/ok.conf, content: \"ok\\n\" }\n");
    let inventory = std::fs::read_to_string(s.path("inventory.yml")).unwrap();
    // An address on the test bridge where nothing answers.
    let ghost = format!("{}.250", s.hosts.bridge_ip().rsplit_once('.').unwrap().0);
    let inventory = inventory.replacen(
        "  hosts:\n",
        &format!("  hosts:\n    ghost: {{ ansible_host: {ghost}, ansible_user: root }}\n"),
        1,
    );
    s.file("inventory.yml", &inventory);
    let run = s.run(&["site.yml", "--timeout", "2"]);
    run.expect_code(1);
    assert_eq!(run.recap("ghost").4, 1);
    run.expect_changed("h1", 1).expect_changed("h2", 1);
}

#[test]
fn a_changed_host_key_is_refused() {
    let s = Scenario::new(1);
    s.playbook("- hosts: all\n  tasks:\n    - file: { path: /etc/k.conf, content: \"k\\n\" }\n");
    s.sh(
        "h1",
        "rm -f /etc/ssh/ssh_host_*; ssh-keygen -A >/dev/null; systemctl restart ssh",
    );
    let run = s.run(&["site.yml", "--accept-new-host-keys"]);
    run.expect_code(1);
    assert!(
        format!("{}{}", run.stdout, run.stderr)
            .to_lowercase()
            .contains("changed"),
        "{}{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(
        s.hosts.exec("h1", "test -e /etc/k.conf").status.code(),
        Some(1)
    );
}

/// A running service `sleeper`; its main pid, to tell whether it was restarted.
fn start_sleeper(s: &Scenario) -> String {
    s.sh(
        "h1",
        "printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /etc/systemd/system/sleeper.service \
         && systemctl daemon-reload && systemctl start sleeper",
    );
    s.sh("h1", "systemctl show -p MainPID --value sleeper")
}

#[test]
fn a_restart_owed_by_a_dead_run_is_performed_by_the_next() {
    let s = Scenario::new(1);
    let pid = start_sleeper(&s);
    s.playbook("- hosts: all\n  tasks:\n    - file: { path: /etc/owed.conf, content: \"x\\n\" }\n");
    s.converge().expect_code(0);
    // What a run that changed the unit and died before restarting leaves behind.
    s.sh("h1", "mkdir -p /var/lib/converge/restart-pending && touch /var/lib/converge/restart-pending/sleeper");
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("restart sleeper (pending)");
    s.converge()
        .expect_code(0)
        .expect_changed("h1", 1)
        .expect_stdout_contains("restart sleeper (pending)");
    assert_ne!(s.sh("h1", "systemctl show -p MainPID --value sleeper"), pid);
    assert_eq!(
        s.hosts
            .exec("h1", "test -e /var/lib/converge/restart-pending/sleeper")
            .status
            .code(),
        Some(1)
    );
    s.converge().expect_code(0).expect_changed("h1", 0);
}

#[test]
fn a_restart_is_owed_on_the_host_before_the_change_that_needs_it() {
    let s = Scenario::new(1);
    let pid = start_sleeper(&s);
    // The change takes a while; the run is killed in the middle of it.
    s.playbook(
        "- hosts: all\n  tasks:\n    - name: migrate\n      command: \"touch /etc/started; sleep 30\"\n      notify: restart sleeper\n  handlers:\n    - name: restart sleeper\n      service: { name: sleeper, state: restarted }\n",
    );
    let mut child = s.start(&["site.yml"]);
    s.sh_until("h1", "ls /etc/started 2>/dev/null", "/etc/started");
    child.kill().expect("SIGKILL converge");
    child.wait().expect("reap converge");
    assert_eq!(
        s.sh("h1", "ls /var/lib/converge/restart-pending"),
        "sleeper\n"
    );
    s.playbook("- hosts: all\n  tasks:\n    - file: { path: /etc/owed.conf, content: \"x\\n\" }\n");
    s.converge()
        .expect_code(0)
        .expect_stdout_contains("restart sleeper (pending)");
    assert_ne!(s.sh("h1", "systemctl show -p MainPID --value sleeper"), pid);
}

#[test]
fn a_later_plays_mistake_found_with_facts_stops_the_run_before_any_change() {
    let s = Scenario::new(1);
    s.playbook(
        "- hosts: all\n  tasks:\n    - file: { path: /etc/first-play.conf, content: \"x\\n\" }\n\
         - hosts: all\n  tasks:\n    - file: { path: \"/etc/{{facts.os.codename}}.conf\", content: \"y\\n\" }\n",
    );
    s.converge()
        .expect_code(3)
        .expect_stderr_contains("facts.os.codename");
    assert_eq!(
        s.hosts
            .exec("h1", "test -e /etc/first-play.conf")
            .status
            .code(),
        Some(1),
        "the first play changed the host before the second was rendered"
    );
}

#[test]
fn ctrl_c_finishes_the_task_in_progress_and_starts_no_other() {
    let s = Scenario::new(1);
    s.playbook(
        "- hosts: all\n  tasks:\n    - command: \"sleep 3; touch /etc/slept\"\n    - file: { path: /etc/after.conf, content: \"x\\n\" }\n",
    );
    let child = s.start(&["site.yml"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let run = crate::scenario::Run::of(&["site.yml"], child.wait_with_output().unwrap());
    run.expect_code(130);
    // The command in flight completed; the next task never started.
    s.sh("h1", "test -e /etc/slept");
    assert_eq!(
        s.hosts.exec("h1", "test -e /etc/after.conf").status.code(),
        Some(1)
    );
    // The lock went with the process.
    s.converge().expect_code(0);
}

#[test]
fn a_host_that_stops_answering_fails_alone_within_a_minute() {
    let s = Scenario::new(2);
    s.playbook(
        "- hosts: all\n  tasks:\n    - command: \"sleep 4\"\n    - file: { path: /etc/done.conf, content: \"x\\n\" }\n",
    );
    let started = std::time::Instant::now();
    let child = s.start(&["site.yml"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // The link dies silently (no reset): only keepalives can tell.
    s.sh("h2", "ip link set host0 down");
    let run = crate::scenario::Run::of(&["site.yml"], child.wait_with_output().unwrap());
    let elapsed = started.elapsed();
    run.expect_code(1);
    assert!(elapsed.as_secs() < 90, "took {elapsed:?}");
    run.expect_changed("h1", 2);
    assert_eq!(run.recap("h2").4, 1, "{}", run.stdout);
    s.sh("h1", "test -e /etc/done.conf");
}
