//! Privilege as Ansible users write it, on a real host: an unprivileged login
//! (`deploy`) with `ansible_become: true` in the inventory, `become_user`, and a become
//! password that sudo reads from stdin and that no output shows.

use crate::scenario::{Run, Scenario};

const PASSWORD: &str = "Sudo-pw 'x7$(true)";

/// An inventory logging in to h1 as `deploy`, with `extra` (YAML lines) under all.vars.
fn deploy_inventory(s: &Scenario, extra: &str) {
    let h1 = s.hosts.host("h1");
    s.file(
        "inventory.yml",
        &format!(
            "all:\n  vars:\n    ansible_user: deploy\n{extra}  hosts:\n    h1:\n      \
             ansible_host: {}\n      ansible_ssh_private_key_file: {}\n",
            h1.ip,
            s.hosts.key().display()
        ),
    );
}

const SITE: &str = r#"
- hosts: all
  tasks:
    - name: app user
      user: { name: app, system: true, home: /opt/app, create_home: true }
    - name: root only
      file: { path: /etc/converge-become.conf, content: "made as root\n", mode: "0600" }
    - name: as the app
      command: { cmd: "id -un > /opt/app/whoami", creates: /opt/app/whoami }
      become_user: app
    - name: as the login
      command: { cmd: "id -un > /tmp/login-whoami", creates: /tmp/login-whoami }
      become: false
"#;

fn owner_and_content(s: &Scenario, path: &str) -> String {
    s.sh("h1", &format!("stat -c %U:%a {path}; cat {path}"))
}

#[test]
fn a_non_root_login_with_ansible_become_converges_root_owned_files() {
    let s = Scenario::new(1);
    deploy_inventory(&s, "    ansible_become: true\n");
    s.playbook(SITE);
    let first = s.run(&["site.yml", "-v"]);
    first.expect_code(0).expect_changed("h1", 4);
    assert_eq!(
        owner_and_content(&s, "/etc/converge-become.conf"),
        "root:600\nmade as root\n"
    );
    assert_eq!(owner_and_content(&s, "/opt/app/whoami"), "app:644\napp\n");
    // Ansible's order: the inventory's `ansible_become` beats the task's `become: false`.
    assert_eq!(
        owner_and_content(&s, "/tmp/login-whoami"),
        "root:644\nroot\n"
    );

    // A rerun reads the state of tasks run as root and as app: one exec per user.
    let rerun = s.run(&["site.yml", "-v"]);
    rerun.expect_code(0).expect_changed("h1", 0);
    rerun.expect_stderr_contains("h1: 2 exec(s) over one connection");

    // Ansible, on the same inventory, runs the same tasks as the same users.
    ansible_playbook(
        &s,
        "- hosts: all\n  gather_facts: false\n  tasks:\n    \
         - shell: id -un > /tmp/ansible-login-whoami\n      become: false\n    \
         - shell: id -un > /tmp/ansible-app-whoami\n      become_user: app\n",
    );
    assert_eq!(s.sh("h1", "cat /tmp/ansible-login-whoami"), "root\n");
    assert_eq!(s.sh("h1", "cat /tmp/ansible-app-whoami"), "app\n");
}

/// Run Ansible's `ansible-playbook` (the peers' venv: `CONVERGE_PEERS_VENV`, or what
/// tests/hosts/peers.sh installs) on the scenario's inventory; panics unless it succeeds.
fn ansible_playbook(s: &Scenario, playbook: &str) {
    let venv = std::env::var("CONVERGE_PEERS_VENV").unwrap_or_else(|_| {
        let out = std::process::Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/hosts/peers.sh"
        ))
        .output()
        .expect("tests/hosts/peers.sh");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    });
    s.file("ansible.yml", playbook);
    let known_hosts = s.home_path(".ssh/known_hosts");
    let out = std::process::Command::new(format!("{venv}/bin/ansible-playbook"))
        .args(["-i", "inventory.yml", "ansible.yml"])
        .current_dir(s.path(""))
        .env("HOME", s.home_path(""))
        .env("ANSIBLE_PIPELINING", "1")
        .env("ANSIBLE_PYTHON_INTERPRETER", "auto_silent")
        .env(
            "ANSIBLE_SSH_ARGS",
            format!(
                "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
                known_hosts.display()
            ),
        )
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("ansible-playbook");
    assert!(
        out.status.success(),
        "ansible-playbook failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn play_become_lifts_a_login_whose_inventory_says_nothing() {
    let s = Scenario::new(1);
    deploy_inventory(&s, "");
    s.playbook(&SITE.replace("- hosts: all\n", "- hosts: all\n  become: true\n"));
    s.converge().expect_code(0).expect_changed("h1", 4);
    assert_eq!(owner_and_content(&s, "/opt/app/whoami"), "app:644\napp\n");
    // Without a variable over it, the task's `become: false` runs as the login.
    assert_eq!(
        owner_and_content(&s, "/tmp/login-whoami"),
        "deploy:644\ndeploy\n"
    );
}

/// Nothing of the password in what `converge` printed.
fn assert_hidden(run: &Run) {
    for fragment in [PASSWORD, "Sudo-pw", "x7$(true)"] {
        assert!(
            !run.stdout.contains(fragment) && !run.stderr.contains(fragment),
            "the password shows:\n{}{}",
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn a_become_password_reaches_sudo_on_stdin_and_shows_nowhere() {
    let s = Scenario::new(1);
    // sudo wants deploy's password from now on.
    s.sh(
        "h1",
        &format!(
            "printf '%s\\n' 'deploy:{}' | chpasswd && \
             echo 'deploy ALL=(ALL:ALL) ALL' > /etc/sudoers.d/deploy",
            PASSWORD.replace('\'', "'\\''")
        ),
    );
    s.playbook(SITE);

    deploy_inventory(&s, "    ansible_become: true\n");
    let missing = s.converge();
    missing.expect_code(1);
    let said = format!("{}{}", missing.stdout, missing.stderr);
    assert!(
        said.contains("sudo asks for a password: give it with --ask-become-pass (-K)"),
        "{said}"
    );
    assert_eq!(
        s.hosts
            .exec("h1", "test -e /etc/converge-become.conf")
            .status
            .code(),
        Some(1)
    );

    deploy_inventory(
        &s,
        "    ansible_become: true\n    ansible_become_password: \"wrong\"\n",
    );
    let wrong = s.converge();
    wrong.expect_code(1);
    assert!(
        format!("{}{}", wrong.stdout, wrong.stderr).contains("sudo refused the become password"),
        "{}{}",
        wrong.stdout,
        wrong.stderr
    );

    let quoted = PASSWORD.replace('\'', "''");
    deploy_inventory(
        &s,
        &format!("    ansible_become: true\n    ansible_become_password: '{quoted}'\n"),
    );
    let human = s.run(&["site.yml", "-v"]);
    human.expect_code(0).expect_changed("h1", 4);
    assert_hidden(&human);
    assert_eq!(
        owner_and_content(&s, "/etc/converge-become.conf"),
        "root:600\nmade as root\n"
    );
    assert_eq!(owner_and_content(&s, "/opt/app/whoami"), "app:644\napp\n");
    s.sh("h1", "rm /tmp/login-whoami");
    let json = s.run(&["site.yml", "-v", "--json"]);
    json.expect_code(0);
    assert_hidden(&json);
    // `-K` asks once, on the terminal (a pseudo-terminal here, fed by `script`).
    deploy_inventory(&s, "    ansible_become: true\n");
    s.sh("h1", "rm /etc/converge-become.conf");
    let asked = asked_on_a_terminal(&s, "site.yml -K", PASSWORD);
    asked.expect_code(0).expect_changed("h1", 1);
    asked.expect_stdout_contains("BECOME password: ");
    assert_hidden(&asked);
    assert_eq!(
        owner_and_content(&s, "/etc/converge-become.conf"),
        "root:600\nmade as root\n"
    );
    // The password never was a word of a command line on the host.
    let journal = s.sh("h1", "journalctl -q --no-pager -t sudo || true");
    assert!(journal.contains("COMMAND="), "{journal}");
    assert!(!journal.contains("Sudo-pw"), "{journal}");
}

/// Run `converge ARGS` on a pseudo-terminal whose keyboard types `typed` and Enter.
fn asked_on_a_terminal(s: &Scenario, args: &str, typed: &str) -> Run {
    use std::io::Write;
    let line = format!("{} {args}", env!("CARGO_BIN_EXE_converge"));
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(s.path(""))
        .env("HOME", s.home_path(""))
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    // Typed once the prompt is up, with echo off (typed earlier, the terminal would
    // echo it, and assert_hidden would say so).
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut keyboard = child.stdin.take().expect("stdin");
    keyboard
        .write_all(format!("{typed}\n").as_bytes())
        .expect("type");
    drop(keyboard);
    let out = child.wait_with_output().expect("script");
    Run::of(&[args], out)
}
