//! ufw's rules as ufw itself records them, and the text converge shows for them.
//!
//! ufw keeps every rule it added as a `### tuple ###` comment line in
//! `/etc/ufw/user.rules` (IPv4) and `/etc/ufw/user6.rules` (IPv6):
//! `### tuple ### ACTION PROTO DPORT DST SPORT SRC [DAPP SAPP] DIRECTION [comment=HEX]`,
//! e.g. `### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in`. Reading those lines
//! the way ufw's `_read_rules` (backend_iptables.py) does gives the rule set without
//! starting ufw's Python. ufw tells rules apart by everything except action, log type
//! and comment: adding a rule in the same "slot" replaces the old one in place.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// How ufw writes "anywhere" in this family's file.
    fn anywhere(self) -> &'static str {
        match self {
            Family::V4 => "0.0.0.0/0",
            Family::V6 => "::/0",
        }
    }
}

/// The family an address is written in (`any` has none).
pub fn family_of(address: &str) -> Option<Family> {
    match address {
        "any" => None,
        a if a.contains(':') => Some(Family::V6),
        _ => Some(Family::V4),
    }
}

/// One rule, as ufw stores it in one family's file. Addresses are `any` for anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// allow, deny, reject or limit.
    pub action: String,
    /// "", "log" or "log-all".
    pub log: String,
    /// A `ufw route` (forwarding) rule.
    pub route: bool,
    pub proto: String,
    pub dport: String,
    pub dst: String,
    pub sport: String,
    pub src: String,
    pub dapp: String,
    pub sapp: String,
    /// in or out.
    pub direction: String,
    pub iface_in: String,
    pub iface_out: String,
    pub comment: String,
}

impl Rule {
    /// An incoming rule of the kind a playbook writes.
    pub fn incoming(action: &str, proto: &str, port: &str, from: &str, comment: &str) -> Rule {
        Rule {
            action: action.to_string(),
            log: String::new(),
            route: false,
            proto: proto.to_string(),
            dport: port.to_string(),
            dst: "any".to_string(),
            sport: "any".to_string(),
            src: from.to_string(),
            dapp: String::new(),
            sapp: String::new(),
            direction: "in".to_string(),
            iface_in: String::new(),
            iface_out: String::new(),
            comment: comment.to_string(),
        }
    }

    /// ufw's notion of "the same rule": equal in everything but action, log and comment.
    pub fn same_slot(&self, other: &Rule) -> bool {
        self.route == other.route
            && self.proto == other.proto
            && self.dport == other.dport
            && self.dst == other.dst
            && self.sport == other.sport
            && self.src == other.src
            && self.dapp == other.dapp
            && self.sapp == other.sapp
            && self.direction == other.direction
            && self.iface_in == other.iface_in
            && self.iface_out == other.iface_out
    }

    /// The families ufw puts this rule in: both for anywhere-to-anywhere (when IPv6 is
    /// on), else the family of its addresses.
    pub fn families(&self, ipv6: bool) -> Vec<Family> {
        match family_of(&self.src).or(family_of(&self.dst)) {
            Some(f) => vec![f],
            None if ipv6 => vec![Family::V4, Family::V6],
            None => vec![Family::V4],
        }
    }

    fn is_any_family(&self) -> bool {
        self.src == "any" && self.dst == "any"
    }

    /// One line of the diff: `allow 22/tcp`, `allow 9100/tcp from 10.0.0.0/8 # metrics`.
    pub fn text(&self) -> String {
        let mut s = String::new();
        if self.route {
            s.push_str("route ");
        }
        s.push_str(&self.action);
        if !self.log.is_empty() {
            let _ = write!(s, " {}", self.log);
        }
        if self.iface_in.is_empty() && self.iface_out.is_empty() && self.direction == "out" {
            s.push_str(" out");
        }
        if !self.iface_in.is_empty() {
            let _ = write!(s, " in on {}", self.iface_in);
        }
        if !self.iface_out.is_empty() {
            let _ = write!(s, " out on {}", self.iface_out);
        }
        if !self.dapp.is_empty() {
            let _ = write!(s, " app {}", self.dapp);
        } else if self.dport != "any" {
            let _ = write!(s, " {}", self.dport);
            if self.proto != "any" {
                let _ = write!(s, "/{}", self.proto);
            }
        } else if self.proto != "any" {
            let _ = write!(s, " proto {}", self.proto);
        }
        if self.dst != "any" {
            let _ = write!(s, " to {}", self.dst);
        }
        if self.src != "any" || self.sport != "any" || !self.sapp.is_empty() {
            let _ = write!(s, " from {}", self.src);
            if !self.sapp.is_empty() {
                let _ = write!(s, " app {}", self.sapp);
            } else if self.sport != "any" {
                let _ = write!(s, " port {}", self.sport);
            }
        }
        if s == self.action {
            s.push_str(" any");
        }
        if !self.comment.is_empty() {
            let _ = write!(s, " # {}", self.comment);
        }
        s
    }

    /// The arguments of `ufw` that add this (incoming, playbook-made) rule, or put it
    /// in place of the rule in its slot. Families follow from the `from` address.
    pub fn add_args(&self) -> Vec<String> {
        let mut args = vec![self.action.clone()];
        if self.proto != "any" {
            args.extend(["proto".to_string(), self.proto.clone()]);
        }
        args.extend(["from".to_string(), self.src.clone()]);
        args.extend(["to".to_string(), "any".to_string()]);
        if self.dport != "any" {
            args.extend(["port".to_string(), self.dport.clone()]);
        }
        if !self.comment.is_empty() {
            args.extend(["comment".to_string(), self.comment.clone()]);
        }
        args
    }

    /// The arguments of `ufw` that delete this rule from the families in `scope`.
    /// Without a comment, ufw deletes the rule whatever its comment.
    pub fn delete_args(&self, scope: Scope) -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        if self.route {
            args.push("route".into());
        }
        args.push("delete".into());
        args.push(self.action.clone());
        if !self.iface_in.is_empty() {
            args.extend(["in".into(), "on".into(), self.iface_in.clone()]);
        }
        if !self.iface_out.is_empty() {
            args.extend(["out".into(), "on".into(), self.iface_out.clone()]);
        }
        if self.iface_in.is_empty() && self.iface_out.is_empty() && self.direction == "out" {
            args.push("out".into());
        }
        if !self.log.is_empty() {
            args.push(self.log.clone());
        }
        // A rule in one family only is named with that family's "anywhere".
        let src = match scope {
            Scope::Only(f) if self.is_any_family() => f.anywhere().to_string(),
            _ => self.src.clone(),
        };
        args.extend(["from".into(), src]);
        if !self.sapp.is_empty() {
            args.extend(["app".into(), self.sapp.clone()]);
        } else if self.sport != "any" {
            args.extend(["port".into(), self.sport.clone()]);
        }
        args.extend(["to".into(), self.dst.clone()]);
        if !self.dapp.is_empty() {
            args.extend(["app".into(), self.dapp.clone()]);
        } else if self.dport != "any" {
            args.extend(["port".into(), self.dport.clone()]);
        }
        // ufw refuses `proto` beside `app`: an application profile names its protocol.
        if self.proto != "any" && self.dapp.is_empty() && self.sapp.is_empty() {
            args.extend(["proto".into(), self.proto.clone()]);
        }
        args
    }
}

/// Parse one `### tuple ###` line as ufw does; None for what ufw skips as malformed.
pub fn parse_tuple(line: &str) -> Option<Rule> {
    // `comment=` is always last.
    let (line, comment) = match line.split_once(" comment=") {
        Some((l, hex)) => (l, decode_comment(hex.trim())),
        None => (line, String::new()),
    };
    let fields: Vec<&str> = line
        .trim()
        .strip_prefix("### tuple ###")?
        .split_whitespace()
        .collect();
    if !(6..=9).contains(&fields.len()) {
        return None;
    }
    // Old 6- and 8-field tuples had no direction: they are incoming.
    let mut direction = "in".to_string();
    let (mut iface_in, mut iface_out) = (String::new(), String::new());
    if fields.len() == 7 || fields.len() == 9 {
        let last = fields[fields.len() - 1];
        direction = last.split('_').next().unwrap_or("in").to_string();
        if last.contains('_') {
            let after_underscore = |s: &str| s.split_once('_').map_or("", |(_, i)| i).to_string();
            match last.split_once('!') {
                Some((a, b)) if a.starts_with("in_") && b.starts_with("out_") => {
                    iface_in = after_underscore(a);
                    iface_out = after_underscore(b);
                }
                _ if last.starts_with("in_") => iface_in = after_underscore(last),
                _ if last.starts_with("out_") => iface_out = after_underscore(last),
                _ => return None,
            }
        }
    }
    let (route, action_field) = match fields[0].split_once(':') {
        Some((_, action)) => (true, action),
        None => (false, fields[0]),
    };
    let action_field = action_field.to_lowercase();
    let (action, log) = action_field
        .split_once('_')
        .unwrap_or((action_field.as_str(), ""));
    // ufw reads an unknown action as deny.
    let action = match action {
        "allow" | "deny" | "reject" | "limit" => action,
        _ => "deny",
    };
    let app = |i: usize| match fields.get(i) {
        Some(&a) if fields.len() >= 8 && a != "-" => a.replace("%20", " "),
        _ => String::new(),
    };
    Some(Rule {
        action: action.to_string(),
        log: log.to_string(),
        route,
        proto: fields[1].to_string(),
        dport: fields[2].to_string(),
        dst: anywhere_as_any(fields[3]),
        sport: fields[4].to_string(),
        src: anywhere_as_any(fields[5]),
        dapp: app(6),
        sapp: app(7),
        direction,
        iface_in,
        iface_out,
        comment,
    })
}

fn anywhere_as_any(address: &str) -> String {
    match address {
        "0.0.0.0/0" | "::/0" => "any".to_string(),
        a => a.to_string(),
    }
}

/// ufw stores comments as the hex of their UTF-8 bytes.
fn decode_comment(hex_text: &str) -> String {
    // Like ufw, drop a stray last digit.
    let even = &hex_text[..hex_text.len() - hex_text.len() % 2];
    match hex::decode(even) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => hex_text.to_string(),
    }
}

/// Where a rule shown as one line lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Both,
    Only(Family),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Allow,
    Deny,
    Reject,
}

impl Policy {
    /// From /etc/default/ufw's `DEFAULT_INPUT_POLICY="DROP"`.
    pub fn from_iptables(target: &str) -> Option<Policy> {
        match target.trim().trim_matches('"').to_uppercase().as_str() {
            "ACCEPT" => Some(Policy::Allow),
            "DROP" => Some(Policy::Deny),
            "REJECT" => Some(Policy::Reject),
            _ => None,
        }
    }

    /// The word `ufw default` takes and diffs show.
    pub fn word(self) -> &'static str {
        match self {
            Policy::Allow => "allow",
            Policy::Deny => "deny",
            Policy::Reject => "reject",
        }
    }
}

/// ufw's whole state as converge manages it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewall {
    pub enabled: bool,
    pub incoming: Policy,
    pub outgoing: Policy,
    /// `IPV6=yes` in /etc/default/ufw: user6.rules is in use.
    pub ipv6: bool,
    pub v4: Vec<Rule>,
    pub v6: Vec<Rule>,
}

impl Firewall {
    /// What a fresh `apt install ufw` leaves.
    pub fn fresh_install() -> Firewall {
        Firewall {
            enabled: false,
            incoming: Policy::Deny,
            outgoing: Policy::Allow,
            ipv6: true,
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }

    pub fn rules(&self, family: Family) -> &Vec<Rule> {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    fn rules_mut(&mut self, family: Family) -> &mut Vec<Rule> {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    /// The rules one line each: an anywhere rule present alike in both files is one line.
    pub fn merged(&self) -> Vec<(Rule, Scope)> {
        let mut v6_taken = vec![false; self.v6.len()];
        let mut lines = Vec::new();
        for rule in &self.v4 {
            let twin = (self.ipv6 && rule.is_any_family())
                .then(|| {
                    self.v6
                        .iter()
                        .enumerate()
                        .position(|(i, r)| !v6_taken[i] && r == rule)
                })
                .flatten();
            match twin {
                Some(i) => {
                    v6_taken[i] = true;
                    lines.push((rule.clone(), Scope::Both));
                }
                None => lines.push((rule.clone(), Scope::Only(Family::V4))),
            }
        }
        if self.ipv6 {
            for (rule, taken) in self.v6.iter().zip(v6_taken) {
                if !taken {
                    lines.push((rule.clone(), Scope::Only(Family::V6)));
                }
            }
        }
        lines
    }

    /// The text the diff compares: settings, then one rule per line.
    pub fn text(&self) -> String {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let mut s = format!(
            "enabled: {}\ndefault incoming: {}\ndefault outgoing: {}\n",
            yes_no(self.enabled),
            self.incoming.word(),
            self.outgoing.word()
        );
        for (rule, scope) in self.merged() {
            s.push_str(&rule.text());
            // A rule meant for anywhere but present in one family only says so.
            if let (Scope::Only(family), true, true) = (scope, self.ipv6, rule.is_any_family()) {
                s.push_str(match family {
                    Family::V4 => " (v4 only)",
                    Family::V6 => " (v6 only)",
                });
            }
            s.push('\n');
        }
        s
    }
}

/// What the playbook asks of ufw.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub enabled: Option<bool>,
    pub incoming: Option<Policy>,
    pub outgoing: Option<Policy>,
    pub rules: Vec<Rule>,
    pub purge: bool,
}

/// The state after converging, and the `ufw` invocations (arguments after `ufw`) that
/// get there, in a safe order: new rules before deletions, the default policy and
/// enabling last.
#[derive(Debug, Clone)]
pub struct Plan {
    pub after: Firewall,
    pub commands: Vec<Vec<String>>,
}

pub fn plan(current: &Firewall, desired: &Desired) -> Plan {
    let mut after = current.clone();
    let mut commands = Vec::new();
    let disable = desired.enabled == Some(false) && current.enabled;
    if disable {
        commands.push(vec!["disable".to_string()]);
    }
    for rule in &desired.rules {
        let mut needed = false;
        for family in rule.families(current.ipv6) {
            let list = after.rules_mut(family);
            match list.iter().position(|r| r.same_slot(rule)) {
                Some(i) if list[i] == *rule => {}
                Some(i) => {
                    list[i] = rule.clone();
                    needed = true;
                }
                None => {
                    list.push(rule.clone());
                    needed = true;
                }
            }
        }
        if needed {
            commands.push(rule.add_args());
        }
    }
    if desired.purge {
        let wanted = |rule: &Rule, family: Family| {
            desired
                .rules
                .iter()
                .any(|d| d.same_slot(rule) && d.families(current.ipv6).contains(&family))
        };
        let unwanted = Firewall {
            v4: current
                .v4
                .iter()
                .filter(|r| !wanted(r, Family::V4))
                .cloned()
                .collect(),
            v6: current
                .v6
                .iter()
                .filter(|r| !wanted(r, Family::V6))
                .cloned()
                .collect(),
            ..current.clone()
        };
        for (rule, scope) in unwanted.merged() {
            commands.push(rule.delete_args(scope));
        }
        after.v4.retain(|r| !unwanted.v4.contains(r));
        after.v6.retain(|r| !unwanted.v6.contains(r));
    }
    for (policy, direction, now) in [
        (desired.incoming, "incoming", &mut after.incoming),
        (desired.outgoing, "outgoing", &mut after.outgoing),
    ] {
        if let Some(policy) = policy.filter(|p| p != now) {
            *now = policy;
            commands.push(vec![
                "default".into(),
                policy.word().into(),
                direction.into(),
            ]);
        }
    }
    if let Some(enabled) = desired.enabled {
        after.enabled = enabled;
    }
    if desired.enabled == Some(true) && !current.enabled {
        commands.push(vec!["enable".to_string()]);
    }
    Plan { after, commands }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as ufw 0.36 writes them (backend_iptables.py `_write_rules`).
    const USER_RULES: &str = "\
*filter
:ufw-user-input - [0:0]
### RULES ###

### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in
-A ufw-user-input -p tcp --dport 22 -j ACCEPT

### tuple ### allow tcp 9100 0.0.0.0/0 any 10.0.0.0/8 in comment=6d657472696373
-A ufw-user-input -p tcp --dport 9100 -s 10.0.0.0/8 -j ACCEPT

### tuple ### limit tcp 2222 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### deny_log udp 53 0.0.0.0/0 any 192.168.1.10 in
### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 OpenSSH - in
### tuple ### allow any any 0.0.0.0/0 any 0.0.0.0/0 in_eth1
### tuple ### route:allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in_eth0!out_eth1
### tuple ### reject_log-all tcp 25 0.0.0.0/0 any 0.0.0.0/0 out
### tuple ### allow tcp 80,443 0.0.0.0/0 any 0.0.0.0/0 in
### tuple ### allow tcp 8000:8100 10.0.0.5 any 0.0.0.0/0 in
### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0
### tuple ### broken line
COMMIT
";

    fn parse_all(text: &str) -> Vec<Rule> {
        text.lines().filter_map(parse_tuple).collect()
    }

    #[test]
    fn tuples_read_like_ufw_reads_them() {
        let rules = parse_all(USER_RULES);
        let lines: Vec<String> = rules.iter().map(Rule::text).collect();
        insta::assert_snapshot!(lines.join("\n"), @r"
        allow 22/tcp
        allow 9100/tcp from 10.0.0.0/8 # metrics
        limit 2222/tcp
        deny log 53/udp from 192.168.1.10
        allow app OpenSSH
        allow in on eth1
        route allow in on eth0 out on eth1 80/tcp
        reject log-all out 25/tcp
        allow 80,443/tcp
        allow 8000:8100/tcp to 10.0.0.5
        allow 22/tcp
        ");
        assert_eq!(rules[1].comment, "metrics");
        assert_eq!(rules[4].dport, "22");
        // An old tuple without direction is the same rule as the new-style one.
        assert!(rules[0].same_slot(&rules[10]));
        assert_eq!(rules[0], rules[10]);
    }

    #[test]
    fn comments_are_hex_utf8() {
        let r = parse_tuple(
            "### tuple ### allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in comment=77656220e2809c66726f6e74e2809d",
        )
        .unwrap();
        assert_eq!(r.comment, "web \u{201c}front\u{201d}");
    }

    fn fw(v4: &[Rule], v6: &[Rule]) -> Firewall {
        Firewall {
            enabled: true,
            incoming: Policy::Deny,
            outgoing: Policy::Allow,
            ipv6: true,
            v4: v4.to_vec(),
            v6: v6.to_vec(),
        }
    }

    fn allow(port: &str) -> Rule {
        Rule::incoming("allow", "tcp", port, "any", "")
    }

    #[test]
    fn both_families_make_one_line() {
        let metrics = Rule::incoming("allow", "tcp", "9100", "10.0.0.0/8", "metrics");
        let v6only = Rule::incoming("allow", "tcp", "80", "2001:db8::/32", "");
        let f = fw(
            &[allow("22"), metrics, allow("443")],
            &[allow("22"), v6only],
        );
        insta::assert_snapshot!(f.text(), @r"
        enabled: yes
        default incoming: deny
        default outgoing: allow
        allow 22/tcp
        allow 9100/tcp from 10.0.0.0/8 # metrics
        allow 443/tcp (v4 only)
        allow 80/tcp from 2001:db8::/32
        ");
    }

    fn ufw_lines(plan: &Plan) -> Vec<String> {
        plan.commands
            .iter()
            .map(|c| format!("ufw {}", crate::quote::quote_all(c)))
            .collect()
    }

    #[test]
    fn converging_a_fresh_ufw() {
        let desired = Desired {
            enabled: Some(true),
            incoming: Some(Policy::Deny),
            outgoing: Some(Policy::Allow),
            rules: vec![
                allow("22"),
                allow("80"),
                Rule::incoming("allow", "tcp", "9100", "10.0.0.0/8", "metrics"),
            ],
            purge: false,
        };
        let p = plan(&Firewall::fresh_install(), &desired);
        insta::assert_snapshot!(ufw_lines(&p).join("\n"), @r"
        ufw allow proto tcp from any to any port 22
        ufw allow proto tcp from any to any port 80
        ufw allow proto tcp from 10.0.0.0/8 to any port 9100 comment metrics
        ufw enable
        ");
        assert_eq!(p.after.v4.len(), 3);
        assert_eq!(p.after.v6.len(), 2);
        // Converged: nothing more to do.
        let again = plan(&p.after, &desired);
        assert!(again.commands.is_empty());
        assert_eq!(again.after.text(), p.after.text());
    }

    #[test]
    fn nasty_comments_stay_one_word() {
        let r = Rule::incoming(
            "allow",
            "tcp",
            "80",
            "any",
            "web $(reboot); `id` \"x\" \\ *",
        );
        let line = format!("ufw {}", crate::quote::quote_all(r.add_args()));
        assert_eq!(
            line,
            r#"ufw allow proto tcp from any to any port 80 comment 'web $(reboot); `id` "x" \ *'"#
        );
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "set -- {}; printf '%s|' \"$@\"",
                crate::quote::quote_all(r.add_args())
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "allow|proto|tcp|from|any|to|any|port|80|comment|web $(reboot); `id` \"x\" \\ *|"
        );
    }

    #[test]
    fn a_changed_action_or_comment_replaces_the_rule_in_place() {
        let current = fw(
            &[
                allow("22"),
                Rule::incoming("deny", "tcp", "80", "any", "old"),
            ],
            &[
                allow("22"),
                Rule::incoming("deny", "tcp", "80", "any", "old"),
            ],
        );
        let desired = Desired {
            rules: vec![
                Rule::incoming("limit", "tcp", "22", "any", ""),
                Rule::incoming("allow", "tcp", "80", "any", "web"),
            ],
            ..Desired::default()
        };
        let p = plan(&current, &desired);
        assert_eq!(
            ufw_lines(&p),
            [
                "ufw limit proto tcp from any to any port 22",
                "ufw allow proto tcp from any to any port 80 comment web",
            ]
        );
        assert_eq!(p.after.v4[0].action, "limit");
        assert_eq!(p.after.v6[1].comment, "web");
    }

    #[test]
    fn purge_deletes_the_rest_and_only_with_purge() {
        let metrics = Rule::incoming("allow", "tcp", "9100", "10.0.0.0/8", "metrics");
        let mut route = allow("80");
        route.route = true;
        route.iface_in = "eth0".into();
        route.iface_out = "eth1".into();
        let mut logged_out = Rule::incoming("reject", "tcp", "25", "any", "");
        logged_out.log = "log-all".into();
        logged_out.direction = "out".into();
        let current = fw(
            &[
                allow("22"),
                metrics.clone(),
                allow("8080"),
                route,
                logged_out,
            ],
            &[allow("22"), allow("8080"), allow("3000")],
        );
        let mut desired = Desired {
            rules: vec![allow("22")],
            ..Desired::default()
        };
        assert!(plan(&current, &desired).commands.is_empty());
        desired.purge = true;
        let p = plan(&current, &desired);
        insta::assert_snapshot!(ufw_lines(&p).join("\n"), @r"
        ufw delete allow from 10.0.0.0/8 to any port 9100 proto tcp
        ufw delete allow from any to any port 8080 proto tcp
        ufw route delete allow in on eth0 out on eth1 from 0.0.0.0/0 to any port 80 proto tcp
        ufw delete reject out log-all from 0.0.0.0/0 to any port 25 proto tcp
        ufw delete allow from ::/0 to any port 3000 proto tcp
        ");
        assert_eq!(p.after.v4, vec![allow("22")]);
        assert_eq!(p.after.v6, vec![allow("22")]);
    }

    #[test]
    fn defaults_and_disabling() {
        let current = fw(&[allow("22")], &[allow("22")]);
        let desired = Desired {
            enabled: Some(false),
            incoming: Some(Policy::Reject),
            outgoing: Some(Policy::Allow),
            ..Desired::default()
        };
        let p = plan(&current, &desired);
        assert_eq!(
            ufw_lines(&p),
            ["ufw disable", "ufw default reject incoming"]
        );
        assert!(!p.after.enabled);
        assert_eq!(p.after.incoming, Policy::Reject);
    }

    #[test]
    fn without_ipv6_rules_go_to_one_file() {
        let mut current = Firewall::fresh_install();
        current.ipv6 = false;
        let desired = Desired {
            rules: vec![allow("22")],
            ..Desired::default()
        };
        let p = plan(&current, &desired);
        assert_eq!(p.after.v4.len(), 1);
        assert!(p.after.v6.is_empty());
        assert!(!p.after.text().contains("v4 only"));
    }
}
