//! `command` on a real host: guards, chdir ordering, check mode, failures.

use crate::scenario::Scenario;

const SITE: &str = r#"
- hosts: all
  tasks:
    - command: "echo run >> /root/every-run.log"
    - name: quiet
      command: "echo quiet >> /root/quiet.log"
      changed_when: false
    - command: { argv: [touch, "/root/it's $(done)"], creates: "/root/it's $(done)" }
      name: once
    # Listed before the dir it runs in: `chdir` orders the dir first.
    - command: { cmd: "echo made > marker", chdir: /opt/work, unless: "test -s /opt/work/marker" }
    - dir: { path: /opt/work }
"#;

fn lines(s: &Scenario, path: &str) -> usize {
    s.sh("h1", &format!("cat {path}")).lines().count()
}

#[test]
fn commands_run_when_their_guards_say_so() {
    let s = Scenario::new(1);
    s.playbook(SITE);
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("+would run: echo run >> /root/every-run.log")
        .expect_stdout_contains("+would run: touch '/root/it'\\''s $(done)'");
    assert_eq!(s.hosts.exec("h1", "ls /root/*.log").status.code(), Some(2));

    let first = s.converge();
    first.expect_code(0).expect_changed("h1", 4);
    first.expect_stdout_contains("command echo run >> /root/every-run.log");
    assert_eq!(s.sh("h1", "cat /opt/work/marker"), "made\n");
    assert_eq!(s.sh("h1", "ls /root/it*").trim(), "/root/it's $(done)");

    // Only the unguarded command runs again; changed_when: false keeps it ok.
    let rerun = s.converge();
    rerun.expect_code(0).expect_changed("h1", 1);
    assert_eq!(lines(&s, "/root/every-run.log"), 2);
    assert_eq!(lines(&s, "/root/quiet.log"), 2);
    s.diff().expect_code(2).expect_changed("h1", 1);
    assert_eq!(
        lines(&s, "/root/every-run.log"),
        2,
        "check mode runs nothing"
    );
}

#[test]
fn a_failing_command_reports_its_exit_code_and_stderr() {
    let s = Scenario::new(1);
    s.playbook(
        "- hosts: all\n  tasks:\n    - name: migrate\n      \
         command: \"echo starting; echo 'table users is locked' >&2; exit 3\"\n    \
         - name: after\n      command: \"touch /root/after\"\n      requires: migrate\n",
    );
    let run = s.converge();
    run.expect_code(1);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("command exited 3: table users is locked"),
        "{all}"
    );
    assert_eq!(run.recap("h1"), (0, 0, 1, 1, 0));
    assert_eq!(
        s.hosts.exec("h1", "test -e /root/after").status.code(),
        Some(1)
    );
}

#[test]
fn a_command_past_its_timeout_is_killed_on_the_host_and_fails_alone() {
    let s = Scenario::new(1);
    s.playbook(
        "- hosts: all\n  tasks:\n    - name: hangs\n      command: \"sleep 600; touch /root/never\"\n      timeout: 2\n    - file: { path: /root/after, content: \"x\\n\" }\n",
    );
    let started = std::time::Instant::now();
    s.converge()
        .expect_code(1)
        .expect_stdout_contains("timed out after 2 s; killed on the host");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    // The hung command is gone from the host; the task that does not need it ran.
    assert_eq!(s.hosts.exec("h1", "pgrep -x sleep").status.code(), Some(1));
    assert_eq!(s.sh("h1", "cat /root/after"), "x\n");
}
