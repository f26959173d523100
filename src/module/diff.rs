//! What changed, as text: the unified diffs every module reports.

use similar::TextDiff;

/// One item's before and after, rendered as a unified diff with the spec's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// What the diff is about, after `HOST:` in the headers (a path, `service NAME`, ...).
    pub path: String,
    /// The current text; None when the item does not exist.
    pub before: Option<String>,
    /// The desired text; None when the item is to be removed.
    pub after: Option<String>,
    /// Content rendered from a secret: show that it differs, never the lines.
    pub secret: bool,
}

impl Diff {
    pub fn new(path: impl Into<String>, before: Option<String>, after: Option<String>) -> Diff {
        Diff {
            path: path.into(),
            before,
            after,
            secret: false,
        }
    }

    /// A diff of `key: value` lines; None when nothing differs.
    pub fn of_metadata(
        path: impl Into<String>,
        before: &[(&str, Option<String>)],
        after: &[(&str, Option<String>)],
    ) -> Option<Diff> {
        let before = metadata_lines(before);
        let after = metadata_lines(after);
        (before != after).then(|| Diff::new(path, Some(before), Some(after)))
    }

    /// The unified diff (3 lines of context) with `--- HOST:PATH (current)` headers.
    pub fn unified(&self, host: &str) -> String {
        let old_header = format!("{host}:{} (current)", self.path);
        let new_header = format!("{host}:{} (desired)", self.path);
        if self.secret {
            return format!("--- {old_header}\n+++ {new_header}\ncontent: changed (secret)\n");
        }
        let before = self.before.as_deref().unwrap_or("");
        let after = self.after.as_deref().unwrap_or("");
        let mut text = TextDiff::from_lines(before, after)
            .unified_diff()
            .context_radius(3)
            .header(&old_header, &new_header)
            .missing_newline_hint(true)
            .to_string();
        if text.is_empty() {
            // Same text on both sides (e.g. a file that only appears): still show the headers.
            text = format!("--- {old_header}\n+++ {new_header}\n");
        }
        text
    }
}

/// `key: value` lines for the keys that have a value.
pub fn metadata_lines(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {v}\n")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_line_with_context() {
        let d = Diff::new(
            "/etc/a",
            Some("1\n2\n3\n4\n5\n".into()),
            Some("1\n2\nthree\n4\n5\n".into()),
        );
        insta::assert_snapshot!(d.unified("web1"), @r"
        --- web1:/etc/a (current)
        +++ web1:/etc/a (desired)
        @@ -1,5 +1,5 @@
         1
         2
        -3
        +three
         4
         5
        ");
    }

    #[test]
    fn a_new_file_diffs_against_nothing() {
        let d = Diff::new("/etc/a", None, Some("x\n".into()));
        insta::assert_snapshot!(d.unified("web1"), @r"
        --- web1:/etc/a (current)
        +++ web1:/etc/a (desired)
        @@ -0,0 +1 @@
        +x
        ");
    }

    #[test]
    fn secrets_show_no_lines() {
        let mut d = Diff::new("/etc/a", Some("old-pw\n".into()), Some("new-pw\n".into()));
        d.secret = true;
        let text = d.unified("web1");
        assert!(!text.contains("pw"));
        assert!(text.contains("content: changed (secret)"));
    }

    #[test]
    fn metadata_only_when_different() {
        let same = [("mode", Some("0644".to_string()))];
        assert!(Diff::of_metadata("/a", &same, &same).is_none());
        let d = Diff::of_metadata("/a", &same, &[("mode", Some("0600".into()))]).unwrap();
        assert!(d.unified("h").contains("-mode: 0644\n+mode: 0600"));
    }
}
