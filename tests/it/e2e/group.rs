//! `group` on a real host: created with its gid, drift repaired, removed.

use crate::scenario::Scenario;

#[test]
fn groups_converge_rerun_repair_and_remove() {
    let s = Scenario::new(1);
    s.playbook("- hosts: all\n  tasks:\n    - group: { name: ops, gid: 1500 }\n");
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("+group: ops\n+gid: 1500");
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(s.sh("h1", "getent group ops").trim(), "ops:x:1500:");
    s.converge().expect_code(0).expect_changed("h1", 0);

    s.sh("h1", "groupmod -g 1600 ops");
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("-gid: 1600\n+gid: 1500");
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(s.sh("h1", "getent group ops").trim(), "ops:x:1500:");

    s.playbook("- hosts: all\n  tasks:\n    - group: { name: ops, state: absent }\n");
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("-group: ops");
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(
        s.hosts.exec("h1", "getent group ops").status.code(),
        Some(2)
    );
    s.converge().expect_code(0).expect_changed("h1", 0);
}
