//! The release layout on a host, how the probe reads it, and the scripts that change it:
//!
//! ```text
//! DEST/releases/VERSION/NAME      the binaries, one folder per version
//! DEST/current -> releases/VERSION
//! DEST/.converge-release          the state file (see state.rs)
//! ```

use super::state::ReleaseState;
use crate::module::files::{self, DesiredFile, LocalFile, Source};
use crate::module::systemd::{self, UnitState};
use crate::module::{Mode, Probed};
use crate::quote::quote;

/// A release directory as the probe saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRelease {
    pub version: String,
    /// Seconds and nanoseconds: when it was last made live (or uploaded).
    pub mtime: (i64, u32),
    /// Holds the binary (an upload interrupted before the rename does not).
    pub complete: bool,
}

/// What `DEST/current` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    Absent,
    Version(String),
    /// A link to something that is not one of our releases.
    Elsewhere(String),
    /// A file or directory: not ours to replace.
    NotALink,
}

impl Live {
    pub fn version(&self) -> Option<&str> {
        match self {
            Live::Version(v) => Some(v),
            _ => None,
        }
    }
}

/// Everything the probe read.
#[derive(Debug, Clone)]
pub struct Observed {
    pub state: ReleaseState,
    pub live: Live,
    /// sha256 of the wanted version's binary, when it is there.
    pub sha256: Option<String>,
    pub releases: Vec<HostRelease>,
    pub unit: Option<UnitState>,
}

pub struct Layout<'a> {
    pub dest: &'a str,
    pub name: &'a str,
}

impl Layout<'_> {
    pub fn releases(&self) -> String {
        format!("{}/releases", self.dest)
    }

    pub fn dir(&self, version: &str) -> String {
        format!("{}/releases/{version}", self.dest)
    }

    pub fn binary(&self, version: &str) -> String {
        format!("{}/releases/{version}/{}", self.dest, self.name)
    }

    pub fn current(&self) -> String {
        format!("{}/current", self.dest)
    }

    pub fn state_file(&self) -> String {
        format!("{}/.converge-release", self.dest)
    }

    /// One read-only snippet for the state file, the live link, the wanted binary's
    /// checksum, the list of releases and the service.
    pub fn probe(&self, version: &str, service: Option<&str>) -> String {
        let st = quote_s(&self.state_file());
        let cur = quote_s(&self.current());
        let bin = quote_s(&self.binary(version));
        let rel = quote_s(&self.releases());
        let name = quote(self.name);
        // Only names a version may have are listed: nothing else under releases/ is
        // ever pruned, and no listed name can hold a newline.
        let mut s = format!(
            "if [ -f {st} ]; then printf 'state:b64=%s\\n' \"$({} | base64 -w0)\"; fi\n\
             if [ -L {cur} ]; then printf 'current:b64=%s\\n' \"$(readlink {cur} | base64 -w0)\"; \
             elif [ -e {cur} ]; then echo current_type=other; fi\n\
             if [ -f {bin} ]; then echo \"sha256=$({} | sha256sum | cut -d' ' -f1)\"; fi\n\
             printf 'releases:b64=%s\\n' \"$(for r in {rel}/*; do b=${{r##*/}}; \
             case $b in *[!A-Za-z0-9._+~@-]*|.*|-*) continue;; esac; \
             [ -d \"$r\" ] && [ ! -L \"$r\" ] || continue; c=0; [ -f \"$r\"/{name} ] && c=1; \
             printf '%s %s %s\\n' \"$(stat -c %.9Y \"$r\")\" \"$b\" $c; done | base64 -w0)\"\n",
            files::read_nofollow(&st),
            files::read_nofollow(&bin),
        );
        if let Some(unit) = service {
            s.push_str(&systemd::show_probe("unit", unit));
        }
        s
    }

    pub fn parse(&self, probed: &Probed) -> Observed {
        let fields = probed.fields();
        let text = |k: &str| {
            fields
                .get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let live = match (text("current"), text("current_type")) {
            (Some(target), _) => self.live_of(target.trim_end_matches('\n')),
            (None, Some(_)) => Live::NotALink,
            (None, None) => Live::Absent,
        };
        let releases = text("releases")
            .unwrap_or_default()
            .lines()
            .filter_map(parse_release_line)
            .collect();
        Observed {
            state: text("state")
                .map(|t| ReleaseState::parse(&t))
                .unwrap_or_default(),
            live,
            sha256: text("sha256").filter(|s| !s.is_empty()),
            releases,
            unit: UnitState::from_probe(probed, "unit"),
        }
    }

    fn live_of(&self, target: &str) -> Live {
        let target = target.trim_end_matches('/');
        let absolute = format!("{}/", self.releases());
        let version = target
            .strip_prefix("releases/")
            .or_else(|| target.strip_prefix(&absolute));
        match version {
            Some(v) if super::check_word(v).is_ok() => Live::Version(v.to_string()),
            _ => Live::Elsewhere(target.to_string()),
        }
    }

    /// Create the version's folder and put `build` (streamed on stdin) in it atomically,
    /// 0755. The write checks what arrived against the build's hash: a cut-off upload
    /// never goes live.
    pub fn upload_script(&self, version: &str, build: &LocalFile) -> String {
        let path = self.binary(version);
        let desired = DesiredFile {
            path: &path,
            content: Source::Local(build),
            mode: Some(Mode(0o755)),
            owner: None,
            group: None,
            validate: None,
            secret: false,
        };
        format!(
            "{}{}",
            files::dir_script(&self.dir(version), None, None, None),
            files::write_script(&desired)
        )
    }

    /// Write the state file atomically; its text travels in a here-document, so the
    /// script's stdin stays free for a binary.
    pub fn state_script(&self, state: &ReleaseState) -> String {
        let path = self.state_file();
        let desired = DesiredFile {
            path: &path,
            content: Source::Bytes(&[]),
            mode: Some(Mode(0o644)),
            owner: None,
            group: None,
            validate: None,
            secret: false,
        };
        // The text is versions, checksums and fixed words: it never holds the marker line.
        format!(
            "{{\n{}}} <<'CONVERGE_RELEASE_STATE'\n{}CONVERGE_RELEASE_STATE\n",
            files::write_script(&desired),
            state.render()
        )
    }

    /// Point `current` at the version: a new link renamed over the old one, so
    /// `current` always names a complete release. Touching the folder records the
    /// order releases went live in, which pruning follows.
    pub fn switch_script(&self, version: &str) -> String {
        format!(
            "{}{}",
            files::link_script(&self.current(), &format!("releases/{version}"), None),
            files::touch_dir_script(&self.dir(version))
        )
    }

    pub fn prune_script(&self, versions: &[String]) -> String {
        versions
            .iter()
            .map(|v| files::remove_script(&self.dir(v), true))
            .collect()
    }
}

fn quote_s(s: &str) -> String {
    quote(s).into_owned()
}

/// `SECONDS[.NANOS] VERSION COMPLETE`.
fn parse_release_line(line: &str) -> Option<HostRelease> {
    let mut words = line.split_whitespace();
    let (mtime, version, complete) = (words.next()?, words.next()?, words.next()?);
    super::check_word(version).ok()?;
    let (secs, frac) = mtime.split_once('.').unwrap_or((mtime, ""));
    let nanos = format!("{frac:0<9}");
    Some(HostRelease {
        version: version.to_string(),
        mtime: (
            secs.parse().unwrap_or(0),
            nanos.get(..9).and_then(|n| n.parse().ok()).unwrap_or(0),
        ),
        complete: complete == "1",
    })
}

/// The releases to delete: all but the `keep` newest (by the time they last went live),
/// where the `protected` ones (the live and the previous release) always stay and
/// count towards `keep`.
pub fn choose_pruned(releases: &[HostRelease], keep: usize, protected: &[&str]) -> Vec<String> {
    let is_protected = |r: &HostRelease| protected.contains(&r.version.as_str());
    let mut newest_first: Vec<&HostRelease> = releases.iter().collect();
    newest_first.sort_by(|a, b| {
        b.mtime
            .cmp(&a.mtime)
            .then_with(|| b.version.cmp(&a.version))
    });
    let mut slots = keep.saturating_sub(releases.iter().filter(|r| is_protected(r)).count());
    let mut pruned = Vec::new();
    for r in newest_first.into_iter().filter(|r| !is_protected(r)) {
        if slots > 0 {
            slots -= 1;
        } else {
            pruned.push(r.version.clone());
        }
    }
    pruned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(version: &str, secs: i64) -> HostRelease {
        HostRelease {
            version: version.into(),
            mtime: (secs, 0),
            complete: true,
        }
    }

    #[test]
    fn pruning_keeps_the_newest_and_never_the_live_or_previous() {
        let releases = [
            rel("v1", 10),
            rel("v2", 20),
            rel("v3", 30),
            rel("v4", 40),
            rel("v5", 50),
        ];
        assert_eq!(choose_pruned(&releases, 3, &["v5", "v4"]), ["v2", "v1"]);
        // The live and previous releases are old (a rollback, a downgrade): they stay,
        // and count towards keep.
        assert_eq!(choose_pruned(&releases, 3, &["v1", "v2"]), ["v4", "v3"]);
        assert_eq!(
            choose_pruned(&releases, 2, &["v1", "v2"]),
            ["v5", "v4", "v3"]
        );
        assert!(choose_pruned(&releases, 5, &["v5"]).is_empty());
        assert!(choose_pruned(&releases[..1], 2, &["v9"]).is_empty());
        // Same second: the nanoseconds decide, then the name.
        let mut close = [rel("a", 7), rel("b", 7), rel("c", 7)];
        close[0].mtime.1 = 5;
        assert_eq!(choose_pruned(&close, 2, &[]), ["b"]);
    }

    #[test]
    fn release_lines() {
        assert_eq!(
            parse_release_line("1795622001.615117002 v1.2.0 1"),
            Some(HostRelease {
                version: "v1.2.0".into(),
                mtime: (1795622001, 615117002),
                complete: true
            })
        );
        assert_eq!(parse_release_line("17 v1 0").unwrap().mtime, (17, 0));
        assert_eq!(
            parse_release_line("17.5 v1 0").unwrap().mtime,
            (17, 500000000)
        );
        assert!(!parse_release_line("17 v1 0").unwrap().complete);
        assert_eq!(parse_release_line("17 ../x 1"), None);
        assert_eq!(parse_release_line("17"), None);
    }

    #[test]
    fn a_cut_off_upload_never_goes_live() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("my 'app'");
        let layout = Layout {
            dest: dest.to_str().unwrap(),
            name: "app",
        };
        let local = dir.path().join("build");
        std::fs::write(&local, b"full build").unwrap();
        let build = crate::module::files::load_local(&local).unwrap();
        let upload = |bytes: &[u8]| {
            let mut child = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(layout.upload_script("v1", &build))
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(bytes).unwrap();
            child.wait().unwrap().code()
        };
        assert_eq!(upload(b"full bu"), Some(3));
        let binary = dest.join("releases/v1/app");
        assert!(!binary.exists());
        assert_eq!(
            std::fs::read_dir(dest.join("releases/v1")).unwrap().count(),
            0
        );
        // As the transport sends it: the bytes, then the line saying they are the build.
        let sent = crate::transport::Input::File {
            path: &local,
            sha256: &build.sha256,
        }
        .read();
        assert_eq!(upload(&sent), Some(0));
        assert_eq!(std::fs::read(&binary).unwrap(), b"full build");
    }

    #[test]
    fn the_live_link() {
        let layout = Layout {
            dest: "/opt/app",
            name: "app",
        };
        assert_eq!(layout.live_of("releases/v1/"), Live::Version("v1".into()));
        assert_eq!(
            layout.live_of("/opt/app/releases/v1"),
            Live::Version("v1".into())
        );
        assert_eq!(layout.live_of("/srv/v1"), Live::Elsewhere("/srv/v1".into()));
        assert_eq!(
            layout.live_of("releases/a/b"),
            Live::Elsewhere("releases/a/b".into())
        );
    }
}
