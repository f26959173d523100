use super::*;
use crate::module::Outcome;
use crate::module::Status;
use crate::module::testing::{Local, diff_text, one, parsed, probed, refused};
use std::collections::HashSet;
use std::path::Path;

/// A YAML double-quoted string holding `path`.
fn q(path: &Path) -> String {
    serde_json::to_string(path.to_str().unwrap()).unwrap()
}

/// Probe and converge `yaml` on this machine.
async fn run(yaml: &str, apply: bool) -> Result<Outcome, Failure> {
    Local::default()
        .run(one(&Command, yaml).as_ref(), apply)
        .await
}

#[test]
fn both_forms_are_accepted() {
    let string_form = one(&Command, "\"systemctl daemon-reload\"");
    assert_eq!(string_form.probe(), ":\n");
    let p: CommandParams = parsed(&Command, "{argv: [sleep, 1, true], creates: /x}");
    assert_eq!(p.argv.unwrap(), ["sleep", "1", "true"]);
}

#[test]
fn mistakes_are_located() {
    let both = refused(&Command, "{cmd: ls, argv: [ls]}");
    assert!(
        both.starts_with("play.yml:1:17: command: `argv`: give either cmd or argv"),
        "{both}"
    );
    assert!(refused(&Command, "{creates: /x}").contains("give cmd (a shell line) or argv"));
    assert!(refused(&Command, "{argv: []}").contains("`argv`: is empty"));
    assert!(refused(&Command, "{cmd: \"  \"}").contains("`cmd`: is empty"));
    assert!(
        refused(&Command, "{cmd: ls, chdir: tmp}").contains("`chdir`: must be an absolute path")
    );
    assert!(refused(&Command, "{cmd: ls, creates: \"\"}").contains("`creates`: is empty"));
    assert!(refused(&Command, "{cmd: ls, shell: bash}").contains("unknown parameter `shell`"));
    assert!(refused(&Command, "{argv: [ls, {a: 1}]}").contains("argv holds words"));
    assert!(refused(&Command, "~").contains("nothing to run"));
}

#[test]
fn the_run_script_quotes_argv_and_keeps_shell_lines_whole() {
    let argv: CommandAction = CommandAction {
        run: Run::Argv(vec!["touch".into(), "it's $(id)".into()]),
        creates: Some("/opt/app/.done".into()),
        unless: Some("test -f /x && exit 0".into()),
        chdir: Some("/opt/my app".into()),
    };
    insta::assert_snapshot!(argv.run_script(), @r"
    cd '/opt/my app' || exit 1
    exec touch 'it'\''s $(id)'
    ");
    let shell = CommandAction {
        run: Run::Shell("cd /x && make \"$TARGET\"".into()),
        creates: None,
        unless: None,
        chdir: None,
    };
    insta::assert_snapshot!(shell.run_script(), @r#"exec /bin/sh -c 'cd /x && make "$TARGET"'"#);
    assert_eq!(argv.display(), "touch 'it'\\''s $(id)'");
    insta::assert_snapshot!(argv.probe(), @r"
    cd '/opt/my app' 2>/dev/null || { echo chdir=missing; exit 0; }
    if [ -e /opt/app/.done ]; then echo creates=exists; exit 0; fi
    if /bin/sh -c 'test -f /x && exit 0' </dev/null >/dev/null 2>&1; then echo unless=ok; fi
    ");
}

#[tokio::test]
async fn check_mode_says_would_run_and_runs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let yaml = format!("{{argv: [touch, {}]}}", q(&marker));
    let out = run(&yaml, false).await.unwrap();
    assert!(out.changed());
    assert!(!marker.exists());
    let shown = one(&Command, "\"systemctl daemon-reload && echo done\"");
    let out = Local::default()
        .converge_with(shown.as_ref(), &probed(""), false)
        .await
        .unwrap();
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:command (current)
    +++ host:command (desired)
    @@ -0,0 +1 @@
    +would run: systemctl daemon-reload && echo done
    ");
}

#[tokio::test]
async fn creates_makes_it_run_once() {
    let tmp = tempfile::tempdir().unwrap();
    let done = tmp.path().join("it's done");
    let yaml = format!("{{argv: [touch, {0}], creates: {0}}}", q(&done));
    let action = one(&Command, &yaml);
    let host = Local::default();
    let first = host.run(action.as_ref(), true).await.unwrap();
    assert!(first.changed());
    assert!(diff_text(&first).contains("+ran: touch "));
    assert!(done.exists());
    let again = host.run(action.as_ref(), true).await.unwrap();
    assert_eq!(again.status, Status::Ok);
    assert!(!host.run(action.as_ref(), false).await.unwrap().changed());
}

#[tokio::test]
async fn unless_and_chdir() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{{cmd: \"echo x >> log\", chdir: {}, unless: \"grep -q x log\"}}",
        q(tmp.path())
    );
    let action = one(&Command, &yaml);
    let host = Local::default();
    assert!(host.run(action.as_ref(), true).await.unwrap().changed());
    assert!(!host.run(action.as_ref(), true).await.unwrap().changed());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("log")).unwrap(),
        "x\n"
    );
}

#[tokio::test]
async fn failures_carry_the_exit_code_and_the_end_of_stderr() {
    let line = "\"for i in $(seq 1 30); do echo line$i >&2; done; exit 3\"";
    let err = run(line, true).await.unwrap_err().to_string();
    assert!(
        err.starts_with("command exited 3: line11\nline12\n"),
        "{err}"
    );
    assert!(err.ends_with("line30"), "{err}");
    let missing = run("{argv: [/nonexistent/program]}", true)
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.starts_with("command exited 127:"), "{missing}");
}

#[tokio::test]
async fn a_missing_chdir_fails_unless_an_earlier_task_makes_it() {
    let action = one(&Command, "{cmd: make, chdir: /opt/app/src}");
    let missing = probed("chdir=missing\n");
    let host = Local::default();
    let err = host
        .converge_with(action.as_ref(), &missing, false)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "chdir /opt/app/src does not exist");
    let mut host = Local::default();
    host.assumed = HashSet::from([Resource::Dir("/opt/app".into())]);
    assert!(
        host.converge_with(action.as_ref(), &missing, false)
            .await
            .unwrap()
            .changed()
    );
    assert_eq!(
        action.resources().needs,
        vec![Resource::Path("/opt/app/src".into())]
    );
}
