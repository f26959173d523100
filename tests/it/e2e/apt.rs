//! `apt` on a real host, against the harness's local repository (hello, tree, figlet;
//! the hosts start with empty package lists).

use crate::scenario::Scenario;

fn installed(s: &Scenario, pkg: &str) -> bool {
    s.hosts
        .exec(
            "h1",
            &format!("dpkg-query -W -f='${{Status}}' {pkg} | grep -q ' installed$'"),
        )
        .status
        .success()
}

#[test]
fn apt_installs_once_and_repairs_drift() {
    let s = Scenario::new(1);
    // Without update_cache the empty lists know nothing: a clear failure.
    s.playbook("- hosts: all\n  tasks:\n    - apt: { name: hello }\n");
    s.converge()
        .expect_code(1)
        .expect_stdout_contains("hello: apt has no installation candidate (if the package lists are stale, set update_cache: true)");

    s.playbook("- hosts: all\n  tasks:\n    - apt: { name: [hello, tree], update_cache: true }\n");
    s.diff().expect_code(2).expect_stdout_contains(
        "-hello: absent\n-tree: absent\n+hello: installed\n+tree: installed",
    );
    assert!(!installed(&s, "hello"));

    s.converge().expect_code(0).expect_changed("h1", 1);
    assert!(installed(&s, "hello") && installed(&s, "tree"));
    s.converge().expect_code(0).expect_changed("h1", 0);
    s.diff().expect_code(0);

    // Drift: removed by hand; the lists are there now, so the diff has the version.
    s.sh(
        "h1",
        "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q tree >/dev/null",
    );
    let drift = s.diff();
    drift
        .expect_code(2)
        .expect_stdout_contains("-tree: absent\n+tree: installed (");
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert!(installed(&s, "tree"));

    s.playbook("- hosts: all\n  tasks:\n    - apt: { name: [hello, figlet], state: absent }\n");
    s.converge()
        .expect_code(0)
        .expect_changed("h1", 1)
        .expect_stdout_contains("+hello: absent");
    assert!(!installed(&s, "hello"));
    s.converge().expect_code(0).expect_changed("h1", 0);

    s.playbook("- hosts: all\n  tasks:\n    - apt: { name: [hello, tree], state: latest }\n");
    s.converge().expect_code(0).expect_changed("h1", 1);
    s.converge().expect_code(0).expect_changed("h1", 0);
}
