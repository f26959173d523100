use super::*;
use crate::module::testing::{Local, diff_text, prepare};
use crate::module::{Action, Probed, Resource};
use serde_json::{Value, json};
use std::path::Path;

/// A playbook folder holding `templates/app.hbs`.
fn playbook(template: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("templates/app.hbs"), template).unwrap();
    dir
}

fn vars() -> Value {
    json!({"app": "myapp", "port": 8080, "db_password": "s3cret-pw", "peers": ["a", "b"]})
}

fn action(dir: &Path, params: &str) -> Box<dyn Action> {
    let mut actions = prepare(&Template, params, dir, &vars()).unwrap_or_else(|e| panic!("{e}"));
    actions.remove(0)
}

fn error(dir: &Path, params: &str) -> String {
    match prepare(&Template, params, dir, &vars()) {
        Ok(_) => panic!("accepted"),
        Err(message) => message,
    }
}

const PARAMS: &str =
    "src: templates/app.hbs\ndest: /opt/myapp/config/config.yaml\nmode: \"0640\"\n";

#[tokio::test]
async fn renders_with_the_host_vars_and_diffs_like_a_file() {
    let dir = playbook("name: {{app}}\nport: {{port}}\npeers: {{join peers \",\"}}\n");
    let a = action(dir.path(), PARAMS);
    let current = Probed {
        stdout: format!(
            "f.stat=regular file/644/root/root/0\nf.sha256=x\nf.content:b64={}\n",
            "bmFtZTogbXlhcHAKcG9ydDogODAwMApwZWVyczogYQo=" // name: myapp / port: 8000 / peers: a
        ),
        status: 0,
    };
    let out = Local::default()
        .converge_with(a.as_ref(), &current, false)
        .await
        .unwrap();
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:/opt/myapp/config/config.yaml (current)
    +++ host:/opt/myapp/config/config.yaml (desired)
    @@ -1,3 +1,3 @@
     name: myapp
    -port: 8000
    -peers: a
    +port: 8080
    +peers: a,b
    --- host:/opt/myapp/config/config.yaml (current)
    +++ host:/opt/myapp/config/config.yaml (desired)
    @@ -1 +1 @@
    -mode: 0644
    +mode: 0640
    ");
}

#[tokio::test]
async fn content_with_a_secret_shows_no_lines() {
    let dir = playbook("password: {{db_password}}\n");
    let a = action(dir.path(), PARAMS);
    let mut host = Local::default();
    host.host.secrets = vec!["s3cret-pw".into()];
    let absent = Probed {
        stdout: "f.stat=absent\n".into(),
        status: 0,
    };
    let out = host
        .converge_with(a.as_ref(), &absent, false)
        .await
        .unwrap();
    let text = diff_text(&out);
    assert!(!text.contains("s3cret"), "{text}");
    insta::assert_snapshot!(text, @r"
    --- host:/opt/myapp/config/config.yaml (current)
    +++ host:/opt/myapp/config/config.yaml (desired)
    content: changed (secret)
    --- host:/opt/myapp/config/config.yaml (current)
    +++ host:/opt/myapp/config/config.yaml (desired)
    @@ -0,0 +1 @@
    +mode: 0640
    ");
}

#[test]
fn render_errors_point_at_src_and_into_the_template() {
    let dir = playbook("name: {{app}}\n\nurl: http://{{host}}:{{port}}/\n");
    let message = error(dir.path(), PARAMS);
    assert_eq!(
        message,
        "play.yml:1:6: template: `src`: templates/app.hbs:3:13: undefined variable `host`"
    );
    let dir = playbook("{{#if app}}\nunclosed\n");
    let message = error(dir.path(), PARAMS);
    assert!(
        message.starts_with("play.yml:1:6: template: `src`: templates/app.hbs:"),
        "{message}"
    );
    assert!(message.contains("syntax error"), "{message}");
}

#[test]
fn a_missing_or_binary_src_is_an_input_error() {
    let dir = playbook("x");
    let message = error(dir.path(), "{src: templates/nope.hbs, dest: /etc/x}");
    assert!(
        message.starts_with("play.yml:1:7: template: `src`: cannot read "),
        "{message}"
    );
    std::fs::write(dir.path().join("templates/bin.hbs"), [0xff, 0xfe, 0]).unwrap();
    let message = error(dir.path(), "{src: templates/bin.hbs, dest: /etc/x}");
    assert!(message.contains("is not UTF-8 text"), "{message}");
    let message = error(dir.path(), "{src: templates/app.hbs, dest: etc/x}");
    assert!(
        message.contains("`dest`: `etc/x` is not an absolute path"),
        "{message}"
    );
}

#[test]
fn orders_after_its_dir_and_owner() {
    let dir = playbook("x");
    let r = action(
        dir.path(),
        "{src: templates/app.hbs, dest: /opt/a/b.yaml, owner: app, group: app}",
    )
    .resources();
    assert_eq!(
        r.needs,
        vec![
            Resource::Path("/opt/a/b.yaml".into()),
            Resource::User("app".into()),
            Resource::Group("app".into())
        ]
    );
    assert!(Resource::Dir("/opt/a".into()).satisfies(&r.needs[0]));
}

#[tokio::test]
async fn writes_converges_and_repairs_drift_in_a_tempdir() {
    let dir = playbook("app: {{app}}\nport: {{port}}\n");
    let dest = dir.path().join("out/config.yaml");
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let params = format!(
        "{{src: templates/app.hbs, dest: \"{}\", mode: \"0600\", validate: \"grep -q port %s\"}}",
        dest.display()
    );
    let a = action(dir.path(), &params);
    let host = Local::default();
    assert!(host.run(a.as_ref(), false).await.unwrap().changed());
    assert!(!dest.exists(), "check mode wrote nothing");
    assert!(host.run(a.as_ref(), true).await.unwrap().changed());
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "app: myapp\nport: 8080\n"
    );
    assert!(!host.run(a.as_ref(), true).await.unwrap().changed());

    std::fs::write(&dest, "app: myapp\nport: 1\n").unwrap();
    let repaired = host.run(a.as_ref(), true).await.unwrap();
    assert!(diff_text(&repaired).contains("-port: 1\n+port: 8080\n"));
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "app: myapp\nport: 8080\n"
    );
}

#[tokio::test]
async fn a_failed_validation_keeps_the_live_file() {
    let dir = playbook("no listen line here\n");
    let dest = dir.path().join("live.conf");
    std::fs::write(&dest, "port: 1\n").unwrap();
    let params = format!(
        "{{src: templates/app.hbs, dest: \"{}\", validate: \"grep -q port %s\"}}",
        dest.display()
    );
    let err = Local::default()
        .run(action(dir.path(), &params).as_ref(), true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("validation failed"), "{err}");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "port: 1\n");
}
