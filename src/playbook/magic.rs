//! Ansible's magic variables about the other hosts of a run: `groups`, `hostvars`,
//! `ansible_play_hosts`. They are the same for every host and grow with the
//! inventory, so they are built once per play and shared, and a template's context
//! gets them only when the template names them: a thousand hosts do not carry a
//! thousand copies of every host's variables.

use serde_json::{Map, Value};
use std::sync::{LazyLock, OnceLock};

/// The names a template may use to reach the shared variables (`hostvar` is the
/// helper that reads `hostvars`).
const NAMES: [&str; 4] = ["groups", "hostvars", "hostvar", "ansible_play_hosts"];

/// Every word inside a template's `{{ ... }}`.
static EXPRESSION: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"(?s)\{\{(.*?)\}\}").expect("static regex"));
static WORD: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"[A-Za-z_][A-Za-z0-9_]*").expect("static regex"));

/// Computes every host's inventory variables, on the first template that asks.
type HostvarsFn<'a> = Box<dyn Fn() -> Result<Value, String> + 'a>;

pub struct Magic<'a> {
    groups: Value,
    play_hosts: Value,
    hostvars: OnceLock<Result<Value, String>>,
    make_hostvars: HostvarsFn<'a>,
}

impl<'a> Magic<'a> {
    /// `groups`: group name -> host names; `play_hosts`: the play's hosts, in order;
    /// `hostvars`: built by `make_hostvars` when a template first needs it.
    pub fn new(
        groups: Map<String, Value>,
        play_hosts: Vec<String>,
        make_hostvars: HostvarsFn<'a>,
    ) -> Magic<'a> {
        Magic {
            groups: Value::Object(groups),
            play_hosts: play_hosts.into_iter().map(Value::String).collect(),
            hostvars: OnceLock::new(),
            make_hostvars,
        }
    }

    /// `vars` with the shared variables `template` names added; None when it names none.
    pub fn context_for(&self, template: &str, vars: &Value) -> Result<Option<Value>, String> {
        let named = names_used(template);
        if named.is_empty() {
            return Ok(None);
        }
        let mut context = match vars {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        for name in named {
            let value = match name {
                "groups" => self.groups.clone(),
                "ansible_play_hosts" => self.play_hosts.clone(),
                _ => self.hostvars()?.clone(),
            };
            // `hostvar` is a helper; what it reads is `hostvars`.
            let key = if name == "hostvar" { "hostvars" } else { name };
            context.entry(key).or_insert(value);
        }
        Ok(Some(Value::Object(context)))
    }

    fn hostvars(&self) -> Result<&Value, String> {
        self.hostvars
            .get_or_init(|| (self.make_hostvars)())
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// The shared names a template's expressions mention (a superset of what it reads:
/// a word in a string literal counts too, which costs a copy, never a wrong value).
fn names_used(template: &str) -> Vec<&'static str> {
    if !template.contains("{{") {
        return Vec::new();
    }
    let mut used = Vec::new();
    for expression in EXPRESSION.captures_iter(template) {
        for word in WORD.find_iter(&expression[1]) {
            if let Some(name) = NAMES.iter().find(|n| **n == word.as_str())
                && !used.contains(name)
            {
                used.push(*name);
            }
        }
    }
    used
}

/// `web1.example.com` -> `web1`, as Ansible's `inventory_hostname_short`.
pub fn short_name(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::Cell;

    #[test]
    fn only_templates_that_name_them_get_the_shared_variables() {
        let built = Cell::new(0);
        let magic = Magic::new(
            json!({"web": ["w1", "w2"]}).as_object().unwrap().clone(),
            vec!["w1".into()],
            Box::new(|| {
                built.set(built.get() + 1);
                Ok(json!({"w1": {"ansible_host": "10.0.0.1"}}))
            }),
        );
        let vars = json!({"app": "demo"});
        assert_eq!(magic.context_for("{{app}} groups", &vars).unwrap(), None);
        let with_groups = magic
            .context_for("{{#each groups.web}}{{this}}{{/each}}", &vars)
            .unwrap()
            .unwrap();
        assert_eq!(with_groups["groups"]["web"], json!(["w1", "w2"]));
        assert!(with_groups.get("hostvars").is_none());
        assert_eq!(
            built.get(),
            0,
            "hostvars is built only when a template needs it"
        );
        for template in [
            "{{hostvar this \"ansible_host\"}}",
            "{{lookup (lookup ../hostvars this) \"x\"}}",
        ] {
            let context = magic.context_for(template, &vars).unwrap().unwrap();
            assert_eq!(context["hostvars"]["w1"]["ansible_host"], "10.0.0.1");
        }
        assert_eq!(built.get(), 1, "and once");
    }

    #[test]
    fn short_names_stop_at_the_first_dot() {
        assert_eq!(short_name("web1.example.com"), "web1");
        assert_eq!(short_name("web1"), "web1");
    }
}
