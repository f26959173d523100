//! Real Debian test hosts (systemd + sshd in systemd-nspawn containers) for
//! end-to-end tests, via the `tests/hosts/testhosts` harness. Needs root.
//!
//! ```ignore
//! let hosts = TestHosts::up(2);
//! // converge ... -i hosts.inventory(), key hosts.key(), known hosts hosts.known_hosts()
//! assert_eq!(hosts.sh("h1", "cat /etc/hostname").trim(), "h1");
//! // dropped: `testhosts down`
//! ```
//!
//! Environment: `CONVERGE_TESTHOSTS_SUBNET` (default 198.51.100) picks the
//! subnet; `CONVERGE_KEEP_HOSTS=1` leaves the hosts up after the test (the
//! run dir is printed) for debugging, until `testhosts down RUNID` or the next
//! `up` on that subnet. Runs on one subnet are serialised by the harness: `up`
//! waits for a previous run on the same subnet to go away, and tears down at
//! once a run whose test process died without dropping it (`--owner-pid`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hosts/testhosts");

/// The live runs of this process: (bridge address, run id, run dir).
static LIVE: Mutex<Vec<(String, String, PathBuf)>> = Mutex::new(Vec::new());

/// The live run of this process whose bridge has the address `ip` (one run per
/// subnet): its run id and run dir.
pub fn run_with_bridge_ip(ip: &str) -> Option<(String, PathBuf)> {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(bridge, _, _)| bridge == ip)
        .map(|(_, id, dir)| (id.clone(), dir.clone()))
}

/// How long `up` waits for another run on the same subnet to finish.
const LOCK_WAIT_SECS: u32 = 1800;

pub struct TestHosts {
    pub run_dir: PathBuf,
    pub hosts: Vec<TestHost>,
    run_id: String,
}

#[derive(Clone, Debug)]
pub struct TestHost {
    pub name: String,
    pub ip: String,
}

impl TestHosts {
    /// Boots `n` hosts named `h1..hN`; panics with the harness's stderr if
    /// that fails.
    pub fn up(n: usize) -> TestHosts {
        let run_id = new_run_id();
        let mut cmd = Command::new(SCRIPT);
        cmd.args([
            "up",
            &run_id,
            &n.to_string(),
            "--wait",
            &LOCK_WAIT_SECS.to_string(),
            // Ties the run to this test process: if it dies without Drop,
            // the next `up` on the subnet removes the orphaned hosts.
            "--owner-pid",
            &std::process::id().to_string(),
        ]);
        if let Ok(subnet) = std::env::var("CONVERGE_TESTHOSTS_SUBNET") {
            cmd.args(["--subnet", &subnet]);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {SCRIPT}: {e}"));
        if !out.status.success() {
            panic!(
                "testhosts up {run_id} {n} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let run_dir = PathBuf::from(
            stdout
                .lines()
                .last()
                .unwrap_or_else(|| {
                    panic!(
                        "testhosts up printed no run dir; stderr:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                })
                .trim(),
        );
        // From here on, Drop tears the run down even if parsing fails.
        let mut hosts = TestHosts {
            run_dir,
            hosts: Vec::new(),
            run_id,
        };
        hosts.hosts = read_hosts(&hosts.run_dir.join("hosts.json"));
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push((
            hosts.bridge_ip(),
            hosts.run_id.clone(),
            hosts.run_dir.clone(),
        ));
        assert_eq!(
            hosts.hosts.len(),
            n,
            "hosts.json lists {} hosts, expected {n}",
            hosts.hosts.len()
        );
        hosts
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Ansible-style YAML inventory: `all: {hosts: {h1: {ansible_host, ansible_user: root,
    /// ansible_ssh_private_key_file}}}`.
    pub fn inventory(&self) -> PathBuf {
        self.run_dir.join("inventory.yml")
    }

    /// The run's client private key (ed25519, no passphrase); authorised for
    /// `root` and `deploy` (NOPASSWD sudo) on every host.
    pub fn key(&self) -> PathBuf {
        self.run_dir.join("id_ed25519")
    }

    /// `IP ssh-ed25519 KEY` for every host (sshd offers only that key).
    pub fn known_hosts(&self) -> PathBuf {
        self.run_dir.join("known_hosts")
    }

    /// An OpenSSH client config: `ssh -F <this> h1` works.
    pub fn ssh_config(&self) -> PathBuf {
        self.run_dir.join("ssh_config")
    }

    /// The host named `name` (`h1`...); panics if there is none.
    pub fn host(&self, name: &str) -> &TestHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no test host named {name}"))
    }

    /// Runs `cmd` with `/bin/sh -c` as root inside `host`, without SSH.
    pub fn exec(&self, host: &str, cmd: &str) -> Output {
        Command::new(SCRIPT)
            .args(["exec", &self.run_id, host, "--", "/bin/sh", "-c", cmd])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {SCRIPT}: {e}"))
    }

    /// Like `exec`, but panics unless `cmd` exits 0; returns its stdout.
    pub fn sh(&self, host: &str, cmd: &str) -> String {
        let out = self.exec(host, cmd);
        if !out.status.success() {
            panic!(
                "on {host}: `{cmd}` failed ({})\nstdout:\n{}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The machine's address on the hosts' bridge (the hosts' apt repository
    /// is served there, port 8099).
    pub fn bridge_ip(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("bridge_ip"))
            .unwrap_or_else(|e| panic!("cannot read {}/bridge_ip: {e}", self.run_dir.display()))
            .trim()
            .to_string()
    }
}

impl Drop for TestHosts {
    fn drop(&mut self) {
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(_, id, _)| *id != self.run_id);
        if std::env::var_os("CONVERGE_KEEP_HOSTS").is_some_and(|v| v != "0" && !v.is_empty()) {
            eprintln!(
                "CONVERGE_KEEP_HOSTS: leaving run {} up at {}; `{SCRIPT} down {}` removes it",
                self.run_id,
                self.run_dir.display(),
                self.run_id
            );
            return;
        }
        match Command::new(SCRIPT).args(["down", &self.run_id]).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "testhosts down {} failed ({}):\n{}",
                self.run_id,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("cannot run {SCRIPT} down {}: {e}", self.run_id),
        }
    }
}

/// Short (machine names and a 15-char bridge name derive from it) and unique
/// across processes (pid), time and calls within one process (counter).
fn new_run_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "e{}{}{}",
        base36(u128::from(std::process::id()) % 36u128.pow(4)),
        base36(u128::from(n) % 36),
        base36(millis % 36u128.pow(4))
    )
}

fn base36(mut v: u128) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

fn read_hosts(path: &Path) -> Vec<TestHost> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let value: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()));
    value
        .as_array()
        .unwrap_or_else(|| panic!("{} is not a JSON array", path.display()))
        .iter()
        .map(|h| TestHost {
            name: h["name"].as_str().expect("host name").to_string(),
            ip: h["ip"].as_str().expect("host ip").to_string(),
        })
        .collect()
}
