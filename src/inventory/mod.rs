//! Inventories: hosts, the groups they belong to and their variables, in Ansible's YAML
//! and INI formats, with `host_vars/` and `group_vars/` beside the file.
//!
//! Everything stays a [`Node`], so that a bad value found much later (a port out of
//! range in a group's vars) can still be pointed at.
#![expect(
    clippy::result_large_err,
    reason = "InputError carries its source for miette and is only built on the way to exit 3"
)]

mod build;
mod connection;
mod ini;
mod names;
mod pattern;
mod python_literal;
#[cfg(test)]
mod tests;
mod vars_files;
mod yaml;

use build::Builder;
pub use connection::{Connection, SECRET_VARS, become_vars};
use vars_files::{read_source, read_vars_files};
use yaml::{INVENTORY_HELP, entries};

use crate::error::{InputError, InputResult, SourceFile, Span};
use crate::node::{self, Kind, Node};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Variables as written, each with the node of its value; one entry per name.
pub type Vars = Vec<(String, Node)>;

#[derive(Debug)]
pub struct Inventory {
    pub path: PathBuf,
    hosts: Vec<Host>,
    /// `all` first, then every group in order of first appearance.
    groups: IndexMap<String, Group>,
}

#[derive(Debug)]
pub struct Host {
    pub name: String,
    /// Where the host is first listed.
    pub span: Span,
    /// Every group the host is in, directly or through child groups: by depth below
    /// `all` (so parents before children), then by `ansible_group_priority`, then by
    /// name, which is Ansible's order.
    pub groups: Vec<String>,
    /// Merged over every place the host is listed, later listings winning.
    vars: Vars,
    /// `host_vars/NAME.yml`.
    file_vars: Vars,
}

#[derive(Debug)]
struct Group {
    /// Where the group is first named; `None` for the built-in `all` and `ungrouped`.
    span: Option<Span>,
    /// Each child with the key that made it one, to point at a cycle.
    children: Vec<(usize, Span)>,
    /// Hosts listed directly under this group's `hosts:`.
    hosts: Vec<usize>,
    vars: Vars,
    file_vars: Vars,
    /// Longest path from `all`, as Ansible computes it for variable precedence.
    depth: usize,
    /// `ansible_group_priority`: orders groups of the same depth, lower first.
    priority: i64,
}

impl Group {
    fn new(span: Option<Span>) -> Group {
        Group {
            span,
            children: Vec::new(),
            hosts: Vec::new(),
            vars: Vars::new(),
            file_vars: Vars::new(),
            depth: 0,
            priority: 1,
        }
    }
}

/// Hosts matched by a host pattern, and the names in it that matched nothing.
#[derive(Debug)]
pub struct Selection<'a> {
    /// In inventory order.
    pub hosts: Vec<&'a Host>,
    /// Pattern words naming no host and no group, as written (`!dbb`): usually typos,
    /// but a playbook may name groups that only some inventories have.
    pub unmatched: Vec<String>,
}

const ALL: usize = 0;
const BUILT_IN_GROUPS: [&str; 2] = ["all", "ungrouped"];

impl Inventory {
    /// Read an inventory file, then the `group_vars/` and `host_vars/` beside it.
    pub fn load(path: &Path) -> InputResult<Inventory> {
        let file = read_source(path, "check the inventory path given with -i")?;
        let mut inventory = Inventory::parse(&file)?;
        inventory.path = path.to_path_buf();
        let dir = path.parent().unwrap_or(Path::new(""));
        let group_dir = dir.join("group_vars");
        for (name, group) in &mut inventory.groups {
            group.file_vars = read_vars_files(&group_dir, name)?;
        }
        let host_dir = dir.join("host_vars");
        for host in &mut inventory.hosts {
            host.file_vars = read_vars_files(&host_dir, &host.name)?;
        }
        Ok(inventory)
    }

    /// An inventory from its text alone, without `group_vars/` and `host_vars/`.
    ///
    /// INI or YAML, told apart as Ansible's plugins tell them: a file YAML cannot read
    /// as a mapping is read as INI, unless its name says it is YAML.
    pub fn parse(file: &Arc<SourceFile>) -> InputResult<Inventory> {
        let extension = Path::new(&file.name)
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let named_yaml = extension
            .as_deref()
            .is_some_and(|e| ["yml", "yaml", "json"].contains(&e));
        if extension.as_deref() == Some("ini") || ini::starts_with_section(&file.text) {
            return ini::parse(file);
        }
        let root = match node::parse(file) {
            Ok(root) => root,
            Err(_) if !named_yaml => return ini::parse(file),
            Err(error) => return Err(error),
        };
        if !named_yaml && !matches!(root.kind, Kind::Map(_) | Kind::Null) {
            return ini::parse(file);
        }
        let mut builder = Builder::new();
        let top = entries(
            &root,
            "an inventory must be a mapping of groups",
            INVENTORY_HELP,
            "a group name",
        )?;
        for (name, key, body) in top {
            // Ansible reads groups written at the top level as children of `all`.
            let group = if name == "all" {
                ALL
            } else {
                let group = builder.group(name, key)?;
                builder.add_child(ALL, group, &key.span);
                group
            };
            builder.group_body(group, body)?;
        }
        builder.finish(PathBuf::from(&file.name))
    }

    /// Every host, in the order of first appearance in the file.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Every group with its hosts, as Ansible's `groups` lists them: the group's own
    /// hosts in listing order, then its children's, level by level; `all` first.
    pub fn group_hosts(&self) -> impl Iterator<Item = (&str, Vec<&str>)> {
        self.groups.iter().enumerate().map(|(index, (name, _))| {
            let mut level = vec![index];
            let mut seen = vec![false; self.groups.len()];
            seen[index] = true;
            let mut hosts: Vec<&str> = Vec::new();
            while !level.is_empty() {
                let mut next = Vec::new();
                for &group in &level {
                    for &host in &self.groups[group].hosts {
                        let host = self.hosts[host].name.as_str();
                        if !hosts.contains(&host) {
                            hosts.push(host);
                        }
                    }
                    for (child, _) in &self.groups[group].children {
                        if !std::mem::replace(&mut seen[*child], true) {
                            next.push(*child);
                        }
                    }
                }
                level = next;
            }
            (name.as_str(), hosts)
        })
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The host's variables as written, lowest precedence first, in Ansible's order:
    /// the inventory file's group vars (`all` first, then by depth, priority and name),
    /// then the `group_vars/` files in the same order, then the host's inventory vars,
    /// then `host_vars/HOST`. So `group_vars/all.yml` beats a child group's `vars:` in
    /// the inventory file, as in Ansible.
    /// Empty layers are included: two per group, then two for the host.
    pub fn var_layers<'a>(&'a self, host: &'a Host) -> Vec<&'a [(String, Node)]> {
        let groups = || host.groups.iter().map(|name| &self.groups[name.as_str()]);
        groups()
            .map(|group| group.vars.as_slice())
            .chain(groups().map(|group| group.file_vars.as_slice()))
            .chain([host.vars.as_slice(), host.file_vars.as_slice()])
            .collect()
    }

    /// Where the winning definition of `name` for `host` is written, and whether it is
    /// the host's own (inventory entry or `host_vars/`) rather than a group's.
    fn winning_definition<'a>(&'a self, host: &'a Host, name: &str) -> Option<(bool, &'a Node)> {
        let layers = self.var_layers(host);
        let own_from = layers.len() - 2;
        layers.iter().enumerate().rev().find_map(|(i, layer)| {
            let (_, node) = layer.iter().find(|(n, _)| n == name)?;
            Some((i >= own_from, node))
        })
    }

    /// The hosts a `--limit` pattern allows, in inventory order. A limit naming something
    /// the inventory lacks, or allowing no host at all, is an error: a mistyped `!web2`
    /// would otherwise quietly run on the host it was meant to spare.
    pub fn limit(&self, limit: &str) -> InputResult<Vec<&Host>> {
        let selection = self.select(limit, None)?;
        if let Some(word) = selection.unmatched.first() {
            return Err(InputError::new(format!(
                "the limit `{limit}`: `{word}` names no host or group of {}",
                self.path.display()
            ))
            .help(self.names_help()));
        }
        if selection.hosts.is_empty() {
            return Err(InputError::new(format!(
                "the limit `{limit}` leaves no host of {} to run on",
                self.path.display()
            ))
            .help(self.names_help()));
        }
        Ok(selection.hosts)
    }

    fn names_help(&self) -> String {
        let groups: Vec<&str> = self
            .groups
            .keys()
            .map(String::as_str)
            .filter(|g| !BUILT_IN_GROUPS.contains(g))
            .collect();
        let hosts: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
        format!(
            "the inventory has groups: {}; and hosts: {}",
            shortened(&groups),
            shortened(&hosts)
        )
    }
}

fn shortened(names: &[&str]) -> String {
    const SHOWN: usize = 10;
    match names.len() {
        0 => "none".to_string(),
        n if n <= SHOWN => names.join(", "),
        n => format!("{}, and {} more", names[..SHOWN].join(", "), n - SHOWN),
    }
}
