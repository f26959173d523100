//! Playbooks: what the user wrote, loaded with locations, checked before anything runs.

pub mod magic;
mod roles;
pub mod taint;
pub mod template;
pub mod vars;

pub use roles::{Origin, Role};
use roles::{TaskLoader, TaskPlace};

use crate::error::{InputError, InputResult, SourceFile, Span};
use crate::node::{self, Kind, Node};
use crate::registry;
use crate::rollout;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug)]
pub struct Playbook {
    pub path: PathBuf,
    /// The folder relative paths start from.
    pub dir: PathBuf,
    pub plays: Vec<Play>,
}

#[derive(Debug)]
pub struct Play {
    pub name: String,
    /// The `hosts:` pattern and where it was written.
    pub hosts: (String, Span),
    pub privilege: Become,
    pub vars: Vec<(String, Node)>,
    /// Each `vars_files` entry, loaded.
    pub vars_files: Vec<Vec<(String, Node)>>,
    pub secrets: Vec<String>,
    /// The roles of `roles:`, in order; their tasks come first in `tasks`.
    pub roles: Vec<Role>,
    /// Where tasks' variables come from (role, `import_tasks` vars); `TaskDef::origin`
    /// indexes it, and 0 is the play itself.
    pub origins: Vec<Origin>,
    pub tasks: Vec<TaskDef>,
    pub handlers: Vec<TaskDef>,
    /// `serial`, `max_fail_percentage`, `batch_pause`.
    pub rollout: rollout::Written,
    pub span: Span,
}

/// A task as written, before loops and templates.
#[derive(Debug)]
pub struct TaskDef {
    pub name: Option<Node>,
    pub module: &'static dyn crate::module::Module,
    /// The module key, to point at it.
    pub module_key: Node,
    pub params: Node,
    /// The task's `when:`, after those of the role entry and imports it came through.
    pub when: Vec<Node>,
    pub loop_items: Option<Node>,
    pub notify: Vec<(String, Span)>,
    pub requires: Vec<(String, Span)>,
    pub tags: Vec<String>,
    pub privilege: Become,
    pub no_log: bool,
    /// `changed_when: false` (for `command`).
    pub never_changed: bool,
    /// `timeout:` for each command the task runs on the host.
    pub timeout: Option<std::time::Duration>,
    pub is_handler: bool,
    /// Index into the play's `origins`.
    pub origin: usize,
    pub span: Span,
}

/// `become` and `become_user` as written on a play or a task.
#[derive(Debug, Clone, Default)]
pub struct Become {
    pub enabled: Option<bool>,
    pub user: Option<String>,
}

impl Play {
    /// The variables whose values are secret in this play: its `secrets:`, and the
    /// become password, whether or not the play lists it.
    pub fn secret_names(&self) -> Vec<String> {
        self.secrets
            .iter()
            .cloned()
            .chain(crate::inventory::SECRET_VARS.map(String::from))
            .collect()
    }
}

impl Become {
    /// Read `become` or, for any other key, `become_user`.
    fn read(&mut self, key: &str, value: &Node) -> InputResult<()> {
        if key == "become" {
            self.enabled = Some(value.as_bool()?);
            return Ok(());
        }
        let user = value.scalar_text()?;
        if let Some(problem) = crate::module::account::name_problem(&user) {
            return Err(value
                .error(format!("become_user: `{user}` {problem}"))
                .help("the user tasks run as through sudo, e.g. `become_user: myapp`"));
        }
        self.user = Some(user);
        Ok(())
    }
}

impl std::fmt::Debug for dyn crate::module::Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const PLAY_KEYS: &[&str] = &[
    "name",
    "hosts",
    "become",
    "become_user",
    "vars",
    "vars_files",
    "secrets",
    "serial",
    "max_fail_percentage",
    "batch_pause",
    "roles",
    "tasks",
    "handlers",
];

const TASK_KEYS: &[&str] = &[
    "name",
    "when",
    "loop",
    "notify",
    "requires",
    "tags",
    "become",
    "become_user",
    "no_log",
    "changed_when",
    "timeout",
];

/// Read a YAML file the user pointed at, as a [`Node`].
pub fn load_yaml(path: &Path) -> InputResult<Node> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        InputError::new(format!("cannot read {}: {e}", path.display()))
            .help("check the path; a relative path starts at the current directory")
    })?;
    node::parse(&SourceFile::new(
        path.display().to_string(),
        Arc::<str>::from(text),
    ))
}

/// Read a YAML file the playbook names at `at`: a file that cannot be read is an
/// error located there, with `help`.
fn load_named_yaml(path: &Path, at: &Span, help: &str) -> InputResult<Node> {
    load_yaml(path).map_err(|e| match e.span {
        None => at.error(e.message).help(help),
        Some(_) => e,
    })
}

/// The closest known word, for "did you mean" hints.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

pub(crate) fn unknown_key(key: &Node, known: &[&str], what: &str) -> InputError {
    let word = key.scalar_text().unwrap_or_default();
    let mut err = key
        .error(format!("unknown {what} key `{word}`"))
        .label("unknown key");
    err = match closest(&word, known.iter().copied()) {
        Some(c) => err.help(format!("did you mean `{c}`?")),
        None => err.help(format!("known keys: {}", known.join(", "))),
    };
    err
}

impl Playbook {
    pub fn load(path: &Path) -> InputResult<Playbook> {
        let root = load_yaml(path)?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let plays = match &root.kind {
            Kind::Seq(items) => items,
            _ => {
                return Err(root
                    .error("a playbook is a list of plays")
                    .help("start each play with `- name: ...` and `hosts: ...`"));
            }
        };
        let mut errors = Vec::new();
        let mut loaded = Vec::new();
        for play in plays {
            match load_play(play, &dir) {
                Ok(p) => loaded.push(p),
                Err(e) => errors.push(e),
            }
        }
        if let Some(err) = InputError::combine(errors) {
            return Err(err);
        }
        Ok(Playbook {
            path: path.to_path_buf(),
            dir,
            plays: loaded,
        })
    }
}

fn load_play(node: &Node, dir: &Path) -> InputResult<Play> {
    let mut play = Play {
        name: String::new(),
        hosts: (String::new(), node.span.clone()),
        privilege: Become::default(),
        vars: Vec::new(),
        vars_files: Vec::new(),
        secrets: Vec::new(),
        roles: Vec::new(),
        origins: vec![Origin::default()],
        tasks: Vec::new(),
        handlers: Vec::new(),
        rollout: Default::default(),
        span: node.span.clone(),
    };
    let mut has_hosts = false;
    let mut errors = Vec::new();
    let (mut role_tasks, mut role_handlers) = (Vec::new(), Vec::new());
    // Variables written in role entries, to hide secrets even when their role failed.
    let mut role_entry_vars = Vec::new();
    for (key, key_node, value) in node.entries()? {
        let result: InputResult<()> = (|| {
            match key {
                "name" => play.name = value.scalar_text()?,
                "hosts" => {
                    let pattern = match &value.kind {
                        Kind::Seq(_) => value
                            .string_list()?
                            .into_iter()
                            .map(|(s, _)| s)
                            .collect::<Vec<_>>()
                            .join(","),
                        _ => value.scalar_text()?,
                    };
                    play.hosts = (pattern, value.span.clone());
                    has_hosts = true;
                }
                "become" | "become_user" => {
                    play.privilege.read(key, value)?;
                }
                "vars" => play.vars = owned_entries(value)?,
                "vars_files" => {
                    for (file, span) in value.string_list()? {
                        let loaded = load_named_yaml(
                            &dir.join(&file),
                            &span,
                            "vars_files are relative to the playbook's folder",
                        )?;
                        play.vars_files.push(owned_entries(&loaded)?);
                    }
                }
                "secrets" => {
                    play.secrets = value.string_list()?.into_iter().map(|(s, _)| s).collect()
                }
                "serial" => play.rollout.serial = Some(value.clone()),
                "max_fail_percentage" => play.rollout.max_fail_percentage = Some(value.clone()),
                "batch_pause" => play.rollout.batch_pause = Some(value.clone()),
                "roles" => {
                    let mut loader = TaskLoader::new(&mut play.origins, &mut errors);
                    for entry in value.as_seq()? {
                        role_entry_vars.extend(roles::written_variables(entry));
                        if let Some(role) = loader.role(entry, dir, play.roles.len()) {
                            role_tasks.extend(role.tasks);
                            role_handlers.extend(role.handlers);
                            play.roles.push(role.role);
                        }
                    }
                }
                "tasks" => {
                    let mut loader = TaskLoader::new(&mut play.origins, &mut errors);
                    play.tasks = loader.tasks(value, &TaskPlace::play(dir, false));
                }
                "handlers" => {
                    let mut loader = TaskLoader::new(&mut play.origins, &mut errors);
                    play.handlers = loader.tasks(value, &TaskPlace::play(dir, true));
                }
                _ => return Err(unknown_key(key_node, PLAY_KEYS, "play")),
            }
            Ok(())
        })();
        if let Err(e) = result {
            errors.push(e);
        }
    }
    if let Err(e) = play.rollout.check() {
        errors.push(e);
    }
    if !has_hosts {
        errors.push(
            node.error("this play has no `hosts:`")
                .help("add `hosts: all` or a group name from the inventory"),
        );
    }
    if play.name.is_empty() {
        play.name = play.hosts.0.clone();
    }
    // Ansible runs the roles' tasks before the play's own.
    role_tasks.append(&mut play.tasks);
    play.tasks = role_tasks;
    play.handlers.append(&mut role_handlers);
    match InputError::combine(errors) {
        Some(e) => Err(hide_secrets(&play, &role_entry_vars, e)),
        None => Ok(play),
    }
}

/// A mistake next to `vars: { pw: ... }` would show the secret in its snippet (and a
/// message may quote it): hide what the play's secrets, and its vaulted vars, are
/// written as (in the play, its vars files, and its roles).
fn hide_secrets(play: &Play, role_entry_vars: &[(String, Node)], error: InputError) -> InputError {
    let is_secret = |name: &String, node: &Node| {
        play.secrets.contains(name) || !node.vaulted_paths().is_empty()
    };
    let role_files = play.roles.iter().flat_map(|r| [&r.defaults, &r.vars]);
    let written: Vec<&(String, Node)> = play
        .vars
        .iter()
        .chain(play.vars_files.iter().flatten())
        .chain(role_files.flatten())
        .chain(role_entry_vars)
        .filter(|(name, node)| is_secret(name, node))
        .collect();
    let names: Vec<String> = written.iter().map(|(name, _)| name.clone()).collect();
    let spans = written.iter().map(|(_, node)| node.span.clone()).collect();
    let taint = taint::Taint::declared(&names, spans);
    taint.record_vars(&serde_json::Value::Object(
        written
            .iter()
            .map(|(name, node)| (name.clone(), node.to_value()))
            .collect(),
    ));
    error.redact(&taint.secrets(), taint.spans())
}

pub(crate) fn owned_entries(node: &Node) -> InputResult<Vec<(String, Node)>> {
    Ok(node
        .entries()?
        .into_iter()
        .map(|(k, _, v)| (k.to_string(), v.clone()))
        .collect())
}

pub(crate) fn load_task(node: &Node, is_handler: bool) -> InputResult<TaskDef> {
    let mut name = None;
    let mut module: Option<(&'static dyn crate::module::Module, Node, Node)> = None;
    let mut when = Vec::new();
    let mut loop_items = None;
    let mut notify = Vec::new();
    let mut requires = Vec::new();
    let mut tags = Vec::new();
    let mut privilege = Become::default();
    let mut no_log = false;
    let mut never_changed = false;
    let mut timeout = None;
    for (key, key_node, value) in node
        .entries()
        .map_err(|e| e.help("a task is a mapping such as `- name: ...` with one module key"))?
    {
        match key {
            "name" => name = Some(value.clone()),
            "when" => when.push(value.clone()),
            "loop" => loop_items = Some(value.clone()),
            "notify" => notify = value.string_list()?,
            "requires" => requires = value.string_list()?,
            "tags" => tags = value.string_list()?.into_iter().map(|(s, _)| s).collect(),
            "become" | "become_user" => {
                privilege.read(key, value)?;
            }
            "no_log" => no_log = value.as_bool()?,
            "timeout" => timeout = Some(task_timeout(value)?),
            "changed_when" => match value.kind {
                Kind::Bool(false) => never_changed = true,
                Kind::Bool(true) => {}
                _ => {
                    return Err(value
                        .error("changed_when takes only `false`")
                        .help("write `changed_when: false` for a command that only reads"));
                }
            },
            _ => match registry::find(key) {
                Some(m) => {
                    if let Some((other, _, _)) = &module {
                        return Err(key_node
                            .error(format!(
                                "a task has one module, this one has `{}` and `{key}`",
                                other.name()
                            ))
                            .help("split it into two tasks"));
                    }
                    module = Some((m, key_node.clone(), value.clone()));
                }
                None => {
                    let known: Vec<&str> = registry::names()
                        .chain(TASK_KEYS.iter().copied())
                        .chain(["import_tasks"])
                        .collect();
                    let mut err = key_node
                        .error(format!("unknown module or task key `{key}`"))
                        .label("unknown module");
                    err = match closest(key, known.iter().copied()) {
                        Some(c) => err.help(format!("did you mean `{c}`?")),
                        None => err.help(format!(
                            "modules: {}",
                            registry::names().collect::<Vec<_>>().join(", ")
                        )),
                    };
                    return Err(err);
                }
            },
        }
    }
    let Some((module, module_key, params)) = module else {
        return Err(node.error("this task names no module").help(format!(
            "add one module key, e.g. `file: {{ path: ... }}`; modules: {}",
            registry::names().collect::<Vec<_>>().join(", ")
        )));
    };
    Ok(TaskDef {
        name,
        module,
        module_key,
        params,
        when,
        loop_items,
        notify,
        requires,
        tags,
        privilege,
        no_log,
        never_changed,
        timeout,
        is_handler,
        origin: 0,
        span: node.span.clone(),
    })
}

/// `timeout: 90` (seconds) or `timeout: 5m` (humantime: `30s`, `5m`, `1h 30m`).
fn task_timeout(value: &Node) -> InputResult<std::time::Duration> {
    let help = "write seconds (`timeout: 600`) or a duration like `timeout: 10m`";
    let duration = match &value.kind {
        Kind::Int(n) if *n > 0 => Some(std::time::Duration::from_secs(*n as u64)),
        Kind::Str(text) => humantime::parse_duration(text.trim()).ok(),
        _ => None,
    };
    match duration {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(value
            .error("timeout must be a positive number of seconds or a duration")
            .help(help)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_says_where_relative_paths_start() {
        // The playbook and `-e @FILE` are found from the current directory...
        let err = load_yaml(Path::new("no/such/site.yml")).unwrap_err();
        assert!(err.help.unwrap().contains("current directory"));
        // ...vars_files from the playbook's folder, and that error is located.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.yml");
        std::fs::write(&path, "- hosts: all\n  vars_files: [vars/x.yml]\n").unwrap();
        let err = Playbook::load(&path).unwrap_err();
        assert!(
            err.message.contains("site.yml:2:16: cannot read"),
            "{}",
            err.message
        );
        assert!(err.help.unwrap().contains("playbook's folder"));
    }

    #[test]
    fn a_play_error_hides_its_vaulted_vars() {
        crate::vault::unlock(crate::vault::Keyring::new(vec![
            crate::vault::Password::new("default", b"hunter2".to_vec()),
        ]));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("vars")).unwrap();
        std::fs::write(
            dir.path().join("vars/db.yml"),
            include_str!("../vault/fixtures/inline.yml"),
        )
        .unwrap();
        let path = dir.path().join("site.yml");
        std::fs::write(
            &path,
            "- hosts: all\n  vars_files: [vars/db.yml]\n  vars: { shown: S3cret-Db }\n  bogus: 1\n",
        )
        .unwrap();
        let err = Playbook::load(&path).unwrap_err();
        let rendered = format!("{:?}", miette::Report::new(err));
        assert!(rendered.contains("unknown play key `bogus`"), "{rendered}");
        assert!(!rendered.contains("S3cret-Db"), "{rendered}");
    }

    #[test]
    fn a_task_timeout_is_seconds_or_a_duration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.yml");
        let load = |timeout: &str| {
            std::fs::write(
                &path,
                format!(
                    "- hosts: all\n  tasks:\n    - command: sleep 9\n      timeout: {timeout}\n"
                ),
            )
            .unwrap();
            Playbook::load(&path).map(|p| p.plays[0].tasks[0].timeout)
        };
        assert_eq!(
            load("90").unwrap(),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            load("5m").unwrap(),
            Some(std::time::Duration::from_secs(300))
        );
        let err = load("soon").unwrap_err();
        assert!(
            err.message.contains("site.yml:4:16: timeout must be"),
            "{}",
            err.message
        );
        assert!(load("0").is_err());
    }
}
