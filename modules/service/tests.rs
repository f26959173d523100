use super::Service;
use crate::module::files::{self, PreviousFile};
use crate::module::testing::{FakeHost, diff_text, one, refused};
use crate::module::{Action, Failure, Outcome, Resource, RestartBook, Status};
use std::collections::HashSet;

/// A host whose systemd knows `myapp` in the given state (`active`, `enabled`); active
/// once started.
fn host(active: &str, enabled: &str) -> FakeHost {
    let host = FakeHost::new();
    host.fake(
        "systemctl",
        &format!(
            "d=\"$(dirname \"$0\")/..\"\n\
             case \"$1\" in\n\
             show) a={active}; [ -e \"$d/running\" ] && a=active\n\
               printf 'MainPID=0\\nLoadState=loaded\\nActiveState=%s\\nUnitFileState={enabled}\\n' \"$a\" ;;\n\
             start) if [ -e \"$d/fail\" ]; then echo 'Job for myapp.service failed.' >&2; exit 1; fi; touch \"$d/running\" ;;\n\
             restart | reload) touch \"$d/running\" ;;\n\
             esac"
        ),
    );
    host
}

fn action(yaml: &str) -> Box<dyn Action> {
    one(&Service, yaml)
}

async fn run(
    host: &FakeHost,
    yaml: &str,
    apply: bool,
    book: &mut RestartBook,
) -> Result<Outcome, Failure> {
    host.run(&*action(yaml), apply, book, &HashSet::new()).await
}

/// Apply `yaml` with the run's restart book; it must succeed.
async fn applied_with(host: &FakeHost, yaml: &str, book: &mut RestartBook) -> Outcome {
    run(host, yaml, true, book).await.unwrap()
}

/// Apply `yaml` with a fresh restart book; it must succeed.
async fn applied(host: &FakeHost, yaml: &str) -> Outcome {
    applied_with(host, yaml, &mut RestartBook::default()).await
}

/// Apply `yaml` with a fresh restart book; it must fail.
async fn failed(host: &FakeHost, yaml: &str) -> Failure {
    run(host, yaml, true, &mut RestartBook::default())
        .await
        .unwrap_err()
}

/// The changing calls the fakes saw (the probe's `show` left out).
fn calls(host: &FakeHost) -> String {
    host.log()
        .lines()
        .filter(|l| !l.starts_with("systemctl show"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test]
async fn starts_and_enables_a_stopped_service() {
    let host = host("inactive", "disabled");
    let mut book = RestartBook::default();
    book.request("myapp");
    let out = applied_with(
        &host,
        "{name: myapp, state: started, enabled: true}",
        &mut book,
    )
    .await;
    assert_eq!(out.status, Status::Changed);
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:service myapp (current)
    +++ host:service myapp (desired)
    @@ -1,2 +1,2 @@
    -active: no
    -enabled: no
    +active: yes
    +enabled: yes
    ");
    assert_eq!(
        calls(&host),
        "systemctl enable -- myapp\nsystemctl start -- myapp\n"
    );
    // A fresh start folds in the pending restart.
    assert!(book.was_restarted("myapp") && !book.is_pending("myapp"));
}

#[tokio::test]
async fn a_running_enabled_service_is_ok() {
    let host = host("active", "enabled");
    let mut book = RestartBook::default();
    let out = applied_with(
        &host,
        "{name: myapp, state: started, enabled: true}",
        &mut book,
    )
    .await;
    assert_eq!(out.status, Status::Ok);
    assert_eq!(calls(&host), "");
    assert!(!book.was_restarted("myapp"));
}

#[tokio::test]
async fn check_mode_changes_nothing() {
    let host = host("active", "enabled");
    let out = run(
        &host,
        "{name: myapp, state: stopped, enabled: false}",
        false,
        &mut RestartBook::default(),
    )
    .await
    .unwrap();
    assert_eq!(out.status, Status::Changed);
    assert!(diff_text(&out).contains("-active: yes\n-enabled: yes\n+active: no\n+enabled: no\n"));
    assert_eq!(calls(&host), "");
}

#[tokio::test]
async fn restarted_always_restarts_unless_merged() {
    let host = host("active", "enabled");
    let yaml = "{name: myapp.service, state: restarted}";
    assert_eq!(action(yaml).restarts(), Some("myapp.service"));

    // As a plain task: always changed, no diff for a running service.
    let mut book = RestartBook::default();
    let out = applied_with(&host, yaml, &mut book).await;
    assert_eq!((out.status, out.diffs.len()), (Status::Changed, 0));
    assert_eq!(calls(&host), "systemctl restart -- myapp.service\n");
    assert!(book.was_restarted("myapp"));

    // Notified, then a release restarted it: merged.
    let mut book = RestartBook::default();
    book.request("myapp");
    book.mark_restarted("myapp");
    let out = applied_with(&host, yaml, &mut book).await;
    assert!(
        matches!(out.status, Status::Skipped(ref r) if r.starts_with("restart merged: myapp.service"))
    );
    assert_eq!(calls(&host), "systemctl restart -- myapp.service\n");

    // Notified again after that restart: it restarts.
    book.request("myapp");
    let out = applied_with(&host, yaml, &mut book).await;
    assert_eq!(out.status, Status::Changed);
    assert!(!book.is_pending("myapp"));
}

#[tokio::test]
async fn reload_starts_a_stopped_service() {
    let host = host("inactive", "enabled");
    let mut book = RestartBook::default();
    let out = applied_with(&host, "{name: nginx, state: reloaded}", &mut book).await;
    assert_eq!(out.status, Status::Changed);
    assert_eq!(calls(&host), "systemctl start -- nginx\n");
    let host = self::host("active", "enabled");
    applied_with(&host, "{name: nginx, state: reloaded}", &mut book).await;
    assert_eq!(calls(&host), "systemctl reload -- nginx\n");
}

#[tokio::test]
async fn static_units_are_left_alone_by_enabled() {
    let host = host("active", "static");
    let out = applied(&host, "{name: myapp, enabled: true}").await;
    assert_eq!(out.status, Status::Ok);
}

#[tokio::test]
async fn a_failed_start_says_why() {
    let host = host("inactive", "enabled");
    std::fs::write(host.path("fail"), "").unwrap();
    let err = failed(&host, "{name: myapp, state: started}").await;
    let msg = err.to_string();
    assert!(msg.contains("Job for myapp.service failed."), "{msg}");
    assert!(calls(&host).contains("systemctl status --no-pager --lines=10 -- myapp"));
}

#[tokio::test]
async fn missing_units() {
    let host = FakeHost::new();
    host.fake(
        "systemctl",
        "printf 'LoadState=not-found\\nActiveState=inactive\\nUnitFileState=\\nMainPID=0\\n'",
    );
    let yaml = "{name: myapp, state: started, enabled: true}";
    let err = run(&host, yaml, false, &mut RestartBook::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("myapp.service not found"),
        "{err}"
    );

    // Check mode, with the unit created by an earlier task: would start.
    let changed: HashSet<Resource> = [Resource::unit("myapp.service")].into();
    let mut book = RestartBook::default();
    let out = host
        .run(&*action(yaml), false, &mut book, &changed)
        .await
        .unwrap();
    assert_eq!(out.status, Status::Changed);
    assert!(diff_text(&out).contains("+active: yes\n+enabled: yes\n"));
    assert!(book.was_restarted("myapp"));
}

#[tokio::test]
async fn masked_and_systemd_less_hosts_fail() {
    let host = FakeHost::new();
    host.fake(
        "systemctl",
        "printf 'LoadState=masked\\nActiveState=inactive\\nUnitFileState=masked\\n'",
    );
    let err = failed(&host, "{name: myapp, state: started}").await;
    assert!(err.to_string().contains("myapp.service is masked"));

    host.fake(
        "systemctl",
        "echo 'System has not been booted with systemd' >&2; exit 1",
    );
    let err = failed(&host, "{name: myapp, state: started}").await;
    assert!(err.to_string().contains("is systemd running"), "{err}");
}

#[test]
fn parameter_errors() {
    let err = |yaml: &str| refused(&Service, yaml);
    insta::assert_snapshot!(err("{name: myapp}"), @"play.yml:1:1: service: give `state`, `enabled` or both");
    insta::assert_snapshot!(err("{name: 'a;b', state: started}"), @"play.yml:1:8: service: `name`: `a;b` is not a systemd unit name (letters, digits and `:_.@-\\` only)");
    assert!(err("{name: a, state: running}").contains("unknown variant `running`"));
}

#[test]
fn the_probe_is_one_systemctl_show() {
    insta::assert_snapshot!(action("{name: myapp, state: started}").probe(), @r#"systemctl show -p ActiveState,UnitFileState,LoadState,MainPID,NeedDaemonReload -- myapp 2>/dev/null | while IFS= read -r l; do echo "unit.$l"; done"#);
    assert_eq!(
        action("{name: myapp, state: started}").resources().needs,
        vec![Resource::Unit("myapp".into())]
    );
}

#[tokio::test]
async fn a_crash_looping_service_is_neither_started_nor_stopped() {
    // `activating (auto-restart)`: Restart= brings it back unless it is stopped.
    let host = host("activating", "enabled");
    let out = applied(&host, "{name: myapp, state: stopped}").await;
    assert!(diff_text(&out).contains("-active: activating\n+active: no\n"));
    assert_eq!(calls(&host), "systemctl stop -- myapp\n");

    let host = self::host("activating", "enabled");
    let out = applied(&host, "{name: myapp, state: started}").await;
    assert!(diff_text(&out).contains("-active: activating\n+active: yes\n"));
    assert_eq!(calls(&host), "systemctl start -- myapp\n");
}

#[test]
fn hostile_unit_names_are_refused_where_they_stand() {
    for bad in crate::module::testing::HOSTILE {
        let yaml = format!(
            "{{name: {}, state: started}}",
            crate::module::testing::yaml_str(bad)
        );
        let err = refused(&Service, &yaml);
        assert!(
            err.starts_with("play.yml:1:8: service: `name`:"),
            "{bad:?}: {err}"
        );
    }
}

/// An HTTP server on this machine answering 200 while `conf` holds `good`, 500 otherwise:
/// the health of a service that reads its config at each request.
async fn health_by_config(conf: std::path::PathBuf) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let good = std::fs::read_to_string(&conf).is_ok_and(|c| c == "good\n");
            let code = if good { 200 } else { 500 };
            let head = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
            let _ = s.write_all(head.as_bytes()).await;
        }
    });
    port
}

/// The previous state of a file as its probe sees it on this machine.
fn previous(path: &std::path::Path) -> PreviousFile {
    let path = path.to_str().unwrap();
    let probed = crate::module::testing::probed(&crate::module::testing::sh(&files::probe(
        "f",
        path,
        files::Read::Content,
    )));
    PreviousFile {
        path: path.to_string(),
        state: files::FileState::from_probe(&probed, "f"),
        kept_as: None,
    }
}

fn checked_restart(port: u16) -> String {
    format!(
        "{{name: myapp, state: restarted, health: {{url: 'http://127.0.0.1:{port}/healthz', timeout: 1}}}}"
    )
}

#[tokio::test]
async fn an_unhealthy_restart_puts_back_the_files_changed_for_it() {
    use std::os::unix::fs::PermissionsExt;
    let host = host("active", "enabled");
    let conf = host.path("app.conf");
    let extra = host.path("extra.conf");
    std::fs::write(&conf, "good\n").unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut book = RestartBook::default();
    let owes = std::collections::BTreeSet::from(["myapp".to_string()]);
    book.record_replaced(&owes, &[previous(&conf), previous(&extra)]);
    // What this run's earlier tasks did: a bad config, and a file that was not there.
    std::fs::write(&conf, "bad\n").unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&extra, "new\n").unwrap();
    let port = health_by_config(conf.clone()).await;

    let Failure::Task(message) = run(&host, &checked_restart(port), true, &mut book)
        .await
        .unwrap_err()
    else {
        panic!("the connection broke?")
    };
    assert_eq!(
        message,
        format!(
            "myapp unhealthy after restart: GET http://127.0.0.1:{port}/healthz returned 500 \
             after 1 s; restored {} to its previous content; removed {} (new in this run); \
             myapp is healthy again",
            conf.display(),
            extra.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "good\n");
    let mode = std::fs::metadata(&conf).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    assert!(!extra.exists());
    assert_eq!(
        calls(&host),
        "systemctl restart -- myapp\nsystemctl daemon-reload\nsystemctl restart -- myapp\n"
    );
}

#[tokio::test]
async fn a_healthy_restart_restores_nothing() {
    let host = host("active", "enabled");
    let conf = host.path("app.conf");
    std::fs::write(&conf, "old\n").unwrap();
    let mut book = RestartBook::default();
    let owes = std::collections::BTreeSet::from(["myapp".to_string()]);
    book.record_replaced(&owes, &[previous(&conf)]);
    std::fs::write(&conf, "good\n").unwrap();
    let port = health_by_config(conf.clone()).await;

    let out = applied_with(&host, &checked_restart(port), &mut book).await;
    assert_eq!(out.status, Status::Changed);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "good\n");
    assert_eq!(calls(&host), "systemctl restart -- myapp\n");
    assert!(book.was_restarted("myapp"));
}

#[tokio::test]
async fn unhealthy_with_nothing_changed_for_it_says_so() {
    let host = host("active", "enabled");
    let port = health_by_config(host.path("missing")).await;
    let failure = run(
        &host,
        &checked_restart(port),
        true,
        &mut RestartBook::default(),
    )
    .await
    .unwrap_err();
    assert!(
        failure
            .to_string()
            .ends_with("no file was changed for it in this run, so nothing was restored"),
        "{failure}"
    );
    assert_eq!(calls(&host), "systemctl restart -- myapp\n");
}

#[tokio::test]
async fn check_mode_says_the_restart_is_health_checked() {
    let host = host("active", "enabled");
    let out = run(
        &host,
        "{name: myapp, state: restarted, health: {url: 'http://127.0.0.1:8080/healthz'}}",
        false,
        &mut RestartBook::default(),
    )
    .await
    .unwrap();
    assert_eq!(out.status, Status::Changed);
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:service myapp (current)
    +++ host:service myapp (desired)
    @@ -1 +1,2 @@
    +health: GET http://127.0.0.1:8080/healthz after the restart
     active: yes
    ");
    assert_eq!(calls(&host), "");
}

#[test]
fn health_needs_a_restart() {
    insta::assert_snapshot!(
        refused(&Service, "{name: myapp, state: started, health: {url: 'http://127.0.0.1/'}}"),
        @"play.yml:1:39: service: `health`: is checked after a restart only"
    );
    insta::assert_snapshot!(
        refused(&Service, "{name: myapp, state: restarted, health: {url: 'https://x/'}}"),
        @"play.yml:1:47: service: `health.url`: https is not supported: check the plain-HTTP port the service listens on (e.g. http://127.0.0.1:8080/healthz)"
    );
}
