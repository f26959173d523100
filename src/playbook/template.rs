//! Handlebars, the way playbooks need it: strict about undefined variables (also in
//! helper arguments and `#if`, where handlebars-rust is lenient), no HTML escaping,
//! typed single-expression values, and the helpers of the spec.

use super::magic::{ForTemplate, Magic};
use crate::error::InputError;
use crate::node::{Kind, Node};
use handlebars::template::{Parameter, TemplateElement};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonTruthy, Output, RenderContext,
    RenderError, RenderErrorReason, Renderable, ScopedJson, TemplateErrorReason,
};
use handlebars::{Path, PathSeg};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

/// What a template is rendered against: a host's variables, and the magic variables
/// every host of the play shares (added only to templates that name them).
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub vars: &'a Value,
    pub magic: Option<&'a Magic<'a>>,
}

impl<'a> From<&'a Value> for Scope<'a> {
    fn from(vars: &'a Value) -> Scope<'a> {
        Scope { vars, magic: None }
    }
}

impl Scope<'_> {
    /// What `template` needs of the shared variables (nothing, without them).
    fn shared(self, template: &str) -> Result<ForTemplate, RenderError> {
        match self.magic {
            Some(magic) => Ok(magic
                .for_template(template, self.vars)
                .map_err(RenderErrorReason::Other)?),
            None => Ok(ForTemplate {
                context: None,
                hostvars: None,
            }),
        }
    }
}

thread_local! {
    /// `hostvars` for the `hostvar` helper, while a template that calls it renders:
    /// handlebars gives helpers nothing but the context, and copying every host's
    /// variables into each host's context is what the helper exists to avoid.
    static HOSTVARS: RefCell<Option<Arc<Value>>> = const { RefCell::new(None) };
}

/// Sets [`HOSTVARS`] for one render, and puts back what was there.
struct HostvarsInScope(Option<Arc<Value>>);

impl HostvarsInScope {
    fn enter(hostvars: Option<Arc<Value>>) -> HostvarsInScope {
        HostvarsInScope(HOSTVARS.replace(hostvars))
    }
}

impl Drop for HostvarsInScope {
    fn drop(&mut self) {
        HOSTVARS.set(self.0.take());
    }
}

pub struct Engine {
    registry: Handlebars<'static>,
}

/// One shared engine: helpers are registered once per process.
pub fn engine() -> &'static Engine {
    static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::new);
    &ENGINE
}

/// Exactly one helper call, `{{default port 8080}}`: its value keeps its type too.
static SINGLE_HELPER_CALL: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*\s[^{}]*?)\s*\}\}$").expect("static regex")
});

/// Exactly one variable, `{{db.password}}`: its value keeps its type.
pub(super) static SINGLE_EXPRESSION: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)\s*\}\}$")
        .expect("static regex")
});

impl Engine {
    fn new() -> Engine {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper("if", Box::new(StrictIf { negate: false }));
        registry.register_helper("unless", Box::new(StrictIf { negate: true }));
        for (name, f) in VALUE_HELPERS {
            registry.register_helper(name, Box::new(ValueHelper { name, f: *f }));
        }
        registry.register_helper("default", Box::new(DefaultHelper));
        registry.register_helper("hostvar", Box::new(HostvarHelper));
        Engine { registry }
    }

    /// Render a template to text.
    pub fn render_text<'a>(
        &self,
        template: &str,
        scope: impl Into<Scope<'a>>,
    ) -> Result<String, String> {
        if !template.contains("{{") {
            return Ok(template.to_string());
        }
        self.render(template, scope.into())
            .map_err(|e| describe(&e))
    }

    fn render(&self, template: &str, scope: Scope<'_>) -> Result<String, RenderError> {
        let shared = scope.shared(template)?;
        let context = match shared.context {
            Some(owned) => Context::from(owned),
            None => Context::wraps(scope.vars)?,
        };
        let _hostvars = HostvarsInScope::enter(shared.hostvars);
        let mut out = self
            .registry
            .render_template_with_context(template, &context)?;
        // handlebars writes into an 8 KiB buffer; a plan keeps what it renders for the
        // whole run, on every host (~70 KiB a host for short files otherwise).
        out.shrink_to_fit();
        Ok(out)
    }

    /// Render a template file; a failure says where in the file handlebars found it.
    pub fn render_file<'a>(
        &self,
        template: &str,
        scope: impl Into<Scope<'a>>,
    ) -> Result<String, RenderFailure> {
        self.render(template, scope.into())
            .map_err(|e| RenderFailure {
                message: describe(&e),
                position: position(&e),
            })
    }

    /// Render a value: exactly one `{{path}}` keeps the type of what it names.
    pub fn render_typed<'a>(
        &self,
        template: &str,
        scope: impl Into<Scope<'a>>,
    ) -> Result<Value, String> {
        let scope = scope.into();
        if let Some(caps) = SINGLE_EXPRESSION.captures(template) {
            let path = &caps[1];
            if !is_helper(path) {
                let shared = scope.shared(template).map_err(|e| describe(&e))?;
                return lookup(shared.context.as_ref().unwrap_or(scope.vars), path)
                    .cloned()
                    .ok_or_else(|| format!("undefined variable `{path}`"));
            }
        }
        if let Some(caps) = SINGLE_HELPER_CALL.captures(template)
            && is_helper(caps[1].split_whitespace().next().unwrap_or(""))
        {
            // The helper's value, through `json`, instead of its text.
            let json = self.render_text(&format!("{{{{json ({})}}}}", &caps[1]), scope)?;
            return serde_json::from_str(&json).map_err(|e| format!("template error: {e}"));
        }
        self.render_text(template, scope).map(Value::String)
    }

    /// Evaluate a `when:` expression (handlebars without braces).
    pub fn truthy<'a>(
        &self,
        expression: &str,
        scope: impl Into<Scope<'a>>,
    ) -> Result<bool, String> {
        let rendered = self.render_text(&format!("{{{{#if {expression}}}}}1{{{{/if}}}}"), scope)?;
        Ok(rendered == "1")
    }

    /// Render every string inside a node, keeping the node's shape.
    pub fn render_node<'a>(
        &self,
        node: &Node,
        scope: impl Into<Scope<'a>>,
    ) -> Result<Value, InputError> {
        let ctx = scope.into();
        Ok(match &node.kind {
            Kind::Str(s) => self.render_typed(s, ctx).map_err(|e| {
                let help = template_help(&e);
                node.error(e).help(help)
            })?,
            Kind::Seq(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.render_node(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.scalar_text()?, self.render_node(v, ctx)?);
                }
                Value::Object(map)
            }
            _ => node.to_value(),
        })
    }
}

/// Why a template file did not render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderFailure {
    pub message: String,
    /// 1-based line and column in the template, when handlebars knows them.
    pub position: Option<(usize, usize)>,
}

fn position(error: &RenderError) -> Option<(usize, usize)> {
    match (error.line_no, error.column_no, error.reason()) {
        (Some(line), Some(column), _) => Some((line, column)),
        (_, _, RenderErrorReason::TemplateError(e)) => e.pos(),
        _ => None,
    }
}

pub(super) fn is_helper(name: &str) -> bool {
    name == "default" || name == "hostvar" || VALUE_HELPERS.iter().any(|(n, _)| *n == name)
}

/// The hint for a template error, by what went wrong.
pub fn template_help(message: &str) -> &'static str {
    if message.contains("syntax error") || message.contains("is closing") {
        "close every `{{` with `}}`, and every block with its end: \
         `{{#if x}}...{{/if}}`, `{{#each xs}}...{{/each}}`"
    } else if message.contains("unknown helper") {
        "the helpers are default, join, upper, lower, json, quote, env, hostvar, \
         and eq ne gt gte lt lte and or not"
    } else {
        "define the variable in vars, vars_files, the inventory or with -e, \
         or write (default NAME VALUE) for an optional one"
    }
}

/// Every name a template's expressions use, from its syntax tree: the first segment of
/// each variable path (`facts` in `{{facts.os.id}}`, `hostvars` in `../hostvars`) and each
/// helper's name. Text outside `{{ }}` and string literals never count, so
/// `/opt/artifacts` uses no `facts`. None when the template does not parse.
pub fn names_used(template: &str) -> Option<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    if template.contains("{{") {
        let parsed = handlebars::template::Template::compile(template).ok()?;
        names_in_template(&parsed, &mut names);
    }
    Some(names)
}

fn names_in_template(template: &handlebars::template::Template, names: &mut BTreeSet<String>) {
    for element in &template.elements {
        names_in_element(element, names);
    }
}

fn names_in_element(element: &TemplateElement, names: &mut BTreeSet<String>) {
    match element {
        TemplateElement::Expression(helper)
        | TemplateElement::HtmlExpression(helper)
        | TemplateElement::HelperBlock(helper) => {
            names_in_parameter(&helper.name, names);
            for parameter in helper.params.iter().chain(helper.hash.values()) {
                names_in_parameter(parameter, names);
            }
            for inner in [&helper.template, &helper.inverse].into_iter().flatten() {
                names_in_template(inner, names);
            }
        }
        _ => {}
    }
}

fn names_in_parameter(parameter: &Parameter, names: &mut BTreeSet<String>) {
    match parameter {
        Parameter::Name(name) => {
            names.insert(name.clone());
        }
        Parameter::Path(Path::Relative((segments, _))) => {
            let first = segments.iter().find_map(|segment| match segment {
                PathSeg::Named(name) => Some(name.clone()),
                _ => None,
            });
            names.extend(first);
        }
        Parameter::Subexpression(sub) => names_in_element(&sub.element, names),
        _ => {}
    }
}

/// A dotted path into the context (`facts.os.id`).
pub fn lookup<'a>(ctx: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(ctx, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn describe(error: &RenderError) -> String {
    match error.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => format!("undefined variable `{path}`"),
        RenderErrorReason::MissingVariable(None) => "undefined variable".to_string(),
        // pest's own message lists grammar rules ("expected escape, expression, ...").
        RenderErrorReason::TemplateError(e) => match e.reason() {
            TemplateErrorReason::InvalidSyntax(_) => {
                "template syntax error: an unclosed `{{` or block, or a tag handlebars \
                 cannot read"
                    .to_string()
            }
            other => format!("template syntax error: {other}"),
        },
        RenderErrorReason::HelperNotFound(name) => format!("unknown helper `{name}`"),
        other => format!("template error: {other}"),
    }
}

fn missing(param: &handlebars::PathAndJson<'_>) -> RenderError {
    RenderErrorReason::MissingVariable(param.relative_path().cloned()).into()
}

fn params<'a>(h: &'a Helper<'_>) -> Result<Vec<&'a Value>, RenderError> {
    h.params()
        .iter()
        .map(|p| {
            if p.is_value_missing() {
                Err(missing(p))
            } else {
                Ok(p.value())
            }
        })
        .collect()
}

/// `#if` / `#unless` that fail on an undefined variable instead of reading it as false.
struct StrictIf {
    negate: bool,
}

impl HelperDef for StrictIf {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = params(h)?
            .first()
            .copied()
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("if", 0))?;
        let branch = if value.is_truthy(false) != self.negate {
            h.template()
        } else {
            h.inverse()
        };
        match branch {
            Some(t) => t.render(r, ctx, rc, out),
            None => Ok(()),
        }
    }
}

type ValueFn = fn(&[&Value]) -> Result<Value, String>;

/// A helper computing a value from defined arguments; usable as `{{h a}}` and `(h a)`.
struct ValueHelper {
    name: &'static str,
    f: ValueFn,
}

impl HelperDef for ValueHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let args = params(h)?;
        (self.f)(&args)
            .map(ScopedJson::Derived)
            .map_err(|e| RenderErrorReason::Other(format!("{}: {e}", self.name)).into())
    }
}

/// `default` is the one helper that may name an undefined variable.
struct DefaultHelper;

impl HelperDef for DefaultHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let (value, fallback) = match h.params().as_slice() {
            [v, f] => (v, f),
            _ => {
                return Err(RenderErrorReason::Other(
                    "default takes two arguments: (default NAME VALUE)".into(),
                )
                .into());
            }
        };
        if fallback.is_value_missing() {
            return Err(missing(fallback));
        }
        let unset = value.is_value_missing()
            || value.value().is_null()
            || value.value().as_str() == Some("");
        Ok(ScopedJson::Derived(if unset {
            fallback.value().clone()
        } else {
            value.value().clone()
        }))
    }
}

/// `{{hostvar HOST "NAME"}}`: a variable of another host (`hostvars`), strictly.
struct HostvarHelper;

impl HelperDef for HostvarHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let fail = |message: String| RenderErrorReason::Other(format!("hostvar: {message}"));
        let [host, name] = params(h)?[..] else {
            return Err(
                fail("takes a host and a variable name: (hostvar HOST \"NAME\")".into()).into(),
            );
        };
        let (host, name) = (text(host), text(name));
        let value = HOSTVARS.with_borrow(|hostvars| {
            let all = hostvars
                .as_ref()
                .ok_or_else(|| fail("other hosts are not known here".into()))?;
            let vars = all
                .get(&host)
                .ok_or_else(|| fail(format!("`{host}` is not a host of the inventory")))?;
            vars.get(&name)
                .cloned()
                .ok_or_else(|| fail(format!("host `{host}` has no variable `{name}`")))
        })?;
        Ok(ScopedJson::Derived(value))
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn arity<'a>(args: &'a [&'a Value], n: usize) -> Result<&'a [&'a Value], String> {
    if args.len() == n {
        Ok(args)
    } else {
        Err(format!("takes {n} argument(s), got {}", args.len()))
    }
}

fn compare(args: &[&Value]) -> Result<std::cmp::Ordering, String> {
    let [a, b] = arity(args, 2)? else {
        unreachable!("arity checked")
    };
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y).ok_or_else(|| "cannot compare NaN".into()),
        _ => Ok(text(a).cmp(&text(b))),
    }
}

const VALUE_HELPERS: &[(&str, ValueFn)] = &[
    ("eq", |a| Ok(Value::Bool(arity(a, 2)?[0] == a[1]))),
    ("ne", |a| Ok(Value::Bool(arity(a, 2)?[0] != a[1]))),
    ("gt", |a| Ok(Value::Bool(compare(a)?.is_gt()))),
    ("gte", |a| Ok(Value::Bool(compare(a)?.is_ge()))),
    ("lt", |a| Ok(Value::Bool(compare(a)?.is_lt()))),
    ("lte", |a| Ok(Value::Bool(compare(a)?.is_le()))),
    ("and", |a| {
        Ok(Value::Bool(a.iter().all(|v| v.is_truthy(false))))
    }),
    ("or", |a| {
        Ok(Value::Bool(a.iter().any(|v| v.is_truthy(false))))
    }),
    ("not", |a| {
        Ok(Value::Bool(!arity(a, 1)?[0].is_truthy(false)))
    }),
    ("upper", |a| {
        Ok(Value::String(text(arity(a, 1)?[0]).to_uppercase()))
    }),
    ("lower", |a| {
        Ok(Value::String(text(arity(a, 1)?[0]).to_lowercase()))
    }),
    ("json", |a| Ok(Value::String(arity(a, 1)?[0].to_string()))),
    ("quote", |a| {
        Ok(Value::String(
            crate::quote::quote(&text(arity(a, 1)?[0])).into_owned(),
        ))
    }),
    ("join", |a| {
        let (list, sep) = match a {
            [list] => (list, ", ".to_string()),
            [list, sep] => (list, text(sep)),
            _ => return Err("takes a list and an optional separator".into()),
        };
        let items = list.as_array().ok_or("the first argument must be a list")?;
        Ok(Value::String(
            items.iter().map(text).collect::<Vec<_>>().join(&sep),
        ))
    }),
    ("env", |a| {
        let name = text(arity(a, 1)?[0]);
        std::env::var(&name)
            .map(Value::String)
            .map_err(|_| format!("environment variable {name} is not set"))
    }),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({"app": "myapp", "port": 8080, "list": ["a", "b"], "flag": false,
               "facts": {"os": {"id": "debian"}}})
    }

    #[test]
    fn plain_text_and_variables() {
        let e = engine();
        assert_eq!(e.render_text("/opt/{{app}}", &ctx()).unwrap(), "/opt/myapp");
        assert_eq!(e.render_text("<&>", &ctx()).unwrap(), "<&>");
        assert_eq!(e.render_text("{{upper app}}", &ctx()).unwrap(), "MYAPP");
        assert_eq!(e.render_text("{{join list \",\"}}", &ctx()).unwrap(), "a,b");
        assert_eq!(e.render_text("{{quote \"a b\"}}", &ctx()).unwrap(), "'a b'");
        assert_eq!(
            e.render_text("{{json list}}", &ctx()).unwrap(),
            r#"["a","b"]"#
        );
    }

    #[test]
    fn single_expressions_keep_their_type() {
        let e = engine();
        assert_eq!(e.render_typed("{{port}}", &ctx()).unwrap(), json!(8080));
        assert_eq!(
            e.render_typed("{{ list }}", &ctx()).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(e.render_typed("p{{port}}", &ctx()).unwrap(), json!("p8080"));
        assert_eq!(
            e.render_typed("{{app}}\n", &ctx()).unwrap(),
            json!("myapp\n")
        );
    }

    #[test]
    fn undefined_variables_are_errors_everywhere() {
        let e = engine();
        for t in [
            "{{nope}}",
            "{{upper nope}}",
            "{{#if nope}}x{{/if}}",
            "{{#unless nope}}x{{/unless}}",
            "{{#if (eq nope 1)}}x{{/if}}",
            "{{join nope}}",
            "{{facts.os.nope}}",
        ] {
            let err = e.render_text(t, &ctx()).unwrap_err();
            assert!(err.contains("undefined variable"), "{t}: {err}");
        }
        assert!(e.render_typed("{{nope}}", &ctx()).is_err());
    }

    #[test]
    fn default_allows_an_optional_variable() {
        let e = engine();
        assert_eq!(e.render_text("{{default nope 3}}", &ctx()).unwrap(), "3");
        assert_eq!(e.render_text("{{default app 3}}", &ctx()).unwrap(), "myapp");
        assert!(!e.truthy("(default enable_tls false)", &ctx()).unwrap());
    }

    #[test]
    fn file_errors_know_their_line() {
        let e = engine();
        let at = |t: &str| e.render_file(t, &ctx()).unwrap_err();
        let missing = at("a: {{app}}\nb: {{nope}}\n");
        assert_eq!(missing.message, "undefined variable `nope`");
        assert_eq!(missing.position, Some((2, 4)));
        let nested = at("x\n{{#if flag}}{{else}}\n  {{upper nope}}\n{{/if}}\n");
        assert_eq!(nested.position.map(|p| p.0), Some(3));
        let syntax = at("x\ny {{#if flag}}\n");
        assert!(syntax.message.contains("syntax"), "{}", syntax.message);
        assert!(syntax.position.is_some());
        assert_eq!(
            e.render_file("port {{port}}\n", &ctx()).unwrap(),
            "port 8080\n"
        );
    }

    #[test]
    fn syntax_errors_say_what_to_fix() {
        let e = engine();
        for t in ["a {{app", "{{#if flag}}x\n", "{{#if flag}}x{{/each}}"] {
            let failure = e.render_file(t, &ctx()).unwrap_err();
            assert!(
                failure.message.starts_with("template syntax error: "),
                "{t}: {}",
                failure.message
            );
            assert!(
                !failure.message.contains("expected"),
                "{t}: {}",
                failure.message
            );
            assert!(
                template_help(&failure.message).contains("{{/if}}"),
                "{t}: {}",
                failure.message
            );
        }
        let undefined = e.render_text("{{nope}}", &ctx()).unwrap_err();
        assert!(template_help(&undefined).contains("(default NAME VALUE)"));
        let helper = e.render_text("{{nohelper app}}", &ctx()).unwrap_err();
        assert!(template_help(&helper).contains("join"), "{helper}");
    }

    #[test]
    fn other_hosts_variables_through_hostvars() {
        let magic = Magic::new(
            json!({"web": ["w1", "w2"]}).as_object().unwrap().clone(),
            vec!["w1".into(), "w2".into()],
            Box::new(|| {
                Ok(json!({"w1": {"ansible_host": "10.0.0.1"}, "w2": {"ansible_host": "10.0.0.2"}}))
            }),
        );
        let vars = ctx();
        let scope = Scope {
            vars: &vars,
            magic: Some(&magic),
        };
        let e = engine();
        let upstream = "{{#each groups.web}}server {{lookup (lookup ../hostvars this) \"ansible_host\"}}:{{../port}};{{/each}}";
        assert_eq!(
            e.render_text(upstream, scope).unwrap(),
            "server 10.0.0.1:8080;server 10.0.0.2:8080;"
        );
        assert_eq!(
            e.render_text(
                "{{#each ansible_play_hosts}}{{hostvar this \"ansible_host\"}} {{/each}}",
                scope
            )
            .unwrap(),
            "10.0.0.1 10.0.0.2 "
        );
        assert_eq!(
            e.render_typed("{{groups.web}}", scope).unwrap(),
            json!(["w1", "w2"])
        );
        for (template, error) in [
            (
                "{{hostvar \"w3\" \"ansible_host\"}}",
                "`w3` is not a host of the inventory",
            ),
            (
                "{{hostvar \"w1\" \"port\"}}",
                "host `w1` has no variable `port`",
            ),
            (
                "{{lookup (lookup hostvars \"w1\") \"port\"}}",
                "undefined variable",
            ),
        ] {
            let err = e.render_text(template, scope).unwrap_err();
            assert!(err.contains(error), "{template}: {err}");
        }
        // Without the play's shared variables (a module's own template), they are undefined.
        assert!(e.render_text("{{groups.web}}", &vars).is_err());
    }

    #[test]
    fn names_used_come_from_the_syntax_tree() {
        let names = |t: &str| names_used(t).unwrap().into_iter().collect::<Vec<_>>();
        assert!(names("/opt/artifacts/{{app}}").iter().all(|n| n != "facts"));
        assert!(names("{{upper \"facts\"}}").iter().all(|n| n != "facts"));
        assert!(names("{{facts.os.id}}").contains(&"facts".to_string()));
        assert_eq!(
            names(
                "{{#if (eq facts.arch \"x86_64\")}}{{#each groups.web}}{{hostvar this \"a\"}}{{../port}}{{/each}}{{/if}}"
            ),
            ["each", "eq", "facts", "groups", "hostvar", "if", "port"]
        );
        assert!(names_used("{{#if x}}").is_none());
    }

    #[test]
    fn when_expressions() {
        let e = engine();
        assert!(e.truthy("(eq facts.os.id \"debian\")", &ctx()).unwrap());
        assert!(!e.truthy("flag", &ctx()).unwrap());
        assert!(e.truthy("list", &ctx()).unwrap());
        assert!(!e.truthy("(gt port 9000)", &ctx()).unwrap());
        assert!(e.truthy("missing_var", &ctx()).is_err());
    }
}
