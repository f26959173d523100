//! From a play's task definitions to one host's plan nodes.

use super::dag::{EdgeKind, Graph};
use super::{HostPlan, NodeState, PlanNode};
use crate::error::{InputError, InputResult};
use crate::module::Params;
use crate::node::{Kind, Node};
use crate::playbook::magic::{Magic, short_name};
use crate::playbook::taint::Taint;
use crate::playbook::template::{Scope, engine, names_used};
use crate::playbook::vars::{self, Layer};
use crate::playbook::{Become, Origin, Play, Playbook, TaskDef, closest};
use crate::transport::RunAs;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Which tasks run: `-t` and `--skip-tags`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
}

impl Selection {
    fn selects(&self, task: &TaskDef) -> bool {
        let tagged = |wanted: &[String]| task.tags.iter().any(|t| wanted.contains(t));
        (self.tags.is_empty() || tagged(&self.tags) || task.tags.iter().any(|t| t == "always"))
            && !tagged(&self.skip_tags)
    }
}

/// A host's variable layers, lowest precedence first, before the play's own.
pub struct HostVars<'a> {
    pub host: &'a str,
    /// Every group the host is in (`all` included), for `group_names`.
    pub groups: &'a [String],
    pub inventory: Vec<&'a [(String, Node)]>,
    pub extra: &'a Layer,
    /// `groups`, `hostvars`, `ansible_play_hosts`: shared by the play's hosts.
    pub magic: Option<&'a Magic<'a>>,
}

/// The magic variables of one host: `inventory_hostname`, `inventory_hostname_short`,
/// and `group_names` (its groups but `all`, sorted, as Ansible gives them).
pub fn host_magic(host: &str, groups: &[String]) -> Map<String, Value> {
    let mut names: Vec<&String> = groups.iter().filter(|g| *g != "all").collect();
    names.sort();
    let mut vars = Map::new();
    vars.insert("inventory_hostname".into(), host.into());
    vars.insert("inventory_hostname_short".into(), short_name(host).into());
    vars.insert(
        "group_names".into(),
        names
            .into_iter()
            .map(|g| Value::String(g.clone()))
            .collect(),
    );
    vars
}

/// The variable layers of the tasks from `origin`, lowest precedence first, in
/// Ansible's order: role defaults (every role's, then the task's own role's), the
/// inventory, play vars, vars_files, role vars (likewise, then the role entry's
/// `vars:`), `import_tasks` vars, the role entry's parameters, `-e`.
fn origin_layers<'a>(
    play: &'a Play,
    origin: &'a Origin,
    host: &HostVars<'a>,
) -> Vec<&'a [(String, Node)]> {
    let own = origin.role.map(|r| &play.roles[r]);
    let mut layers: Vec<&[(String, Node)]> = Vec::new();
    layers.extend(play.roles.iter().map(|r| r.defaults.as_slice()));
    layers.extend(own.map(|r| r.defaults.as_slice()));
    layers.extend(host.inventory.iter().copied());
    layers.push(&play.vars);
    layers.extend(play.vars_files.iter().map(Vec::as_slice));
    layers.extend(play.roles.iter().map(|r| r.vars.as_slice()));
    layers.extend(own.map(|r| r.vars.as_slice()));
    layers.extend(own.map(|r| r.entry_vars.as_slice()));
    layers.extend(origin.import_vars.iter().map(Vec::as_slice));
    layers.extend(own.map(|r| r.params.as_slice()));
    layers.push(host.extra);
    layers
}

/// Whether facts are known (after the first round trip) or not (validate, graph, and
/// the check made before connecting).
pub enum Expansion<'a> {
    WithFacts(&'a Value),
    WithoutFacts,
}

/// Placeholder facts, so names can be checked before connecting.
fn placeholder_facts() -> Value {
    serde_json::json!({
        "os": {"id": "unresolved", "version_id": "unresolved"},
        "arch": "unresolved", "hostname": "unresolved", "init": "unresolved"
    })
}

/// Whether a template in `node` reads `facts` (decided from each template's syntax tree;
/// one that does not parse does not, so its error is reported before connecting).
fn mentions_facts(node: &Node) -> bool {
    match &node.kind {
        Kind::Str(s) => names_used(s).is_some_and(|names| names.contains("facts")),
        Kind::Seq(items) => items.iter().any(mentions_facts),
        Kind::Map(entries) => entries.iter().any(|(_, v)| mentions_facts(v)),
        _ => false,
    }
}

fn task_mentions_facts(t: &TaskDef) -> bool {
    // `when:` is a bare expression: read as the template `{{EXPRESSION}}`.
    let when_reads_facts = t.when.iter().any(|when| match &when.kind {
        Kind::Str(s) if !s.contains("{{") => {
            names_used(&format!("{{{{{s}}}}}")).is_some_and(|names| names.contains("facts"))
        }
        _ => mentions_facts(when),
    });
    when_reads_facts
        || [Some(&t.params), t.loop_items.as_ref(), t.name.as_ref()]
            .into_iter()
            .flatten()
            .any(mentions_facts)
}

fn item_text(item: &Value) -> String {
    match item {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Build one host's plan for `play`.
pub fn build(
    playbook: &Playbook,
    play: &Play,
    host: &HostVars<'_>,
    expansion: Expansion<'_>,
    selection: &Selection,
) -> InputResult<HostPlan> {
    let facts_known = matches!(expansion, Expansion::WithFacts(_));
    let facts = match expansion {
        Expansion::WithFacts(f) => f.clone(),
        Expansion::WithoutFacts => placeholder_facts(),
    };
    let mut base = host_magic(host.host, host.groups);
    base.insert("facts".into(), facts);
    let secret_names = play.secret_names();
    let scopes = play
        .origins
        .iter()
        .map(|origin| {
            vars::resolve(
                &origin_layers(play, origin, host),
                &base,
                &secret_names,
                host.magic,
            )
        })
        .collect::<InputResult<Vec<_>>>()?;
    let nodes = plan_nodes(playbook, play, &scopes, host.magic, facts_known, selection);
    // Everything a secret turned into while the tasks were expanded, to hide it in
    // errors (a value rendered from a secret can end up in a message) and all output.
    let mut secrets = Vec::new();
    let mut spans = Vec::new();
    for scope in &scopes {
        secrets.extend(scope.taint.secrets());
        spans.extend_from_slice(scope.taint.spans());
    }
    secrets.sort();
    secrets.dedup();
    let (nodes, graph, order) = nodes.map_err(|e| e.redact(&secrets, &spans))?;
    let play_scope = scopes.into_iter().next().expect("origin 0 is the play's");
    Ok(HostPlan {
        host: host.host.to_string(),
        nodes,
        graph,
        order,
        secrets,
        vars: Value::Object(play_scope.vars),
    })
}

/// The play's tasks expanded for one host, with their DAG and run order.
fn plan_nodes(
    playbook: &Playbook,
    play: &Play,
    scopes: &[vars::Resolved],
    magic: Option<&Magic<'_>>,
    facts_known: bool,
    selection: &Selection,
) -> InputResult<(Vec<PlanNode>, Graph, Vec<usize>)> {
    let defs: Vec<&TaskDef> = play.tasks.iter().chain(play.handlers.iter()).collect();
    let mut nodes = Vec::new();
    let mut task_names: Vec<String> = Vec::with_capacity(defs.len());
    let mut errors = Vec::new();
    for (index, def) in defs.iter().enumerate() {
        let unresolved = !facts_known && task_mentions_facts(def);
        let vars::Resolved { vars, taint } = &scopes[def.origin];
        let task = Task {
            playbook,
            play,
            def,
            index,
            unresolved,
            magic,
        };
        match task.expand(vars, taint) {
            Ok((name, task_nodes)) => {
                task_names.push(name);
                if def.is_handler || selection.selects(def) {
                    nodes.extend(task_nodes);
                }
            }
            Err(e) => {
                task_names.push(String::new());
                errors.push(e);
            }
        }
    }
    if let Some(e) = InputError::combine(errors) {
        return Err(e);
    }
    let by_name = unique_names(&defs, &task_names)?;
    let mut graph = Graph::new(&nodes);
    add_explicit_edges(&defs, &by_name, &nodes, &mut graph)?;
    graph.add_implicit_edges(&nodes);
    let order = graph.order(&nodes)?;
    Ok((nodes, graph, order))
}

impl Task<'_> {
    /// The task's name and nodes, one item after the other.
    fn expand(
        &self,
        ctx: &Map<String, Value>,
        taint: &Taint,
    ) -> InputResult<(String, Vec<PlanNode>)> {
        let def = self.def;
        let base = Value::Object(ctx.clone());
        // Where in the list the loop's items hold a secret (`[]`: everywhere).
        let loop_taint = def
            .loop_items
            .as_ref()
            .map(|node| taint.derive(node))
            .unwrap_or_default();
        let items: Vec<Option<Value>> = match &def.loop_items {
            None => vec![None],
            Some(node) => {
                let value = engine().render_node(node, self.scope(&base))?;
                taint.record(node, &value, &base);
                match value {
                    Value::Array(items) => items.into_iter().map(Some).collect(),
                    _ if self.unresolved => vec![None],
                    other => {
                        return Err(node
                            .error(format!("loop needs a list, this is {other}"))
                            .help(
                                "write `loop: [a, b]` or name a list variable: \
                                 `loop: \"{{ names }}\"`",
                            ));
                    }
                }
            }
        };
        let mut task_name = None;
        let mut nodes = Vec::new();
        for (position, item) in items.into_iter().enumerate() {
            let item_ctx = match &item {
                Some(item) => {
                    let mut item_ctx = ctx.clone();
                    item_ctx.insert("item".into(), item.clone());
                    Value::Object(item_ctx)
                }
                None => base.clone(),
            };
            let item_taint = taint.with_item(item_paths(&loop_taint, position));
            if let Some(item) = &item {
                item_taint.record_vars(&serde_json::json!({ "item": item }));
            }
            let expanded = self.expand_item(item, &item_ctx, &item_taint);
            // What the item's secrets turned into must be hidden even in its error.
            taint.absorb(item_taint);
            let (name, item_nodes) = expanded?;
            task_name.get_or_insert(name);
            nodes.extend(item_nodes);
        }
        Ok((
            task_name.unwrap_or_else(|| def.module.name().to_string()),
            nodes,
        ))
    }

    /// What the task's templates render against: `vars` and the play's shared variables.
    fn scope<'s>(&'s self, vars: &'s Value) -> Scope<'s> {
        Scope {
            vars,
            magic: self.magic,
        }
    }
}

/// The secret paths inside loop item `position`, from those inside the list.
fn item_paths(loop_taint: &[Vec<String>], position: usize) -> Vec<Vec<String>> {
    let at = position.to_string();
    loop_taint
        .iter()
        .filter_map(|p| match p.split_first() {
            None => Some(Vec::new()),
            Some((first, rest)) if *first == at || first == "*" => Some(rest.to_vec()),
            Some(_) => None,
        })
        .collect()
}

/// Who a task runs as, in Ansible's order: `ansible_become` and `ansible_become_user`
/// (variables, wherever set) over the task's `become` / `become_user` over the play's.
fn run_as(task: &Become, play: &Become, vars: &Value) -> RunAs {
    let (var_become, var_user) = crate::inventory::become_vars(vars);
    let enabled = var_become.or(task.enabled).or(play.enabled);
    let user = var_user.or_else(|| task.user.clone().or_else(|| play.user.clone()));
    RunAs::new(enabled.unwrap_or(false), user.as_deref())
}

/// One task of a play, being expanded.
struct Task<'a> {
    playbook: &'a Playbook,
    play: &'a Play,
    def: &'a TaskDef,
    index: usize,
    unresolved: bool,
    magic: Option<&'a Magic<'a>>,
}

impl Task<'_> {
    /// One item's name and nodes (or the task's, without a loop).
    fn expand_item(
        &self,
        item: Option<Value>,
        item_ctx: &Value,
        taint: &Taint,
    ) -> InputResult<(String, Vec<PlanNode>)> {
        let Task {
            playbook,
            play,
            def,
            index,
            unresolved,
            magic: _,
        } = *self;
        let scope = self.scope(item_ctx);
        let name = task_display_name(def, scope, taint)?;
        let shown = match &item {
            Some(i) if def.name.is_some() || def.module.key_param().is_none() => {
                format!("{name} [{}]", item_text(i))
            }
            _ => name.clone(),
        };
        let when_false = if unresolved {
            None
        } else {
            self.first_false_when(scope)?
        };
        let run_as = run_as(&def.privilege, &play.privilege, item_ctx);
        let node_for = |state, phase: Option<&str>| PlanNode {
            name: phase.map_or(shown.clone(), |p| format!("{shown} ({p})")),
            task: index,
            module: def.module.name(),
            item: item.clone(),
            state,
            is_handler: def.is_handler,
            run_as: run_as.clone(),
            no_log: def.no_log,
            never_changed: def.never_changed,
            timeout: def.timeout,
            span: def.span.clone(),
        };
        if unresolved {
            return Ok((name, vec![node_for(NodeState::Unresolved, None)]));
        }
        if let Some(reason) = when_false {
            return Ok((name, vec![node_for(NodeState::Skipped(reason), None)]));
        }
        let value = engine().render_node(&def.params, scope)?;
        taint.record(&def.params, &value, item_ctx);
        let origin = &play.origins[def.origin];
        let params = Params {
            module: def.module.name(),
            value,
            node: &def.params,
            playbook_dir: &playbook.dir,
            role_dir: origin.role.map(|r| play.roles[r].dir.as_path()),
            vars: scope,
            taint,
            play_modules: &play_modules(play),
        };
        let nodes = def
            .module
            .prepare(&params)?
            .into_iter()
            .map(|action| {
                let phase = action.phase();
                node_for(NodeState::Runs(action), phase)
            })
            .collect();
        Ok((name, nodes))
    }
}

impl Task<'_> {
    /// Why the task is skipped: the first of its `when:` (the role's and imports'
    /// first) that is false.
    fn first_false_when(&self, scope: Scope<'_>) -> InputResult<Option<String>> {
        for when in &self.def.when {
            let expression = when.scalar_text()?;
            let truthy = engine().truthy(&expression, scope).map_err(|e| {
                let help = crate::playbook::template::template_help(&e);
                when.error(format!("when: {e}")).help(help)
            })?;
            if !truthy {
                return Ok(Some(format!("when: {expression} is false")));
            }
        }
        Ok(None)
    }
}

fn play_modules(play: &Play) -> Vec<&'static str> {
    play.tasks
        .iter()
        .chain(&play.handlers)
        .map(|t| t.module.name())
        .collect()
}

/// The task's name: its `name:`, or `MODULE KEY` (e.g. `dir /opt/myapp`).
fn task_display_name(def: &TaskDef, ctx: Scope<'_>, taint: &Taint) -> InputResult<String> {
    if let Some(name) = &def.name {
        let text = name.scalar_text()?;
        taint.record_text(&text, ctx);
        return engine().render_text(&text, ctx).map_err(|e| {
            let help = crate::playbook::template::template_help(&e);
            name.error(e).help(help)
        });
    }
    let module = def.module.name();
    let key = def.module.key_param().and_then(|k| match &def.params.kind {
        Kind::Map(_) => def
            .params
            .key_node(k)
            .map(|_| def.params.find(&[crate::node::PathStep::Key(k.into())])),
        _ => Some(&def.params),
    });
    Ok(match key {
        Some(node) => {
            let value = engine().render_node(node, ctx)?;
            taint.record(node, &value, ctx.vars);
            let text = match value {
                Value::Array(items) => items.iter().map(item_text).collect::<Vec<_>>().join(","),
                other => item_text(&other),
            };
            format!("{module} {text}")
        }
        None => module.to_string(),
    })
}

fn unique_names(defs: &[&TaskDef], names: &[String]) -> InputResult<HashMap<String, usize>> {
    let mut by_name = HashMap::new();
    let mut errors = Vec::new();
    for (index, name) in names.iter().enumerate() {
        if let Some(first) = by_name.insert(name.clone(), index) {
            let def = defs[index];
            let at = def.name.as_ref().map_or(&def.module_key, |n| n);
            errors.push(
                at.error(format!("task name `{name}` is used twice in this play"))
                    .help(format!(
                        "rename one of them (the first is at {}); requires and notify name tasks",
                        defs[first].span.position()
                    )),
            );
        }
    }
    InputError::combine(errors).map_or(Ok(by_name), Err)
}

fn add_explicit_edges(
    defs: &[&TaskDef],
    by_name: &HashMap<String, usize>,
    nodes: &[PlanNode],
    graph: &mut Graph,
) -> InputResult<()> {
    let mut errors = Vec::new();
    let nodes_of = |task: usize| {
        nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.task == task)
            .map(|(i, _)| i)
    };
    let resolve = |name: &str, span: &crate::error::Span, handlers: bool| -> InputResult<usize> {
        match by_name.get(name) {
            Some(&t) if defs[t].is_handler == handlers || !handlers => Ok(t),
            Some(_) => Err(span
                .error(format!(
                    "notify names `{name}`, which is a task, not a handler"
                ))
                .help("notify names handlers; use requires to order after a task")),
            None => {
                let candidates = by_name
                    .iter()
                    .filter(|(_, t)| !handlers || defs[**t].is_handler)
                    .map(|(n, _)| n.as_str());
                let hint = closest(name, candidates)
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| "name a task (or handler) of this play".into());
                let what = if handlers { "handler" } else { "task" };
                Err(span
                    .error(format!("no {what} named `{name}` in this play"))
                    .help(hint))
            }
        }
    };
    for (task, def) in defs.iter().enumerate() {
        for (name, span) in &def.requires {
            match resolve(name, span, false) {
                Ok(target) => {
                    for from in nodes_of(target) {
                        for to in nodes_of(task) {
                            graph.add_edge(from, to, EdgeKind::Requires);
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        for (name, span) in &def.notify {
            match resolve(name, span, true) {
                Ok(handler) => {
                    for from in nodes_of(task) {
                        for to in nodes_of(handler) {
                            graph.add_edge(from, to, EdgeKind::Notify);
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    InputError::combine(errors).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::Playbook;
    use crate::report::redact;

    #[test]
    fn ansible_become_variables_win_over_the_task_and_the_play() {
        use crate::playbook::Become;
        let keyword = |enabled, user: Option<&str>| Become {
            enabled,
            user: user.map(String::from),
        };
        let none = serde_json::json!({});
        let play = keyword(Some(true), Some("app"));
        assert_eq!(
            run_as(&keyword(None, None), &play, &none),
            RunAs::User("app".into())
        );
        assert_eq!(
            run_as(&keyword(Some(false), None), &play, &none),
            RunAs::Login
        );
        assert_eq!(
            run_as(&keyword(None, Some("root")), &play, &none),
            RunAs::Root
        );
        let vars = serde_json::json!({"ansible_become": "yes", "ansible_become_user": "web"});
        assert_eq!(
            run_as(&keyword(Some(false), None), &keyword(None, None), &vars),
            RunAs::User("web".into())
        );
        let off = serde_json::json!({"ansible_become": false});
        assert_eq!(
            run_as(&keyword(Some(true), None), &play, &off),
            RunAs::Login
        );
    }

    /// The plan of host `h` for the first play of `yaml`, without facts.
    fn plan(yaml: &str) -> InputResult<HostPlan> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.yml");
        std::fs::write(&path, yaml).unwrap();
        let playbook = Playbook::load(&path)?;
        let extra = Vec::new();
        let host = HostVars {
            host: "h",
            groups: &[],
            inventory: Vec::new(),
            extra: &extra,
            magic: None,
        };
        build(
            &playbook,
            &playbook.plays[0],
            &host,
            Expansion::WithoutFacts,
            &Selection::default(),
        )
    }

    #[test]
    fn role_variables_sit_where_ansible_puts_them() {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in [
            (
                "site.yml",
                "- hosts: all\n  vars: { b: play, c: play }\n  roles:\n    - role: app\n      \
                 d: param\n  tasks:\n    - name: \"play {{a}} {{b}} {{c}}\"\n      command: \"true\"\n",
            ),
            ("roles/app/defaults/main.yml", "a: default\nb: default\n"),
            ("roles/app/vars/main.yml", "c: rolevars\nd: rolevars\n"),
            (
                "roles/app/tasks/main.yml",
                "- name: \"role {{a}} {{b}} {{c}} {{d}} {{inventory_hostname_short}} {{json group_names}}\"\n  \
                 command: \"true\"\n",
            ),
        ] {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let playbook = Playbook::load(&dir.path().join("site.yml")).unwrap();
        let inventory = crate::playbook::vars::extra_vars(&["a=inventory".to_string()]).unwrap();
        let extra = Vec::new();
        let groups = ["all".to_string(), "web".to_string(), "db".to_string()];
        let host = HostVars {
            host: "web1.example.com",
            groups: &groups,
            inventory: vec![&inventory],
            extra: &extra,
            magic: None,
        };
        let plan = build(
            &playbook,
            &playbook.plays[0],
            &host,
            Expansion::WithoutFacts,
            &Selection::default(),
        )
        .unwrap();
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "role inventory play rolevars param web1 [\"db\",\"web\"]",
                "play inventory play rolevars",
            ]
        );
    }

    /// Every edge as `FROM -> TO (WHY)`, sorted.
    fn edges(plan: &HostPlan) -> Vec<String> {
        plan.order
            .iter()
            .flat_map(|&i| {
                plan.graph.dependencies(i).map(move |(d, kind)| {
                    format!(
                        "{} -> {} ({})",
                        plan.nodes[d].name,
                        plan.nodes[i].name,
                        kind.describe()
                    )
                })
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    #[test]
    fn implicit_edges_name_what_the_source_provides() {
        let plan = plan(
            "- hosts: all\n  tasks:\n    - file: { path: /opt/app/conf, content: x, owner: app }\n    \
             - dir: { path: /opt/app }\n    - user: { name: app }\n",
        )
        .unwrap();
        assert_eq!(
            edges(&plan),
            [
                "dir /opt/app -> file /opt/app/conf (dir /opt/app)",
                "user app -> file /opt/app/conf (user app)",
            ]
        );
    }

    #[test]
    fn a_cycle_says_who_depends_on_whom() {
        let err = plan(
            "- hosts: all\n  tasks:\n    - name: a\n      dir: { path: /a }\n      requires: b\n    \
             - name: b\n      file: { path: /a/b, content: x }\n",
        )
        .err()
        .unwrap();
        assert!(
            err.message.ends_with(
                "dependency cycle: `a` -> `b` -> `a` (`b` needs the dir /a of `a`; `a` requires `b`)"
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_graph_never_shows_a_secret_value() {
        let plan = plan(
            "- hosts: all\n  vars: { pw: hunter2 }\n  secrets: [pw]\n  tasks:\n    \
             - name: \"seed {{pw}}\"\n      file: { path: /a, content: x }\n",
        )
        .unwrap();
        for text in [
            crate::plan::render_text("p", &plan),
            crate::plan::render_dot("p", &plan),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("seed <secret>"), "{text}");
        }
    }

    #[test]
    fn every_form_of_a_secret_is_a_secret() {
        let plan = plan(
            "- hosts: all\n  vars:\n    app: demo\n    pw: \"it's\\\"x\"\n    \
             db: { user: dbu, password: s3 }\n  secrets: [pw, db]\n  tasks:\n    \
             - name: \"seed {{upper pw}}\"\n      \
             command: \"run {{quote pw}} {{json pw}} {{lower db.password}} {{app}}\"\n    \
             - name: item\n      file: { path: \"/etc/{{item}}\", content: x }\n      \
             loop: [\"{{upper db.password}}\", plain]\n",
        )
        .unwrap();
        let shown: Vec<String> = plan
            .nodes
            .iter()
            .map(|n| redact(&n.name, &plan.secrets))
            .collect();
        assert_eq!(shown, ["seed <secret>", "item [<secret>]", "item [plain]"]);
        let pw = "it's\"x";
        for form in [
            pw.to_string(),
            crate::quote::quote(pw).into_owned(),
            serde_json::to_string(pw).unwrap(),
            "S3".to_string(),
            "dbu".to_string(),
        ] {
            assert_eq!(redact(&form, &plan.secrets), "<secret>", "{form}");
        }
        assert_eq!(
            redact("run x demo plain", &plan.secrets),
            "run x demo plain"
        );
    }

    #[test]
    fn errors_never_show_a_secret_value() {
        let err = plan(
            "- hosts: all\n  vars: { pw: hunter2 }\n  secrets: [pw]\n  tasks:\n    \
             - file: { path: /a, mode: \"{{pw}}\" }\n    - name: \"x {{pw}}\"\n      \
             file: { path: /b }\n    - name: \"x {{pw}}\"\n      file: { path: /c }\n",
        )
        .err()
        .unwrap();
        assert!(
            err.message.contains("`<secret>` is not an octal mode"),
            "{}",
            err.message
        );
        let text = format!("{:?}", miette::Report::new(err));
        assert!(!text.contains("hunter2"), "{text}");
        let twice = plan(
            "- hosts: all\n  vars: { pw: hunter2 }\n  secrets: [pw]\n  tasks:\n    \
             - name: \"x {{pw}}\"\n      file: { path: /b }\n    - name: \"x {{pw}}\"\n      \
             file: { path: /c }\n",
        )
        .err()
        .unwrap();
        assert!(
            twice
                .message
                .contains("task name `x <secret>` is used twice"),
            "{}",
            twice.message
        );
    }
}
