//! Ansible's magic variables about the other hosts of a run: `groups`, `hostvars`,
//! `ansible_play_hosts`. They are the same for every host and grow with the
//! inventory, so they are built once per play and shared, and a template's context
//! gets them only when the template names them: a thousand hosts do not carry a
//! thousand copies of every host's variables. The `hostvar` helper reads the shared
//! `hostvars` without copying it at all.

use super::template::names_used;
use serde_json::{Map, Value};
use std::sync::{Arc, OnceLock};

/// The shared variables, by the name templates use.
const NAMES: [&str; 3] = ["groups", "hostvars", "ansible_play_hosts"];
/// The helper that reads `hostvars` (see template.rs).
const HOSTVAR_HELPER: &str = "hostvar";

/// Computes every host's inventory variables, on the first template that asks.
type HostvarsFn<'a> = Box<dyn Fn() -> Result<Value, String> + 'a>;

pub struct Magic<'a> {
    groups: Value,
    play_hosts: Value,
    hostvars: OnceLock<Result<Arc<Value>, String>>,
    make_hostvars: HostvarsFn<'a>,
}

/// What rendering one template needs from the shared variables.
pub struct ForTemplate {
    /// The context with the shared variables it names; None: the host's own will do.
    pub context: Option<Value>,
    /// `hostvars`, when it calls the `hostvar` helper.
    pub hostvars: Option<Arc<Value>>,
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

    /// What `template`, rendered against `vars`, needs of the shared variables.
    pub fn for_template(&self, template: &str, vars: &Value) -> Result<ForTemplate, String> {
        let words = names_used(template).unwrap_or_default();
        let named: Vec<&str> = NAMES.into_iter().filter(|n| words.contains(*n)).collect();
        let context = if named.is_empty() {
            None
        } else {
            let mut context = match vars {
                Value::Object(map) => map.clone(),
                _ => Map::new(),
            };
            for name in named {
                let value = match name {
                    "groups" => self.groups.clone(),
                    "ansible_play_hosts" => self.play_hosts.clone(),
                    _ => self.hostvars()?.as_ref().clone(),
                };
                context.insert(name.to_string(), value);
            }
            Some(Value::Object(context))
        };
        let hostvars = match words.contains(HOSTVAR_HELPER) {
            true => Some(self.hostvars()?),
            false => None,
        };
        Ok(ForTemplate { context, hostvars })
    }

    fn hostvars(&self) -> Result<Arc<Value>, String> {
        self.hostvars
            .get_or_init(|| (self.make_hostvars)().map(Arc::new))
            .clone()
    }
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
        let plain = magic.for_template("{{app}} groups", &vars).unwrap();
        assert!(plain.context.is_none() && plain.hostvars.is_none());
        let with_groups = magic
            .for_template("{{#each groups.web}}{{this}}{{/each}}", &vars)
            .unwrap()
            .context
            .unwrap();
        assert_eq!(with_groups["groups"]["web"], json!(["w1", "w2"]));
        assert!(with_groups.get("hostvars").is_none());
        assert_eq!(
            built.get(),
            0,
            "hostvars is built only when a template needs it"
        );
        let helper = magic
            .for_template("{{hostvar this \"ansible_host\"}}", &vars)
            .unwrap();
        assert!(helper.context.is_none(), "the helper copies nothing");
        assert_eq!(helper.hostvars.unwrap()["w1"]["ansible_host"], "10.0.0.1");
        let lookup = magic
            .for_template("{{lookup (lookup ../hostvars this) \"x\"}}", &vars)
            .unwrap()
            .context
            .unwrap();
        assert_eq!(lookup["hostvars"]["w1"]["ansible_host"], "10.0.0.1");
        assert_eq!(built.get(), 1, "and once");
    }

    #[test]
    fn short_names_stop_at_the_first_dot() {
        assert_eq!(short_name("web1.example.com"), "web1");
        assert_eq!(short_name("web1"), "web1");
    }
}
