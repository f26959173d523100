//! Inventories: hosts, the groups they belong to and their variables, in the YAML
//! format of Ansible's inventories, with `host_vars/` and `group_vars/` beside the file.
//!
//! Everything stays a [`Node`], so that a bad value found much later (a port out of
//! range in a group's vars) can still be pointed at.
#![expect(
    clippy::result_large_err,
    reason = "InputError carries its source for miette and is only built on the way to exit 3"
)]

mod build;
mod connection;
mod names;
mod pattern;
#[cfg(test)]
mod tests;
mod vars_files;
mod yaml;

use build::Builder;
pub use connection::Connection;
use vars_files::{read_source, read_vars_files};
use yaml::{INVENTORY_HELP, entries};

use crate::error::{InputError, InputResult, SourceFile, Span};
use crate::node::{self, Node};
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
    /// `all` (so parents before children), then by name, which is Ansible's order.
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
    pub fn parse(file: &Arc<SourceFile>) -> InputResult<Inventory> {
        if let Some(error) = ini_header(file) {
            return Err(error);
        }
        let root = node::parse(file)?;
        if root.as_str().is_ok_and(|s| s.contains('=')) {
            return Err(root
                .error("this looks like an INI inventory; converge reads YAML inventories")
                .help(INI_HELP));
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
                builder.add_child(ALL, group, key);
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

    /// The host's variables as written, lowest precedence first: for each of its groups
    /// from `all` to the most specific, the inventory's `vars` then `group_vars/GROUP.yml`;
    /// then the host's own inventory variables, then `host_vars/HOST.yml`.
    /// Empty layers are included: there are always two per group, then two for the host.
    pub fn var_layers<'a>(&'a self, host: &'a Host) -> Vec<&'a [(String, Node)]> {
        let mut layers = Vec::with_capacity(2 * host.groups.len() + 2);
        for name in &host.groups {
            let group = &self.groups[name.as_str()];
            layers.push(group.vars.as_slice());
            layers.push(group.file_vars.as_slice());
        }
        layers.push(host.vars.as_slice());
        layers.push(host.file_vars.as_slice());
        layers
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

const INI_HELP: &str = "convert it once with \
     `ansible-inventory -i FILE --list --yaml > inventory.yml`";

/// Ansible's INI inventories start with a `[group]` header, which YAML would read as a list.
fn ini_header(file: &Arc<SourceFile>) -> Option<InputError> {
    let (offset, line) = file
        .text
        .split_inclusive('\n')
        .scan(0, |offset, line| {
            let start = *offset;
            *offset += line.len();
            Some((start, line))
        })
        .find(|(_, line)| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#') && !line.starts_with(';')
        })?;
    let header = line.trim();
    let is_header = header.starts_with('[')
        && header.ends_with(']')
        && !header.contains([',', ' ', '{', '"', '\'']);
    is_header.then(|| {
        let span = Span {
            file: file.clone(),
            offset: offset + line.find('[').unwrap_or(0),
            len: header.len(),
        };
        span.error("this looks like an INI inventory; converge reads YAML inventories")
            .help(INI_HELP)
    })
}

fn shortened(names: &[&str]) -> String {
    const SHOWN: usize = 10;
    match names.len() {
        0 => "none".to_string(),
        n if n <= SHOWN => names.join(", "),
        n => format!("{}, and {} more", names[..SHOWN].join(", "), n - SHOWN),
    }
}
