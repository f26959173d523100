use super::*;
use crate::module::Outcome;
use crate::module::testing::{Local, diff_text, one, parsed, probed, refused};

const DEPLOY: &str = "group=deploy:x:1500:alice,bob\n";

async fn check(yaml: &str, stdout: &str) -> Outcome {
    Local::default()
        .converge_with(one(&Group, yaml).as_ref(), &probed(stdout), false)
        .await
        .unwrap()
}

fn script(yaml: &str, stdout: &str) -> Option<String> {
    let group: GroupAction = parsed(&Group, yaml);
    group
        .change(parse_gid(&group.name, &probed(stdout)))
        .map(|c| c.script)
}

#[test]
fn the_probe_reads_getent() {
    assert_eq!(
        parse_gid("deploy", &probed(DEPLOY)).as_deref(),
        Some("1500")
    );
    assert_eq!(parse_gid("deploy", &probed("")), None);
    // getent answered for another entry (a numeric lookup): not ours.
    assert_eq!(parse_gid("deploy", &probed("group=other:x:1:\n")), None);
}

#[tokio::test]
async fn a_new_group() {
    let out = check("{name: deploy, system: true, gid: \"1500\"}", "").await;
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:group deploy (current)
    +++ host:group deploy (desired)
    @@ -0,0 +1,3 @@
    +group: deploy
    +system: yes
    +gid: 1500
    ");
    assert_eq!(
        script("{name: deploy, system: true, gid: 1500}", "").unwrap(),
        "groupadd --system --gid 1500 deploy"
    );
}

#[tokio::test]
async fn an_existing_group_changes_only_its_gid() {
    assert!(!check("{name: deploy}", DEPLOY).await.changed());
    assert!(
        !check("{name: deploy, gid: 1500, system: true}", DEPLOY)
            .await
            .changed()
    );
    let out = check("{name: deploy, gid: 1600}", DEPLOY).await;
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:group deploy (current)
    +++ host:group deploy (desired)
    @@ -1,2 +1,2 @@
     group: deploy
    -gid: 1500
    +gid: 1600
    ");
    assert_eq!(
        script("{name: deploy, gid: 1600}", DEPLOY).unwrap(),
        "groupmod --gid 1600 deploy"
    );
}

#[tokio::test]
async fn removal() {
    let out = check("{name: deploy, state: absent}", DEPLOY).await;
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:group deploy (current)
    +++ host:group deploy (desired)
    @@ -1,2 +0,0 @@
    -group: deploy
    -gid: 1500
    ");
    assert_eq!(
        script("{name: deploy, state: absent}", DEPLOY).unwrap(),
        "groupdel deploy"
    );
    assert!(!check("{name: deploy, state: absent}", "").await.changed());
}

#[test]
fn names_that_could_reach_a_shell_badly_are_refused() {
    for name in ["\"-o\"", "\"a b\"", "\"$(id)\"", "\"1500\""] {
        let message = refused(&Group, &format!("{{name: {name}}}"));
        assert!(
            message.starts_with("play.yml:1:8: group: `name`: "),
            "{message}"
        );
    }
    assert!(refused(&Group, "{name: x, gid: -1}").contains("`gid`"));
    assert!(refused(&Group, "{name: x, members: [a]}").contains("unknown parameter"));
}

#[test]
fn provides_the_group_it_creates() {
    let r = one(&Group, "{name: deploy}").resources();
    assert_eq!(r.provides, vec![Resource::Group("deploy".into())]);
    assert!(
        one(&Group, "{name: deploy, state: absent}")
            .resources()
            .provides
            .is_empty()
    );
}

#[tokio::test]
async fn the_real_probe_reads_this_machine() {
    let host = Local::default();
    let root = host.probe(one(&Group, "{name: root}").as_ref()).await;
    assert_eq!(parse_gid("root", &root).as_deref(), Some("0"));
    let none = host
        .probe(one(&Group, "{name: no-such-group-here}").as_ref())
        .await;
    assert_eq!(parse_gid("no-such-group-here", &none), None);
}
