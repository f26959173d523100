//! A host's variables: the layers of the spec's precedence, with templates in values
//! resolved against each other.

use super::magic::Magic;
use super::taint::Taint;
use super::template::{Scope, engine};
use crate::error::{InputError, InputResult, SourceFile, Span};
use crate::node::{Kind, Node};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use std::path::Path;

/// Variables by layer, lowest precedence first.
pub type Layer = Vec<(String, Node)>;

fn has_template(node: &Node) -> bool {
    match &node.kind {
        Kind::Str(s) => s.contains("{{"),
        Kind::Seq(items) => items.iter().any(has_template),
        Kind::Map(entries) => entries.iter().any(|(_, v)| has_template(v)),
        _ => false,
    }
}

/// A host's variables, and which of them a secret flowed into.
pub struct Resolved {
    pub vars: Map<String, Value>,
    pub taint: Taint,
}

/// Each variable's winning definition (later layers win), in first-definition order.
fn winners<'a>(layers: &[&'a [(String, Node)]]) -> IndexMap<&'a str, &'a Node> {
    let mut winners: IndexMap<&str, &Node> = IndexMap::new();
    for layer in layers {
        for (name, node) in layer.iter() {
            winners.insert(name, node);
        }
    }
    winners
}

/// Merge `layers` (later wins) over `base` (facts, item, inventory_hostname), then
/// render values that hold templates until they stop changing. A value whose template
/// cannot be resolved is an error located at that value. The variables named in
/// `secrets`, the vaulted values, and every variable whose template reads one of them
/// (directly or through others), are tainted. Values may read the play's shared
/// `magic` variables.
pub fn resolve(
    layers: &[&[(String, Node)]],
    base: &Map<String, Value>,
    secrets: &[String],
    magic: Option<&Magic<'_>>,
) -> InputResult<Resolved> {
    let winners = winners(layers);
    let spans = winners
        .iter()
        .filter(|(name, _)| secrets.iter().any(|s| s == **name))
        .map(|(_, node)| node.span.clone())
        .collect();
    let mut taint = Taint::declared(secrets, spans);
    for (name, node) in &winners {
        for path in node.vaulted_paths() {
            let mut full = vec![name.to_string()];
            full.extend(path);
            taint.mark(full);
            taint.add_span(node.span.clone());
        }
    }
    let vars = render_all(&winners, base, magic).map_err(|e| e.redact(&[], taint.spans()))?;
    // Each pass follows one more level of variables that name tainted ones.
    loop {
        let mut spread = false;
        for (name, node) in winners.iter().filter(|(_, n)| has_template(n)) {
            for path in taint.derive(node) {
                let mut full = vec![name.to_string()];
                full.extend(path);
                if taint.mark(full) {
                    taint.add_span(node.span.clone());
                    spread = true;
                }
            }
        }
        if !spread {
            break;
        }
    }
    taint.record_vars(&Value::Object(vars.clone()));
    Ok(Resolved { vars, taint })
}

fn render_all(
    winners: &IndexMap<&str, &Node>,
    base: &Map<String, Value>,
    magic: Option<&Magic<'_>>,
) -> InputResult<Map<String, Value>> {
    let mut ctx = base.clone();
    for (name, node) in winners {
        ctx.insert(name.to_string(), node.to_value());
    }
    let templated: Vec<(&str, &Node)> = winners
        .iter()
        .filter(|(_, n)| has_template(n))
        .map(|(k, v)| (*k, *v))
        .collect();
    // Each pass resolves one more level of vars that name other vars.
    for _ in 0..=templated.len().min(16) {
        let mut changed = false;
        let snapshot = Value::Object(ctx.clone());
        for (name, node) in &templated {
            if let Ok(value) = engine().render_node(
                node,
                Scope {
                    vars: &snapshot,
                    magic,
                },
            ) && ctx.get(*name) != Some(&value)
            {
                ctx.insert(name.to_string(), value);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let snapshot = Value::Object(ctx.clone());
    for (_, node) in &templated {
        let value = engine().render_node(
            node,
            Scope {
                vars: &snapshot,
                magic,
            },
        )?;
        if value.to_string().contains("{{") {
            return Err(node
                .error("this variable refers to itself, directly or through others")
                .help("break the cycle between the variables"));
        }
    }
    Ok(ctx)
}

/// `-e KEY=VALUE` (a string, as in Ansible) or `-e @FILE` (typed values from YAML).
pub fn extra_vars(args: &[String]) -> InputResult<Layer> {
    let mut layer = Vec::new();
    for arg in args {
        if let Some(file) = arg.strip_prefix('@') {
            let node = super::load_yaml(Path::new(file))?;
            for (k, _, v) in node.entries()? {
                layer.push((k.to_string(), v.clone()));
            }
            continue;
        }
        let Some((key, value)) = arg.split_once('=') else {
            return Err(
                InputError::new(format!("-e {arg}: expected KEY=VALUE or @FILE"))
                    .help("for example: -e version=v1.2.0, or -e @vars/prod.yml"),
            );
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(
                InputError::new(format!("-e {arg}: `{key}` is not a variable name"))
                    .help("variable names are letters, digits and underscores"),
            );
        }
        let file = SourceFile::new(format!("-e {arg}"), arg.as_str());
        let node = Node {
            kind: Kind::Str(value.to_string()),
            span: Span {
                file,
                offset: key.len() + 1,
                len: value.len(),
            },
            vaulted: false,
        };
        layer.push((key.to_string(), node));
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::parse;

    fn layer(yaml: &str) -> Layer {
        let node = parse(&SourceFile::new("v.yml", yaml)).unwrap();
        node.entries()
            .unwrap()
            .into_iter()
            .map(|(k, _, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn later_layers_win_and_templates_chain() {
        let low = layer("app: low\nport: 1\n");
        let high = layer(
            "app: myapp\nhome: \"/opt/{{app}}\"\nlog: \"{{home}}/log\"\nports: \"{{port}}\"\n",
        );
        let ctx = resolve(&[&low[..], &high[..]], &Map::new(), &[], None)
            .unwrap()
            .vars;
        assert_eq!(ctx["home"], "/opt/myapp");
        assert_eq!(ctx["log"], "/opt/myapp/log");
        assert_eq!(ctx["ports"], 1);
    }

    #[test]
    fn undefined_variables_in_vars_are_located() {
        let l = layer("a: 1\nb: \"{{nope}}\"\n");
        let err = resolve(&[&l[..]], &Map::new(), &[], None).err().unwrap();
        assert!(err.message.starts_with("v.yml:2:4:"), "{}", err.message);
        assert!(err.message.contains("undefined variable `nope`"));
    }

    #[test]
    fn a_value_derived_from_a_secret_is_secret() {
        let l = layer(
            "pw: hunter2\napp: demo\ndsn: \"db://{{app}}:{{pw}}\"\nalias: \"{{dsn}}\"\n\
             home: \"/opt/{{app}}\"\n",
        );
        let resolved = resolve(&[&l[..]], &Map::new(), &["pw".to_string()], None).unwrap();
        let taint = &resolved.taint;
        assert!(taint.reads_secret("{{upper alias}}"));
        assert!(!taint.reads_secret("{{home}} {{app}}"));
        let secrets = taint.secrets();
        assert_eq!(secrets, ["hunter2", "db://demo:hunter2"]);
        // pw, dsn and alias are written somewhere: their text is hidden in snippets.
        assert_eq!(taint.spans().len(), 3);
    }

    #[test]
    fn vaulted_values_are_secret_and_so_is_what_they_make() {
        let mut l = layer(
            "db: { user: app, password: s3 }\nport: 5432\ndsn: \"{{db.user}}:{{db.password}}\"\n",
        );
        // As node::parse marks a `!vault` value and every value of a vaulted file.
        let Kind::Map(entries) = &mut l[0].1.kind else {
            panic!("db is a mapping")
        };
        entries[1].1.vaulted = true;
        l[1].1.vaulted = true;
        let resolved = resolve(&[&l[..]], &Map::new(), &[], None).unwrap();
        let taint = &resolved.taint;
        assert!(taint.reads_secret("{{db.password}}"));
        assert!(!taint.reads_secret("{{db.user}}"));
        assert!(taint.reads_secret("{{port}}"));
        assert_eq!(taint.secrets(), ["s3", "5432", "app:s3"]);
    }

    #[test]
    fn extra_vars_are_strings() {
        let l = extra_vars(&["version=1.10".to_string()]).unwrap();
        let ctx = resolve(&[&l[..]], &Map::new(), &[], None).unwrap().vars;
        assert_eq!(ctx["version"], "1.10");
        assert!(extra_vars(&["novalue".to_string()]).is_err());
    }
}
