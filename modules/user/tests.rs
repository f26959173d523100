use super::*;
use crate::module::Outcome;
use crate::module::testing::{Local, diff_text, one, parsed, probed, refused, sh};
use std::collections::HashSet;

/// An existing service account as the probe prints it.
const APP: &str = "passwd=app:x:998:998::/opt/app:/bin/sh\ngroups=app adm\n";

async fn converge(yaml: &str, stdout: &str) -> Result<Outcome, Failure> {
    Local::default()
        .converge_with(one(&User, yaml).as_ref(), &probed(stdout), false)
        .await
}

fn script(yaml: &str, stdout: &str) -> String {
    let user: UserAction = parsed(&User, yaml);
    user.change(parse_account(&user.name, &probed(stdout)).as_ref())
        .map(|c| c.script)
        .unwrap_or_default()
}

/// Run a script with `useradd`, `usermod`, `getent` and friends replaced by functions
/// that print their arguments one per line, and no PATH: nothing real can run.
fn dry_run(script: &str, group_exists: bool) -> String {
    let stubs = format!(
        "PATH=/nonexistent\n\
         getent() {{ return {}; }}\n\
         useradd() {{ echo useradd; for a; do echo \"<$a>\"; done; }}\n\
         usermod() {{ echo usermod; for a; do echo \"<$a>\"; done; }}\n",
        if group_exists { 0 } else { 2 }
    );
    sh(&format!("{stubs}{script}"))
}

#[test]
fn the_probe_output_is_parsed() {
    let app = parse_account("app", &probed(APP)).unwrap();
    assert_eq!(
        app,
        Account {
            uid: "998".into(),
            group: "app".into(),
            groups: vec!["adm".into()],
            home: "/opt/app".into(),
            shell: "/bin/sh".into(),
            home_dir: None,
        }
    );
    // `id` failed: the primary group is known by its gid only.
    let no_id = parse_account("app", &probed("passwd=app:x:998:998::/opt/app:/bin/sh\n")).unwrap();
    assert_eq!((no_id.group.as_str(), no_id.groups.len()), ("998", 0));
    assert_eq!(parse_account("app", &probed("")), None);
    assert_eq!(
        parse_account("app", &probed("passwd=other:x:1:1::/:/bin/sh\n")),
        None
    );
    assert_eq!(parse_account("app", &probed("passwd=garbage\n")), None);
}

#[tokio::test]
async fn the_real_probe_reads_root_here() {
    let host = Local::default();
    let root = one(&User, "{name: root, create_home: true}");
    let out = host.probe(root.as_ref()).await;
    let account = parse_account("root", &out).unwrap();
    assert_eq!(
        (account.uid.as_str(), account.group.as_str()),
        ("0", "root")
    );
    assert_eq!(
        account.home_dir,
        Some(std::path::Path::new(&account.home).is_dir())
    );
    let nobody = one(
        &User,
        "{name: no-such-user-here, groups: [root, no-such-group-here]}",
    );
    let out = host.probe(nobody.as_ref()).await;
    assert_eq!(parse_account("no-such-user-here", &out), None);
    assert_eq!(
        out.field("missing_groups").as_deref(),
        Some(" no-such-group-here")
    );
}

#[tokio::test]
async fn a_new_service_account() {
    let yaml = "{name: app, system: true, shell: /usr/sbin/nologin, home: /opt/app, groups: [adm]}";
    let out = converge(yaml, "").await.unwrap();
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:user app (current)
    +++ host:user app (desired)
    @@ -0,0 +1,5 @@
    +user: app
    +system: yes
    +groups: adm
    +shell: /usr/sbin/nologin
    +home: /opt/app
    ");
    insta::assert_snapshot!(dry_run(&script(yaml, ""), false), @r"
    useradd
    <-U>
    <--system>
    <-G>
    <adm>
    <-s>
    </usr/sbin/nologin>
    <-d>
    </opt/app>
    <--no-create-home>
    <app>
    ");
    // The group named like the user already exists: it becomes the primary group.
    assert!(dry_run(&script(yaml, ""), true).starts_with("useradd\n<-g>\n<app>\n<--system>\n"));
}

#[test]
fn odd_values_reach_useradd_as_single_arguments() {
    let yaml = "{name: app, uid: \"1001\", group: web, home: \"/srv/it's $(id) `x`\", shell: \"/bin/a b\", create_home: true}";
    insta::assert_snapshot!(dry_run(&script(yaml, ""), false), @r"
    useradd
    <-u>
    <1001>
    <-g>
    <web>
    <-s>
    </bin/a b>
    <-d>
    </srv/it's $(id) `x`>
    <--create-home>
    <app>
    ");
}

#[tokio::test]
async fn an_existing_account_changes_only_what_differs() {
    let same = "{name: app, shell: /bin/sh, groups: [adm, app], home: /opt/app}";
    assert!(!converge(same, APP).await.unwrap().changed());
    assert!(!converge("{name: app}", APP).await.unwrap().changed());

    let yaml = "{name: app, uid: 998, shell: /usr/sbin/nologin, groups: [www-data, adm]}";
    let out = converge(yaml, APP).await.unwrap();
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:user app (current)
    +++ host:user app (desired)
    @@ -1,4 +1,4 @@
     user: app
     uid: 998
    -groups: adm
    -shell: /bin/sh
    +groups: adm, www-data
    +shell: /usr/sbin/nologin
    ");
    insta::assert_snapshot!(dry_run(&script(yaml, APP), true), @r"
    usermod
    <-G>
    <adm,www-data>
    <-s>
    </usr/sbin/nologin>
    <app>
    ");
    let none = converge("{name: app, groups: []}", APP).await.unwrap();
    assert!(diff_text(&none).contains("-groups: adm\n+groups: (none)\n"));
    assert!(dry_run(&script("{name: app, groups: []}", APP), true).contains("<-G>\n<>\n"));
}

#[tokio::test]
async fn a_missing_home_is_made_only_with_create_home() {
    let missing = format!("{APP}home_dir=missing\n");
    assert!(!converge("{name: app}", &missing).await.unwrap().changed());
    let out = converge("{name: app, create_home: true}", &missing)
        .await
        .unwrap();
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:user app (current)
    +++ host:user app (desired)
    @@ -1,2 +1,2 @@
     user: app
    -home_dir: missing
    +home_dir: present
    ");
    let s = script("{name: app, create_home: true}", &missing);
    assert!(!s.contains("usermod"), "{s}");
    assert!(
        s.contains(&crate::module::files::dir_script(
            "/opt/app", None, None, None
        )) && s.contains("chown -R -- app: .\n"),
        "{s}"
    );
}

#[tokio::test]
async fn removal_keeps_the_home() {
    let out = converge("{name: app, state: absent}", APP).await.unwrap();
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:user app (current)
    +++ host:user app (desired)
    @@ -1,6 +0,0 @@
    -user: app
    -uid: 998
    -group: app
    -groups: adm
    -shell: /bin/sh
    -home: /opt/app
    ");
    assert_eq!(script("{name: app, state: absent}", APP), "userdel app\n");
    assert!(
        !converge("{name: app, state: absent}", "")
            .await
            .unwrap()
            .changed()
    );
}

#[tokio::test]
async fn missing_groups_fail_unless_an_earlier_task_makes_them() {
    let stdout = "missing_groups= web\n";
    let err = converge("{name: app, group: web}", stdout)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "user app: group web does not exist (create it with a `group` task)"
    );
    let mut host = Local::default();
    host.assumed = HashSet::from([Resource::Group("web".into())]);
    let out = host
        .converge_with(
            one(&User, "{name: app, group: web}").as_ref(),
            &probed(stdout),
            false,
        )
        .await
        .unwrap();
    assert!(out.changed());
}

#[test]
fn parameters_are_checked_before_any_host() {
    assert!(
        refused(&User, "{name: \"-o\"}")
            .starts_with("play.yml:1:8: user: `name`: `-o` starts with")
    );
    assert!(refused(&User, "{name: app, groups: [adm, \"a,b\"]}").contains("`groups`: `a,b`"));
    assert!(refused(&User, "{name: app, group: \"x y\"}").contains("`group`"));
    assert!(
        refused(&User, "{name: app, shell: nologin}")
            .contains("`shell`: `nologin` is not an absolute path")
    );
    assert!(refused(&User, "{name: app, home: \"/a:b\"}").contains("`home`"));
    assert!(refused(&User, "{name: app, uid: abc}").contains("`uid`"));
    let single: UserAction = parsed(&User, "{name: app, groups: adm}");
    assert_eq!(single.groups, Some(vec!["adm".to_string()]));
}

#[test]
fn needs_its_groups_and_provides_itself() {
    let r = one(
        &User,
        "{name: app, group: web, groups: [adm], home: /opt/app}",
    )
    .resources();
    assert_eq!(r.provides, vec![Resource::User("app".into())]);
    assert_eq!(
        r.needs,
        vec![Resource::Group("web".into()), Resource::Group("adm".into())]
    );
    let gone = one(&User, "{name: app, state: absent}").resources();
    assert!(gone.provides.is_empty() && gone.needs.is_empty());
}
