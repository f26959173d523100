//! `http_check` on a real host: the GET goes through the SSH connection to a server
//! that listens only on the host's loopback.

use crate::scenario::Scenario;

#[test]
fn http_check_from_the_hosts_point_of_view() {
    let s = Scenario::new(1);
    s.sh(
        "h1",
        "systemd-run --quiet --unit=web python3 -m http.server 8081 --bind 127.0.0.1 --directory /etc \
         && for i in $(seq 50); do curl -fso /dev/null http://127.0.0.1:8081/hostname && exit 0; sleep 0.1; done; exit 1",
    );
    s.playbook(
        "- hosts: all\n  tasks:\n\
         \x20   - http_check: { url: \"http://127.0.0.1:8081/hostname\" }\n\
         \x20   - http_check: { url: \"http://127.0.0.1:8081/nosuch\", status: 404, timeout: 5 }\n",
    );
    s.converge().expect_code(0).expect_changed("h1", 0);
    assert_eq!(s.converge().recap("h1").0, 2);
    // Check mode sends nothing and reports no drift.
    s.diff()
        .expect_code(0)
        .expect_stdout_contains("check mode: GET http://127.0.0.1:8081/hostname not sent");

    s.playbook(
        "- hosts: all\n  tasks:\n    - http_check: { url: \"http://127.0.0.1:8082/\", timeout: 1 }\n",
    );
    let run = s.converge();
    run.expect_code(1)
        .expect_stdout_contains("GET http://127.0.0.1:8082/ failed: ");
    assert_eq!(
        run.recap("h1").4,
        0,
        "a refused port is not an unreachable host"
    );

    s.playbook("- hosts: all\n  tasks:\n    - http_check: { url: \"https://127.0.0.1:8081/\" }\n");
    s.converge()
        .expect_code(3)
        .expect_stderr_contains("https is not supported");
}
