//! Gray releases on real hosts: `serial` batches strictly in order, a crashing build
//! stopping the rollout after its first batch, `max_fail_percentage` letting it go on,
//! `converge diff` diffing every host at once, and the watch window of `batch_pause`
//! (a build that dies after its health check passed is rolled back; Ctrl-C stops
//! cleanly with 130).

use crate::scenario::{Run, Scenario};
use serde_json::Value;
use std::io::{BufRead, BufReader};

/// `Restart=no`: a build that dies stays dead, as a crash loop would look to a check.
const UNIT: &str =
    "[Service]\nExecStart=/opt/demo/current/demo\nEnvironment=PORT=8080\nRestart=no\n";

/// Every host's first change is stamped, so the order of batches can be read back.
fn site(rollout: &str) -> String {
    format!(
        r#"
- hosts: all
  {rollout}
  vars: {{ version: v1 }}
  tasks:
    - name: first change
      command: "date +%s.%N >> /var/log/demo-first-change"
    - name: release
      release:
        name: demo
        version: "{{{{version}}}}"
        src: "build/demo-{{{{version}}}}"
        dest: /opt/demo
        service: demo
        health: {{ url: "http://127.0.0.1:8080/healthz", timeout: 5 }}
"#
    )
}

/// A stand-in for the Go binary that stamps each healthy answer; `extra` runs first
/// (a crash on a marked host, a death some seconds after start).
fn build(version: &str, extra: &str) -> String {
    format!(
        r#"#!/usr/bin/python3
import http.server, os, threading, time
V = "{version}"
{extra}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            with open("/var/log/demo-healthy", "a") as f:
                f.write("%s %.9f\n" % (V, time.time()))
        self.send_response(200 if self.path in ("/healthz", "/version") else 404)
        self.end_headers()
        self.wfile.write(V.encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#
    )
}

fn scenario(n: usize, rollout: &str) -> Scenario {
    let s = Scenario::new(n);
    for h in 1..=n {
        s.sh(
            &format!("h{h}"),
            &format!(
                "printf '{UNIT}' > /etc/systemd/system/demo.service && systemctl daemon-reload"
            ),
        );
    }
    s.file("build/demo-v1", &build("v1", ""));
    s.playbook(&site(rollout));
    s
}

fn deploy(s: &Scenario, version: &str, extra: &[&str]) -> Run {
    let v = format!("version={version}");
    let mut args = vec!["site.yml", "-e", &v];
    args.extend_from_slice(extra);
    s.run(&args)
}

fn live(s: &Scenario, host: &str) -> String {
    s.sh(host, "readlink /opt/demo/current").trim().to_string()
}

fn uploaded(s: &Scenario, host: &str, version: &str) -> bool {
    s.hosts
        .exec(host, &format!("test -e /opt/demo/releases/{version}"))
        .status
        .success()
}

/// Seconds since the epoch, as the hosts' shared kernel clock says.
fn times(s: &Scenario, host: &str, cmd: &str) -> Vec<f64> {
    s.sh(host, cmd)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn batches_go_strictly_in_order_and_a_failed_batch_stops_the_rollout() {
    let s = scenario(5, r#"serial: [1, "40%", "100%"]"#);
    let run = deploy(&s, "v1", &[]);
    run.expect_code(0)
        .expect_stdout_contains("batch 1/3 of play all: h1\n")
        .expect_stdout_contains("batch 2/3 of play all: h2, h3\n")
        .expect_stdout_contains("batch 3/3 of play all: h4, h5\n");
    // Each batch's releases were switched and answered healthy before the next batch's
    // first change, and its binaries went up only after that.
    let batches: [&[&str]; 3] = [&["h1"], &["h2", "h3"], &["h4", "h5"]];
    for pair in batches.windows(2) {
        let (done, next) = (pair[0], pair[1]);
        let healthy = done
            .iter()
            .flat_map(|h| times(&s, h, "awk '{print $2}' /var/log/demo-healthy | head -1"));
        let switched = done
            .iter()
            .flat_map(|h| times(&s, h, "stat -c %.9Y /opt/demo/current"));
        let finished = healthy.chain(switched).fold(f64::MIN, f64::max);
        let first_change = next
            .iter()
            .flat_map(|h| times(&s, h, "cat /var/log/demo-first-change"))
            .fold(f64::MAX, f64::min);
        let upload = next
            .iter()
            .flat_map(|h| times(&s, h, "stat -c %.9Y /opt/demo/releases/v1/demo"))
            .fold(f64::MAX, f64::min);
        assert!(
            finished < first_change && first_change < upload,
            "{done:?} finished at {finished}, {next:?} first changed at {first_change} and uploaded at {upload}"
        );
    }

    // Check mode changes nothing, so it diffs every host at once, and says so.
    s.file(
        "build/demo-v2",
        "#!/bin/sh\necho 'cannot read config' >&2; exit 1\n",
    );
    let diff = s.run(&["diff", "site.yml", "-e", "version=v2"]);
    diff.expect_code(2).expect_stdout_contains(
        "note: play all: serial is for applying; check mode changes nothing, so its 5 host(s) are diffed at once (applying goes in 3 batch(es): 1, 2, 2)",
    );
    for h in 1..=5 {
        diff.expect_stdout_contains(&format!("+++ h{h}:/opt/demo/current (desired)"));
    }
    assert!(!diff.stdout.contains("batch 1/3"), "{}", diff.stdout);

    // A build that crashes at once: rolled back on h1, and no other host is touched.
    let crash = deploy(&s, "v2", &[]);
    crash
        .expect_code(1)
        .expect_stdout_contains("rolled back to v1")
        .expect_stdout_contains(
            "not reached h2: rollout stopped after batch 1/3 of play all: 1 of 1 host failed or was unreachable (h1): the whole batch",
        )
        .expect_stdout_contains("h5  not reached: rollout stopped after batch 1/3");
    assert!(!crash.stdout.contains("batch 2/3"), "{}", crash.stdout);
    assert_eq!(live(&s, "h1"), "releases/v1");
    assert_eq!(s.sh("h1", "systemctl is-active demo").trim(), "active");
    for h in ["h2", "h3", "h4", "h5"] {
        assert!(!uploaded(&s, h, "v2"), "{h} got v2");
        assert_eq!(
            s.sh(h, "wc -l < /var/log/demo-first-change").trim(),
            "1",
            "{h} was changed"
        );
    }
    // --json says the same: which batch stopped the rollout, why, and who was not reached
    // (the rerun refuses the rolled-back build on h1 at once, so batch 1 fails again).
    let json = deploy(&s, "v2", &["--json"]);
    json.expect_code(1);
    let doc: Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    let rollout = &doc["rollout"];
    assert_eq!(rollout["stopped"]["batch"], 1, "{rollout}");
    assert_eq!(rollout["stopped"]["batches"], 3);
    assert_eq!(rollout["stopped"]["play"], "all");
    assert!(
        rollout["stopped"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("1 of 1 host failed or was unreachable (h1)"),
        "{rollout}"
    );
    assert_eq!(
        rollout["not_reached"],
        serde_json::json!(["h2", "h3", "h4", "h5"])
    );
    assert_eq!(doc["recap"]["h3"]["not_reached"], true);
    assert!(
        doc["hosts"]["h3"]["not_reached"]
            .as_str()
            .unwrap()
            .contains("after batch 1/3")
    );
    assert!(doc["recap"]["h1"].get("not_reached").is_none());

    // max_fail_percentage: 50 lets one failure in the 2-host batch pass (it must be
    // exceeded, as in Ansible), so the last batch is still released.
    s.sh("h3", "touch /etc/demo-broken");
    s.file(
        "build/demo-v3",
        &build(
            "v3",
            "if os.path.exists('/etc/demo-broken'): raise SystemExit('broken host')",
        ),
    );
    s.file(
        "tolerant.yml",
        &site("serial: [1, \"40%\", \"100%\"]\n  max_fail_percentage: 50"),
    );
    s.run(&["tolerant.yml", "-e", "version=v3"])
        .expect_code(1)
        .expect_stdout_contains("batch 3/3 of play all: h4, h5");
    for h in ["h1", "h2", "h4", "h5"] {
        assert_eq!(live(&s, h), "releases/v3", "{h}");
    }
    assert_eq!(live(&s, "h3"), "releases/v1");
}

#[test]
fn the_watch_window_rolls_back_a_build_that_dies_after_its_health_check_and_ctrl_c_stops_it() {
    let s = scenario(5, "serial: 2\n  batch_pause: 12s");
    deploy(&s, "v1", &[])
        .expect_code(0)
        .expect_stdout_contains("pause 12s after batch 1/3 of play all: watching 2 host(s)\n    h1: release demo v1 (GET http://127.0.0.1:8080/healthz)\n    h2: release demo v1")
        .expect_stdout_contains("pause over after batch 2/3 of play all: the 4 watched host(s) stayed healthy");

    // Healthy for a few seconds, long enough to pass the release's own check, then gone.
    s.file(
        "build/demo-v2",
        &build("v2", "threading.Timer(5, lambda: os._exit(1)).start()"),
    );
    let run = deploy(&s, "v2", &[]);
    run.expect_code(1)
        .expect_stdout_contains("changed  h1: release")
        .expect_stdout_contains("failed   h1: watch: release")
        .expect_stdout_contains(
            "release demo v2 (GET http://127.0.0.1:8080/healthz) turned unhealthy during the pause after batch 1/3 of play all: GET http://127.0.0.1:8080/healthz failed",
        )
        .expect_stdout_contains("rolled back to v1")
        .expect_stdout_contains(
            "not reached h3: rollout stopped after batch 1/3 of play all: watched hosts turned unhealthy during the pause: h1, h2\n",
        );
    for h in ["h1", "h2"] {
        let v = live(&s, h);
        let state = s.sh(h, "cat /opt/demo/.converge-release");
        assert!(state.contains("current=v1 "), "{h}: {state}");
        assert_eq!(v, "releases/v1", "{h}: {state}");
        assert!(state.contains("rolled_back=v2 "), "{h}: {state}");
    }
    for h in ["h3", "h4", "h5"] {
        assert!(!uploaded(&s, h, "v2"), "{h} got v2");
    }

    // Ctrl-C in the pause: 130 at once, the released batch complete, nothing else touched.
    s.file("build/demo-v3", &build("v3", ""));
    let mut child = s.start(&["site.yml", "-e", "version=v3"]);
    let pid = child.id().to_string();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut seen = String::new();
    while !seen.contains("pause 12s after batch 1/3") {
        let mut line = String::new();
        if stdout.read_line(&mut line).expect("read converge's stdout") == 0 {
            panic!("converge ended before its pause:\n{seen}");
        }
        seen.push_str(&line);
    }
    let interrupted_at = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    // What the reader holds already, then the rest until converge closes its stdout.
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read the rest");
    let out = child.wait_with_output().expect("converge ends");
    let waited = interrupted_at.elapsed();
    eprintln!("{seen}{rest}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(130));
    assert!(waited.as_secs() < 5, "Ctrl-C took {waited:?}");
    assert!(
        rest.contains("not reached h3: rollout stopped after batch 1/3 of play all: interrupted (Ctrl-C) during the pause"),
        "{rest}"
    );
    for h in ["h1", "h2"] {
        assert_eq!(live(&s, h), "releases/v3", "{h}");
        assert!(
            s.sh(h, "cat /opt/demo/.converge-release")
                .contains("current=v3 ")
        );
    }
    for h in ["h3", "h4", "h5"] {
        assert!(!uploaded(&s, h, "v3"), "{h} got v3");
    }
}
