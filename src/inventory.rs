//! Inventories: hosts, the groups they belong to and their variables, in the YAML
//! format of Ansible's inventories, with `host_vars/` and `group_vars/` beside the file.
//!
//! Everything stays a [`Node`], so that a bad value found much later (a port out of
//! range in a group's vars) can still be pointed at.
#![expect(
    clippy::result_large_err,
    reason = "InputError carries its source for miette and is only built on the way to exit 3"
)]

use crate::error::{InputError, InputResult, SourceFile, Span};
use crate::node::{self, Kind, Node};
use crate::playbook::template::engine;
use globset::{Glob, GlobMatcher};
use indexmap::IndexMap;
use serde_json::Value;
use std::collections::HashMap;
use std::net::Ipv6Addr;
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

/// How to reach a host, from its variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub address: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    /// Seconds.
    pub timeout: Option<u64>,
    pub become_root: Option<bool>,
    /// `ansible_connection: local`: run on this machine, without ssh.
    pub local: bool,
}

const ALL: usize = 0;
const BUILT_IN_GROUPS: [&str; 2] = ["all", "ungrouped"];

const INVENTORY_HELP: &str = "an inventory is a mapping of groups, each with `hosts`, `vars` \
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
const PATTERN_HELP: &str = "a host pattern is host and group names separated by commas: \
     `*`, `?` and `[..]` are globs, `~` starts a regular expression, `!name` leaves out the \
     hosts of name and `&name` keeps only hosts that are also in name";
const CYCLE_HELP: &str = "a group cannot be its own child, directly or through other \
     groups; remove one of these `children` entries";
const RANGE_HELP: &str = "a host range is `[START:END]` or `[START:END:STEP]`, numbers or \
     single letters: `web[1:3]`, `db-[a:c]`, `node[01:10:2]`";

/// Connection variables converge reads; any other `ansible_*` one is reported as ignored.
const CONNECTION_VARS: [&str; 12] = [
    "ansible_host",
    "ansible_ssh_host",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_timeout",
    "ansible_ssh_timeout",
    "ansible_become",
    "ansible_connection",
];

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

    /// Hosts matched by an Ansible host pattern (`web,db`, `web*`, `all,!web2`, `web,&prod`).
    /// Includes are joined, then `&` terms intersect and `!` terms exclude; a pattern of only
    /// `&`/`!` terms starts from `all`. `at` is where the pattern was written, for errors.
    pub fn select(&self, pattern: &str, at: Option<&Span>) -> InputResult<Selection<'_>> {
        let terms = self.parse_pattern(pattern, at)?;
        let from_all = terms.iter().all(|t| t.op != Op::Include);
        let hosts = self
            .hosts
            .iter()
            .filter(|host| {
                (from_all || terms.iter().any(|t| t.op == Op::Include && t.matches(host)))
                    && terms.iter().all(|t| match t.op {
                        Op::Include => true,
                        Op::Require => t.matches(host),
                        Op::Exclude => !t.matches(host),
                    })
            })
            .collect();
        let unmatched = terms
            .iter()
            .filter(|t| {
                !self.groups.keys().any(|g| t.matcher.matches_group(g))
                    && !self.hosts.iter().any(|h| t.matches(h))
            })
            .map(|t| t.text.clone())
            .collect();
        Ok(Selection { hosts, unmatched })
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

    /// How to reach `host`, from `vars`, its final variables with templates rendered.
    ///
    /// The `ansible_*` names count wherever they were set. The short `host`, `port` and
    /// `user` count only in the host's own inventory entry, since elsewhere they are
    /// ordinary variables (a group's `port: 8080` is the application's); there they beat
    /// an `ansible_*` one set for a group, being more specific.
    ///
    /// Also returns a warning for every other `ansible_*` variable; one set in a file
    /// begins with its position, so the same warning for many hosts can be shown once.
    pub fn connection(&self, host: &Host, vars: &Value) -> InputResult<(Connection, Vec<String>)> {
        let mut connection = Connection::default();
        if let Some(s) = self.setting(host, vars, &["ansible_host", "ansible_ssh_host"], "host")? {
            connection.address = Some(text(&s.value).ok_or_else(|| {
                s.invalid(
                    host,
                    "a host name or an address",
                    "for example `ansible_host: 198.51.100.10`",
                )
            })?);
        }
        if let Some(s) = self.setting(host, vars, &["ansible_port", "ansible_ssh_port"], "port")? {
            let port = number(&s.value)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0);
            connection.port = Some(port.ok_or_else(|| {
                s.invalid(
                    host,
                    "a port number from 1 to 65535",
                    "the ssh port is usually 22",
                )
            })?);
        }
        if let Some(s) = self.setting(host, vars, &["ansible_user", "ansible_ssh_user"], "user")? {
            connection.user = Some(text(&s.value).ok_or_else(|| {
                s.invalid(host, "a user name", "for example `ansible_user: deploy`")
            })?);
        }
        let key_vars = ["ansible_ssh_private_key_file", "ansible_private_key_file"];
        if let Some(s) = self.setting(host, vars, &key_vars, "")? {
            let path = text(&s.value).ok_or_else(|| {
                s.invalid(
                    host,
                    "the path of a private key",
                    "for example `~/.ssh/id_ed25519`",
                )
            })?;
            connection.identity_file = Some(expand_home(&path));
        }
        let timeout_vars = ["ansible_timeout", "ansible_ssh_timeout"];
        if let Some(s) = self.setting(host, vars, &timeout_vars, "")? {
            connection.timeout = Some(number(&s.value).filter(|t| *t > 0).ok_or_else(|| {
                s.invalid(
                    host,
                    "a number of seconds above 0",
                    "for example `ansible_timeout: 10`",
                )
            })?);
        }
        if let Some(s) = self.setting(host, vars, &["ansible_become"], "")? {
            connection.become_root = Some(boolean(&s.value).ok_or_else(|| {
                s.invalid(
                    host,
                    "true or false",
                    "`ansible_become: true` runs tasks as root",
                )
            })?);
        }
        if let Some(s) = self.setting(host, vars, &["ansible_connection"], "")? {
            connection.local = match text(&s.value).as_deref() {
                Some("local") => true,
                Some("ssh") => false,
                _ => {
                    return Err(s.invalid(
                        host,
                        "`ssh` or `local`",
                        "converge connects over ssh, or with `local` runs on this machine",
                    ));
                }
            };
        }
        let warnings = vars
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| name.starts_with("ansible_"))
            .filter(|(name, _)| !CONNECTION_VARS.contains(&name.as_str()))
            .map(|(name, value)| {
                let warning = format!("`{name}` is ignored by converge");
                match self.written_at(host, name, value) {
                    Some((_, node)) => format!("{}: {warning}", node.span.position()),
                    None => warning,
                }
            })
            .collect();
        Ok((connection, warnings))
    }

    /// One connection setting: the first `ansible_*` name set, unless `short` is written
    /// in the host's entry and the `ansible_*` one only comes from a group.
    fn setting<'a>(
        &'a self,
        host: &'a Host,
        vars: &'a Value,
        names: &[&'a str],
        short: &str,
    ) -> InputResult<Option<Setting<'a>>> {
        let in_entry = host
            .vars
            .iter()
            .find(|(name, value)| !short.is_empty() && name == short && !value.is_null());
        let long = names
            .iter()
            .find_map(|&name| vars.get(name).filter(|v| !v.is_null()).map(|v| (name, v)));
        if let Some((name, value)) = long {
            let written = self.written_at(host, name, value);
            let from_group = written.is_some_and(|(for_host, _)| !for_host);
            if in_entry.is_none() || !from_group {
                return Ok(Some(Setting {
                    name,
                    value: value.clone(),
                    node: written.map(|(_, node)| node),
                }));
            }
        }
        let Some((name, node)) = in_entry else {
            return Ok(None);
        };
        let value = engine().render_node(node, vars)?;
        Ok((!value.is_null()).then_some(Setting {
            name,
            value,
            node: Some(node),
        }))
    }

    /// Where the winning definition of `name` is written in the inventory, and whether
    /// it is the host's own (entry or `host_vars`) rather than a group's. `None` when
    /// `value` did not come from there (a play's vars or `-e` set it).
    fn written_at<'a>(
        &'a self,
        host: &'a Host,
        name: &str,
        value: &Value,
    ) -> Option<(bool, &'a Node)> {
        let find = |vars: &'a Vars| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let own = find(&host.file_vars).or_else(|| find(&host.vars));
        let node = match own {
            Some(node) => (true, node),
            None => host
                .groups
                .iter()
                .rev()
                .find_map(|g| {
                    let group = &self.groups[g.as_str()];
                    find(&group.file_vars).or_else(|| find(&group.vars))
                })
                .map(|node| (false, node))?,
        };
        let templated = matches!(&node.1.kind, Kind::Str(s) if s.contains("{{"));
        (templated || node.1.to_value() == *value).then_some(node)
    }

    fn parse_pattern(&self, pattern: &str, at: Option<&Span>) -> InputResult<Vec<Term>> {
        let error = |message: String| {
            match at {
                Some(span) => span.error(message),
                None => InputError::new(format!("host pattern `{pattern}`: {message}")),
            }
            .help(PATTERN_HELP)
        };
        let words = self.split_pattern(pattern);
        if words.is_empty() {
            return Err(error("the host pattern is empty".to_string()));
        }
        words
            .into_iter()
            .map(|word| {
                let (op, body) = if let Some(body) = word.strip_prefix('!') {
                    (Op::Exclude, body.trim())
                } else if let Some(body) = word.strip_prefix('&') {
                    (Op::Require, body.trim())
                } else {
                    (Op::Include, word)
                };
                if body.is_empty() {
                    return Err(error(format!("`{word}` must be followed by a name")));
                }
                let matcher = if let Some(expression) = body.strip_prefix('~') {
                    // Ansible matches regular expressions at the start of names.
                    regex::Regex::new(&format!("^(?:{expression})"))
                        .map(Matcher::Regex)
                        .map_err(|e| error(format!("bad regular expression `{body}`: {e}")))?
                } else if body.contains(['*', '?', '[']) {
                    Glob::new(body)
                        .map(|g| Matcher::Glob(g.compile_matcher()))
                        .map_err(|e| error(format!("bad glob `{body}`: {e}")))?
                } else {
                    Matcher::Name(body.to_string())
                };
                Ok(Term {
                    op,
                    text: word.to_string(),
                    matcher,
                })
            })
            .collect()
    }

    /// Words of a pattern: split on commas, or else on colons (Ansible's older
    /// separator), never inside `[..]`, and never inside an IPv6 address.
    fn split_pattern<'p>(&self, pattern: &'p str) -> Vec<&'p str> {
        let whole = pattern.trim();
        let separator = if pattern.contains(',') {
            ','
        } else if self.host(whole).is_some() || whole.parse::<Ipv6Addr>().is_ok() {
            return vec![whole];
        } else {
            ':'
        };
        let mut words = Vec::new();
        let (mut depth, mut start) = (0usize, 0);
        for (i, c) in pattern.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                c if c == separator && depth == 0 => {
                    words.push(&pattern[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        words.push(&pattern[start..]);
        words
            .into_iter()
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect()
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Include,
    Require,
    Exclude,
}

struct Term {
    op: Op,
    text: String,
    matcher: Matcher,
}

enum Matcher {
    Name(String),
    Glob(GlobMatcher),
    Regex(regex::Regex),
}

impl Term {
    fn matches(&self, host: &Host) -> bool {
        self.matcher.matches_host(&host.name)
            || host.groups.iter().any(|g| self.matcher.matches_group(g))
    }
}

impl Matcher {
    fn matches_host(&self, name: &str) -> bool {
        match self {
            Matcher::Name(n) => n == name,
            Matcher::Glob(glob) => glob.is_match(name),
            Matcher::Regex(re) => re.is_match(name),
        }
    }

    /// Globs and expressions skip `all` and `ungrouped`, which would make `a*` or `~u`
    /// match every host; named, they work like any group.
    fn matches_group(&self, group: &str) -> bool {
        match self {
            Matcher::Name(n) => n == group,
            _ => !BUILT_IN_GROUPS.contains(&group) && self.matches_host(group),
        }
    }
}

struct Setting<'a> {
    name: &'a str,
    value: Value,
    node: Option<&'a Node>,
}

impl Setting<'_> {
    fn invalid(&self, host: &Host, expected: &str, help: &str) -> InputError {
        let message = format!(
            "`{}` of host `{}` must be {expected}, found {}",
            self.name, host.name, self.value
        );
        match self.node {
            Some(node) => node.error(message),
            None => InputError::new(message),
        }
        .help(help)
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Numbers may be written as strings (`"22"`), as Ansible allows.
fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The booleans Ansible accepts, since YAML 1.2 reads `yes` as a string.
fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => Some(true),
            "no" | "false" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn expand_home(path: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home,
        (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(path),
    }
}

/// The entries of a mapping with string keys (nothing counts as empty), with errors
/// that say what the mapping is for.
fn entries<'a>(
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
fn merge_vars(vars: &mut Vars, node: &Node, expected: &str) -> InputResult<()> {
    for (name, _, value) in entries(node, expected, VARS_HELP, "a variable name")? {
        match vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => vars.push((name.to_string(), value.clone())),
        }
    }
    Ok(())
}

fn read_source(path: &Path, help: &str) -> InputResult<Arc<SourceFile>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("cannot read {}: {e}", path.display())).help(help))?;
    Ok(SourceFile::new(path.display().to_string(), text))
}

/// `DIR/NAME`, `DIR/NAME.yml`, `.yaml` or `.json`, the first that exists, as Ansible
/// looks for them; a directory `DIR/NAME/` contributes its files in name order.
fn read_vars_files(dir: &Path, name: &str) -> InputResult<Vars> {
    let mut vars = Vars::new();
    if !dir.is_dir() {
        return Ok(vars);
    }
    let Some(found) = ["", ".yml", ".yaml", ".json"]
        .iter()
        .map(|ext| dir.join(format!("{name}{ext}")))
        .find(|path| path.exists())
    else {
        return Ok(vars);
    };
    let mut files = Vec::new();
    if found.is_dir() {
        vars_dir_files(&found, &mut files)?;
    } else {
        files.push(found);
    }
    for path in files {
        let file = read_source(&path, "check the file's permissions")?;
        if file.text.starts_with("$ANSIBLE_VAULT") {
            let span = Span {
                file: file.clone(),
                offset: 0,
                len: "$ANSIBLE_VAULT".len(),
            };
            return Err(span
                .error("this file is encrypted with Ansible Vault, which converge cannot read")
                .help("decrypt it with `ansible-vault decrypt`, or keep secrets out of it"));
        }
        let root = node::parse(&file)?;
        merge_vars(
            &mut vars,
            &root,
            "a vars file must be a mapping of variable names",
        )?;
    }
    Ok(vars)
}

fn vars_dir_files(dir: &Path, files: &mut Vec<PathBuf>) -> InputResult<()> {
    let unreadable = |e: std::io::Error| {
        InputError::new(format!("cannot read {}: {e}", dir.display()))
            .help("check the directory's permissions")
    };
    let mut paths = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .is_none_or(|n| n.to_string_lossy().starts_with('.'));
        let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
        if hidden {
            continue;
        }
        if path.is_dir() {
            vars_dir_files(&path, files)?;
        } else if ext.is_none_or(|e| ["yml", "yaml", "json"].contains(&e.as_str())) {
            files.push(path);
        }
    }
    Ok(())
}

/// Pattern characters and spaces would make a name impossible to select.
fn check_name(kind: &str, name: &str, key: &Node) -> InputResult<()> {
    if name.is_empty() {
        return Err(key
            .error(format!("a {kind} name cannot be empty"))
            .help("give it a name"));
    }
    if kind == "host" && name.parse::<Ipv6Addr>().is_ok() {
        return Ok(());
    }
    if kind == "host" && name.contains(':') {
        return Err(key.error(format!("host name `{name}` contains `:`")).help(
            "a port cannot be written in the host name: write `web1: { ansible_port: 2222 }`",
        ));
    }
    let bad = name
        .chars()
        .find(|c| c.is_whitespace() || ",:!&*?[]~".contains(*c));
    match bad {
        Some(c) => Err(key
            .error(format!("{kind} name `{name}` contains `{c}`"))
            .help(format!(
                "host patterns give `,` `:` `!` `&` `*` `?` `[` `]` `~` and spaces a meaning, \
                 so a {kind} name cannot contain them"
            ))),
        None => Ok(()),
    }
}

/// Expand Ansible's host ranges: `web[1:3]` is web1, web2 and web3.
fn expand_range(name: &str, key: &Node) -> InputResult<Vec<String>> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_string()]);
    };
    let bad = |why: &str| {
        key.error(format!("bad host range in `{name}`: {why}"))
            .help(RANGE_HELP)
    };
    let close = open + name[open..].find(']').ok_or_else(|| bad("missing `]`"))?;
    let (head, range, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let parts: Vec<&str> = range.split(':').collect();
    let (start, end, step) = match parts[..] {
        [start, end] => (start, end, "1"),
        [start, end, step] => (start, end, step),
        _ => return Err(bad("expected `[START:END]` or `[START:END:STEP]`")),
    };
    let step: usize = step
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| bad("the step must be a number above 0"))?;
    let letter = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .filter(|c| c.is_ascii_alphabetic() && chars.next().is_none())
    };
    let items: Vec<String> = match (letter(start), letter(end)) {
        (Some(first), Some(last)) if first <= last => {
            (first..=last).step_by(step).map(String::from).collect()
        }
        (Some(_), Some(_)) => return Err(bad("the range ends before it starts")),
        _ => {
            let first: u64 = if start.is_empty() {
                0
            } else {
                start
                    .parse()
                    .map_err(|_| bad("expected numbers or single letters"))?
            };
            let last: u64 = end
                .parse()
                .map_err(|_| bad("expected numbers or single letters"))?;
            if first > last {
                return Err(bad("the range ends before it starts"));
            }
            let width = if start.len() > 1 && start.starts_with('0') {
                if start.len() != end.len() {
                    return Err(bad("with leading zeros, start and end need as many digits"));
                }
                start.len()
            } else {
                0
            };
            (first..=last)
                .step_by(step)
                .map(|i| format!("{i:0width$}"))
                .collect()
        }
    };
    let tails = expand_range(tail, key)?;
    Ok(items
        .iter()
        .flat_map(|item| tails.iter().map(move |t| format!("{head}{item}{t}")))
        .collect())
}

struct Builder {
    hosts: Vec<Host>,
    host_index: HashMap<String, usize>,
    groups: IndexMap<String, Group>,
}

impl Builder {
    fn new() -> Builder {
        let mut groups = IndexMap::new();
        groups.insert("all".to_string(), Group::new(None));
        Builder {
            hosts: Vec::new(),
            host_index: HashMap::new(),
            groups,
        }
    }

    fn group(&mut self, name: &str, key: &Node) -> InputResult<usize> {
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

    fn add_child(&mut self, parent: usize, child: usize, key: &Node) {
        let children = &mut self.groups[parent].children;
        if !children.iter().any(|(c, _)| *c == child) {
            children.push((child, key.span.clone()));
        }
    }

    fn group_body(&mut self, group: usize, body: &Node) -> InputResult<()> {
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
                        self.add_child(group, child_group, child_key);
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
            for name in expand_range(written, key)? {
                check_name("host", &name, key)?;
                let index = *self.host_index.entry(name.clone()).or_insert_with(|| {
                    self.hosts.push(Host {
                        name: name.clone(),
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
                let expected = format!("host `{name}` must be a mapping of its variables");
                merge_vars(&mut self.hosts[index].vars, vars, &expected)?;
            }
        }
        Ok(())
    }

    fn finish(mut self, path: PathBuf) -> InputResult<Inventory> {
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
        for host in &mut self.hosts {
            host.groups.sort_by(|a, b| {
                (self.groups[a.as_str()].depth, a).cmp(&(self.groups[b.as_str()].depth, b))
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    OnPath,
    Done,
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn flat(inventory: &Inventory, host: &str) -> Value {
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
                "all:\n  hosts: { 'web1:22': }\n",
                "inv.yml:2:12: host name `web1:22` contains `:`",
            ),
            ("web*: {}\n", "inv.yml:1:1: group name `web*` contains `*`"),
            (
                "[web]\nweb1\n",
                "inv.yml:1:1: this looks like an INI inventory",
            ),
            (
                "web1 ansible_host=10.0.0.1\n",
                "inv.yml:1:1: this looks like an INI inventory",
            ),
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
        let err = parse(
            "a:\n  children:\n    b:\n      children:\n        c:\n          children: { a: }\n",
        )
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
          vars: { c: inv-web, d: inv-web }
          hosts:
            web1: { d: inv-host, e: inv-host }
",
        );
        write(root, "group_vars/all.yml", "a: file-all\nb: file-all\n");
        write(root, "group_vars/prod.yaml", "b: file-prod\n");
        write(
            root,
            "group_vars/web/10-main.yml",
            "c: file-web\nf: first\n",
        );
        write(root, "group_vars/web/20-more.yml", "f: second\n");
        write(root, "group_vars/web/notes.txt", "not: read\n");
        write(root, "host_vars/web1.yml", "e: file-host\n");
        write(root, "host_vars/ghost.yml", "- not even a mapping\n");
        let inventory = Inventory::load(&root.join("inventory.yml")).unwrap();
        let vars = flat(&inventory, "web1");
        // all.yml over all's inventory vars; a child group (even from the inventory)
        // over a parent's file; the host over groups; host_vars over the host's entry.
        assert_eq!(vars["a"], "file-all");
        assert_eq!(vars["b"], "file-prod");
        assert_eq!(vars["c"], "file-web");
        assert_eq!(vars["d"], "inv-host");
        assert_eq!(vars["e"], "file-host");
        assert_eq!(vars["f"], "second");
        assert!(vars.get("not").is_none());
        let host = inventory.host("web1").unwrap();
        let layers = inventory.var_layers(host);
        let e = &layers.last().unwrap()[0].1;
        assert!(
            e.span.position().ends_with("host_vars/web1.yml:1:4"),
            "{}",
            e.span.position()
        );
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
        let inventory = parse(
            "all:\n  vars: { base: 198.51.100 }\n  hosts:\n    web1: { host: '{{base}}.7' }\n",
        )
        .unwrap();
        let (web1, _) = connection(&inventory, "web1").unwrap();
        assert_eq!(web1.address.as_deref(), Some("198.51.100.7"));
    }
}
