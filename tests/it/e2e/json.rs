//! What scripts and cron read: `--json` (one document of the spec's shape), `-q`,
//! secrets and `no_log`, tag selection, `when:` skips, and a failure that skips only
//! what depends on it.

use crate::scenario::{Run, Scenario};
use serde_json::Value;

const SECRET: &str = "hunter2-s3cret";

const SITE: &str = r#"
- name: json
  hosts: all
  vars: { app: demo }
  vars_files: [vars/secret.yml]
  secrets: [db_password]
  tasks:
    - name: config
      file: { path: /etc/demo.conf, content: "app={{app}}\n", mode: "0644" }
      tags: [config]
    - name: layout
      dir: { path: "/opt/demo/{{item}}" }
      loop: [a, b]
      tags: [layout]
    - name: credentials
      file: { path: /etc/demo.secret, content: "password={{db_password}}\n", mode: "0600" }
      tags: [config]
    - name: token
      file: { path: /etc/demo.token, content: "token-value\n" }
      no_log: true
    - name: plan9 only
      file: { path: /etc/demo.plan9, content: "x\n" }
      when: (eq facts.os.id "plan9")
"#;

/// The one JSON document on stdout; anything else there fails the test.
fn document(run: &Run) -> Value {
    let mut documents = serde_json::Deserializer::from_str(&run.stdout).into_iter::<Value>();
    let doc = documents
        .next()
        .unwrap_or_else(|| panic!("no JSON on stdout:\n{}", run.stdout))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", run.stdout));
    assert!(
        documents.next().is_none(),
        "more than one document:\n{}",
        run.stdout
    );
    doc
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// `hosts.h1.tasks`, each checked for the spec's fields and types.
fn tasks(doc: &Value) -> &[Value] {
    let tasks = doc["hosts"]["h1"]["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no hosts.h1.tasks: {doc:#}"));
    for t in tasks {
        assert_eq!(
            keys(t),
            [
                "diff",
                "duration_ms",
                "error",
                "item",
                "module",
                "name",
                "skip_reason",
                "status"
            ],
            "{t:#}"
        );
        assert!(t["name"].is_string() && t["module"].is_string(), "{t:#}");
        assert!(
            ["ok", "changed", "failed", "skipped"].contains(&t["status"].as_str().unwrap_or("")),
            "{t:#}"
        );
        for nullable in ["diff", "error", "skip_reason"] {
            assert!(
                t[nullable].is_null() || t[nullable].is_string(),
                "{nullable}: {t:#}"
            );
        }
        assert!(t["duration_ms"].is_u64(), "{t:#}");
    }
    tasks
}

fn task<'a>(doc: &'a Value, name: &str) -> &'a Value {
    tasks(doc)
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name:?} in {doc:#}"))
}

fn names(doc: &Value) -> Vec<&str> {
    tasks(doc)
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default())
        .collect()
}

/// The recap of h1, checked for exactly the spec's keys.
fn recap(doc: &Value) -> (u64, u64, u64, u64) {
    let r = &doc["recap"]["h1"];
    assert_eq!(
        keys(r),
        ["changed", "failed", "ok", "skipped", "unreachable"],
        "{r:#}"
    );
    assert_eq!(r["unreachable"], false, "{r:#}");
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k}: {r:#}"));
    (n("ok"), n("changed"), n("failed"), n("skipped"))
}

fn no_secret(run: &Run) {
    assert!(
        !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
        "the secret leaked:\n{}{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn json_quiet_tags_and_secrets() {
    let s = Scenario::new(1);
    s.playbook(SITE)
        .file("vars/secret.yml", &format!("db_password: {SECRET}\n"));

    // Check mode on a fresh host: drift, and the document says check_mode.
    let diff = s.run(&["diff", "site.yml", "--json"]);
    diff.expect_code(2);
    no_secret(&diff);
    let doc = document(&diff);
    assert_eq!(keys(&doc), ["check_mode", "hosts", "recap", "version"]);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["check_mode"], true);
    assert_eq!(recap(&doc), (0, 5, 0, 1));
    assert_eq!(
        s.hosts.exec("h1", "test -e /etc/demo.conf").status.code(),
        Some(1),
        "diff changed the host"
    );

    // Apply: one entry per loop item, secrets hidden, no_log's diff hidden whole.
    let apply = s.run(&["site.yml", "--json"]);
    apply.expect_code(0);
    no_secret(&apply);
    let doc = document(&apply);
    assert_eq!(doc["check_mode"], false);
    assert_eq!(recap(&doc), (0, 5, 0, 1));
    assert_eq!(
        names(&doc),
        [
            "config",
            "layout [a]",
            "layout [b]",
            "credentials",
            "token",
            "plan9 only"
        ]
    );
    let config = task(&doc, "config");
    assert_eq!(config["module"], "file");
    assert_eq!(config["item"], Value::Null);
    assert_eq!(config["status"], "changed");
    assert_eq!(config["error"], Value::Null);
    assert_eq!(config["skip_reason"], Value::Null);
    let config_diff = config["diff"].as_str().unwrap_or_default();
    assert!(
        config_diff.contains("+++ h1:/etc/demo.conf (desired)")
            && config_diff.contains("+app=demo"),
        "{config_diff}"
    );
    for item in ["a", "b"] {
        let t = task(&doc, &format!("layout [{item}]"));
        assert_eq!(t["module"], "dir");
        assert_eq!(t["item"], item);
        assert_eq!(t["status"], "changed");
    }
    let credentials = task(&doc, "credentials")["diff"]
        .as_str()
        .unwrap_or_default();
    assert!(
        credentials.contains("content: changed (secret)"),
        "{credentials}"
    );
    let token = task(&doc, "token");
    assert_eq!(token["status"], "changed");
    assert_eq!(token["diff"], "<secret>");
    assert!(!apply.stdout.contains("token-value"), "{}", apply.stdout);
    let plan9 = task(&doc, "plan9 only");
    assert_eq!(plan9["status"], "skipped");
    assert_eq!(plan9["diff"], Value::Null);
    let reason = plan9["skip_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("when") && reason.contains("plan9"),
        "{reason}"
    );
    assert_eq!(
        s.sh("h1", "cat /etc/demo.secret"),
        format!("password={SECRET}\n")
    );

    // Nothing to do: -q prints nothing at all; diff --json says so with exit 0.
    let quiet = s.run(&["site.yml", "-q"]);
    quiet.expect_code(0);
    assert_eq!(quiet.stdout, "", "-q printed on a no-change run");
    assert_eq!(quiet.stderr, "", "-q printed on a no-change run");
    let clean = s.run(&["diff", "site.yml", "--json"]);
    clean.expect_code(0);
    assert_eq!(recap(&document(&clean)), (5, 0, 0, 1));

    // Drift: -q prints the change, its diff and the recap; secrets stay hidden.
    s.sh(
        "h1",
        "echo tampered >> /etc/demo.conf; echo old > /etc/demo.secret",
    );
    let quiet = s.run(&["site.yml", "-q"]);
    quiet.expect_code(0);
    no_secret(&quiet);
    quiet
        .expect_stdout_contains("changed  h1: config")
        .expect_stdout_contains("-tampered")
        .expect_stdout_contains("changed  h1: credentials")
        .expect_stdout_contains("content: changed (secret)")
        .expect_changed("h1", 2);
    assert!(!quiet.stdout.contains("-old"), "{}", quiet.stdout);

    // -t selects by tag, --skip-tags leaves tagged tasks out.
    let tagged = s.run(&["site.yml", "--json", "-t", "layout"]);
    tagged.expect_code(0);
    assert_eq!(names(&document(&tagged)), ["layout [a]", "layout [b]"]);
    let skipped = s.run(&["site.yml", "--json", "--skip-tags", "config,layout"]);
    skipped.expect_code(0);
    assert_eq!(names(&document(&skipped)), ["token", "plan9 only"]);
    let both = s.run(&[
        "diff",
        "site.yml",
        "--json",
        "--tags",
        "config,layout",
        "--skip-tags",
        "layout",
    ]);
    both.expect_code(0);
    assert_eq!(names(&document(&both)), ["config", "credentials"]);
}

const FAILING: &str = r#"
- name: migrations
  hosts: all
  vars_files: [vars/secret.yml]
  secrets: [db_password]
  tasks:
    - name: migrate
      command: "echo connecting with {{db_password}}; echo 'login failed for {{db_password}}' >&2; exit 3"
    - name: after migrate
      file: { path: /root/after-migrate, content: "x\n" }
      requires: migrate
    - name: report
      file: { path: /root/report, content: "x\n" }
      requires: after migrate
    - name: independent
      file: { path: /root/independent, content: "x\n" }
"#;

#[test]
fn a_failure_skips_only_its_dependents_and_hides_secrets() {
    let s = Scenario::new(1);
    s.playbook(FAILING)
        .file("vars/secret.yml", &format!("db_password: {SECRET}\n"));

    let human = s.converge();
    human.expect_code(1);
    no_secret(&human);
    assert_eq!(human.recap("h1"), (0, 1, 1, 2, 0));
    human
        .expect_stdout_contains("failed   h1: migrate")
        .expect_stdout_contains("login failed for <secret>")
        .expect_stdout_contains("skipped  h1: after migrate")
        .expect_stdout_contains("changed  h1: independent");
    for (path, exists) in [
        ("/root/after-migrate", false),
        ("/root/report", false),
        ("/root/independent", true),
    ] {
        let code = s.hosts.exec("h1", &format!("test -e {path}")).status.code();
        assert_eq!(code, Some(if exists { 0 } else { 1 }), "{path}");
    }

    let json = s.run(&["site.yml", "--json"]);
    json.expect_code(1);
    no_secret(&json);
    let doc = document(&json);
    assert_eq!(recap(&doc), (1, 0, 1, 2));
    let migrate = task(&doc, "migrate");
    assert_eq!(migrate["status"], "failed");
    let error = migrate["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("exited 3") && error.contains("login failed for <secret>"),
        "{error}"
    );
    for dependent in ["after migrate", "report"] {
        let t = task(&doc, dependent);
        assert_eq!(t["status"], "skipped", "{t:#}");
        let reason = t["skip_reason"].as_str().unwrap_or_default();
        assert!(reason.contains("failed"), "{reason}");
    }
    assert_eq!(task(&doc, "independent")["status"], "ok");
}
