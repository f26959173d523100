//! A real OpenSSH server on loopback for integration tests: `/usr/sbin/sshd` run as root
//! on 127.0.0.1 with a fresh ed25519 host key and one authorized client key, stopped on
//! Drop. Needs root and the `openssh-server` package (the machine image has only the
//! client).

// Each test binary that includes the support module uses a different part of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: TempDir,
    /// Unencrypted ed25519 private key, authorized for every user.
    pub client_key: PathBuf,
    /// The server's host key as `ssh-ed25519 AAAA...` (or `ssh-rsa AAAA...`).
    pub host_key: String,
    log: PathBuf,
}

/// Generate a key pair with ssh-keygen: `kind` is `ed25519`, `rsa` or `ecdsa`; an empty
/// passphrase leaves the key unencrypted. Returns the private key path.
pub fn keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen -t {kind} failed");
    path
}

/// The public half of a key made by [`keygen`], as `type base64` without the comment.
pub fn public_key(private_key: &Path) -> String {
    let text = fs::read_to_string(private_key.with_extension("pub")).expect("public key file");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

fn wait_listening(child: &mut Child, log: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if fs::read_to_string(log).is_ok_and(|l| l.contains("Server listening")) {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Sshd {
    pub fn start() -> Sshd {
        Sshd::start_with("")
    }

    /// Start with extra `sshd_config` lines appended.
    pub fn start_with(extra_config: &str) -> Sshd {
        Sshd::start_with_host_key("ed25519", extra_config)
    }

    /// Start with a host key of `kind` (as [`keygen`] takes it), and extra config lines.
    pub fn start_with_host_key(kind: &str, extra_config: &str) -> Sshd {
        // Privilege separation refuses to start without it.
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::tempdir().expect("temp dir");
        let host_key_path = keygen(dir.path(), &format!("host_{kind}"), kind, "");
        let client_key = keygen(dir.path(), "client_ed25519", "ed25519", "");
        fs::write(
            dir.path().join("authorized_keys"),
            format!("{}\n", public_key(&client_key)),
        )
        .expect("write authorized_keys");
        let host_key = public_key(&host_key_path);
        let log = dir.path().join("sshd.log");

        // The port is free when picked but may be taken before sshd binds it: retry.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("sshd_config");
            // HOME points into the temp dir so that the login shell does not read the real
            // user's rc files: root's ~/.bashrc can cost more than the whole exec.
            fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\n\
                     Port {port}\n\
                     HostKey {host_key}\n\
                     AuthorizedKeysFile {authorized}\n\
                     PidFile none\n\
                     StrictModes no\n\
                     UsePAM no\n\
                     PermitRootLogin prohibit-password\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     AllowTcpForwarding yes\n\
                     SetEnv HOME={home}\n\
                     {extra_config}\n",
                    host_key = host_key_path.display(),
                    authorized = dir.path().join("authorized_keys").display(),
                    home = dir.path().display(),
                ),
            )
            .expect("write sshd_config");
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).expect("create sshd log"))
                .spawn()
                .expect("start /usr/sbin/sshd: needs root and `apt-get install openssh-server`");
            if wait_listening(&mut child, &log) {
                return Sshd {
                    child,
                    port,
                    dir,
                    client_key,
                    host_key,
                    log,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("sshd did not start:\n{last_log}");
    }

    /// Authorize another client key (the path of its private half).
    pub fn authorize(&self, private_key: &Path) {
        let path = self.dir.path().join("authorized_keys");
        let mut keys = fs::read_to_string(&path).expect("read authorized_keys");
        keys.push_str(&public_key(private_key));
        keys.push('\n');
        fs::write(&path, keys).expect("write authorized_keys");
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA...`, a known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_key)
    }

    /// Stop (SIGSTOP) every process serving a connection, as a host that died would
    /// look: TCP stays open and the kernel still acknowledges, but nothing answers. The
    /// processes are killed when the guard is dropped.
    pub fn freeze_sessions(&self) -> Frozen {
        let pids = descendants(self.child.id());
        assert!(!pids.is_empty(), "no sshd session process to stop");
        for pid in &pids {
            signal(*pid, libc::SIGSTOP);
        }
        Frozen { pids }
    }

    /// What sshd has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Processes stopped by [`Sshd::freeze_sessions`].
pub struct Frozen {
    pids: Vec<u32>,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for pid in &self.pids {
            signal(*pid, libc::SIGKILL);
        }
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) takes plain integers; a pid that has exited is just ESRCH.
    unsafe { libc::kill(pid, signal) };
}

/// Every process below `root`, from the parent pid in each /proc/PID/stat.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name may hold spaces: fields resume after its closing paren.
            let rest = &stat[stat.rfind(')')? + 2..];
            let ppid = rest.split(' ').nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
