//! Health-checked restarts on a real host: a restart handler with `health:` that finds
//! the service unhealthy after a config or unit change puts back the files changed for
//! it in this run, restarts it on the old ones and fails saying what it restored.

use crate::scenario::{Run, Scenario};

/// A service that reads every /etc/demo/*.conf at start: `mode=crash` makes it exit at
/// once, `mode=sick` makes /healthz answer 500. Each start is logged with its config.
const APP: &str = r#"#!/usr/bin/python3
import glob, http.server, os, sys
conf = "".join(open(p).read() for p in sorted(glob.glob("/etc/demo/*.conf")))
with open("/var/log/demo-starts", "a") as f:
    f.write(" ".join(l for l in conf.split("\n") if l.startswith("mode=")) + "\n")
if "mode=crash" in conf:
    sys.exit("demo: bad config")
code = 500 if "mode=sick" in conf else 200
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(code if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// In the config: never to be shown, restored or not.
const TOKEN: &str = "tok-5f0c2a9e";

const HANDLER: &str = r#"
  handlers:
    - name: restart demo
      service:
        name: demo
        state: restarted
        health: { url: "http://127.0.0.1:8080/healthz", timeout: 3 }
"#;

/// The site: the app, its config, `extra_tasks`, its unit (listening on `port`).
fn site(extra_tasks: &str) -> String {
    format!(
        r#"
- hosts: all
  vars: {{ mode: ok, port: 8080, token: {TOKEN} }}
  secrets: [token]
  tasks:
    - name: app
      file: {{ path: /usr/local/bin/demo-app, src: files/demo-app, mode: "0755" }}
      notify: restart demo
    - dir: {{ path: /etc/demo }}
    - name: config
      file: {{ path: /etc/demo/app.conf, content: "mode={{{{mode}}}}\ntoken={{{{token}}}}\n", mode: "0640" }}
      notify: restart demo
{extra_tasks}    - name: unit
      systemd_unit: {{ name: demo, exec_start: /usr/local/bin/demo-app,
                      environment: {{ PORT: "{{{{port}}}}" }}, enabled: true, state: started }}
      notify: restart demo
{HANDLER}"#
    )
}

fn converge(s: &Scenario, vars: &[&str]) -> Run {
    let mut args = vec!["site.yml"];
    for v in vars {
        args.extend(["-e", v]);
    }
    s.run(&args)
}

fn starts(s: &Scenario) -> Vec<String> {
    s.sh("h1", "cat /var/log/demo-starts 2>/dev/null || true")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Active and answering 200 on /healthz.
fn assert_healthy(s: &Scenario) {
    assert_eq!(s.sh("h1", "systemctl is-active demo").trim(), "active");
    assert_eq!(
        s.sh(
            "h1",
            "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/healthz"
        ),
        "200"
    );
}

fn setup() -> Scenario {
    let s = Scenario::new(1);
    s.file("files/demo-app", APP);
    s.playbook(&site(""));
    converge(&s, &[]).expect_code(0);
    assert_healthy(&s);
    s
}

#[test]
fn a_config_change_that_breaks_the_service_is_rolled_back() {
    let s = setup();
    s.run(&["diff", "site.yml", "-e", "mode=good"])
        .expect_code(2)
        .expect_stdout_contains("+health: GET http://127.0.0.1:8080/healthz after the restart");

    // A good change: one restart, checked, ok.
    let before = starts(&s).len();
    converge(&s, &["mode=good"])
        .expect_code(0)
        .expect_changed("h1", 2);
    assert_eq!(starts(&s)[before..], ["mode=good"]);
    assert_healthy(&s);

    // A config the service starts with but answers 500 on: put back, healthy again.
    let sick = converge(&s, &["mode=sick"]);
    assert!(!sick.stdout.contains(TOKEN), "{}", sick.stdout);
    sick.expect_code(1).expect_stdout_contains(
        "demo unhealthy after restart: GET http://127.0.0.1:8080/healthz returned 500 after 3 s; \
         restored /etc/demo/app.conf to its previous content; demo is healthy again",
    );
    assert_eq!(
        s.sh("h1", "cat /etc/demo/app.conf"),
        format!("mode=good\ntoken={TOKEN}\n")
    );
    assert_eq!(s.sh("h1", "stat -c %a /etc/demo/app.conf").trim(), "640");
    assert_eq!(starts(&s).last().map(String::as_str), Some("mode=good"));
    assert_healthy(&s);

    // A config the service dies of: the restart itself fails, the same rollback follows.
    converge(&s, &["mode=crash"])
        .expect_code(1)
        .expect_stdout_contains("demo unhealthy after restart: systemctl restart demo failed")
        .expect_stdout_contains(
            "restored /etc/demo/app.conf to its previous content; demo is healthy again",
        );
    assert_eq!(
        s.sh("h1", "cat /etc/demo/app.conf"),
        format!("mode=good\ntoken={TOKEN}\n")
    );
    assert_healthy(&s);

    // A new file that breaks it is removed again.
    s.playbook(&site(
        "    - name: override\n      file: { path: /etc/demo/zz-override.conf, content: \"mode=sick\\n\" }\n      notify: restart demo\n",
    ));
    converge(&s, &["mode=good"]).expect_code(1).expect_stdout_contains(
        "returned 500 after 3 s; removed /etc/demo/zz-override.conf (new in this run); demo is healthy again",
    );
    assert_eq!(
        s.sh("h1", "ls /etc/demo"),
        "app.conf\n",
        "the new file is gone"
    );
    assert_healthy(&s);

    // A file too large for the probe to read is put back from the copy its write kept.
    let data = "    - name: data\n      file: { path: /var/lib/demo.bin, src: files/data.bin }\n      notify: restart demo\n";
    s.playbook(&site(data));
    s.file("files/data.bin", &"1".repeat(300 * 1024));
    converge(&s, &["mode=good"]).expect_code(0);
    let old = s.sh("h1", "sha256sum /var/lib/demo.bin");
    s.file("files/data.bin", &"2".repeat(300 * 1024));
    converge(&s, &["mode=sick"]).expect_code(1).expect_stdout_contains(
        "returned 500 after 3 s; restored /var/lib/demo.bin and /etc/demo/app.conf to their previous content; demo is healthy again",
    );
    assert_eq!(s.sh("h1", "sha256sum /var/lib/demo.bin"), old);
    assert_healthy(&s);
}

#[test]
fn a_unit_change_that_breaks_the_service_is_rolled_back() {
    let s = setup();
    let unit = s.sh("h1", "cat /etc/systemd/system/demo.service");
    // The service moves to another port: /healthz on 8080 no longer answers.
    converge(&s, &["port=8081"])
        .expect_code(1)
        .expect_stdout_contains("demo unhealthy after restart: GET http://127.0.0.1:8080/healthz failed: ")
        .expect_stdout_contains(
            "restored /etc/systemd/system/demo.service to its previous content; demo is healthy again",
        );
    assert_eq!(s.sh("h1", "cat /etc/systemd/system/demo.service"), unit);
    // Reloaded before the restart: systemd runs the old unit again.
    assert_eq!(
        s.sh("h1", "systemctl show -p NeedDaemonReload,Environment demo"),
        "Environment=PORT=8080\nNeedDaemonReload=no\n"
    );
    assert_healthy(&s);
    converge(&s, &[]).expect_code(0).expect_changed("h1", 0);
}
