//! Host and group names: what they may contain, and host ranges (`web[1:3]`).

use crate::error::{InputResult, Span};
use crate::node::{Kind, Node};
use regex::Regex;
use std::net::Ipv6Addr;
use std::ops::Range;
use std::sync::LazyLock;

const RANGE_HELP: &str = "a host range is `[START:END]` or `[START:END:STEP]`, numbers or \
     single letters: `web[1:3]`, `db-[a:c]`, `node[01:10:2]`";

/// Pattern characters and spaces would make a name impossible to select.
pub(super) fn check_name(kind: &str, name: &str, key: &Node) -> InputResult<()> {
    if name.is_empty() {
        return Err(key
            .error(format!("a {kind} name cannot be empty"))
            .help("give it a name"));
    }
    if kind == "host" && name.parse::<Ipv6Addr>().is_ok() {
        return Ok(());
    }
    if kind == "host" && name.contains(':') {
        return Err(key
            .error(format!("host name `{name}` contains `:`"))
            .help("a port goes after the host as digits, `web1:2222`, or in `ansible_port`"));
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

/// A port after a host: `[::1]:22`, or `db[1:3]:2222` (brackets there are ranges).
static HOST_PORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\[(?P<bracketed>.+)\]|(?P<host>(?:[^:\[\]]|\[[^\]]*\])*)):(?P<port>[0-9]+)$")
        .expect("the host and port pattern is valid")
});

/// Where the host and the port are in `web1:2222`, `db[1:3]:2222` or `[::1]:22`, the
/// ways Ansible lets a port follow a host in both inventory formats.
pub(super) fn split_port(name: &str) -> Option<(Range<usize>, Range<usize>)> {
    let found = HOST_PORT.captures(name)?;
    let host = found.name("bracketed").or_else(|| found.name("host"))?;
    Some((host.range(), found.name("port")?.range()))
}

/// The `ansible_port` a port after a host sets.
pub(super) fn port_node(port: &str, span: Span) -> Node {
    let kind = port
        .parse()
        .map_or_else(|_| Kind::Str(port.to_string()), Kind::Int);
    Node {
        kind,
        span,
        vaulted: false,
    }
}

/// Expand Ansible's host ranges: `web[1:3]` is web1, web2 and web3.
pub(super) fn expand_range(name: &str, key: &Node) -> InputResult<Vec<String>> {
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
