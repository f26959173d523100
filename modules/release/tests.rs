//! The release transaction for real, in a temp dir with /bin/sh: a fake systemctl and a
//! local HTTP server whose health follows the content of the live binary.

use super::Release;
use crate::module::files::sha256_hex;
use crate::module::testing::{FakeHost, diff_text, prepare};
use crate::module::{Action, Ctx, Failure, Outcome, Resource, RestartBook, Status, Watch};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The release task written as YAML, with `src` relative to `dir`; or why it is refused.
fn task_of(yaml: &str, dir: &Path) -> Result<Box<dyn Action>, String> {
    prepare(&Release, yaml, dir, &Value::Null).map(|mut actions| actions.remove(0))
}

struct Fixture {
    host: FakeHost,
    /// DEST, with a space and a quote in it.
    dest: PathBuf,
    builds: PathBuf,
    port: u16,
    book: RestartBook,
    changed: HashSet<Resource>,
    /// Build contents by sha256, to show the state file readably.
    builds_by_sha: RefCell<HashMap<String, String>>,
}

impl Fixture {
    async fn new() -> Fixture {
        let host = FakeHost::new();
        let dir = host.dir.path().to_path_buf();
        let dest = dir.join("opt/my app's");
        std::fs::create_dir_all(&dest).unwrap();
        let builds = dir.join("builds");
        std::fs::create_dir(&builds).unwrap();
        host.fake(
            "systemctl",
            &format!(
                "s={}\ncase \"$1\" in\n\
                 show) printf 'LoadState=loaded\\nActiveState=%s\\nUnitFileState=enabled\\nMainPID=0\\n' \"$(cat \"$s/active\" 2>/dev/null || echo inactive)\" ;;\n\
                 restart|start) if grep -q crash {}; then echo 'Job for myapp.service failed.' >&2; exit 1; fi; echo active > \"$s/active\" ;;\n\
                 esac",
                crate::quote::quote(dir.to_str().unwrap()),
                crate::quote::quote(dest.join("current/myapp").to_str().unwrap()),
            ),
        );
        // Healthy unless the live binary says "bad".
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let live = dest.join("current/myapp");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let code = match std::fs::read_to_string(&live) {
                    Ok(text) if text.contains("bad") => 500,
                    Ok(_) => 200,
                    Err(_) => 503,
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\n\r\n").as_bytes())
                    .await;
            }
        });
        Fixture {
            host,
            dest,
            builds,
            port,
            book: RestartBook::default(),
            changed: HashSet::new(),
            builds_by_sha: RefCell::default(),
        }
    }

    /// The release task for `version` built as `content`, with `extra` parameters.
    fn task(&self, version: &str, content: &str, extra: Value) -> Box<dyn Action> {
        let sha = sha256_hex(content.as_bytes());
        let src = format!("myapp-{version}-{}", &sha[..8]);
        self.builds_by_sha
            .borrow_mut()
            .insert(sha, content.to_string());
        std::fs::write(self.builds.join(&src), content).unwrap();
        let mut params = json!({
            "name": "myapp", "version": version, "src": src,
            "dest": self.dest.to_str().unwrap(), "keep": 3, "service": "myapp",
            "health": {"url": format!("http://127.0.0.1:{}/healthz", self.port), "timeout": 0},
        });
        params
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        // JSON is YAML.
        task_of(&params.to_string(), &self.builds).unwrap()
    }

    async fn run(&mut self, action: &dyn Action, apply: bool) -> Result<Outcome, Failure> {
        self.host
            .run(action, apply, &mut self.book, &self.changed)
            .await
    }

    async fn deploy(&mut self, version: &str, content: &str) -> Result<Outcome, String> {
        let task = self.task(version, content, json!({}));
        self.run(&*task, true).await.map_err(|f| f.to_string())
    }

    fn live(&self) -> String {
        std::fs::read_link(self.dest.join("current"))
            .unwrap()
            .display()
            .to_string()
    }

    fn releases(&self) -> Vec<String> {
        let mut list: Vec<String> = std::fs::read_dir(self.dest.join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        list.sort();
        list
    }

    /// The state file, each sha256 shown as the build content it stands for.
    fn state(&self) -> String {
        std::fs::read_to_string(self.dest.join(".converge-release"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|line| match line.split_once(' ') {
                Some((key, sha)) => match self.builds_by_sha.borrow().get(sha) {
                    Some(content) => format!("{key} ({content})\n"),
                    None => format!("{line}\n"),
                },
                None => format!("{line}\n"),
            })
            .collect()
    }

    fn restarts(&self) -> usize {
        self.host
            .log()
            .lines()
            .filter(|l| l.starts_with("systemctl restart") || l.starts_with("systemctl start"))
            .count()
    }

    /// Diff text with the temp dir shown as DEST.
    fn diff(&self, out: &Outcome) -> String {
        diff_text(out).replace(self.dest.to_str().unwrap(), "DEST")
    }

    /// Roll `watch` back as a rollout's watch window does, when applying.
    async fn roll_back(&mut self, watch: &dyn Watch, why: &str) -> Result<String, Failure> {
        let ctx = Ctx::new(
            true,
            &self.host.info,
            &self.host,
            crate::transport::RunAs::Login,
            &mut self.book,
            &self.changed,
        );
        watch.roll_back(why, &ctx).await
    }

    fn set_active(&self, active: bool) {
        std::fs::write(
            self.host.path("active"),
            if active { "active" } else { "inactive" },
        )
        .unwrap();
    }
}

#[tokio::test]
async fn first_deploy_then_nothing_to_do() {
    let mut fx = Fixture::new().await;
    fx.book.request("myapp");
    let task = fx.task("v1.2.0", "build 1", json!({}));
    let out = fx.run(&*task, false).await.unwrap();
    assert_eq!(out.status, Status::Changed);
    insta::assert_snapshot!(fx.diff(&out), @r"
    --- host:DEST/current (current)
    +++ host:DEST/current (desired)
    @@ -0,0 +1 @@
    +version: v1.2.0
    --- host:DEST/releases/v1.2.0/myapp (current)
    +++ host:DEST/releases/v1.2.0/myapp (desired)
    @@ -0,0 +1 @@
    +sha256: 4ba0d1825bdde359ce65cb7a1775c82fde403b82583fa9f66d6aa9a6417729d7
    --- host:DEST/releases (current)
    +++ host:DEST/releases (desired)
    @@ -0,0 +1 @@
    +v1.2.0
    --- host:service myapp (current)
    +++ host:service myapp (desired)
    @@ -1 +1 @@
    -active: no
    +active: yes
    ");
    assert!(
        !fx.dest.join("releases").exists(),
        "check mode changed the host"
    );
    assert_eq!(fx.restarts(), 0);

    let out = fx.run(&*task, true).await.unwrap();
    assert_eq!(out.status, Status::Changed);
    assert_eq!(fx.live(), "releases/v1.2.0");
    let binary = fx.dest.join("releases/v1.2.0/myapp");
    assert_eq!(std::fs::read_to_string(&binary).unwrap(), "build 1");
    assert_eq!(
        std::fs::metadata(&binary).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(fx.state(), "current=v1.2.0 (build 1)\n");
    assert_eq!(fx.restarts(), 1);
    // The restart folded in the pending one: a "restart app" handler is merged.
    assert!(fx.book.was_restarted("myapp") && !fx.book.is_pending("myapp"));
    // No temp file or link is left behind.
    let hidden: Vec<_> = std::fs::read_dir(&fx.dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with('~'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    let out = fx.run(&*task, true).await.unwrap();
    assert_eq!((out.status, out.diffs.len()), (Status::Ok, 0));
    assert_eq!(fx.restarts(), 1);
}

#[tokio::test]
async fn an_unhealthy_release_is_rolled_back_and_not_redeployed() {
    let mut fx = Fixture::new().await;
    fx.deploy("v1", "build 1").await.unwrap();
    fx.deploy("v2", "build 2").await.unwrap();
    assert_eq!(fx.state(), "current=v2 (build 2)\nprevious=v1 (build 1)\n");

    let err = fx.deploy("v3", "bad build 3").await.unwrap_err();
    assert_eq!(
        err,
        format!(
            "v3 unhealthy: GET http://127.0.0.1:{}/healthz returned 500 after 0 s; rolled back to v2",
            fx.port
        )
    );
    assert_eq!(fx.live(), "releases/v2");
    assert_eq!(
        fx.state(),
        "current=v2 (build 2)\nprevious=v1 (build 1)\nrolled_back=v3 (bad build 3)\n"
    );
    // Deploy + rollback: two restarts; nothing pruned after a failure.
    assert_eq!(fx.restarts(), 4);
    assert_eq!(fx.releases(), ["v1", "v2", "v3"]);

    // A cron rerun fails at once, touching nothing.
    let err = fx.deploy("v3", "bad build 3").await.unwrap_err();
    assert!(err.starts_with("v3 was rolled back on this host"), "{err}");
    assert_eq!(fx.restarts(), 4);

    // force: true deploys it again (and it is rolled back again).
    let forced = fx.task("v3", "bad build 3", json!({"force": true}));
    assert!(fx.run(&*forced, true).await.is_err());
    assert_eq!((fx.restarts(), fx.live()), (6, "releases/v2".to_string()));

    // A new build of v3 is deployed without force.
    let out = fx.deploy("v3", "build 3, fixed").await.unwrap();
    assert_eq!(out.status, Status::Changed);
    assert_eq!(fx.live(), "releases/v3");
    assert_eq!(
        fx.state(),
        "current=v3 (build 3, fixed)\nprevious=v2 (build 2)\n"
    );
    assert_eq!(fx.releases(), ["v1", "v2", "v3"]);
}

#[tokio::test]
async fn a_failed_restart_rolls_back_too() {
    let mut fx = Fixture::new().await;
    fx.deploy("v1", "build 1").await.unwrap();
    let err = fx.deploy("v2", "crash build").await.unwrap_err();
    assert_eq!(
        err,
        "v2 unhealthy: systemctl restart myapp failed (exit 1): Job for myapp.service failed.; rolled back to v1"
    );
    assert_eq!(fx.live(), "releases/v1");
}

#[tokio::test]
async fn no_previous_release_leaves_the_new_one() {
    let mut fx = Fixture::new().await;
    let err = fx.deploy("v1", "bad build").await.unwrap_err();
    assert!(
        err.ends_with(
            "returned 500 after 0 s; no previous release to roll back to, so v1 stays live"
        ),
        "{err}"
    );
    assert_eq!(fx.live(), "releases/v1");
    assert_eq!(fx.state(), "current=v1 (bad build)\n");
    // Nothing is redeployed by a rerun.
    assert_eq!(
        fx.deploy("v1", "bad build").await.unwrap().status,
        Status::Ok
    );
}

#[tokio::test]
async fn a_version_does_not_change_content_unless_forced() {
    let mut fx = Fixture::new().await;
    fx.deploy("v1", "build 1").await.unwrap();
    fx.deploy("v2", "build 2").await.unwrap();
    let err = fx.deploy("v2", "build 2 again").await.unwrap_err();
    assert!(
        err.starts_with("v2 is already on the host with other content (sha256 6a9a5b4d"),
        "{err}"
    );
    let forced = fx.task("v2", "build 2 again", json!({"force": true}));
    let out = fx.run(&*forced, true).await.unwrap();
    // The binary changes in place; current already points there.
    insta::assert_snapshot!(fx.diff(&out), @r"
    --- host:DEST/releases/v2/myapp (current)
    +++ host:DEST/releases/v2/myapp (desired)
    @@ -1 +1 @@
    -sha256: 6a9a5b4df38e59034fae89f346121a958528fcfad33ad69acbce6f727e63c361
    +sha256: 42132b9c7cbfff9893d6e71ceb285119d61b1420735050f351ecaeb64f540823
    ");
    assert_eq!(
        fx.state(),
        "current=v2 (build 2 again)\nprevious=v1 (build 1)\n"
    );
    assert_eq!(
        std::fs::read_to_string(fx.dest.join("current/myapp")).unwrap(),
        "build 2 again"
    );
}

#[tokio::test]
async fn old_releases_are_pruned_but_never_the_live_or_previous() {
    let mut fx = Fixture::new().await;
    for v in ["v1", "v2", "v3", "v4"] {
        fx.deploy(v, &format!("build {v}")).await.unwrap();
    }
    assert_eq!(fx.releases(), ["v2", "v3", "v4"]);
    let task = fx.task("v5", "build v5", json!({}));
    let out = fx.run(&*task, false).await.unwrap();
    let diff = fx.diff(&out);
    assert!(
        diff.contains("--- host:DEST/releases (current)\n+++ host:DEST/releases (desired)\n@@ -1,3 +1,3 @@\n+v5\n v4\n v3\n-v2\n"),
        "{diff}"
    );
    fx.run(&*task, true).await.unwrap();
    assert_eq!(fx.releases(), ["v3", "v4", "v5"]);

    // Back to v3 (a downgrade): it becomes live, v5 is the previous one, v4 goes.
    fx.deploy("v3", "build v3").await.unwrap();
    assert_eq!(
        fx.state(),
        "current=v3 (build v3)\nprevious=v5 (build v5)\n"
    );
    assert_eq!(fx.releases(), ["v3", "v4", "v5"]);
    fx.deploy("v6", "build v6").await.unwrap();
    assert_eq!(fx.releases(), ["v3", "v5", "v6"]);

    // keep lowered: pruned on the next run, even with nothing to deploy.
    let task = fx.task("v6", "build v6", json!({"keep": 2}));
    let out = fx.run(&*task, true).await.unwrap();
    assert_eq!(out.status, Status::Changed);
    assert_eq!(fx.releases(), ["v3", "v6"]);
    assert_eq!(fx.run(&*task, true).await.unwrap().status, Status::Ok);
}

#[tokio::test]
async fn a_stopped_service_is_started_without_redeploying() {
    let mut fx = Fixture::new().await;
    fx.deploy("v1", "build 1").await.unwrap();
    fx.set_active(false);
    let task = fx.task("v1", "build 1", json!({}));
    let out = fx.run(&*task, true).await.unwrap();
    insta::assert_snapshot!(fx.diff(&out), @r"
    --- host:service myapp (current)
    +++ host:service myapp (desired)
    @@ -1 +1 @@
    -active: no
    +active: yes
    ");
    assert!(fx.host.log().contains("systemctl start -- myapp"));
    assert_eq!(fx.run(&*task, true).await.unwrap().status, Status::Ok);
}

#[tokio::test]
async fn an_interrupted_deploy_is_finished_by_the_next_run() {
    let mut fx = Fixture::new().await;
    fx.deploy("v1", "build 1").await.unwrap();
    fx.deploy("v2", "bad build 2").await.unwrap_err();
    fx.deploy("v3", "build 3").await.unwrap();
    // As if a run died right after switching to v4.
    fx.deploy("v4", "build 4").await.unwrap();
    let state = std::fs::read_to_string(fx.dest.join(".converge-release")).unwrap();
    let state = state
        .replace("current=v4", "deploying=v4")
        .replace("previous=v3", "current=v3");
    std::fs::write(fx.dest.join(".converge-release"), state).unwrap();

    let task = fx.task("v4", "build 4", json!({}));
    let out = fx.run(&*task, false).await.unwrap();
    insta::assert_snapshot!(fx.diff(&out), @r"
    --- host:DEST/current (current)
    +++ host:DEST/current (desired)
    @@ -1 +1 @@
    -version: v4 (not verified: its deploy was interrupted)
    +version: v4
    ");
    let restarts = fx.restarts();
    fx.run(&*task, true).await.unwrap();
    assert_eq!(fx.restarts(), restarts + 1);
    assert_eq!(
        fx.state(),
        "current=v4 (build 4)\nprevious=v3 (build 3)\nrolled_back=v2 (bad build 2)\n"
    );
}

#[tokio::test]
async fn check_mode_with_a_unit_still_to_come() {
    let mut fx = Fixture::new().await;
    fx.host.fake(
        "systemctl",
        "printf 'LoadState=not-found\\nActiveState=inactive\\nUnitFileState=\\nMainPID=0\\n'",
    );
    let task = fx.task("v1", "build 1", json!({}));
    let err = fx.run(&*task, false).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "myapp.service not found: create it (systemd_unit) before the release"
    );
    fx.changed.insert(Resource::unit("myapp"));
    let out = fx.run(&*task, false).await.unwrap();
    assert!(fx.diff(&out).ends_with("-active: no\n+active: yes\n"));
}

#[tokio::test]
async fn a_current_that_is_not_a_link_is_refused() {
    let mut fx = Fixture::new().await;
    std::fs::create_dir_all(fx.dest.join("current")).unwrap();
    let err = fx.deploy("v1", "build 1").await.unwrap_err();
    assert!(err.ends_with(
        "current exists and is not a symlink: move it away so that release can manage it"
    ));
}

#[tokio::test]
async fn without_service_or_health_it_only_switches() {
    let mut fx = Fixture::new().await;
    let src = "plain";
    std::fs::write(fx.builds.join(src), "x").unwrap();
    let yaml =
        json!({"name": "tool", "version": "1.0", "src": src, "dest": fx.dest.to_str().unwrap()});
    let task = task_of(&yaml.to_string(), &fx.builds).unwrap();
    assert_eq!(task.restarts(), None);
    assert_eq!(fx.run(&*task, true).await.unwrap().status, Status::Changed);
    assert_eq!(fx.live(), "releases/1.0");
    assert_eq!(fx.restarts(), 0);
}

#[test]
fn parameter_errors_are_located() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app"), "x").unwrap();
    let err = |extra: &str| {
        let yaml = format!("name: app\nversion: v1\nsrc: app\ndest: /opt/app\n{extra}");
        task_of(&yaml, dir.path()).err().unwrap()
    };
    insta::assert_snapshot!(err("keep: 1\n"), @"play.yml:5:7: release: `keep`: 1 is too small: keep at least 2");
    let sha = "0".repeat(64);
    assert!(
        err(&format!("sha256: '{sha}'\n"))
            .starts_with("play.yml:5:9: release: `sha256`: does not match")
    );
    assert!(err("sha256: abc\n").contains("64 hex digits"));
    // Numbers may come as strings (`-e keep=3`).
    assert!(
        task_of(
            "{name: app, version: v1, src: app, dest: /opt/app, keep: '3', health: {url: 'http://x/', timeout: '9'}}",
            dir.path()
        )
        .is_ok()
    );
    let good = sha256_hex(b"x");
    assert!(
        task_of(
            &format!(
                "{{name: app, version: v1, src: app, dest: /opt/app, sha256: {}}}",
                good.to_uppercase()
            ),
            dir.path()
        )
        .is_ok()
    );
    let https = err("health: {url: 'https://127.0.0.1/healthz'}\n");
    assert!(
        https.starts_with("play.yml:5:15: release: `health.url`: https is not supported"),
        "{https}"
    );
    assert!(err("health: {url: 'http://x/', timout: 3}\n").contains("unknown parameter `timout`"));
    assert!(err("service: 'a b'\n").contains("not a systemd unit name"));
    let src = |yaml: &str| task_of(yaml, dir.path()).err().unwrap();
    assert!(
        src("{name: app, version: v1, src: nope, dest: /opt/app}").contains("`src`: cannot read")
    );
    assert!(
        src("{name: app, version: ../v1, src: app, dest: /opt/app}")
            .contains("`version`: `../v1` has characters")
    );
    assert!(
        src("{name: app, version: v1, src: app, dest: opt/app}")
            .contains("`dest`: must be an absolute path")
    );
    assert!(
        src("{name: app, version: v1, src: app, dest: /}")
            .contains("`dest`: must be an absolute path")
    );
    assert!(
        src("{name: app, version: 1.2, src: app, dest: /opt/app}").contains("expected a string")
    );
}

#[test]
fn resources_and_probe() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app"), "x").unwrap();
    let task = task_of(
        "{name: app, version: v1, src: app, dest: /opt/app/, service: app.service}",
        dir.path(),
    )
    .unwrap();
    assert_eq!(task.restarts(), Some("app.service"));
    assert_eq!(
        task.resources().needs,
        [
            Resource::Path("/opt/app/releases/v1/app".into()),
            Resource::Path("/opt/app/current".into()),
            Resource::Unit("app".into()),
        ]
    );
    insta::assert_snapshot!(task.probe(), @r#"
    if [ -f /opt/app/.converge-release ]; then printf 'state:b64=%s\n' "$(dd if=/opt/app/.converge-release iflag=nofollow,nonblock bs=64K status=none | base64 -w0)"; fi
    if [ -L /opt/app/current ]; then printf 'current:b64=%s\n' "$(readlink /opt/app/current | base64 -w0)"; elif [ -e /opt/app/current ]; then echo current_type=other; fi
    if [ -f /opt/app/releases/v1/app ]; then echo "sha256=$(dd if=/opt/app/releases/v1/app iflag=nofollow,nonblock bs=64K status=none | sha256sum | cut -d' ' -f1)"; fi
    printf 'releases:b64=%s\n' "$(for r in /opt/app/releases/*; do b=${r##*/}; case $b in *[!A-Za-z0-9._+~@-]*|.*|-*) continue;; esac; [ -d "$r" ] && [ ! -L "$r" ] || continue; c=0; [ -f "$r"/app ] && c=1; printf '%s %s %s\n' "$(stat -c %.9Y "$r")" "$b" $c; done | base64 -w0)"
    systemctl show -p ActiveState,UnitFileState,LoadState,MainPID,NeedDaemonReload -- app.service 2>/dev/null | while IFS= read -r l; do echo "unit.$l"; done
    "#);
}

#[tokio::test]
async fn a_watched_release_that_turns_unhealthy_is_rolled_back() {
    let mut fx = Fixture::new().await;
    fx.deploy("v1", "build 1").await.unwrap();
    let task = fx.task("v2", "build 2", json!({}));
    fx.run(&*task, true).await.unwrap();
    let watch = task
        .watch()
        .expect("a release with a health check is watched");
    assert_eq!(watch.check(&fx.host).await.unwrap(), Ok(()));
    // The live build goes bad after its own check passed.
    std::fs::write(fx.dest.join("releases/v2/myapp"), "bad build 2").unwrap();
    let why = watch.check(&fx.host).await.unwrap().unwrap_err();
    assert!(why.contains("returned 500"), "{why}");
    assert_eq!(
        fx.roll_back(&*watch, &why).await.unwrap(),
        "rolled back to v1"
    );
    assert_eq!(fx.live(), "releases/v1");
    assert_eq!(
        fx.state(),
        "current=v1 (build 1)\nrolled_back=v2 (build 2)\n"
    );
    // Only the live build is rolled back: a second try changes nothing.
    let err = fx.roll_back(&*watch, &why).await.unwrap_err();
    assert!(
        err.to_string().contains("no longer the live release"),
        "{err}"
    );
    assert_eq!(fx.live(), "releases/v1");
    // Without a health check there is nothing to watch.
    let unchecked = fx.task("v3", "build 3", json!({"health": null}));
    assert!(unchecked.watch().is_none());
}
