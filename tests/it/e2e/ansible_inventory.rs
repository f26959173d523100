//! Ansible is the reference for inventories. The same inventory trees (YAML and INI,
//! with `group_vars/` and `host_vars/`) are read by ansible-playbook 12.3 and by converge,
//! both on this machine with the local connection: every host must get the same value
//! for every variable, and every host pattern must select the same hosts.
//! No container host is needed.

use crate::support::peers;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

/// `group_vars/` and `host_vars/` shared by the YAML and INI versions of the shop: a
/// folder of files for `web` (plus a file Ansible and converge must both skip), a file
/// without extension, `.yaml`, and a host folder.
const SHOP_VARS_FILES: &[(&str, &str)] = &[
    (
        "group_vars/all.yml",
        "region: file-all\nntp: ntp.example.com\nlimits: [1, 2]\n",
    ),
    ("group_vars/prod.yml", "replicas: 5\nregion: file-prod\n"),
    ("group_vars/web/10-main.yml", "http_port: 80\nworkers: 4\n"),
    (
        "group_vars/web/20-tuning.yml",
        "workers: 8\nnested: { a: 1, b: [x, y] }\n",
    ),
    ("group_vars/web/notes.txt", "workers: 99\n"),
    ("group_vars/cache.yaml", "tier: file-cache\n"),
    ("group_vars/db", "backup: true\nregion: file-db\n"),
    ("host_vars/web02.yml", "tier: file-web02\n"),
    ("host_vars/db-b/main.yml", "db_port: 6432\n"),
];

/// Variables at every level, a range of each kind, two groups at the same depth sharing
/// hosts (`cache` outranks `web` through `ansible_group_priority`), a host in two
/// branches (`web04` in `web` and `staging`), and a loose host.
const SHOP_YAML: &str = "\
all:
  vars: { app: shop, tier: inv-all, region: inv-all, ntp: pool.ntp.org, weight: 1.5 }
  hosts:
    bastion: { ansible_host: 198.51.100.1, tier: host-bastion }
  children:
    prod:
      vars: { tier: inv-prod, region: inv-prod, replicas: 3 }
      children:
        web:
          vars: { http_port: 8080, tier: inv-web, region: inv-web }
          hosts:
            web[01:04]:
            web05: { http_port: 8081, tier: host-web05 }
        db:
          vars: { db_port: 5432, tier: inv-db }
          hosts:
            db-[a:c]:
        cache:
          vars: { tier: inv-cache, cache_size: 64, ansible_group_priority: 10 }
          hosts:
            web01: { cache_size: 128 }
            db-a:
    staging:
      vars: { tier: inv-staging, replicas: 1 }
      hosts:
        stage1:2222: { ansible_host: 198.51.100.50 }
        web04:
";

/// The shop as an INI file, as many teams keep it: children declared before the
/// groups, `:vars` sections at the end.
const SHOP_INI: &str = "\
# Shop inventory
bastion ansible_host=198.51.100.1 tier=host-bastion

[prod:children]
web
db
cache

[web]
web[01:04]
web05 http_port=8081 tier=host-web05

[db]
db-[a:c]

[cache]
web01 cache_size=128
db-a

[staging]
stage1 ansible_host=198.51.100.50 ansible_port=2222
web04

[all:vars]
app=shop
tier=inv-all
region=inv-all
ntp=pool.ntp.org
weight=1.5

[prod:vars]
tier=inv-prod
region=inv-prod
replicas=3

[web:vars]
http_port=8080
tier=inv-web
region=inv-web

[db:vars]
db_port=5432
tier=inv-db

; cache outranks web among groups at depth 2
[cache:vars]
tier=inv-cache
cache_size=64
ansible_group_priority=10

[staging:vars]
tier=inv-staging
replicas=1
";

/// Two overlapping hierarchies (region and role), so `eu-web-*` sits under `eu` and
/// `web` at the same depth, with INI's typing at work: quotes vanish in host lines
/// (`ver='1.10'` is the float 1.1), Python literals, `0644` and `yes` kept as text,
/// ports after host names (counted only where a host is first listed), a host listed
/// twice (the later listing wins), an empty group, and `;`/`#` inside `:vars` values.
const DATACENTER_INI: &str = "\
; datacenter layout
[eu:children]
eu_web
eu_db

[us:children]
us_web

[web:children]
eu_web
us_web

[eu_web]
eu-web-[1:3] motd=\"hello world\" opts=\"{'a': 1, 'b': [True, None]}\" ratio=0.25 ver='1.10' code=0644 flag=yes
[us_web]
us-web-[a:b]:2201 weight=-3 hex=0x1F   # two hosts on port 2201

[eu_db]
eu-db1 replica_of=None ansible_user=postgres

[backup:hosts]
eu-db1:2299 ansible_user=barman weight=1e3 big=1_000 empty= pair=1,2

[standby]

[eu:vars]
zone=eu
timeout=30
tags=['a', 'b']
quoted=\"double\"
spaced = text with ; and # inside

[standby:vars]
zone=standby

[web:vars]
zone=web-zone
role=web

[all:vars]
zone=global
role=none
";

/// Values of every kind Python's `literal_eval` knows, and some it refuses, in `:vars`
/// lines and in a shell-quoted host line.
const VALUES_INI: &str = r#"[typed]
h1 a=1 b="two words" c='[1, 2]' d="{'k': 'v'}" e=True f=1.0 g=x=y h="'quoted'" i=\'q\' j=x#y
h2 k="a\"b" l='a\b' m=-0x10 n=

[typed:vars]
i1=42
i2=-7
i3=0x1F
i4=1_000
i5=00
f1=1.5
f2=1e3
f3=.5
f4=-2.5E-3
b1=True
b2=false
n1=None
s1='single'
s2="double"
s3='a' "b"
s4='tab\there'
s5=r'raw\d'
s6='\x41\u00e9'
s7=plain text
s8=yes
s9=0644
s10=1.2.3
l1=[1, 'two', [3]]
l2=(1, 2)
l3=1, 2
l4=[]
d1={'a': 1, 'b': {'c': None}}
d2={}
set1={3}
e1=
c1=1 # comment
c2=text ; semicolon
u1=héllo
q1="it's"
t1=(1)
"#;

const DATACENTER_VARS_FILES: &[(&str, &str)] = &[
    ("group_vars/all.yml", "ntp: ntp.example.com\n"),
    ("group_vars/eu.yml", "zone: file-eu\n"),
    ("group_vars/us_web.yml", "role: file-us-web\n"),
    ("host_vars/eu-web-2.yml", "motd: from host_vars\n"),
];

const SHOP_PATTERNS: &[&str] = &[
    "all",
    "web",
    "web,db",
    "prod,&cache",
    "prod,!web",
    "web0*",
    "~db-[ab]",
    "ungrouped",
    "staging:web",
    "db-a,stage1",
    "all,!cache",
];

const DATACENTER_PATTERNS: &[&str] = &[
    "all",
    "eu",
    "web,&eu",
    "web,!eu_web",
    "us-web-*",
    "eu_db,us_web",
    "backup,standby",
];

#[test]
fn yaml_inventory_reads_as_ansible_reads_it() {
    Tree::new("inventory.yml", SHOP_YAML, SHOP_VARS_FILES).compare(SHOP_PATTERNS);
}

#[test]
fn ini_inventory_reads_as_ansible_reads_it() {
    let tree = Tree::new("hosts", SHOP_INI, SHOP_VARS_FILES);
    let ini = tree.compare(SHOP_PATTERNS);
    // The INI shop is the YAML shop written differently: the same values too.
    let yaml = Tree::new("inventory.yml", SHOP_YAML, SHOP_VARS_FILES).converge_vars();
    assert_eq!(ini, yaml, "the INI and YAML shops differ in converge");
}

#[test]
fn ini_typing_and_overlapping_hierarchies_read_as_ansible_reads_them() {
    Tree::new("hosts.ini", DATACENTER_INI, DATACENTER_VARS_FILES).compare(DATACENTER_PATTERNS);
}

#[test]
fn ini_values_are_typed_as_ansible_types_them() {
    Tree::new("values.ini", VALUES_INI, &[]).compare(&["all", "typed"]);
}

type HostVars = BTreeMap<String, Map<String, Value>>;

/// An inventory file with its vars files in one folder, and the playbooks that dump
/// variables and list hosts in another (Ansible would read `group_vars/` beside a
/// playbook too).
struct Tree {
    dir: tempfile::TempDir,
    inventory: PathBuf,
    venv: PathBuf,
}

impl Tree {
    fn new(name: &str, inventory: &str, vars_files: &[(&str, &str)]) -> Tree {
        let venv = peers::venv();
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("inventory");
        for (path, text) in [(name, inventory)].iter().chain(vars_files) {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&path, text).expect("write an inventory file");
        }
        for path in ["play", "ansible-out", "converge-out", "home"] {
            std::fs::create_dir_all(dir.path().join(path)).expect("mkdir");
        }
        Tree {
            inventory: root.join(name),
            dir,
            venv,
        }
    }

    fn path(&self, path: &str) -> PathBuf {
        self.dir.path().join(path)
    }

    /// Both tools over this tree: variables, then host patterns. Returns converge's
    /// variables.
    fn compare(&self, patterns: &[&str]) -> HostVars {
        let names = self.ansible_inventory_names();
        let expected = self.ansible_vars(&names);
        let actual = self.converge_vars();
        assert_eq!(
            actual.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "converge and Ansible see different hosts in {}",
            self.inventory.display()
        );
        let mut differences = Vec::new();
        for (host, ansible) in &expected {
            let converge = &actual[host];
            let keys: BTreeSet<&String> = ansible.keys().chain(converge.keys()).collect();
            for key in keys {
                if ansible.get(key) != converge.get(key) {
                    differences.push(format!(
                        "{host}.{key}: Ansible {:?}, converge {:?}",
                        ansible.get(key),
                        converge.get(key)
                    ));
                }
            }
        }
        assert!(
            differences.is_empty(),
            "{} variables differ in {}:\n{}",
            differences.len(),
            self.inventory.display(),
            differences.join("\n")
        );
        let counted: usize = expected.values().map(Map::len).sum();
        eprintln!("{counted} variables of {} hosts compared", expected.len());
        assert!(counted > 5 * expected.len(), "too few variables compared");
        self.compare_patterns(patterns);
        actual
    }

    /// Each host's inventory variable names, from `ansible-inventory --list`.
    fn ansible_inventory_names(&self) -> BTreeMap<String, Vec<String>> {
        let out = self.ansible("ansible-inventory", &["--list"]);
        let listed: Value = serde_json::from_slice(&out).expect("ansible-inventory prints JSON");
        listed["_meta"]["hostvars"]
            .as_object()
            .expect("hostvars in ansible-inventory's output")
            .iter()
            .map(|(host, vars)| {
                let names = vars
                    .as_object()
                    .map_or_else(Vec::new, |v| v.keys().cloned().collect());
                (host.clone(), names)
            })
            .collect()
    }

    /// Every inventory variable of every host as a task of ansible-playbook sees it,
    /// written by the `copy` module on each host (here, with the local connection).
    fn ansible_vars(&self, names: &BTreeMap<String, Vec<String>>) -> HostVars {
        let playbook = self.path("play/ansible.yml");
        std::fs::write(
            &playbook,
            "- hosts: all
  gather_facts: false
  tasks:
    - name: every inventory variable
      copy:
        dest: \"{{ out }}/{{ inventory_hostname }}.json\"
        content: \"{{ dict(inventory_var_names[inventory_hostname] | zip(inventory_var_names[inventory_hostname] | map('extract', hostvars[inventory_hostname]))) | to_json }}\"
",
        )
        .expect("write the Ansible playbook");
        let extra = self.path("play/names.json");
        let extra_vars = serde_json::json!({
            "inventory_var_names": names,
            "out": self.path("ansible-out"),
        });
        std::fs::write(&extra, extra_vars.to_string()).expect("write the names");
        let interpreter = format!(
            "ansible_python_interpreter={}",
            self.venv.join("bin/python").display()
        );
        self.ansible(
            "ansible-playbook",
            &[
                playbook.to_str().expect("a UTF-8 path"),
                "--forks",
                "32",
                "-e",
                "ansible_connection=local",
                "-e",
                &interpreter,
                "-e",
                &format!("@{}", extra.display()),
            ],
        );
        names
            .keys()
            .map(|host| {
                let path = self.path(&format!("ansible-out/{host}.json"));
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("Ansible wrote no {}: {e}", path.display()));
                (host.clone(), parse_object(&text))
            })
            .collect()
    }

    /// Every variable of every host as a template of converge sees it, in one run over
    /// every host (local hosts are one machine, under its one host lock).
    fn converge_vars(&self) -> HostVars {
        std::fs::write(
            self.path("play/dump.hbs"),
            "{{#each this}}{{@key}}={{json this}}\n{{/each}}",
        )
        .expect("write the template");
        std::fs::write(
            self.path("play/converge.yml"),
            format!(
                "- hosts: all\n  tasks:\n    - template: {{ src: dump.hbs, dest: \"{}/{{{{inventory_hostname}}}}.vars\" }}\n",
                self.path("converge-out").display()
            ),
        )
        .expect("write the converge playbook");
        let mut vars = HostVars::new();
        self.converge(&["converge.yml", "-e", "ansible_connection=local"]);
        for host in self.converge_hosts("all") {
            let path = self.path(&format!("converge-out/{host}.vars"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("converge wrote no {}: {e}", path.display()));
            let mut dumped = Map::new();
            for line in text.lines() {
                let (name, json) = line.split_once('=').expect("NAME=JSON lines");
                let value = serde_json::from_str(json).expect("JSON from the json helper");
                dumped.insert(name.to_string(), value);
            }
            // What is not an inventory variable: magic variables, facts and the -e.
            for name in [
                "inventory_hostname",
                "inventory_hostname_short",
                "group_names",
                "facts",
                "ansible_connection",
            ] {
                dumped.remove(name);
            }
            vars.insert(host, dumped);
        }
        vars
    }

    /// Every pattern selects the same hosts: Ansible's `--list-hosts` over one play per
    /// pattern, converge's `graph -l PATTERN`.
    fn compare_patterns(&self, patterns: &[&str]) {
        let playbook = self.path("play/patterns.yml");
        let plays: String = patterns
            .iter()
            .map(|p| format!("- hosts: '{p}'\n  gather_facts: false\n  tasks: []\n"))
            .collect();
        std::fs::write(&playbook, plays).expect("write the pattern playbook");
        let out = self.ansible(
            "ansible-playbook",
            &["--list-hosts", playbook.to_str().expect("a UTF-8 path")],
        );
        let listed = list_hosts(&String::from_utf8_lossy(&out));
        assert_eq!(listed.len(), patterns.len(), "one host list per play");
        for (pattern, ansible) in patterns.iter().zip(listed) {
            let converge: BTreeSet<String> = self.converge_hosts(pattern).into_iter().collect();
            assert_eq!(
                converge,
                ansible,
                "`{pattern}` selects different hosts in {}",
                self.inventory.display()
            );
        }
    }

    /// The hosts `converge graph -l PATTERN` plans for, in its order.
    fn converge_hosts(&self, pattern: &str) -> Vec<String> {
        let out = self.converge(&["graph", "converge.yml", "-l", pattern]);
        String::from_utf8_lossy(&out)
            .lines()
            .filter(|line| !line.starts_with(' ') && !line.is_empty())
            .filter_map(|line| line.split(" / ").next().map(str::to_string))
            .collect()
    }

    fn converge(&self, args: &[&str]) -> Vec<u8> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_converge"));
        command
            .args(args)
            .args(["-i", self.inventory.to_str().expect("a UTF-8 path")])
            .current_dir(self.path("play"))
            .env("NO_COLOR", "1")
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("home"));
        succeed(command)
    }

    fn ansible(&self, tool: &str, args: &[&str]) -> Vec<u8> {
        let mut command = Command::new(self.venv.join("bin").join(tool));
        command
            .args(["-i", self.inventory.to_str().expect("a UTF-8 path")])
            .args(args)
            .current_dir(self.path("play"))
            .env("HOME", self.path("home"))
            .env("ANSIBLE_HOME", self.path("home/.ansible"))
            // A file no plugin can read must fail, not give an empty inventory.
            .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
            .env("ANSIBLE_DEPRECATION_WARNINGS", "false")
            .env("ANSIBLE_NOCOLOR", "true");
        succeed(command)
    }
}

/// The command's stdout; its failure fails the test with everything it said.
///
/// converge's exit 4 is retried for a while: a local run takes this machine's host lock,
/// which another test's local run (this binary's, or another engineer's) may hold.
fn succeed(mut command: Command) -> Vec<u8> {
    let run = |command: &mut Command| {
        command
            .output()
            .unwrap_or_else(|e| panic!("run {command:?}: {e}"))
    };
    let mut out = run(&mut command);
    for _ in 0..40 {
        if out.status.code() != Some(4)
            || !String::from_utf8_lossy(&out.stdout)
                .contains("another converge run holds this host")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        out = run(&mut command);
    }
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn parse_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        other => panic!("expected a JSON object, got {other:?} from {text}"),
    }
}

/// The host lists of `ansible-playbook --list-hosts`, one per play.
fn list_hosts(out: &str) -> Vec<BTreeSet<String>> {
    let mut plays: Vec<BTreeSet<String>> = Vec::new();
    let mut in_hosts = false;
    for line in out.lines().map(str::trim) {
        if line.starts_with("play #") {
            plays.push(BTreeSet::new());
            in_hosts = false;
        } else if line.starts_with("hosts (") {
            in_hosts = true;
        } else if line.is_empty() {
            in_hosts = false;
        } else if in_hosts && let Some(play) = plays.last_mut() {
            play.insert(line.to_string());
        }
    }
    plays
}
