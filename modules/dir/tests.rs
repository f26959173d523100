use super::*;
use crate::module::Outcome;
use crate::module::testing::{Local, diff_text, one, probed, refused};

async fn check(yaml: &str, stdout: &str) -> Result<Outcome, Failure> {
    Local::default()
        .converge_with(one(&Dir, yaml).as_ref(), &probed(stdout), false)
        .await
}

/// Converge `yaml` in check mode on the probe output `stdout`; it must succeed.
async fn checked(yaml: &str, stdout: &str) -> Outcome {
    check(yaml, stdout).await.unwrap()
}

#[tokio::test]
async fn a_missing_dir_diffs_against_nothing() {
    let out = checked(
        "{path: /opt/app/, owner: app, mode: \"0750\"}",
        "d.stat=absent\n",
    )
    .await;
    assert!(out.changed());
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:/opt/app (current)
    +++ host:/opt/app (desired)
    @@ -0,0 +1,3 @@
    +type: directory
    +mode: 0750
    +owner: app
    ");
}

#[tokio::test]
async fn only_the_managed_metadata_is_compared() {
    let state = "d.stat=directory/755/root/adm/4096\n";
    let out = checked("{path: /opt/app, owner: app, mode: \"0755\"}", state).await;
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:/opt/app (current)
    +++ host:/opt/app (desired)
    @@ -1,3 +1,3 @@
     type: directory
     mode: 0755
    -owner: root
    +owner: app
    ");
    let same = checked("{path: /opt/app, owner: root, group: adm}", state).await;
    assert!(!same.changed() && same.diffs.is_empty());
}

#[tokio::test]
async fn removal_diffs_against_nothing() {
    let state = "d.stat=directory/2750/app/app/4096\n";
    let out = checked("{path: /opt/old, state: absent}", state).await;
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:/opt/old (current)
    +++ host:/opt/old (desired)
    @@ -1,4 +0,0 @@
    -type: directory
    -mode: 2750
    -owner: app
    -group: app
    ");
    let gone = checked("{path: /opt/old, state: absent}", "d.stat=absent\n").await;
    assert!(!gone.changed());
}

#[tokio::test]
async fn something_else_in_the_way_is_a_failure() {
    for state in [
        "d.stat=regular file/644/root/root/0\n",
        "d.stat=symbolic link/777/root/root/9\n",
    ] {
        for yaml in ["{path: /opt/x}", "{path: /opt/x, state: absent}"] {
            let err = check(yaml, state).await.unwrap_err().to_string();
            assert!(err.contains("not a directory"), "{err}");
        }
    }
}

#[test]
fn paths_are_checked_and_normalised() {
    use crate::module::HostPath;
    assert_eq!(&*HostPath::parse("/opt//app/./").unwrap(), "/opt/app");
    assert_eq!(&*HostPath::parse("/").unwrap(), "/");
    assert!(refused(&Dir, "{path: \"/opt/a\\nb\"}").contains("control character"));
    assert!(
        refused(&Dir, "{path: /opt/app, owner: --reference=/etc/shadow}")
            .contains("not a user or group name")
    );
    assert!(refused(&Dir, "{path: opt/app}").contains("not an absolute path"));
    assert!(refused(&Dir, "{path: /opt/../etc}").contains("contains `..`"));
    assert!(refused(&Dir, "{path: /opt/app, mode: 0755}").contains("quoted octal"));
}

#[test]
fn removal_near_the_root_is_refused_where_it_was_written() {
    for path in ["/", "/opt", "//opt/./", "/opt/"] {
        let message = refused(&Dir, &format!("path: {path}\nstate: absent\n"));
        assert!(
            message.starts_with("play.yml:1:7: dir: `path`: refusing to remove"),
            "{message}"
        );
    }
    one(&Dir, "{path: /opt/app, state: absent}");
}

#[test]
fn a_dir_orders_before_what_is_below_it() {
    let r = one(&Dir, "{path: /opt/app/config, owner: app, group: web}").resources();
    assert_eq!(r.provides, vec![Resource::Dir("/opt/app/config".into())]);
    assert_eq!(
        r.needs,
        vec![
            Resource::Path("/opt/app".into()),
            Resource::User("app".into()),
            Resource::Group("web".into())
        ]
    );
    let file_below = Resources::for_path("/opt/app/config/x.yaml", None, None);
    assert!(r.provides[0].satisfies(&file_below.needs[0]));
    assert!(!r.provides[0].satisfies(&r.needs[0]));
    assert!(one(&Dir, "{path: /srv}").resources().needs.is_empty());
    let gone = one(&Dir, "{path: /opt/old, state: absent}").resources();
    assert!(gone.provides.is_empty() && gone.needs.is_empty());
}

/// The real probe and scripts through /bin/sh, inside a tempdir.
mod local {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[tokio::test]
    async fn creates_parents_then_converges_and_repairs_drift() {
        let tmp = tempfile::tempdir().unwrap();
        let leaf = tmp.path().join("a b/it's/leaf");
        let yaml = format!("{{path: \"{}\", mode: \"0750\"}}", leaf.display());
        let action = one(&Dir, &yaml);
        let host = Local::default();

        let dry = host.run(action.as_ref(), false).await.unwrap();
        assert!(dry.changed());
        assert!(
            !tmp.path().join("a b").exists(),
            "check mode changed nothing"
        );

        let first = host.run(action.as_ref(), true).await.unwrap();
        assert!(first.changed());
        assert_eq!(first.diffs, dry.diffs, "diff says what apply does");
        assert_eq!(mode_of(&leaf), 0o750);
        assert_eq!(mode_of(&tmp.path().join("a b")), 0o755);
        assert_eq!(mode_of(&tmp.path().join("a b/it's")), 0o755);

        assert!(!host.run(action.as_ref(), true).await.unwrap().changed());

        // A setgid bit is drift too, and chmod must clear it on a directory.
        std::fs::set_permissions(&leaf, std::fs::Permissions::from_mode(0o2700)).unwrap();
        let repaired = host.run(action.as_ref(), true).await.unwrap();
        assert!(diff_text(&repaired).contains("-mode: 2700\n+mode: 0750"));
        assert_eq!(mode_of(&leaf), 0o750);
        assert!(!host.run(action.as_ref(), true).await.unwrap().changed());
    }

    #[tokio::test]
    async fn absent_removes_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("old");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/file"), "x").unwrap();
        let action = one(
            &Dir,
            &format!("{{path: \"{}\", state: absent}}", dir.display()),
        );
        let host = Local::default();
        assert!(host.run(action.as_ref(), false).await.unwrap().changed());
        assert!(dir.exists());
        assert!(host.run(action.as_ref(), true).await.unwrap().changed());
        assert!(!dir.exists());
        assert!(!host.run(action.as_ref(), true).await.unwrap().changed());
    }

    #[tokio::test]
    async fn a_file_in_the_way_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, "keep").unwrap();
        let action = one(&Dir, &format!("{{path: \"{}\"}}", file.display()));
        assert!(Local::default().run(action.as_ref(), true).await.is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    }
}
