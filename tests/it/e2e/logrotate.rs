//! logrotate on real hosts: the stanza is installed, rotates, stays put on a rerun, is
//! repaired after drift, and an invalid one never reaches /etc/logrotate.d.

use crate::scenario::Scenario;

const SITE: &str = r#"
- hosts: all
  vars: { app: demo }
  tasks:
    - logrotate: { name: "{{app}}", paths: ["/var/log/{{app}}/*.log"], frequency: daily, rotate: 7,
                   compress: true, delaycompress: true, missingok: true, notifempty: true,
                   copytruncate: true }
"#;

const STANZA: &str = "# Managed by converge: local changes are overwritten.
/var/log/demo/*.log {
    daily
    rotate 7
    compress
    delaycompress
    missingok
    notifempty
    copytruncate
}
";

fn no_temp_files(s: &Scenario) {
    let listing = s.sh("h1", "ls -a /etc /etc/logrotate.d");
    assert!(!listing.contains("converge~"), "{listing}");
}

#[test]
fn a_stanza_is_installed_rotates_and_drift_is_repaired() {
    let s = Scenario::new(1);
    s.playbook(SITE);
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("+    copytruncate");
    assert_eq!(
        s.hosts
            .exec("h1", "test -e /etc/logrotate.d/demo")
            .status
            .code(),
        Some(1)
    );

    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(s.sh("h1", "cat /etc/logrotate.d/demo"), STANZA);
    assert_eq!(
        s.sh("h1", "stat -c '%a %U %G' /etc/logrotate.d/demo")
            .trim(),
        "644 root root"
    );
    no_temp_files(&s);

    // The real logrotate uses it: copytruncate keeps the live file, delaycompress the .1.
    s.sh(
        "h1",
        "mkdir -p /var/log/demo && echo line > /var/log/demo/app.log && logrotate -f /etc/logrotate.d/demo",
    );
    assert_eq!(
        s.sh("h1", "ls /var/log/demo")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["app.log", "app.log.1"]
    );
    assert_eq!(s.sh("h1", "stat -c %s /var/log/demo/app.log").trim(), "0");

    s.converge().expect_code(0).expect_changed("h1", 0);
    s.diff().expect_code(0);

    s.sh("h1", "sed -i 's/rotate 7/rotate 99/' /etc/logrotate.d/demo");
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("-    rotate 99\n+    rotate 7");
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(s.sh("h1", "cat /etc/logrotate.d/demo"), STANZA);
    s.diff().expect_code(0);
}

#[test]
fn an_invalid_stanza_never_goes_live() {
    let s = Scenario::new(1);
    s.playbook(SITE);
    s.converge().expect_code(0);
    s.playbook(&SITE.replace(
        "copytruncate: true }",
        "copytruncate: true, su: nosuchuser adm }",
    ));
    for run in [s.diff(), s.converge()] {
        run.expect_code(1).expect_stdout_contains(
            "logrotate -d rejects /etc/logrotate.d/demo; it was not installed:",
        );
        run.expect_stdout_contains("unknown user 'nosuchuser'");
    }
    assert_eq!(s.sh("h1", "cat /etc/logrotate.d/demo"), STANZA);
    no_temp_files(&s);
    // The host's own logrotate run never saw the candidate.
    let debug = s.sh("h1", "logrotate -d /etc/logrotate.conf 2>&1 || true");
    assert!(!debug.contains("nosuchuser"), "{debug}");
}
