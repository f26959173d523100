//! Bastions on real hosts: h1 on the machine's bridge; h2 and h3 on a second bridge
//! that this machine has no route to, reached only through h1 (`ProxyJump`).

use crate::scenario::{Run, Scenario};
use crate::support::hosts::TestHosts;
use std::time::{Duration, Instant};

/// Three hosts, two behind h1, and a HOME whose ssh_config names h1 `bastion`.
fn behind_bastion(config: &str) -> Scenario {
    let s = Scenario::on(TestHosts::up_behind_bastion(3, 2));
    let key = s.hosts.key();
    s.home_file(
        ".ssh/config",
        &format!(
            "Host bastion {h1}\n  HostName {h1}\n  User root\n  IdentityFile {key}\n\n{config}",
            h1 = s.hosts.host("h1").ip,
            key = key.display()
        ),
    );
    s
}

const SITE: &str = r#"
- hosts: h2,h3
  tasks:
    - file: { path: /root/hello, content: "hello {{inventory_hostname}}\n" }
    - name: linger
      command: "sleep 3"
      changed_when: false
"#;

/// The peers of established SSH sessions on `host`'s port 22.
fn ssh_peers(s: &Scenario, host: &str) -> Vec<String> {
    s.sh(host, "ss -Htn state established '( sport = :22 )'")
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|peer| peer.rsplit_once(':').map_or(peer, |(ip, _)| ip).to_string())
        .collect()
}

#[test]
fn hosts_behind_a_bastion_converge_over_one_connection_to_it() {
    let s = behind_bastion("Host h2 h3\n  ProxyJump bastion\n");
    s.playbook(SITE);
    let controller = s.hosts.bridge_ip();
    let mut run = s.start(&["site.yml"]);
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while run.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        let from_here = ssh_peers(&s, "h1")
            .iter()
            .filter(|p| **p == controller)
            .count();
        most = most.max(from_here);
        std::thread::sleep(Duration::from_millis(200));
    }
    let run = Run::of(&["site.yml"], run.wait_with_output().expect("converge"));
    run.expect_code(0)
        .expect_changed("h2", 1)
        .expect_changed("h3", 1);
    assert_eq!(most, 1, "one TCP connection to the bastion for both hosts");
    for host in ["h2", "h3"] {
        assert_eq!(s.sh(host, "cat /root/hello"), format!("hello {host}\n"));
    }

    // Each hop's host key is checked: a wrong one for h2 refuses h2 alone...
    let known = s.home_path(".ssh/known_hosts");
    let good = std::fs::read_to_string(&known).unwrap();
    let key_of = |host: &str| {
        let ip = &s.hosts.host(host).ip;
        good.lines()
            .find(|l| l.starts_with(&format!("{ip} ")))
            .unwrap()
            .split_once(' ')
            .unwrap()
            .1
            .to_string()
    };
    let h2_ip = &s.hosts.host("h2").ip;
    let swapped = good.replace(&key_of("h2"), &key_of("h3"));
    std::fs::write(&known, &swapped).unwrap();
    let wrong_h2 = s.converge();
    wrong_h2.expect_code(1);
    assert_eq!(wrong_h2.recap("h2").4, 1);
    assert_eq!(wrong_h2.recap("h3").4, 0);
    assert!(
        wrong_h2.stdout.contains("the host key has CHANGED") && wrong_h2.stdout.contains(h2_ip),
        "{}",
        wrong_h2.stdout
    );
    // ... and a wrong one for the bastion refuses every host behind it.
    std::fs::write(&known, good.replace(&key_of("h1"), &key_of("h3"))).unwrap();
    let wrong_bastion = s.converge();
    wrong_bastion.expect_code(1);
    for host in ["h2", "h3"] {
        assert_eq!(wrong_bastion.recap(host).4, 1);
    }
    assert!(
        wrong_bastion
            .stdout
            .contains("through the bastion: host key verification failed for bastion"),
        "{}",
        wrong_bastion.stdout
    );
}

#[test]
fn proxy_jump_from_ansible_ssh_common_args_and_a_killed_bastion() {
    let s = behind_bastion("");
    let h1 = s.hosts.host("h1").ip.clone();
    let inventory = std::fs::read_to_string(s.path("inventory.yml")).unwrap();
    s.file(
        "inventory.yml",
        &format!(
            "{inventory}  vars:\n    ansible_ssh_common_args: '-o ProxyJump=root@{h1} -o ServerAliveInterval=5'\n"
        ),
    );
    s.playbook(SITE);
    let first = s.converge();
    first.expect_code(0).expect_changed("h2", 1);
    first.expect_stderr_contains(
        "converge reads only ProxyJump there; `-o ServerAliveInterval=5` is ignored",
    );
    // The hosts behind saw the bastion's inner address, not this machine's.
    assert!(s.sh("h2", "cat /root/hello") == "hello h2\n");

    let kill = || {
        let leader = s.hosts.leader_pid("h1").to_string();
        let status = std::process::Command::new("kill")
            .args(["-KILL", &leader])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let (run, took) = cut_the_bastion_mid_command(&s, kill);
    assert!(
        run.stdout.contains(&format!("the bastion {h1} was lost")),
        "{}",
        run.stdout
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn a_frozen_bastion_is_given_up_after_its_keepalives() {
    let s = behind_bastion("Host h2 h3\n  ProxyJump bastion\n");
    // sshd stops answering but nothing closes: only keepalives can tell.
    let freeze = || {
        s.sh("h1", "pkill -STOP -x sshd");
    };
    let (_, took) = cut_the_bastion_mid_command(&s, freeze);
    assert!(took < Duration::from_secs(75), "{took:?}");
}

/// Start a long command on the hosts behind the bastion, `cut` the bastion once it
/// runs, and wait for converge to give them up: its run, and how long that took.
fn cut_the_bastion_mid_command(s: &Scenario, cut: impl FnOnce()) -> (Run, Duration) {
    s.playbook("- hosts: h2,h3\n  tasks:\n    - name: long\n      command: \"sleep 300\"\n");
    let mut run = s.start(&["site.yml"]);
    let mut waited = 0;
    while !s
        .sh("h2", "pgrep -x sleep || true")
        .contains(char::is_numeric)
    {
        waited += 1;
        assert!(waited < 100, "the command never started on h2");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cut_at = Instant::now();
    cut();
    let deadline = cut_at + Duration::from_secs(120);
    while run.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the run hangs on a lost bastion");
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = cut_at.elapsed();
    let run = Run::of(&["site.yml"], run.wait_with_output().expect("converge"));
    run.expect_code(1);
    for host in ["h2", "h3"] {
        assert_eq!(run.recap(host).4, 1, "{host} unreachable:\n{}", run.stdout);
    }
    eprintln!("hosts behind the lost bastion given up after {took:?}");
    (run, took)
}
