//! User-facing errors: located miette diagnostics, and the exit codes of the spec.

use miette::{Diagnostic, NamedSource, SourceSpan};
use std::sync::Arc;

/// Process exit codes (README and `--help` list them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Success = 0,
    Drift = 2,
    Failed = 1,
    Locked = 4,
    BadInput = 3,
    Interrupted = 130,
}

impl Exit {
    /// When several apply, the most important wins: 130 > 3 > 4 > 1 > 2 > 0.
    fn rank(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Drift => 1,
            Exit::Failed => 2,
            Exit::Locked => 3,
            Exit::BadInput => 4,
            Exit::Interrupted => 5,
        }
    }

    pub fn worst(self, other: Exit) -> Exit {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A source file the user wrote, shared by every span that points into it.
#[derive(Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: Arc<str>,
    /// Decrypted from Ansible Vault: errors name a place in it but never show its text.
    pub vaulted: bool,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            name: name.into(),
            text: text.into(),
            vaulted: false,
        })
    }

    /// The plaintext of the vaulted file `name`.
    pub fn decrypted(name: impl Into<String>, text: impl Into<Arc<str>>) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            name: name.into(),
            text: text.into(),
            vaulted: true,
        })
    }

    /// Byte offset of a 1-based line and column (columns count characters).
    pub fn offset_of(&self, line: usize, column: usize) -> usize {
        let line_start: usize = self
            .text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        let rest = &self.text[line_start.min(self.text.len())..];
        line_start
            + rest
                .char_indices()
                .nth(column.saturating_sub(1))
                .map_or(rest.len(), |(i, _)| i)
    }

    /// 1-based line and column of a byte offset, for plain-text messages.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

/// Where something came from: a byte range in a user's file.
#[derive(Debug, Clone)]
pub struct Span {
    pub file: Arc<SourceFile>,
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn error(&self, message: impl Into<String>) -> InputError {
        InputError::at(self, message)
    }

    /// `file:line:col`, for messages outside miette's rendering.
    pub fn position(&self) -> String {
        let (line, col) = self.file.line_col(self.offset);
        format!("{}:{line}:{col}", self.file.name)
    }
}

/// A mistake in the user's input: playbook, inventory, vars, template or command line.
/// Always exits 3, and always before any host is changed.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(code(converge::input))]
pub struct InputError {
    pub message: String,
    #[source_code]
    pub source_code: Option<NamedSource<Arc<str>>>,
    #[label("{}", label.as_deref().unwrap_or("here"))]
    pub span: Option<SourceSpan>,
    pub label: Option<String>,
    #[help]
    pub help: Option<String>,
    #[related]
    pub related: Vec<InputError>,
}

impl InputError {
    pub fn new(message: impl Into<String>) -> Self {
        InputError {
            message: message.into(),
            source_code: None,
            span: None,
            label: None,
            help: None,
            related: Vec::new(),
        }
    }

    pub fn at(span: &Span, message: impl Into<String>) -> Self {
        let position = span.position();
        let mut error = InputError::new(format!("{position}: {}", message.into()));
        if !span.file.vaulted {
            error.source_code = Some(
                NamedSource::new(&span.file.name, span.file.text.clone()).with_language("yaml"),
            );
            error.span = Some(SourceSpan::new(span.offset.into(), span.len.max(1)));
        }
        error
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// The same error with every secret replaced by `<secret>`: each of the `secrets`
    /// strings wherever it appears (a value rendered from a secret can end up in a
    /// message: "`hunter2` is not an octal mode"), and the source text at `spans`, where
    /// the secrets were written, in the snippet shown under the message.
    pub fn redact(mut self, secrets: &[String], spans: &[Span]) -> InputError {
        if secrets.is_empty() && spans.is_empty() {
            return self;
        }
        let hide = |text: &str| crate::report::redact(text, secrets);
        self.message = crate::report::redact(&self.message, secrets);
        self.label = self.label.as_deref().map(hide);
        self.help = self.help.as_deref().map(hide);
        if let Some(source) = self.source_code.take() {
            let text = source.inner().clone();
            let written = spans
                .iter()
                .filter(|s| Arc::ptr_eq(&s.file.text, &text))
                .map(|s| (s.offset, s.offset + s.len));
            let (masked, moved) = mask(&text, written.chain(occurrences(&text, secrets)));
            self.span = self.span.map(|s| {
                let start = moved(s.offset());
                let end = moved(s.offset() + s.len()).max(start + 1);
                SourceSpan::new(start.into(), end - start)
            });
            self.source_code =
                Some(NamedSource::new(source.name(), Arc::from(masked)).with_language("yaml"));
        }
        self.related = self
            .related
            .into_iter()
            .map(|e| e.redact(secrets, spans))
            .collect();
        self
    }

    /// Several independent mistakes reported at once, the first one leading.
    pub fn combine(mut errors: Vec<InputError>) -> Option<InputError> {
        if errors.is_empty() {
            return None;
        }
        let mut first = errors.remove(0);
        first.related.extend(errors);
        Some(first)
    }
}

/// Byte ranges of every occurrence of each secret in `text`.
fn occurrences<'a>(
    text: &'a str,
    secrets: &'a [String],
) -> impl Iterator<Item = (usize, usize)> + 'a {
    secrets.iter().filter(|s| !s.is_empty()).flat_map(move |s| {
        text.match_indices(s.as_str())
            .map(|(i, m)| (i, i + m.len()))
    })
}

/// `text` with each range shown as `<secret>` (line by line, so the snippet keeps its
/// lines and indentation), and where an offset of `text` moved to.
fn mask(
    text: &str,
    ranges: impl Iterator<Item = (usize, usize)>,
) -> (String, impl Fn(usize) -> usize) {
    let mut ranges: Vec<(usize, usize)> = ranges.collect();
    ranges.sort_unstable();
    // Each masked piece: its range in `text` and in the result.
    let mut pieces: Vec<((usize, usize), (usize, usize))> = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, end) in ranges {
        let start = start.max(copied);
        let end = end.min(text.len());
        if start >= end || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            continue;
        }
        let mut line_start = start;
        for line in text[start..end].split_inclusive('\n') {
            let content = line.trim_end_matches('\n');
            let indent = if line_start == start {
                0
            } else {
                content.len() - content.trim_start().len()
            };
            let from = line_start + indent;
            let to = line_start + content.len();
            if from < to {
                out.push_str(&text[copied..from]);
                let at = out.len();
                out.push_str("<secret>");
                pieces.push(((from, to), (at, out.len())));
                copied = to;
            }
            line_start += line.len();
        }
    }
    out.push_str(&text[copied..]);
    let moved = move |offset: usize| {
        let mut shift: isize = 0;
        for &((from, to), (at, after)) in &pieces {
            if offset <= from {
                break;
            }
            if offset < to {
                return at;
            }
            shift = after as isize - to as isize;
        }
        offset.saturating_add_signed(shift)
    };
    (out, moved)
}

pub type InputResult<T> = Result<T, InputError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_rank_as_the_spec_says() {
        let order = [
            Exit::Success,
            Exit::Drift,
            Exit::Failed,
            Exit::Locked,
            Exit::BadInput,
            Exit::Interrupted,
        ];
        for (i, low) in order.iter().enumerate() {
            for high in &order[i..] {
                assert_eq!(low.worst(*high), *high);
                assert_eq!(high.worst(*low), *high);
            }
        }
    }

    #[test]
    fn redaction_reaches_every_part_and_related_errors() {
        let secrets = vec!["hunter2".to_string()];
        let mut err = InputError::new("`hunter2` is not an octal mode")
            .label("hunter2 here")
            .help("not hunter2");
        err.related.push(InputError::new("uid `hunter2`"));
        let err = err.redact(&secrets, &[]);
        assert_eq!(err.message, "`<secret>` is not an octal mode");
        assert_eq!(err.label.as_deref(), Some("<secret> here"));
        assert_eq!(err.help.as_deref(), Some("not <secret>"));
        assert_eq!(err.related[0].message, "uid `<secret>`");
    }

    #[test]
    fn a_snippet_hides_secrets_and_still_points_at_the_mistake() {
        let text = "vars: { pw: hunter2 }\ndb:\n  password: s3\n  port: x\nkey: hunter2\n";
        let file = SourceFile::new("v.yml", text);
        let at = |needle: &str, len: usize| Span {
            file: file.clone(),
            offset: text.find(needle).unwrap(),
            len,
        };
        // The structured secret, written over two lines, and a mistake after it.
        let written = at("password", "password: s3\n  port: x".len());
        let err = at("x\n", 1)
            .error("`x` is not a port")
            .redact(&["hunter2".to_string()], &[written]);
        let source = err.source_code.as_ref().unwrap().inner().to_string();
        assert_eq!(
            source,
            "vars: { pw: <secret> }\ndb:\n  <secret>\n  <secret>\nkey: <secret>\n"
        );
        let span = err.span.unwrap();
        assert_eq!(
            &source[span.offset()..span.offset() + span.len()],
            "<secret>"
        );
        assert_eq!(err.message, "v.yml:4:9: `x` is not a port");
    }

    #[test]
    fn line_and_column_are_one_based() {
        let file = SourceFile::new("a.yml", "ab\ncd\n");
        assert_eq!(file.line_col(0), (1, 1));
        assert_eq!(file.line_col(4), (2, 2));
    }
}
