//! Ansible Vault, both ways, against the real `ansible-vault` of the pinned venv
//! (tests/hosts/peers.sh): what it writes (files 1.1 and 1.2 with a vault id,
//! `encrypt_string` values, in group_vars, host_vars, vars_files and `-e @FILE`)
//! converge reads; what `converge vault` writes, Ansible reads. And a vaulted file
//! without its password, or with a wrong one, is bad input (exit 3) before any host.

use super::{Folder, bad_input};
use crate::support::peers::venv;
use std::process::{Command, Stdio};

/// `ansible-vault ARGS` (or another tool of the venv) in the folder; its stdout.
fn ansible(folder: &Folder, tool: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(venv().join("bin").join(tool))
        .args(args)
        .current_dir(folder.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run an Ansible tool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for Ansible");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The playbook that shows, without connecting, whether each variable holds what it
/// should: `converge graph` marks a task whose `when` is false `[skipped: when]`.
const CHECKS: &str = "\
- hosts: all
  vars_files: [vars/app.yml]
  tasks:
    - name: group vars 1.1
      command: \"true\"
      when: (eq db_password \"S3cret-Db\")
    - name: host vars 1.2
      command: \"true\"
      when: (eq api_token \"tok-123\")
    - name: inline in vars_files
      command: \"true\"
      when: (eq smtp_password \"mail pw\")
    - name: extra vars file
      command: \"true\"
      when: (eq deploy_key \"dk-9\")
    - name: control
      command: \"true\"
      when: (eq db_password \"other\")
";

fn passwords(folder: &Folder) {
    folder.file("pw", "hunter2\n");
    folder.file("prod.pw", "prod-pass\n");
}

#[test]
fn what_ansible_vault_writes_converge_reads() {
    let folder = Folder::with_playbook(CHECKS);
    passwords(&folder);
    folder.file("group_vars/all.yml", "db_password: S3cret-Db\n");
    folder.file("host_vars/web1.yml", "api_token: tok-123\n");
    folder.file("extra.yml", "deploy_key: dk-9\n");
    ansible(
        &folder,
        "ansible-vault",
        &[
            "encrypt",
            "--vault-password-file",
            "pw",
            "group_vars/all.yml",
            "extra.yml",
        ],
        "",
    );
    ansible(
        &folder,
        "ansible-vault",
        &[
            "encrypt",
            "--vault-id",
            "prod@prod.pw",
            "host_vars/web1.yml",
        ],
        "",
    );
    let inline = ansible(
        &folder,
        "ansible-vault",
        &[
            "encrypt_string",
            "--vault-id",
            "prod@prod.pw",
            "--name",
            "smtp_password",
            "mail pw",
        ],
        "",
    );
    folder.file("vars/app.yml", &format!("app: demo\n{inline}"));
    let graph = |args: &[&str]| {
        let mut all = vec!["graph", "site.yml", "-e", "@extra.yml"];
        all.extend(args);
        folder.run(&all)
    };
    let run = graph(&["--vault-id", "prod@prod.pw", "--vault-password-file", "pw"]);
    assert_eq!(run.code, 0, "{}", run.context());
    assert_eq!(
        run.stdout.matches("[skipped: when]").count(),
        1,
        "{}",
        run.context()
    );
    assert!(
        run.stdout.contains("control [skipped: when]"),
        "{}",
        run.context()
    );
    // Ansible tries every password, the labelled one first: one label fits all.
    let run = graph(&["--vault-id", "pw", "--vault-id", "other@prod.pw"]);
    assert_eq!(run.code, 0, "{}", run.context());
    // A program printing the password, named by the environment variable.
    folder.file("pw.sh", "#!/bin/sh\necho hunter2\n");
    let script = folder.dir.path().join("pw.sh");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let run = folder.run_with(
        &[
            "graph",
            "site.yml",
            "-e",
            "@extra.yml",
            "--vault-id",
            "prod@prod.pw",
        ],
        &[("CONVERGE_VAULT_PASSWORD_FILE", "pw.sh")],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.context());
    assert_eq!(
        run.stdout.matches("[skipped: when]").count(),
        1,
        "{}",
        run.context()
    );
    // converge vault view and decrypt open ansible-vault's file.
    let run = folder.run(&["vault", "view", "--vault-password-file", "pw", "extra.yml"]);
    assert_eq!(run.code, 0, "{}", run.context());
    assert_eq!(run.stdout, "deploy_key: dk-9\n");
    let run = folder.run(&[
        "vault",
        "decrypt",
        "--vault-password-file",
        "pw",
        "extra.yml",
    ]);
    assert_eq!(run.code, 0, "{}", run.context());
    let plain = std::fs::read_to_string(folder.dir.path().join("extra.yml")).expect("read");
    assert_eq!(plain, "deploy_key: dk-9\n");
}

#[test]
fn what_converge_vault_writes_ansible_reads() {
    let folder = Folder::new();
    passwords(&folder);
    folder.file("v11.yml", "db_password: S3cret-Db\n");
    folder.file("v12.yml", "api_token: tok-123\n");
    let run = folder.run(&["vault", "encrypt", "--vault-password-file", "pw", "v11.yml"]);
    assert_eq!(run.code, 0, "{}", run.context());
    let run = folder.run(&["vault", "encrypt", "--vault-id", "prod@prod.pw", "v12.yml"]);
    assert_eq!(run.code, 0, "{}", run.context());
    let header = |file: &str| {
        let text = std::fs::read_to_string(folder.dir.path().join(file)).expect("read");
        text.lines().next().unwrap_or_default().to_string()
    };
    assert_eq!(header("v11.yml"), "$ANSIBLE_VAULT;1.1;AES256");
    assert_eq!(header("v12.yml"), "$ANSIBLE_VAULT;1.2;AES256;prod");
    let view = |args: &[&str]| ansible(&folder, "ansible-vault", args, "");
    assert_eq!(
        view(&["view", "--vault-password-file", "pw", "v11.yml"]),
        "db_password: S3cret-Db\n"
    );
    assert_eq!(
        view(&["view", "--vault-id", "prod@prod.pw", "v12.yml"]),
        "api_token: tok-123\n"
    );
    // Values, given as an argument and on standard input (taken as it is).
    let run = folder.run(&[
        "vault",
        "encrypt-string",
        "--vault-password-file",
        "pw",
        "--name",
        "pw_arg",
        "it's \"quoted\"",
    ]);
    assert_eq!(run.code, 0, "{}", run.context());
    let piped = folder.run_with(
        &[
            "vault",
            "encrypt-string",
            "--vault-id",
            "prod@prod.pw",
            "--name",
            "pw_stdin",
        ],
        &[],
        "from stdin",
    );
    assert_eq!(piped.code, 0, "{}", piped.context());
    folder.file("vals.yml", &format!("{}{}", run.stdout, piped.stdout));
    let python = venv().join("bin/python");
    let shown = ansible(
        &folder,
        "ansible",
        &[
            "localhost",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-m",
            "debug",
            "-a",
            "msg={{ pw_arg }}|{{ pw_stdin }}",
            "-e",
            "@vals.yml",
            "--vault-password-file",
            "pw",
            "--vault-id",
            "prod@prod.pw",
            "-e",
            &format!("ansible_python_interpreter={}", python.display()),
        ],
        "",
    );
    assert!(
        shown.contains(r#""msg": "it's \"quoted\"|from stdin""#),
        "{shown}"
    );
}

#[test]
fn a_vaulted_file_without_a_password() {
    let folder = Folder::new();
    passwords(&folder);
    let stderr = bad_input(
        super::GOOD,
        &[(
            "group_vars/all.yml",
            include_str!("../../../src/vault/fixtures/v11.yml"),
        )],
        &["site.yml"],
    );
    assert!(
        stderr.contains("group_vars/all.yml:1:1: this is encrypted"),
        "{stderr}"
    );
    insta::assert_snapshot!(stderr);
}

#[test]
fn a_wrong_vault_password() {
    let stderr = bad_input(
        super::GOOD,
        &[
            ("wrong.pw", "not-it\n"),
            (
                "vars.yml",
                include_str!("../../../src/vault/fixtures/inline.yml"),
            ),
        ],
        &[
            "site.yml",
            "-e",
            "@vars.yml",
            "--vault-password-file",
            "wrong.pw",
        ],
    );
    assert!(
        stderr.contains("vars.yml:2:11: no vault password given opens this"),
        "{stderr}"
    );
    insta::assert_snapshot!(stderr);
}
