//! The magic variables a play's hosts share, built from the inventory once per play.

use super::expand::host_magic;
use crate::inventory::{Host, Inventory};
use crate::playbook::magic::Magic;
use crate::playbook::vars::{self, Layer};
use serde_json::{Map, Value};

/// `groups` (every group with its hosts in Ansible's order, `all` and `ungrouped`
/// included, an empty group too), `ansible_play_hosts` (`play_hosts`), and `hostvars`,
/// resolved on first use: each host's inventory variables and `-e`, as Ansible's
/// `hostvars` holds them (play vars belong to the play, not the host), but for the
/// play's `secrets`, vaulted values and what they flow into: a template reading another
/// host's secret through `hostvars` would show it in a diff.
pub fn play_magic<'a>(
    inventory: &'a Inventory,
    play_hosts: &[&Host],
    extra: &'a Layer,
    secrets: &'a [String],
) -> Magic<'a> {
    let groups = inventory
        .group_hosts()
        .map(|(group, hosts)| (group.to_string(), hosts.into()))
        .collect();
    let play_hosts = play_hosts.iter().map(|h| h.name.clone()).collect();
    Magic::new(
        groups,
        play_hosts,
        Box::new(move || hostvars(inventory, extra, secrets)),
    )
}

fn hostvars(inventory: &Inventory, extra: &Layer, secrets: &[String]) -> Result<Value, String> {
    let mut all = Map::new();
    for host in inventory.hosts() {
        let mut layers = inventory.var_layers(host);
        layers.push(extra);
        let base = host_magic(&host.name, &host.groups);
        let vars::Resolved { vars, taint } = vars::resolve(&layers, &base, secrets, None)
            .map_err(|e| format!("hostvars of {}: {}", host.name, e.message))?;
        // What a secret or a vaulted value flowed into stays with its own host.
        let shareable = vars
            .into_iter()
            .filter(|(name, _)| !taint.reads_secret(&format!("{{{{{name}}}}}")));
        let mut vars = base;
        vars.extend(shareable);
        all.insert(host.name.clone(), Value::Object(vars));
    }
    Ok(Value::Object(all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SourceFile;
    use serde_json::json;

    #[test]
    fn hostvars_hold_inventory_variables_but_not_the_plays_secrets() {
        let inventory = Inventory::parse(&SourceFile::new(
            "inventory.yml",
            "all:\n  vars: { db_password: hunter2, dsn: \"db://{{db_password}}\" }\n  children:\n    web:\n      hosts:\n        \
             web1.example.com: { ansible_host: 10.0.0.1, url: \"http://{{ansible_host}}\", ansible_become_password: pw1 }\n    \
             db:\n      hosts: { db1: {}, web1.example.com: {} }\n",
        ))
        .unwrap();
        let extra = crate::playbook::vars::extra_vars(&["v=2".to_string()]).unwrap();
        let secrets = [
            "db_password".to_string(),
            "ansible_become_password".to_string(),
        ];
        let web: Vec<&Host> = inventory.hosts().iter().take(1).collect();
        let magic = play_magic(&inventory, &web, &extra, &secrets);
        let context = magic
            .for_template("{{hostvars}} {{groups}} {{ansible_play_hosts}}", &json!({}))
            .unwrap()
            .context
            .unwrap();
        let web1 = &context["hostvars"]["web1.example.com"];
        assert_eq!(web1["url"], "http://10.0.0.1");
        assert_eq!(web1["v"], "2");
        assert_eq!(web1["inventory_hostname_short"], "web1");
        assert_eq!(web1["group_names"], json!(["db", "web"]));
        assert!(web1.get("db_password").is_none(), "{web1}");
        assert!(web1.get("dsn").is_none(), "{web1}");
        assert!(web1.get("ansible_become_password").is_none(), "{web1}");
        assert_eq!(context["groups"]["db"], json!(["db1", "web1.example.com"]));
        assert_eq!(context["groups"]["ungrouped"], json!([]));
        assert_eq!(context["ansible_play_hosts"], json!(["web1.example.com"]));
    }
}
