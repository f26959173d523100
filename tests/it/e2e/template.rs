//! `template` on a real host: rendered per host, written like `file`, secrets kept out
//! of the diff, render errors stop the run before any host is touched.

use crate::scenario::Scenario;

const SITE: &str = r#"
- hosts: all
  vars: { app: myapp, port: 8080, db_password: "s3cret-Pa55" }
  secrets: [db_password]
  tasks:
    - dir: { path: "/opt/{{app}}/config" }
    - name: app config
      template:
        src: templates/config.yaml.hbs
        dest: "/opt/{{app}}/config/config.yaml"
        mode: "0640"
        validate: "grep -q '^port: ' %s"
"#;

const TEMPLATE: &str = "host: {{inventory_hostname}}\nport: {{port}}\npassword: {{db_password}}\n";

#[test]
fn templates_render_per_host_and_hide_secrets() {
    let s = Scenario::new(2);
    s.playbook(SITE).file("templates/config.yaml.hbs", TEMPLATE);

    let dry = s.diff();
    dry.expect_code(2)
        .expect_stdout_contains("+++ h1:/opt/myapp/config/config.yaml (desired)")
        .expect_stdout_contains("content: changed (secret)")
        .expect_stdout_contains("+mode: 0640");
    assert!(!dry.stdout.contains("s3cret"), "{}", dry.stdout);

    let first = s.converge();
    first
        .expect_code(0)
        .expect_changed("h1", 2)
        .expect_changed("h2", 2);
    assert!(!first.stdout.contains("s3cret"), "{}", first.stdout);
    for h in ["h1", "h2"] {
        assert_eq!(
            s.sh(h, "cat /opt/myapp/config/config.yaml"),
            format!("host: {h}\nport: 8080\npassword: s3cret-Pa55\n")
        );
        assert_eq!(
            s.sh(h, "stat -c %a /opt/myapp/config/config.yaml").trim(),
            "640"
        );
    }
    s.converge()
        .expect_code(0)
        .expect_changed("h1", 0)
        .expect_changed("h2", 0);
    s.diff().expect_code(0);

    // Drift: the content is repaired, and its diff still shows no secret lines.
    s.sh(
        "h2",
        "sed -i 's/^port: .*/port: 1/' /opt/myapp/config/config.yaml",
    );
    let drift = s.diff();
    drift
        .expect_code(2)
        .expect_changed("h1", 0)
        .expect_changed("h2", 1);
    assert!(!drift.stdout.contains("s3cret"), "{}", drift.stdout);
    s.converge().expect_code(0).expect_changed("h2", 1);
    assert!(
        s.sh("h2", "cat /opt/myapp/config/config.yaml")
            .contains("port: 8080")
    );

    // A template the validation rejects never goes live.
    s.file("templates/config.yaml.hbs", "listen: {{port}}\n");
    s.converge()
        .expect_code(1)
        .expect_stdout_contains("validation failed");
    assert!(
        s.sh("h1", "cat /opt/myapp/config/config.yaml")
            .contains("port: 8080")
    );
}

#[test]
fn a_render_error_points_into_the_template_and_touches_nothing() {
    let s = Scenario::new(1);
    s.playbook(SITE).file(
        "templates/config.yaml.hbs",
        "port: {{port}}\nhost: {{db_host}}\n",
    );
    s.converge()
        .expect_code(3)
        .expect_stderr_contains("site.yml:9:14: template: `src`: templates/config.yaml.hbs:2:7:")
        .expect_stderr_contains("`db_host`");
    assert_eq!(
        s.hosts.exec("h1", "test -e /opt/myapp").status.code(),
        Some(1)
    );
}
