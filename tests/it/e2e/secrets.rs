//! Secrets on a real host: every form a template can give a secret (a helper, a field
//! of a structured secret, a value derived from one, a loop item, a command line, a
//! rendered file, a task name) is hidden in the human output, `-v`, `--json` and
//! `converge diff`, while the host gets the real values.

use crate::scenario::{Run, Scenario};

/// The playbook with secrets that end in `round`, so each round changes every file.
fn site(round: &str) -> String {
    format!(
        r#"
- hosts: all
  vars:
    app: demo
    pw: "it's\"p4ss-{round}"
    db: {{ user: billing_rw, password: "S3cr3tDb-{round}" }}
    keys: [kx1-{round}, kx2-{round}]
    dsn: "postgres://{{{{db.user}}}}:{{{{db.password}}}}@localhost/{{{{app}}}}"
    tokens: ["{{{{upper pw}}}}", "plain-token"]
  secrets: [pw, db, keys]
  tasks:
    - dir: {{ path: /etc/demo }}
    - name: app config
      template: {{ src: app.conf.hbs, dest: /etc/demo/app.conf }}
    - name: "seed {{{{lower pw}}}}"
      command: "printf '%s\n' {{{{quote pw}}}} {{{{json pw}}}} {{{{upper db.password}}}} > /etc/demo/seeded"
    - name: json
      file: {{ path: /etc/demo/pw.json, content: "{{{{json pw}}}}\n" }}
    - name: credential
      file: {{ path: "/etc/demo/{{{{item.name}}}}", content: "{{{{item.value}}}}\n" }}
      loop:
        - {{ name: upper, value: "{{{{upper pw}}}}" }}
        - {{ name: dsn, value: "{{{{dsn}}}}" }}
    - name: key
      command: "printf '%s\n' {{{{quote item}}}} > /etc/demo/key-{{{{upper item}}}}"
      loop: "{{{{keys}}}}"
"#
    )
}

const TEMPLATE: &str = "user={{db.user}}\npassword={{db.password}}\nshell={{quote pw}}\n\
dsn={{dsn}}\n{{#each tokens}}token={{this}}\n{{/each}}";

/// No form of any secret in what `converge` printed, however encoded.
fn assert_hidden(run: &Run) {
    let all = format!("{}{}", run.stdout, run.stderr).to_lowercase();
    for fragment in ["p4ss", "s3cr3tdb", "billing_rw", "kx1", "kx2"] {
        assert!(
            !all.contains(fragment),
            "`{fragment}` shows:\n{}{}",
            run.stdout,
            run.stderr
        );
    }
}

/// What the host holds after a run with secrets of `round`.
fn assert_written(s: &Scenario, round: &str) {
    let pw = format!("it's\"p4ss-{round}");
    let db = format!("S3cr3tDb-{round}");
    let dsn = format!("postgres://billing_rw:{db}@localhost/demo");
    assert_eq!(
        s.sh("h1", "cat /etc/demo/app.conf"),
        format!(
            "user=billing_rw\npassword={db}\nshell='it'\\''s\"p4ss-{round}'\ndsn={dsn}\n\
             token={}\ntoken=plain-token\n",
            pw.to_uppercase()
        )
    );
    assert_eq!(
        s.sh("h1", "cat /etc/demo/seeded"),
        format!("{pw}\n{pw}\n{}\n", db.to_uppercase())
    );
    assert_eq!(
        s.sh("h1", "cat /etc/demo/pw.json"),
        format!("\"it's\\\"p4ss-{round}\"\n")
    );
    assert_eq!(
        s.sh("h1", "cat /etc/demo/upper"),
        format!("{}\n", pw.to_uppercase())
    );
    assert_eq!(s.sh("h1", "cat /etc/demo/dsn"), format!("{dsn}\n"));
    assert_eq!(
        s.sh(
            "h1",
            &format!("cat /etc/demo/key-KX2-{}", round.to_uppercase())
        ),
        format!("kx2-{round}\n")
    );
    // A file a secret flowed into is readable by root only (no task sets a mode).
    assert_eq!(
        s.sh(
            "h1",
            "stat -c '%a %n' /etc/demo/app.conf /etc/demo/pw.json /etc/demo/upper /etc/demo/dsn"
        ),
        "600 /etc/demo/app.conf\n600 /etc/demo/pw.json\n600 /etc/demo/upper\n600 /etc/demo/dsn\n"
    );
}

#[test]
fn no_form_of_a_secret_shows_in_any_output() {
    let s = Scenario::new(1);
    s.playbook(&site("one")).file("app.conf.hbs", TEMPLATE);

    let dry = s.diff();
    dry.expect_code(2)
        .expect_stdout_contains("seed <secret>")
        .expect_stdout_contains("content: changed (secret)");
    assert_hidden(&dry);

    let json = s.run(&["--json", "site.yml"]);
    json.expect_code(0);
    assert_hidden(&json);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    assert!(report.to_string().contains("<secret>"), "{report}");
    assert_written(&s, "one");

    // New secrets: every file changes again, now shown with -v.
    s.playbook(&site("two"));
    let verbose = s.run(&["-v", "site.yml"]);
    verbose
        .expect_code(0)
        .expect_stdout_contains("seed <secret>")
        .expect_stdout_contains("content: changed (secret)");
    assert_hidden(&verbose);
    assert_written(&s, "two");

    s.playbook(&site("three"));
    let plain = s.converge();
    plain.expect_code(0);
    assert_hidden(&plain);
    assert_written(&s, "three");

    // A failure that prints secrets (the error is the command's stderr).
    s.file("fail.yml", FAILING);
    for args in [
        &["fail.yml"][..],
        &["-v", "fail.yml"],
        &["--json", "fail.yml"],
    ] {
        let failed = s.run(args);
        failed.expect_code(1);
        assert_hidden(&failed);
        assert!(failed.stdout.contains("<secret>"), "{}", failed.stdout);
    }
}

const FAILING: &str = r#"
- hosts: all
  vars: { pw: "it's\"p4ss-f" }
  secrets: [pw]
  tasks:
    - name: "fail {{upper pw}}"
      command: "printf '%s %s\n' {{quote pw}} {{json pw}} >&2; exit 3"
"#;
