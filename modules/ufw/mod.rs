//! `ufw`: default policies, enabled or not, and allow / deny / limit rules, for IPv4
//! and IPv6 — without ever locking out the SSH connection the run came in on.
//!
//! State is read from ufw's own files (the probe never starts ufw, a slow Python
//! program). A change writes ufw's files and loads them the way ufw does, where that is
//! provably what ufw would do (`fast`), else runs the `ufw` commands; all in one exec.

mod fast;
mod lockout;
mod rules;

use crate::error::InputResult;
use crate::module::{
    Action, Command, Diff, Failure, HostView, Module, Params, Plan, Probed, Resource, Resources,
    failed,
};
use crate::node::PathStep;
use crate::quote::quote_all;
use lockout::Guard;
use rules::{Desired, Firewall, Policy, Rule, parse_tuple};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::net::IpAddr;

pub struct Ufw;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UfwParams {
    default_incoming: Option<Policy>,
    default_outgoing: Option<Policy>,
    enabled: Option<bool>,
    #[serde(default)]
    allow: Vec<RuleParam>,
    #[serde(default)]
    deny: Vec<RuleParam>,
    #[serde(default)]
    limit: Vec<RuleParam>,
    #[serde(default)]
    purge: bool,
}

/// `"22/tcp"`, `22`, or `{port, proto, from, comment}`.
#[derive(Debug)]
enum RuleParam {
    Short(String),
    Full(FullRule),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FullRule {
    #[serde(default, deserialize_with = "text_or_number")]
    port: Option<String>,
    proto: Option<String>,
    from: Option<String>,
    comment: Option<String>,
}

impl<'de> Deserialize<'de> for RuleParam {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RuleParam, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(RuleParam::Short(s)),
            Value::Number(n) => Ok(RuleParam::Short(n.to_string())),
            v @ Value::Object(_) => serde_json::from_value(v)
                .map(RuleParam::Full)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "a rule is \"PORT/PROTO\" or {{port, proto, from, comment}}, not {other}"
            ))),
        }
    }
}

fn text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(D::Error::custom(format!(
            "a port is a number or a string like \"8000:8100\", not {other}"
        ))),
    }
}

impl Module for Ufw {
    fn name(&self) -> &'static str {
        "ufw"
    }

    fn key_param(&self) -> Option<&'static str> {
        None
    }

    fn prepare(&self, params: &Params<'_>) -> InputResult<Vec<Box<dyn Action>>> {
        let p: UfwParams = params.parse()?;
        let mut rules: Vec<(Rule, Vec<PathStep>)> = Vec::new();
        for (list, action) in [(&p.allow, "allow"), (&p.deny, "deny"), (&p.limit, "limit")] {
            for (index, param) in list.iter().enumerate() {
                let at = vec![PathStep::Key(action.to_string()), PathStep::Index(index)];
                let rule = to_rule(action, param).map_err(|(key, message)| {
                    let mut path = at.clone();
                    path.extend(key.map(|k| PathStep::Key(k.to_string())));
                    params.error_at_path(&path, message).help(
                        "a rule is \"PORT/PROTO\" (\"22/tcp\", \"8000:8100/udp\", \"80,443/tcp\") \
                         or {port, proto: tcp|udp|any, from: ADDRESS/PREFIX, comment}",
                    )
                })?;
                if let Some((first, _)) = rules.iter().find(|(r, _)| r.same_slot(&rule)) {
                    return Err(params
                        .error_at_path(&at, format!("`{}` is listed twice", first.text()))
                        .help(
                            "ufw keeps one action per port, protocol and source: keep one of them",
                        ));
                }
                if locks_out_ssh(&rule) {
                    return Err(params
                        .error_at_path(&at, "this denies SSH (22/tcp) from everywhere")
                        .label("would lock you out")
                        .help(
                            "converge never blocks the SSH port it connects on; remove this rule",
                        ));
                }
                rules.push((rule, at));
            }
        }
        Ok(vec![Box::new(UfwAction {
            desired: Desired {
                enabled: p.enabled,
                incoming: p.default_incoming,
                outgoing: p.default_outgoing,
                rules: rules.into_iter().map(|(r, _)| r).collect(),
                purge: p.purge,
            },
        })])
    }
}

/// An explicit deny of 22/tcp from anywhere: refused before any host is touched.
fn locks_out_ssh(rule: &Rule) -> bool {
    matches!(rule.action.as_str(), "deny" | "reject")
        && rule.src == "any"
        && matches!(rule.proto.as_str(), "tcp" | "any")
        && lockout::port_in(22, &rule.dport)
}

type RuleError = (Option<&'static str>, String);

/// A playbook rule in ufw's normal form, or the parameter at fault and why.
fn to_rule(action: &str, param: &RuleParam) -> Result<Rule, RuleError> {
    let (port, proto, from, comment) = match param {
        RuleParam::Short(text) => {
            let (port, proto) = text.split_once('/').unwrap_or((text, "any"));
            (Some(port), proto, "any", "")
        }
        RuleParam::Full(f) => (
            f.port.as_deref(),
            f.proto.as_deref().unwrap_or("any"),
            f.from.as_deref().unwrap_or("any"),
            f.comment.as_deref().unwrap_or(""),
        ),
    };
    let is_full = matches!(param, RuleParam::Full(_));
    let key = |k: &'static str| is_full.then_some(k);
    let proto = proto.trim().to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "any") {
        return Err((
            key("proto"),
            format!("unknown protocol `{proto}` (tcp, udp or any)"),
        ));
    }
    let port = match port {
        Some(p) => normalize_ports(p, &proto).map_err(|m| (key("port"), m))?,
        None => "any".to_string(),
    };
    let from = normalize_address(from).map_err(|m| (key("from"), m))?;
    if port == "any" && from == "any" {
        return Err((None, "give a port, a source (`from`) or both".to_string()));
    }
    // ufw refuses `'` in comments; a line break would break the one-rule-per-line diff.
    if comment.contains('\'') || comment.chars().any(char::is_control) {
        return Err((
            key("comment"),
            "a ufw comment cannot contain ' or control characters".to_string(),
        ));
    }
    // ufw looks for these words among all its arguments before it takes the comment out.
    if matches!(
        comment.to_lowercase().as_str(),
        "in" | "out" | "log" | "log-all"
    ) {
        return Err((
            key("comment"),
            format!("ufw reads the comment `{comment}` as a keyword: write more words"),
        ));
    }
    Ok(Rule::incoming(action, &proto, &port, &from, comment))
}

/// `22`, `80,443`, `8000:8100` as ufw stores them (pieces sorted); several ports
/// need tcp or udp, as ufw says.
fn normalize_ports(text: &str, proto: &str) -> Result<String, String> {
    let bad = || format!("`{text}` is not a port, a range like 8000:8100 or a list like 80,443");
    let number = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p > 0);
    let mut pieces: Vec<(u16, Option<u16>)> = Vec::new();
    for piece in text.split(',') {
        pieces.push(match piece.split_once(':') {
            Some((lo, hi)) => match (number(lo), number(hi)) {
                (Some(lo), Some(hi)) if lo < hi => (lo, Some(hi)),
                _ => return Err(bad()),
            },
            None => (number(piece).ok_or_else(bad)?, None),
        });
    }
    let weight: usize = pieces
        .iter()
        .map(|p| if p.1.is_some() { 2 } else { 1 })
        .sum();
    if weight > 15 {
        return Err("ufw takes at most 15 ports in one rule (a range counts as two)".into());
    }
    if (pieces.len() > 1 || pieces[0].1.is_some()) && proto == "any" {
        return Err("several ports need a protocol: write e.g. \"80,443/tcp\"".into());
    }
    pieces.sort();
    Ok(pieces
        .iter()
        .map(|(lo, hi)| match hi {
            Some(hi) => format!("{lo}:{hi}"),
            None => lo.to_string(),
        })
        .collect::<Vec<_>>()
        .join(","))
}

/// A source as ufw normalises it: no host prefix, IPv4 networks on their boundary,
/// IPv6 in its short form.
fn normalize_address(text: &str) -> Result<String, String> {
    let text = text.trim().to_lowercase();
    if text == "any" {
        return Ok(text);
    }
    let bad = || format!("`{text}` is not an IP address or a network like 10.0.0.0/8");
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u32>().map_err(|_| bad())?)),
        None => (text.as_str(), None),
    };
    match (address.parse::<IpAddr>().map_err(|_| bad())?, prefix) {
        (_, Some(0)) => Err(format!(
            "`{text}` is everywhere: write `any` or leave out `from`"
        )),
        (IpAddr::V4(ip), None | Some(32)) => Ok(ip.to_string()),
        (IpAddr::V4(ip), Some(bits)) if bits < 32 => {
            let mask = u32::MAX << (32 - bits);
            let network = std::net::Ipv4Addr::from(u32::from(ip) & mask);
            Ok(format!("{network}/{bits}"))
        }
        (IpAddr::V6(ip), None | Some(128)) => Ok(ip.to_string()),
        (IpAddr::V6(ip), Some(bits)) if bits < 128 => Ok(format!("{ip}/{bits}")),
        _ => Err(bad()),
    }
}

#[derive(Debug)]
struct UfwAction {
    desired: Desired,
}

/// The probe, reading ufw's files under `root` ("" on a host; a temp dir in tests):
/// whole, as the fast path compares them byte for byte with what ufw would write.
fn probe_script(root: &str) -> String {
    let r = crate::quote::quote(root);
    format!(
        "r={r}\n\
         [ -x \"$r/usr/sbin/ufw\" ] && echo installed=yes\n\
         for f in conf:etc/ufw/ufw.conf defaults:etc/default/ufw rules4:etc/ufw/user.rules \
         rules6:etc/ufw/user6.rules package:var/lib/dpkg/info/ufw.md5sums; do \
         if [ -f \"$r/${{f#*:}}\" ]; then printf '%s:b64=' \"${{f%%:*}}\"; base64 -w0 < \"$r/${{f#*:}}\"; echo; fi; done\n\
         [ -d /proc/sys/net/ipv6 ] && echo kernel_ipv6=yes\n\
         {ssh}\
         echo '[end]'\n",
        ssh = lockout::PROBE
    )
}

/// `ufw_loaded ROOT`, a shell function: whether the kernel holds what ufw's files under
/// ROOT ("" on a host) say (the files are what ufw commands change; the kernel is what
/// filters). For IPv4, and IPv6 when ufw uses it: the rules of the `ufw-user-*` chains,
/// compared on what decides a packet (chain, protocol, addresses, ports, interfaces,
/// target; iptables-save spells the same rule differently), and the INPUT and OUTPUT
/// policies. Prints the first thing that differs. One awk reads the files and both
/// tables: a rerun's probe runs this on every host, and each process costs the host ~2 ms.
const LOADED: &str = r#"ufw_loaded() {
  ufw_d=$1; set --
  for ufw_f in "$ufw_d/etc/default/ufw" "$ufw_d/etc/ufw/user.rules" "$ufw_d/etc/ufw/user6.rules"; do
    [ -f "$ufw_f" ] && set -- "$@" "$ufw_f"
  done
  { echo @@4; iptables-save -t filter || echo @@fail
    echo @@6; ip6tables-save -t filter 2>/dev/null || echo @@fail; } | awk '
  function sig(  k, v, r, s, d) {
    split("", v); r = ""
    for (k = 3; k < NF; k++) if ($k ~ /^(-[psdijo]|--[ds]ports?)$/) v[$k] = $(k + 1)
    for (k = 3; k <= NF; k++) if ($k == "--set" || $k == "--update") r = $k
    s = v["-s"]; d = v["-d"]; sub(/\/(32|128)$/, "", s); sub(/\/(32|128)$/, "", d)
    return $2 " " v["-p"] " " s " " d " " v["--dport"] v["--dports"] " " v["--sport"] v["--sports"] " " v["-i"] " " v["-o"] " " v["-j"] " " r
  }
  FILENAME ~ /\/etc\/default\/ufw$/ {
    if (sub(/^IPV6=/, "")) { gsub(/"/, ""); ipv6 = $0 }
    else if (match($0, /^DEFAULT_(INPUT|OUTPUT)_POLICY=/)) {
      c = substr($0, 9, RLENGTH - 16); x = substr($0, RLENGTH + 1)
      sub(/^"*/, "", x); match(x, /^[A-Z]*/); x = substr(x, 1, RLENGTH); sub(/REJECT/, "DROP", x)
      want[c] = x
    }
    next
  }
  FILENAME ~ /\/etc\/ufw\/user6?\.rules$/ {
    if ($1 == "-A" && $2 ~ /^ufw6?-user-(input|output|forward)$/) n[FILENAME ~ /6\.rules$/ ? 6 : 4, sig()]--
    next
  }
  $0 == "@@4" || $0 == "@@6" { f = substr($0, 3); next }
  $0 == "@@fail" { failed[f] = 1; next }
  $1 == (f == 6 ? ":ufw6-user-input" : ":ufw-user-input") { chains[f] = 1 }
  $1 == ":INPUT" || $1 == ":OUTPUT" { policy[f, substr($1, 2)] = $2 }
  $1 == "-A" && $2 ~ /^ufw6?-user-(input|output|forward)$/ { n[f, sig()]++ }
  END {
    for (i = 4; i <= 6; i += 2) {
      if (i == 6 && ipv6 != "yes") break
      if (failed[i]) exit 1
      if (!chains[i]) { print "IPv" i ": ufw\047s chains are not loaded"; exit 1 }
      for (k in n) {
        split(k, key, SUBSEP)
        if (key[1] == i && n[k] != 0) {
          print "IPv" i ": the loaded rules differ from /etc/ufw/user" (i == 6 ? "6" : "") ".rules"; exit 1
        }
      }
      if (policy[i, "INPUT"] != want["INPUT"]) { print "IPv" i ": the INPUT policy loaded is not " want["INPUT"]; exit 1 }
      if (policy[i, "OUTPUT"] != want["OUTPUT"]) { print "IPv" i ": the OUTPUT policy loaded is not " want["OUTPUT"]; exit 1 }
    }
  }' "$@" -
}
ufw_enabled() {
  while IFS= read -r ufw_l || [ -n "$ufw_l" ]; do case $ufw_l in ENABLED=yes*) return 0 ;; esac; done < /etc/ufw/ufw.conf
  return 1
} 2>/dev/null
"#;

/// The probe's part on the kernel: `loaded=no` when ufw is enabled but the kernel does
/// not hold its rules (flushed by hand, ufw's unit stopped), which the files cannot show.
fn loaded_probe() -> String {
    format!(
        "{LOADED}if ufw_enabled && command -v iptables-save >/dev/null; then \
         if ufw_loaded \"$r\" >/dev/null; then echo loaded=yes; else echo loaded=no; fi; fi\n"
    )
}

/// After the commands, in the same exec: fail unless the kernel holds what ufw's files
/// now say, then print the probe again under `[after]`, to be compared with what was asked.
fn verify_script() -> String {
    format!(
        "{LOADED}if ufw_enabled; then ufw_loaded '' >&2 || {{ echo 'ufw changed its files, but the kernel does not hold them' >&2; exit 1; }}\n\
         elif iptables-save -t filter | grep -q '^:ufw-user-input '; then echo 'ufw is disabled, but its rules are still loaded' >&2; exit 1; fi\n\
         set +e\necho '[after]'\n{}exit 0\n",
        probe_script("")
    )
}

/// ufw's state (None when ufw is not installed), its files as read, and what SSH needs.
fn read_state(probed: &Probed) -> (Option<Firewall>, fast::HostFiles, Vec<Guard>) {
    let mut fields = probed.fields();
    let text = |k: &str| {
        fields.get(k).map(|v| {
            String::from_utf8_lossy(v)
                .trim()
                .trim_matches('"')
                .to_lowercase()
        })
    };
    let guards = lockout::guards(
        text("ssh_connection").as_deref(),
        text("sshd").is_some(),
        text("sshd_ports").as_deref(),
    );
    let installed = text("installed").is_some();
    let kernel_ipv6 = text("kernel_ipv6").is_some();
    let files = fast::HostFiles {
        kernel_ipv6,
        conf: fields.remove("conf"),
        defaults: fields.remove("defaults"),
        rules4: fields.remove("rules4"),
        rules6: fields.remove("rules6"),
        package: fields.remove("package"),
    };
    if !installed {
        return (None, files, guards);
    }
    let lossy = |b: &Option<Vec<u8>>| {
        String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
    };
    let mut settings = fast::settings(&lossy(&files.defaults));
    settings.extend(fast::settings(&lossy(&files.conf)));
    let setting = |k: &str| {
        settings
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let fresh = Firewall::fresh_install();
    let ipv6 = setting("ipv6").map_or(fresh.ipv6, |v| v == "yes");
    // ufw reads the `### tuple ###` lines that start a line.
    let rules = |file: &Option<Vec<u8>>| {
        lossy(file)
            .lines()
            .filter(|l| l.starts_with("### tuple ###"))
            .filter_map(parse_tuple)
            .collect()
    };
    let firewall = Firewall {
        enabled: setting("enabled").is_some_and(|v| v == "yes"),
        incoming: setting("default_input_policy")
            .and_then(|v| Policy::from_iptables(&v))
            .unwrap_or(fresh.incoming),
        outgoing: setting("default_output_policy")
            .and_then(|v| Policy::from_iptables(&v))
            .unwrap_or(fresh.outgoing),
        ipv6,
        v4: rules(&files.rules4),
        // ufw ignores user6.rules while IPv6 is off.
        v6: if ipv6 {
            rules(&files.rules6)
        } else {
            Vec::new()
        },
    };
    (Some(firewall), files, guards)
}

/// One exec for the whole task. `--force` answers the prompts of enable and delete;
/// ufw reads `--force allow ...` as a malformed `default` command, so only there.
fn apply_script(commands: &[Vec<String>]) -> String {
    String::from("set -e\n") + &cli_commands(commands)
}

/// The `ufw` command lines, one a line.
fn cli_commands(commands: &[Vec<String>]) -> String {
    let mut s = String::new();
    for args in commands {
        let force = matches!(
            args.first().map(String::as_str),
            Some("enable" | "delete" | "route")
        );
        let force = if force { "--force " } else { "" };
        s.push_str(&format!("ufw {force}{}\n", quote_all(args)));
    }
    s
}

impl Action for UfwAction {
    /// Its files, sshd's settings (which port to keep open) and, through its files, the
    /// rules the kernel holds, which no other module changes.
    fn reads(&self, _found: &Probed) -> Option<Vec<Resource>> {
        Some(vec![
            Resource::Package("ufw".into()),
            Resource::Dir("/etc/ufw".into()),
            Resource::Path("/etc/default/ufw".into()),
            Resource::Dir("/etc/ssh".into()),
            Resource::Path("/var/lib/dpkg/info/ufw.md5sums".into()),
        ])
    }

    fn touches(&self) -> Option<Vec<Resource>> {
        Some(vec![
            Resource::Dir("/etc/ufw".into()),
            Resource::Path("/etc/default/ufw".into()),
        ])
    }

    fn resources(&self) -> Resources {
        Resources {
            provides: Vec::new(),
            needs: vec![Resource::Package("ufw".into())],
        }
    }

    fn probe(&self) -> String {
        probe_script("") + &loaded_probe()
    }

    fn plan<'a>(&'a self, probed: &'a Probed, host: &HostView<'_>) -> Result<Plan<'a>, Failure> {
        let (firewall, files, guards) = read_state(probed);
        let current = match firewall {
            Some(fw) => fw,
            // Check mode, with an earlier task that would install ufw.
            None if host.coming(&Resource::Package("ufw".into())) => Firewall::fresh_install(),
            None => {
                return Err(Failure::new(
                    "ufw is not installed: add `apt: { name: ufw }` before this task",
                ));
            }
        };
        let mut plan = rules::plan(&current, &self.desired);
        // Enabled in its files, but not in the kernel: a reload loads the files.
        let unloaded = current.enabled && probed.field("loaded").as_deref() == Some("no");
        if unloaded
            && plan.after.enabled
            && !plan
                .commands
                .iter()
                .any(|c| c.first().map(String::as_str) == Some("enable"))
        {
            plan.commands.push(vec!["reload".into()]);
        }
        if plan.commands.is_empty() {
            return Ok(Plan::unchanged());
        }
        for guard in &guards {
            if let Some(why) = lockout::blocked(guard, &plan.after) {
                return Err(Failure::new(format!(
                    "refusing to change ufw: {why} (converge is connected on it); \
                     allow it first, e.g. `allow: [\"{}/tcp\"]`",
                    guard.port
                )));
            }
        }
        let loaded = |yes: bool| {
            if unloaded {
                format!("loaded: {}\n", if yes { "yes" } else { "no" })
            } else {
                String::new()
            }
        };
        let diff = Diff::new(
            "ufw",
            Some(current.text() + &loaded(false)),
            Some(plan.after.text() + &loaded(true)),
        );
        // Without ufw's Python where the result is provably ufw's own (fast.rs).
        let apply = fast::plan(&files, &current, &plan.after, &plan.commands)
            .ok()
            .and_then(|fast| fast.script(&cli_commands(&plan.commands)))
            .unwrap_or_else(|| apply_script(&plan.commands));
        let script = apply + &verify_script();
        let change = Command::new("ufw", script).judged_by(|out| {
            if !out.success() {
                return Err(failed("ufw", out));
            }
            let stdout = out.stdout_text();
            let after = Probed {
                stdout: stdout
                    .split_once("[after]\n")
                    .map_or("", |(_, a)| a)
                    .to_string(),
                status: 0,
            };
            let left = read_state(&after)
                .0
                .map(|now| rules::plan(&now, &self.desired).commands);
            if left.as_ref().is_none_or(|c| !c.is_empty()) {
                return Err(format!(
                    "ufw's files do not hold what was asked after the change; still to do: {:?}",
                    left.unwrap_or_default()
                ));
            }
            Ok(())
        });
        let mut converging = Plan::unchanged();
        converging.change(Some(diff), change);
        Ok(converging)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SourceFile;
    use crate::node;
    use std::path::Path;

    fn prepare(yaml: &str) -> InputResult<Desired> {
        let n = node::parse(&SourceFile::new("site.yml", yaml)).unwrap();
        let params = Params {
            module: "ufw",
            value: n.to_value(),
            node: &n,
            playbook_dir: Path::new("."),
            role_dir: None,
            vars: (&Value::Null).into(),
            taint: crate::playbook::taint::Taint::none(),
            play_modules: &[],
        };
        let p: UfwParams = params.parse()?;
        // Only the checks; the action's contents are read back through a second parse.
        Ufw.prepare(&params)?;
        let mut rules = Vec::new();
        for (list, action) in [(&p.allow, "allow"), (&p.deny, "deny"), (&p.limit, "limit")] {
            for param in list {
                rules.push(to_rule(action, param).unwrap());
            }
        }
        Ok(Desired {
            enabled: p.enabled,
            incoming: p.default_incoming,
            outgoing: p.default_outgoing,
            rules,
            purge: p.purge,
        })
    }

    #[test]
    fn the_spec_example_normalises() {
        let d = prepare(
            "default_incoming: deny\ndefault_outgoing: allow\nenabled: true\n\
             allow: [\"22/tcp\", \"80/tcp\", \"443/tcp\", { port: 9100, proto: tcp, from: 10.0.0.0/8, comment: metrics }]\n",
        )
        .unwrap();
        let lines: Vec<String> = d.rules.iter().map(Rule::text).collect();
        assert_eq!(
            lines,
            [
                "allow 22/tcp",
                "allow 80/tcp",
                "allow 443/tcp",
                "allow 9100/tcp from 10.0.0.0/8 # metrics"
            ]
        );
        assert_eq!(d.incoming, Some(Policy::Deny));
        assert_eq!(d.enabled, Some(true));
    }

    #[test]
    fn ports_and_addresses_normalise_like_ufw() {
        assert_eq!(normalize_ports("443,80", "tcp").unwrap(), "80,443");
        assert_eq!(normalize_ports("8000:8100", "udp").unwrap(), "8000:8100");
        assert!(normalize_ports("8100:8000", "udp").is_err());
        assert!(normalize_ports("80,443", "any").is_err());
        assert!(normalize_ports("ssh", "tcp").is_err());
        assert!(normalize_ports("0", "tcp").is_err());
        assert_eq!(normalize_address("10.1.2.3/8").unwrap(), "10.0.0.0/8");
        assert_eq!(normalize_address("10.1.2.3/32").unwrap(), "10.1.2.3");
        assert_eq!(
            normalize_address("2001:DB8:0:0::/32").unwrap(),
            "2001:db8::/32"
        );
        assert_eq!(normalize_address("2001:db8::1/128").unwrap(), "2001:db8::1");
        assert_eq!(normalize_address("any").unwrap(), "any");
        assert!(normalize_address("0.0.0.0/0").is_err());
        assert!(normalize_address("10.0.0.0/255.0.0.0").is_err());
        assert!(normalize_address("example.com").is_err());
    }

    #[test]
    fn mistakes_point_into_the_rule_list() {
        let err = prepare("allow: [\"22/tcp\", { port: 9100, proto: tcpp }]\n").unwrap_err();
        insta::assert_snapshot!(err.message, @"site.yml:1:40: ufw: `allow[1].proto`: unknown protocol `tcpp` (tcp, udp or any)");
        let err = prepare("allow: [{ port: 80, prot: tcp }]\n").unwrap_err();
        assert!(
            err.message
                .starts_with("site.yml:1:21: ufw: unknown parameter `prot`"),
            "{}",
            err.message
        );
        let err = prepare("allow: [\"80/tcp\"]\nlimit: [\"80/tcp\"]\n").unwrap_err();
        insta::assert_snapshot!(err.message, @"site.yml:2:9: ufw: `limit[0]`: `allow 80/tcp` is listed twice");
        let err = prepare("allow: [{ port: 80, comment: \"it's\" }]\n").unwrap_err();
        assert!(err.message.contains("cannot contain '"), "{}", err.message);
        let err = prepare("allow: [{ port: 80, comment: In }]\n").unwrap_err();
        assert!(err.message.contains("as a keyword"), "{}", err.message);
        let err = prepare("allow: [{ comment: nothing }]\n").unwrap_err();
        assert!(err.message.contains("give a port"), "{}", err.message);
    }

    #[test]
    fn hostile_ports_and_addresses_are_refused_where_they_stand() {
        use crate::module::testing::{HOSTILE, yaml_str};
        for bad in HOSTILE {
            for (before, key) in [("proto: tcp, ", "port"), ("port: 80, ", "from")] {
                let yaml = format!("allow: [{{ {before}{key}: {} }}]\n", yaml_str(bad));
                let col = yaml.find(&format!("{key}: ")).unwrap() + key.len() + 3;
                let err = prepare(&yaml).unwrap_err().message;
                assert!(
                    err.starts_with(&format!("site.yml:1:{col}: ufw: `allow[0].{key}`:")),
                    "{bad:?}: {err}"
                );
            }
        }
    }

    #[test]
    fn denying_ssh_is_refused_before_any_host_is_touched() {
        let err = prepare("deny: [\"22/tcp\"]\n").unwrap_err();
        insta::assert_snapshot!(err.message, @"site.yml:1:8: ufw: `deny[0]`: this denies SSH (22/tcp) from everywhere");
        assert!(prepare("deny: [\"20:30/tcp\"]\n").is_err());
        assert!(prepare("deny: [22]\n").is_err());
        // From one source, or another protocol: fine.
        assert!(prepare("deny: [{ port: 22, proto: tcp, from: 192.0.2.7 }]\n").is_ok());
        assert!(prepare("deny: [\"22/udp\"]\n").is_ok());
        assert!(prepare("limit: [\"22/tcp\"]\n").is_ok());
    }

    fn sh(script: &str) -> String {
        sh_env(script, None)
    }

    fn sh_env(script: &str, ssh_connection: Option<&str>) -> String {
        let mut cmd = std::process::Command::new("/bin/sh");
        if let Some(c) = ssh_connection {
            cmd.env("SSH_CONNECTION", c);
        }
        let out = cmd.arg("-c").arg(script).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// The real probe, on files laid out as ufw leaves them.
    #[test]
    fn probe_reads_ufw_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["usr/sbin", "etc/ufw", "etc/default"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let ufw = root.join("usr/sbin/ufw");
        std::fs::write(&ufw, "#!/bin/sh\n").unwrap();
        std::process::Command::new("chmod")
            .args(["755", ufw.to_str().unwrap()])
            .status()
            .unwrap();
        std::fs::write(
            root.join("etc/ufw/ufw.conf"),
            "# /etc/ufw/ufw.conf\n#\nENABLED=yes\nLOGLEVEL=low\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/default/ufw"),
            "IPV6=yes\nDEFAULT_INPUT_POLICY=\"DROP\"\nDEFAULT_OUTPUT_POLICY=\"ACCEPT\"\n\
             DEFAULT_FORWARD_POLICY=\"DROP\"\n",
        )
        .unwrap();
        let rules = |any: &str| {
            format!(
                "*filter\n### RULES ###\n\n### tuple ### allow tcp 22 {any} any {any} in\n\
                 -A ufw-user-input -p tcp --dport 22 -j ACCEPT\n\n\
                 ### tuple ### allow tcp 80 {any} any {any} in comment=776562\n\n\
                 ### END RULES ###\nCOMMIT\n"
            )
        };
        std::fs::write(root.join("etc/ufw/user.rules"), rules("0.0.0.0/0")).unwrap();
        std::fs::write(root.join("etc/ufw/user6.rules"), rules("::/0")).unwrap();
        let stdout = sh(&probe_script(root.to_str().unwrap()));
        let (fw, _, _) = read_state(&Probed { stdout, status: 0 });
        insta::assert_snapshot!(fw.unwrap().text(), @r"
        enabled: yes
        default incoming: deny
        default outgoing: allow
        allow 22/tcp
        allow 80/tcp # web
        ");
        // Not installed: nothing to read.
        let empty = tempfile::tempdir().unwrap();
        let stdout = sh(&probe_script(empty.path().to_str().unwrap()));
        assert!(read_state(&Probed { stdout, status: 0 }).0.is_none());
    }

    #[test]
    fn the_ssh_probe_runs_in_dash() {
        let out = sh(&format!(
            "SSH_CONNECTION='192.0.2.1 50000 192.0.2.2 2222'\n{}",
            lockout::PROBE
        ));
        assert!(
            out.contains("ssh_connection=192.0.2.1 50000 192.0.2.2 2222"),
            "{out}"
        );
        // Found in an ancestor's environment, as behind sudo, which resets it.
        let conn = "192.0.2.1 50000 192.0.2.2 2222";
        let inner = format!("unset SSH_CONNECTION; {}", lockout::PROBE);
        let out = sh_env(
            &format!("/bin/sh -c {}; true", crate::quote::quote(&inner)),
            Some(conn),
        );
        assert!(out.contains(&format!("ssh_connection={conn}\n")), "{out}");
    }

    #[test]
    fn one_exec_for_all_commands() {
        let mut current = Firewall::fresh_install();
        let old = Rule::incoming("allow", "tcp", "8080", "any", "");
        current.v4.push(old.clone());
        current.v6.push(old);
        let desired = prepare(
            "enabled: true\npurge: true\n\
             allow: [{ port: 80, proto: tcp, comment: \"web; rm -rf / #\" }, \"22/tcp\"]\n",
        )
        .unwrap();
        let plan = rules::plan(&current, &desired);
        insta::assert_snapshot!(apply_script(&plan.commands), @r"
        set -e
        ufw allow proto tcp from any to any port 80 comment 'web; rm -rf / #'
        ufw allow proto tcp from any to any port 22
        ufw --force delete allow from any to any port 8080 proto tcp
        ufw --force enable
        ");
    }

    /// `ufw_loaded` on ufw's files and fake `ip[6]tables-save` printing `kernel4` and
    /// `kernel6`: its message and exit status.
    fn loaded(defaults: &str, kernel4: Option<&str>, kernel6: &str) -> (String, bool) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["etc/ufw", "etc/default", "bin"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("etc/default/ufw"), defaults).unwrap();
        let rules = |chain: &str| {
            format!(
                "*filter\n:{chain}-input - [0:0]\n### RULES ###\n\n### tuple ### allow tcp 22 any\n\
                 -A {chain}-input -p tcp --dport 22 -j ACCEPT\n\
                 -A {chain}-input -p tcp --dport 80 -s 192.0.2.7 -j ACCEPT\n\
                 -A ufw-user-limit -j REJECT\n### END RULES ###\nCOMMIT\n"
            )
        };
        std::fs::write(root.join("etc/ufw/user.rules"), rules("ufw-user")).unwrap();
        std::fs::write(root.join("etc/ufw/user6.rules"), rules("ufw6-user")).unwrap();
        for (name, out) in [
            ("iptables-save", kernel4),
            ("ip6tables-save", Some(kernel6)),
        ] {
            let body = match out {
                Some(text) => format!("#!/bin/sh\ncat <<'EOF'\n{text}EOF\n"),
                None => "#!/bin/sh\necho '*filter'\nexit 1\n".to_string(),
            };
            let path = root.join("bin").join(name);
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{LOADED}ufw_loaded \"$1\"",))
            .arg("sh")
            .arg(root)
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", root.join("bin").display()),
            )
            .output()
            .unwrap();
        (String::from_utf8(out.stdout).unwrap(), out.status.success())
    }

    /// What the kernel holds once ufw loaded the files above, as iptables-save spells it.
    fn kernel(chain: &str, input: &str) -> String {
        format!(
            "# Generated by iptables-save\n*filter\n:INPUT {input} [0:0]\n:FORWARD DROP [0:0]\n\
             :OUTPUT ACCEPT [0:0]\n:{chain}-input - [0:0]\n:ufw-user-limit - [0:0]\n\
             -A {chain}-input -p tcp -m tcp --dport 22 -j ACCEPT\n\
             -A {chain}-input -s 192.0.2.7/32 -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n"
        )
    }

    #[test]
    fn loaded_compares_the_kernel_with_the_files_in_one_awk() {
        let defaults =
            "IPV6=yes\nDEFAULT_INPUT_POLICY=\"REJECT\"\nDEFAULT_OUTPUT_POLICY=\"ACCEPT\"\n";
        let v4 = kernel("ufw-user", "DROP");
        let v6 = kernel("ufw6-user", "DROP");
        assert_eq!(loaded(defaults, Some(&v4), &v6), (String::new(), true));

        let missing = v4.replace("-A ufw-user-input -p tcp -m tcp --dport 22 -j ACCEPT\n", "");
        assert_eq!(
            loaded(defaults, Some(&missing), &v6),
            (
                "IPv4: the loaded rules differ from /etc/ufw/user.rules\n".into(),
                false
            )
        );
        let twice = v6.replace(
            "COMMIT",
            "-A ufw6-user-input -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT",
        );
        assert_eq!(
            loaded(defaults, Some(&v4), &twice),
            (
                "IPv6: the loaded rules differ from /etc/ufw/user6.rules\n".into(),
                false
            )
        );
        assert_eq!(
            loaded(defaults, Some(&v4), &kernel("ufw6-user", "ACCEPT")),
            ("IPv6: the INPUT policy loaded is not DROP\n".into(), false)
        );
        assert_eq!(
            loaded(
                defaults,
                Some(&v4.replace("OUTPUT ACCEPT", "OUTPUT DROP")),
                &v6
            ),
            (
                "IPv4: the OUTPUT policy loaded is not ACCEPT\n".into(),
                false
            )
        );
        assert_eq!(
            loaded(defaults, Some("*filter\n:INPUT DROP [0:0]\nCOMMIT\n"), &v6),
            ("IPv4: ufw's chains are not loaded\n".into(), false)
        );
        // iptables-save failing says nothing and is not loaded.
        assert_eq!(loaded(defaults, None, &v6), (String::new(), false));
        // Without IPv6, its table is not looked at.
        let no_v6 = defaults.replace("IPV6=yes", "IPV6=\"no\"");
        assert_eq!(
            loaded(&no_v6, Some(&v4), "garbage\n"),
            (String::new(), true)
        );
    }
}
