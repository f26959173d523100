//! Values of INI inventories, typed as Ansible types them: Python's `ast.literal_eval`,
//! and the text itself when that fails (`yes`, `0644`, `web-1`, `a b`).

use crate::error::{SourceFile, Span};
use crate::node::{Kind, Node};
use regex::Regex;
use std::sync::{Arc, LazyLock};

/// Text from an INI file with, for each of its bytes, where that byte came from: the
/// text after shell-like unquoting no longer lines up with the file.
#[derive(Debug, Clone)]
pub(super) struct Located {
    pub(super) text: String,
    /// File offset of each byte of `text`, and one more for its end.
    pub(super) origin: Vec<usize>,
    pub(super) file: Arc<SourceFile>,
}

impl Located {
    /// `text` as it stands in `file` at `offset`.
    pub(super) fn verbatim(file: &Arc<SourceFile>, offset: usize, text: &str) -> Located {
        Located {
            text: text.to_string(),
            origin: (offset..=offset + text.len()).collect(),
            file: file.clone(),
        }
    }

    pub(super) fn span(&self) -> Span {
        self.span_of(0, self.text.len())
    }

    /// The file span of `text[start..end]`.
    pub(super) fn span_of(&self, start: usize, end: usize) -> Span {
        let offset = self.origin[start];
        let len = if end > start {
            self.origin[end - 1] + 1 - offset
        } else {
            0
        };
        Span {
            file: self.file.clone(),
            offset,
            len,
        }
    }

    pub(super) fn slice(&self, start: usize, end: usize) -> Located {
        let mut origin = self.origin[start..end].to_vec();
        origin.push(
            self.origin
                .get(end)
                .copied()
                .unwrap_or(self.origin[end - 1]),
        );
        Located {
            text: self.text[start..end].to_string(),
            origin,
            file: self.file.clone(),
        }
    }

    pub(super) fn node(&self, kind: Kind) -> Node {
        Node {
            kind,
            span: self.span(),
            vaulted: false,
        }
    }
}

/// The value Ansible's INI plugin makes of `value`.
pub(super) fn typed(value: &Located) -> Node {
    let mut parser = Parser {
        value,
        text: &value.text,
        at: 0,
    };
    parser
        .whole()
        .unwrap_or_else(|| value.node(Kind::Str(value.text.clone())))
}

struct Parser<'a> {
    value: &'a Located,
    text: &'a str,
    at: usize,
}

/// `None` wherever `literal_eval` would raise: the caller falls back to the text.
type Parsed = Option<Node>;

static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    let digits = r"[0-9](?:_?[0-9])*";
    let exponent = format!(r"[eE][+-]?{digits}");
    let float = format!(
        r"(?:{digits}\.(?:{digits})?(?:{exponent})?|\.{digits}(?:{exponent})?|{digits}{exponent})"
    );
    let int = r"(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|[1-9](?:_?[0-9])*|0+(?:_?0)*)";
    // A number glued to a name character (`0644`, `1j`, `2x`) is no literal for Python.
    Regex::new(&format!(
        r"^(?:(?P<float>{float})|(?P<int>{int}))(?P<glued>[\w.]?)"
    ))
    .expect("the number pattern is valid")
});

impl Parser<'_> {
    fn whole(&mut self) -> Parsed {
        let (node, _) = self.tuple_or_expr(None)?;
        self.skip_blanks();
        (self.at == self.text.len()).then_some(node)
    }

    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    /// Spaces, tabs and a `#` comment, which end nothing in Python's tokenizer.
    fn skip_blanks(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t', '\x0c']);
        self.at += rest.len() - trimmed.len();
        if self.rest().starts_with('#') {
            self.at = self.text.len();
        }
    }

    fn eat(&mut self, token: char) -> bool {
        self.skip_blanks();
        if self.rest().starts_with(token) {
            self.at += token.len_utf8();
            true
        } else {
            false
        }
    }

    fn node(&self, start: usize, kind: Kind) -> Node {
        Node {
            kind,
            span: self.value.span_of(start, self.at),
            vaulted: false,
        }
    }

    /// `a, b` is a tuple at the top and inside parentheses; Ansible makes it a list.
    /// Also says whether it was a tuple, which `(a)` is not.
    fn tuple_or_expr(&mut self, close: Option<char>) -> Option<(Node, bool)> {
        self.skip_blanks();
        let start = self.at;
        let first = self.expr()?;
        if !self.eat(',') {
            return Some((first, false));
        }
        let mut items = vec![first];
        loop {
            self.skip_blanks();
            if self.rest().is_empty() || close.is_some_and(|c| self.rest().starts_with(c)) {
                break;
            }
            items.push(self.expr()?);
            if !self.eat(',') {
                break;
            }
        }
        Some((self.node(start, Kind::Seq(items)), true))
    }

    fn expr(&mut self) -> Parsed {
        self.skip_blanks();
        let start = self.at;
        let text = self.text;
        let rest = &text[start..];
        match rest.chars().next()? {
            '[' => {
                self.at += 1;
                let items = self.items(']')?;
                Some(self.node(start, Kind::Seq(items)))
            }
            '(' => {
                self.at += 1;
                if self.eat(')') {
                    return Some(self.node(start, Kind::Seq(Vec::new())));
                }
                let (inner, tuple) = self.tuple_or_expr(Some(')'))?;
                self.eat(')').then_some(())?;
                Some(if tuple {
                    self.node(start, inner.kind)
                } else {
                    inner
                })
            }
            '{' => {
                self.at += 1;
                self.braces(start)
            }
            '-' | '+' => {
                self.at += 1;
                self.skip_blanks();
                let number = self.number_or_name()?;
                let negate = rest.starts_with('-');
                let kind = match number.kind {
                    Kind::Int(i) if negate => Kind::Int(i.checked_neg()?),
                    Kind::Float(f) if negate => Kind::Float(-f),
                    Kind::Bool(b) => Kind::Int(if negate { -i64::from(b) } else { i64::from(b) }),
                    kind @ (Kind::Int(_) | Kind::Float(_)) => kind,
                    _ => return None,
                };
                Some(self.node(start, kind))
            }
            _ if rest.starts_with("...") => {
                self.at += 3;
                Some(self.node(start, Kind::Str("...".into())))
            }
            _ => self.number_or_name(),
        }
    }

    /// Comma-separated expressions up to `close`, a trailing comma allowed.
    fn items(&mut self, close: char) -> Option<Vec<Node>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.expr()?);
            if !self.eat(',') {
                return self.eat(close).then_some(items);
            }
        }
    }

    /// A dict, or a set (a list for Ansible, each value once).
    fn braces(&mut self, start: usize) -> Parsed {
        if self.eat('}') {
            return Some(self.node(start, Kind::Map(Vec::new())));
        }
        let first = self.expr()?;
        if !self.eat(':') {
            let mut items = vec![first];
            if self.eat(',') {
                items.extend(self.items('}')?);
            } else {
                self.eat('}').then_some(())?;
            }
            let mut unique: Vec<Node> = Vec::new();
            for item in items {
                if !unique.iter().any(|u| u.to_value() == item.to_value()) {
                    unique.push(item);
                }
            }
            return Some(self.node(start, Kind::Seq(unique)));
        }
        let mut entries: Vec<(Node, Node)> = Vec::new();
        let mut key = first;
        loop {
            let value = self.expr()?;
            match entries
                .iter_mut()
                .find(|(k, _)| k.to_value() == key.to_value())
            {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
            if !self.eat(',') {
                self.eat('}').then_some(())?;
                break;
            }
            if self.eat('}') {
                break;
            }
            key = self.expr()?;
            self.eat(':').then_some(())?;
        }
        Some(self.node(start, Kind::Map(entries)))
    }

    fn number_or_name(&mut self) -> Parsed {
        let start = self.at;
        if let Some(found) = NUMBER.captures(self.rest()) {
            if !found["glued"].is_empty() {
                return None;
            }
            let digits = |name: &str| found[name].replace('_', "");
            let kind = if found.name("float").is_some() {
                Kind::Float(digits("float").parse().ok()?)
            } else {
                Kind::Int(int(&digits("int"))?)
            };
            self.at += found[0].len();
            return Some(self.node(start, kind));
        }
        let name_len = self
            .rest()
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        let (name, after) = self.rest().split_at(name_len);
        if after.starts_with(['\'', '"']) {
            return self.strings();
        }
        let kind = match name {
            "True" => Kind::Bool(true),
            "False" => Kind::Bool(false),
            "None" => Kind::Null,
            _ => return None,
        };
        self.at += name_len;
        Some(self.node(start, kind))
    }

    /// One string, or several written side by side (`'a' "b"` is `ab`).
    fn strings(&mut self) -> Parsed {
        let start = self.at;
        let mut text = String::new();
        let mut bytes = None;
        loop {
            self.skip_blanks();
            let prefix_len = string_prefix(self.rest())?;
            let prefix = self.rest()[..prefix_len].to_ascii_lowercase();
            let is_bytes = prefix.contains('b');
            if !matches!(prefix.as_str(), "" | "r" | "u" | "b" | "br" | "rb")
                || bytes.is_some_and(|b| b != is_bytes)
            {
                return None;
            }
            bytes = Some(is_bytes);
            self.at += prefix_len;
            text.push_str(&self.string_body(prefix.contains('r'), is_bytes)?);
            if string_prefix(self.rest().trim_start_matches([' ', '\t'])).is_none() {
                break;
            }
        }
        Some(self.node(start, Kind::Str(text)))
    }

    fn string_body(&mut self, raw: bool, bytes: bool) -> Option<String> {
        let text = self.text;
        let rest = &text[self.at..];
        let quote = if rest.starts_with("'''") || rest.starts_with("\"\"\"") {
            &rest[..3]
        } else {
            &rest[..1]
        };
        self.at += quote.len();
        let mut out = String::new();
        let body = &text[self.at..];
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if body[i..].starts_with(quote) {
                self.at += i + quote.len();
                return Some(out);
            }
            if bytes && !c.is_ascii() {
                return None;
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let (_, next) = chars.next()?;
            if raw {
                out.extend(['\\', next]);
                continue;
            }
            match next {
                '\\' | '\'' | '"' => out.push(next),
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\x0b'),
                '0'..='7' => {
                    let mut code = next.to_digit(8)?;
                    for _ in 0..2 {
                        let Some(d) = chars.clone().next().and_then(|(_, c)| c.to_digit(8)) else {
                            break;
                        };
                        chars.next();
                        code = code * 8 + d;
                    }
                    out.push(char::from_u32(code)?);
                }
                'x' | 'u' | 'U' if !(bytes && next != 'x') => {
                    let width = match next {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let mut code = 0;
                    for _ in 0..width {
                        code = code * 16 + chars.next()?.1.to_digit(16)?;
                    }
                    out.push(char::from_u32(code)?);
                }
                // `\N{NAME}` needs Unicode's names: left to the text fallback.
                'N' if !bytes => return None,
                _ => out.extend(['\\', next]),
            }
        }
        None
    }
}

/// The length of the prefix (`r`, `b`, `rb`...) when `text` starts a string literal.
fn string_prefix(text: &str) -> Option<usize> {
    text.find(['\'', '"'])
        .filter(|&n| n <= 2 && text[..n].chars().all(|c| "rRbBuU".contains(c)))
}

fn int(digits: &str) -> Option<i64> {
    let (radix, body) = match digits.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => (16, &digits[2..]),
        Some("0o") => (8, &digits[2..]),
        Some("0b") => (2, &digits[2..]),
        _ => (10, digits),
    };
    i64::from_str_radix(body, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn value(text: &str) -> Value {
        let file = SourceFile::new("inv.ini", text);
        typed(&Located::verbatim(&file, 0, text)).to_value()
    }

    #[test]
    fn python_literals_are_typed_and_anything_else_is_text() {
        let cases = [
            ("1", json!(1)),
            ("-5", json!(-5)),
            ("+5", json!(5)),
            ("1_000", json!(1000)),
            ("0x10", json!(16)),
            ("0o17", json!(15)),
            ("0b11", json!(3)),
            ("00", json!(0)),
            ("1.5", json!(1.5)),
            ("1e3", json!(1000.0)),
            (".5", json!(0.5)),
            ("True", json!(true)),
            ("None", json!(null)),
            ("'a b'", json!("a b")),
            ("\"1\"", json!("1")),
            ("'a' \"b\"", json!("ab")),
            ("'tab\\there'", json!("tab\there")),
            ("r'a\\d'", json!("a\\d")),
            ("b'x'", json!("x")),
            ("'\\x41\\u00e9'", json!("Aé")),
            ("[1, 'two', [3]]", json!([1, "two", [3]])),
            ("[1,]", json!([1])),
            ("(1,)", json!([1])),
            ("(1)", json!(1)),
            ("()", json!([])),
            ("1,2", json!([1, 2])),
            ("{'a': 1, \"b\": [None]}", json!({"a": 1, "b": [null]})),
            ("{'a': 1, 'a': 2}", json!({"a": 2})),
            ("{}", json!({})),
            ("{1, 2, 1}", json!([1, 2])),
            ("1 # a comment", json!(1)),
            ("...", json!("...")),
            // What Python refuses stays as written.
            ("", json!("")),
            ("yes", json!("yes")),
            ("0644", json!("0644")),
            ("1j", json!("1j")),
            ("web-1", json!("web-1")),
            ("a b", json!("a b")),
            ("{k:1}", json!("{k:1}")),
            ("[1, 2", json!("[1, 2")),
            ("'open", json!("'open")),
            ("f'{x}'", json!("f'{x}'")),
            ("--1", json!("--1")),
            ("1 2", json!("1 2")),
            ("x # c", json!("x # c")),
            ("99999999999999999999", json!("99999999999999999999")),
            ("{{ app }}", json!("{{ app }}")),
        ];
        for (text, expected) in cases {
            assert_eq!(value(text), expected, "{text:?}");
        }
    }

    #[test]
    fn nested_values_point_at_their_own_text() {
        let text = "x=[1, {'k': 'v'}]";
        let file = SourceFile::new("inv.ini", text);
        let node = typed(&Located::verbatim(&file, 2, &text[2..]));
        assert_eq!(node.span.position(), "inv.ini:1:3");
        let Kind::Seq(items) = &node.kind else {
            panic!("{node:?}")
        };
        assert_eq!(items[1].span.position(), "inv.ini:1:7");
        let Kind::Map(entries) = &items[1].kind else {
            panic!("{node:?}")
        };
        assert_eq!(entries[0].1.span.position(), "inv.ini:1:13");
        assert_eq!(entries[0].1.span.len, 3);
    }
}
