//! `converge pull` on real hosts: the binary is copied into two hosts, a configuration
//! repository made here is pushed to a bare repository on each (file:///srv/config.git
//! there), and each host converges itself from it with the local connection: the first
//! pull converges, a rerun with --only-if-changed does nothing, a new commit runs again,
//! --checkout a tag, a failed run is retried on the same commit, and --verify-commit
//! refuses an unsigned commit and accepts one signed by a key of the host's keyring.

use crate::scenario::Run;
use crate::support::hosts::TestHosts;
use std::path::{Path, PathBuf};
use std::process::Command;

const URL: &str = "file:///srv/config.git";

/// The repository's inventory: addresses that answer nothing, since a pull never connects.
const INVENTORY: &str = "\
all:
  hosts:
    h1: { ansible_host: 203.0.113.1 }
    h2: { ansible_host: 203.0.113.2 }
";

fn site(version: &str) -> String {
    format!(
        r#"- hosts: all
  vars: {{ version: {version} }}
  tasks:
    - name: release note
      file: {{ path: /etc/pulled, content: "{{{{inventory_hostname}}}} {{{{version}}}}\n" }}
    - name: health
      command: "test ! -e /root/broken"
      changed_when: false
"#
    )
}

/// A work tree on this machine with its own git and gpg settings, none of the machine's.
struct Repo {
    work: tempfile::TempDir,
    gnupg: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let repo = Repo {
            work: tempfile::tempdir().expect("work tree"),
            gnupg: tempfile::tempdir().expect("gnupg home"),
        };
        repo.git(&["init", "--quiet", "-b", "main"]);
        std::fs::write(repo.work.path().join("inventory.yml"), INVENTORY).expect("inventory");
        repo
    }

    fn command(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .current_dir(self.work.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GNUPGHOME", self.gnupg.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn git(&self, args: &[&str]) -> String {
        let mut all = vec![
            "-c",
            "user.name=converge test",
            "-c",
            "user.email=pull@converge.test",
        ];
        all.extend_from_slice(args);
        self.command("git", &all)
    }

    /// Commit `site.yml` for `version`; signed with the key when `signing_key` is given.
    fn commit(&self, version: &str, signing_key: Option<&str>) -> String {
        std::fs::write(self.work.path().join("site.yml"), site(version)).expect("site.yml");
        self.git(&["add", "."]);
        let message = format!("version {version}");
        match signing_key {
            Some(key) => {
                let key = format!("user.signingkey={key}");
                self.git(&["-c", &key, "commit", "--quiet", "-S", "-m", &message]);
            }
            None => {
                self.git(&["commit", "--quiet", "--no-gpg-sign", "-m", &message]);
            }
        }
        self.git(&["rev-parse", "HEAD"])
    }

    /// A key without passphrase; its fingerprint.
    fn signing_key(&self) -> String {
        self.command(
            "gpg",
            &[
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                "converge pull test <pull@converge.test>",
                "ed25519",
                "sign",
                "never",
            ],
        );
        let listing = self.command("gpg", &["--with-colons", "--list-secret-keys"]);
        listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').find(|f| !f.is_empty()))
            .expect("fingerprint")
            .to_string()
    }

    /// Push `main` and the tags to the bare repository of `host`, through its file system.
    fn push(&self, hosts: &TestHosts, host: &str) {
        let bare = hosts.host(host).root.join("srv/config.git");
        let bare = bare.to_str().expect("path");
        self.git(&["push", "--quiet", "--force", bare, "main", "--tags"]);
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", self.gnupg.path())
            .output();
    }
}

/// The converge binary without its debug information (a tenth of the size), once.
fn stripped_binary(dir: &Path) -> PathBuf {
    let stripped = dir.join("converge");
    let out = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(env!("CARGO_BIN_EXE_converge"))
        .output()
        .expect("run strip (binutils)");
    assert!(out.status.success(), "strip failed");
    stripped
}

/// `converge LINE` on `host`, as root, as a timer would run it.
fn converge(hosts: &TestHosts, host: &str, line: &str) -> Run {
    let out = hosts.exec(host, &format!("cd /root && converge {line}"));
    eprintln!("on {host}:");
    Run::of(&[line], out)
}

/// `converge pull URL ARGS` on `host`.
fn pull(hosts: &TestHosts, host: &str, args: &str) -> Run {
    converge(hosts, host, &format!("pull {URL} {args}"))
}

/// Whether the error on stderr says `text`, however it was wrapped to the terminal.
fn says(run: &Run, text: &str) -> bool {
    let words = |t: &str| {
        t.replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    words(&run.stderr).contains(text)
}

fn pulled(hosts: &TestHosts, host: &str) -> String {
    hosts.sh(host, "cat /etc/pulled")
}

/// A pull on `host` that says `says`, changes the release note, and leaves it at `version`.
fn pull_converges(hosts: &TestHosts, host: &str, args: &str, says: &str, version: &str) {
    pull(hosts, host, args)
        .expect_code(0)
        .expect_stdout_contains(says)
        .expect_changed(host, 1);
    assert_eq!(pulled(hosts, host), format!("{host} {version}\n"));
}

#[test]
fn hosts_converge_themselves_from_a_git_repository() {
    let hosts = TestHosts::up(2);
    let bin = tempfile::tempdir().expect("temp dir");
    let binary = stripped_binary(bin.path());
    for host in ["h1", "h2"] {
        std::fs::copy(
            &binary,
            hosts.host(host).root.join("usr/local/bin/converge"),
        )
        .expect("copy converge");
        hosts.sh(host, "git init --quiet --bare -b main /srv/config.git");
    }
    let repo = Repo::new();
    let v1 = repo.commit("v1", None);
    repo.git(&["tag", "-a", "-m", "first", "first"]);
    repo.push(&hosts, "h1");
    repo.push(&hosts, "h2");

    // Each host converges itself: its own entry of the inventory, locally.
    let head_at = |commit: &str| format!("HEAD at {}: converging h1 with", &commit[..12]);
    pull_converges(&hosts, "h1", "--only-if-changed", &head_at(&v1), "v1");
    assert_eq!(
        hosts.exec("h2", "test -e /etc/pulled").status.code(),
        Some(1),
        "h1's pull touched only h1"
    );
    let record = hosts.sh("h1", "cat /var/lib/converge/pull/*/last-run.json");
    assert!(
        record.contains(&v1) && record.contains("\"exit\": 0"),
        "{record}"
    );

    // Nothing new: no run at all.
    let skipped = pull(&hosts, "h1", "--only-if-changed");
    skipped
        .expect_code(0)
        .expect_stdout_contains("the last run converged without error: nothing to do");
    assert!(!skipped.stdout.contains("h1  ok="), "{}", skipped.stdout);
    // Quiet, as a timer runs it: nothing at all.
    let quiet = pull(&hosts, "h1", "--only-if-changed -q");
    quiet.expect_code(0);
    assert_eq!(quiet.stdout, "");

    pull_converges(&hosts, "h2", "-o", "converging h2 with", "v1");

    // A new commit runs again.
    let v2 = repo.commit("v2", None);
    repo.push(&hosts, "h1");
    pull_converges(&hosts, "h1", "-o", &head_at(&v2), "v2");

    // An annotated tag, peeled to its commit.
    let tag_at = format!("first at {}", &v1[..12]);
    pull_converges(&hosts, "h1", "-o --checkout first", &tag_at, "v1");
    let unknown = pull(&hosts, "h1", "-o --checkout nosuchref");
    unknown.expect_code(3);
    assert!(says(
        &unknown,
        "nosuchref: file:///srv/config.git has no branch or tag of that name"
    ));

    // A repository that cannot be reached is like an unreachable host; a URL git would read
    // as an option never reaches git.
    converge(&hosts, "h1", "pull file:///srv/missing.git")
        .expect_code(1)
        .expect_stderr_contains("cannot reach the repository file:///srv/missing.git");
    let option = converge(&hosts, "h1", "pull -- --upload-pack='touch /root/pwned'");
    option.expect_code(3);
    assert!(says(&option, "would be read as an option of git"));
    assert_eq!(
        hosts.exec("h1", "test -e /root/pwned").status.code(),
        Some(1)
    );

    // A failed run is not a reason to skip the same commit next time.
    hosts.sh("h1", "touch /root/broken");
    pull(&hosts, "h1", "-o").expect_code(1);
    pull(&hosts, "h1", "-o")
        .expect_code(1)
        .expect_stdout_contains("failed   h1: health");
    hosts.sh("h1", "rm /root/broken");
    pull(&hosts, "h1", "-o")
        .expect_code(0)
        .expect_changed("h1", 0);
    pull(&hosts, "h1", "-o")
        .expect_code(0)
        .expect_stdout_contains("nothing to do");

    // --verify-commit: an unsigned commit is refused before anything runs; one signed
    // with a key the host's keyring has is converged.
    let key = repo.signing_key();
    let public = repo.command("gpg", &["--armor", "--export", &key]);
    std::fs::write(hosts.host("h1").root.join("root/pull-key.asc"), public).expect("key");
    hosts.sh(
        "h1",
        "gpg --batch --quiet --no-autostart --import /root/pull-key.asc",
    );
    repo.commit("v3", None);
    repo.push(&hosts, "h1");
    let refused = pull(&hosts, "h1", "-o --verify-commit");
    refused.expect_code(3);
    assert!(says(
        &refused,
        "has no good signature: it carries no signature"
    ));
    assert_eq!(pulled(&hosts, "h1"), "h1 v2\n", "nothing ran");
    let v4 = repo.commit("v4", Some(&key));
    repo.push(&hosts, "h1");
    pull_converges(&hosts, "h1", "-o --verify-commit", &head_at(&v4), "v4");
}
