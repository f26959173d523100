//! Secret taint: which values a secret flowed into.
//!
//! Redacting only the literal secret misses every other form a template can give it
//! (`{{quote pw}}`, `{{upper pw}}`, `{{json db}}`, a field of a structured secret, a
//! loop item, a command line). So taint is decided where values are made: a template
//! that reads a tainted variable (found in its syntax tree, not by looking at its
//! output) yields a tainted value, and what that value renders to joins the secrets
//! that every output hides.

use super::template::{SINGLE_EXPRESSION, Scope, engine, is_helper, lookup};
use crate::error::Span;
use crate::node::{Kind, Node};
use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use serde_json::Value;
use std::sync::Mutex;

/// A variable path, `db.password`; `*` stands for any item of an `#each`.
type VarPath = Vec<String>;

/// The tainted variables of one host (down to the field), and the strings that a
/// secret turned into while the host's plan was made.
#[derive(Debug)]
pub struct Taint {
    paths: Vec<VarPath>,
    /// Where the secrets were written, so error snippets can hide them.
    spans: Vec<Span>,
    /// What the secrets rendered to; behind a lock because a module records what its
    /// own templates make through the shared `Params` (`template`'s file).
    found: Mutex<Vec<String>>,
}

impl Taint {
    /// No secrets at all (module unit tests).
    pub fn none() -> &'static Taint {
        static NONE: Taint = Taint {
            paths: Vec::new(),
            spans: Vec::new(),
            found: Mutex::new(Vec::new()),
        };
        &NONE
    }

    /// The variables the play lists under `secrets:`, written at `spans`.
    pub fn declared(names: &[String], spans: Vec<Span>) -> Taint {
        Taint {
            paths: names.iter().map(|n| vec![n.clone()]).collect(),
            spans,
            found: Mutex::default(),
        }
    }

    /// The same taint inside a loop, where `item` holds a secret at `item_paths`.
    pub fn with_item(&self, item_paths: Vec<VarPath>) -> Taint {
        let mut paths = self.paths.clone();
        paths.extend(item_paths.into_iter().map(|p| prefixed("item", p)));
        Taint {
            paths,
            spans: self.spans.clone(),
            found: Mutex::default(),
        }
    }

    /// Mark a variable path as holding a secret; false when it already did.
    pub fn mark(&mut self, path: VarPath) -> bool {
        let known = self.paths.iter().any(|p| is_prefix(p, &path));
        if !known {
            self.paths.push(path);
        }
        !known
    }

    pub fn add_span(&mut self, span: Span) {
        self.spans.push(span);
    }

    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Whether reading `path` reads a secret: it is a secret, lies inside one, or
    /// holds one (reading all of `db` reads `db.password`).
    fn touches(&self, path: &[String]) -> bool {
        self.paths
            .iter()
            .any(|t| is_prefix(t, path) || is_prefix(path, t))
    }

    /// Whether `template` reads a tainted variable.
    pub fn reads_secret(&self, template: &str) -> bool {
        if self.paths.is_empty() || !template.contains("{{") {
            return false;
        }
        match Template::compile(template) {
            Ok(t) => {
                let mut reads = Vec::new();
                paths_read(&t, &[], &mut reads);
                reads.iter().any(|r| self.touches(r))
            }
            // It will fail to render; until then, assume the worst.
            Err(_) => true,
        }
    }

    /// The paths inside the value `node` renders to that hold a secret, relative to
    /// that value (`[]` is all of it).
    pub fn derive(&self, node: &Node) -> Vec<VarPath> {
        match &node.kind {
            Kind::Str(s) => match single_path(s) {
                // `{{db}}` is the value of `db` itself, so only its tainted fields are.
                Some(path) => self
                    .paths
                    .iter()
                    .filter_map(|t| {
                        if is_prefix(t, &path) {
                            Some(Vec::new())
                        } else if is_prefix(&path, t) {
                            Some(t[path.len()..].to_vec())
                        } else {
                            None
                        }
                    })
                    .collect(),
                None if self.reads_secret(s) => vec![Vec::new()],
                None => Vec::new(),
            },
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .flat_map(|(i, item)| {
                    self.derive(item)
                        .into_iter()
                        .map(move |p| prefixed(&i.to_string(), p))
                })
                .collect(),
            Kind::Map(entries) => entries
                .iter()
                .flat_map(|(k, v)| {
                    let key = k.scalar_text().unwrap_or_default();
                    self.derive(v).into_iter().map(move |p| prefixed(&key, p))
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the value `node` renders to holds a secret at `path` (or around it).
    pub fn holds_at(&self, node: &Node, path: &[&str]) -> bool {
        let path: VarPath = path.iter().map(|s| s.to_string()).collect();
        self.derive(node)
            .iter()
            .any(|d| is_prefix(d, &path) || is_prefix(&path, d))
    }

    /// Record the secret parts of `value`, which `node` rendered to against `ctx`.
    pub fn record(&self, node: &Node, value: &Value, ctx: &Value) {
        match (&node.kind, value) {
            (Kind::Str(s), _) if single_path(s).is_some() => {
                for path in self.derive(node) {
                    if let Some(v) = lookup_path(value, &path) {
                        self.found_leaves(v);
                    }
                }
            }
            (Kind::Str(s), _) => {
                if !self.record_text(s, ctx) {
                    return;
                }
                // A typed helper value (`{{json db}}` read as a list) is secret whole.
                if !value.is_string() {
                    self.found_leaves(value);
                }
            }
            (Kind::Seq(items), Value::Array(values)) => {
                for (item, v) in items.iter().zip(values) {
                    self.record(item, v, ctx);
                }
            }
            (Kind::Map(entries), Value::Object(values)) => {
                for (k, v) in entries {
                    if let Some(rendered) = k.scalar_text().ok().and_then(|k| values.get(&k)) {
                        self.record(v, rendered, ctx);
                    }
                }
            }
            _ => {}
        }
    }

    /// Record what each part of `template` that reads a secret renders to (each
    /// `{{...}}` or block on its own, so the text around it stays readable: a task
    /// named `seed {{upper pw}}` shows as `seed <secret>`). Whether there was any.
    pub fn record_text<'a>(&self, template: &str, scope: impl Into<Scope<'a>>) -> bool {
        let ctx = scope.into();
        let mut any = false;
        for part in parts(template) {
            if !self.reads_secret(part) {
                continue;
            }
            any = true;
            // A part that does not render alone makes the whole text secret.
            let shown = engine()
                .render_text(part, ctx)
                .or_else(|_| engine().render_text(template, ctx))
                .unwrap_or_default();
            self.found(shown);
        }
        any
    }

    /// Every value of a tainted variable of `ctx` (the leaves of a structured secret).
    pub fn record_vars(&self, ctx: &Value) {
        for path in &self.paths {
            if let Some(v) = lookup_path(ctx, path) {
                self.found_leaves(v);
            }
        }
    }

    fn found_leaves(&self, value: &Value) {
        match value {
            Value::Array(items) => items.iter().for_each(|v| self.found_leaves(v)),
            Value::Object(map) => map.values().for_each(|v| self.found_leaves(v)),
            Value::String(s) => self.found(s.clone()),
            // A flag has two values to guess from: hiding every `true` would hide nothing.
            Value::Null | Value::Bool(_) => {}
            other => self.found(other.to_string()),
        }
    }

    fn found(&self, text: String) {
        if !text.is_empty()
            && let Ok(mut found) = self.found.lock()
            && !found.contains(&text)
        {
            found.push(text);
        }
    }

    /// Move what `other` (a loop item's taint) found into this taint.
    pub fn absorb(&self, other: Taint) {
        for text in other.found.into_inner().unwrap_or_default() {
            self.found(text);
        }
    }

    /// The strings to hide: every secret form found, and each as it appears inside a
    /// JSON string (a loop item is redacted in its JSON text, where `"` is `\"`).
    pub fn secrets(&self) -> Vec<String> {
        let found = self.found.lock().map(|f| f.clone()).unwrap_or_default();
        let mut all = found.clone();
        for s in found {
            let json = Value::String(s.clone()).to_string();
            let inner = &json[1..json.len() - 1];
            if inner != s && !all.iter().any(|a| a == inner) {
                all.push(inner.to_string());
            }
        }
        all
    }
}

fn prefixed(head: &str, mut rest: VarPath) -> VarPath {
    rest.insert(0, head.to_string());
    rest
}

/// `a` is `b` or leads to it; `*` matches any one step.
fn is_prefix(a: &[String], b: &[String]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y || x == "*" || y == "*")
}

fn lookup_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    if path.iter().any(|s| s == "*") {
        // A whole list item of an `#each`: all of the list.
        let at = path.iter().position(|s| s == "*").unwrap_or(path.len());
        return lookup_path(value, &path[..at]);
    }
    if path.is_empty() {
        return Some(value);
    }
    lookup(value, &path.join("."))
}

/// The path of a template that is exactly one variable (`{{db.password}}`).
fn single_path(template: &str) -> Option<VarPath> {
    let caps = SINGLE_EXPRESSION.captures(template)?;
    let path = &caps[1];
    (!is_helper(path)).then(|| path.split('.').map(str::to_string).collect())
}

/// The top-level parts of a template that hold expressions: each `{{...}}`, and each
/// block from its `{{#...}}` to its `{{/...}}`. The whole template when it cannot tell.
fn parts(template: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = None;
    let mut i = 0;
    while let Some(found) = template[i..].find("{{") {
        let at = i + found;
        if template[..at].ends_with('\\') {
            i = at + 2;
            continue;
        }
        let closing = if template[at..].starts_with("{{!--") {
            "--}}"
        } else {
            "}}"
        };
        let Some(close) = template[at..].find(closing) else {
            return vec![template];
        };
        let mut end = at + close + closing.len();
        if template[end..].starts_with('}') {
            end += 1;
        }
        let inner = template[at + 2..end].trim_start_matches(['{', '~']);
        start.get_or_insert(at);
        if inner.starts_with('#') || (inner.starts_with('^') && !inner[1..].starts_with('}')) {
            depth += 1;
        } else if inner.starts_with('/') {
            depth = depth.saturating_sub(1);
        }
        if depth == 0
            && let Some(s) = start.take()
        {
            parts.push(&template[s..end]);
        }
        i = end;
    }
    if start.is_some() {
        return vec![template];
    }
    parts
}

/// Every variable path a template reads, resolved against the blocks around it
/// (`{{#each users}}{{name}}{{/each}}` reads `users.*.name`).
fn paths_read(template: &Template, scope: &[VarPath], out: &mut Vec<VarPath>) {
    for element in &template.elements {
        match element {
            TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h)
            | TemplateElement::HelperBlock(h) => helper_reads(h, scope, out),
            _ => {}
        }
    }
}

fn helper_reads(h: &HelperTemplate, scope: &[VarPath], out: &mut Vec<VarPath>) {
    parameter_reads(&h.name, scope, out);
    for p in h.params.iter().chain(h.hash.values()) {
        parameter_reads(p, scope, out);
    }
    // `#each` and `#with` move the context into their argument.
    let inner_base = match (&h.name, h.params.first()) {
        (Parameter::Name(n), Some(Parameter::Path(p))) if n == "each" || n == "with" => {
            let mut base = resolve(raw(p), scope);
            if n == "each" {
                base.push("*".to_string());
            }
            Some(base)
        }
        _ => None,
    };
    let mut inner_scope = scope.to_vec();
    if let Some(base) = inner_base {
        inner_scope.push(base);
    }
    if let Some(t) = &h.template {
        paths_read(t, &inner_scope, out);
    }
    if let Some(t) = &h.inverse {
        paths_read(t, scope, out);
    }
}

fn parameter_reads(p: &Parameter, scope: &[VarPath], out: &mut Vec<VarPath>) {
    match p {
        Parameter::Name(name) => out.push(resolve(name, scope)),
        Parameter::Path(path) => {
            let written = raw(path);
            // `@index`, `@key`: positions, not values.
            if !written.trim_start_matches("../").starts_with('@') || written.contains("@root") {
                out.push(resolve(written, scope));
            }
        }
        Parameter::Subexpression(s) => {
            if let TemplateElement::Expression(h) = s.as_element() {
                helper_reads(h, scope, out);
            }
        }
        _ => {}
    }
}

/// A path as written (`../pw`, `this.name`, `@root.db`, `list.[0]`) within `scope`.
fn resolve(raw: &str, scope: &[VarPath]) -> VarPath {
    let mut level = scope.len();
    let mut rest = raw;
    while let Some(up) = rest.strip_prefix("../") {
        level = level.saturating_sub(1);
        rest = up;
    }
    let mut steps = Vec::new();
    for seg in rest.split(['.', '/']) {
        match seg {
            "" | "this" => {}
            "@root" => level = 0,
            other => steps.push(other.trim_matches(['[', ']']).to_string()),
        }
    }
    let mut path = match level {
        0 => Vec::new(),
        n => scope[n - 1].clone(),
    };
    path.extend(steps);
    path
}

/// A template path as written, whichever form handlebars parsed it into.
fn raw(path: &handlebars::Path) -> &str {
    match path {
        handlebars::Path::Relative((_, raw)) | handlebars::Path::Local((_, _, raw)) => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SourceFile;
    use crate::node::parse;
    use serde_json::json;

    fn taint(names: &[&str]) -> Taint {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        Taint::declared(&names, Vec::new())
    }

    fn node(yaml: &str) -> Node {
        parse(&SourceFile::new("t.yml", yaml)).unwrap()
    }

    #[test]
    fn any_helper_over_a_secret_reads_it() {
        let t = taint(&["pw", "db"]);
        for template in [
            "{{pw}}",
            "x {{quote pw}} y",
            "{{upper pw}}",
            "{{json db}}",
            "{{db.password}}",
            "{{default pw \"x\"}}",
            "{{join (default pw \"x\") \",\"}}",
            "{{#if ok}}{{lower pw}}{{/if}}",
            "{{#each db}}{{@key}}={{this}}{{/each}}",
            "{{#with db}}{{password}}{{/with}}",
            "{{#each list}}{{../pw}}{{/each}}",
            "{{@root.db.password}}",
            "{{json this}}",
        ] {
            assert!(t.reads_secret(template), "{template}");
        }
        for template in [
            "plain",
            "{{app}}",
            "{{upper app}}",
            "{{#each users}}{{pw}}{{/each}}",
            "{{#each users}}{{@index}}{{this}}{{/each}}",
            "{{#if pw_enabled}}x{{/if}}",
        ] {
            assert!(!t.reads_secret(template), "{template}");
        }
    }

    #[test]
    fn a_field_of_a_secret_is_tainted_and_its_siblings_are_not() {
        let mut t = taint(&[]);
        t.mark(vec!["cfg".into(), "password".into()]);
        assert!(t.reads_secret("{{cfg.password}}"));
        assert!(t.reads_secret("{{json cfg}}"));
        assert!(!t.reads_secret("{{cfg.user}}"));
        let n = node("a: \"{{cfg}}\"\nb: [\"{{cfg.user}}\", \"x{{cfg.password}}\"]\n");
        assert_eq!(
            t.derive(&n),
            vec![vec!["a", "password"], vec!["b", "1"]]
                .into_iter()
                .map(|p| p.into_iter().map(String::from).collect::<VarPath>())
                .collect::<Vec<_>>()
        );
        assert!(t.holds_at(&n, &["b"]));
        assert!(!t.holds_at(&n, &["b", "0"]));
    }

    #[test]
    fn what_a_secret_renders_to_is_recorded_part_by_part() {
        let t = taint(&["pw", "db"]);
        let ctx = json!({"pw": "it's", "db": {"user": "app", "password": "s3"}, "app": "a"});
        t.record_vars(&ctx);
        let n = node(
            "cmd: \"run {{quote pw}} for {{app}}\"\nname: \"{{upper pw}}\"\nall: \"{{db}}\"\n",
        );
        let value = engine().render_node(&n, &ctx).unwrap();
        t.record(&n, &value, &ctx);
        let secrets = t.secrets();
        for s in ["it's", "app", "s3", "'it'\\''s'", "IT'S"] {
            assert!(secrets.contains(&s.to_string()), "{s}: {secrets:?}");
        }
        assert!(!secrets.iter().any(|s| s.contains("run ")), "{secrets:?}");
        let shown = crate::report::redact("run 'it'\\''s' for a", &secrets);
        assert_eq!(shown, "run <secret> for a");
    }

    #[test]
    fn parts_are_expressions_and_whole_blocks() {
        assert_eq!(
            parts("a {{x}} b {{#if y}}{{z}}{{else}}q{{/if}} \\{{no}} {{{raw}}}"),
            ["{{x}}", "{{#if y}}{{z}}{{else}}q{{/if}}", "{{{raw}}}"]
        );
        assert_eq!(parts("{{#if y}}open"), ["{{#if y}}open"]);
        assert_eq!(parts("{{!-- }} --}}{{x}}"), ["{{!-- }} --}}", "{{x}}"]);
    }

    #[test]
    fn secrets_include_their_json_string_form() {
        let t = taint(&["pw"]);
        t.record_vars(&json!({"pw": "a\"b"}));
        assert_eq!(t.secrets(), ["a\"b", "a\\\"b"]);
    }
}
