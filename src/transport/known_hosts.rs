//! `known_hosts` files read the way OpenSSH reads them: plain and wildcard host patterns,
//! `!negations`, hashed `|1|salt|hash` names, `[host]:port` names for other ports, and the
//! `@revoked` / `@cert-authority` markers.

use super::ssh_config::wildcard_match;
use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{Algorithm, PublicKey, parse_public_key_base64};
use sha1::Sha1;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// All host keys recorded in the files that were read.
#[derive(Debug, Default)]
pub(super) struct KnownHosts {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    file: PathBuf,
    line: usize,
    marker: Marker,
    hosts: String,
    key: PublicKey,
}

#[derive(Debug, PartialEq)]
enum Marker {
    Trusted,
    Revoked,
    CertAuthority,
}

/// What the files say about a key presented for some host names.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    Trusted,
    /// No entry names the host.
    Unknown,
    /// Entries name the host but none holds this key: `file:line` of each.
    Changed(Vec<String>),
    /// The key is marked `@revoked` at `file:line`.
    Revoked(String),
}

/// The name a host is recorded under: `[host]:port` unless the port is 22.
pub(super) fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_ascii_lowercase()
    } else {
        format!("[{}]:{port}", host.to_ascii_lowercase())
    }
}

impl KnownHosts {
    /// Read every file that exists; unreadable files and malformed lines are skipped, as
    /// OpenSSH does, so one bad line cannot lock a user out of every host.
    pub(super) fn load(files: &[PathBuf]) -> KnownHosts {
        let mut known = KnownHosts::default();
        for file in files {
            if let Ok(text) = std::fs::read_to_string(file) {
                known.add(file, &text);
            }
        }
        known
    }

    fn add(&mut self, file: &Path, text: &str) {
        for (index, line) in text.lines().enumerate() {
            if let Some(entry) = parse_line(line) {
                let (marker, hosts, key) = entry;
                self.entries.push(Entry {
                    file: file.to_path_buf(),
                    line: index + 1,
                    marker,
                    hosts: hosts.to_string(),
                    key,
                });
            }
        }
    }

    /// Only the entries that name one of `names`: all that [`check`](Self::check) and
    /// [`algorithms`](Self::algorithms) read for them. A connection keeps its host's few
    /// lines for its whole life, not the whole file (on N hosts whose keys are all
    /// recorded, N x N entries).
    pub(super) fn only_for(mut self, names: &[String]) -> KnownHosts {
        self.entries
            .retain(|e| names.iter().any(|n| hosts_match(&e.hosts, n)));
        self.entries.shrink_to_fit();
        self
    }

    fn for_names<'a>(&'a self, names: &'a [String]) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| names.iter().any(|n| hosts_match(&e.hosts, n)))
    }

    /// Judge `key` for a host known under any of `names` (from [`host_name`]).
    pub(super) fn check(&self, names: &[String], key: &PublicKey) -> Verdict {
        let mut trusted = false;
        let mut others = Vec::new();
        for entry in self.for_names(names) {
            let same = entry.key.key_data() == key.key_data();
            match entry.marker {
                Marker::Revoked if same => {
                    return Verdict::Revoked(format!("{}:{}", entry.file.display(), entry.line));
                }
                Marker::Trusted if same => trusted = true,
                Marker::Trusted => others.push(format!("{}:{}", entry.file.display(), entry.line)),
                // Host certificates are never requested, so CA lines cannot vouch for a key.
                Marker::Revoked | Marker::CertAuthority => {}
            }
        }
        if trusted {
            Verdict::Trusted
        } else if others.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Changed(others)
        }
    }

    /// Key algorithms recorded for the host, so the handshake can ask for a key type that
    /// known_hosts can vouch for (as OpenSSH orders HostKeyAlgorithms).
    pub(super) fn algorithms(&self, names: &[String]) -> Vec<Algorithm> {
        let mut algorithms = Vec::new();
        for entry in self.for_names(names) {
            let algorithm = entry.key.algorithm();
            if entry.marker == Marker::Trusted && !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
        algorithms
    }
}

fn parse_line(line: &str) -> Option<(Marker, &str, PublicKey)> {
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    if first.starts_with('#') {
        return None;
    }
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::Trusted,
    };
    if marker != Marker::Trusted {
        first = fields.next()?;
    }
    let _key_type = fields.next()?;
    let key = parse_public_key_base64(fields.next()?).ok()?;
    Some((marker, first, key))
}

/// A comma-separated host list matches when some entry matches and no `!negation` does.
fn hosts_match(hosts: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in hosts.split(',') {
        if let Some(hashed) = pattern.strip_prefix("|1|") {
            matched |= hashed_match(hashed, name);
        } else if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_match(negated, name) {
                return false;
            }
        } else {
            matched |= wildcard_match(pattern, name);
        }
    }
    matched
}

/// `|1|salt|hash` for `name`, as `HashKnownHosts yes` makes OpenSSH write it: a fresh
/// 20-byte salt, and HMAC-SHA1 keyed by it over the name.
fn hashed_name(name: &str) -> io::Result<String> {
    let mut salt = [0u8; 20];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    let mac = Hmac::<Sha1>::new_from_slice(&salt)
        .map_err(|e| io::Error::other(e.to_string()))?
        .chain_update(name.as_bytes())
        .finalize()
        .into_bytes();
    Ok(format!(
        "|1|{}|{}",
        BASE64.encode(&salt),
        BASE64.encode(&mac)
    ))
}

/// `salt|hash`, both base64: HMAC-SHA1 keyed by the salt over the host name.
fn hashed_match(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// Append `key` for `name` to `path`, creating the directory (0700) and file (0600); with
/// `hash`, the name is recorded hashed so that the file does not list the hosts.
pub(super) fn append(path: &Path, name: &str, key: &PublicKey, hash: bool) -> io::Result<()> {
    let name = if hash {
        hashed_name(name)?
    } else {
        name.to_string()
    };
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let mut separator = "";
    if file.seek(SeekFrom::End(-1)).is_ok() {
        let mut last = [0u8];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            separator = "\n";
        }
    }
    let key = PublicKey::new(key.key_data().clone(), "")
        .to_openssh()
        .map_err(|e| io::Error::other(e.to_string()))?;
    // One write per line so that hosts learning keys concurrently never interleave lines.
    file.write_all(format!("{separator}{name} {key}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIBL8qBEtYsUefMJkbBA84ssRtetu4Rm5G2UE23i2fIyH";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIDO0uRrhWOJHy0stwffx/KMBYt52BTkd6TKNXe39FyEP";
    const KEY_C: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHxzYcFt3bLBlXtRR2KJFCNH2h8feWX0LWAz5arHFKHDtx6gn7GWlfuzqMOAxhY+USBqn+LVXViaN1kxbByUhwM=";

    fn key(b64: &str) -> PublicKey {
        parse_public_key_base64(b64).unwrap()
    }

    fn known(text: &str) -> KnownHosts {
        let mut k = KnownHosts::default();
        k.add(Path::new("kh"), text);
        k
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_connection_keeps_only_its_hosts_entries() {
        let k = known(&format!(
            "web1 ssh-ed25519 {KEY_A}\nweb2 ssh-ed25519 {KEY_B}\n@revoked web1 ssh-ed25519 {KEY_C}\n\
             *.example.com ssh-ed25519 {KEY_B}\n"
        ));
        let kept = k.only_for(&names(&["web1", "10.0.0.1"]));
        assert_eq!(kept.entries.len(), 2);
        assert_eq!(kept.check(&names(&["web1"]), &key(KEY_A)), Verdict::Trusted);
        assert_eq!(
            kept.check(&names(&["web1"]), &key(KEY_C)),
            Verdict::Revoked("kh:3".into())
        );
    }

    #[test]
    fn plain_entry_with_host_list() {
        let k = known(&format!(
            "# comment\n\nweb1,10.0.0.5 ssh-ed25519 {KEY_A} me@laptop\n"
        ));
        assert_eq!(
            k.check(&names(&["10.0.0.5"]), &key(KEY_A)),
            Verdict::Trusted
        );
        assert_eq!(k.check(&names(&["web1"]), &key(KEY_A)), Verdict::Trusted);
        assert_eq!(k.check(&names(&["web2"]), &key(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn port_form_is_distinct_from_port_22() {
        let k = known(&format!("[127.0.0.1]:2222 ssh-ed25519 {KEY_A}\n"));
        let name = host_name("127.0.0.1", 2222);
        assert_eq!(name, "[127.0.0.1]:2222");
        assert_eq!(k.check(&[name], &key(KEY_A)), Verdict::Trusted);
        let plain = host_name("127.0.0.1", 22);
        assert_eq!(k.check(&[plain], &key(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn hashed_entries_match_by_hmac() {
        // Made by `ssh-keygen -H` from "example.com" and "[127.0.0.1]:2222".
        let k = known(&format!(
            "|1|gBEOaiD2niYblqO75kvaMo9N4NQ=|heOSonFUDQoMmcYNnoS+rIUsiHw= ssh-ed25519 {KEY_A}\n\
             |1|mfbi/AoIHTeQ3o4rCeZMVNONrZ8=|PpmQEf+usOTmcwMwozO8kYsTwIc= ssh-ed25519 {KEY_A}\n"
        ));
        assert_eq!(
            k.check(&names(&["example.com"]), &key(KEY_A)),
            Verdict::Trusted
        );
        let port_form = host_name("127.0.0.1", 2222);
        assert_eq!(k.check(&[port_form], &key(KEY_A)), Verdict::Trusted);
        assert_eq!(
            k.check(&names(&["example.org"]), &key(KEY_A)),
            Verdict::Unknown
        );
        assert_eq!(
            k.check(&names(&["example.com"]), &key(KEY_B)),
            Verdict::Changed(vec!["kh:1".into()])
        );
    }

    #[test]
    fn different_key_is_changed_whatever_its_type() {
        let k = known(&format!("web1 ssh-ed25519 {KEY_A}\n"));
        assert_eq!(
            k.check(&names(&["web1"]), &key(KEY_B)),
            Verdict::Changed(vec!["kh:1".into()])
        );
        assert_eq!(
            k.check(&names(&["web1"]), &key(KEY_C)),
            Verdict::Changed(vec!["kh:1".into()])
        );
    }

    #[test]
    fn one_matching_entry_among_several_is_enough() {
        let k = known(&format!(
            "web1 ecdsa-sha2-nistp256 {KEY_C}\nweb1 ssh-ed25519 {KEY_A}\n"
        ));
        assert_eq!(k.check(&names(&["web1"]), &key(KEY_A)), Verdict::Trusted);
        let ecdsa = key(KEY_C).algorithm();
        let ed25519 = key(KEY_A).algorithm();
        assert_eq!(k.algorithms(&names(&["web1"])), vec![ecdsa, ed25519]);
    }

    #[test]
    fn address_or_alias_may_vouch() {
        let k = known(&format!("web1 ssh-ed25519 {KEY_A}\n"));
        assert_eq!(
            k.check(&names(&["10.0.0.5", "web1"]), &key(KEY_A)),
            Verdict::Trusted
        );
    }

    #[test]
    fn wildcards_and_negation() {
        let k = known(&format!(
            "*.example.com,!bad.example.com ssh-ed25519 {KEY_A}\n"
        ));
        assert_eq!(
            k.check(&names(&["www.example.com"]), &key(KEY_A)),
            Verdict::Trusted
        );
        assert_eq!(
            k.check(&names(&["bad.example.com"]), &key(KEY_A)),
            Verdict::Unknown
        );
    }

    #[test]
    fn markers_never_trust_and_revoked_refuses() {
        let k = known(&format!(
            "@cert-authority *.example.com ssh-ed25519 {KEY_B}\n\
             @revoked * ssh-ed25519 {KEY_C}\n\
             @unknown-marker web1 ssh-ed25519 {KEY_A}\n"
        ));
        assert_eq!(
            k.check(&names(&["www.example.com"]), &key(KEY_B)),
            Verdict::Unknown
        );
        assert_eq!(k.check(&names(&["web1"]), &key(KEY_A)), Verdict::Unknown);
        assert_eq!(
            k.check(&names(&["web1"]), &key(KEY_C)),
            Verdict::Revoked("kh:2".into())
        );
        assert!(k.algorithms(&names(&["www.example.com"])).is_empty());
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let k = known(&format!(
            "web1 ssh-ed25519 not-base64\nweb1\n\nweb1 ssh-ed25519 {KEY_A}\n"
        ));
        assert_eq!(k.check(&names(&["web1"]), &key(KEY_A)), Verdict::Trusted);
    }

    #[test]
    fn hashed_entries_are_salted_and_match_only_their_name() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("known_hosts");
        append(&path, "web1", &key(KEY_A), true).unwrap();
        append(&path, "web1", &key(KEY_A), true).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let recorded: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
        assert!(recorded.iter().all(|n| n.starts_with("|1|")), "{text}");
        assert!(!text.contains("web1"), "{text}");
        assert_ne!(recorded[0], recorded[1], "each entry has its own salt");
        let k = KnownHosts::load(&[path]);
        assert_eq!(k.check(&names(&["web1"]), &key(KEY_A)), Verdict::Trusted);
        assert_eq!(k.check(&names(&["web2"]), &key(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn append_creates_private_files_and_keeps_lines_apart() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(".ssh/known_hosts");
        append(&path, "[127.0.0.1]:2222", &key(KEY_A), false).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&path), 0o600);

        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"# no newline at end").unwrap();
        append(&path, "web1", &key(KEY_B), false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                "[127.0.0.1]:2222 ssh-ed25519 {KEY_A}\n# no newline at end\nweb1 ssh-ed25519 {KEY_B}\n"
            )
        );
        assert_eq!(
            KnownHosts::load(&[path]).check(&names(&["web1"]), &key(KEY_B)),
            Verdict::Trusted
        );
    }
}
