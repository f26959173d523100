//! `release` on a real host: first deploy, idempotent rerun, upgrade with the restart
//! handler merged, an unhealthy build rolled back and not redeployed, a stopped service
//! started, old releases pruned.

use crate::scenario::{Run, Scenario};

const UNIT: &str = "[Unit]\nDescription=converge e2e demo\n[Service]\nExecStart=/opt/demo/current/demo\nEnvironment=PORT=8080\n";

const SITE: &str = r#"
- hosts: all
  vars: { version: v1 }
  tasks:
    - name: config
      file: { path: /etc/demo.conf, content: "{{version}}\n" }
      notify: restart demo
    - name: release
      release:
        name: demo
        version: "{{version}}"
        src: "build/demo-{{version}}"
        dest: /opt/demo
        keep: 3
        service: demo
        health: { url: "http://127.0.0.1:8080/healthz", timeout: 5 }
  handlers:
    - name: restart demo
      service: { name: demo, state: restarted }
"#;

/// A stand-in for the Go binary: logs each start, answers /version and /healthz.
fn build(version: &str, health: u16) -> String {
    format!(
        r#"#!/usr/bin/python3
import http.server, os
V = "{version}"
with open("/var/log/demo-starts", "a") as f:
    f.write(V + "\n")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code, body = {{"/healthz": ({health}, "ok"), "/version": (200, V)}}.get(self.path, (404, "no"))
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body.encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#
    )
}

fn deploy(s: &Scenario, version: &str) -> Run {
    s.run(&["site.yml", "-e", &format!("version={version}")])
}

fn starts(s: &Scenario) -> String {
    s.sh("h1", "cat /var/log/demo-starts 2>/dev/null || true")
}

fn live(s: &Scenario) -> String {
    s.sh("h1", "readlink /opt/demo/current").trim().to_string()
}

#[test]
fn release_transaction_rollback_and_pruning() {
    let s = Scenario::new(1);
    s.sh(
        "h1",
        &format!("printf '{UNIT}' > /etc/systemd/system/demo.service && systemctl daemon-reload"),
    );
    for v in ["v1", "v2", "v4", "v5"] {
        s.file(&format!("build/demo-{v}"), &build(v, 200));
    }
    s.file("build/demo-v3", &build("v3", 500));
    s.playbook(SITE);

    s.diff()
        .expect_code(2)
        .expect_stdout_contains("+++ h1:/opt/demo/current (desired)\n@@ -0,0 +1 @@\n+version: v1")
        .expect_stdout_contains("+++ h1:/opt/demo/releases/v1/demo (desired)")
        .expect_stdout_contains("-active: no\n+active: yes");
    assert_eq!(
        s.hosts.exec("h1", "test -e /opt/demo").status.code(),
        Some(1)
    );

    // First deploy: the config change notified the handler, the release's start folded it in.
    s.converge()
        .expect_code(0)
        .expect_changed("h1", 2)
        .expect_stdout_contains("restart merged");
    assert_eq!(starts(&s), "v1\n");
    assert_eq!(live(&s), "releases/v1");
    assert_eq!(s.sh("h1", "curl -fs http://127.0.0.1:8080/version"), "v1");
    assert_eq!(
        s.sh("h1", "stat -c %a /opt/demo/releases/v1/demo").trim(),
        "755"
    );

    s.converge().expect_code(0).expect_changed("h1", 0);
    s.diff().expect_code(0);
    assert_eq!(starts(&s), "v1\n");

    // Upgrade: one restart for the new binary and the new config together.
    deploy(&s, "v2")
        .expect_code(0)
        .expect_changed("h1", 2)
        .expect_stdout_contains("-version: v1\n+version: v2");
    assert_eq!(starts(&s), "v1\nv2\n");
    assert!(
        s.sh("h1", "cat /opt/demo/.converge-release")
            .contains("previous=v1 ")
    );

    // An unhealthy build: rolled back to v2, which answers again.
    let bad = deploy(&s, "v3");
    bad.expect_code(1).expect_stdout_contains(
        "v3 unhealthy: GET http://127.0.0.1:8080/healthz returned 500 after 5 s; rolled back to v2",
    );
    assert_eq!(live(&s), "releases/v2");
    assert_eq!(s.sh("h1", "curl -fs http://127.0.0.1:8080/version"), "v2");
    assert_eq!(starts(&s), "v1\nv2\nv3\nv2\n");

    // The cron rerun does not deploy it again.
    deploy(&s, "v3")
        .expect_code(1)
        .expect_stdout_contains("v3 was rolled back on this host");
    assert_eq!(starts(&s), "v1\nv2\nv3\nv2\n");

    // Drift: the service stopped; the release starts it without redeploying.
    s.sh("h1", "systemctl stop demo");
    let drift = s.run(&["diff", "site.yml", "-e", "version=v2"]);
    drift
        .expect_code(2)
        .expect_stdout_contains("--- h1:service demo (current)\n+++ h1:service demo (desired)\n@@ -1 +1 @@\n-active: no\n+active: yes");
    deploy(&s, "v2").expect_code(0).expect_changed("h1", 2);
    assert_eq!(s.sh("h1", "systemctl is-active demo").trim(), "active");

    // keep: 3 counts the live one; the previous one is never pruned.
    deploy(&s, "v4").expect_code(0);
    assert_eq!(s.sh("h1", "ls /opt/demo/releases"), "v2\nv3\nv4\n");
    deploy(&s, "v5")
        .expect_code(0)
        .expect_stdout_contains("-v3\n");
    assert_eq!(s.sh("h1", "ls /opt/demo/releases"), "v2\nv4\nv5\n");
    deploy(&s, "v5").expect_code(0).expect_changed("h1", 0);
}

#[test]
fn a_build_that_dies_at_once_is_rolled_back_without_a_health_check() {
    let s = Scenario::new(1);
    s.sh(
        "h1",
        "printf '[Service]\\nExecStart=/opt/demo/current/demo\\nRestart=no\\n' > /etc/systemd/system/demo.service && systemctl daemon-reload",
    );
    s.file("build/demo-v1", "#!/bin/sh\nexec sleep infinity\n");
    s.file(
        "build/demo-v2",
        "#!/bin/sh\necho 'cannot read config' >&2; exit 1\n",
    );
    s.playbook(
        "- hosts: all\n  tasks:\n    - release: { name: demo, version: \"{{version}}\", src: \"build/demo-{{version}}\", dest: /opt/demo, service: demo }\n",
    );
    deploy(&s, "v1").expect_code(0);
    assert_eq!(s.sh("h1", "systemctl is-active demo").trim(), "active");
    deploy(&s, "v2")
        .expect_code(1)
        .expect_stdout_contains("v2 unhealthy: systemctl restart demo failed")
        .expect_stdout_contains("rolled back to v1");
    assert_eq!(live(&s), "releases/v1");
    assert_eq!(s.sh("h1", "systemctl is-active demo").trim(), "active");
}
