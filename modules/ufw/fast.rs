//! Applying a ufw change without ufw's Python CLI, where the result is provably what
//! the CLI itself would leave: the same bytes in /etc/ufw/user.rules, user6.rules,
//! /etc/default/ufw and /etc/ufw/ufw.conf, loaded into the kernel by the same
//! `ip[6]tables-restore -n` ufw runs, or as ufw's shell init (`/lib/ufw/ufw-init`)
//! would load them, in one restore a family (`LOAD`; ufw-init itself where the host
//! is not a shape that reproduces).
//!
//! Starting ufw's Python costs ~0.25 s of host CPU per command, the largest part of a
//! first converge. What ufw writes is fixed by its code (backend_iptables.py
//! `_write_rules`, backend.py `set_default`), reproduced here for the rules a playbook
//! can hold, and only trusted when:
//! - the installed package is one whose output was compared byte for byte with this
//!   code ([`PROVEN`], by the hash of its `ufw.md5sums`: a distribution's patches change it);
//! - LOGLEVEL is `low` (the logging section this code writes), IPV6 is `yes` and the
//!   kernel has IPv6, /etc/default/ufw and ufw.conf are plain ASCII lines;
//! - every rule on the host and in the playbook has the playbook's shape (incoming,
//!   no interface, application, log option or source port);
//! - each rules file on the host is either the package's own or exactly what this code
//!   writes for the rules it holds (so a file written by another ufw, or edited, is not
//!   rewritten in a format ufw would not have used);
//! - the task does not disable ufw.
//!
//! Anything else runs the `ufw` commands. The kernel's support for `limit` (xt_recent),
//! which ufw tests before each write, and the log prefixes of after.rules, which `ufw
//! default` rewrites, are checked on the host in the same exec, with the commands as the
//! other branch.

use super::rules::{Family, Firewall, Policy, Rule};
use crate::module::files::{DesiredFile, Source, write_script};
use crate::quote::quote;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// Packages whose files this code reproduces, by the sha256 of
/// `/var/lib/dpkg/info/ufw.md5sums` (checked by `tests/it/e2e/ufw.rs` against the CLI).
const PROVEN: &[(&str, &str)] = &[(
    "ufw 0.36.2-1 (Debian 12)",
    "d2241b47b5d8b04c7606d3b177356d5aa809120f584d2000249a44ebd5479640",
)];

/// user.rules and user6.rules as the package installs them, before ufw rewrites them.
const PACKAGE_V4: &str = "*filter
:ufw-user-input - [0:0]
:ufw-user-output - [0:0]
:ufw-user-forward - [0:0]
:ufw-user-limit - [0:0]
:ufw-user-limit-accept - [0:0]
### RULES ###
-A ufw-user-limit -m limit --limit 3/minute -j LOG --log-prefix \"[UFW LIMIT BLOCK] \"
-A ufw-user-limit -j REJECT
-A ufw-user-limit-accept -j ACCEPT
COMMIT
";
const PACKAGE_V6: &str = "*filter
:ufw6-user-input - [0:0]
:ufw6-user-output - [0:0]
:ufw6-user-forward - [0:0]
### RULES ###
COMMIT
";

const INIT: &str = "/lib/ufw/ufw-init";
const USER_RULES: &str = "/etc/ufw/user.rules";
const USER6_RULES: &str = "/etc/ufw/user6.rules";
const DEFAULTS: &str = "/etc/default/ufw";
const CONF: &str = "/etc/ufw/ufw.conf";

/// ufw's files as the probe read them.
#[derive(Debug, Default, Clone)]
pub struct HostFiles {
    pub conf: Option<Vec<u8>>,
    pub defaults: Option<Vec<u8>>,
    pub rules4: Option<Vec<u8>>,
    pub rules6: Option<Vec<u8>>,
    /// `/var/lib/dpkg/info/ufw.md5sums`.
    pub package: Option<Vec<u8>>,
    /// `/proc/sys/net/ipv6` exists (ufw's `use_ipv6` asks that too).
    pub kernel_ipv6: bool,
}

/// `KEY=value` settings as ufw's `_get_defaults` reads them: lines matching
/// `^\w+="?\w+"?`, key lowercased, value lowercased without quotes; the last one wins.
pub fn settings(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let word = |s: &str| {
            s.char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
                .map_or(s.len(), |(i, _)| i)
        };
        let key_len = word(line);
        if key_len == 0 || !line[key_len..].starts_with('=') {
            continue;
        }
        let rest = &line[key_len + 1..];
        let rest_value = rest.strip_prefix('"').unwrap_or(rest);
        if word(rest_value) == 0 {
            continue;
        }
        // Python's re.split('=', line.strip())[1]: up to a second `=`.
        let value = line.trim().split('=').nth(1).unwrap_or_default();
        let value = value
            .to_lowercase()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_string();
        let key = line[..key_len].to_lowercase();
        out.retain(|(k, _)| *k != key);
        out.push((key, value));
    }
    out
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The default policies as /etc/default/ufw spells them (`ACCEPT`, `DROP`, `REJECT`),
/// for input, output and forward.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Policies {
    input: String,
    output: String,
    forward: String,
}

impl Policies {
    fn of(settings: &[(String, String)]) -> Option<Policies> {
        let get = |k: &str| {
            setting(settings, k)
                .map(str::to_uppercase)
                .filter(|p| matches!(p.as_str(), "ACCEPT" | "DROP" | "REJECT"))
        };
        Some(Policies {
            input: get("default_input_policy")?,
            output: get("default_output_policy")?,
            forward: get("default_forward_policy")?,
        })
    }
}

fn iptables_word(policy: Policy) -> &'static str {
    match policy {
        Policy::Allow => "ACCEPT",
        Policy::Deny => "DROP",
        Policy::Reject => "REJECT",
    }
}

/// A rule this code can write: the shape a playbook gives.
fn plain(rule: &Rule) -> bool {
    !rule.route
        && rule.log.is_empty()
        && rule.direction == "in"
        && rule.iface_in.is_empty()
        && rule.iface_out.is_empty()
        && rule.dapp.is_empty()
        && rule.sapp.is_empty()
        && rule.sport == "any"
        && rule.dst == "any"
        && matches!(rule.proto.as_str(), "tcp" | "udp" | "any")
        && matches!(rule.action.as_str(), "allow" | "deny" | "reject" | "limit")
        && (rule.proto != "any" || !rule.dport.contains([',', ':']))
        && (rule.dport != "any" || rule.src != "any")
}

fn prefix(family: Family) -> &'static str {
    match family {
        Family::V4 => "ufw",
        Family::V6 => "ufw6",
    }
}

fn anywhere(family: Family) -> &'static str {
    match family {
        Family::V4 => "0.0.0.0/0",
        Family::V6 => "::/0",
    }
}

/// The iptables lines of one rule: `UFWRule.format_rule`, then
/// `_get_rules_from_formatted` (proto any split into tcp and udp, limit in three rules).
fn rule_lines(rule: &Rule, family: Family) -> Vec<String> {
    let p = prefix(family);
    let multi = rule.dport.contains([',', ':']);
    let mut body = String::new();
    if rule.proto == "any" {
        body.push_str("-p all");
    } else {
        let _ = write!(body, "-p {}", rule.proto);
        if multi {
            let _ = write!(body, " -m multiport --dports {}", rule.dport);
        }
    }
    if !multi && rule.dport != "any" {
        let _ = write!(body, " --dport {}", rule.dport);
    }
    if rule.src != "any" {
        let _ = write!(body, " -s {}", rule.src);
    }
    let target = match rule.action.as_str() {
        "allow" => "ACCEPT",
        "reject" => "REJECT",
        "limit" => "LIMIT",
        _ => "DROP",
    };
    let _ = write!(body, " -j {target}");
    if target == "REJECT" && rule.proto == "tcp" {
        body.push_str(" --reject-with tcp-reset");
    }
    let mut snippets = Vec::new();
    match body.strip_prefix("-p all ") {
        Some(rest) if rule.dport != "any" => {
            let tcp = if target == "REJECT" {
                format!("-p tcp {rest} --reject-with tcp-reset")
            } else {
                format!("-p tcp {rest}")
            };
            snippets.push(tcp);
            snippets.push(format!("-p udp {rest}"));
        }
        Some(rest) => snippets.push(rest.to_string()),
        None => snippets.push(body),
    }
    let mut lines = Vec::new();
    for s in snippets {
        match s.strip_suffix(" -j LIMIT") {
            Some(m) => {
                lines.push(format!(
                    "-A {p}-user-input {m} -m conntrack --ctstate NEW -m recent --set"
                ));
                lines.push(format!(
                    "-A {p}-user-input {m} -m conntrack --ctstate NEW -m recent --update --seconds 30 --hitcount 6 -j {p}-user-limit"
                ));
                lines.push(format!("-A {p}-user-input {m} -j {p}-user-limit-accept"));
            }
            None => lines.push(format!("-A {p}-user-input {s}")),
        }
    }
    lines
}

/// user.rules or user6.rules as ufw 0.36's `_write_rules` writes them, at LOGLEVEL low,
/// with `limit` supported by the kernel.
fn render(rules: &[Rule], family: Family, policies: &Policies) -> String {
    let p = prefix(family);
    let any = anywhere(family);
    let mut s = String::from("*filter\n");
    for chain in [
        "user-input",
        "user-output",
        "user-forward",
        "before-logging-input",
        "before-logging-output",
        "before-logging-forward",
        "user-logging-input",
        "user-logging-output",
        "user-logging-forward",
        "after-logging-input",
        "after-logging-output",
        "after-logging-forward",
        "logging-deny",
        "logging-allow",
        "user-limit",
        "user-limit-accept",
    ] {
        let _ = writeln!(s, ":{p}-{chain} - [0:0]");
    }
    s.push_str("### RULES ###\n");
    for rule in rules {
        let or_any = |a: &str| {
            if a == "any" {
                any.to_string()
            } else {
                a.to_string()
            }
        };
        let _ = write!(
            s,
            "\n### tuple ### {} {} {} {} {} {} in",
            rule.action,
            rule.proto,
            rule.dport,
            or_any(&rule.dst),
            rule.sport,
            or_any(&rule.src)
        );
        if !rule.comment.is_empty() {
            let _ = write!(s, " comment={}", hex::encode(rule.comment.as_bytes()));
        }
        s.push('\n');
        for line in rule_lines(rule, family) {
            s.push_str(&line);
            s.push('\n');
        }
    }
    s.push_str("\n### END RULES ###\n\n### LOGGING ###\n");
    let limit = "-m limit --limit 3/min --limit-burst 10";
    for (direction, policy) in [
        ("input", &policies.input),
        ("output", &policies.output),
        ("forward", &policies.forward),
    ] {
        if policy != "ACCEPT" {
            let _ = writeln!(
                s,
                "-A {p}-after-logging-{direction} -j LOG --log-prefix \"[UFW BLOCK] \" {limit}"
            );
        }
    }
    let _ = writeln!(
        s,
        "-I {p}-logging-deny -m conntrack --ctstate INVALID -j RETURN {limit}"
    );
    let _ = writeln!(
        s,
        "-A {p}-logging-deny -j LOG --log-prefix \"[UFW BLOCK] \" {limit}"
    );
    let _ = writeln!(
        s,
        "-A {p}-logging-allow -j LOG --log-prefix \"[UFW ALLOW] \" {limit}"
    );
    s.push_str("### END LOGGING ###\n\n### RATE LIMITING ###\n");
    let _ = writeln!(
        s,
        "-A {p}-user-limit -m limit --limit 3/minute -j LOG --log-prefix \"[UFW LIMIT BLOCK] \""
    );
    let _ = writeln!(s, "-A {p}-user-limit -j REJECT");
    let _ = writeln!(s, "-A {p}-user-limit-accept -j ACCEPT");
    s.push_str("### END RATE LIMITING ###\nCOMMIT\n");
    s
}

/// backend.py `set_default`: every line starting `OPT=` replaced by `OPT=VALUE`, or the
/// line appended when there is none.
fn set_default(text: &str, opt: &str, value: &str) -> String {
    let mut out = String::new();
    let mut found = false;
    for line in text.split_inclusive('\n') {
        if line.starts_with(&format!("{opt}=")) {
            let _ = writeln!(out, "{opt}={value}");
            found = true;
        } else {
            out.push_str(line);
        }
    }
    if !found {
        let _ = writeln!(out, "{opt}={value}");
    }
    out
}

/// Text ufw reads and writes the same: ASCII (it writes with the `ascii` codec), and
/// without `\r` (it reads with universal newlines).
fn plain_text(bytes: &[u8]) -> Option<&str> {
    (bytes.is_ascii() && !bytes.contains(&b'\r'))
        .then(|| std::str::from_utf8(bytes).ok())
        .flatten()
}

/// One file the fast path writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub path: &'static str,
    pub content: String,
}

/// How the kernel is brought to the new files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// ufw is and stays disabled: nothing loaded.
    None,
    /// `ufw enable` from disabled: `ufw-init start`.
    Start,
    /// `ufw default` or `ufw reload` while enabled: `ufw-init force-stop`, then `start`.
    Restart,
    /// Rules changed while enabled: ufw's `_reload_user_rules`.
    UserRules,
}

/// The fast path for this change, or why it cannot be proven the same as the CLI's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fast {
    pub writes: Vec<Write>,
    pub load: Load,
    /// `ufw default` changes a policy: after.rules must hold no log prefix it rewrites.
    pub default_changed: bool,
    /// What `md5sum /lib/ufw/ufw-init /lib/ufw/ufw-init-functions` prints when they are
    /// the proven package's, from its record: `ufw_load` reproduces these scripts.
    pub init_sums: String,
}

pub fn plan(
    files: &HostFiles,
    current: &Firewall,
    after: &Firewall,
    commands: &[Vec<String>],
) -> Result<Fast, &'static str> {
    let package = files.package.as_deref().ok_or("no dpkg record of ufw")?;
    let hash = hex::encode(Sha256::digest(package));
    if !PROVEN.iter().any(|(_, h)| *h == hash) {
        return Err("a ufw package this code was not proven against");
    }
    let conf = files
        .conf
        .as_deref()
        .and_then(plain_text)
        .ok_or("ufw.conf is missing or not plain ASCII")?;
    let defaults = files
        .defaults
        .as_deref()
        .and_then(plain_text)
        .ok_or("/etc/default/ufw is missing or not plain ASCII")?;
    let mut all = settings(defaults);
    all.extend(settings(conf));
    if setting(&all, "loglevel") != Some("low") {
        return Err("LOGLEVEL is not low");
    }
    if setting(&all, "ipv6") != Some("yes") || !files.kernel_ipv6 {
        return Err("IPv6 is off");
    }
    let old = Policies::of(&all).ok_or("a default policy is missing")?;
    for fw in [current, after] {
        if !fw.v4.iter().chain(&fw.v6).all(plain) {
            return Err("a rule of a shape this code does not write");
        }
    }
    let rules_file = |family: Family| match family {
        Family::V4 => (&files.rules4, &current.v4, PACKAGE_V4, USER_RULES),
        Family::V6 => (&files.rules6, &current.v6, PACKAGE_V6, USER6_RULES),
    };
    for family in [Family::V4, Family::V6] {
        let (bytes, rules, package, _) = rules_file(family);
        let text = bytes.as_deref().unwrap_or_default();
        if text != package.as_bytes() && text != render(rules, family, &old).as_bytes() {
            return Err("a rules file not as this code writes it");
        }
    }
    let verb = |c: &Vec<String>| {
        c.first()
            .map(String::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if commands.iter().any(|c| verb(c) == "disable") {
        return Err("disabling");
    }
    let enabling = commands.iter().any(|c| verb(c) == "enable");
    let reload = commands.iter().any(|c| verb(c) == "reload");

    // /etc/default/ufw, one `ufw default` after the other.
    let mut new_defaults = defaults.to_string();
    let mut default_changed = false;
    for c in commands.iter().filter(|c| verb(c) == "default") {
        let chain = match c.get(2).map(String::as_str) {
            Some("incoming") => "INPUT",
            Some("outgoing") => "OUTPUT",
            _ => return Err("an unknown default"),
        };
        let policy = match c.get(1).map(String::as_str) {
            Some("allow") => Policy::Allow,
            Some("deny") => Policy::Deny,
            Some("reject") => Policy::Reject,
            _ => return Err("an unknown policy"),
        };
        new_defaults = set_default(
            &new_defaults,
            &format!("DEFAULT_{chain}_POLICY"),
            &format!("\"{}\"", iptables_word(policy)),
        );
        default_changed = true;
    }
    let mut new_all = settings(&new_defaults);
    new_all.extend(settings(conf));
    let new = Policies::of(&new_all).ok_or("a default policy is missing")?;

    // ufw.conf: `ufw enable` sets ENABLED=yes; `ufw reload` sets it to no, then yes.
    let mut new_conf = conf.to_string();
    if reload {
        new_conf = set_default(&new_conf, "ENABLED", "no");
    }
    if enabling || reload {
        new_conf = set_default(&new_conf, "ENABLED", "yes");
    }

    // Each rule command rewrites its family's file with the policies of the moment (the
    // rules come before `ufw default`); starting the firewall rewrites both with the new.
    let restart = current.enabled && (reload || default_changed);
    let final_rewrite = enabling || restart;
    let mut writes = Vec::new();
    let mut rules_changed = false;
    for family in [Family::V4, Family::V6] {
        let (bytes, before, _, path) = rules_file(family);
        let now = after.rules(family);
        let dirty = before != now;
        rules_changed |= dirty;
        let content = if final_rewrite {
            render(now, family, &new)
        } else if dirty {
            render(now, family, &old)
        } else {
            continue;
        };
        if bytes.as_deref() != Some(content.as_bytes()) {
            writes.push(Write { path, content });
        }
    }
    if new_defaults != defaults {
        writes.push(Write {
            path: DEFAULTS,
            content: new_defaults,
        });
    }
    if new_conf != conf {
        writes.push(Write {
            path: CONF,
            content: new_conf,
        });
    }
    let load = if enabling && !current.enabled {
        Load::Start
    } else if restart {
        Load::Restart
    } else if current.enabled && rules_changed {
        Load::UserRules
    } else {
        Load::None
    };
    Ok(Fast {
        writes,
        load,
        default_changed,
        init_sums: init_sums(package).ok_or("no record of ufw-init in the ufw package")?,
    })
}

/// `md5sum`'s output for ufw-init and ufw-init-functions, from the package's md5sums.
fn init_sums(package: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(package).ok()?;
    let sum = |path: &str| {
        text.lines()
            .find_map(|l| l.strip_suffix(path)?.strip_suffix("  "))
            .map(|hash| format!("{hash}  /{path}"))
    };
    Some(format!(
        "{}\n{}",
        sum("lib/ufw/ufw-init")?,
        sum("lib/ufw/ufw-init-functions")?
    ))
}

/// ufw's `get_netfilter_capabilities` for `limit`: a test chain taking both `recent`
/// rules. One `ip[6]tables-restore` instead of five `ip[6]tables`: the first COMMIT
/// sends the rules to the kernel, which refuses them without `xt_recent` (then nothing
/// was created); the second removes the chain.
const CAPS: &str = r#"ufw_caps() {
  c=$1-caps-test$$
  printf '*filter\n:%s - [0:0]\n-A %s -m conntrack --ctstate NEW -m recent --set\n-A %s -m conntrack --ctstate NEW -m recent --update --seconds 30 --hitcount 6\nCOMMIT\n*filter\n-F %s\n-X %s\nCOMMIT\n' \
    "$c" "$c" "$c" "$c" "$c" | $2-restore -n 2>/dev/null
}
"#;

/// `ufw_load start` does what `/lib/ufw/ufw-init start` does, and `ufw_load restart`
/// what `ufw-init force-stop` then `start` do (ufw 0.36.2's ufw-init-functions:
/// `ufw_stop --force`, `ufw_start`), in one `iptables-restore -n` and one
/// `ip6tables-restore -n` instead of some 150 `ip[6]tables` processes (~0.2 s of host
/// CPU for a start, ~0.4 s for a restart, against ~0.03 s).
///
/// The same restore inputs go to the kernel in the same order, each still its own
/// transaction (`*filter` ... `COMMIT`); the `ip[6]tables -F/-Z/-X/-P` commands of
/// `delete_chains` and `ufw_stop` become lines of a transaction of their own, and the
/// `ip[6]tables -L CHAIN` tests read one `ip[6]tables-save` taken first, under ufw's
/// lock. Where ufw-init ignores a failed command (flushing a chain that does not exist),
/// this emits nothing; a failure ufw-init would ignore but a restore cannot exits 4.
///
/// Exits 3, before changing anything, where this is not what ufw-init would do
/// (`$1` is `start` or `restart`, `$2` the `md5sum` of ufw-init and ufw-init-functions
/// as the proven package installed them): the scripts edited, another iptables than
/// the nft-based 1.8.9 it was proven on, MANAGE_BUILTINS,
/// IPT_MODULES, an executable before.init/after.init, IPv6 off, a policy other than
/// ACCEPT/DROP/REJECT, a rules file missing or empty, the kernel already holding the
/// user chains on `start` (ufw-init then says "already started" and loads nothing).
/// The e2e test `without_its_cli_ufw_ends_byte_for_byte_as_with_it` compares the result
/// with the CLI's, kernel tables and sysctls included.
const LOAD: &str = r##"ufw_load() (
  PATH=/sbin:/bin:/usr/sbin:/usr/bin
  [ "$(md5sum /lib/ufw/ufw-init /lib/ufw/ufw-init-functions 2>/dev/null)" = "$2" ] || exit 3
  . /etc/default/ufw
  . /etc/ufw/ufw.conf
  R=/etc/ufw
  case "$ENABLED" in yes|YES) ;; *) exit 3 ;; esac
  case "$IPV6" in yes|YES) ;; *) exit 3 ;; esac
  for v in "$DEFAULT_INPUT_POLICY" "$DEFAULT_OUTPUT_POLICY" "$DEFAULT_FORWARD_POLICY"; do
    case "$v" in ACCEPT|DROP|REJECT) ;; *) exit 3 ;; esac
  done
  [ "$MANAGE_BUILTINS" != yes ] && [ -z "$IPT_MODULES" ] && [ ! -x $R/before.init ] && [ ! -x $R/after.init ] || exit 3
  nl='
'
  # chains_command's list, then delete_chains's: the order of the flushes and deletes.
  all='logging-deny logging-allow not-local user-logging-input user-limit-accept user-limit skip-to-policy-input reject-input after-logging-input after-input user-input before-input before-logging-input skip-to-policy-forward reject-forward after-logging-forward after-forward user-logging-forward user-forward before-forward before-logging-forward track-forward track-output track-input skip-to-policy-output reject-output after-logging-output after-output user-logging-output user-output before-output before-logging-output'
  secondary='logging-deny logging-allow not-local user-logging-input user-logging-output user-logging-forward user-limit-accept user-limit user-input user-forward user-output skip-to-policy-input skip-to-policy-output skip-to-policy-forward'
  has() { case "$have" in *" $1 "*) return 0 ;; esac; return 1; }
  blk() { s="$s*filter$nl$1COMMIT$nl"; }
  # delete_chains: what exists is flushed, zeroed, and the secondary chains deleted.
  flush() {
    x=''
    for c in $all; do ! has $p-$c || x="$x-F $p-$c$nl"; done
    for c in $all; do ! has $p-$c || x="$x-Z $p-$c$nl"; done
    for c in $secondary; do
      if has $p-$c; then x="$x-X $p-$c$nl"; have="${have% $p-$c *}${have#* $p-$c}"; fi
    done
  }
  for t in '' 6; do
    p=ufw$t
    for f in $R/before$t.rules $R/after$t.rules $R/user$t.rules; do [ -s "$f" ] || exit 3; done
    k=$(ip${t}tables-save -t filter) || exit 3
    # The iptables this was proven with: restore inputs of several transactions in one
    # process behave as separate processes on it (Debian 12's nft-based 1.8.9).
    case "$k" in *"tables-save v1.8.9 (nf_tables) "*) ;; *) exit 3 ;; esac
    have=' '
    set -f; IFS=$nl
    for l in $k; do case "$l" in :ufw*) l=${l#:}; have="$have${l%% *} " ;; esac; done
    set +f; unset IFS
    s=''
    if [ "$1" = restart ]; then
      flush
      blk "$x-P INPUT ACCEPT$nl-P OUTPUT ACCEPT$nl-P FORWARD ACCEPT$nl"
    elif has $p-user-input; then
      exit 3
    fi
    if has $p-before-logging-input; then
      flush; blk "$x"
    else
      # The primary chains, hooked into the built-in ones.
      x=''
      for c in before-logging before after after-logging reject track; do
        for d in input output forward; do x="$x:$p-$c-$d - [0:0]$nl"; done
      done
      for d in input output forward; do
        case $d in input) D=INPUT ;; output) D=OUTPUT ;; *) D=FORWARD ;; esac
        for c in before-logging before after after-logging reject track; do x="$x-A $D -j $p-$c-$d$nl"; done
      done
      blk "$x"
    fi
    for d in input output forward; do
      case $d in input) v=$DEFAULT_INPUT_POLICY ;; output) v=$DEFAULT_OUTPUT_POLICY ;; *) v=$DEFAULT_FORWARD_POLICY ;; esac
      [ "$v" != REJECT ] || blk "-A $p-reject-$d -j REJECT$nl"
    done
    for d in input output forward; do
      case $d in input) v=$DEFAULT_INPUT_POLICY ;; output) v=$DEFAULT_OUTPUT_POLICY ;; *) v=$DEFAULT_FORWARD_POLICY ;; esac
      [ "$v" != ACCEPT ] || blk "-A $p-track-$d -p tcp -m conntrack --ctstate NEW -j ACCEPT$nl-A $p-track-$d -p udp -m conntrack --ctstate NEW -j ACCEPT$nl"
    done
    has $p-logging-deny || blk ":$p-logging-deny - [0:0]$nl:$p-logging-allow - [0:0]$nl"
    has $p-skip-to-policy-input || blk ":$p-skip-to-policy-input - [0:0]$nl:$p-skip-to-policy-output - [0:0]$nl:$p-skip-to-policy-forward - [0:0]$nl-A $p-skip-to-policy-input -j $DEFAULT_INPUT_POLICY$nl-A $p-skip-to-policy-output -j $DEFAULT_OUTPUT_POLICY$nl-A $p-skip-to-policy-forward -j $DEFAULT_FORWARD_POLICY$nl"
    # Then before.rules and after.rules, as they are.
    pre=$s; s=''
    x=''
    for c in user-input user-output user-forward user-logging-input user-logging-output user-logging-forward user-limit user-limit-accept; do x="$x:$p-$c - [0:0]$nl"; done
    has $p-user-input || blk "$x"
    # Then user.rules.
    mid=$s; s=''
    blk "-A $p-before-input -j $p-user-input$nl-A $p-before-output -j $p-user-output$nl-A $p-before-forward -j $p-user-forward$nl"
    i=$DEFAULT_INPUT_POLICY; [ "$i" != REJECT ] || i=DROP
    o=$DEFAULT_OUTPUT_POLICY; [ "$o" != REJECT ] || o=DROP
    f=$DEFAULT_FORWARD_POLICY; [ "$f" != REJECT ] || f=DROP
    blk "# builtin chains$nl:INPUT $i [0:0]$nl:FORWARD $f [0:0]$nl:OUTPUT $o [0:0]$nl"
    eval "pre_${t:-4}=\$pre mid_${t:-4}=\$mid post_${t:-4}=\$s"
  done
  # Both families checked and built: now the kernel.
  for t in '' 6; do
    eval "pre=\$pre_${t:-4} mid=\$mid_${t:-4} post=\$post_${t:-4}"
    { printf '%s' "$pre"; cat $R/before$t.rules $R/after$t.rules; printf '%s' "$mid"; cat $R/user$t.rules; printf '%s' "$post"; } |
      ip${t}tables-restore -n || exit 4
  done
  if [ -n "$IPT_SYSCTL" ] && [ -s "$IPT_SYSCTL" ]; then sysctl -e -q -p $IPT_SYSCTL || true; fi
)
"##;

/// Holds ufw's own lock (`/run/ufw.lock`, which the CLI takes with `lockf`, a POSIX
/// record lock that `flock` would not see) while the script in its argument runs: the
/// descriptor stays open across the exec (`$^F` above it: no close-on-exec), so the
/// lock lasts until that shell exits. perl-base is Essential on Debian and starts in
/// ~2.5 ms of host CPU against ~7 ms for `python3 -S`. The lock is the whole file
/// (`struct flock` all zeros but `l_type`, whatever the architecture lays out after it),
/// as `lockf` takes it.
const LOCKED_PERL: &str = r#"use Fcntl; $^F = 255;
open(my $f, ">", "/run/ufw.lock") or die "/run/ufw.lock: $!\n";
my $lock = pack("s x62", F_WRLCK);
fcntl($f, F_SETLKW, $lock) or die "/run/ufw.lock: $!\n";
exec "/bin/sh", "-c", $ARGV[0] or die "sh: $!\n";
"#;

/// The same with Python, where perl is not installed.
const LOCKED_PYTHON: &str = "import fcntl, os, sys
f = open('/run/ufw.lock', 'w')
fcntl.lockf(f, fcntl.LOCK_EX)
os.set_inheritable(f.fileno(), True)
os.execv('/bin/sh', ['sh', '-c', sys.argv[1]])
";

/// The exit status of the locked part when the host cannot take the fast path, before
/// it changed anything.
const NOT_HERE: i32 = 10;

/// Linux takes at most 128 KiB in one argument; more rules than that go to the CLI.
const MAX_BODY: usize = 120 * 1024;

impl Fast {
    /// The part run under ufw's lock: the checks the probe could not make, the writes,
    /// the load.
    fn body(&self) -> String {
        let mut s =
            format!("set -e\n{CAPS}if ! {{ ufw_caps ufw iptables && ufw_caps ufw6 ip6tables");
        if self.default_changed {
            // `ufw default` rewrites these prefixes in after.rules and after6.rules.
            s.push_str(
                " && ! grep -q -e 'UFW ALLOW' -e 'UFW BLOCK' /etc/ufw/after.rules /etc/ufw/after6.rules",
            );
        }
        let _ = writeln!(s, "; }}; then exit {NOT_HERE}; fi");
        for w in &self.writes {
            let desired = DesiredFile {
                path: w.path,
                content: Source::Bytes(w.content.as_bytes()),
                mode: None,
                owner: None,
                group: None,
                validate: None,
                secret: false,
            };
            let b64 = base64::engine::general_purpose::STANDARD.encode(&w.content);
            let _ = write!(
                s,
                "printf '%s' '{b64}' | base64 -d | (\n{})\n",
                write_script(&desired)
            );
        }
        // ufw_load, falling back to ufw-init itself: at once where the host is not a
        // shape it reproduces (3, nothing changed), or after a restore failed midway,
        // by a force-stop first, which flushes what was loaded (as after any start).
        let load = |mode: &str, init: &str| {
            format!(
                "{LOAD}lrc=0\nufw_load {mode} {} >&2 || lrc=$?\n\
                 case $lrc in 0) ;; 3) {init} ;; *) {INIT} force-stop >&2; {INIT} start >&2 ;; esac\n",
                quote(&self.init_sums)
            )
        };
        match self.load {
            Load::None => {}
            Load::Start => s.push_str(&load("start", &format!("{INIT} start >&2"))),
            Load::Restart => s.push_str(&load(
                "restart",
                &format!("{INIT} force-stop >&2; {INIT} start >&2"),
            )),
            Load::UserRules => {
                // ufw's `_reload_user_rules`: its user logging chains flushed and zeroed,
                // then user.rules restored; one restore per family, the flush a
                // transaction of its own as ufw's commands are.
                for (p, exe, file) in [
                    ("ufw", "iptables", USER_RULES),
                    ("ufw6", "ip6tables", USER6_RULES),
                ] {
                    let mut flush = String::from("*filter\\n");
                    for chain in ["input", "output", "forward"] {
                        let _ = write!(
                            flush,
                            "-F {p}-user-logging-{chain}\\n-Z {p}-user-logging-{chain}\\n"
                        );
                    }
                    let _ = writeln!(
                        s,
                        "{{ printf '{flush}COMMIT\\n'; cat {file}; }} | {exe}-restore -n"
                    );
                }
            }
        }
        s
    }

    /// The script: the fast path under ufw's lock when the host confirms what the probe
    /// could not see, else `cli` (the `ufw` commands, which take the lock themselves).
    /// None when the change is too large for one argument.
    pub fn script(&self, cli: &str) -> Option<String> {
        let body = self.body();
        (body.len() <= MAX_BODY).then(|| {
            format!(
                "set -e\nrc=0\nb={}\n\
                 if command -v perl >/dev/null; then perl -e {} \"$b\" || rc=$?\n\
                 else python3 -S -c {} \"$b\" || rc=$?; fi\n\
                 if [ \"$rc\" = {NOT_HERE} ]; then\n{cli}elif [ \"$rc\" != 0 ]; then exit \"$rc\"; fi\n",
                quote(&body),
                quote(LOCKED_PERL),
                quote(LOCKED_PYTHON),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::testing::HOSTILE;

    fn rule(action: &str, proto: &str, port: &str, from: &str, comment: &str) -> Rule {
        Rule::incoming(action, proto, port, from, comment)
    }

    fn shapes() -> Vec<Rule> {
        vec![
            rule("allow", "tcp", "22", "any", ""),
            rule("allow", "udp", "53", "any", ""),
            rule("allow", "any", "123", "any", ""),
            rule("allow", "tcp", "80,443", "any", ""),
            rule("allow", "udp", "8000:8100", "any", ""),
            rule(
                "allow",
                "tcp",
                "9100",
                "10.0.0.0/8",
                "node exporter; metrics",
            ),
            rule("limit", "tcp", "2222", "any", ""),
            rule("limit", "any", "2223", "any", ""),
            rule("deny", "tcp", "25", "192.0.2.7", ""),
            rule("deny", "any", "3000", "any", ""),
            rule("reject", "tcp", "4000", "any", ""),
            rule("reject", "any", "4001", "any", ""),
            rule("reject", "udp", "4002", "any", ""),
            rule("allow", "any", "any", "198.18.82.0/24", ""),
        ]
    }

    fn policies(input: &str) -> Policies {
        Policies {
            input: input.into(),
            output: "ACCEPT".into(),
            forward: "DROP".into(),
        }
    }

    /// The file `ufw` 0.36.2 wrote for these rules on a test host (after `ufw default
    /// reject incoming` and `ufw enable`); the e2e test compares with the CLI for real.
    #[test]
    fn renders_user_rules_as_ufw_writes_them() {
        let text = render(&shapes(), Family::V4, &policies("REJECT"));
        let expected = include_str!("testdata/user.rules");
        assert_eq!(text, expected);
        // Read back, the file gives the same rules.
        let back: Vec<Rule> = text
            .lines()
            .filter_map(super::super::rules::parse_tuple)
            .collect();
        assert_eq!(back, shapes());
    }

    #[test]
    fn renders_user6_rules_as_ufw_writes_them() {
        let v6: Vec<Rule> = shapes()
            .into_iter()
            .filter(|r| !r.src.contains('.'))
            .chain([rule("allow", "tcp", "9200", "2001:db8::/32", "")])
            .collect();
        let mut v6 = v6;
        // ufw's order: 9200 was added after the 9100 rule, which is v4 only.
        let last = v6.pop().unwrap();
        v6.insert(5, last);
        let text = render(&v6, Family::V6, &policies("REJECT"));
        assert_eq!(text, include_str!("testdata/user6.rules"));
    }

    #[test]
    fn settings_read_like_ufw() {
        let s = settings(
            "# IPV6=no\nIPV6=yes\nDEFAULT_INPUT_POLICY=\"DROP\"\nIPT_MODULES=\"\"\nX = 1\nIPV6=\"YES\"\n",
        );
        assert_eq!(setting(&s, "ipv6"), Some("yes"));
        assert_eq!(setting(&s, "default_input_policy"), Some("drop"));
        assert_eq!(setting(&s, "ipt_modules"), None);
        assert_eq!(setting(&s, "x"), None);
    }

    #[test]
    fn set_default_replaces_or_appends() {
        assert_eq!(
            set_default("# x\nENABLED=no\nLOGLEVEL=low\n", "ENABLED", "yes"),
            "# x\nENABLED=yes\nLOGLEVEL=low\n"
        );
        assert_eq!(set_default("A=1", "B", "2"), "A=1B=2\n");
    }

    fn host(rules4: &str, rules6: &str) -> HostFiles {
        HostFiles {
            conf: Some(b"ENABLED=no\nLOGLEVEL=low\n".to_vec()),
            defaults: Some(
                b"IPV6=yes\nDEFAULT_INPUT_POLICY=\"DROP\"\nDEFAULT_OUTPUT_POLICY=\"ACCEPT\"\nDEFAULT_FORWARD_POLICY=\"DROP\"\n"
                    .to_vec(),
            ),
            rules4: Some(rules4.as_bytes().to_vec()),
            rules6: Some(rules6.as_bytes().to_vec()),
            package: Some(include_bytes!("testdata/ufw.md5sums").to_vec()),
            kernel_ipv6: true,
        }
    }

    fn cmds(lines: &[&str]) -> Vec<Vec<String>> {
        lines
            .iter()
            .map(|l| l.split(' ').map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn enabling_a_fresh_ufw_writes_all_and_starts_it() {
        let fresh = Firewall::fresh_install();
        let mut after = fresh.clone();
        after.enabled = true;
        after.incoming = Policy::Reject;
        after.v4 = vec![rule("allow", "tcp", "22", "any", "")];
        after.v6 = after.v4.clone();
        let files = host(PACKAGE_V4, PACKAGE_V6);
        let commands = cmds(&["allow", "default reject incoming", "enable"]);
        let fast = plan(&files, &fresh, &after, &commands).unwrap();
        let paths: Vec<&str> = fast.writes.iter().map(|w| w.path).collect();
        assert_eq!(paths, [USER_RULES, USER6_RULES, DEFAULTS, CONF]);
        // Written at `ufw enable`, with the new policy's logging.
        assert_eq!(
            fast.writes[0].content,
            render(&after.v4, Family::V4, &policies("REJECT"))
        );
        assert!(
            fast.writes[2]
                .content
                .contains("DEFAULT_INPUT_POLICY=\"REJECT\"\n")
        );
        assert_eq!(fast.writes[3].content, "ENABLED=yes\nLOGLEVEL=low\n");
        assert_eq!(fast.load, Load::Start);
        assert!(fast.default_changed);
        // Loaded by ufw_load against the package's own ufw-init, else by ufw-init.
        assert_eq!(
            fast.init_sums,
            "2319c1aa95406d85db2299c7fffe6e5a  /lib/ufw/ufw-init\n\
             3d7b906edb08d6fecc343f40ba8d6872  /lib/ufw/ufw-init-functions"
        );
        let body = fast.body();
        assert!(
            body.contains(&format!(
                "ufw_load start {} >&2 || lrc=$?\n\
                 case $lrc in 0) ;; 3) /lib/ufw/ufw-init start >&2 ;; \
                 *) /lib/ufw/ufw-init force-stop >&2; /lib/ufw/ufw-init start >&2 ;; esac\n",
                quote(&fast.init_sums)
            )),
            "{body}"
        );
        let script = fast.script("ufw --force enable\n").unwrap();
        let parses = std::process::Command::new("/bin/sh")
            .args(["-n", "-c", &script])
            .status()
            .unwrap();
        assert!(parses.success(), "the script does not parse");

        // Once written, the files are recognised as ufw's, and a rerun changes nothing.
        let mut now = host(&fast.writes[0].content, &fast.writes[1].content);
        now.defaults = Some(fast.writes[2].content.clone().into_bytes());
        now.conf = Some(fast.writes[3].content.clone().into_bytes());
        let again = plan(&now, &after, &after, &[]).unwrap();
        assert!(again.writes.is_empty());
        assert_eq!(again.load, Load::None);
    }

    #[test]
    fn while_disabled_a_rule_is_written_with_the_policies_of_the_moment() {
        let fresh = Firewall::fresh_install();
        let mut after = fresh.clone();
        after.v4 = vec![rule("allow", "tcp", "9100", "10.0.0.0/8", "metrics")];
        after.outgoing = Policy::Deny;
        let commands = cmds(&["allow", "default deny outgoing"]);
        let fast = plan(&host(PACKAGE_V4, PACKAGE_V6), &fresh, &after, &commands).unwrap();
        // user6.rules stays the package's: ufw writes only the family it changed.
        let paths: Vec<&str> = fast.writes.iter().map(|w| w.path).collect();
        assert_eq!(paths, [USER_RULES, DEFAULTS]);
        assert_eq!(
            fast.writes[0].content,
            render(&after.v4, Family::V4, &policies("DROP"))
        );
        assert_eq!(fast.load, Load::None);
    }

    #[test]
    fn rules_changed_while_enabled_reload_the_user_chains() {
        let mut current = Firewall::fresh_install();
        current.enabled = true;
        current.v4 = vec![rule("allow", "tcp", "22", "any", "")];
        current.v6 = current.v4.clone();
        let p = policies("DROP");
        let mut files = host(
            &render(&current.v4, Family::V4, &p),
            &render(&current.v6, Family::V6, &p),
        );
        files.conf = Some(b"ENABLED=yes\nLOGLEVEL=low\n".to_vec());
        let mut after = current.clone();
        after.v4.push(rule("limit", "tcp", "2222", "any", ""));
        after.v6.push(rule("limit", "tcp", "2222", "any", ""));
        let fast = plan(&files, &current, &after, &cmds(&["limit"])).unwrap();
        assert_eq!(fast.writes.len(), 2);
        assert_eq!(fast.load, Load::UserRules);
        let body = fast.body();
        // ufw's flush of its user logging chains, then user.rules: one restore a family.
        assert!(
            body.contains(
                r"{ printf '*filter\n-F ufw6-user-logging-input\n-Z ufw6-user-logging-input\n-F ufw6-user-logging-output\n-Z ufw6-user-logging-output\n-F ufw6-user-logging-forward\n-Z ufw6-user-logging-forward\nCOMMIT\n'; cat /etc/ufw/user6.rules; } | ip6tables-restore -n"
            ),
            "{body}"
        );
        assert!(!body.contains("ufw_load"), "{body}");
        // Under ufw's lock; the commands, which take it themselves, outside it.
        let script = fast.script("ufw limit 2222/tcp\n").unwrap();
        assert!(script.contains(&quote(&body).into_owned()), "{script}");
        assert!(
            script.contains("then\nufw limit 2222/tcp\nelif"),
            "{script}"
        );
        // It parses in dash, the hosts' sh (the e2e tests run it).
        let out = std::process::Command::new("/bin/sh")
            .arg("-n")
            .arg("-c")
            .arg(&script)
            .status()
            .unwrap();
        assert!(out.success(), "the script does not parse");
    }

    #[test]
    fn what_cannot_be_proven_goes_to_the_cli() {
        let fresh = Firewall::fresh_install();
        let mut after = fresh.clone();
        after.enabled = true;
        let enable = cmds(&["enable"]);
        let ok = host(PACKAGE_V4, PACKAGE_V6);
        assert!(plan(&ok, &fresh, &after, &enable).is_ok());

        let mut other = ok.clone();
        other.package = Some(b"another build".to_vec());
        assert_eq!(
            plan(&other, &fresh, &after, &enable),
            Err("a ufw package this code was not proven against")
        );
        let mut medium = ok.clone();
        medium.conf = Some(b"ENABLED=no\nLOGLEVEL=medium\n".to_vec());
        assert!(plan(&medium, &fresh, &after, &enable).is_err());
        let mut edited = ok.clone();
        edited.rules4 = Some(format!("{PACKAGE_V4}# mine\n").into_bytes());
        assert!(plan(&edited, &fresh, &after, &enable).is_err());
        let mut no_v6 = ok.clone();
        no_v6.kernel_ipv6 = false;
        assert!(plan(&no_v6, &fresh, &after, &enable).is_err());
        // A rule from an interface on the host.
        let mut iface = fresh.clone();
        let mut r = rule("allow", "any", "any", "any", "");
        r.iface_in = "eth1".into();
        iface.v4.push(r);
        assert!(plan(&ok, &iface, &after, &enable).is_err());
        assert!(plan(&ok, &fresh, &after, &cmds(&["disable"])).is_err());
    }

    #[test]
    fn comments_go_to_the_file_as_hex() {
        for comment in HOSTILE {
            let text = render(
                &[rule("allow", "tcp", "80", "any", comment)],
                Family::V4,
                &policies("DROP"),
            );
            let back: Vec<Rule> = text
                .lines()
                .filter_map(super::super::rules::parse_tuple)
                .collect();
            assert_eq!(back[0].comment, *comment);
            assert_eq!(
                text.lines().count(),
                render(
                    &[rule("allow", "tcp", "80", "any", "")],
                    Family::V4,
                    &policies("DROP")
                )
                .lines()
                .count()
            );
        }
    }
}
