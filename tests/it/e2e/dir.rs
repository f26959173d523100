//! `dir` on a real host: parents, owner and mode, implicit ordering after the user it
//! names, removal of a tree, drift.

use crate::scenario::Scenario;

const SITE: &str = r#"
- hosts: all
  vars: { app: myapp }
  tasks:
    # Listed before the user it names: the implicit edge orders the user first.
    - name: config dir
      dir: { path: "/opt/{{app}}/config/", owner: "{{app}}", group: "{{app}}", mode: "0750" }
    - user: { name: "{{app}}", system: true, shell: /usr/sbin/nologin }
    - dir: { path: /opt/old-app, state: absent }
"#;

fn stat(s: &Scenario, path: &str) -> String {
    s.sh("h1", &format!("stat -c '%a %U %G' {path}"))
        .trim()
        .to_string()
}

#[test]
fn dirs_converge_rerun_and_repair_drift() {
    let s = Scenario::new(1);
    s.sh(
        "h1",
        "mkdir -p /opt/old-app/releases/v1 && touch /opt/old-app/releases/v1/bin",
    );
    s.playbook(SITE);

    s.diff()
        .expect_code(2)
        .expect_stdout_contains("+++ h1:/opt/myapp/config (desired)")
        .expect_stdout_contains("+type: directory")
        .expect_stdout_contains("-type: directory");
    assert_eq!(
        s.hosts.exec("h1", "test -e /opt/myapp").status.code(),
        Some(1)
    );

    s.converge().expect_code(0).expect_changed("h1", 3);
    assert_eq!(stat(&s, "/opt/myapp/config"), "750 myapp myapp");
    assert_eq!(stat(&s, "/opt/myapp"), "755 root root");
    assert_eq!(
        s.hosts.exec("h1", "test -e /opt/old-app").status.code(),
        Some(1)
    );

    s.converge().expect_code(0).expect_changed("h1", 0);
    s.diff().expect_code(0);

    s.sh(
        "h1",
        "chmod 2777 /opt/myapp/config && chown root /opt/myapp/config",
    );
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("-mode: 2777\n-owner: root\n+mode: 0750\n+owner: myapp");
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(stat(&s, "/opt/myapp/config"), "750 myapp myapp");
    s.diff().expect_code(0);
}

#[test]
fn removing_a_top_level_dir_is_refused_before_any_host() {
    let s = Scenario::new(1);
    s.playbook("- hosts: all\n  tasks:\n    - dir: { path: /opt, state: absent }\n");
    s.converge()
        .expect_code(3)
        .expect_stderr_contains("site.yml:3:20: dir: `path`: refusing to remove `/opt`");
    assert_eq!(s.sh("h1", "test -d /opt && echo yes").trim(), "yes");
}
