//! Many probes in one exec: each runs in its own subshell and is followed by a marker
//! line with a per-run nonce, so one round trip reads the state of every task.

pub use crate::module::steps::nonce;
use crate::module::{Probed, files};
use std::collections::HashMap;

/// The facts script: `facts.*` in one go, POSIX sh only (one uname: a hostname has no
/// blanks).
pub const FACTS: &str = "if [ -r /etc/os-release ]; then . /etc/os-release; fi; \
    echo \"os_id=${ID:-unknown}\"; echo \"os_version_id=${VERSION_ID:-}\"; \
    set -- $(uname -nm); echo \"hostname=$1\"; echo \"arch=$2\"; \
    if [ -d /run/systemd/system ]; then echo init=systemd; else echo init=other; fi";

/// What a probe in a batch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A plan node, by index.
    Node(usize),
    Facts,
    /// The restarts a run that died owed (see `host::pending_restarts_probe`).
    PendingRestarts,
}

pub fn facts_value(text: &str) -> serde_json::Value {
    let fields: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| fields.get(k).copied().unwrap_or("").to_string();
    serde_json::json!({
        "os": {"id": get("os_id"), "version_id": get("os_version_id")},
        "arch": get("arch"),
        "hostname": get("hostname"),
        "init": get("init"),
    })
}

pub struct Batch {
    nonce: String,
    script: String,
    /// By position in the batch, which is what the markers carry.
    keys: Vec<Key>,
    /// The paths the probes stat, stat'ed once ahead of them all.
    stated: Vec<String>,
}

impl Batch {
    pub fn new() -> Batch {
        let nonce = nonce();
        Batch {
            nonce,
            script: String::new(),
            keys: Vec::new(),
            stated: Vec::new(),
        }
    }

    pub fn add(&mut self, key: Key, probe: &str) {
        for path in files::stated(probe) {
            if !self.stated.contains(&path) {
                self.stated.push(path);
            }
        }
        // An empty subshell `( )` is a syntax error that would break the whole batch.
        let probe = if probe.trim().is_empty() { ":" } else { probe };
        self.script.push_str(&format!(
            "(\n{probe}\n) 2>/dev/null </dev/null\nprintf '\\n@@converge:{}:{}:%s\\n' \"$?\"\n",
            self.nonce,
            self.keys.len()
        ));
        self.keys.push(key);
    }

    pub fn script(&self) -> String {
        format!("{}{}", files::stat_ahead(&self.stated), self.script)
    }

    /// Split the batch's stdout back into each probe's output.
    pub fn split(&self, stdout: &str) -> HashMap<Key, Probed> {
        let prefix = format!("@@converge:{}:", self.nonce);
        let mut results = HashMap::new();
        let mut current = String::new();
        for line in stdout.split_inclusive('\n') {
            if let Some(rest) = line.trim_end_matches('\n').strip_prefix(&prefix) {
                let mut parts = rest.splitn(2, ':');
                let key = parts
                    .next()
                    .and_then(|k| k.parse::<usize>().ok())
                    .and_then(|slot| self.keys.get(slot).copied());
                let status = parts
                    .next()
                    .and_then(|s| s.parse::<i32>().ok())
                    .unwrap_or(-1);
                if let Some(key) = key {
                    // The marker is printed after a newline of its own.
                    let text = current.strip_suffix('\n').unwrap_or(&current).to_string();
                    results.insert(
                        key,
                        Probed {
                            stdout: text,
                            status,
                        },
                    );
                }
                current.clear();
            } else {
                current.push_str(line);
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_split_back_with_their_status() {
        let mut b = Batch::new();
        b.add(Key::Node(3), "echo a=1; echo b=2");
        b.add(Key::Facts, "printf 'no newline'; exit 4");
        b.add(Key::Node(9), "exit 0");
        b.add(Key::PendingRestarts, "");
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(b.script())
            .output()
            .unwrap();
        let results = b.split(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(results[&Key::Node(3)].stdout, "a=1\nb=2\n");
        assert_eq!(results[&Key::Facts].stdout, "no newline");
        assert_eq!(results[&Key::Facts].status, 4);
        assert_eq!(results[&Key::Node(9)].stdout, "");
        assert_eq!(results[&Key::PendingRestarts].stdout, "");
    }

    /// Paths stat'ed ahead in one process read as each probe's own `stat` reads them,
    /// whatever is (or is not) there and however odd the name; a name with a newline
    /// keeps its own `stat`.
    #[test]
    fn paths_stated_ahead_read_as_their_own_stat_reads_them() {
        use crate::module::files::{Read, probe};
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| format!("{}/{name}", dir.path().display());
        std::fs::write(at("a"), "a\n").unwrap();
        std::fs::write(at("a b*'[x]"), "odd\n").unwrap();
        std::fs::write(at("new\nline"), "nl\n").unwrap();
        std::fs::create_dir(at("d")).unwrap();
        std::os::unix::fs::symlink("a", at("l")).unwrap();
        let names = ["a", "a b*'[x]", "a b", "absent", "d", "l", "new\nline"];
        // A `stat` that counts its runs, in front of the real one.
        let shim = tempfile::tempdir().unwrap();
        let log = shim.path().join("log");
        let stat = shim.path().join("stat");
        std::fs::write(
            &stat,
            format!(
                "#!/bin/sh\necho >> '{}'\nexec /usr/bin/stat \"$@\"\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&stat, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = format!(
            "{}:{}",
            shim.path().display(),
            std::env::var("PATH").unwrap()
        );
        let run = |script: &str| {
            let _ = std::fs::remove_file(&log);
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(script)
                .env("PATH", &path)
                .output()
                .unwrap();
            let runs = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .count();
            (String::from_utf8(out.stdout).unwrap(), runs)
        };
        let mut b = Batch::new();
        let mut alone = String::new();
        for (i, name) in names.iter().enumerate() {
            let p = probe("f", &at(name), Read::Content);
            b.add(Key::Node(i), &p);
            alone.push_str(&format!("(\n{p}\n)\n"));
        }
        let (batched, stats) = run(&b.script());
        let (own, own_stats) = run(&alone);
        let results = b.split(&batched);
        let mut expected = own.lines().filter(|l| l.starts_with("f."));
        for (i, name) in names.iter().enumerate() {
            let got = &results[&Key::Node(i)].stdout;
            for line in got.lines() {
                assert_eq!(Some(line), expected.next(), "{name:?}");
            }
        }
        assert_eq!(expected.next(), None);
        assert_eq!(own_stats, names.len());
        assert_eq!(
            stats, 2,
            "one ahead for all, one for the name with a newline"
        );
        assert!(results[&Key::Node(3)].stdout.contains("f.stat=absent"));
        assert!(
            results[&Key::Node(5)]
                .stdout
                .contains("f.stat=symbolic link/")
        );
    }

    #[test]
    fn facts_parse() {
        let f =
            facts_value("os_id=debian\nos_version_id=12\narch=x86_64\nhostname=h1\ninit=systemd\n");
        assert_eq!(f["os"]["id"], "debian");
        assert_eq!(f["init"], "systemd");
    }
}
