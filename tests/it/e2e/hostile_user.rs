//! converge runs as root and writes into directories the app's own user owns; that user
//! races every write, chown and chmod, and root's files must stay untouched.

use crate::scenario::Scenario;
use crate::support::hosts::SCRIPT;
use std::process::{Command, Stdio};

const SITE: &str = r#"
- hosts: all
  tasks:
    - user: { name: app, system: true, shell: /usr/sbin/nologin, home: /opt/app }
    - dir: { path: /opt/app, owner: app, mode: "0755" }
    - dir: { path: /opt/app/config, owner: app, mode: "0755" }
    - dir: { path: /opt/app/config/sub, owner: app, mode: "{{m}}" }
    - file: { path: /opt/app/config/config.yaml, content: "run {{n}}\n", owner: app, mode: "0640" }
    - file: { path: /opt/app/config/current, link: "/opt/app/releases/v{{n}}", owner: app }
    - file: { path: /opt/app/config/app.log, owner: app, mode: "{{m}}" }
    - dir: { path: /opt/app/releases, owner: app }
    - release: { name: app, version: "v{{n}}", src: build/app, dest: /opt/app, keep: 3 }
"#;

/// Under the app's user: swap every name converge touches (and the names its temp files
/// had) for links to root's files, swap the directories themselves for links to /root, and
/// replace whatever new entry appears by a link, as fast as a shell can.
const RACER: &str = r#"
cd /opt/app || exit 1
n=0
while [ ! -e /tmp/stop-racer ]; do
  n=$((n+1))
  for f in config/config.yaml config/.config.yaml.converge~ config/current config/app.log \
           config/.current.converge~ config/sub/x current .current.converge~ .converge-release \
           .converge-release.converge~ releases/v$((n % 60))/app releases/.app.converge~; do
    ln -sfn /root/secret "$f.r" 2>/dev/null && mv -Tf "$f.r" "$f" 2>/dev/null
  done
  mv -T config/sub config/sub.old 2>/dev/null && ln -sfn /root config/sub 2>/dev/null
  mv -T config config.real 2>/dev/null && ln -sfn /root config 2>/dev/null
  rm -f config 2>/dev/null; mv -T config.real config 2>/dev/null
  rm -f config/sub 2>/dev/null; mv -T config/sub.old config/sub 2>/dev/null
  mv -T releases releases.real 2>/dev/null && ln -sfn /root releases 2>/dev/null
  rm -f releases 2>/dev/null; mv -T releases.real releases 2>/dev/null
  for f in config/.[!.]* config/* config/sub/* releases/*/* .[!.]*; do
    [ -f "$f" ] && [ ! -L "$f" ] && ln -sfn /root/secret "$f.r" 2>/dev/null && mv -Tf "$f.r" "$f" 2>/dev/null
  done
done
echo "rounds=$n"
"#;

const RUNS: usize = 50;

fn root_state(s: &Scenario) -> String {
    s.sh(
        "h1",
        "stat -c '%n %U:%G %a' /root /root/secret /etc/shadow /etc/passwd; cat /root/secret",
    )
}

#[test]
fn the_apps_user_racing_every_write_never_reaches_roots_files() {
    let s = Scenario::new(1);
    s.playbook(SITE);
    s.sh(
        "h1",
        "umask 077; echo 'root only' > /root/secret; chmod 700 /root",
    );
    let untouched = root_state(&s);
    s.file("build/app", "#!/bin/sh\necho app\n");

    // The first run creates the user and the layout; app.log is the app's own file.
    s.run(&["site.yml", "-e", "n=0", "-e", "m=0640"]);
    s.sh("h1", "runuser -u app -- touch /opt/app/config/app.log");
    s.run(&["site.yml", "-e", "n=0", "-e", "m=0640"])
        .expect_code(0);

    let racer = Command::new(SCRIPT)
        .args(["exec", s.hosts.run_id(), "h1", "--"])
        .args(["runuser", "-u", "app", "--", "/bin/sh", "-c", RACER])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the racer");
    let mut codes = Vec::new();
    for run in 1..=RUNS {
        let mode = if run % 2 == 0 { "0640" } else { "0750" };
        let out = s.run(&[
            "site.yml",
            "-e",
            &format!("n={run}"),
            "-e",
            &format!("m={mode}"),
        ]);
        codes.push(out.code);
        assert!(
            !out.stdout.contains("root only") && !out.stderr.contains("root only"),
            "root's file was read into the output:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
    s.sh("h1", "touch /tmp/stop-racer");
    let racer = racer.wait_with_output().expect("racer");
    let rounds = String::from_utf8_lossy(&racer.stdout).trim().to_string();
    eprintln!("{RUNS} runs against the racer ({rounds}); exit codes: {codes:?}");
    assert!(
        codes.iter().all(|c| *c == 0 || *c == 1),
        "a run ended otherwise than ok or failed: {codes:?}"
    );

    assert_eq!(root_state(&s), untouched, "root's files changed");
    // Every staged file went live or was removed.
    assert_eq!(
        s.sh("h1", "ls -A /var/lib/converge/stage | wc -l").trim(),
        "0"
    );

    // Without the racer, one run repairs everything it left.
    s.sh(
        "h1",
        "cd /opt/app; for d in config config/sub releases; do [ -L $d ] && rm -f $d; [ -d $d.real ] && mv -T $d.real $d; \
         [ -d $d.old ] && mv -T $d.old $d; done; \
         [ -L config/app.log ] && rm -f config/app.log; runuser -u app -- touch config/app.log; true",
    );
    s.run(&["site.yml", "-e", "n=99", "-e", "m=0640"])
        .expect_code(0);
    assert_eq!(
        s.sh(
            "h1",
            "cd /opt/app/config; stat -c '%n %U %a' config.yaml app.log sub; cat config.yaml; readlink current"
        ),
        "config.yaml app 640\napp.log app 640\nsub app 640\nrun 99\n/opt/app/releases/v99\n"
    );
    assert_eq!(
        s.sh("h1", "readlink /opt/app/current; cat /opt/app/current/app"),
        "releases/v99\n#!/bin/sh\necho app\n"
    );
}

#[test]
fn a_write_that_fails_leaves_nothing_and_old_leftovers_are_swept() {
    let s = Scenario::new(1);
    // A full disk: a 1 MiB filesystem, with converge's staging directory on it (a write
    // is staged on the target's filesystem) holding a leftover of a run killed 2 hours ago.
    s.sh(
        "h1",
        "mkdir -p /opt/full && mount -t tmpfs -o size=1m tmpfs /opt/full \
         && mkdir -m 700 /opt/full/.converge-stage \
         && touch -d '2 hours ago' /opt/full/.converge-stage/cvg.old \
         && touch /opt/full/.converge-stage/cvg.recent",
    );
    std::fs::write(s.path("big.bin"), vec![7u8; 2 << 20]).expect("big.bin");
    s.playbook("- hosts: all\n  tasks:\n    - file: { path: /opt/full/big, src: big.bin }\n");
    s.converge()
        .expect_code(1)
        .expect_stdout_contains("No space left on device");
    assert_eq!(
        s.sh("h1", "ls -A /opt/full /opt/full/.converge-stage"),
        "/opt/full:\n.converge-stage\n\n/opt/full/.converge-stage:\ncvg.recent\n"
    );
    s.playbook(
        "- hosts: all\n  tasks:\n    - file: { path: /opt/full/small, content: \"fits\\n\" }\n",
    );
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert_eq!(s.sh("h1", "cat /opt/full/small"), "fits\n");
}
