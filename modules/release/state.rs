//! The release state file on the host (`DEST/.converge-release`): which release is
//! live and verified, which one was live before it, which one is being deployed (so an
//! interrupted transaction is finished by the next run) and which builds were rolled back.
//!
//! ```text
//! current=v1.3.0 SHA256
//! previous=v1.2.0 SHA256
//! deploying=v1.4.0 SHA256
//! rolled_back=v1.2.1 SHA256
//! ```

/// The rolled-back builds remembered; older records are dropped.
const ROLLED_BACK_KEPT: usize = 10;

/// A release at a given build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub version: String,
    pub sha256: String,
}

impl Entry {
    pub fn new(version: &str, sha256: &str) -> Entry {
        Entry {
            version: version.to_string(),
            sha256: sha256.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseState {
    /// The live release, verified healthy (or the only one there is).
    pub current: Option<Entry>,
    /// The release live before `current`: never pruned, the rollback target.
    pub previous: Option<Entry>,
    /// Set from before the switch until the transaction ends.
    pub deploying: Option<Entry>,
    /// Builds that failed their health check and were rolled back, oldest first.
    pub rolled_back: Vec<Entry>,
}

impl ReleaseState {
    /// Read the file; lines that do not parse are ignored (a damaged file only loses
    /// what it cannot say).
    pub fn parse(text: &str) -> ReleaseState {
        let mut state = ReleaseState::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let mut words = value.split_whitespace();
            let (Some(version), Some(sha256), None) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let entry = Some(Entry::new(version, sha256));
            match key.trim() {
                "current" => state.current = entry,
                "previous" => state.previous = entry,
                "deploying" => state.deploying = entry,
                "rolled_back" => state.rolled_back.extend(entry),
                _ => {}
            }
        }
        state
    }

    pub fn render(&self) -> String {
        let mut text = String::from(
            "# converge release state: the live, previous, in-progress and rolled-back releases\n",
        );
        let mut line = |key: &str, e: &Entry| {
            text.push_str(&format!("{key}={} {}\n", e.version, e.sha256));
        };
        for (key, entry) in [
            ("current", &self.current),
            ("previous", &self.previous),
            ("deploying", &self.deploying),
        ] {
            if let Some(e) = entry {
                line(key, e);
            }
        }
        for e in &self.rolled_back {
            line("rolled_back", e);
        }
        text
    }

    /// The build of `version` that was rolled back, if one was.
    pub fn rolled_back_sha(&self, version: &str) -> Option<&str> {
        self.rolled_back
            .iter()
            .rev()
            .find(|e| e.version == version)
            .map(|e| e.sha256.as_str())
    }

    /// Remember a rolled-back build (one record per version, the newest kept).
    pub fn record_rolled_back(&mut self, entry: Entry) {
        self.forget_rolled_back(&entry.version);
        self.rolled_back.push(entry);
        let extra = self.rolled_back.len().saturating_sub(ROLLED_BACK_KEPT);
        self.rolled_back.drain(..extra);
    }

    pub fn forget_rolled_back(&mut self, version: &str) {
        self.rolled_back.retain(|e| e.version != version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut s = ReleaseState {
            current: Some(Entry::new("v2", "bb")),
            previous: Some(Entry::new("v1", "aa")),
            deploying: Some(Entry::new("v3", "cc")),
            rolled_back: Vec::new(),
        };
        s.record_rolled_back(Entry::new("v1.5", "dd"));
        insta::assert_snapshot!(s.render(), @r"
        # converge release state: the live, previous, in-progress and rolled-back releases
        current=v2 bb
        previous=v1 aa
        deploying=v3 cc
        rolled_back=v1.5 dd
        ");
        assert_eq!(ReleaseState::parse(&s.render()), s);
    }

    #[test]
    fn damaged_lines_are_ignored() {
        let s = ReleaseState::parse(
            "current=v2\nprevious=v1 aa extra\n\ngarbage\nrolled_back=v3 cc\nfuture=x y\n",
        );
        assert_eq!(s.current, None);
        assert_eq!(s.previous, None);
        assert_eq!(s.rolled_back_sha("v3"), Some("cc"));
        assert_eq!(ReleaseState::parse(""), ReleaseState::default());
    }

    #[test]
    fn rolled_back_builds_are_one_per_version_and_capped() {
        let mut s = ReleaseState::default();
        s.record_rolled_back(Entry::new("v3", "old"));
        s.record_rolled_back(Entry::new("v3", "new"));
        assert_eq!(s.rolled_back, [Entry::new("v3", "new")]);
        for i in 0..15 {
            s.record_rolled_back(Entry::new(&format!("x{i}"), "s"));
        }
        assert_eq!(s.rolled_back.len(), ROLLED_BACK_KEPT);
        assert_eq!(s.rolled_back[0].version, "x5");
        assert_eq!(s.rolled_back_sha("v3"), None);
        s.forget_rolled_back("x14");
        assert_eq!(s.rolled_back_sha("x14"), None);
    }
}
