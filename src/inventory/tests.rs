use super::*;
use serde_json::Value;

const SPEC: &str = "\
all:
  vars: { app: myapp }
  hosts:
    web1: { ansible_host: 198.51.100.10, ansible_port: 22, ansible_user: deploy }
  children:
    web:
      hosts: { web1: {}, web2: { ansible_host: 198.51.100.11 } }
      vars: { port: 8080 }
";

fn parse(text: &str) -> InputResult<Inventory> {
    Inventory::parse(&SourceFile::new("inv.yml", text))
}

fn names(hosts: &[&Host]) -> Vec<String> {
    hosts.iter().map(|h| h.name.clone()).collect()
}

fn select(inventory: &Inventory, pattern: &str) -> Vec<String> {
    names(&inventory.select(pattern, None).unwrap().hosts)
}

/// What the caller does: merge the layers, later winning, without templates.
pub(super) fn flat(inventory: &Inventory, host: &str) -> Value {
    let host = inventory.host(host).unwrap();
    let mut vars = serde_json::Map::new();
    for layer in inventory.var_layers(host) {
        for (name, value) in layer {
            vars.insert(name.clone(), value.to_value());
        }
    }
    Value::Object(vars)
}

fn connection(inventory: &Inventory, host: &str) -> InputResult<(Connection, Vec<String>)> {
    inventory.connection(inventory.host(host).unwrap(), &flat(inventory, host))
}

#[test]
fn the_spec_example_parses() {
    let inventory = parse(SPEC).unwrap();
    let hosts: Vec<&Host> = inventory.hosts().iter().collect();
    assert_eq!(names(&hosts), ["web1", "web2"]);
    assert_eq!(inventory.host("web1").unwrap().groups, ["all", "web"]);
    assert_eq!(inventory.host("web2").unwrap().groups, ["all", "web"]);
    assert_eq!(
        inventory.host("web1").unwrap().span.position(),
        "inv.yml:4:5"
    );
    let vars = flat(&inventory, "web2");
    assert_eq!(vars["app"], "myapp");
    assert_eq!(vars["port"], 8080);
    assert_eq!(vars["ansible_host"], "198.51.100.11");
}

#[test]
fn top_level_groups_are_children_of_all() {
    let inventory = parse("web:\n  hosts: { web1: }\ndb:\n  hosts:\n    db1:\n").unwrap();
    assert_eq!(select(&inventory, "all"), ["web1", "db1"]);
    assert_eq!(inventory.host("db1").unwrap().groups, ["all", "db"]);
}

#[test]
fn nested_children_order_groups_from_parent_to_child() {
    let inventory = parse(
        "all:
  children:
    prod:
      vars: { level: prod }
      children:
        web:
          vars: { level: web }
          hosts: { web1: }
          children:
            canary: { hosts: { web9: }, vars: { level: canary } }
    db:
      hosts: { db1: }
",
    )
    .unwrap();
    assert_eq!(select(&inventory, "all"), ["web1", "web9", "db1"]);
    assert_eq!(
        inventory.host("web9").unwrap().groups,
        ["all", "prod", "web", "canary"]
    );
    assert_eq!(select(&inventory, "prod"), ["web1", "web9"]);
    assert_eq!(flat(&inventory, "web1")["level"], "web");
    assert_eq!(flat(&inventory, "web9")["level"], "canary");
}

#[test]
fn a_host_in_two_groups_gets_both_and_all_its_listings() {
    let inventory = parse(
        "all:
  hosts:
    h1: { a: 1, b: 1 }
  children:
    web: { hosts: { h1: { b: 2 } }, vars: { from: web } }
    db: { hosts: { h1: }, vars: { from: db } }
",
    )
    .unwrap();
    assert_eq!(inventory.hosts().len(), 1);
    let host = inventory.host("h1").unwrap();
    // Same depth: by name, so `web` is merged last and wins, as in Ansible.
    assert_eq!(host.groups, ["all", "db", "web"]);
    let vars = flat(&inventory, "h1");
    assert_eq!(vars["a"], 1);
    assert_eq!(vars["b"], 2);
    assert_eq!(vars["from"], "web");
}

#[test]
fn depth_is_the_longest_path_from_all() {
    // `deep` is both a top-level group and a grandchild: it counts as the deeper one.
    let inventory = parse(
        "deep: { vars: { x: deep } }
a:
  vars: { x: a }
  children:
    b:
      vars: { x: b }
      children: { deep: { hosts: { h: } } }
",
    )
    .unwrap();
    assert_eq!(
        inventory.host("h").unwrap().groups,
        ["all", "a", "b", "deep"]
    );
    assert_eq!(flat(&inventory, "h")["x"], "deep");
}

#[test]
fn null_hosts_and_ungrouped() {
    let inventory =
        parse("all:\n  hosts:\n    lone:\n    h1:\n  children:\n    g: { hosts: { h1: } }\n")
            .unwrap();
    assert_eq!(inventory.host("lone").unwrap().groups, ["all", "ungrouped"]);
    assert_eq!(inventory.host("h1").unwrap().groups, ["all", "g"]);
    assert_eq!(select(&inventory, "ungrouped"), ["lone"]);
}

#[test]
fn an_empty_inventory_has_no_hosts() {
    let inventory = parse("# nothing yet\n").unwrap();
    assert!(inventory.hosts().is_empty());
    assert!(inventory.select("all", None).unwrap().unmatched.is_empty());
}

#[test]
fn host_ranges_expand() {
    let inventory =
        parse("all:\n  hosts:\n    web[1:3]:\n    db-[a:b]-[01:03:2]: { x: 1 }\n").unwrap();
    assert_eq!(
        select(&inventory, "all"),
        [
            "web1", "web2", "web3", "db-a-01", "db-a-03", "db-b-01", "db-b-03"
        ]
    );
    assert_eq!(flat(&inventory, "db-b-03")["x"], 1);
    let err = parse("all:\n  hosts:\n    web[3:1]:\n").unwrap_err();
    assert!(
        err.message.starts_with("inv.yml:3:5: bad host range"),
        "{}",
        err.message
    );
}

#[test]
fn patterns_select_in_inventory_order() {
    let inventory = parse(
        "all:
  hosts: { lb: }
  children:
    web: { hosts: { web1: , web2: } }
    db: { hosts: { db1: , db2: , db3: } }
    webdb: { hosts: { web2: , db1: } }
",
    )
    .unwrap();
    assert_eq!(
        select(&inventory, "all"),
        ["lb", "web1", "web2", "db1", "db2", "db3"]
    );
    assert_eq!(select(&inventory, "*"), select(&inventory, "all"));
    assert_eq!(select(&inventory, "web"), ["web1", "web2"]);
    assert_eq!(select(&inventory, "web*"), ["web1", "web2", "db1"]);
    assert_eq!(select(&inventory, "db[13]"), ["db1", "db3"]);
    assert_eq!(
        select(&inventory, "db,web"),
        ["web1", "web2", "db1", "db2", "db3"]
    );
    assert_eq!(select(&inventory, "web:db"), select(&inventory, "web,db"));
    assert_eq!(
        select(&inventory, "all,!web2"),
        ["lb", "web1", "db1", "db2", "db3"]
    );
    assert_eq!(select(&inventory, "!db"), ["lb", "web1", "web2"]);
    assert_eq!(select(&inventory, "db,&webdb"), ["db1"]);
    assert_eq!(select(&inventory, "~db[12]"), ["db1", "db2"]);
    assert_eq!(select(&inventory, " lb , db3 "), ["lb", "db3"]);
    assert_eq!(select(&inventory, "a*"), Vec::<String>::new());
}

#[test]
fn unknown_names_match_nothing_and_are_reported() {
    let inventory = parse(SPEC).unwrap();
    let selection = inventory.select("web,dbb,!nope*", None).unwrap();
    assert_eq!(names(&selection.hosts), ["web1", "web2"]);
    assert_eq!(selection.unmatched, ["dbb", "!nope*"]);
    assert!(inventory.select("nothing", None).unwrap().hosts.is_empty());
}

#[test]
fn bad_patterns_are_located_errors() {
    let inventory = parse(SPEC).unwrap();
    let play = SourceFile::new("play.yml", "- hosts: web[\n");
    let span = Span {
        file: play,
        offset: 9,
        len: 4,
    };
    let err = inventory.select("web[", Some(&span)).unwrap_err();
    assert!(
        err.message.starts_with("play.yml:1:10: bad glob"),
        "{}",
        err.message
    );
    assert!(err.help.is_some());
    let err = inventory.select(" , ", None).unwrap_err();
    assert!(err.message.contains("empty"), "{}", err.message);
    let err = inventory.select("web,!", None).unwrap_err();
    assert!(
        err.message.contains("`!` must be followed"),
        "{}",
        err.message
    );
}

#[test]
fn a_port_may_follow_the_host_as_in_ansible() {
    let inventory =
        parse("all:\n  hosts:\n    web[1:2]:2222: { a: 1 }\n    web1:2200:\n    '[::1]:22':\n")
            .unwrap();
    assert_eq!(flat(&inventory, "web1")["ansible_port"], 2222);
    assert_eq!(flat(&inventory, "web2")["a"], 1);
    assert_eq!(flat(&inventory, "::1")["ansible_port"], 22);
}

#[test]
fn ipv6_hosts_are_not_split_on_colons() {
    let inventory = parse("all:\n  hosts:\n    '2001:db8::1':\n    web1:\n").unwrap();
    assert_eq!(select(&inventory, "2001:db8::1"), ["2001:db8::1"]);
    assert_eq!(
        select(&inventory, "web1,2001:db8::1"),
        ["2001:db8::1", "web1"]
    );
}

#[test]
fn limits_must_name_something_and_leave_a_host() {
    let inventory = parse(SPEC).unwrap();
    assert_eq!(names(&inventory.limit("web,!web1").unwrap()), ["web2"]);
    let err = inventory.limit("web1,!wbe2").unwrap_err();
    assert!(
        err.message.contains("`!wbe2` names no host or group"),
        "{}",
        err.message
    );
    assert!(err.help.as_deref().unwrap().contains("web1, web2"));
    let err = inventory.limit("web,&ungrouped").unwrap_err();
    assert!(err.message.contains("leaves no host"), "{}", err.message);
}

#[test]
fn unknown_group_keys_are_located() {
    let err = parse("all:\n  children:\n    web:\n      host: { web1: }\n").unwrap_err();
    assert!(
        err.message
            .starts_with("inv.yml:4:7: unknown key `host` in group `web`"),
        "{}",
        err.message
    );
    assert_eq!(err.help.as_deref(), Some("did you mean `hosts`?"));
    let err = parse("web1:\n  ansible_host: 198.51.100.10\n").unwrap_err();
    assert!(err.message.starts_with("inv.yml:2:3:"), "{}", err.message);
    assert!(
        err.help
            .unwrap()
            .contains("list it under a group's `hosts:`")
    );
}

#[test]
fn a_host_written_as_a_list_is_located() {
    let err = parse("all:\n  hosts:\n    web1: [a, b]\n").unwrap_err();
    assert!(
        err.message
            .starts_with("inv.yml:3:11: host `web1` must be a mapping"),
        "{}",
        err.message
    );
    let err = parse("all:\n  hosts: [web1, web2]\n").unwrap_err();
    assert!(
        err.message
            .starts_with("inv.yml:2:10: `hosts` of group `all` must be a mapping"),
        "{}",
        err.message
    );
    assert!(err.help.unwrap().contains("web2: { ansible_host"));
}

#[test]
fn structural_mistakes_are_located() {
    let cases = [
        ("- web1\n", "inv.yml:1:1: an inventory must be a mapping"),
        (
            "all:\n  vars: [a]\n",
            "inv.yml:2:9: `vars` of group `all` must be a mapping",
        ),
        (
            "web:\n  children: [db]\n",
            "inv.yml:2:13: `children` of group `web`",
        ),
        (
            "web:\n  children: { all: }\n",
            "inv.yml:2:15: `all` cannot be a child",
        ),
        (
            "all:\n  hosts: { 'web 1': }\n",
            "inv.yml:2:12: host name `web 1` contains ` `",
        ),
        (
            "all:\n  hosts: { 'web1:': }\n",
            "inv.yml:2:12: host name `web1:` contains `:`",
        ),
        ("web*: {}\n", "inv.yml:1:1: group name `web*` contains `*`"),
    ];
    for (text, expected) in cases {
        let err = parse(text).unwrap_err();
        assert!(
            err.message.starts_with(expected),
            "{text:?}: {}",
            err.message
        );
        assert!(err.help.is_some(), "{text:?}");
    }
}

#[test]
fn a_name_used_for_a_host_and_a_group_is_an_error() {
    let err = parse("web:\n  hosts: { db: }\ndb:\n  hosts: { db1: }\n").unwrap_err();
    assert!(
        err.message
            .starts_with("inv.yml:2:12: `db` is both a host and a group"),
        "{}",
        err.message
    );
    assert!(err.help.unwrap().contains("inv.yml:3:1"));
    let err = parse("all:\n  hosts: { all: }\n").unwrap_err();
    assert!(err.message.contains("`all` is both"), "{}", err.message);
}

#[test]
fn group_cycles_are_errors() {
    let err =
        parse("a:\n  children:\n    b:\n      children:\n        c:\n          children: { a: }\n")
            .unwrap_err();
    assert!(
        err.message
            .starts_with("inv.yml:6:23: group `a` contains itself: a -> b -> c -> a"),
        "{}",
        err.message
    );
    let err = parse("a:\n  children: { a: }\n").unwrap_err();
    assert!(err.message.contains("a -> a"), "{}", err.message);
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn vars_files_beside_the_inventory_take_their_place_in_the_layers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "inventory.yml",
        "all:
  vars: { a: inv-all, b: inv-all, c: inv-all, d: inv-all, e: inv-all }
  children:
    prod:
      vars: { b: inv-prod, c: inv-prod }
      children:
        web:
          vars: { c: inv-web, d: inv-web, g: inv-web }
          hosts:
            web1: { d: inv-host, e: inv-host }
",
    );
    write(
        root,
        "group_vars/all.yml",
        "a: file-all\nb: file-all\ng: file-all\n",
    );
    write(root, "group_vars/prod.yaml", "b: file-prod\n");
    write(
        root,
        "group_vars/web/10-main.yml",
        "c: file-web\nf: first\n",
    );
    write(root, "group_vars/web/20-more.yml", "f: second\n");
    write(root, "group_vars/web/notes.txt", "not: read\n");
    write(root, "group_vars/web/30-backup~", "not: read\n");
    write(root, "group_vars/web/conf.d/x.yml", "not: read\n");
    write(root, "host_vars/web1.yml", "e: file-host\n");
    write(root, "host_vars/ghost.yml", "- not even a mapping\n");
    let inventory = Inventory::load(&root.join("inventory.yml")).unwrap();
    let vars = flat(&inventory, "web1");
    // As in Ansible: every group_vars file (all.yml included) over every group's vars
    // in the inventory file; a child's file over its parent's; the host over groups;
    // host_vars over the host's entry.
    assert_eq!(vars["a"], "file-all");
    assert_eq!(vars["g"], "file-all");
    assert_eq!(vars["b"], "file-prod");
    assert_eq!(vars["c"], "file-web");
    assert_eq!(vars["d"], "inv-host");
    assert_eq!(vars["e"], "file-host");
    assert_eq!(vars["f"], "second");
    assert!(vars.get("not").is_none());
    let host = inventory.host("web1").unwrap();
    let layers = inventory.var_layers(host);
    assert_eq!(layers.len(), 2 * host.groups.len() + 2);
    let e = &layers.last().unwrap()[0].1;
    assert!(
        e.span.position().ends_with("host_vars/web1.yml:1:4"),
        "{}",
        e.span.position()
    );
    let (own, g) = inventory.winning_definition(host, "g").unwrap();
    assert!(!own);
    assert!(g.span.position().ends_with("group_vars/all.yml:3:4"));
}

#[test]
fn group_priority_orders_groups_of_the_same_depth() {
    let inventory = parse(
        "all:
  children:
    alpha:
      vars: { v: alpha, ansible_group_priority: 10 }
      hosts: { h1: }
    beta:
      vars: { v: beta }
      hosts: { h1: }
    gamma:
      vars: { v: gamma, ansible_group_priority: '0' }
      hosts: { h2: }
    delta:
      vars: { v: delta }
      hosts: { h2: }
",
    )
    .unwrap();
    assert_eq!(
        inventory.host("h1").unwrap().groups,
        ["all", "beta", "alpha"]
    );
    assert_eq!(flat(&inventory, "h1")["v"], "alpha");
    assert_eq!(flat(&inventory, "h2")["v"], "delta");
    assert!(
        flat(&inventory, "h1")
            .get("ansible_group_priority")
            .is_none()
    );
    let err = parse("all:\n  children:\n    g:\n      vars: { ansible_group_priority: high }\n")
        .unwrap_err();
    assert!(
        err.message
            .starts_with("inv.yml:4:39: `ansible_group_priority` must be a whole number"),
        "{}",
        err.message
    );
}

#[test]
fn a_host_in_a_group_leaves_ungrouped() {
    let inventory = parse(
        "all:\n  children:\n    ungrouped: { hosts: { h1: , h2: } }\n    web: { hosts: { h1: } }\n",
    )
    .unwrap();
    assert_eq!(select(&inventory, "ungrouped"), ["h2"]);
    assert_eq!(inventory.host("h1").unwrap().groups, ["all", "web"]);
}

#[test]
fn errors_in_vars_files_point_into_them() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "inventory.yml", "all:\n  hosts: { web1: }\n");
    write(dir.path(), "host_vars/web1.yml", "ansible_port: 99999\n");
    let inventory = Inventory::load(&dir.path().join("inventory.yml")).unwrap();
    let err = connection(&inventory, "web1").unwrap_err();
    assert!(
            err.message.ends_with(
                "host_vars/web1.yml:1:15: `ansible_port` of host `web1` must be a port number from 1 to 65535, found 99999"
            ),
            "{}",
            err.message
        );
    write(dir.path(), "group_vars/all.yml", "- a\n");
    let err = Inventory::load(&dir.path().join("inventory.yml")).unwrap_err();
    assert!(
        err.message
            .contains("group_vars/all.yml:1:1: a vars file must be a mapping"),
        "{}",
        err.message
    );
    write(
        dir.path(),
        "group_vars/all.yml",
        "$ANSIBLE_VAULT;1.1;AES256\n6162\n",
    );
    let err = Inventory::load(&dir.path().join("inventory.yml")).unwrap_err();
    assert!(err.message.contains("Ansible Vault"), "{}", err.message);
}

#[test]
fn a_missing_inventory_is_an_input_error() {
    let err = Inventory::load(Path::new("/nonexistent/inventory.yml")).unwrap_err();
    assert!(
        err.message
            .starts_with("cannot read /nonexistent/inventory.yml"),
        "{}",
        err.message
    );
}

#[test]
fn connection_settings_come_from_ansible_names_and_the_host_entry() {
    let inventory = parse(
        "all:
  vars: { ansible_port: 2200, ansible_python_interpreter: /usr/bin/python3 }
  children:
    web:
      vars: { port: 8080, user: app, host: nowhere }
      hosts:
        web1: { ansible_host: 198.51.100.10, ansible_user: deploy }
        web2: { host: 198.51.100.11, port: '2222', user: admin }
        web3: { port: 2222, ansible_port: 2300 }
        web4: { port: null }
",
    )
    .unwrap();
    let (web1, warnings) = connection(&inventory, "web1").unwrap();
    assert_eq!(
        web1,
        Connection {
            address: Some("198.51.100.10".into()),
            port: Some(2200),
            user: Some("deploy".into()),
            ..Connection::default()
        }
    );
    assert_eq!(
        warnings,
        ["inv.yml:2:59: `ansible_python_interpreter` is ignored by converge"]
    );
    let (web2, _) = connection(&inventory, "web2").unwrap();
    assert_eq!(web2.address.as_deref(), Some("198.51.100.11"));
    assert_eq!(web2.port, Some(2222));
    assert_eq!(web2.user.as_deref(), Some("admin"));
    let (web3, _) = connection(&inventory, "web3").unwrap();
    assert_eq!(web3.port, Some(2300));
    assert_eq!(web3.address, None);
    let (web4, _) = connection(&inventory, "web4").unwrap();
    assert_eq!(web4.port, Some(2200));
}

#[test]
fn short_names_in_group_vars_are_not_connection_settings() {
    let inventory = parse(SPEC).unwrap();
    let (web2, warnings) = connection(&inventory, "web2").unwrap();
    assert_eq!(web2.port, None);
    assert_eq!(web2.address.as_deref(), Some("198.51.100.11"));
    assert!(warnings.is_empty());
}

#[test]
fn connection_values_are_checked() {
    let inventory = parse(
        "all:
  hosts:
    a: { ansible_port: 70000 }
    b: { ansible_connection: docker }
    c: { ansible_timeout: '30', ansible_become: 'yes', ansible_connection: local }
    d: { ansible_ssh_private_key_file: ~/.ssh/id_ed25519 }
    e: { port: 0 }
",
    )
    .unwrap();
    let err = connection(&inventory, "a").unwrap_err();
    assert!(
        err.message
            .starts_with("inv.yml:3:24: `ansible_port` of host `a` must be a port"),
        "{}",
        err.message
    );
    assert!(err.help.is_some());
    let err = connection(&inventory, "b").unwrap_err();
    assert!(
            err.message.starts_with("inv.yml:4:30: `ansible_connection` of host `b` must be `ssh` or `local`, found \"docker\""),
            "{}",
            err.message
        );
    let (c, _) = connection(&inventory, "c").unwrap();
    assert_eq!(
        (c.timeout, c.become_root, c.local),
        (Some(30), Some(true), true)
    );
    let (d, _) = connection(&inventory, "d").unwrap();
    let home = PathBuf::from(std::env::var_os("HOME").unwrap());
    assert_eq!(d.identity_file, Some(home.join(".ssh/id_ed25519")));
    let err = connection(&inventory, "e").unwrap_err();
    assert!(
        err.message.starts_with("inv.yml:7:16: `port` of host `e`"),
        "{}",
        err.message
    );
}

#[test]
fn values_from_outside_the_inventory_are_not_located_there() {
    let inventory = parse("all:\n  hosts:\n    web1: { ansible_port: 22 }\n").unwrap();
    let host = inventory.host("web1").unwrap();
    let vars = serde_json::json!({ "ansible_port": "ssh", "ansible_foo": 1 });
    let err = inventory.connection(host, &vars).unwrap_err();
    assert!(
        err.message.starts_with("`ansible_port` of host `web1`"),
        "{}",
        err.message
    );
    let vars = serde_json::json!({ "ansible_foo": 1 });
    let (_, warnings) = inventory.connection(host, &vars).unwrap();
    assert_eq!(warnings, ["`ansible_foo` is ignored by converge"]);
}

#[test]
fn short_names_in_the_host_entry_are_templates() {
    let inventory =
        parse("all:\n  vars: { base: 198.51.100 }\n  hosts:\n    web1: { host: '{{base}}.7' }\n")
            .unwrap();
    let (web1, _) = connection(&inventory, "web1").unwrap();
    assert_eq!(web1.address.as_deref(), Some("198.51.100.7"));
}
