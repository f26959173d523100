//! Never lock out SSH: would the firewall, as converged, still let the run's SSH
//! connection (or, without one, sshd's ports) in?
//!
//! The port comes from `SSH_CONNECTION` (`CLIENT_IP CLIENT_PORT SERVER_IP SERVER_PORT`),
//! which sshd sets for exec channels too. `sudo` resets the environment, so the probe
//! reads it from the nearest ancestor process that has it (the `sudo` process keeps the
//! caller's environment in /proc/PID/environ). Without any SSH connection (a local run),
//! the ports sshd listens on (`sshd -T`) are protected instead, with unknown addresses.

use super::rules::{Family, Firewall, Policy, Rule};
use std::net::IpAddr;

/// What must stay reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub port: u16,
    /// The SSH client's address, when known (source of the connection).
    pub client: Option<IpAddr>,
    /// The address the host was reached at (destination of the connection).
    pub server: Option<IpAddr>,
}

/// The probe snippet: `ssh_connection=...`, and `sshd=yes` + `sshd_ports=...` when no
/// connection is found.
pub const PROBE: &str = r#"c=${SSH_CONNECTION:-}; p=$$; n=0
while [ -z "$c" ] && [ "${p:-0}" -gt 1 ] && [ "$n" -lt 32 ]; do
  p=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$p/status" 2>/dev/null)
  [ "${p:-0}" -gt 1 ] && c=$(tr '\000' '\n' < "/proc/$p/environ" 2>/dev/null | sed -n 's/^SSH_CONNECTION=//p')
  n=$((n + 1))
done
echo "ssh_connection=$c"
if [ -z "$c" ] && [ -x /usr/sbin/sshd ]; then
  echo sshd=yes
  echo "sshd_ports=$(/usr/sbin/sshd -T 2>/dev/null | sed -n 's/^port //p' | tr '\n' ' ')"
fi
"#;

/// The guards the probe's fields call for.
pub fn guards(ssh_connection: Option<&str>, sshd: bool, sshd_ports: Option<&str>) -> Vec<Guard> {
    if let Some(guard) = ssh_connection.and_then(parse_connection) {
        return vec![guard];
    }
    if !sshd {
        return Vec::new();
    }
    let mut ports: Vec<u16> = sshd_ports
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    if ports.is_empty() {
        ports.push(22);
    }
    ports
        .into_iter()
        .map(|port| Guard {
            port,
            client: None,
            server: None,
        })
        .collect()
}

fn parse_connection(text: &str) -> Option<Guard> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [client, _, server, port] = fields[..] else {
        return None;
    };
    Some(Guard {
        port: port.parse().ok()?,
        client: client.parse().ok().map(unmap),
        server: server.parse().ok().map(unmap),
    })
}

/// A dual-stack sshd shows IPv4 peers as `::ffff:a.b.c.d`; their packets are IPv4.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why the converged firewall would block `guard`, or None when it lets it in.
pub fn blocked(guard: &Guard, fw: &Firewall) -> Option<String> {
    if !fw.enabled {
        return None;
    }
    let families: Vec<Family> = match guard.client {
        Some(IpAddr::V4(_)) => vec![Family::V4],
        Some(IpAddr::V6(_)) if !fw.ipv6 => {
            return Some(format!(
                "the SSH connection uses IPv6 and ufw would drop IPv6 (IPV6=no in \
                 /etc/default/ufw), blocking port {}/tcp",
                guard.port
            ));
        }
        Some(IpAddr::V6(_)) => vec![Family::V6],
        None if fw.ipv6 => vec![Family::V4, Family::V6],
        None => vec![Family::V4],
    };
    // With an unknown client, it is enough that one family lets it in.
    let verdicts: Vec<Option<String>> = families
        .iter()
        .map(|f| verdict(guard, fw.rules(*f), fw.incoming))
        .collect();
    if verdicts.iter().any(Option::is_none) {
        None
    } else {
        verdicts.into_iter().flatten().next()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    No,
    Yes,
    /// Depends on what cannot be known here (client port, interface).
    Unsure,
}

/// ufw's first-match walk over one family's rules, then the default policy.
fn verdict(guard: &Guard, rules: &[Rule], incoming: Policy) -> Option<String> {
    for rule in rules {
        let lets_in = matches!(rule.action.as_str(), "allow" | "limit");
        match matches(rule, guard, lets_in) {
            Match::Yes if lets_in => return None,
            Match::Yes | Match::Unsure if !lets_in => {
                return Some(format!(
                    "the rule `{}` would block the SSH port {}/tcp",
                    rule.text(),
                    guard.port
                ));
            }
            _ => {}
        }
    }
    match incoming {
        Policy::Allow => None,
        policy => Some(format!(
            "the default incoming policy `{}` would block the SSH port {}/tcp: no rule allows it",
            policy.word(),
            guard.port
        )),
    }
}

/// Whether `rule` applies to the SSH connection. An unknown address is assumed to be
/// the one the user allowed, and not one they denied.
fn matches(rule: &Rule, guard: &Guard, lets_in: bool) -> Match {
    if rule.route || rule.direction != "in" {
        return Match::No;
    }
    if !matches!(rule.proto.as_str(), "tcp" | "any") || !port_in(guard.port, &rule.dport) {
        return Match::No;
    }
    for (net, ip) in [(&rule.src, guard.client), (&rule.dst, guard.server)] {
        let inside = match (net.as_str(), ip) {
            ("any", _) => true,
            (_, Some(ip)) => contains(net, ip),
            (_, None) => lets_in,
        };
        if !inside {
            return Match::No;
        }
    }
    if rule.sport != "any" || !rule.iface_in.is_empty() {
        return Match::Unsure;
    }
    Match::Yes
}

/// `22`, `80,443`, `8000:8100`, `any`.
pub fn port_in(port: u16, ports: &str) -> bool {
    ports == "any"
        || ports.split(',').any(|piece| match piece.split_once(':') {
            Some((lo, hi)) => match (lo.parse::<u16>(), hi.parse::<u16>()) {
                (Ok(lo), Ok(hi)) => (lo..=hi).contains(&port),
                _ => false,
            },
            None => piece.parse() == Ok(port),
        })
}

/// Whether the address or network `net` (`10.0.0.0/8`, `2001:db8::1`) holds `ip`.
fn contains(net: &str, ip: IpAddr) -> bool {
    let (address, prefix) = match net.split_once('/') {
        Some((a, p)) => (a, p.parse::<u32>().ok()),
        None => (net, None),
    };
    match (address.parse::<IpAddr>(), ip) {
        (Ok(IpAddr::V4(n)), IpAddr::V4(ip)) => {
            let bits = prefix.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(ip) & mask
        }
        (Ok(IpAddr::V6(n)), IpAddr::V6(ip)) => {
            let bits = prefix.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw(rules: Vec<Rule>, incoming: Policy) -> Firewall {
        Firewall {
            enabled: true,
            incoming,
            outgoing: Policy::Allow,
            ipv6: true,
            v4: rules.clone(),
            v6: rules
                .into_iter()
                .filter(|r| r.families(true).contains(&Family::V6))
                .collect(),
        }
    }

    fn rule(action: &str, port: &str, from: &str) -> Rule {
        Rule::incoming(action, "tcp", port, from, "")
    }

    fn over_ssh(port: u16) -> Guard {
        guards(
            Some(&format!("10.1.2.3 51514 10.0.0.2 {port}")),
            false,
            None,
        )
        .remove(0)
    }

    #[test]
    fn ssh_connection_and_sshd_fallback() {
        assert_eq!(
            guards(
                Some("::ffff:10.1.2.3 51514 ::ffff:10.0.0.2 2222"),
                true,
                None
            ),
            vec![Guard {
                port: 2222,
                client: Some("10.1.2.3".parse().unwrap()),
                server: Some("10.0.0.2".parse().unwrap()),
            }]
        );
        let fallback = guards(Some(""), true, Some("22 2200 "));
        assert_eq!(
            fallback.iter().map(|g| g.port).collect::<Vec<_>>(),
            [22, 2200]
        );
        assert_eq!(guards(None, true, Some(""))[0].port, 22);
        assert!(guards(None, false, None).is_empty());
    }

    #[test]
    fn default_deny_needs_an_allow_for_the_port() {
        let g = over_ssh(22);
        assert!(blocked(&g, &fw(vec![rule("allow", "22", "any")], Policy::Deny)).is_none());
        assert!(blocked(&g, &fw(vec![rule("limit", "22", "any")], Policy::Deny)).is_none());
        assert!(blocked(&g, &fw(vec![rule("allow", "20:30", "any")], Policy::Deny)).is_none());
        let err = blocked(&g, &fw(vec![rule("allow", "80,443", "any")], Policy::Deny)).unwrap();
        assert_eq!(
            err,
            "the default incoming policy `deny` would block the SSH port 22/tcp: no rule allows it"
        );
        // A different SSH port.
        assert!(
            blocked(
                &over_ssh(2222),
                &fw(vec![rule("allow", "22", "any")], Policy::Deny)
            )
            .is_some()
        );
        // Disabled or allowing by default: nothing blocks.
        let mut off = fw(vec![], Policy::Deny);
        off.enabled = false;
        assert!(blocked(&g, &off).is_none());
        assert!(blocked(&g, &fw(vec![], Policy::Allow)).is_none());
    }

    #[test]
    fn sources_are_checked_against_the_client() {
        let g = over_ssh(22);
        assert!(
            blocked(
                &g,
                &fw(vec![rule("allow", "22", "10.0.0.0/8")], Policy::Deny)
            )
            .is_none()
        );
        assert!(
            blocked(
                &g,
                &fw(vec![rule("allow", "22", "192.168.0.0/16")], Policy::Deny)
            )
            .is_some()
        );
        // First match wins: a deny for the client before the allow blocks.
        let err = blocked(
            &g,
            &fw(
                vec![rule("deny", "any", "10.1.2.3"), rule("allow", "22", "any")],
                Policy::Deny,
            ),
        )
        .unwrap();
        assert!(err.contains("`deny proto tcp from 10.1.2.3`"), "{err}");
        // ...but an allow before it wins.
        assert!(
            blocked(
                &g,
                &fw(
                    vec![rule("allow", "22", "any"), rule("deny", "22", "10.1.2.3")],
                    Policy::Deny
                )
            )
            .is_none()
        );
    }

    #[test]
    fn unknown_client_assumes_the_allowed_network() {
        let local = guards(None, true, Some("22"));
        let g = &local[0];
        assert!(
            blocked(
                g,
                &fw(vec![rule("allow", "22", "10.0.0.0/8")], Policy::Deny)
            )
            .is_none()
        );
        assert!(
            blocked(
                g,
                &fw(
                    vec![rule("deny", "22", "10.9.9.9"), rule("allow", "22", "any")],
                    Policy::Deny
                )
            )
            .is_none()
        );
        assert!(blocked(g, &fw(vec![rule("deny", "22", "any")], Policy::Allow)).is_some());
    }

    #[test]
    fn interface_rules_only_ever_block() {
        let g = over_ssh(22);
        let mut on_eth0 = rule("allow", "22", "any");
        on_eth0.iface_in = "eth0".into();
        assert!(blocked(&g, &fw(vec![on_eth0.clone()], Policy::Deny)).is_some());
        on_eth0.action = "deny".into();
        assert!(
            blocked(
                &g,
                &fw(vec![on_eth0, rule("allow", "22", "any")], Policy::Allow)
            )
            .is_some()
        );
    }

    #[test]
    fn ipv6_clients() {
        let g = guards(Some("2001:db8::7 40000 2001:db8::1 22"), false, None).remove(0);
        let v6_only = rule("allow", "22", "2001:db8::/32");
        assert!(blocked(&g, &fw(vec![v6_only], Policy::Deny)).is_none());
        let mut no_v6 = fw(vec![rule("allow", "22", "any")], Policy::Deny);
        no_v6.ipv6 = false;
        assert!(blocked(&g, &no_v6).unwrap().contains("IPV6=no"));
    }

    #[test]
    fn ports_and_networks() {
        assert!(port_in(22, "any"));
        assert!(port_in(22, "21,22"));
        assert!(port_in(22, "80,10:30"));
        assert!(!port_in(22, "2222"));
        assert!(contains("10.0.0.0/8", "10.255.0.1".parse().unwrap()));
        assert!(!contains("10.0.0.0/8", "11.0.0.1".parse().unwrap()));
        assert!(contains("10.1.2.3", "10.1.2.3".parse().unwrap()));
        assert!(contains("2001:db8::/32", "2001:db8:1::5".parse().unwrap()));
        assert!(!contains("2001:db8::/32", "10.0.0.1".parse().unwrap()));
        assert!(contains("0.0.0.0/0", "1.2.3.4".parse().unwrap()));
    }
}
