//! Groups and hosts collected from any inventory format, then finished the same way:
//! depths, `ungrouped`, and each host's groups in Ansible's order.

use super::names::{check_name, expand_range};
use super::{ALL, BUILT_IN_GROUPS, Group, Host, Inventory, Vars};
use crate::error::{InputError, InputResult, Span};
use crate::node::{Kind, Node};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::path::PathBuf;

const CYCLE_HELP: &str = "a group cannot be its own child, directly or through other \
     groups; remove one of these `children` entries";

pub(super) struct Builder {
    pub(super) hosts: Vec<Host>,
    pub(super) host_index: HashMap<String, usize>,
    pub(super) groups: IndexMap<String, Group>,
}

impl Builder {
    pub(super) fn new() -> Builder {
        let mut groups = IndexMap::new();
        groups.insert("all".to_string(), Group::new(None));
        Builder {
            hosts: Vec::new(),
            host_index: HashMap::new(),
            groups,
        }
    }

    pub(super) fn group(&mut self, name: &str, key: &Node) -> InputResult<usize> {
        if name == "all" {
            return Err(key
                .error("`all` cannot be a child of another group")
                .help("every group is already in `all`; remove this entry"));
        }
        check_name("group", name, key)?;
        let entry = self.groups.entry(name.to_string());
        let index = entry.index();
        entry.or_insert_with(|| Group::new(Some(key.span.clone())));
        Ok(index)
    }

    pub(super) fn add_child(&mut self, parent: usize, child: usize, at: &Span) {
        let children = &mut self.groups[parent].children;
        if !children.iter().any(|(c, _)| *c == child) {
            children.push((child, at.clone()));
        }
    }

    /// List the hosts `pattern` names (`web[1:3]`) in `group`, `key` being where it is
    /// written. A `port` written after the pattern counts only where a host is first
    /// listed, as in Ansible.
    pub(super) fn add_hosts(
        &mut self,
        group: usize,
        pattern: &str,
        key: &Node,
        port: Option<&Node>,
    ) -> InputResult<Vec<usize>> {
        let mut listed = Vec::new();
        for name in expand_range(pattern, key)? {
            let (index, created) = self.add_host(group, &name, key)?;
            if let Some(port) = port.filter(|_| created) {
                set_var(&mut self.hosts[index].vars, "ansible_port", port.clone());
            }
            listed.push(index);
        }
        Ok(listed)
    }

    /// List host `name` in `group`, creating it at its first listing (`key`). Returns
    /// the host and whether this listing created it.
    fn add_host(&mut self, group: usize, name: &str, key: &Node) -> InputResult<(usize, bool)> {
        check_name("host", name, key)?;
        let created = !self.host_index.contains_key(name);
        let index = *self.host_index.entry(name.to_string()).or_insert_with(|| {
            self.hosts.push(Host {
                name: name.to_string(),
                span: key.span.clone(),
                groups: Vec::new(),
                vars: Vars::new(),
                file_vars: Vars::new(),
            });
            self.hosts.len() - 1
        });
        let members = &mut self.groups[group].hosts;
        if !members.contains(&index) {
            members.push(index);
        }
        Ok((index, created))
    }

    pub(super) fn finish(mut self, path: PathBuf) -> InputResult<Inventory> {
        for group in self.topological_order()? {
            let depth = self.groups[group].depth + 1;
            for i in 0..self.groups[group].children.len() {
                let child = self.groups[group].children[i].0;
                let child_depth = &mut self.groups[child].depth;
                *child_depth = (*child_depth).max(depth);
            }
        }
        self.add_ungrouped();
        for (name, group) in &self.groups {
            if let Some(&host) = self.host_index.get(name) {
                return Err(name_clash(&self.hosts[host], name, group));
            }
        }
        for group in 0..self.groups.len() {
            let mut members = vec![false; self.hosts.len()];
            self.members(group, &mut vec![false; self.groups.len()], &mut members);
            let name = self.groups.get_index(group).map_or("", |(n, _)| n);
            for (host, _) in members.iter().enumerate().filter(|(_, member)| **member) {
                self.hosts[host].groups.push(name.to_string());
            }
        }
        for group in self.groups.values_mut() {
            group.priority = take_priority(&mut group.vars)?;
        }
        for host in &mut self.hosts {
            host.groups.sort_by_cached_key(|name| {
                let group = &self.groups[name.as_str()];
                (group.depth, group.priority, name.clone())
            });
        }
        Ok(Inventory {
            path,
            hosts: self.hosts,
            groups: self.groups,
        })
    }

    /// Groups with parents before children; every group is reachable from `all`.
    fn topological_order(&self) -> InputResult<Vec<usize>> {
        let mut state = vec![Visit::New; self.groups.len()];
        let mut order = Vec::with_capacity(self.groups.len());
        self.visit(ALL, &mut state, &mut Vec::new(), &mut order)?;
        order.reverse();
        Ok(order)
    }

    fn visit(
        &self,
        group: usize,
        state: &mut [Visit],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> InputResult<()> {
        state[group] = Visit::OnPath;
        path.push(group);
        for (child, key) in &self.groups[group].children {
            match state[*child] {
                Visit::New => self.visit(*child, state, path, order)?,
                Visit::OnPath => {
                    let start = path.iter().position(|g| g == child).unwrap_or(0);
                    let name = |g: &usize| self.groups.get_index(*g).map_or("", |(n, _)| n);
                    let cycle: Vec<&str> = path[start..].iter().chain([child]).map(name).collect();
                    return Err(key
                        .error(format!(
                            "group `{}` contains itself: {}",
                            name(child),
                            cycle.join(" -> ")
                        ))
                        .help(CYCLE_HELP));
                }
                Visit::Done => {}
            }
        }
        path.pop();
        state[group] = Visit::Done;
        order.push(group);
        Ok(())
    }

    /// Ansible puts hosts that are in no group but `all` in `ungrouped`.
    fn add_ungrouped(&mut self) {
        let mut grouped = vec![false; self.hosts.len()];
        for (name, group) in &self.groups {
            if !BUILT_IN_GROUPS.contains(&name.as_str()) {
                for &host in &group.hosts {
                    grouped[host] = true;
                }
            }
        }
        let ungrouped = self
            .groups
            .entry("ungrouped".to_string())
            .or_insert_with(|| Group {
                depth: 1,
                ..Group::new(None)
            });
        // A host listed in `ungrouped` and in another group is only in the other.
        ungrouped.hosts.retain(|host| !grouped[*host]);
        for (host, _) in grouped.iter().enumerate().filter(|(_, g)| !**g) {
            if !ungrouped.hosts.contains(&host) {
                ungrouped.hosts.push(host);
            }
        }
    }

    /// Mark the hosts of a group and of all its descendants.
    fn members(&self, group: usize, seen: &mut [bool], hosts: &mut [bool]) {
        if std::mem::replace(&mut seen[group], true) {
            return;
        }
        for &host in &self.groups[group].hosts {
            hosts[host] = true;
        }
        for (child, _) in &self.groups[group].children {
            self.members(*child, seen, hosts);
        }
    }
}

/// Set a variable; one set again keeps its place and takes the new value.
pub(super) fn set_var(vars: &mut Vars, name: &str, value: Node) {
    match vars.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name.to_string(), value)),
    }
}

/// Ansible takes `ansible_group_priority` out of a group's inventory vars: it is no
/// variable, only a tie-break between groups of the same depth (higher wins).
fn take_priority(vars: &mut Vars) -> InputResult<i64> {
    let Some(at) = vars.iter().position(|(n, _)| n == "ansible_group_priority") else {
        return Ok(1);
    };
    let (_, node) = vars.remove(at);
    let priority = match &node.kind {
        Kind::Int(p) => Some(*p),
        Kind::Str(s) => s.trim().parse().ok(),
        _ => None,
    };
    priority.ok_or_else(|| {
        node.error("`ansible_group_priority` must be a whole number")
            .help("among groups at the same depth, the higher priority wins: `ansible_group_priority: 10`")
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    OnPath,
    Done,
}

fn name_clash(host: &Host, name: &str, group: &Group) -> InputError {
    let help = match &group.span {
        Some(span) => format!(
            "the group is at {}; host patterns could not tell the two apart, so rename one",
            span.position()
        ),
        None => format!("`{name}` is a group every inventory has; rename the host"),
    };
    host.span
        .error(format!("`{name}` is both a host and a group"))
        .help(help)
}
