//! The YAML inventory format: groups with `hosts`, `vars` and `children`.

use super::Vars;
use super::build::{Builder, set_var};
use super::names::{port_node, split_port};
use crate::error::{InputError, InputResult};
use crate::node::{Kind, Node};

pub(super) const INVENTORY_HELP: &str = "an inventory is a mapping of groups, each with `hosts`, `vars` \
     and `children`:\n  all:\n    hosts:\n      web1: { ansible_host: 198.51.100.10 }\n    \
     children:\n      db:\n        hosts: { db1: }";
const GROUP_HELP: &str = "a group is a mapping with `hosts`, `vars` and `children`, each \
     optional:\n  web:\n    hosts: { web1: }\n    vars: { port: 8080 }";
const HOSTS_HELP: &str = "`hosts` maps each host name to its variables, or to nothing:\n  \
     hosts:\n    web1:\n    web2: { ansible_host: 198.51.100.11 }";
const HOST_HELP: &str = "write the host alone (`web1:`), or with a mapping of its variables \
     (`web1: { ansible_host: 198.51.100.10 }`)";
const VARS_HELP: &str = "variables are a mapping of names to values: `vars: { port: 8080 }`";
const CHILDREN_HELP: &str = "`children` maps each child group name to its own `hosts`, \
     `vars` and `children`, or to nothing:\n  children:\n    web:\n    db: { hosts: { db1: } }";

/// The entries of a mapping with string keys (nothing counts as empty), with errors
/// that say what the mapping is for.
pub(super) fn entries<'a>(
    node: &'a Node,
    expected: &str,
    help: &str,
    key_kind: &str,
) -> InputResult<Vec<(&'a str, &'a Node, &'a Node)>> {
    match &node.kind {
        Kind::Null => Ok(Vec::new()),
        Kind::Map(entries) => entries
            .iter()
            .map(|(key, value)| match &key.kind {
                Kind::Str(name) => Ok((name.as_str(), key, value)),
                _ => Err(key
                    .error(format!(
                        "{key_kind} must be a string, found {}",
                        key.kind_name()
                    ))
                    .help("write it in quotes")),
            })
            .collect(),
        _ => Err(node
            .error(format!("{expected}, found {}", node.kind_name()))
            .help(help)),
    }
}

/// Add a `vars` mapping to `vars`; a name set again replaces the earlier value.
pub(super) fn merge_vars(vars: &mut Vars, node: &Node, expected: &str) -> InputResult<()> {
    for (name, _, value) in entries(node, expected, VARS_HELP, "a variable name")? {
        set_var(vars, name, value.clone());
    }
    Ok(())
}

impl Builder {
    pub(super) fn group_body(&mut self, group: usize, body: &Node) -> InputResult<()> {
        let name = self
            .groups
            .get_index(group)
            .map_or("", |(n, _)| n)
            .to_string();
        let expected = format!("group `{name}` must be a mapping");
        for (key, key_node, value) in entries(body, &expected, GROUP_HELP, "a group key")? {
            match key {
                "hosts" => self.hosts_of(group, &name, value)?,
                "vars" => {
                    let expected = format!("`vars` of group `{name}` must be a mapping");
                    merge_vars(&mut self.groups[group].vars, value, &expected)?;
                }
                "children" => {
                    let expected = format!("`children` of group `{name}` must be a mapping");
                    for (child, child_key, child_body) in
                        entries(value, &expected, CHILDREN_HELP, "a group name")?
                    {
                        let child_group = self.group(child, child_key)?;
                        self.add_child(group, child_group, &child_key.span);
                        self.group_body(child_group, child_body)?;
                    }
                }
                _ => return Err(unknown_group_key(&name, key, key_node)),
            }
        }
        Ok(())
    }

    fn hosts_of(&mut self, group: usize, group_name: &str, hosts: &Node) -> InputResult<()> {
        let expected = format!("`hosts` of group `{group_name}` must be a mapping of host names");
        for (written, key, vars) in entries(hosts, &expected, HOSTS_HELP, "a host name")? {
            if !matches!(vars.kind, Kind::Null | Kind::Map(_)) {
                return Err(vars
                    .error(format!(
                        "host `{written}` must be a mapping of its variables, found {}",
                        vars.kind_name()
                    ))
                    .help(HOST_HELP));
            }
            let (pattern, port) = match split_port(written) {
                Some((host, port)) => (
                    &written[host],
                    Some(port_node(&written[port], key.span.clone())),
                ),
                None => (written, None),
            };
            let expected = format!("host `{written}` must be a mapping of its variables");
            for index in self.add_hosts(group, pattern, key, port.as_ref())? {
                merge_vars(&mut self.hosts[index].vars, vars, &expected)?;
            }
        }
        Ok(())
    }
}

fn unknown_group_key(group: &str, key: &str, key_node: &Node) -> InputError {
    let guess = ["hosts", "vars", "children"]
        .into_iter()
        .find(|known| key.len() >= 3 && (known.starts_with(key) || key.starts_with(&known[..3])));
    let help = match guess {
        Some(known) => format!("did you mean `{known}`?"),
        None if key.starts_with("ansible_") => format!(
            "`{group}` is read as a group: put its variables under `vars:`, or if `{group}` \
             is a host, list it under a group's `hosts:`"
        ),
        None => format!(
            "a group has only `hosts`, `vars` and `children`: a variable of `{group}` goes \
             under `vars:`, a host under `hosts:` and a subgroup under `children:`"
        ),
    };
    key_node
        .error(format!("unknown key `{key}` in group `{group}`"))
        .help(help)
}
