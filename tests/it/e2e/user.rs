//! `user` on a real host: creation with its groups (ordered after the `group` tasks),
//! changes of only what differs, create_home, removal.

use crate::scenario::Scenario;

const SITE: &str = r#"
- hosts: all
  vars: { app: myapp }
  tasks:
    # Listed before the group it needs: the implicit edge orders the group first.
    - user: { name: "{{app}}", system: true, group: ops, groups: [adm], shell: /usr/sbin/nologin, home: "/opt/{{app}}" }
    - group: { name: ops, system: true }
    - user: { name: dev, groups: [ops], shell: /bin/bash, create_home: true }
"#;

#[test]
fn users_converge_rerun_and_repair_drift() {
    let s = Scenario::new(1);
    s.playbook(SITE);
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("+++ h1:user myapp (desired)")
        .expect_stdout_contains("+system: yes\n+group: ops\n+groups: adm\n");

    s.converge().expect_code(0).expect_changed("h1", 3);
    let passwd = s.sh("h1", "getent passwd myapp");
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(fields[5..], ["/opt/myapp", "/usr/sbin/nologin"]);
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "a system uid: {passwd}"
    );
    assert_eq!(s.sh("h1", "id -Gn myapp").trim(), "ops adm");
    assert_eq!(
        s.hosts.exec("h1", "test -e /opt/myapp").status.code(),
        Some(1)
    );
    assert_eq!(s.sh("h1", "id -Gn dev").trim(), "dev ops");
    assert_eq!(s.sh("h1", "stat -c '%U %G' /home/dev").trim(), "dev dev");
    assert!(s.sh("h1", "ls -A /home/dev").contains(".bashrc"));

    s.converge().expect_code(0).expect_changed("h1", 0);
    s.diff().expect_code(0);

    s.sh(
        "h1",
        "usermod -s /bin/sh -a -G sudo myapp && rm -rf /home/dev",
    );
    s.diff()
        .expect_code(2)
        .expect_stdout_contains(
            "-groups: adm, sudo\n-shell: /bin/sh\n+groups: adm\n+shell: /usr/sbin/nologin",
        )
        .expect_stdout_contains("-home_dir: missing\n+home_dir: present");
    s.converge().expect_code(0).expect_changed("h1", 2);
    assert_eq!(s.sh("h1", "id -Gn myapp").trim(), "ops adm");
    assert_eq!(s.sh("h1", "stat -c '%U' /home/dev").trim(), "dev");
    s.diff().expect_code(0);

    s.playbook("- hosts: all\n  tasks:\n    - user: { name: dev, state: absent }\n");
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(
        s.hosts.exec("h1", "getent passwd dev").status.code(),
        Some(2)
    );
    assert_eq!(s.sh("h1", "test -d /home/dev && echo kept").trim(), "kept");
    s.converge().expect_code(0).expect_changed("h1", 0);
}

#[test]
fn a_missing_group_fails_the_task_and_skips_what_needs_the_user() {
    let s = Scenario::new(1);
    s.playbook(
        "- hosts: all\n  tasks:\n    - user: { name: app, group: nosuchgroup }\n    \
         - dir: { path: /srv/app, owner: app }\n    - dir: { path: /srv/other }\n",
    );
    let run = s.converge();
    run.expect_code(1);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("group nosuchgroup does not exist"), "{all}");
    assert_eq!(run.recap("h1"), (0, 1, 1, 1, 0));
    assert_eq!(
        s.hosts.exec("h1", "getent passwd app").status.code(),
        Some(2)
    );
}

/// Creating an account makes later probes stale only where it shows: a path found absent
/// prints no owner's name and stays read, while a file already owned by the new uid (its
/// owner printed as a number before) is read again and found as it should be.
#[test]
fn a_new_account_rereads_only_the_paths_that_show_its_name() {
    let s = Scenario::new(1);
    s.sh(
        "h1",
        "printf 'x\\n' > /srv/owned && chown 4242:4242 /srv/owned",
    );
    s.playbook(
        "- hosts: all\n  tasks:\n    \
         - user: { name: app, uid: 4242 }\n    \
         - dir: { path: /srv/app, owner: app, group: app }\n    \
         - dir: { path: /srv/data, owner: app, group: app }\n",
    );
    // The first read, useradd and two mkdirs: nothing read again.
    let run = s.run(&["site.yml", "-v"]);
    run.expect_code(0).expect_changed("h1", 3);
    run.expect_stderr_contains("h1: 4 exec(s) over one connection");
    assert_eq!(s.sh("h1", "stat -c %U:%G /srv/data").trim(), "app:app");

    s.playbook(
        "- hosts: all\n  tasks:\n    \
         - user: { name: web, uid: 4243 }\n    \
         - name: owned\n      file: { path: /srv/owned, content: \"x\\n\", owner: web }\n",
    );
    s.sh("h1", "chown 4243 /srv/owned");
    let run = s.run(&["site.yml", "-v"]);
    run.expect_code(0).expect_changed("h1", 1);
    run.expect_stdout_contains("ok       h1: owned");
    // The first read, useradd, and the file read again.
    run.expect_stderr_contains("h1: 3 exec(s) over one connection");
}
