use super::File;
use crate::module::testing::{FakeHost, Local, one};

#[tokio::test]
async fn a_link_is_switched_by_a_rename_from_the_staging_directory() {
    let dir = tempfile::tempdir().unwrap();
    let enabled = dir.path().join("sites-enabled");
    std::fs::create_dir(&enabled).unwrap();
    let link = enabled.join("myapp");
    let yaml = |target: &str| format!("{{path: '{}', link: {target}}}", link.display());

    // What is sent: the new link is made in converge's staging directory, never in
    // `sites-enabled`, whose `*` nginx reads, and renamed over `./myapp`.
    let host = FakeHost::ok();
    let (out, _) = host
        .converge(
            &*one(&File, &yaml("/etc/one")),
            "f.stat=absent\n",
            true,
            &[],
        )
        .await;
    assert!(out.unwrap().changed());
    assert!(
        host.ran("ln -s -- /etc/one \"$cvg_tmp\"\nmv -T -- \"$cvg_tmp\" ./myapp"),
        "{:?}",
        host.sent()
    );
    assert!(
        !host.ran(&format!("{}/.", enabled.display())),
        "{:?}",
        host.sent()
    );

    // And for real, in a temp dir: switched, nothing left beside it.
    for target in ["/etc/one", "/etc/two"] {
        let out = Local::default()
            .run(&*one(&File, &yaml(target)), true)
            .await
            .unwrap();
        assert!(out.changed());
        assert_eq!(std::fs::read_link(&link).unwrap().to_str(), Some(target));
        let names: Vec<_> = std::fs::read_dir(&enabled)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["myapp"]);
    }
}
