//! Ansible's INI inventory format, read as its `ini` inventory plugin reads it:
//! `[group]` lists hosts (`web[01:20]`, `db1:2222`, then `name=value` variables),
//! `[group:vars]` sets the group's variables, `[group:children]` names its child groups,
//! and hosts before any header go to `ungrouped`. Values are typed as Python literals
//! in both kinds of line (see python_literal.rs); Ansible's documentation says `:vars`
//! values stay strings, but ansible-core 2.19 types them too, and we follow the code.

use super::build::{Builder, set_var};
use super::names::{port_node, split_port};
use super::python_literal::{Located, typed};
use super::{ALL, BUILT_IN_GROUPS, Inventory, Vars};
use crate::error::{InputError, InputResult, SourceFile, Span};
use crate::node::Kind;
use regex::{Captures, Regex};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

const SECTION_HELP: &str = "a section header is `[GROUP]` for its hosts, `[GROUP:vars]` for \
     its variables or `[GROUP:children]` for its child groups; a group name has no spaces, \
     `:` or `]`";
const HOST_LINE_HELP: &str = "a host line is the host, then its variables as `name=value`: \
     `web1 ansible_host=198.51.100.10 http_port=8080`; quote a value with spaces \
     (`motd=\"hello world\"`); a comment starts with `#`";

/// `[name]` or `[name:kind]`, then perhaps a comment.
static SECTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$").expect("the section pattern is valid")
});
static GROUP_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([^:\]\s]+)\s*(?:#.*)?$").expect("the group name pattern is valid")
});

/// Whether a file's first line that is not blank or a comment is an INI section header
/// (YAML would read `[web]` as a list).
pub(super) fn starts_with_section(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with(['#', ';']))
        .is_some_and(|line| SECTION.is_match(line))
}

pub(super) fn parse(file: &Arc<SourceFile>) -> InputResult<Inventory> {
    let mut reader = Reader {
        builder: Builder::new(),
        section: Section::Hosts(ALL),
        defined: HashSet::new(),
        mentions: Vec::new(),
    };
    let mut offset = 0;
    for raw in file.text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let content = raw.trim_end_matches(['\n', '\r']);
        let line = content.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        reader.line(&Located::verbatim(file, start + indent, line))?;
    }
    reader.finish(PathBuf::from(&file.name))
}

#[derive(Clone, Copy)]
enum Section {
    Hosts(usize),
    Vars(usize),
    Children(usize),
}

/// How a group was named before it was defined: Ansible wants every group defined by
/// a `[group]` or `[group:children]` section somewhere in the file.
enum Mention {
    Vars,
    Child { parent: String },
}

struct Reader {
    builder: Builder,
    section: Section,
    /// Groups defined by a `[group]` or `[group:children]` section.
    defined: HashSet<usize>,
    /// The first mention of each group, to report those never defined.
    mentions: Vec<(usize, Span, Mention)>,
}

impl Reader {
    fn line(&mut self, line: &Located) -> InputResult<()> {
        if let Some(found) = SECTION.captures(&line.text) {
            self.section = self.section(line, &found)?;
            return Ok(());
        }
        if line.text.starts_with('[') && line.text.ends_with(']') {
            return Err(line
                .span()
                .error(format!("invalid section header `{}`", line.text))
                .help(SECTION_HELP));
        }
        match self.section {
            Section::Hosts(group) => self.host_line(group, line),
            Section::Vars(group) => self.var_line(group, line),
            Section::Children(group) => self.child_line(group, line),
        }
    }

    /// `[name]`, `[name:hosts]`, `[name:vars]` or `[name:children]`.
    fn section(&mut self, line: &Located, found: &Captures) -> InputResult<Section> {
        let name = found.get(1).map_or("", |m| m.as_str());
        let at = found.get(1).map_or(0..0, |m| m.range());
        let node = line
            .slice(at.start, at.end)
            .node(Kind::Str(name.to_string()));
        let group = match name {
            "all" => ALL,
            _ => self.builder.group(name, &node)?,
        };
        Ok(match found.get(2).map(|m| (m.as_str(), m.range())) {
            None | Some(("hosts", _)) => self.define(group, Section::Hosts(group)),
            Some(("children", _)) => self.define(group, Section::Children(group)),
            Some(("vars", _)) => {
                self.mention(group, &node.span, Mention::Vars);
                Section::Vars(group)
            }
            Some((kind, range)) => {
                return Err(line
                    .span_of(range.start, range.end)
                    .error(format!(
                        "unknown section type `{kind}` in `[{name}:{kind}]`"
                    ))
                    .help(SECTION_HELP));
            }
        })
    }

    fn define(&mut self, group: usize, section: Section) -> Section {
        self.defined.insert(group);
        section
    }

    fn mention(&mut self, group: usize, at: &Span, how: Mention) {
        if !self.mentions.iter().any(|(g, _, _)| *g == group) {
            self.mentions.push((group, at.clone(), how));
        }
    }

    fn group_name(&self, group: usize) -> &str {
        self.builder.groups.get_index(group).map_or("", |(n, _)| n)
    }

    /// `web[01:03]:2222 name=value ...`, split as a shell would (Python's shlex).
    fn host_line(&mut self, group: usize, line: &Located) -> InputResult<()> {
        let words = shell_words(line).map_err(|why| {
            line.span()
                .error(format!("cannot read this host line: {why}"))
                .help(HOST_LINE_HELP)
        })?;
        let Some((pattern, assignments)) = words.split_first() else {
            return Ok(());
        };
        let (name, port) = match split_port(&pattern.text) {
            Some((host, port)) => (
                pattern.slice(host.start, host.end),
                Some(pattern.slice(port.start, port.end)),
            ),
            None => (pattern.clone(), None),
        };
        let key = name.node(Kind::Str(name.text.clone()));
        let port = port.map(|port| port_node(&port.text, port.span()));
        let mut vars = Vars::new();
        for word in assignments {
            let Some(eq) = word.text.find('=').filter(|eq| *eq > 0) else {
                return Err(word
                    .span()
                    .error(format!(
                        "expected `name=value` after host `{}`, found `{}`",
                        name.text, word.text
                    ))
                    .help(HOST_LINE_HELP));
            };
            let value = typed(&word.slice(eq + 1, word.text.len()));
            set_var(&mut vars, &word.text[..eq], value);
        }
        for index in self
            .builder
            .add_hosts(group, &name.text, &key, port.as_ref())?
        {
            for (name, value) in &vars {
                set_var(&mut self.builder.hosts[index].vars, name, value.clone());
            }
        }
        Ok(())
    }

    /// `name = value`: the value is everything after the first `=`, comments included.
    fn var_line(&mut self, group: usize, line: &Located) -> InputResult<()> {
        let text = &line.text;
        let Some(eq) = text.find('=').filter(|eq| !text[..*eq].trim().is_empty()) else {
            return Err(line
                .span()
                .error(format!(
                    "expected `name=value` in `[{}:vars]`, found `{text}`",
                    self.group_name(group)
                ))
                .help("each line of a `:vars` section sets one variable: `http_port=8080`"));
        };
        let start = eq + 1 + (text[eq + 1..].len() - text[eq + 1..].trim_start().len());
        let value = typed(&line.slice(start, text.len()));
        set_var(
            &mut self.builder.groups[group].vars,
            text[..eq].trim(),
            value,
        );
        Ok(())
    }

    fn child_line(&mut self, parent: usize, line: &Located) -> InputResult<()> {
        let parent_name = self.group_name(parent).to_string();
        let Some(at) = GROUP_NAME
            .captures(&line.text)
            .and_then(|found| found.get(1))
            .map(|m| m.range())
        else {
            return Err(line
                .span()
                .error(format!(
                    "expected a group name in `[{parent_name}:children]`, found `{}`",
                    line.text
                ))
                .help("each line of a `:children` section names one child group, without spaces"));
        };
        let name = &line.text[at.clone()];
        let node = line
            .slice(at.start, at.end)
            .node(Kind::Str(name.to_string()));
        let child = self.builder.group(name, &node)?;
        self.builder.add_child(parent, child, &node.span);
        self.mention(
            child,
            &node.span,
            Mention::Child {
                parent: parent_name,
            },
        );
        Ok(())
    }

    fn finish(mut self, path: PathBuf) -> InputResult<Inventory> {
        let errors = self
            .mentions
            .iter()
            .filter(|(group, _, _)| {
                !self.defined.contains(group) && !BUILT_IN_GROUPS.contains(&self.group_name(*group))
            })
            .map(|(group, at, how)| undefined_group(self.group_name(*group), at, how))
            .collect();
        if let Some(error) = InputError::combine(errors) {
            return Err(error);
        }
        // Ansible makes every group without a parent a child of `all`. Groups that are
        // only each other's children are a cycle, which `finish` reports once they hang
        // from `all` too.
        let mut has_parent = vec![false; self.builder.groups.len()];
        for group in self.builder.groups.values() {
            for (child, _) in &group.children {
                has_parent[*child] = true;
            }
        }
        let orphans = (1..has_parent.len()).filter(|g| !has_parent[*g]);
        let unreachable = |builder: &Builder| {
            let mut seen = vec![false; builder.groups.len()];
            let mut stack = vec![ALL];
            while let Some(group) = stack.pop() {
                if !std::mem::replace(&mut seen[group], true) {
                    stack.extend(builder.groups[group].children.iter().map(|(c, _)| *c));
                }
            }
            (0..seen.len()).filter(|g| !seen[*g]).collect::<Vec<_>>()
        };
        for group in orphans.collect::<Vec<_>>() {
            self.adopt(group);
        }
        for group in unreachable(&self.builder) {
            self.adopt(group);
        }
        self.builder.finish(path)
    }

    fn adopt(&mut self, group: usize) {
        if let Some(span) = self.builder.groups[group].span.clone() {
            self.builder.add_child(ALL, group, &span);
        }
    }
}

fn undefined_group(name: &str, at: &Span, how: &Mention) -> InputError {
    let message = match how {
        Mention::Vars => {
            format!("`[{name}:vars]` sets variables of group `{name}`, which is not defined")
        }
        Mention::Child { parent } => {
            format!("`[{parent}:children]` names group `{name}`, which is not defined")
        }
    };
    at.error(message).help(format!(
        "define it with a `[{name}]` section listing its hosts (it may be empty) or a \
         `[{name}:children]` section; Ansible refuses this inventory too"
    ))
}

/// Words as Python's `shlex.split(line, comments=True)` makes them, which is how
/// Ansible splits a host line: quotes group and vanish, `\` escapes, and `#` ends the
/// line even inside a word. Each word remembers where its bytes were written.
fn shell_words(line: &Located) -> Result<Vec<Located>, &'static str> {
    let mut words = Vec::new();
    let mut word: Option<(String, Vec<usize>)> = None;
    let mut chars = line.text.char_indices();
    let finish = |word: &mut Option<(String, Vec<usize>)>, words: &mut Vec<Located>, end| {
        if let Some((text, mut origin)) = word.take() {
            origin.push(end);
            words.push(Located {
                text,
                origin,
                file: line.file.clone(),
            });
        }
    };
    let push = |word: &mut Option<(String, Vec<usize>)>, c: char, at: usize| {
        let (text, origin) = word.get_or_insert_default();
        text.push(c);
        origin.extend((0..c.len_utf8()).map(|k| line.origin[at + k]));
    };
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => finish(&mut word, &mut words, line.origin[i]),
            '#' => break,
            '\\' => {
                let (at, next) = chars.next().ok_or("a `\\` at the end of the line")?;
                push(&mut word, next, at);
            }
            '\'' | '"' => {
                word.get_or_insert_default();
                loop {
                    let (at, next) = chars.next().ok_or("a quote is not closed")?;
                    match next {
                        _ if next == c => break,
                        '\\' if c == '"' => {
                            let (at2, escaped) = chars.next().ok_or("a quote is not closed")?;
                            if escaped != '\\' && escaped != '"' {
                                push(&mut word, '\\', at);
                            }
                            push(&mut word, escaped, at2);
                        }
                        _ => push(&mut word, next, at),
                    }
                }
            }
            _ => push(&mut word, c, i),
        }
    }
    let end = line.origin[line.text.len()];
    finish(&mut word, &mut words, end);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::tests::flat as vars;
    use serde_json::json;

    fn parse_ini(text: &str) -> InputResult<Inventory> {
        Inventory::parse(&SourceFile::new("hosts", text))
    }

    fn error(text: &str) -> String {
        let err = parse_ini(text).unwrap_err();
        assert!(err.help.is_some(), "{text:?}: no help");
        err.message
    }

    const SITE: &str = "\
# loose hosts are ungrouped
bastion ansible_host=198.51.100.1

[web]
web[01:03] http_port=8080 motd=\"hello world\" weight=1.5
db-[a:b]:2222   ; spaces and a comment make no host

[db]
db-[a:b]:2222 role='primary' # db-a and db-b
db-c ansible_port=2200 tags=\"['x', 'y']\"

[prod:children]
web
db

[prod:vars]
env=production
replicas=3
flag=True
greeting = hello ; not a comment
";

    #[test]
    fn groups_hosts_and_typed_values_as_ansible_reads_them() {
        let site = SITE.replace("db-[a:b]:2222   ; spaces and a comment make no host\n", "");
        let inventory = parse_ini(&site).unwrap();
        let names: Vec<&str> = inventory.hosts().iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["bastion", "web01", "web02", "web03", "db-a", "db-b", "db-c"]
        );
        assert_eq!(
            inventory.host("bastion").unwrap().groups,
            ["all", "ungrouped"]
        );
        assert_eq!(
            inventory.host("web01").unwrap().groups,
            ["all", "prod", "web"]
        );
        assert_eq!(
            vars(&inventory, "web02"),
            json!({
                "env": "production", "replicas": 3, "flag": true,
                "greeting": "hello ; not a comment",
                "http_port": 8080, "motd": "hello world", "weight": 1.5,
            })
        );
        assert_eq!(vars(&inventory, "db-a")["ansible_port"], 2222);
        assert_eq!(vars(&inventory, "db-a")["role"], "primary");
        assert_eq!(vars(&inventory, "db-c")["ansible_port"], 2200);
        assert_eq!(vars(&inventory, "db-c")["tags"], json!(["x", "y"]));
        assert_eq!(vars(&inventory, "bastion")["ansible_host"], "198.51.100.1");
    }

    #[test]
    fn values_point_at_their_text() {
        let inventory = parse_ini(SITE.split("db-[a:b]:2222   ;").next().unwrap()).unwrap();
        let web = inventory.host("web01").unwrap();
        assert_eq!(web.span.position(), "hosts:5:1");
        let (_, motd) = inventory.winning_definition(web, "motd").unwrap();
        assert_eq!(motd.span.position(), "hosts:5:33");
        assert_eq!(motd.span.len, "hello world".len());
    }

    #[test]
    fn a_port_counts_where_the_host_is_first_listed() {
        let inventory =
            parse_ini("[a]\nh1:2201\n[b]\nh1:2202\n[v6]\n[2001:db8::1]:2203\n2001:db8::2\n")
                .unwrap();
        assert_eq!(vars(&inventory, "h1")["ansible_port"], 2201);
        assert_eq!(vars(&inventory, "2001:db8::1")["ansible_port"], 2203);
        assert!(inventory.host("2001:db8::2").is_some());
    }

    #[test]
    fn groups_may_be_defined_after_they_are_named_and_parentless_ones_join_all() {
        let inventory = parse_ini(
            "[all:vars]\na=1\n[top:children]\nmid\n[mid:children]\nleaf\n[leaf]\nh1\n[other]\n[ungrouped]\nh2\n",
        )
        .unwrap();
        assert_eq!(
            inventory.host("h1").unwrap().groups,
            ["all", "top", "mid", "leaf"]
        );
        assert_eq!(inventory.host("h2").unwrap().groups, ["all", "ungrouped"]);
        assert_eq!(vars(&inventory, "h2")["a"], 1);
    }

    #[test]
    fn shell_quoting_and_comments_in_host_lines() {
        let inventory =
            parse_ini("h1 a=\"1\" b='x y' c=x#y d=e\\ f g=\"q\\\"q\" h=\"a\\b\" i= j=\"'s'\"\n")
                .unwrap();
        assert_eq!(
            vars(&inventory, "h1"),
            json!({ "a": 1, "b": "x y", "c": "x" })
        );
        let inventory =
            parse_ini("h1 d=e\\ f g=\"q\\\"q\" h=\"a\\b\" i= j=\"'s'\" k=\"[1, 2]\"\n").unwrap();
        assert_eq!(
            vars(&inventory, "h1"),
            json!({ "d": "e f", "g": "q\"q", "h": "a\\b", "i": "", "j": "s", "k": [1, 2] })
        );
    }

    #[test]
    fn what_ansible_refuses_is_a_located_error() {
        let cases = [
            (
                "[a:children]\nb\n",
                "hosts:2:1: `[a:children]` names group `b`, which is not defined",
            ),
            (
                "[a:vars]\nx=1\n",
                "hosts:1:2: `[a:vars]` sets variables of group `a`, which is not defined",
            ),
            (
                "[a]\n[a:foo]\n",
                "hosts:2:4: unknown section type `foo` in `[a:foo]`",
            ),
            ("[a b]\n", "hosts:1:1: invalid section header `[a b]`"),
            (
                "[a]\nh1 x=1 ; c\n",
                "hosts:2:8: expected `name=value` after host `h1`, found `;`",
            ),
            (
                "[a]\nh1 =1\n",
                "hosts:2:4: expected `name=value` after host `h1`",
            ),
            (
                "[a]\nh1 x='open\n",
                "hosts:2:1: cannot read this host line: a quote is not closed",
            ),
            (
                "[a]\n[a:vars]\nnovalue\n",
                "hosts:3:1: expected `name=value` in `[a:vars]`",
            ),
            (
                "[a:children]\nb c\n",
                "hosts:2:1: expected a group name in `[a:children]`",
            ),
            ("[a:children]\nall\n", "hosts:2:1: `all` cannot be a child"),
            ("[a]\nweb1:\n", "hosts:2:1: host name `web1:` contains `:`"),
            ("[a]\nweb[3:1]\n", "hosts:2:1: bad host range in `web[3:1]`"),
            (
                "[a]\nh1\n[a:children]\na\n",
                "hosts:4:1: group `a` contains itself: a -> a",
            ),
        ];
        for (text, expected) in cases {
            let message = error(text);
            assert!(message.starts_with(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn undefined_groups_are_all_reported() {
        let err = parse_ini("[a:children]\nb\nc\n[d:vars]\nx=1\n").unwrap_err();
        let positions: Vec<&str> = [&err]
            .into_iter()
            .chain(&err.related)
            .map(|e| e.message.split(": ").next().unwrap())
            .collect();
        assert_eq!(positions, ["hosts:2:1", "hosts:3:1", "hosts:4:2"]);
    }

    #[test]
    fn the_format_is_told_from_the_text_and_the_name() {
        let ini = |name: &str, text: &str| Inventory::parse(&SourceFile::new(name, text));
        // A section header, or text YAML reads as no mapping, is INI.
        assert!(
            ini("inventory.yml", "[web]\nweb1\n")
                .unwrap()
                .host("web1")
                .is_some()
        );
        assert!(
            ini("hosts", "web1\nweb2 port=22\n")
                .unwrap()
                .host("web2")
                .is_some()
        );
        assert!(ini("hosts.ini", "web1:\n").is_err());
        assert!(
            ini("hosts", "all:\n  hosts: { web1: }\n")
                .unwrap()
                .host("web1")
                .is_some()
        );
        // A file named YAML keeps YAML's errors.
        let err = ini("inventory.yml", "web1 a=1\n").unwrap_err();
        assert!(
            err.message.contains("an inventory must be a mapping"),
            "{}",
            err.message
        );
    }
}
