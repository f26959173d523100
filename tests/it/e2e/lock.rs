//! The host lock on a real host: two controllers (two playbook folders, so their own
//! run locks differ) never converge one host at once; the lock dies with its holder's
//! connection, after kill -9 at once, after a cut cable within about a minute (and not
//! while the connection lives, however long).

use crate::scenario::{Run, Scenario};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The first controller: marks that it started, then stays busy on the host.
const BUSY: &str = r#"
- hosts: all
  tasks:
    - command: "touch /root/busy-started; sleep 300"
"#;

/// The second controller's playbook, in a folder of its own.
const OTHER: &str = r#"
- hosts: all
  tasks:
    - file: { path: /root/second, content: "second\n" }
"#;

/// A second controller: its own playbook folder and HOME, the same host.
struct Other {
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Other {
    fn new(s: &Scenario) -> Other {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = tempfile::tempdir().expect("temp home");
        std::fs::write(dir.path().join("site.yml"), OTHER).expect("site.yml");
        std::fs::copy(s.hosts.inventory(), dir.path().join("inventory.yml")).expect("inventory");
        std::fs::create_dir_all(home.path().join(".ssh")).expect(".ssh");
        std::fs::copy(s.hosts.known_hosts(), home.path().join(".ssh/known_hosts"))
            .expect("known_hosts");
        Other { dir, home }
    }

    fn converge(&self) -> Run {
        self.run(&["site.yml"])
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_converge"))
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .env("NO_COLOR", "1")
            .output()
            .expect("run converge");
        Run::of(args, out)
    }
}

/// Wait until `path` exists on h1: the first controller is in its long task.
fn wait_for(s: &Scenario, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.hosts.exec("h1", &format!("test -e {path}")).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "{path} never appeared on h1");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn controller_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

#[test]
fn a_second_controller_is_refused_the_host_until_the_first_is_gone() {
    let s = Scenario::new(1);
    s.playbook(BUSY);
    let other = Other::new(&s);

    let mut first = s.start(&["site.yml"]);
    wait_for(&s, "/root/busy-started");

    // The second controller: exit 4, the holder named, nothing done on the host.
    let refused = other.converge();
    refused
        .expect_code(4)
        .expect_stdout_contains("locked h1: another converge run holds this host (")
        .expect_stdout_contains(&format!(
            "@{}, pid {}, since 20",
            controller_hostname(),
            first.id()
        ));
    assert_eq!(refused.recap("h1"), (0, 0, 0, 0, 0));
    assert_eq!(
        s.hosts.exec("h1", "test -e /root/second").status.code(),
        Some(1),
        "the refused run changed the host"
    );
    // Diff changes nothing and takes no host lock: it still answers during the apply.
    other
        .run(&["diff", "site.yml"])
        .expect_code(2)
        .expect_stdout_contains("+++ h1:/root/second (desired)");

    // kill -9: the connection closes, and with it the lock, at once.
    first.kill().expect("kill -9 the first controller");
    first.wait().expect("wait");
    let started = Instant::now();
    other.converge().expect_code(0).expect_changed("h1", 1);
    eprintln!(
        "after kill -9, the next run converged in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(s.sh("h1", "cat /root/second"), "second\n");
}

/// The bridge port of h1's veth (host side), to cut its cable.
fn veth_of(run_dir: &Path) -> String {
    let bridge = std::fs::read_to_string(run_dir.join("bridge")).expect("bridge name");
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge.trim()])
        .output()
        .expect("ip link");
    let text = String::from_utf8_lossy(&out.stdout);
    let port = text
        .lines()
        .find_map(|l| l.split(": ").nth(1))
        .unwrap_or_else(|| panic!("no port on the bridge: {text}"));
    port.split('@').next().unwrap_or(port).to_string()
}

fn link(port: &str, state: &str) {
    let status = Command::new("ip")
        .args(["link", "set", port, state])
        .status()
        .expect("ip link set");
    assert!(status.success(), "ip link set {port} {state}");
}

#[test]
fn a_cut_cable_frees_the_host_lock_within_about_a_minute() {
    let s = Scenario::new(1);
    s.playbook(BUSY);
    let mut first = s.start(&["site.yml"]);
    wait_for(&s, "/root/busy-started");
    // 75 (EX_TEMPFAIL) only when the lock is held, not when the file is missing.
    let free = "flock -n -E 75 /run/converge/host.lock true";
    assert_eq!(
        s.hosts.exec("h1", free).status.code(),
        Some(75),
        "the first controller holds no lock on the host"
    );
    // With the cable in, heartbeats keep it past the host's minute of patience.
    std::thread::sleep(Duration::from_secs(70));
    assert_eq!(
        s.hosts.exec("h1", free).status.code(),
        Some(75),
        "a live controller lost its lock"
    );

    let port = veth_of(&s.hosts.run_dir);
    link(&port, "down");
    let cut = Instant::now();
    // Looked at from inside the container, not over the network.
    while s.hosts.exec("h1", free).status.code() != Some(0) {
        if cut.elapsed() > Duration::from_secs(90) {
            link(&port, "up");
            panic!("the lock is still held 90 s after the cable was cut");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let freed = cut.elapsed();
    link(&port, "up");
    eprintln!(
        "cable cut: the host freed the lock after {:.1} s",
        freed.as_secs_f64()
    );
    let _ = first.kill();
    let _ = first.wait();
    assert!(
        freed < Duration::from_secs(75),
        "freed after {freed:?}, not within about a minute"
    );
    // And a controller is let in again, once the link is back (ARP settles after `up`).
    let ssh: std::net::SocketAddr = format!("{}:22", s.hosts.host("h1").ip)
        .parse()
        .expect("host address");
    let back = Instant::now();
    while std::net::TcpStream::connect_timeout(&ssh, Duration::from_secs(1)).is_err() {
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "h1 unreachable after the link came back"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    Other::new(&s).converge().expect_code(0);
}
