//! `apt`: Debian packages installed, upgraded or removed, with one apt-get call for
//! the whole list.

use crate::error::InputResult;
use crate::module::{
    Action, Command, Diff, Failure, HostView, Module, Params, Plan, Probed, Resource, Resources,
    failed, one_or_many,
};
use crate::quote::quote_all;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::LazyLock;

pub struct Apt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AptParams {
    #[serde(deserialize_with = "one_or_many")]
    name: Vec<String>,
    #[serde(default)]
    state: State,
    #[serde(default)]
    update_cache: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    #[default]
    Present,
    Absent,
    Latest,
}

/// A Debian package name, optionally with an architecture (`libc6:amd64`). Also keeps
/// dpkg-query's glob patterns out of the names.
static PACKAGE_NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^[a-z0-9][a-z0-9+.\-]+(:[a-z0-9\-]+)?$").expect("static regex")
});

/// apt and dpkg wait this long for a lock held by another apt (unattended-upgrades).
const LOCK_TIMEOUT: &str = "-o DPkg::Lock::Timeout=300";

impl Module for Apt {
    fn name(&self) -> &'static str {
        "apt"
    }

    fn key_param(&self) -> Option<&'static str> {
        Some("name")
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let p: AptParams = params.parse()?;
        if p.name.is_empty() {
            return Err(params.error_at("name", "give at least one package"));
        }
        let mut names: Vec<String> = Vec::new();
        for name in p.name {
            if !PACKAGE_NAME.is_match(&name) {
                return Err(params
                    .error_at("name", format!("`{name}` is not a Debian package name"))
                    .help("lowercase letters, digits and `+.-`, optionally `:ARCH`; no versions or globs"));
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(vec![Box::new(AptAction {
            names,
            state: p.state,
            update_cache: p.update_cache,
        })])
    }
}

#[derive(Debug)]
struct AptAction {
    names: Vec<String>,
    state: State,
    update_cache: bool,
}

/// The name dpkg and apt-cache print for a package (without `:ARCH`).
fn base(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

/// Installed packages and their versions, from the `[dpkg]` section.
fn parse_dpkg(lines: &[&str]) -> HashMap<String, String> {
    lines
        .iter()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [pkg, _want, _flag, "installed", version] => {
                    Some((pkg.to_string(), version.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

/// Candidate versions from `apt-cache policy` (the `[policy]` section); None for a
/// package apt knows but cannot install, absent for one it does not know.
fn parse_policy(lines: &[&str]) -> HashMap<String, Option<String>> {
    let mut candidates = HashMap::new();
    let mut current: Option<String> = None;
    for line in lines {
        if !line.starts_with(' ') && line.ends_with(':') {
            current = Some(base(line.trim_end_matches(':')).to_string());
        } else if let (Some(pkg), Some(version)) =
            (&current, line.trim().strip_prefix("Candidate:"))
        {
            let version = version.trim();
            let version = (version != "(none)").then(|| version.to_string());
            candidates.insert(pkg.clone(), version);
        }
    }
    candidates
}

impl AptAction {
    fn distinct_bases(&self) -> usize {
        let mut bases: Vec<&str> = self.names.iter().map(|n| base(n)).collect();
        bases.sort_unstable();
        bases.dedup();
        bases.len()
    }

    fn install_script(&self, packages: &[&str]) -> String {
        let mut s = String::from("set -e\nexport DEBIAN_FRONTEND=noninteractive\n");
        if self.update_cache {
            s.push_str(&format!("apt-get -q {LOCK_TIMEOUT} update\n"));
        }
        s.push_str(&format!(
            "apt-get install -y -q --no-install-recommends {LOCK_TIMEOUT} \
             -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {}\n",
            quote_all(packages)
        ));
        s
    }

    fn remove_script(packages: &[&str]) -> String {
        format!(
            "set -e\nexport DEBIAN_FRONTEND=noninteractive\napt-get remove -y -q {LOCK_TIMEOUT} {}\n",
            quote_all(packages)
        )
    }

    fn no_candidate(&self, name: &str) -> Failure {
        let hint = if self.update_cache {
            ""
        } else {
            " (if the package lists are stale, set update_cache: true)"
        };
        Failure::new(format!("{name}: apt has no installation candidate{hint}"))
    }
}

impl Action for AptAction {
    fn resources(&self) -> Resources {
        let provides = if self.state == State::Absent {
            Vec::new()
        } else {
            self.names
                .iter()
                .map(|n| Resource::Package(base(n).to_string()))
                .collect()
        };
        Resources {
            provides,
            needs: Vec::new(),
        }
    }

    fn probe(&self) -> String {
        let pkgs = quote_all(&self.names);
        // apt-cache is only asked when its answer matters: always for `latest`, for
        // `present` only when something is missing (so a converged host pays nothing).
        let policy = format!("echo '[policy]'; LC_ALL=C apt-cache policy {pkgs} 2>/dev/null; ");
        let policy = match self.state {
            State::Absent => String::new(),
            State::Latest => policy,
            State::Present => format!(
                "if [ \"$(printf '%s\\n' \"$out\" | awk '$4 == \"installed\" {{ print $1 }}' | sort -u | wc -l)\" \
                 -lt {} ]; then {policy}fi; ",
                self.distinct_bases()
            ),
        };
        format!(
            "if command -v dpkg-query >/dev/null 2>&1; then \
             out=$(dpkg-query -W -f='${{Package}} ${{Status}} ${{Version}}\\n' {pkgs} 2>/dev/null); \
             echo '[dpkg]'; printf '%s\\n' \"$out\"; {policy}\
             else echo '[no-dpkg]'; fi\n"
        )
    }

    fn plan<'a>(&'a self, probed: &'a Probed, _: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let has = |section: &str| probed.stdout.lines().any(|l| l == section);
        if has("[no-dpkg]") || !has("[dpkg]") {
            return Err(Failure::new(
                "dpkg-query not found: apt works on Debian and Ubuntu hosts only",
            ));
        }
        let installed = parse_dpkg(&probed.section("dpkg"));
        let policy = has("[policy]").then(|| parse_policy(&probed.section("policy")));
        let (mut before, mut after) = (String::new(), String::new());
        let mut to_change: Vec<&str> = Vec::new();
        for name in &self.names {
            let current = installed.get(base(name));
            let line = |v: Option<&String>| match v {
                Some(v) => format!("{name}: installed ({v})\n"),
                None => format!("{name}: installed\n"),
            };
            let now = match current {
                Some(_) => line(current),
                None => format!("{name}: absent\n"),
            };
            let candidate = policy
                .as_ref()
                .map(|p| p.get(base(name)).cloned().flatten());
            let wanted = match (self.state, current) {
                (State::Absent, Some(_)) => Some(format!("{name}: absent\n")),
                (State::Present, None) | (State::Latest, None) => match candidate {
                    Some(None) if !self.update_cache => return Err(self.no_candidate(name)),
                    Some(Some(version)) => Some(line(Some(&version))),
                    _ => Some(line(None)),
                },
                (State::Latest, Some(version)) => match candidate {
                    Some(Some(newer)) if &newer != version => Some(line(Some(&newer))),
                    _ => None,
                },
                _ => None,
            };
            before.push_str(&now);
            match wanted {
                Some(w) => {
                    after.push_str(&w);
                    to_change.push(name);
                }
                None => after.push_str(&now),
            }
        }
        if to_change.is_empty() {
            return Ok(Plan::unchanged());
        }
        let (what, script) = if self.state == State::Absent {
            ("apt-get remove", Self::remove_script(&to_change))
        } else {
            ("apt-get install", self.install_script(&to_change))
        };
        let stale_lists_hint = !self.update_cache;
        let command = Command::new(what, script).judged_by(move |out| {
            if out.success() {
                return Ok(());
            }
            let message = failed(what, out);
            let unknown = message.contains("Unable to locate package")
                || message.contains("no installation candidate");
            Err(if unknown && stale_lists_hint {
                format!("{message}\n(if the package lists are stale, set update_cache: true)")
            } else {
                message
            })
        });
        let mut plan = Plan::unchanged();
        plan.change(
            Some(Diff::new("packages", Some(before), Some(after))),
            command,
        );
        Ok(plan)
    }
}

#[cfg(test)]
mod tests;
