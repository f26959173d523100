//! What a probe printed, and the small text format probes use.
//!
//! Probes print `key=value` lines; values that may hold anything (file contents,
//! link targets) are base64 (`key:b64=...`), so no delimiter can be forged.

use base64::Engine as _;
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Probed {
    pub stdout: String,
    pub status: i32,
}

impl Probed {
    /// The `key=value` lines (later lines win); `key:b64=` values are decoded.
    pub fn fields(&self) -> HashMap<String, Vec<u8>> {
        fields_of(&self.stdout)
    }

    /// The text of one field, if present.
    pub fn field(&self, key: &str) -> Option<String> {
        self.fields()
            .remove(key)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// The lines after a `[section]` header, up to the next header.
    pub fn section(&self, name: &str) -> Vec<&str> {
        let header = format!("[{name}]");
        self.stdout
            .lines()
            .skip_while(|l| *l != header)
            .skip(1)
            .take_while(|l| !(l.starts_with('[') && l.ends_with(']')))
            .collect()
    }
}

pub fn fields_of(text: &str) -> HashMap<String, Vec<u8>> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if let Some(key) = key.strip_suffix(":b64") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .unwrap_or_default();
            map.insert(key.to_string(), decoded);
        } else {
            map.insert(key.to_string(), value.as_bytes().to_vec());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_base64() {
        let p = Probed {
            stdout: "a=1\nb:b64=aGk=\n[s]\nx\ny\n[t]\nz\n".into(),
            status: 0,
        };
        assert_eq!(p.field("a").as_deref(), Some("1"));
        assert_eq!(p.field("b").as_deref(), Some("hi"));
        assert_eq!(p.section("s"), vec!["x", "y"]);
        assert_eq!(p.section("t"), vec!["z"]);
    }
}
