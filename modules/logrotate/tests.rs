use super::*;
use crate::module::Outcome;
use crate::module::Status;
use crate::module::testing::{self, FakeHost, TestParams, output};

fn action(yaml: &str) -> Box<dyn Action> {
    testing::one(&Logrotate, yaml)
}

fn stanza(yaml: &str) -> String {
    build(&TestParams::new("logrotate", yaml).params())
        .unwrap_or_else(|e| panic!("{}", e.message))
        .content
}

const SEEDS: &str = r#"
name: myapp
paths: ["/var/log/myapp/*.log"]
frequency: daily
rotate: 7
compress: true
delaycompress: true
missingok: true
notifempty: true
copytruncate: true
"#;

#[test]
fn renders_the_seeds_stanza() {
    insta::assert_snapshot!(stanza(SEEDS));
}

#[test]
fn renders_every_parameter() {
    insta::assert_snapshot!(stanza(
        r#"
name: nginx-app
paths: [/var/log/nginx/app.access.log, "/var/log/app dir/*.log"]
frequency: weekly
rotate: 0
compress: false
notifempty: false
copytruncate: false
create: "0640 www-data adm"
su: root adm
postrotate: |
  if [ -f /run/nginx.pid ]; then
    kill -USR1 "$(cat /run/nginx.pid)"
  fi
"#
    ));
}

#[test]
fn input_errors_point_at_the_parameter() {
    let cases = [
        ("name: .hidden\npaths: /a\n", "1:7", "cannot name a file"),
        (
            "name: app.dpkg-old\npaths: /a\n",
            "1:7",
            "cannot name a file",
        ),
        ("name: a/b\npaths: /a\n", "1:7", "cannot name a file"),
        (
            "name: a\npaths: var/log/x\n",
            "2:8",
            "not an absolute log path",
        ),
        (
            "name: a\npaths: [\"/a {\"]\n",
            "2:8",
            "not an absolute log path",
        ),
        (
            "name: a\npaths: /a\nfrequency: daly\n",
            "3:12",
            "unknown variant `daly`",
        ),
        (
            "name: a\npaths: /a\ncreate: \"0999 a b\"\n",
            "3:9",
            "is not `MODE OWNER GROUP`",
        ),
        (
            "name: a\npaths: /a\nsu: \"a b c\"\n",
            "3:5",
            "is not `USER GROUP`",
        ),
        (
            "name: a\npaths: /a\npostrotate: \"x\\nendscript\\nrm -rf /\"\n",
            "3:13",
            "endscript",
        ),
        ("name: a\npaths: /a\nrotate: -1\n", "3:9", "invalid value"),
    ];
    testing::assert_refused_at(&Logrotate, &cases);
}

#[test]
fn edges_need_the_log_dirs_the_package_and_the_accounts() {
    let r =
        action("name: a\npaths: /var/log/a/*.log\nsu: app adm\ncreate: \"0640 app\"\n").resources();
    for need in [
        Resource::Path("/var/log/a/*.log".into()),
        Resource::Package("logrotate".into()),
        Resource::User("app".into()),
        Resource::Group("adm".into()),
    ] {
        assert!(r.needs.contains(&need), "{need:?} in {:?}", r.needs);
    }
    assert!(
        Resource::Dir("/var/log/a".into()).satisfies(&Resource::Path("/var/log/a/*.log".into()))
    );
}

#[test]
fn verdicts_read_the_error_lines() {
    let real = "/etc/logrotate.d/myapp";
    let cand = "/tmp/t/myapp";
    let none = |_: &str| false;
    // Exit 0, yet an error: an unknown directive is dropped.
    let err = verdict(
        cand,
        real,
        0,
        "error: /tmp/t/myapp:3 unknown option 'dailyy' -- ignoring line\n",
        none,
    )
    .unwrap_err();
    insta::assert_snapshot!(err, @r"
    logrotate -d rejects /etc/logrotate.d/myapp; it was not installed:
    error: /etc/logrotate.d/myapp:3 unknown option 'dailyy' -- ignoring line
    ");
    // Exit 1 for a log the service has not written yet: fine.
    assert_eq!(
        verdict(
            cand,
            real,
            1,
            "error: stat of /var/log/x failed: No such file or directory\n",
            none
        ),
        Ok(())
    );
    let unknown = "error: /tmp/t/myapp:4 unknown user 'myapp'\nerror: found error in /var/log/x/*.log , skipping\n";
    assert!(
        verdict(cand, real, 1, unknown, none)
            .unwrap_err()
            .contains("unknown user 'myapp'")
    );
    assert_eq!(
        verdict(cand, real, 1, unknown, |a: &str| a == "myapp"),
        Ok(())
    );
    let err = verdict(cand, real, 127, "logrotate: command not found", none).unwrap_err();
    assert!(err.ends_with("logrotate: command not found"));
}

#[tokio::test]
async fn apply_stages_the_new_file_outside_logrotate_d() {
    let a = action(SEEDS);
    let host = FakeHost::answering(|script, _| {
        if script.contains("logrotate -d") {
            output(0, "candidate=/tmp/t/myapp\n", "")
        } else {
            output(0, "", "")
        }
    });
    let (out, _) = host
        .converge(&*a, "conf.stat=absent\nlogrotate=yes\n", true, &[])
        .await;
    assert!(out.unwrap().changed());
    let sent = host.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent[0].contains("logrotate -d"));
    // Staged in converge's own directory (logrotate reads hidden files in logrotate.d
    // too), renamed into place from inside logrotate.d.
    assert!(sent[1].contains("cvg_enter "), "{}", sent[1]);
    assert!(sent[1].contains(" etc logrotate.d\n"), "{}", sent[1]);
    assert!(sent[1].contains("cat > \"$cvg_tmp\""), "{}", sent[1]);
    assert!(
        sent[1].contains("mv -T -- \"$cvg_tmp\" ./myapp"),
        "{}",
        sent[1]
    );
    assert!(!sent[1].contains("/etc/logrotate.d/."));
}

#[tokio::test]
async fn without_logrotate_only_check_mode_may_go_on() {
    let a = action(SEEDS);
    let probe = "conf.stat=absent\nlogrotate=no\n";
    let host = FakeHost::ok();
    let (out, _) = host.converge(&*a, probe, true, &[]).await;
    assert!(
        out.unwrap_err()
            .to_string()
            .contains("logrotate is not installed")
    );
    let assumed = [Resource::Package("logrotate".into())];
    let (out, _) = host.converge(&*a, probe, false, &assumed).await;
    assert!(out.unwrap().changed());
    assert!(host.sent().is_empty());
}

#[tokio::test]
async fn a_converged_stanza_is_ok() {
    use base64::Engine as _;
    let a = action(SEEDS);
    let content = stanza(SEEDS);
    let probe = format!(
        "conf.stat=regular file/644/root/root/0\nconf.sha256={}\nconf.content:b64={}\nlogrotate=yes\n",
        files::sha256_hex(content.as_bytes()),
        base64::engine::general_purpose::STANDARD.encode(&content)
    );
    let host = FakeHost::ok();
    let (out, _) = host.converge(&*a, &probe, true, &[]).await;
    assert_eq!(out.unwrap().status, Status::Ok);
    assert!(host.sent().is_empty());
}

/// The real `logrotate -d` of this machine on a candidate, in check mode (the candidate
/// goes to a temp dir that is removed; nothing is installed).
async fn check_here(action: &dyn Action, assumed: &[Resource]) -> Result<Outcome, Failure> {
    let mut local = testing::Local::default();
    local.assumed = assumed.iter().cloned().collect();
    local.run(action, false).await
}

#[tokio::test]
async fn real_logrotate_accepts_the_seeds_stanza_before_the_logs_exist() {
    let a = action(
        &SEEDS
            .replace("missingok: true", "missingok: false")
            .replace("myapp", "converge-test"),
    );
    assert!(check_here(&*a, &[]).await.unwrap().changed());
}

#[tokio::test]
async fn real_logrotate_rejects_an_unknown_account_unless_an_earlier_task_creates_it() {
    let a = action(
        "name: converge-test\npaths: /var/log/converge-test/*.log\nsu: converge-nosuchuser adm\n",
    );
    let err = check_here(&*a, &[]).await.unwrap_err().to_string();
    assert!(
        err.contains("/etc/logrotate.d/converge-test:3 unknown user 'converge-nosuchuser'"),
        "{err}"
    );
    let assumed = [Resource::User("converge-nosuchuser".into())];
    assert!(check_here(&*a, &assumed).await.unwrap().changed());
}

#[tokio::test]
async fn real_logrotate_errors_that_exit_0_still_fail() {
    let a = LogrotateAction {
        name: "converge-test".into(),
        path: "/etc/logrotate.d/converge-test".into(),
        content: "/var/log/converge-test/*.log {\n    dailyy\n    missingok\n}\n".into(),
        needs: Vec::new(),
    };
    let err = check_here(&a, &[]).await.unwrap_err().to_string();
    assert!(
        err.contains("/etc/logrotate.d/converge-test:2 unknown option 'dailyy'"),
        "{err}"
    );
}

/// Why the temp file is not staged in /etc/logrotate.d: logrotate reads hidden `~` files.
#[test]
fn logrotate_reads_hidden_tilde_files_but_skips_visible_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("logrotate.d");
    std::fs::create_dir(&d).unwrap();
    let broken = "/var/log/converge-test/*.log {\n    dailyy\n}\n";
    std::fs::write(d.join("visible~"), broken).unwrap();
    let conf = dir.path().join("logrotate.conf");
    std::fs::write(&conf, format!("include {}\n", d.display())).unwrap();
    let run = || {
        let out = std::process::Command::new("logrotate")
            .arg("-d")
            .arg("-s")
            .arg(dir.path().join("state"))
            .arg(&conf)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let text = run();
    assert!(text.contains("Ignoring visible~"), "{text}");
    assert!(!text.contains("dailyy"), "{text}");
    std::fs::write(d.join(".myapp.converge~"), broken).unwrap();
    assert!(run().contains("unknown option 'dailyy'"));
}
