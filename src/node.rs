//! A YAML document as a tree of values that remember where they were written.
//!
//! Everything the user writes is loaded into [`Node`]s first, so that every later
//! error (unknown key, wrong type, bad template, cycle) can point at a line and column.

use crate::error::{InputError, InputResult, SourceFile, Span};
use crate::vault;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub span: Span,
    /// Decrypted from Ansible Vault (an inline `!vault` value, or any value of a vaulted
    /// file): a secret wherever it goes.
    pub vaulted: bool,
}

/// Parse a YAML file into a [`Node`] tree, opening what Ansible Vault encrypted
/// (the whole file, or `!vault` values) with the run's vault passwords.
pub fn parse(file: &Arc<SourceFile>) -> InputResult<Node> {
    if !vault::is_vaulted(&file.text) {
        return parse_plain(file);
    }
    let whole = Span {
        file: file.clone(),
        offset: 0,
        len: file.text.len(),
    };
    let plaintext = vault::open_at(&file.text, &whole)?;
    let mut root = parse_plain(&SourceFile::decrypted(file.name.clone(), plaintext))?;
    root.mark_vaulted();
    Ok(root)
}

fn parse_plain(file: &Arc<SourceFile>) -> InputResult<Node> {
    if file.text.trim().is_empty() {
        return Ok(Node {
            kind: Kind::Null,
            span: Span {
                file: file.clone(),
                offset: 0,
                len: 0,
            },
            vaulted: false,
        });
    }
    // YAML 1.2 as the spec says: `yes`/`no`/`on`/`off` are strings, 0644 is decimal.
    let options = serde_saphyr::options! { strict_booleans: true };
    let raw: RawNode = serde_saphyr::from_str_with_options(&file.text, options)
        .map_err(|e| yaml_error(file, &e))?;
    to_node(raw, file)
}

fn yaml_error(file: &Arc<SourceFile>, error: &serde_saphyr::Error) -> InputError {
    let bare = error.without_snippet().to_string();
    // The crate prefixes "line L column C: "; our own header carries the position.
    let message =
        regex::Regex::new(r"^(error: )?line \d+ column \d+: |,? at line \d+, column \d+$")
            .map(|re| re.replace_all(&bare, "").into_owned())
            .unwrap_or(bare);
    let offset = error.location().map_or(0, |l| {
        file.offset_of(l.line() as usize, l.column() as usize)
    });
    let span = Span {
        file: file.clone(),
        offset,
        len: 1,
    };
    InputError::at(&span, format!("invalid YAML: {message}"))
        .help("check the indentation and the brackets and quotes around this point")
}

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "nothing",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    pub fn error(&self, message: impl Into<String>) -> InputError {
        self.span.error(message)
    }

    fn expected(&self, what: &str) -> InputError {
        self.error(format!("expected {what}, found {}", self.kind_name()))
            .label(format!("expected {what}"))
    }

    fn mark_vaulted(&mut self) {
        self.vaulted = true;
        match &mut self.kind {
            Kind::Seq(items) => items.iter_mut().for_each(Node::mark_vaulted),
            Kind::Map(entries) => entries.iter_mut().for_each(|(_, v)| v.mark_vaulted()),
            _ => {}
        }
    }

    /// The paths inside this value that were vaulted (`[]` is all of it).
    pub fn vaulted_paths(&self) -> Vec<Vec<String>> {
        if self.vaulted {
            return vec![Vec::new()];
        }
        let children: Vec<(String, &Node)> = match &self.kind {
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| (i.to_string(), n))
                .collect(),
            Kind::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v))
                .collect(),
            _ => Vec::new(),
        };
        let mut paths = Vec::new();
        for (key, child) in children {
            for mut path in child.vaulted_paths() {
                path.insert(0, key.clone());
                paths.push(path);
            }
        }
        paths
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    pub fn as_str(&self) -> InputResult<&str> {
        match &self.kind {
            Kind::Str(s) => Ok(s),
            _ => Err(self.expected("a string")),
        }
    }

    /// A scalar written as text: strings as they are, numbers as the user spelled them
    /// (`1.10` stays `1.10`), booleans spelled out.
    pub fn scalar_text(&self) -> InputResult<String> {
        match &self.kind {
            Kind::Str(s) => Ok(s.clone()),
            Kind::Int(_) | Kind::Float(_) if self.span.len > 0 => {
                Ok(self.source_text().to_string())
            }
            Kind::Int(i) => Ok(i.to_string()),
            Kind::Float(f) => Ok(f.to_string()),
            Kind::Bool(b) => Ok(b.to_string()),
            _ => Err(self.expected("a string")),
        }
    }

    pub fn as_bool(&self) -> InputResult<bool> {
        match &self.kind {
            Kind::Bool(b) => Ok(*b),
            Kind::Str(s)
                if ["yes", "no", "on", "off", "y", "n"].contains(&s.to_lowercase().as_str()) =>
            {
                Err(self.expected("true or false").help(format!(
                    "write true or false: YAML 1.2 reads `{s}` as a string"
                )))
            }
            _ => Err(self.expected("true or false")),
        }
    }

    /// The text this node was written as in its file.
    fn source_text(&self) -> &str {
        let text = &self.span.file.text;
        text.get(self.span.offset..self.span.offset + self.span.len)
            .unwrap_or_default()
    }

    pub fn as_seq(&self) -> InputResult<&[Node]> {
        match &self.kind {
            Kind::Seq(items) => Ok(items),
            _ => Err(self.expected("a list")),
        }
    }

    pub fn as_map(&self) -> InputResult<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(entries) => Ok(entries),
            _ => Err(self.expected("a mapping")),
        }
    }

    /// A mapping's entries with string keys; a null counts as an empty mapping.
    pub fn entries(&self) -> InputResult<Vec<(&str, &Node, &Node)>> {
        if self.is_null() {
            return Ok(Vec::new());
        }
        self.as_map()?
            .iter()
            .map(|(k, v)| Ok((k.as_str()?, k, v)))
            .collect()
    }

    /// A string or a list of strings (`requires: a` or `requires: [a, b]`).
    pub fn string_list(&self) -> InputResult<Vec<(String, Span)>> {
        match &self.kind {
            Kind::Seq(items) => items
                .iter()
                .map(|i| Ok((i.scalar_text()?, i.span.clone())))
                .collect(),
            Kind::Null => Ok(Vec::new()),
            _ => Ok(vec![(self.scalar_text()?, self.span.clone())]),
        }
    }

    /// The plain value, without locations (for vars that are data, not templates).
    pub fn to_value(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// The node at a JSON path inside this one (for pointing at a bad parameter).
    pub fn find(&self, path: &[PathStep]) -> &Node {
        let Some((step, rest)) = path.split_first() else {
            return self;
        };
        let child = match (&self.kind, step) {
            (Kind::Map(entries), PathStep::Key(key)) => entries
                .iter()
                .find(|(k, _)| k.scalar_text().ok().as_deref() == Some(key))
                .map(|(_, v)| v),
            (Kind::Seq(items), PathStep::Index(i)) => items.get(*i),
            _ => None,
        };
        child.map_or(self, |c| c.find(rest))
    }

    /// The key node of `key` in this mapping (to point at the key itself).
    pub fn key_node(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text().ok().as_deref() == Some(key))
                .map(|(k, _)| k),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

impl fmt::Display for PathStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathStep::Key(k) => write!(f, "{k}"),
            PathStep::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// What serde-saphyr hands us: values with their tag, wrapped in its `Spanned`.
type RawNode = serde_saphyr::Spanned<serde_saphyr::Tagged<RawKind>>;

/// Ansible's tag for an inline vaulted value.
const VAULT_TAG: &str = "!vault";

enum RawKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<RawNode>),
    Map(Vec<(RawNode, RawNode)>),
}

fn to_node(raw: RawNode, file: &Arc<SourceFile>) -> InputResult<Node> {
    let span = raw.referenced.span();
    let span = Span {
        file: file.clone(),
        offset: span.byte_offset().unwrap_or(0) as usize,
        len: span.byte_len().unwrap_or(0) as usize,
    };
    let serde_saphyr::Tagged(value, tag) = raw.value;
    if tag.as_deref() == Some(VAULT_TAG) {
        return match value {
            RawKind::Str(text) => Ok(Node {
                kind: Kind::Str(vault::open_at(&text, &span)?),
                span,
                vaulted: true,
            }),
            _ => Err(span
                .error("a `!vault` value must be the text ansible-vault wrote")
                .help("write it as `!vault |` followed by the indented lines of `converge vault encrypt-string`")),
        };
    }
    let kind = match value {
        RawKind::Null => Kind::Null,
        RawKind::Bool(b) => Kind::Bool(b),
        RawKind::Int(i) => Kind::Int(i),
        RawKind::Float(f) => Kind::Float(f),
        RawKind::Str(s) => Kind::Str(s),
        RawKind::Seq(items) => Kind::Seq(
            items
                .into_iter()
                .map(|i| to_node(i, file))
                .collect::<InputResult<_>>()?,
        ),
        RawKind::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| Ok((to_node(k, file)?, to_node(v, file)?)))
                .collect::<InputResult<_>>()?,
        ),
    };
    Ok(Node {
        kind,
        span,
        vaulted: false,
    })
}

impl<'de> Deserialize<'de> for RawKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyVisitor;
        impl<'de> Visitor<'de> for AnyVisitor {
            type Value = RawKind;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<RawKind, E> {
                Ok(RawKind::Null)
            }
            fn visit_none<E>(self) -> Result<RawKind, E> {
                Ok(RawKind::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawKind, E> {
                Ok(RawKind::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawKind, E> {
                Ok(RawKind::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawKind, E> {
                i64::try_from(v)
                    .map(RawKind::Int)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawKind, E> {
                Ok(RawKind::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawKind, E> {
                Ok(RawKind::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<RawKind, E> {
                Ok(RawKind::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawKind, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RawKind::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawKind, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(RawKind::Map(entries))
            }
        }
        deserializer.deserialize_any(AnyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> InputResult<Node> {
        parse(&SourceFile::new("t.yml", text))
    }

    #[test]
    fn nodes_know_their_position() {
        let node = load("a:\n  b: [1, two]\n").unwrap();
        let two = node.find(&[
            PathStep::Key("a".into()),
            PathStep::Key("b".into()),
            PathStep::Index(1),
        ]);
        assert_eq!(two.as_str().unwrap(), "two");
        assert_eq!(two.span.position(), "t.yml:2:10");
    }

    #[test]
    fn yaml_1_2_scalars() {
        let node = load("a: 1.10\nb: yes\nc: true\n").unwrap();
        let get = |k: &str| node.find(&[PathStep::Key(k.into())]).clone();
        assert_eq!(get("a").scalar_text().unwrap(), "1.10");
        assert!(matches!(get("b").kind, Kind::Str(_)));
        let err = get("b").as_bool().unwrap_err();
        assert!(err.help.unwrap().contains("YAML 1.2"));
        assert!(get("c").as_bool().unwrap());
        // Tags other than `!vault` are YAML's.
        let tagged = load("a: !!str 0644\n").unwrap();
        assert_eq!(
            tagged.find(&[PathStep::Key("a".into())]).as_str().unwrap(),
            "0644"
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = load("a: 1\na: 2\n").unwrap_err();
        assert!(err.message.starts_with("t.yml:2:"), "{}", err.message);
    }

    #[test]
    fn vaulted_files_and_values_open_with_the_run_passwords() {
        let inline = include_str!("vault/fixtures/inline.yml");
        let whole = include_str!("vault/fixtures/v11.yml");
        let no_password = load(inline).unwrap_err();
        assert!(
            no_password.message.starts_with("t.yml:2:11: "),
            "{}",
            no_password.message
        );
        assert!(no_password.help.unwrap().contains("--vault-password-file"));
        vault::unlock(vault::Keyring::new(vec![vault::Password::new(
            "default",
            b"hunter2".to_vec(),
        )]));
        let node = load(&format!("{inline}\nplain: x\n")).unwrap();
        let get = |node: &Node, k: &str| node.find(&[PathStep::Key(k.into())]).clone();
        assert_eq!(get(&node, "db_password").as_str().unwrap(), "S3cret-Db");
        assert_eq!(node.vaulted_paths(), [["db_password"]]);
        let node = load(whole).unwrap();
        assert_eq!(get(&node, "port").kind_name(), "an integer");
        assert_eq!(node.vaulted_paths(), [Vec::<String>::new()]);
        // An error inside a vaulted file is located but shows none of its text.
        let err = load(whole)
            .and_then(|n| get(&n, "port").as_str().map(drop))
            .unwrap_err();
        assert!(err.message.starts_with("t.yml:2:7: "), "{}", err.message);
        assert!(err.source_code.is_none());
        vault::unlock(vault::Keyring::new(vec![vault::Password::new(
            "default",
            b"wrong".to_vec(),
        )]));
        let wrong = load(whole).unwrap_err();
        assert!(
            wrong.message.starts_with("t.yml:1:1: no vault password"),
            "{}",
            wrong.message
        );
    }

    #[test]
    fn yaml_syntax_errors_are_located() {
        let err = load("- name: x\n  hosts: [web\n").unwrap_err();
        assert!(err.message.starts_with("t.yml:2:"), "{}", err.message);
        assert!(err.message.contains("invalid YAML"));
    }
}
