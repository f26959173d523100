//! The magic variables a play's hosts share, built from the inventory once per play.

use super::expand::host_magic;
use crate::inventory::{Host, Inventory};
use crate::playbook::magic::Magic;
use crate::playbook::vars::{self, Layer};
use serde_json::{Map, Value};

/// `groups` (every group with its hosts in Ansible's order, `all` and `ungrouped`
/// included, an empty group too), `ansible_play_hosts` (`play_hosts`), and `hostvars`, resolved on first
/// use: each host's inventory variables and `-e`, as Ansible's `hostvars` holds them
/// (play vars belong to the play, not the host).
pub fn play_magic<'a>(
    inventory: &'a Inventory,
    play_hosts: &[&Host],
    extra: &'a Layer,
) -> Magic<'a> {
    let groups = inventory
        .group_hosts()
        .map(|(group, hosts)| (group.to_string(), hosts.into()))
        .collect();
    let play_hosts = play_hosts.iter().map(|h| h.name.clone()).collect();
    Magic::new(
        groups,
        play_hosts,
        Box::new(move || hostvars(inventory, extra)),
    )
}

fn hostvars(inventory: &Inventory, extra: &Layer) -> Result<Value, String> {
    let mut all = Map::new();
    for host in inventory.hosts() {
        let mut layers = inventory.var_layers(host);
        layers.push(extra);
        let base = host_magic(&host.name, &host.groups);
        let resolved = vars::resolve(&layers, &base, &[], None)
            .map_err(|e| format!("hostvars of {}: {}", host.name, e.message))?;
        let mut vars = base;
        vars.extend(resolved.vars);
        all.insert(host.name.clone(), Value::Object(vars));
    }
    Ok(Value::Object(all))
}
