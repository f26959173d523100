//! Host patterns, as Ansible reads them: `web,db`, `web*`, `~re`, `all,!web2`, `web,&prod`.

use super::{BUILT_IN_GROUPS, Host, Inventory, Selection};
use crate::error::{InputError, InputResult, Span};
use globset::Glob;
use globset::GlobMatcher;
use std::net::Ipv6Addr;

const PATTERN_HELP: &str = "a host pattern is host and group names separated by commas: \
     `*`, `?` and `[..]` are globs, `~` starts a regular expression, `!name` leaves out the \
     hosts of name and `&name` keeps only hosts that are also in name";

impl Inventory {
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
