use super::*;
use crate::module::Outcome;
use crate::module::testing::{self, FakeHost, TestParams, output};

fn action(yaml: &str) -> Box<dyn Action> {
    testing::one(&SystemdUnit, yaml)
}

fn unit_of(yaml: &str) -> String {
    let t = TestParams::new("systemd_unit", yaml);
    let params = t.params();
    let p: UnitParams = params.parse().unwrap();
    unit_text(&p, p.name.trim_end_matches(".service"), &params).unwrap()
}

const SEEDS: &str = r#"
name: myapp
description: My Gin API
exec_start: /opt/myapp/current/myapp
user: myapp
working_directory: /opt/myapp
environment: { GIN_MODE: release, PORT: 8080 }
standard_output: "append:/var/log/myapp/myapp.log"
standard_error: "append:/var/log/myapp/myapp.log"
restart: always
enabled: true
state: started
"#;

#[test]
fn renders_the_seeds_unit() {
    insta::assert_snapshot!(unit_of(SEEDS));
}

#[test]
fn renders_every_parameter() {
    insta::assert_snapshot!(unit_of(
        r#"
name: worker.service
after: [network-online.target, postgresql.service]
wants: network-online.target
type: notify
user: worker
group: workers
working_directory: /srv/worker
exec_start: /usr/local/bin/worker --config /etc/worker.toml
exec_reload: /bin/kill -HUP $MAINPID
restart: on-abnormal
restart_sec: 5
environment: { QUOTED: 'say "hi" 100% \ back' }
environment_file: -/etc/default/worker
limit_nofile: 65536
wanted_by: [multi-user.target, graphical.target]
"#
    ));
}

#[test]
fn defaults_are_the_usual_service() {
    let text = unit_of("name: a\nexec_start: /usr/bin/a\n");
    assert!(
        text.contains("Description=a\nAfter=network.target\n"),
        "{text}"
    );
    assert!(text.contains("Type=simple\n") && text.contains("Restart=on-failure\n"));
    assert!(
        text.ends_with("[Install]\nWantedBy=multi-user.target\n"),
        "{text}"
    );
    let bare = unit_of("name: a\nexec_start: /usr/bin/a\nafter: []\nwanted_by: []\n");
    assert!(
        !bare.contains("After=") && !bare.contains("[Install]"),
        "{bare}"
    );
}

#[test]
fn content_and_template_are_the_whole_unit() {
    assert_eq!(
        unit_of("name: a\ncontent: \"[Service]\\nExecStart=/bin/a\\n\"\n"),
        "[Service]\nExecStart=/bin/a\n"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.service.hbs"),
        "[Service]\nExecStart=/opt/{{app}}/current/{{app}}\n",
    )
    .unwrap();
    let t = TestParams::new("systemd_unit", "name: a\ntemplate: a.service.hbs\n")
        .vars(json!({"app": "myapp"}))
        .dir(dir.path());
    let actions = SystemdUnit.prepare(&t.params()).unwrap();
    assert!(
        actions[0]
            .probe()
            .contains("[ -e /opt/myapp/current/myapp ]")
    );
}

#[test]
fn input_errors_point_at_the_parameter() {
    let cases = [
        (
            "name: a\ncontent: x\nexec_start: /bin/a\n",
            "3:13",
            "`exec_start` is part of the unit",
        ),
        (
            "name: a\nexec_start: /bin/a\ntype: simpel\n",
            "3:7",
            "`simpel` is not a service type",
        ),
        (
            "name: a\nexec_start: /bin/a\nrestart: sometimes\n",
            "3:10",
            "not a restart policy",
        ),
        (
            "name: a/b\nexec_start: /bin/a\n",
            "1:7",
            "`a/b` is not a systemd unit name",
        ),
        ("name: a\n", "1:7", "missing parameter `exec_start`"),
        (
            "name: a\nexec_start: \"/bin/a\\nUser=root\"\n",
            "2:13",
            "must be one line",
        ),
        (
            "name: a\nexec_start: /bin/a\nenvironment: { 1X: y }\n",
            "3:14",
            "not an environment variable name",
        ),
        ("name: a\ntemplate: nope.hbs\n", "2:11", "cannot read"),
        (
            "name: a\nexec_start: /bin/a\nstate: running\n",
            "3:8",
            "unknown variant `running`",
        ),
    ];
    testing::assert_refused_at(&SystemdUnit, &cases);
}

#[test]
fn edges_provide_the_unit_and_need_its_user() {
    let r = action(SEEDS).resources();
    assert_eq!(r.provides, vec![Resource::Unit("myapp".into())]);
    assert!(r.needs.contains(&Resource::User("myapp".into())));
}

/// The probe of a unit that is not installed, on a host running systemd.
fn fresh_host_probe(binary_present: bool) -> String {
    format!(
        "unit.stat=absent\nsvc.LoadState=not-found\nsvc.ActiveState=inactive\n\
         svc.UnitFileState=\nsvc.NeedDaemonReload=no\nbin.0={}\n",
        if binary_present { "yes" } else { "no" }
    )
}

fn installed_probe(content: &str, active: &str, enabled: &str) -> String {
    use base64::Engine as _;
    format!(
        "unit.stat=regular file/644/root/root/0\nunit.sha256={}\n\
         unit.content:b64={}\nsvc.LoadState=loaded\nsvc.ActiveState={active}\n\
         svc.UnitFileState={enabled}\nsvc.NeedDaemonReload=no\nbin.0=yes\n",
        files::sha256_hex(content.as_bytes()),
        base64::engine::general_purpose::STANDARD.encode(content)
    )
}

/// A host whose `systemd-analyze verify` accepts everything.
fn verifying_host() -> FakeHost {
    FakeHost::answering(|script, _| {
        if script.contains("systemd-analyze") {
            output(0, "candidate=/tmp/t/myapp.service\n", "")
        } else if script.contains("systemctl start") {
            output(0, "settle-from=0/12345\n", "")
        } else {
            output(0, "", "")
        }
    })
}

#[tokio::test]
async fn a_fresh_host_gets_the_unit_but_the_release_starts_it() {
    let a = action(SEEDS);
    let host = verifying_host();
    let (out, restarts) = host
        .converge(&*a, &fresh_host_probe(false), true, &[])
        .await;
    let out = out.unwrap();
    assert!(out.changed());
    let text = testing::diff_text(&out);
    assert!(
        text.contains("+ExecStart=/opt/myapp/current/myapp\n"),
        "{text}"
    );
    insta::assert_snapshot!(text.split("--- host:myapp.service").nth(1).unwrap(), @r"
     (current)
    +++ host:myapp.service (desired)
    @@ -1,2 +1,2 @@
    -enabled: no
    -active: no
    +enabled: yes
    +active: no (start skipped: /opt/myapp/current/myapp does not exist yet; the release that deploys it starts the service)
    ");
    // A unit systemd never loaded is loaded by naming it, after the enable links: no
    // daemon-reload, unless systemd is too old to find it (then one).
    let sent = host.sent();
    let at = |needle: &str| sent.iter().position(|s| s.contains(needle));
    let enable = at("systemctl enable --no-reload -- myapp.service").expect("enabled");
    let load = at("systemctl show -p LoadState --value -- myapp.service").expect("loaded");
    assert!(enable < load);
    assert!(sent[load].ends_with("= loaded ] || systemctl daemon-reload\n"));
    assert_eq!(
        sent.iter().filter(|s| s.contains("daemon-reload")).count(),
        1
    );
    assert!(!host.ran("systemctl start"));
    assert!(restarts.pending().is_empty());
}

#[tokio::test]
async fn a_skipped_start_alone_is_not_a_change() {
    let a = action(SEEDS);
    let content = unit_of(SEEDS);
    let probe = installed_probe(&content, "inactive", "enabled").replace("bin.0=yes", "bin.0=no");
    let host = FakeHost::ok();
    let (out, _) = host.converge(&*a, &probe, true, &[]).await;
    let out = out.unwrap();
    assert!(
        matches!(out.status, crate::module::Status::Skipped(ref r) if r.contains("start skipped"))
    );
    assert!(host.sent().is_empty());
}

#[tokio::test]
async fn check_mode_runs_only_the_verification() {
    let a = action(SEEDS);
    let host = verifying_host();
    let (out, _) = host
        .converge(&*a, &fresh_host_probe(true), false, &[])
        .await;
    let text = testing::diff_text(&out.unwrap());
    assert!(
        text.ends_with("-enabled: no\n-active: no\n+enabled: yes\n+active: yes\n"),
        "{text}"
    );
    let sent = host.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("systemd-analyze verify"));
}

#[tokio::test]
async fn a_changed_unit_of_a_running_service_asks_for_one_restart() {
    let a = action(SEEDS);
    let old = unit_of(SEEDS).replace("Restart=always", "Restart=on-failure");
    let host = verifying_host();
    let (out, restarts) = host
        .converge(&*a, &installed_probe(&old, "active", "enabled"), true, &[])
        .await;
    let text = testing::diff_text(&out.unwrap());
    insta::assert_snapshot!(text, @r#"
    --- host:/etc/systemd/system/myapp.service (current)
    +++ host:/etc/systemd/system/myapp.service (desired)
    @@ -10,7 +10,7 @@
     Environment="GIN_MODE=release"
     Environment="PORT=8080"
     ExecStart=/opt/myapp/current/myapp
    -Restart=on-failure
    +Restart=always
     StandardOutput=append:/var/log/myapp/myapp.log
     StandardError=append:/var/log/myapp/myapp.log
    "#);
    assert_eq!(restarts.pending(), vec!["myapp".to_string()]);
    assert!(host.ran("systemctl daemon-reload"));
    assert!(!host.ran("restart"));
}

#[tokio::test]
async fn a_converged_unit_is_ok_and_runs_nothing() {
    let a = action(SEEDS);
    // A static unit (no [Install] section) has nothing to enable: no change on every run.
    for enabled in ["enabled", "static"] {
        let host = FakeHost::ok();
        let probe = installed_probe(&unit_of(SEEDS), "active", enabled);
        let (out, restarts) = host.converge(&*a, &probe, true, &[]).await;
        assert_eq!(out.unwrap().status, crate::module::Status::Ok);
        assert!(host.sent().is_empty());
        assert!(restarts.pending().is_empty());
    }
}

#[tokio::test]
async fn a_stale_unit_is_reloaded_and_restarted() {
    let a = action(SEEDS);
    let host = FakeHost::ok();
    let probe = installed_probe(&unit_of(SEEDS), "active", "enabled")
        .replace("NeedDaemonReload=no", "NeedDaemonReload=yes");
    let (out, restarts) = host.converge(&*a, &probe, true, &[]).await;
    assert!(testing::diff_text(&out.unwrap()).contains("-daemon-reload: needed"));
    assert!(host.ran("systemctl daemon-reload"));
    assert_eq!(restarts.pending(), vec!["myapp".to_string()]);
}

#[tokio::test]
async fn a_rejected_unit_is_not_installed() {
    let a = action(SEEDS);
    let host = FakeHost::answering(|script, _| {
        if script.contains("systemd-analyze") {
            output(
                1,
                "candidate=/tmp/t/myapp.service\n",
                "myapp.service: Command /opt/myapp/current/myapp is not executable: Permission denied\n",
            )
        } else {
            output(0, "", "")
        }
    });
    let (out, _) = host.converge(&*a, &fresh_host_probe(true), true, &[]).await;
    let err = out.unwrap_err().to_string();
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(host.sent().len(), 1);
}

/// The real `systemd-analyze verify` of this machine, in check mode (nothing is written:
/// the candidate goes to a temp dir that is removed).
async fn verify_here(yaml: &str) -> Result<Outcome, Failure> {
    testing::Local::default().run(&*action(yaml), false).await
}

/// The message of [`verify_here`] refusing `yaml`.
async fn verify_error(yaml: &str) -> String {
    verify_here(yaml).await.unwrap_err().to_string()
}

#[tokio::test]
async fn real_verify_accepts_a_good_unit_whose_binary_is_not_deployed_yet() {
    let out = verify_here(
        "name: converge-test-good\nexec_start: /opt/converge-test/current/app --port 8080\nuser: nobody\n",
    )
    .await
    .unwrap();
    assert!(out.changed());
}

#[tokio::test]
async fn real_verify_rejects_what_systemd_would_ignore() {
    let err = verify_error(
        "name: converge-test-bad\ncontent: \"[Service]\\nType=simple\\nRestartt=always\\nExecStart=/bin/true\\n\"\n",
    ).await;
    assert!(
        err.contains("/etc/systemd/system/converge-test-bad.service:3: Unknown key 'Restartt'"),
        "{err}"
    );
}

#[tokio::test]
async fn real_verify_rejects_a_missing_helper_binary() {
    let err = verify_error(
        "name: converge-test-pre\ncontent: \"[Service]\\nExecStartPre=/nonexistent/pre\\nExecStart=/opt/converge-test/app\\n\"\n",
    ).await;
    assert!(
        err.contains("Command /nonexistent/pre is not executable"),
        "{err}"
    );
    assert!(!err.contains("/opt/converge-test/app"), "{err}");
}

#[tokio::test]
async fn real_verify_rejects_a_unit_without_exec_start() {
    let err =
        verify_error("name: converge-test-none\ncontent: \"[Service]\\nType=simple\\n\"\n").await;
    assert!(err.contains("has no ExecStart="), "{err}");
}

#[tokio::test]
async fn a_masked_unit_is_refused_unless_the_task_replaces_it() {
    let a = action(SEEDS);
    let host = FakeHost::ok();
    let probe = installed_probe(&unit_of(SEEDS), "inactive", "masked")
        .replace("LoadState=loaded", "LoadState=masked");
    let (out, _) = host.converge(&*a, &probe, true, &[]).await;
    let err = out.unwrap_err().to_string();
    assert!(err.contains("myapp.service is masked"), "{err}");
    assert!(host.sent().is_empty());

    // The mask was the file this task writes (a link to /dev/null): replacing it unmasks.
    let host = verifying_host();
    let probe = fresh_host_probe(true)
        .replace(
            "unit.stat=absent",
            "unit.stat=symbolic link/777/root/root/9",
        )
        .replace("LoadState=not-found", "LoadState=masked")
        .replace("UnitFileState=\n", "UnitFileState=masked\n");
    let (out, _) = host.converge(&*a, &probe, true, &[]).await;
    assert!(out.unwrap().changed());
    assert!(host.ran("systemctl daemon-reload"));
    assert!(host.ran("systemctl enable --no-reload -- myapp.service"));
}
