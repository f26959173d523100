//! A corpus of hostile values through every module parameter that reaches a host: each
//! value either arrives verbatim or is refused with a located error, and nothing in it
//! ever runs (every injection attempt would create a canary file).

use crate::scenario::Scenario;
use regex::Regex;

/// The values; `CANARY` becomes a path whose existence proves that a shell ran them.
const CORPUS: &[&str] = &[
    "a'b; touch CANARY #",
    "$(touch CANARY)",
    "`touch CANARY`",
    "\"; touch CANARY; \"",
    "x\ntouch CANARY",
    "|| touch CANARY",
    "&& touch CANARY",
    "; touch CANARY",
    "> CANARY",
    "-rf",
    "--reference=/etc/shadow",
    "a b  c",
    "ünïcødé ✓",
    "*",
    "~root",
    "${PATH}",
    "a\\b",
    "%s %n",
    "'",
    "\"",
    "$HOME",
    " leading and trailing ",
    "tab\there",
];

/// How a case's value must look on the host once applied: (shell command printing it,
/// expected output given the value).
type Check = fn(usize, &str) -> Option<(String, String)>;

struct Case {
    /// Module and parameter, for messages.
    what: &'static str,
    /// The task's YAML (a flow mapping) for case number `n` and a value already written
    /// as a YAML scalar, plus the value itself for paths built from it.
    task: fn(usize, &str, &str) -> String,
    check: Option<Check>,
}

/// The entry of /opt/corpus named `prefix` + `raw`, listed by a glob on the prefix (a
/// value with `/` makes a deeper path: not checked here).
fn named(prefix: &str, raw: &str) -> Option<(String, String)> {
    (!raw.contains('/')).then(|| {
        (
            format!("find /opt/corpus -maxdepth 1 -name '{prefix}*' -printf '%f\\n'"),
            format!("{prefix}{raw}\n"),
        )
    })
}

fn y(s: &str) -> String {
    serde_json::to_string(s).expect("json string")
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "file content",
            task: |n, v, _| format!("file: {{ path: /opt/corpus/content-{n}, content: {v} }}"),
            check: Some(|n, raw| Some((format!("cat /opt/corpus/content-{n}"), raw.to_string()))),
        },
        Case {
            what: "file path",
            task: |n, _, raw| {
                format!(
                    "file: {{ path: {}, content: x }}",
                    y(&format!("/opt/corpus/name-{n}-{raw}"))
                )
            },
            check: Some(|n, raw| named(&format!("name-{n}-"), raw)),
        },
        Case {
            what: "file link",
            task: |n, v, _| format!("file: {{ path: /opt/corpus/link-{n}, link: {v} }}"),
            check: Some(|n, raw| {
                Some((format!("readlink /opt/corpus/link-{n}"), format!("{raw}\n")))
            }),
        },
        Case {
            what: "file owner",
            task: |n, v, _| {
                format!("file: {{ path: /opt/corpus/owner-{n}, content: x, owner: {v} }}")
            },
            check: None,
        },
        Case {
            what: "dir path",
            task: |n, _, raw| {
                format!(
                    "dir: {{ path: {} }}",
                    y(&format!("/opt/corpus/dir-{n}-{raw}"))
                )
            },
            check: Some(|n, raw| named(&format!("dir-{n}-"), raw)),
        },
        Case {
            what: "dir group",
            task: |n, v, _| format!("dir: {{ path: /opt/corpus/group-{n}, group: {v} }}"),
            check: None,
        },
        Case {
            what: "template value",
            task: |n, _, _| format!("template: {{ src: t{n}.hbs, dest: /opt/corpus/tpl-{n} }}"),
            check: Some(|n, raw| Some((format!("cat /opt/corpus/tpl-{n}"), raw.to_string()))),
        },
        Case {
            what: "command argv",
            task: |n, v, _| {
                format!(
                    "command: {{ argv: [/bin/sh, -c, 'printf %s \"$1\" > /opt/corpus/argv-{n}', sh, {v}] }}"
                )
            },
            check: Some(|n, raw| Some((format!("cat /opt/corpus/argv-{n}"), raw.to_string()))),
        },
        Case {
            what: "command creates",
            task: |n, _, raw| {
                format!(
                    "command: {{ argv: [/bin/true], creates: {} }}",
                    y(&format!("/opt/corpus/creates-{n}/{raw}"))
                )
            },
            check: None,
        },
        Case {
            what: "command chdir",
            task: |n, _, raw| {
                format!(
                    "command: {{ argv: [/bin/true], chdir: {} }}",
                    y(&format!("/opt/corpus/chdir-{n}/{raw}"))
                )
            },
            check: None,
        },
        Case {
            what: "user name",
            task: |_, v, _| format!("user: {{ name: {v} }}"),
            check: None,
        },
        Case {
            what: "user home",
            task: |n, _, raw| {
                format!(
                    "user: {{ name: corpus{n}, home: {} }}",
                    y(&format!("/opt/corpus/home-{n}/{raw}"))
                )
            },
            check: None,
        },
        Case {
            what: "group name",
            task: |_, v, _| format!("group: {{ name: {v} }}"),
            check: None,
        },
        Case {
            what: "apt name",
            task: |_, v, _| format!("apt: {{ name: {v} }}"),
            check: None,
        },
        Case {
            what: "service name",
            task: |_, v, _| format!("service: {{ name: {v}, state: started }}"),
            check: None,
        },
        Case {
            what: "systemd_unit description",
            task: |n, v, _| {
                format!(
                    "systemd_unit: {{ name: corpus{n}, description: {v}, exec_start: /bin/true, wanted_by: [] }}"
                )
            },
            // What systemd read from the unit file, specifiers (`%n`) and quotes included.
            check: Some(|n, raw| {
                Some((
                    format!("systemctl show -p Description --value corpus{n}"),
                    format!("{raw}\n"),
                ))
            }),
        },
        Case {
            what: "systemd_unit environment",
            task: |n, v, _| {
                format!(
                    "systemd_unit: {{ name: corpusenv{n}, environment: {{ K: {v} }}, exec_start: /bin/true, wanted_by: [] }}"
                )
            },
            check: None,
        },
        Case {
            what: "logrotate paths",
            task: |n, _, raw| {
                format!(
                    "logrotate: {{ name: corpus{n}, paths: {} }}",
                    y(&format!("/var/log/corpus-{n}/{raw}"))
                )
            },
            check: None,
        },
        Case {
            what: "nginx_vhost server_name",
            task: |n, v, _| {
                format!(
                    "nginx_vhost: {{ name: corpus{n}, server_name: {v}, upstream: \"127.0.0.1:9\" }}"
                )
            },
            check: None,
        },
        Case {
            what: "ufw port",
            task: |_, v, _| format!("ufw: {{ allow: [ {{ port: {v} }} ] }}"),
            check: None,
        },
        Case {
            what: "certbot domain",
            task: |_, v, _| {
                format!("certbot: {{ domains: {v}, server: \"https://127.0.0.1:1/dir\" }}")
            },
            check: None,
        },
        Case {
            what: "http_check url",
            task: |_, _, raw| {
                format!(
                    "http_check: {{ url: {}, timeout: 1 }}",
                    y(&format!("http://127.0.0.1:1/{raw}"))
                )
            },
            check: None,
        },
    ]
}

#[test]
fn hostile_values_arrive_verbatim_or_are_refused_where_they_were_written() {
    let s = Scenario::new(1);
    let canary_dir = format!("/tmp/canary-{}", std::process::id());
    let located = Regex::new(r"site\.yml:\d+:\d+").expect("regex");
    let cases = cases();
    let mut accepted = Vec::new();
    let (mut refused, mut total) = (0, 0);
    for (c, case) in cases.iter().enumerate() {
        for (v, value) in CORPUS.iter().enumerate() {
            let n = c * 100 + v;
            let raw = value.replace("CANARY", &format!("{canary_dir}/{n}"));
            s.file(&format!("t{n}.hbs"), "{{x}}");
            let task = format!(
                "    - name: case {n}\n      {}\n",
                (case.task)(n, &y(&raw), &raw)
            );
            let play = format!(
                "- hosts: all\n  vars: {{ x: {} }}\n  tasks:\n{task}",
                y(&raw)
            );
            s.playbook(&play);
            let out = s.run(&["validate", "site.yml"]);
            total += 1;
            match out.code {
                0 => accepted.push((n, c, raw, play)),
                3 => {
                    refused += 1;
                    assert!(
                        located.is_match(&out.stderr),
                        "{} {raw:?}: refused without a location:\n{}",
                        case.what,
                        out.stderr
                    );
                }
                other => panic!(
                    "{} {raw:?}: validate exited {other}:\n{}",
                    case.what, out.stderr
                ),
            }
        }
    }
    eprintln!(
        "corpus: {} values x {} parameters = {total} cases; refused with a location: {refused}; applied: {}",
        CORPUS.len(),
        cases.len(),
        accepted.len()
    );

    // Everything accepted, applied on the host, one play per case so each has its value.
    s.sh("h1", &format!("mkdir -p /opt/corpus {canary_dir}"));
    std::fs::create_dir_all(&canary_dir).expect("controller canary dir");
    let playbook: String = accepted
        .iter()
        .map(|(_, _, _, play)| play.as_str())
        .collect();
    s.playbook(&playbook);
    let out = s.run(&["site.yml"]);
    assert!(out.code == 0 || out.code == 1, "apply exited {}", out.code);

    let fired = s.sh("h1", &format!("ls -A {canary_dir}"));
    assert_eq!(fired, "", "injected commands ran on the host: {fired}");
    let local: Vec<_> = std::fs::read_dir(&canary_dir)
        .expect("canary dir")
        .collect();
    assert!(local.is_empty(), "injected commands ran on the controller");
    std::fs::remove_dir_all(&canary_dir).ok();

    let mut verbatim = 0;
    for (n, c, raw, _) in &accepted {
        let Some((command, want)) = cases[*c].check.and_then(|check| check(*n, raw)) else {
            continue;
        };
        let got = s.hosts.exec("h1", &command);
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            want,
            "{} {raw:?} did not arrive verbatim",
            cases[*c].what
        );
        verbatim += 1;
    }
    eprintln!("checked verbatim on the host: {verbatim}");
}
