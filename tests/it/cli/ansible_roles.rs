//! Roles, `import_tasks` and the magic variables, with Ansible itself as the reference:
//! the same playbook, roles and inventory (local connection) run by `ansible-playbook`
//! (the pinned venv of tests/hosts/peers.sh) and by `converge diff`, each rendering the
//! variables it sees into a JSON file per host; the two must be identical.

use super::Folder;
use crate::support::peers::venv;
use serde_json::Value;
use std::process::Command;

const INVENTORY: &str = "\
all:
  vars:
    ansible_connection: local
    v_def_inv: inv
    v_inv_play: inv
    v_group_host: all
  children:
    web:
      vars: { v_group_host: web }
      hosts:
        web1.example.com: { ansible_host: 10.0.0.1, v_group_host: host }
        web2: { ansible_host: 10.0.0.2 }
    db:
      hosts:
        db1: { ansible_host: 10.0.1.1 }
        web2: {}
      children:
        replica:
          hosts:
            db2: { ansible_host: 10.0.1.2 }
";

/// Each variable layer beats the one before it; `vNAME_OTHER` is set in both.
const PLAY: &str = "\
- hosts: all
  vars: { v_inv_play: play, v_play_vf: play, v_play_rv: play }
  vars_files: [vars/common.yml]
  roles:
    - role: app
      v_imp_param: param
      v_param_extra: param
      vars: { v_rv_ev: entry, v_ev_imp: entry }
    - other
  tasks:
    - name: play task
      template: { src: \"play.{{ext}}\", dest: \"{{out}}/{{inventory_hostname}}-play.json\" }
";

const FILES: &[(&str, &str)] = &[
    ("vars/common.yml", "v_play_vf: vf\nv_vf_rv: vf\n"),
    (
        "roles/app/defaults/main.yml",
        "v_def_inv: def\nv_def_only: def\nv_def_own: app\n",
    ),
    (
        "roles/app/vars/main.yml",
        "v_vf_rv: rolevars\nv_play_rv: rolevars\nv_rv_ev: rolevars\n",
    ),
    (
        "roles/app/tasks/main.yml",
        "- import_tasks: nested/vars.yml\n  vars: { v_ev_imp: imp, v_imp_param: imp }\n",
    ),
    (
        "roles/app/tasks/nested/vars.yml",
        "- name: role task\n  template: { src: \"vars.{{ext}}\", dest: \"{{out}}/{{inventory_hostname}}.json\" }\n\
         - name: hostvars\n  template: { src: \"hostvars.{{ext}}\", dest: \"{{out}}/{{inventory_hostname}}-hostvars.json\" }\n",
    ),
    (
        "roles/other/defaults/main.yml",
        "v_def_own: other\nv_other_def: other\n",
    ),
    ("roles/other/vars/main.yml", "v_other_var: other\n"),
];

/// The variables each file shows.
const NAMES: &[&str] = &[
    "v_def_inv",
    "v_def_only",
    "v_def_own",
    "v_inv_play",
    "v_play_vf",
    "v_vf_rv",
    "v_play_rv",
    "v_rv_ev",
    "v_ev_imp",
    "v_imp_param",
    "v_param_extra",
    "v_group_host",
    "v_other_def",
    "v_other_var",
    "inventory_hostname",
    "inventory_hostname_short",
    "group_names",
    "groups",
    "ansible_play_hosts",
];
const PLAY_NAMES: &[&str] = &[
    "v_def_inv",
    "v_def_own",
    "v_other_def",
    "v_play_vf",
    "v_vf_rv",
    "v_play_rv",
    "v_rv_ev",
    "v_other_var",
    "group_names",
];

/// A template writing `names` as one JSON object, in Jinja (Ansible) or handlebars.
fn json_template(names: &[&str], jinja: bool) -> String {
    let fields: Vec<String> = names
        .iter()
        .map(|n| match jinja {
            true => format!("\"{n}\": {{{{ {n} | to_json }}}}"),
            false => format!("\"{n}\": {{{{json {n}}}}}"),
        })
        .collect();
    format!("{{ {} }}\n", fields.join(", "))
}

/// Each host's `ansible_host` and `v_group_host` as the other hosts see them.
const HOSTVARS_J2: &str = "{ {% for h in groups['all'] %}{% if not loop.first %}, {% endif %}\
    \"{{h}}\": [{{ hostvars[h].ansible_host | to_json }}, {{ hostvars[h].v_group_host | to_json }}]\
    {% endfor %} }\n";
const HOSTVARS_HBS: &str = "{ {{#each groups.all}}{{#if @index}}, {{/if}}\
    \"{{this}}\": [{{json (lookup (lookup ../hostvars this) \"ansible_host\")}}, \
    {{json (hostvar this \"v_group_host\")}}]{{/each}} }\n";

fn folder() -> Folder {
    let folder = Folder::new();
    folder.file("inventory.yml", INVENTORY);
    for (path, content) in FILES {
        folder.file(path, content);
    }
    for (ext, jinja) in [("j2", true), ("hbs", false)] {
        folder.file(
            &format!("roles/app/templates/vars.{ext}"),
            &json_template(NAMES, jinja),
        );
        folder.file(&format!("play.{ext}"), &json_template(PLAY_NAMES, jinja));
    }
    folder.file("roles/app/templates/hostvars.j2", HOSTVARS_J2);
    folder.file("roles/app/templates/hostvars.hbs", HOSTVARS_HBS);
    folder
}

fn extra(ext: &str, out: &std::path::Path) -> Vec<String> {
    [
        format!("ext={ext}"),
        format!("out={}", out.display()),
        "v_param_extra=extra".to_string(),
    ]
    .into_iter()
    .flat_map(|e| ["-e".to_string(), e])
    .collect()
}

/// What Ansible wrote: file name -> JSON.
fn ansible(folder: &Folder) -> Vec<(String, Value)> {
    let venv = venv();
    let out = folder.dir.path().join("ansible-out");
    std::fs::create_dir_all(&out).expect("out dir");
    folder.file(
        "ansible.yml",
        &PLAY.replace("- hosts: all\n", "- hosts: all\n  gather_facts: false\n"),
    );
    let run = Command::new(venv.join("bin/ansible-playbook"))
        .args(["-i", "inventory.yml", "ansible.yml", "-e"])
        .arg(format!(
            "ansible_python_interpreter={}",
            venv.join("bin/python").display()
        ))
        .args(extra("j2", &out))
        .current_dir(folder.dir.path())
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("run ansible-playbook");
    assert!(
        run.status.success(),
        "ansible-playbook:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let mut files: Vec<(String, Value)> = std::fs::read_dir(&out)
        .expect("ansible's output")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            )
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// What converge would write (`converge diff --json`: the content of each new file).
fn converge(folder: &Folder) -> Vec<(String, Value)> {
    folder.file("site.yml", PLAY);
    let out = folder.dir.path().join("converge-out");
    let mut args = vec!["diff", "site.yml", "--json"];
    let extra = extra("hbs", &out);
    args.extend(extra.iter().map(String::as_str));
    let run = folder.run(&args);
    assert_eq!(run.code, 2, "{}", run.context());
    let report: Value = serde_json::from_str(&run.stdout).expect("JSON report");
    let mut files = Vec::new();
    for host in report["hosts"].as_object().expect("hosts").values() {
        for task in host["tasks"].as_array().expect("tasks") {
            let diff = task["diff"].as_str().expect("a diff");
            let name = diff
                .lines()
                .find_map(|l| l.strip_prefix("+++ "))
                .and_then(|header| header.rsplit('/').next())
                .and_then(|file| file.strip_suffix(" (desired)"))
                .expect("the file's name")
                .to_string();
            let content: String = diff
                .lines()
                .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
                .map(|l| &l[1..])
                .collect();
            let json = serde_json::from_str(&content).unwrap_or_else(|e| panic!("{content}: {e}"));
            files.push((name, json));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

#[test]
fn roles_imports_and_magic_variables_read_as_ansible_reads_them() {
    let folder = folder();
    let reference = ansible(&folder);
    let ours = converge(&folder);
    assert_eq!(reference.len(), 12, "{reference:?}");
    for ((name, theirs), (our_name, ours)) in reference.iter().zip(&ours) {
        assert_eq!(name, our_name);
        assert_eq!(
            ours, theirs,
            "{name}: converge (left) and Ansible (right) differ"
        );
    }
    assert_eq!(reference.len(), ours.len());
    // The layers this is about, spelled out (Ansible agrees, above).
    let web1 = &ours
        .iter()
        .find(|(n, _)| n == "web1.example.com.json")
        .unwrap()
        .1;
    for (name, winner) in [
        ("v_def_inv", "inv"),
        ("v_inv_play", "play"),
        ("v_play_vf", "vf"),
        ("v_vf_rv", "rolevars"),
        ("v_play_rv", "rolevars"),
        ("v_rv_ev", "entry"),
        ("v_ev_imp", "imp"),
        ("v_imp_param", "param"),
        ("v_param_extra", "extra"),
        ("v_def_own", "app"),
        ("inventory_hostname_short", "web1"),
    ] {
        assert_eq!(web1[name], winner, "{name}");
    }
    assert_eq!(web1["group_names"], serde_json::json!(["web"]));
}
