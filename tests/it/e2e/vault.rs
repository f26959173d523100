//! Ansible Vault on a real host: a group_vars file ansible-vault encrypted (1.1) and an
//! inline `!vault` value (1.2, vault id `prod`) reach the host decrypted, while no form
//! of them shows in the human output, `-v`, `--json` or `converge diff`. Without the
//! password, or with a wrong one, the run is bad input and the host is not touched.

use crate::scenario::{Run, Scenario};

const SITE: &str = r#"
- hosts: all
  vars_files: [vars/api.yml]
  vars:
    dsn: "postgres://app:{{db_password}}@db/app"
  tasks:
    - dir: { path: /etc/vaulted }
    - name: config
      file: { path: /etc/vaulted/app.conf, content: "dsn={{dsn}}\ntoken={{api_token}}\n" }
    - name: "token {{upper api_token}}"
      command: "printf '%s\n' {{quote api_token}} > /etc/vaulted/token"
"#;

const PASSWORDS: [&str; 4] = ["--vault-password-file", "pw", "--vault-id", "prod@prod.pw"];

/// No form of a vaulted value in what `converge` printed.
fn assert_hidden(run: &Run, token: &str) {
    let all = format!("{}{}", run.stdout, run.stderr).to_lowercase();
    for fragment in ["s3cret-db", token] {
        assert!(
            !all.contains(&fragment.to_lowercase()),
            "`{fragment}` shows:\n{}{}",
            run.stdout,
            run.stderr
        );
    }
}

/// `vars/api.yml` with `api_token` encrypted inline by `converge vault encrypt-string`.
fn vault_token(s: &Scenario, token: &str) {
    let mut args = vec!["vault", "encrypt-string", "--name", "api_token", token];
    args.extend(&PASSWORDS[2..]);
    let run = s.run(&args);
    run.expect_code(0);
    s.file("vars/api.yml", &format!("app: demo\n{}", run.stdout));
}

fn with_passwords<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args.iter().copied().chain(PASSWORDS).collect()
}

#[test]
fn vaulted_values_reach_the_host_and_no_output() {
    let s = Scenario::new(1);
    s.playbook(SITE)
        .file("pw", "hunter2\n")
        .file("prod.pw", "prod-pass\n")
        .file("wrong.pw", "not-it\n")
        // Written by ansible-vault 12.3: `db_password: S3cret-Db` and `port: 5432`.
        .file(
            "group_vars/all.yml",
            include_str!("../../../src/vault/fixtures/v11.yml"),
        );
    vault_token(&s, "tok-e2e-1");
    let untouched = "test -e /etc/vaulted && echo present || echo absent";

    // Bad input before any host: no password at all, a wrong one for the group_vars file.
    let without = s.converge();
    without
        .expect_code(3)
        .expect_stderr_contains("vars/api.yml:3:11: this is encrypted with Ansible Vault");
    let wrong = s.run(&[
        "--vault-password-file",
        "wrong.pw",
        "--vault-id",
        "prod@prod.pw",
        "site.yml",
    ]);
    wrong
        .expect_code(3)
        .expect_stderr_contains("group_vars/all.yml:1:1: no vault password given opens this");
    assert_eq!(s.sh("h1", untouched), "absent\n");

    let dry = s.run(&with_passwords(&["diff", "site.yml"]));
    dry.expect_code(2)
        .expect_stdout_contains("token <secret>")
        .expect_stdout_contains("content: changed (secret)");
    assert_hidden(&dry, "tok-e2e-1");
    assert_eq!(s.sh("h1", untouched), "absent\n");

    let json = s.run(&with_passwords(&["--json", "site.yml"]));
    json.expect_code(0);
    assert_hidden(&json, "tok-e2e-1");
    assert!(json.stdout.contains("<secret>"), "{}", json.stdout);
    assert_eq!(
        s.sh("h1", "cat /etc/vaulted/app.conf /etc/vaulted/token"),
        "dsn=postgres://app:S3cret-Db@db/app\ntoken=tok-e2e-1\ntok-e2e-1\n"
    );
    assert_eq!(s.sh("h1", "stat -c %a /etc/vaulted/app.conf"), "600\n");

    // A new vaulted value: the file changes again, shown with -v.
    vault_token(&s, "tok-e2e-2");
    let verbose = s.run(&with_passwords(&["-v", "site.yml"]));
    verbose
        .expect_code(0)
        .expect_stdout_contains("content: changed (secret)");
    assert_hidden(&verbose, "tok-e2e-2");
    assert_hidden(&verbose, "tok-e2e-1");
    assert_eq!(s.sh("h1", "cat /etc/vaulted/token"), "tok-e2e-2\n");
}
