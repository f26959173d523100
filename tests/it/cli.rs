//! Acceptance tests of the command line: the real binary on playbooks and inventories
//! in temp dirs. No hosts, no SSH: every run here stops before connecting (the one host
//! of the inventory is 127.0.0.1 port 1, so a run that got through would fail at once
//! with exit 1 rather than touch anything).
//!
//! Every kind of user mistake exits 3, says nothing on stdout, and its stderr is
//! snapshotted (tests/cli/snapshots): the message, its location and its hint are the
//! user interface.

use crate::run::Run;
use std::process::{Command, Stdio};

mod vault;

mod ansible_roles;

const INVENTORY: &str = "\
all:
  hosts:
    web1: { ansible_host: 127.0.0.1, ansible_port: 1 }
  children:
    web:
      hosts: { web1: {} }
";

/// A playbook folder: `inventory.yml` and whatever the test writes beside it.
struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    fn new() -> Folder {
        let folder = Folder {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        folder.file("inventory.yml", INVENTORY);
        folder
    }

    /// A folder with `site.yml`.
    fn with_playbook(yaml: &str) -> Folder {
        let folder = Folder::new();
        folder.file("site.yml", yaml);
        folder
    }

    fn file(&self, relative: &str, content: &str) -> &Folder {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent dir");
        }
        std::fs::write(path, content).expect("write");
        self
    }

    /// `converge ARGS` in the folder, without colors, with a HOME and XDG_RUNTIME_DIR of its
    /// own (the run lock's place depends on neither).
    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], "")
    }

    /// `converge ARGS` as [`Folder::run`], with more environment and a standard input.
    fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_converge"))
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("HOME", self.dir.path())
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("FORCE_COLOR")
            .env_remove("CONVERGE_VAULT_PASSWORD_FILE")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run converge");
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait for converge");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: self.normalise(&String::from_utf8_lossy(&out.stdout)),
            stderr: self.normalise(&String::from_utf8_lossy(&out.stderr)),
        }
    }

    /// The temp dir's path, wherever it shows, as `[DIR]`.
    fn normalise(&self, text: &str) -> String {
        let mut text = text.to_string();
        let path = self.dir.path();
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        for p in [canonical.as_path(), path] {
            text = text.replace(&p.display().to_string(), "[DIR]");
        }
        text
    }
}

/// `converge ARGS` in a folder holding `site.yml` (and `files`): bad input, so exit 3,
/// nothing on stdout, the same error from `converge apply ARGS`; `diff` and `validate`
/// refuse it too. Returns the stderr to snapshot.
fn bad_input(playbook: &str, files: &[(&str, &str)], args: &[&str]) -> String {
    let folder = Folder::with_playbook(playbook);
    for (path, content) in files {
        folder.file(path, content);
    }
    let run = folder.run(args);
    assert_eq!(run.code, 3, "{}", run.context());
    assert_eq!(run.stdout, "", "{}", run.context());
    assert!(!run.stderr.trim().is_empty(), "{}", run.context());
    assert!(
        !run.stderr.contains("panicked"),
        "a panic is not an error message:\n{}",
        run.context()
    );
    let explicit: Vec<&str> = ["apply"].iter().chain(args).copied().collect();
    assert_eq!(
        folder.run(&explicit),
        run,
        "`converge {}` and `converge {}` differ",
        args.join(" "),
        explicit.join(" ")
    );
    for command in ["diff", "validate"] {
        // validate takes no run options; only the ones it knows are passed on.
        let mut with: Vec<&str> = vec![command];
        let mut rest = args.iter();
        while let Some(&a) = rest.next() {
            let takes_value = matches!(
                a,
                "-i" | "-l" | "-e" | "--vault-id" | "--vault-password-file"
            );
            if command == "validate" && a.starts_with('-') && !takes_value && a != "--frobnicate" {
                continue;
            }
            with.push(a);
            if takes_value {
                with.extend(rest.next().copied());
            }
        }
        let other = folder.run(&with);
        assert_eq!(
            other.code,
            3,
            "converge {}: {}",
            with.join(" "),
            other.context()
        );
    }
    run.stderr
}

/// A play on `all` with `tasks` (already indented as list items under `tasks:`).
fn play(tasks: &str) -> String {
    format!("- name: site\n  hosts: all\n  tasks:\n{tasks}")
}

// ---------------------------------------------------------------- bad input

const GOOD: &str = "- name: site\n  hosts: all\n  tasks:\n    - name: config\n      \
                    file: { path: /etc/app.conf, content: \"x\\n\" }\n";

/// A user mistake: its snapshot's name, the playbook, files beside it, the arguments,
/// and what the message must say and must not.
struct Mistake {
    name: &'static str,
    playbook: String,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    says: &'static [&'static str],
    hides: &'static [&'static str],
}

/// Parse errors, variables and templates, secrets, ordering, the command line, vars files
/// and inventories.
fn mistakes() -> Vec<Mistake> {
    vec![
        Mistake {
            name: "yaml_syntax_error",
            playbook: play("    - name: config\n      file: { path: /etc/app.conf, content: [oops\n"),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "unknown_play_key",
            playbook: "- name: site\n  hosts: all\n  taks:\n    - file: { path: /etc/app.conf }\n".to_string(),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "unknown_module_suggests_the_closest",
            playbook: play("    - name: config\n      fiel: { path: /etc/app.conf, content: \"x\\n\" }\n"),
            files: &[],
            args: &["site.yml"],
            says: &["did you mean `file`?"],
            hides: &[],
        },
        Mistake {
            name: "unknown_task_key_suggests_the_closest",
            playbook: play("    - name: config\n      file: { path: /etc/app.conf }\n      wehn: ready\n"),
            files: &[],
            args: &["site.yml"],
            says: &["did you mean `when`?"],
            hides: &[],
        },
        Mistake {
            name: "two_modules_in_one_task",
            playbook: play(
            "    - name: layout\n      dir: { path: /opt/app }\n      file: { path: /opt/app/a }\n",
        ),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "wrong_parameter_type",
            playbook: play("    - name: account\n      user: { name: app, system: maybe }\n"),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "parameters_are_a_mapping",
            playbook: play("    - name: config\n      file: /etc/app.conf\n"),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &["FileParams"],
        },
        Mistake {
            name: "unknown_parameter",
            playbook: play("    - name: config\n      file: { path: /etc/app.conf, mdoe: \"0644\" }\n"),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "missing_required_parameter",
            playbook: play("    - name: config\n      file: { content: \"x\\n\", mode: \"0644\" }\n"),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "unquoted_mode",
            playbook: play("    - name: config\n      file: { path: /etc/app.conf, content: x, mode: 0644 }\n"),
            files: &[],
            args: &["site.yml"],
            says: &["site.yml:5:54:", r#"mode: "0644""#],
            hides: &[],
        },
        Mistake {
            name: "undefined_variable_in_a_parameter",
            playbook: "- name: site\n  hosts: all\n  vars: { app: demo }\n  tasks:\n    - name: config\n      \
         file: { path: \"/etc/{{ app }}/{{ envrionment }}.conf\", content: x }\n".to_string(),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "undefined_variable_in_when",
            playbook: play(
            "    - name: tls\n      file: { path: /etc/tls.conf, content: x }\n      when: enable_tls\n",
        ),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "undefined_variable_in_vars",
            playbook: "- name: site\n  hosts: all\n  vars:\n    app: demo\n    home: \"/opt/{{ ap }}\"\n  \
         tasks:\n    - name: home\n      dir: { path: \"{{ home }}\" }\n".to_string(),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "undefined_variable_in_a_template_file",
            playbook: "- name: site\n  hosts: all\n  vars: { app: demo }\n  tasks:\n    - name: config\n      \
         template: { src: templates/app.conf.hbs, dest: /etc/app.conf }\n".to_string(),
            files: &[("templates/app.conf.hbs", "name={{app}}\nport={{ port }}\n")],
            args: &["site.yml"],
            says: &["templates/app.conf.hbs:2:"],
            hides: &[],
        },
        Mistake {
            name: "template_syntax_error",
            playbook: "- name: site\n  hosts: all\n  vars: { app: demo, tls: true }\n  tasks:\n    - name: config\n      \
         template: { src: templates/app.conf.hbs, dest: /etc/app.conf }\n".to_string(),
            files: &[(
            "templates/app.conf.hbs",
            "name={{app}}\n{{#if tls}}\nlisten=443\n",
        )],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "template_syntax_error_in_a_parameter",
            playbook: "- name: site\n  hosts: all\n  vars: { app: demo }\n  tasks:\n    - name: config\n      \
         file: { path: \"/etc/{{app}.conf\", content: x }\n".to_string(),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "a_secret_never_shows_in_an_error",
            playbook: "- name: site\n  hosts: all\n  vars_files: [vars/secret.yml]\n  secrets: [db_password]\n  \
         tasks:\n    - name: config\n      file: { path: /etc/app.conf, content: x, mode: \"{{db_password}}\" }\n".to_string(),
            files: &[("vars/secret.yml", "db_password: hunter2-s3cret\n")],
            args: &["site.yml"],
            says: &[],
            hides: &["hunter2"],
        },
        Mistake {
            name: "a_secret_next_to_a_mistake_is_hidden_in_the_snippet",
            playbook: "- name: site\n  hosts: all\n  secrets: [pw]\n  vars: { pw: hunter2, app: demo }\n  \
         vras: { x: 1 }\n  tasks: []\n".to_string(),
            files: &[],
            args: &["site.yml"],
            says: &["app: demo"],
            hides: &["hunter2"],
        },
        Mistake {
            name: "a_secret_in_a_unit_environment_is_refused",
            playbook: "- name: site\n  hosts: all\n  vars: { db_password: hunter2 }\n  secrets: [db_password]\n  \
         tasks:\n    - systemd_unit:\n        name: app\n        exec_start: /usr/bin/true\n        \
         environment:\n          MODE: release\n          DB_PASSWORD: \"{{db_password}}\"\n".to_string(),
            files: &[],
            args: &["site.yml"],
            says: &["site.yml:11:11:"],
            hides: &["hunter2"],
        },
        Mistake {
            name: "requires_an_unknown_task",
            playbook: play(
            "    - name: migrate\n      command: \"echo migrate\"\n      requires: [instal]\n    \
             - name: install\n      command: \"echo install\"\n",
        ),
            files: &[],
            args: &["site.yml"],
            says: &["did you mean `install`?"],
            hides: &[],
        },
        Mistake {
            name: "notify_names_a_task_that_is_not_a_handler",
            playbook: play(
            "    - name: config\n      file: { path: /etc/app.conf, content: x }\n      \
             notify: reload app\n    - name: reload app\n      service: { name: app, state: reloaded }\n",
        ),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "duplicate_task_names",
            playbook: play(
            "    - name: config\n      file: { path: /etc/a.conf, content: x }\n    \
             - name: config\n      file: { path: /etc/b.conf, content: x }\n",
        ),
            files: &[],
            args: &["site.yml"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "extra_var_without_equals",
            playbook: GOOD.to_string(),
            files: &[],
            args: &["site.yml", "-e", "version"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "missing_vars_file",
            playbook: "- name: site\n  hosts: all\n  vars_files: [vars/prod.yml]\n  tasks:\n    - name: config\n      \
         file: { path: /etc/app.conf, content: x }\n".to_string(),
            files: &[],
            args: &["site.yml"],
            says: &["site.yml:3:16:"],
            hides: &[],
        },
        Mistake {
            name: "inventory_unknown_key_in_a_group",
            playbook: GOOD.to_string(),
            files: &[(
            "inventory.yml",
            "all:\n  children:\n    web:\n      hots: { web1: { ansible_host: 127.0.0.1 } }\n",
        )],
            args: &["site.yml"],
            says: &["inventory.yml:4:7:"],
            hides: &[],
        },
        Mistake {
            name: "ini_inventory_children_naming_an_undefined_group",
            playbook: GOOD.to_string(),
            files: &[(
            "hosts",
            "[web]\nweb1 ansible_host=127.0.0.1\n\n[prod:children]\nweb\ndb\n",
        )],
            args: &["site.yml", "-i", "hosts"],
            says: &["hosts:6:1:"],
            hides: &[],
        },
        Mistake {
            name: "ini_inventory_host_line_word_without_equals",
            playbook: GOOD.to_string(),
            files: &[(
            "hosts",
            "[web]\nweb1 ansible_host=127.0.0.1 ; the web server\n",
        )],
            args: &["site.yml", "-i", "hosts"],
            says: &["hosts:2:29:"],
            hides: &[],
        },
        Mistake {
            name: "a_limit_that_matches_no_host",
            playbook: GOOD.to_string(),
            files: &[],
            args: &["site.yml", "-l", "db*"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "a_usage_error_exits_3_not_2",
            playbook: GOOD.to_string(),
            files: &[],
            args: &["site.yml", "--frobnicate"],
            says: &[],
            hides: &[],
        },
        Mistake {
            name: "become_user_that_is_no_user_name",
            playbook: play("    - command: id\n      become: true\n      become_user: \"app; rm -rf /\"\n"),
            files: &[],
            args: &["site.yml"],
            says: &["site.yml:6:20:"],
            hides: &[],
        },
        Mistake {
            name: "inventory_become_user_that_is_no_user_name",
            playbook: GOOD.to_string(),
            files: &[(
                "inventory.yml",
                "all:\n  hosts:\n    web1: { ansible_host: 127.0.0.1, ansible_become_user: \"-r\" }\n",
            )],
            args: &["site.yml"],
            says: &["inventory.yml:3:"],
            hides: &[],
        },
        Mistake {
            name: "a_serial_batch_that_is_not_a_whole_percentage",
            playbook: "- name: site\n  hosts: all\n  serial: [1, \"15.5%\"]\n  tasks: []\n"
                .to_string(),
            files: &[],
            args: &["site.yml"],
            says: &["site.yml:3:15:"],
            hides: &[],
        },
        Mistake {
            name: "a_templated_batch_pause_is_checked_with_extra_vars_before_connecting",
            playbook: "- name: site\n  hosts: all\n  serial: 1\n  batch_pause: \"{{pause}}\"\n  tasks: []\n"
                .to_string(),
            files: &[],
            args: &["site.yml", "-e", "pause=soon"],
            says: &["site.yml:4:16:"],
            hides: &[],
        },
        Mistake {
            name: "a_role_that_does_not_exist",
            playbook: "- name: site\n  hosts: all\n  roles:\n    - role: gin_servce\n".to_string(),
            files: &[("roles/gin_service/tasks/main.yml", "")],
            args: &["site.yml"],
            says: &["did you mean `gin_service`?"],
            hides: &[],
        },
        Mistake {
            name: "a_mistake_in_a_role_is_located_in_the_roles_file",
            playbook: "- name: site\n  hosts: all\n  roles: [app]\n".to_string(),
            files: &[
                ("roles/app/tasks/main.yml", "- import_tasks: config.yml\n"),
                (
                    "roles/app/tasks/config.yml",
                    "- name: config\n  template: { src: app.conf.hbs, dest: /etc/app.conf }\n",
                ),
                ("roles/app/templates/app.conf.hbs", "port: {{port}}\n"),
            ],
            args: &["site.yml"],
            says: &["roles/app/tasks/config.yml:2:20: template: `src`: app.conf.hbs:1:7"],
            hides: &[],
        },
        Mistake {
            name: "a_secret_role_parameter_next_to_a_mistake_is_hidden",
            playbook: "- name: site\n  hosts: all\n  secrets: [db_password]\n  roles:\n    - role: ap\n      \
                       db_password: hunter2\n"
                .to_string(),
            files: &[("roles/app/tasks/main.yml", "")],
            args: &["site.yml"],
            says: &["no role `ap`"],
            hides: &["hunter2"],
        },
    ]
}

#[test]
fn every_mistake_exits_3_before_any_host_with_its_located_error() {
    for mistake in mistakes() {
        let stderr = bad_input(&mistake.playbook, mistake.files, mistake.args);
        for text in mistake.says {
            assert!(
                stderr.contains(text),
                "{}: lacks {text:?}:\n{stderr}",
                mistake.name
            );
        }
        for text in mistake.hides {
            assert!(
                !stderr.contains(text),
                "{}: shows {text:?}:\n{stderr}",
                mistake.name
            );
        }
        insta::assert_snapshot!(mistake.name, stderr);
    }
}

#[test]
fn a_secret_in_any_form_is_hidden_in_an_error() {
    // A field of a structured secret, through a helper, in the message; the secret
    // in the vars file next to the mistake, in the snippet.
    let stderr = bad_input(
        "- name: site\n  hosts: all\n  vars_files: [vars/db.yml]\n  secrets: [db]\n  tasks:\n    \
         - file: { path: /etc/app.conf, content: x, mode: \"{{upper db.password}}\" }\n",
        &[(
            "vars/db.yml",
            "db:\n  user: billing_rw\n  password: s3cr3t-pw\n",
        )],
        &["site.yml"],
    );
    assert!(!stderr.to_lowercase().contains("s3cr3t"), "{stderr}");
    insta::assert_snapshot!(stderr);
    let stderr = bad_input(
        "- name: site\n  hosts: all\n  secrets: [pw]\n  vars:\n    pw: \"it's-hunter2\"\n    \
         url: \"http://{{nope}}/\"\n  tasks: []\n",
        &[],
        &["site.yml"],
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    insta::assert_snapshot!("a_secret_next_to_an_undefined_variable", stderr);
}

#[test]
fn a_dependency_cycle_is_spelled_out() {
    let stderr = bad_input(
        &play(
            "    - name: layout\n      dir: { path: /opt/app }\n      requires: account\n    \
             - name: account\n      user: { name: app }\n      requires: config\n    \
             - name: config\n      file: { path: /opt/app/app.conf, content: x }\n",
        ),
        &[],
        &["site.yml"],
    );
    for task in ["`layout`", "`account`", "`config`"] {
        assert!(stderr.contains(task), "{stderr}");
    }
    insta::assert_snapshot!(stderr);
}

#[test]
fn errors_go_to_stderr_even_with_json() {
    let folder = Folder::with_playbook(&play("    - fiel: { path: /etc/a }\n"));
    let run = folder.run(&["site.yml", "--json"]);
    assert_eq!(run.code, 3, "{}", run.context());
    assert_eq!(run.stdout, "", "{}", run.context());
    assert!(
        run.stderr.contains("did you mean `file`?"),
        "{}",
        run.context()
    );
}

#[test]
fn a_missing_playbook() {
    let folder = Folder::new();
    let run = folder.run(&["nosuch.yml"]);
    assert_eq!(run.code, 3, "{}", run.context());
    assert_eq!(folder.run(&["apply", "nosuch.yml"]), run);
    insta::assert_snapshot!(run.stderr);
}

// ---------------------------------------------------------------- help, version, validate, graph

#[test]
fn help_lists_every_exit_code() {
    let folder = Folder::new();
    for args in [&["--help"][..], &["apply", "--help"], &["diff", "--help"]] {
        let run = folder.run(args);
        assert_eq!(run.code, 0, "{}", run.context());
        for code in ["0", "1", "2", "3", "4", "130"] {
            assert!(
                run.stdout
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{code} "))),
                "converge {}: no line for exit code {code}:\n{}",
                args.join(" "),
                run.stdout
            );
        }
    }
}

#[test]
fn version() {
    let run = Folder::new().run(&["--version"]);
    assert_eq!(run.code, 0, "{}", run.context());
    assert_eq!(
        run.stdout.trim(),
        format!("converge {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn validate_a_good_playbook() {
    let folder = Folder::with_playbook(GOOD);
    let run = folder.run(&["validate", "site.yml"]);
    assert_eq!(run.code, 0, "{}", run.context());
    assert!(run.stdout.contains("ok"), "{}", run.context());
    assert_eq!(run.stderr, "", "{}", run.context());
}

#[test]
fn a_play_on_a_group_the_inventory_lacks_is_warned_about() {
    let folder = Folder::with_playbook(&GOOD.replace("hosts: all", "hosts: wbe"));
    let run = folder.run(&["validate", "site.yml"]);
    assert_eq!(run.code, 0, "{}", run.context());
    assert!(
        run.stderr
            .contains("warning: site.yml:2:10: play `site`: `wbe` names no host or group"),
        "{}",
        run.context()
    );
}

const GRAPHED: &str = r#"- name: app
  hosts: web
  vars: { app: myapp }
  tasks:
    - name: config
      file: { path: "/opt/{{app}}/config.yaml", content: "port: 8080\n", owner: "{{app}}", mode: "0640" }
      notify: restart app
    - name: layout
      dir: { path: "/opt/{{app}}", mode: "0755" }
    - name: service account
      user: { name: "{{app}}", system: true }
    - name: releases
      dir: { path: "/opt/{{app}}/releases/{{item}}" }
      loop: [v1, v2]
    - name: migrate
      command: "/opt/{{app}}/migrate"
      requires: config
    - name: debian only
      file: { path: /etc/apt/apt.conf.d/99app, content: "x\n" }
      when: (eq facts.os.id "debian")
  handlers:
    - name: restart app
      service: { name: "{{app}}", state: restarted }
"#;

#[test]
fn graph_as_text() {
    let folder = Folder::with_playbook(GRAPHED);
    let run = folder.run(&["graph", "site.yml"]);
    assert_eq!(run.code, 0, "{}", run.context());
    let position = |name: &str| {
        run.stdout
            .lines()
            .position(|l| l.contains(&format!(". {name}")))
            .unwrap_or_else(|| panic!("no {name}:\n{}", run.stdout))
    };
    // Implicit edges reorder the list: the dir and the user come before the file.
    assert!(position("layout") < position("config"));
    assert!(position("service account") < position("config"));
    assert!(position("config") < position("migrate"));
    assert!(position("config") < position("restart app"));
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn graph_as_dot() {
    let folder = Folder::with_playbook(GRAPHED);
    let run = folder.run(&["graph", "site.yml", "--format", "dot"]);
    assert_eq!(run.code, 0, "{}", run.context());
    assert!(run.stdout.starts_with("digraph "), "{}", run.stdout);
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn default_subcommand_is_apply() {
    // Same error for a bad playbook, same usage error for a bad flag.
    let folder = Folder::with_playbook(&play("    - fiel: { path: /etc/a }\n"));
    for args in [
        &["site.yml"][..],
        &["site.yml", "-q"],
        &["site.yml", "--nope"],
    ] {
        let explicit: Vec<&str> = ["apply"].iter().chain(args).copied().collect();
        let implicit = folder.run(args);
        assert_eq!(implicit.code, 3, "{}", implicit.context());
        assert_eq!(implicit, folder.run(&explicit));
    }
}

/// The same playbook in another environment: cron (no XDG_RUNTIME_DIR, another HOME) while a
/// login run (XDG_RUNTIME_DIR, HOME) holds the lock. The place of the lock depends on the uid
/// only, so the second run exits 4 at once and names the holder; when the holder is killed
/// with -9, the lock is free again.
#[test]
fn a_run_holding_the_lock_makes_the_next_exit_4_whatever_its_environment() {
    // Accepts connections and never speaks SSH: the first run waits in its handshake.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = silent.local_addr().expect("addr").port().to_string();
    let folder = Folder::with_playbook(
        "- hosts: all\n  tasks:\n    - file: { path: /nonexistent/x, content: x }\n",
    );
    folder.file(
        "inventory.yml",
        &format!("all:\n  hosts:\n    web1: {{ ansible_host: 127.0.0.1, ansible_port: {port} }}\n"),
    );
    let mut first = Command::new(env!("CARGO_BIN_EXE_converge"))
        .args(["site.yml", "--timeout", "30"])
        .current_dir(folder.dir.path())
        .env("HOME", folder.dir.path())
        .env("XDG_RUNTIME_DIR", folder.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("first run");
    std::thread::sleep(std::time::Duration::from_millis(700));
    let cron_home = tempfile::tempdir().expect("another home");
    let as_cron = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_converge"))
            .args(args)
            .current_dir(folder.dir.path())
            .env("HOME", cron_home.path())
            .env_remove("XDG_RUNTIME_DIR")
            .env("NO_COLOR", "1")
            .output()
            .expect("run converge");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let started = std::time::Instant::now();
    let second = as_cron(&["diff", "site.yml", "--timeout", "1"]);
    assert_eq!(second.code, 4, "{}", second.context());
    assert!(
        second
            .stderr
            .contains("another converge run holds the lock"),
        "{}",
        second.context()
    );
    // The holder as it wrote itself: user@controller, its pid, since when.
    let holder = format!("@{}, pid {}, since ", hostname(), first.id());
    assert!(second.stderr.contains(&holder), "{}", second.context());
    assert!(started.elapsed().as_secs() < 5, "exit 4 must come at once");
    // The login run is refused too while it is held (same file from either side).
    let login = folder.run(&["diff", "site.yml", "--timeout", "1"]);
    assert_eq!(login.code, 4, "{}", login.context());
    first.kill().expect("kill -9 the first run");
    first.wait().expect("wait");
    // Killed with -9: the lock went with the process.
    let third = as_cron(&["diff", "site.yml", "--timeout", "1"]);
    assert_ne!(third.code, 4, "{}", third.context());
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

/// A link planted where the lock file goes is not followed: the run refuses, exits 1
/// before connecting, and the file the link points to is left as it was.
#[test]
fn a_link_planted_at_the_lock_is_refused_and_not_followed() {
    let folder = Folder::with_playbook(&play("    - file: { path: /etc/a, content: a }\n"));
    let victim = folder.dir.path().join("victim");
    std::fs::write(&victim, "precious\n").expect("victim");
    let at = converge::lock::lock_path(
        &folder.dir.path().join("site.yml"),
        &folder.dir.path().join("inventory.yml"),
    )
    .expect("lock path");
    // A first run makes the lock's directory and file (it stops at the unreachable host);
    // the file is then replaced by the link.
    assert_eq!(folder.run(&["diff", "site.yml", "--timeout", "1"]).code, 1);
    std::fs::remove_file(&at).expect("the first run's lock file");
    std::os::unix::fs::symlink(&victim, &at).expect("plant the link");
    let run = folder.run(&["site.yml"]);
    // Removed before asserting, so a failure leaves nothing planted behind.
    let _ = std::fs::remove_file(&at);
    assert_eq!(run.code, 1, "{}", run.context());
    assert!(
        run.stderr.contains("without following a link"),
        "{}",
        run.context()
    );
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n"
    );
}

/// Hosts with the local connection are this one machine: a run converges them all under
/// the machine's one host lock, where each used to refuse the others ("locked by").
#[test]
fn local_hosts_of_one_run_share_the_machine_s_lock() {
    let folder = Folder::new();
    folder.file(
        "inventory.yml",
        "all:\n  hosts:\n    one: { ansible_connection: local }\n    two: { ansible_connection: local }\n    three: { ansible_connection: local }\n",
    );
    let out = folder.dir.path().join("out");
    std::fs::create_dir(&out).expect("the output dir");
    folder.file(
        "site.yml",
        &format!(
            "- hosts: all\n  tasks:\n    - file: {{ path: \"{}/{{{{inventory_hostname}}}}\", content: \"converged\\n\" }}\n",
            out.display()
        ),
    );
    let run = folder.run(&["site.yml", "-f", "3"]);
    assert_eq!(run.code, 0, "{}", run.context());
    for host in ["one", "two", "three"] {
        assert!(
            run.stdout
                .contains(&format!("{host}  ok=0 changed=1 failed=0")),
            "{host} converged:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        let written = std::fs::read_to_string(out.join(host)).expect("the host's file");
        assert_eq!(written, "converged\n");
    }
}

/// The controller's memory does not grow with the hosts or the size of a build: a file
/// from this machine is hashed once and streamed to each host from disk. Twelve local
/// hosts each take a 64 MiB build; converge's peak resident memory stays under 48 MiB,
/// less than one copy of the build. (When every host's plan held its own copy, 30 hosts
/// taking a 5 MiB build peaked at 335 MiB.)
#[test]
fn memory_stays_flat_when_local_hosts_take_a_large_build() {
    const HOSTS: usize = 12;
    const BUILD: usize = 64 << 20;
    const BOUND_KIB: i64 = 48 << 10;
    let folder = Folder::new();
    let hosts: String = (1..=HOSTS)
        .map(|i| format!("    h{i}: {{ ansible_connection: local }}\n"))
        .collect();
    folder.file("inventory.yml", &format!("all:\n  hosts:\n{hosts}"));
    // Written a MiB at a time: a forked child starts with this process's resident
    // pages, which would count in converge's peak.
    let mut build = std::fs::File::create(folder.dir.path().join("build")).expect("the build");
    for mib in 0..BUILD >> 20 {
        let chunk: Vec<u8> = (0..1 << 20).map(|i| ((i + mib) % 251) as u8).collect();
        std::io::Write::write_all(&mut build, &chunk).expect("write the build");
    }
    drop(build);
    let out = folder.dir.path().join("out");
    std::fs::create_dir(&out).expect("the output dir");
    folder.file(
        "site.yml",
        &format!(
            "- hosts: all\n  tasks:\n    - file: {{ path: \"{}/{{{{inventory_hostname}}}}\", src: build, mode: \"0755\" }}\n",
            out.display()
        ),
    );
    let run = folder.run(&["site.yml", "-f", &HOSTS.to_string()]);
    assert_eq!(run.code, 0, "{}", run.context());
    // converge is the largest process this test process has waited for (nextest runs
    // each test in a process of its own).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    let peak_kib = usage.ru_maxrss;
    assert!(
        peak_kib < BOUND_KIB,
        "converge peaked at {} MiB for {HOSTS} hosts taking a {} MiB build",
        peak_kib >> 10,
        BUILD >> 20
    );
    for i in 1..=HOSTS {
        let written = std::fs::metadata(out.join(format!("h{i}"))).expect("the host's copy");
        assert_eq!(written.len(), BUILD as u64);
    }
    let rerun = folder.run(&["site.yml", "-f", &HOSTS.to_string()]);
    assert_eq!(rerun.code, 0, "{}", rerun.context());
    assert!(rerun.stdout.contains("changed=0"), "{}", rerun.stdout);
}

/// After a change, only the probes it may have altered are read again: a file written
/// leaves the probes of other paths standing, while a command (which may change anything)
/// has every later probe read again, so the file it wrote is diffed as it now is.
#[test]
fn a_local_change_rereads_only_the_probes_it_may_have_altered() {
    let folder = Folder::new();
    folder.file(
        "inventory.yml",
        "all:\n  hosts:\n    here: { ansible_connection: local }\n",
    );
    let out = folder.dir.path().join("out");
    std::fs::create_dir(&out).expect("the output dir");
    let o = out.display();
    folder.file(
        "site.yml",
        &format!(
            "- hosts: all\n  tasks:\n\
             \x20   - file: {{ path: {o}/a, content: \"a\\n\" }}\n\
             \x20   - file: {{ path: {o}/b, content: \"b\\n\" }}\n\
             \x20   - command: {{ cmd: \"echo old > {o}/c\", creates: {o}/never }}\n\
             \x20   - file: {{ path: {o}/c, content: \"new\\n\" }}\n\
             \x20   - file: {{ path: {o}/d, content: \"d\\n\" }}\n"
        ),
    );
    let run = folder.run(&["site.yml", "-v"]);
    assert_eq!(run.code, 0, "{}", run.context());
    assert!(run.stdout.contains("-old\n+new\n"), "{}", run.stdout);
    // The first read, five changes, and two reads again: the command's guard after the
    // writes of a and b (a command reads anything), and c and d after the command. With
    // every probe read again after every change it took ten.
    assert!(
        run.stderr.contains("here: 8 exec(s) over one connection"),
        "{}",
        run.stderr
    );
}

/// Ctrl-C in the terminal signals the whole foreground process group. With the local
/// connection the task's children must not get it: converge lets the task in flight
/// finish, then exits 130.
#[test]
fn ctrl_c_lets_the_local_task_in_flight_finish_and_exits_130() {
    use std::os::unix::process::CommandExt;
    let folder = Folder::new();
    let started = folder.dir.path().join("started");
    let finished = folder.dir.path().join("finished");
    folder.file(
        "inventory.yml",
        "all:\n  hosts:\n    here: { ansible_connection: local }\n",
    );
    folder.file(
        "site.yml",
        &format!(
            "- hosts: all\n  tasks:\n    - command: \"touch {} && sleep 2 && touch {}\"\n",
            started.display(),
            finished.display()
        ),
    );
    let run = Command::new(env!("CARGO_BIN_EXE_converge"))
        .arg("site.yml")
        .current_dir(folder.dir.path())
        .env("HOME", folder.dir.path())
        .env("XDG_RUNTIME_DIR", folder.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        // A group of its own stands for the terminal's foreground process group.
        .process_group(0)
        .spawn()
        .expect("start converge");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let group = libc::pid_t::try_from(run.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) takes plain integers.
    assert_eq!(unsafe { libc::kill(-group, libc::SIGINT) }, 0);
    let out = run.wait_with_output().expect("wait for converge");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        finished.exists(),
        "the task in flight was cut short\n{stderr}"
    );
}
