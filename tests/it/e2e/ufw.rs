//! `ufw` on a real host (its own network namespace): rules for IPv4 and IPv6, enabling,
//! drift, purge, and never locking out the SSH connection — also through sudo.

use crate::scenario::Scenario;

const SITE: &str = r#"
- hosts: all
  tasks:
    - ufw:
        default_incoming: deny
        default_outgoing: allow
        enabled: true
        allow: ["22/tcp", "80/tcp", { port: 9100, proto: tcp, from: 10.0.0.0/8, comment: "node exporter; metrics" }]
        limit: ["2222/tcp"]
"#;

fn status(s: &Scenario) -> String {
    s.sh("h1", "ufw status verbose")
}

/// Whether this machine can open a TCP connection to h1's `port`.
fn reachable(s: &Scenario, port: u16) -> bool {
    let ip = &s.hosts.host("h1").ip;
    std::net::TcpStream::connect_timeout(
        &format!("{ip}:{port}").parse().expect("address"),
        std::time::Duration::from_secs(2),
    )
    .is_ok()
}

#[test]
fn ufw_converges_reruns_and_repairs_drift() {
    let s = Scenario::new(1);
    s.sh("h1", "nohup python3 -m http.server 8081 >/dev/null 2>&1 &");
    s.playbook(SITE);

    s.diff()
        .expect_code(2)
        .expect_stdout_contains("--- h1:ufw (current)\n+++ h1:ufw (desired)")
        .expect_stdout_contains("-enabled: no\n")
        .expect_stdout_contains("+enabled: yes\n")
        .expect_stdout_contains("+allow 9100/tcp from 10.0.0.0/8 # node exporter; metrics\n")
        .expect_stdout_contains("+limit 2222/tcp\n");
    assert!(status(&s).contains("Status: inactive"));
    assert!(reachable(&s, 8081));

    s.converge().expect_code(0).expect_changed("h1", 1);
    let st = status(&s);
    assert!(st.contains("Status: active"), "{st}");
    assert!(
        st.contains("Default: deny (incoming), allow (outgoing)"),
        "{st}"
    );
    for line in [
        "22/tcp                     ALLOW IN    Anywhere",
        "9100/tcp                   ALLOW IN    10.0.0.0/8                 # node exporter; metrics",
        "2222/tcp                   LIMIT IN    Anywhere",
        "80/tcp (v6)                ALLOW IN    Anywhere (v6)",
    ] {
        assert!(st.contains(line), "{line:?} in\n{st}");
    }
    // The firewall is live: nginx on 80 answers, the listener on 8081 is cut off.
    assert!(reachable(&s, 80));
    assert!(!reachable(&s, 8081));

    // Rerun over a new SSH connection through the enabled firewall: nothing to do.
    s.converge().expect_code(0).expect_changed("h1", 0);
    s.diff().expect_code(0);

    // Drift: a rule gone, another added by hand, a comment changed.
    s.sh(
        "h1",
        "ufw delete allow 80/tcp && ufw allow 8080/tcp && \
         ufw allow proto tcp from 10.0.0.0/8 to any port 9100 comment old",
    );
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("-allow 9100/tcp from 10.0.0.0/8 # old\n")
        .expect_stdout_contains("+allow 80/tcp\n")
        .expect_stdout_contains(" allow 8080/tcp\n");
    s.converge().expect_code(0).expect_changed("h1", 1);
    let st = status(&s);
    assert!(st.contains("80/tcp                     ALLOW IN"), "{st}");
    assert!(st.contains("# node exporter; metrics"), "{st}");
    // Without purge, a rule added by hand stays.
    assert!(st.contains("8080/tcp                   ALLOW IN"), "{st}");
    s.converge().expect_code(0).expect_changed("h1", 0);

    // purge: rules not in the playbook go, from both families.
    s.playbook(&SITE.replace("enabled: true", "enabled: true\n        purge: true"));
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("-allow 8080/tcp\n");
    s.converge().expect_code(0).expect_changed("h1", 1);
    let st = status(&s);
    assert!(!st.contains("8080"), "{st}");
    assert!(st.contains("22/tcp (v6)"), "{st}");
    s.converge().expect_code(0).expect_changed("h1", 0);
}

/// The test hosts' `deploy` user, which becomes root with sudo.
fn deploy_inventory(s: &Scenario) {
    s.file(
        "inventory.yml",
        &format!(
            "all:\n  hosts:\n    h1:\n      ansible_host: {}\n      ansible_user: deploy\n      \
             ansible_ssh_private_key_file: {}\n",
            s.hosts.host("h1").ip,
            s.hosts.key().display()
        ),
    );
}

fn site(allow: &str) -> String {
    format!(
        "- hosts: all\n  become: true\n  tasks:\n    - ufw: {{ default_incoming: deny, enabled: true, allow: {allow} }}\n"
    )
}

#[test]
fn the_ssh_connection_is_never_locked_out() {
    let s = Scenario::new(1);
    deploy_inventory(&s);

    // Default deny without the SSH port: refused (check mode and apply), nothing changed.
    s.playbook(&site(r#"["80/tcp"]"#));
    s.diff()
        .expect_code(1)
        .expect_stdout_contains("refusing to change ufw: the default incoming policy `deny` would block the SSH port 22/tcp");
    s.converge().expect_code(1);
    assert!(status(&s).contains("Status: inactive"));

    // SSH allowed only from a network the connection does not come from: refused.
    s.playbook(&site(r#"[{ port: 22, proto: tcp, from: 192.0.2.0/24 }]"#));
    s.converge()
        .expect_code(1)
        .expect_stdout_contains("would block the SSH port 22/tcp");
    assert!(status(&s).contains("Status: inactive"));

    // ...and from the network it does come from (sudo hides SSH_CONNECTION; the
    // probe finds it in the ancestor's environment): fine.
    let bridge = s.hosts.bridge_ip();
    let subnet = format!("{}.0/24", bridge.rsplit_once('.').expect("ip").0);
    s.playbook(&site(&format!(
        r#"[{{ port: 22, proto: tcp, from: "{subnet}" }}]"#
    )));
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert!(status(&s).contains("Status: active"));
    s.converge().expect_code(0).expect_changed("h1", 0);

    // Purging the rule that lets SSH in: refused, the rule stays.
    s.playbook(
        "- hosts: all\n  become: true\n  tasks:\n    - ufw: { allow: [\"80/tcp\"], purge: true }\n",
    );
    s.converge()
        .expect_code(1)
        .expect_stdout_contains("would block the SSH port 22/tcp");
    assert!(status(&s).contains(&subnet));

    // An explicit deny of SSH: refused before any host is touched.
    s.playbook("- hosts: all\n  tasks:\n    - ufw: { deny: [\"22/tcp\"] }\n");
    s.converge().expect_code(3).expect_stderr_contains(
        "site.yml:3:21: ufw: `deny[0]`: this denies SSH (22/tcp) from everywhere",
    );
}

#[test]
fn a_change_is_reported_once_the_kernel_holds_it() {
    let s = Scenario::new(1);
    s.sh("h1", "nohup python3 -m http.server 8081 >/dev/null 2>&1 &");
    s.playbook(SITE);
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert!(!reachable(&s, 8081));

    // A new rule filters at once.
    s.playbook(&SITE.replace("\"80/tcp\",", "\"80/tcp\", \"8081/tcp\","));
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert!(reachable(&s, 8081));

    // ufw's files say enabled, the kernel holds nothing: that is drift, repaired by loading them.
    s.sh("h1", "nohup python3 -m http.server 8082 >/dev/null 2>&1 &");
    s.sh("h1", "systemctl stop ufw");
    assert!(reachable(&s, 8082));
    s.diff()
        .expect_code(2)
        .expect_stdout_contains("-loaded: no\n+loaded: yes\n");
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert!(!reachable(&s, 8082));
    assert!(reachable(&s, 8081));
    s.converge().expect_code(0).expect_changed("h1", 0);
}

/// Records each start of ufw's CLI in /root/ufw-cli, then runs it.
const CLI_SPY: &str = "mv /usr/sbin/ufw /usr/sbin/ufw.real && \
    printf '#!/bin/sh\\necho \"$*\" >> /root/ufw-cli\\nexec /usr/sbin/ufw.real \"$@\"\\n' > /usr/sbin/ufw && \
    chmod 755 /usr/sbin/ufw";

/// Records each run of ufw's shell init in /root/ufw-init: /lib/ufw/ufw-init sources
/// ufw.conf first thing, so a line there sees it (`$0`) and its command (`$1`); the
/// script itself stays the package's, which the fast path checks before reproducing it.
/// (Each run records its command twice: ufw-init-functions sources ufw.conf again.)
const INIT_SPY: &str = "printf '%s\\n' 'case $0 in */ufw-init) echo \"$1\" >> /root/ufw-init ;; esac' \
    >> /etc/ufw/ufw.conf";

/// What must be the same on a host converged without the CLI and on one converged with it.
fn ufw_outcome(s: &Scenario, host: &str) -> Vec<(String, String)> {
    // Counters and iptables-save's comment lines (dates) aside, the kernel's tables.
    let save = |exe: &str| format!("{exe}-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]$//'");
    [
        "cat /etc/ufw/user.rules",
        "cat /etc/ufw/user6.rules",
        "cat /etc/default/ufw",
        "cat /etc/ufw/ufw.conf",
        "cat /etc/ufw/after.rules /etc/ufw/after6.rules",
        "stat -c '%n %U %G %a' /etc/ufw/user.rules /etc/ufw/user6.rules /etc/default/ufw /etc/ufw/ufw.conf",
        "/usr/sbin/ufw.real status verbose",
        &save("iptables"),
        &save("ip6tables"),
        // What ufw-init sets on each start (/etc/ufw/sysctl.conf).
        "sysctl -e $(sed -n 's/^\\([a-z][^=]*\\)=.*/\\1/p' /etc/ufw/sysctl.conf)",
    ]
    .iter()
    .map(|cmd| (cmd.to_string(), s.sh(host, cmd)))
    .collect()
}

/// The CLI's starts since the last call, on `host`.
fn cli_runs(s: &Scenario, host: &str) -> String {
    s.sh(host, "cat /root/ufw-cli 2>/dev/null; rm -f /root/ufw-cli")
}

/// ufw-init's runs since the last call, on `host`.
fn init_runs(s: &Scenario, host: &str) -> String {
    s.sh(host, "cat /root/ufw-init 2>/dev/null; rm -f /root/ufw-init")
}

/// Sysctls ufw-init sets, set otherwise on both hosts before a step: a start must set
/// them again, a reload of the rules alone must not.
fn unset_sysctls(s: &Scenario) {
    for h in ["h1", "h2"] {
        s.sh(
            h,
            "sysctl -q -w net.ipv4.conf.all.accept_redirects=1 net.ipv4.icmp_echo_ignore_broadcasts=0 \
             net.ipv6.conf.default.accept_redirects=1",
        );
    }
}

/// After a step: h1 loaded the kernel without ufw's CLI and without ufw-init, h2 with
/// both (when `h2_init`, as the CLI runs ufw-init only to start the firewall).
fn assert_fast(s: &Scenario, step: &str, h2_init: bool) {
    assert_eq!(cli_runs(s, "h1"), "", "{step}: h1 ran ufw's CLI");
    assert_eq!(init_runs(s, "h1"), "", "{step}: h1 ran ufw-init");
    assert_ne!(cli_runs(s, "h2"), "", "{step}: h2 did not run ufw's CLI");
    assert_eq!(
        init_runs(s, "h2").contains("start"),
        h2_init,
        "{step}: h2's ufw-init runs"
    );
}

fn assert_same_outcome(s: &Scenario, step: &str) {
    for ((cmd, fast), (_, cli)) in ufw_outcome(s, "h1").iter().zip(ufw_outcome(s, "h2")) {
        assert_eq!(
            fast, &cli,
            "{step}: `{cmd}` differs between h1 (without the CLI) and h2 (with it)"
        );
    }
}

/// The fast path (modules/ufw/fast.rs) against the real thing: h1 converges without
/// ufw's CLI; on h2 the ufw package's record is altered, so converge cannot prove it and
/// runs the `ufw` commands. ufw's files, `ufw status verbose`, the kernel's tables and
/// the sysctls ufw sets must be the same bytes, after enabling from disabled (rules
/// replaced and purged, default policies), after a policy change while enabled, after
/// rules alone change, and after repairing a kernel that lost ufw's rules (unit stopped,
/// or flushed by hand) while the files say enabled. h1 loads the kernel with neither
/// ufw's CLI nor ufw-init (fast.rs's `ufw_load`, one ip[6]tables-restore a family).
#[test]
fn without_its_cli_ufw_ends_byte_for_byte_as_with_it() {
    let s = Scenario::new(2);
    for h in ["h1", "h2"] {
        s.sh(h, CLI_SPY);
        s.sh(h, INIT_SPY);
        // Rules ufw itself added: one replaced in place, two purged.
        s.sh(
            h,
            "ufw deny proto tcp from any to any port 80 comment old && ufw allow 8080/tcp && \
             ufw allow proto udp from 192.0.2.0/24 to any port 5000",
        );
    }
    s.sh(
        "h2",
        "echo '# not the proven package' >> /var/lib/dpkg/info/ufw.md5sums",
    );
    for h in ["h1", "h2"] {
        cli_runs(&s, h);
        init_runs(&s, h);
    }

    let bridge = s.hosts.bridge_ip();
    let subnet = format!("{}.0/24", bridge.rsplit_once('.').expect("ip").0);
    let site = |incoming: &str, extra: &str| {
        format!(
            r#"
- hosts: all
  tasks:
    - ufw:
        default_incoming: {incoming}
        default_outgoing: allow
        enabled: true
        purge: true
        allow:
          - "22/tcp"
          - "53/udp"
          - "123"
          - "80,443/tcp"
          - "8000:8100/udp"
          - "80/tcp"
          - {{ port: 9100, proto: tcp, from: 10.0.0.0/8, comment: "node exporter; metrics" }}
          - {{ port: 9200, proto: tcp, from: "2001:db8::/32", comment: "v6 only" }}
          - {{ from: "{subnet}" }}{extra}
        limit: ["2222/tcp", "2223"]
        deny: [{{ port: 25, proto: tcp, from: 192.0.2.7 }}, "3000", "4003/udp"]
"#
        )
    };

    // Enabling from disabled, with rules replaced and purged and a new default.
    s.playbook(&site("reject", ""));
    unset_sysctls(&s);
    s.converge()
        .expect_code(0)
        .expect_changed("h1", 1)
        .expect_changed("h2", 1);
    assert_fast(&s, "enabling", true);
    assert_same_outcome(&s, "enabling");
    let st = s.sh("h1", "/usr/sbin/ufw.real status verbose");
    assert!(st.contains("Status: active"), "{st}");
    assert!(
        st.contains("Default: reject (incoming), allow (outgoing)"),
        "{st}"
    );
    assert!(!st.contains("8080"), "{st}");
    s.converge()
        .expect_code(0)
        .expect_changed("h1", 0)
        .expect_changed("h2", 0);

    // A policy change while enabled (ufw restarts the firewall), a rule more.
    s.playbook(&site("deny", "\n          - \"7000:7010/tcp\""));
    unset_sysctls(&s);
    s.converge()
        .expect_code(0)
        .expect_changed("h1", 1)
        .expect_changed("h2", 1);
    assert_fast(&s, "default deny while enabled", true);
    assert_same_outcome(&s, "default deny while enabled");

    // Rules alone while enabled: one gone (purge), one changed in place, one new. On h1
    // someone holds ufw's lock: like the CLI, converge waits for it before writing.
    s.sh(
        "h1",
        "nohup python3 -c \"import fcntl, os, time\nf = open('/run/ufw.lock', 'w')\n\
         fcntl.lockf(f, fcntl.LOCK_EX)\nopen('/root/lock-held', 'w').write('held')\n\
         while not os.path.exists('/root/release'): time.sleep(0.1)\n\" >/dev/null 2>&1 &",
    );
    s.sh_until("h1", "cat /root/lock-held 2>/dev/null || true", "held");
    let rules_before = s.sh("h1", "cat /etc/ufw/user.rules");
    unset_sysctls(&s);
    s.playbook(
        &site(
            "deny",
            "\n          - { port: 7100, proto: udp, comment: new }",
        )
        .replace("\"123\"", "{ port: 123, comment: ntp }"),
    );
    let run = s.start(&["site.yml"]);
    // converge's locker, waiting for the lock.
    s.sh_until(
        "h1",
        "pgrep -f '^perl -e use Fcntl' >/dev/null && echo waiting || true",
        "waiting",
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(
        s.sh("h1", "cat /etc/ufw/user.rules"),
        rules_before,
        "h1's rules were written while someone else held ufw's lock"
    );
    s.sh("h1", "touch /root/release");
    let out = run.wait_with_output().expect("converge");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_fast(&s, "rules while enabled", false);
    assert_same_outcome(&s, "rules while enabled");
    s.converge()
        .expect_code(0)
        .expect_changed("h1", 0)
        .expect_changed("h2", 0);
    s.diff().expect_code(0);

    // The files say enabled, the kernel lost ufw's rules: repaired by `ufw reload` on h2,
    // by ufw_load on h1. First with ufw's unit stopped (its primary chains stay, empty),
    // then flushed by hand (no ufw chain left).
    for (step, lose) in [
        ("unit stopped", "systemctl stop ufw"),
        (
            "flushed by hand",
            "for e in iptables ip6tables; do $e -F; $e -X; for c in INPUT OUTPUT FORWARD; do $e -P $c ACCEPT; done; done",
        ),
    ] {
        for h in ["h1", "h2"] {
            s.sh(h, lose);
            init_runs(&s, h);
        }
        unset_sysctls(&s);
        s.diff()
            .expect_code(2)
            .expect_stdout_contains("-loaded: no\n+loaded: yes\n");
        s.converge()
            .expect_code(0)
            .expect_changed("h1", 1)
            .expect_changed("h2", 1);
        assert_fast(&s, step, true);
        assert_same_outcome(&s, step);
        s.converge()
            .expect_code(0)
            .expect_changed("h1", 0)
            .expect_changed("h2", 0);
    }

    // A shape ufw_load does not reproduce (an executable before.init, which ufw-init
    // runs): h1 still writes the files without the CLI, and loads them with ufw-init.
    for h in ["h1", "h2"] {
        s.sh(h, "chmod 750 /etc/ufw/before.init");
    }
    s.playbook(&site("reject", "\n          - \"7000:7010/tcp\""));
    unset_sysctls(&s);
    s.converge()
        .expect_code(0)
        .expect_changed("h1", 1)
        .expect_changed("h2", 1);
    assert_eq!(cli_runs(&s, "h1"), "", "h1 ran ufw's CLI");
    let runs = init_runs(&s, "h1");
    assert!(
        runs.starts_with("force-stop\n") && runs.ends_with("\nstart\n"),
        "h1 did not leave the load to ufw-init: {runs:?}"
    );
    assert_same_outcome(&s, "executable before.init");
}

/// What only the host can tell (here: IPv6 `limit` support, which ufw tests before each
/// write) decides in the same exec: the fast path stops before changing anything and the
/// `ufw` commands run instead.
#[test]
fn a_host_that_cannot_take_the_fast_path_runs_the_cli_in_the_same_exec() {
    let s = Scenario::new(1);
    s.sh("h1", CLI_SPY);
    // converge's ip6tables-restore (first in root's PATH; ufw itself calls
    // /usr/sbin/ip6tables-restore) refuses the `recent` match, as on a kernel without
    // xt_recent.
    s.sh(
        "h1",
        "printf '#!/bin/sh\\nin=$(cat)\\ncase \"$in\" in *\" recent \"*) exit 1;; esac\\n\
         printf \"%%s\\\\n\" \"$in\" | exec /usr/sbin/ip6tables-restore \"$@\"\\n' \
         > /usr/local/sbin/ip6tables-restore && chmod 755 /usr/local/sbin/ip6tables-restore",
    );
    s.playbook(
        "- hosts: all\n  tasks:\n    - ufw: { default_incoming: deny, enabled: true, allow: [\"22/tcp\", \"80/tcp\"] }\n",
    );
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert!(cli_runs(&s, "h1").contains("enable"), "the CLI did not run");
    let v6 = s.sh("h1", "cat /etc/ufw/user6.rules");
    assert!(
        v6.contains("### tuple ### allow tcp 80 ::/0 any ::/0 in"),
        "{v6}"
    );
    assert!(
        s.sh("h1", "/usr/sbin/ufw.real status")
            .contains("Status: active")
    );
    // Converged: nothing to do; the next change goes the same way.
    s.converge().expect_code(0).expect_changed("h1", 0);
    s.playbook(
        "- hosts: all\n  tasks:\n    - ufw: { default_incoming: deny, enabled: true, allow: [\"22/tcp\", \"80/tcp\", \"443/tcp\"] }\n",
    );
    s.converge().expect_code(0).expect_changed("h1", 1);
    assert!(cli_runs(&s, "h1").contains("443"), "the CLI did not run");
}
