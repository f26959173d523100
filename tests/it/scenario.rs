//! A fluent builder for end-to-end runs of the real `converge` binary against real
//! container hosts: `Scenario::new(3).playbook(..).converge().expect_changed(..)`.

pub use crate::run::Run;
use crate::support::hosts::TestHosts;
use std::path::PathBuf;
use std::process::Command;

pub struct Scenario {
    pub hosts: TestHosts,
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Scenario {
    /// `n` fresh hosts `h1..hN`, an empty playbook folder with their inventory, and a
    /// HOME whose known_hosts trusts exactly their keys.
    pub fn new(n: usize) -> Scenario {
        let hosts = TestHosts::up(n);
        let dir = tempfile::tempdir().expect("temp dir");
        let home = tempfile::tempdir().expect("temp home");
        std::fs::copy(hosts.inventory(), dir.path().join("inventory.yml")).expect("inventory");
        let ssh = home.path().join(".ssh");
        std::fs::create_dir_all(&ssh).expect(".ssh");
        std::fs::copy(hosts.known_hosts(), ssh.join("known_hosts")).expect("known_hosts");
        Scenario { hosts, dir, home }
    }

    /// Write `site.yml`.
    pub fn playbook(&self, yaml: &str) -> &Scenario {
        self.file("site.yml", yaml)
    }

    /// Write a file beside the playbook.
    pub fn file(&self, relative: &str, content: &str) -> &Scenario {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent");
        }
        std::fs::write(path, content).expect("write");
        self
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_converge"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .env("NO_COLOR", "1");
        command
    }

    /// Run `converge ARGS` in the playbook folder.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run converge");
        Run::of(args, out)
    }

    /// Start `converge ARGS` and return at once, to act on hosts while it runs.
    pub fn start(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start converge")
    }

    pub fn converge(&self) -> Run {
        self.run(&["site.yml"])
    }

    pub fn diff(&self) -> Run {
        self.run(&["diff", "site.yml"])
    }

    pub fn sh(&self, host: &str, cmd: &str) -> String {
        self.hosts.sh(host, cmd)
    }

    /// The output of `cmd` once it contains `want`, retried for up to 10 s: for what
    /// settles after the run (a reloaded nginx, a service that is still binding its port).
    pub fn sh_until(&self, host: &str, cmd: &str, want: &str) -> String {
        let mut last = String::new();
        for _ in 0..50 {
            let out = self.hosts.exec(host, cmd);
            last = String::from_utf8_lossy(&out.stdout).into_owned();
            if last.contains(want) {
                return last;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("on {host}: `{cmd}` never printed {want:?}; last output:\n{last}");
    }
}
