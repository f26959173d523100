//! Roles (`roles:` in a play, `roles/NAME/` beside the playbook) and task files
//! (`import_tasks:`), read as Ansible reads them: statically, when the playbook loads,
//! each task keeping the location of the file it was written in.

use super::vars::Layer;
use super::{TaskDef, closest, load_named_yaml, load_task, load_yaml, owned_entries, unknown_key};
use crate::error::{InputError, InputResult};
use crate::node::{Kind, Node, PathStep};
use std::path::{Path, PathBuf};

/// One entry of a play's `roles:`, loaded.
#[derive(Debug)]
pub struct Role {
    pub name: String,
    /// `roles/NAME`: its `templates/` and `files/` come before the playbook's folder.
    pub dir: PathBuf,
    /// `defaults/main.yml`: below every other variable, the inventory's included.
    pub defaults: Layer,
    /// `vars/main.yml`: above the play's vars and vars_files, for every task of the play.
    pub vars: Layer,
    /// The entry's `vars:`: above `vars/main.yml`, for the role's own tasks.
    pub entry_vars: Layer,
    /// The entry's other keys (`- role: app` then `port: 80`): above everything but `-e`.
    pub params: Layer,
}

/// Where a task's variables come from besides the play and the inventory.
#[derive(Debug, Default)]
pub struct Origin {
    /// The role the task is part of (index into the play's roles).
    pub role: Option<usize>,
    /// The `vars:` of each `import_tasks` the task came through, outermost first.
    pub import_vars: Vec<Layer>,
}

/// A role's definition with its tasks and handlers, before they join the play's.
pub struct LoadedRole {
    pub role: Role,
    pub tasks: Vec<TaskDef>,
    pub handlers: Vec<TaskDef>,
}

/// Where a list of tasks is read: what applies to each of them.
pub struct TaskPlace<'a> {
    /// `import_tasks` paths start here: the folder of the file being read.
    dir: &'a Path,
    origin: usize,
    is_handler: bool,
    tags: Vec<String>,
    when: Vec<Node>,
    /// The task files on the way here, to refuse an import cycle.
    files: Vec<PathBuf>,
}

impl TaskPlace<'_> {
    /// The play's own `tasks:` or `handlers:`.
    pub fn play(dir: &Path, is_handler: bool) -> TaskPlace<'_> {
        TaskPlace {
            dir,
            origin: 0,
            is_handler,
            tags: Vec::new(),
            when: Vec::new(),
            files: Vec::new(),
        }
    }
}

/// Ansible's task-level includes of files and roles, which converge does not read.
const DYNAMIC_KEYS: [&str; 3] = ["include_tasks", "include_role", "import_role"];
const ROLE_ENTRY_KEYS: &[&str] = &["role", "name", "vars", "tags", "when"];
const IMPORT_KEYS: &[&str] = &["import_tasks", "name", "vars", "tags", "when"];

/// Reads task lists, roles and imports, collecting every mistake.
pub struct TaskLoader<'p> {
    origins: &'p mut Vec<Origin>,
    errors: &'p mut Vec<InputError>,
}

impl<'p> TaskLoader<'p> {
    pub fn new(origins: &'p mut Vec<Origin>, errors: &'p mut Vec<InputError>) -> TaskLoader<'p> {
        TaskLoader { origins, errors }
    }

    /// The tasks of a list, imports expanded in place.
    pub fn tasks(&mut self, node: &Node, place: &TaskPlace<'_>) -> Vec<TaskDef> {
        // A task file with nothing in it (or only comments) has no tasks.
        if let Kind::Null = node.kind {
            return Vec::new();
        }
        let items = match node.as_seq() {
            Ok(items) => items,
            Err(e) => {
                self.errors
                    .push(e.help("tasks are a list: start each with `- `"));
                return Vec::new();
            }
        };
        let mut tasks = Vec::new();
        for item in items {
            if let Some(key) = DYNAMIC_KEYS.iter().find_map(|k| item.key_node(k)) {
                self.errors.push(
                    key.error("converge reads task files and roles when the playbook loads")
                        .help(
                            "write `import_tasks: FILE` for a task file, \
                             and list roles in the play's `roles:`",
                        ),
                );
                continue;
            }
            if item.key_node("import_tasks").is_some() {
                match self.import(item, place) {
                    Ok(imported) => tasks.extend(imported),
                    Err(e) => self.errors.push(e),
                }
                continue;
            }
            match load_task(item, place.is_handler) {
                Ok(mut task) => {
                    task.origin = place.origin;
                    task.tags.extend(place.tags.iter().cloned());
                    task.when.splice(0..0, place.when.iter().cloned());
                    tasks.push(task);
                }
                Err(e) => self.errors.push(e),
            }
        }
        tasks
    }

    /// `- import_tasks: FILE` with its `vars:`, `tags:` and `when:`.
    fn import(&mut self, node: &Node, place: &TaskPlace<'_>) -> InputResult<Vec<TaskDef>> {
        let mut file = None;
        let mut vars = Layer::new();
        let mut tags = place.tags.clone();
        let mut when = place.when.clone();
        for (key, key_node, value) in node.entries()? {
            match key {
                "import_tasks" => file = Some(value),
                "vars" => vars = owned_entries(value)?,
                "tags" => tags.extend(value.string_list()?.into_iter().map(|(s, _)| s)),
                "when" => when.push(value.clone()),
                "name" => {}
                _ => return Err(unknown_key(key_node, IMPORT_KEYS, "import_tasks")),
            }
        }
        let Some(file) = file else {
            return Err(node
                .error("this import names no file")
                .help("write `- import_tasks: FILE`"));
        };
        let path = place.dir.join(file.scalar_text()?);
        if place.files.contains(&path) {
            return Err(file
                .error(format!("{} imports itself", path.display()))
                .help("import_tasks files must not import each other in a cycle"));
        }
        let root = load_named_yaml(
            &path,
            &file.span,
            "import_tasks paths are relative to the file that imports them",
        )?;
        let origin = Origin {
            role: self.origins[place.origin].role,
            import_vars: self.origins[place.origin]
                .import_vars
                .iter()
                .cloned()
                .chain([vars])
                .collect(),
        };
        self.origins.push(origin);
        let mut files = place.files.clone();
        files.push(path.clone());
        let inner = TaskPlace {
            dir: path.parent().unwrap_or(Path::new(".")),
            origin: self.origins.len() - 1,
            is_handler: place.is_handler,
            tags,
            when,
            files,
        };
        Ok(self.tasks(&root, &inner))
    }

    /// One entry of `roles:`: `- NAME` or `- role: NAME` with `vars`, `tags`, `when`
    /// and parameters. None when it had mistakes (they are collected).
    pub fn role(&mut self, entry: &Node, playbook_dir: &Path, index: usize) -> Option<LoadedRole> {
        match self.role_entry(entry, playbook_dir, index) {
            Ok(role) => Some(role),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn role_entry(
        &mut self,
        entry: &Node,
        playbook_dir: &Path,
        index: usize,
    ) -> InputResult<LoadedRole> {
        let mut name = None;
        let mut entry_vars = Layer::new();
        let mut params = Layer::new();
        let mut tags = Vec::new();
        let mut when = Vec::new();
        if let Kind::Map(_) = entry.kind {
            for (key, _, value) in entry.entries()? {
                match key {
                    "role" | "name" => name = Some(value),
                    "vars" => entry_vars = owned_entries(value)?,
                    "tags" => tags = value.string_list()?.into_iter().map(|(s, _)| s).collect(),
                    "when" => when.push(value.clone()),
                    _ => params.push((key.to_string(), value.clone())),
                }
            }
        } else {
            name = Some(entry);
        }
        let Some(name_node) = name else {
            return Err(entry.error("this role entry names no role").help(format!(
                "write `- role: NAME`; the keys of an entry: {}, and the role's parameters",
                ROLE_ENTRY_KEYS.join(", ")
            )));
        };
        let name = name_node.scalar_text()?;
        let dir = playbook_dir.join("roles").join(&name);
        if !dir.is_dir() {
            return Err(name_node
                .error(format!(
                    "no role `{name}`: {} is not a folder",
                    dir.display()
                ))
                .help(role_help(playbook_dir, &name)));
        }
        refuse_dependencies(&dir)?;
        self.origins.push(Origin {
            role: Some(index),
            import_vars: Vec::new(),
        });
        let origin = self.origins.len() - 1;
        let mut read = |sub: &str, is_handler: bool| -> InputResult<Vec<TaskDef>> {
            let sub = dir.join(sub);
            let Some(path) = main_file(&sub) else {
                return Ok(Vec::new());
            };
            let root = load_yaml(&path)?;
            let place = TaskPlace {
                dir: &sub,
                origin,
                is_handler,
                tags: tags.clone(),
                when: when.clone(),
                files: vec![path],
            };
            Ok(self.tasks(&root, &place))
        };
        let tasks = read("tasks", false)?;
        let handlers = read("handlers", true)?;
        Ok(LoadedRole {
            role: Role {
                name,
                defaults: role_vars(&dir, "defaults")?,
                vars: role_vars(&dir, "vars")?,
                entry_vars,
                params,
                dir,
            },
            tasks,
            handlers,
        })
    }
}

/// The variables a role entry writes (its `vars:` and parameters), as far as they
/// can be read.
pub fn written_variables(entry: &Node) -> Vec<(String, Node)> {
    let Ok(entries) = entry.entries() else {
        return Vec::new();
    };
    entries
        .into_iter()
        .flat_map(|(key, _, value)| match key {
            "vars" => owned_entries(value).unwrap_or_default(),
            _ if ROLE_ENTRY_KEYS.contains(&key) => Vec::new(),
            _ => vec![(key.to_string(), value.clone())],
        })
        .collect()
}

/// A role's `meta/main.yml` may list roles to run before it; converge does not, so
/// such a role is refused rather than run without them.
fn refuse_dependencies(dir: &Path) -> InputResult<()> {
    let Some(path) = main_file(&dir.join("meta")) else {
        return Ok(());
    };
    let meta = load_yaml(&path)?;
    let Some(key) = meta.key_node("dependencies") else {
        return Ok(());
    };
    let dependencies = meta.find(&[PathStep::Key("dependencies".into())]);
    match &dependencies.kind {
        Kind::Null => Ok(()),
        Kind::Seq(items) if items.is_empty() => Ok(()),
        _ => Err(key
            .error("converge does not run role dependencies")
            .help("list the roles this one depends on in the play's `roles:`, before it")),
    }
}

/// `SUB/main.yml`, or `SUB/main.yaml`, when there is one.
fn main_file(sub: &Path) -> Option<PathBuf> {
    ["main.yml", "main.yaml"]
        .into_iter()
        .map(|name| sub.join(name))
        .find(|path| path.is_file())
}

/// The variables of a role's `defaults/` or `vars/`, when it has them.
fn role_vars(dir: &Path, sub: &str) -> InputResult<Layer> {
    match main_file(&dir.join(sub)) {
        Some(path) => {
            let node = load_yaml(&path)?;
            match node.kind {
                // An empty file (or one with only comments) defines nothing.
                Kind::Null => Ok(Layer::new()),
                _ => owned_entries(&node),
            }
        }
        None => Ok(Layer::new()),
    }
}

/// The roles there are, for a mistyped name.
fn role_help(playbook_dir: &Path, name: &str) -> String {
    let names: Vec<String> = std::fs::read_dir(playbook_dir.join("roles"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return "roles are folders under roles/ beside the playbook: \
                roles/NAME/tasks/main.yml, handlers/, defaults/, vars/, templates/, files/"
            .to_string();
    }
    match closest(name, names.iter().map(String::as_str)) {
        Some(close) => format!("did you mean `{close}`?"),
        None => format!("the roles beside the playbook: {}", names.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Playbook;

    /// A playbook folder holding `files`; the playbook is `site.yml`.
    fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, crate::error::InputResult<Playbook>) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let playbook = Playbook::load(&dir.path().join("site.yml"));
        (dir, playbook)
    }

    fn names(tasks: &[crate::playbook::TaskDef]) -> Vec<String> {
        tasks
            .iter()
            .map(|t| t.name.as_ref().unwrap().scalar_text().unwrap())
            .collect()
    }

    #[test]
    fn role_tasks_run_before_the_plays_and_handlers_join_the_plays() {
        let (_dir, playbook) = load(&[
            (
                "site.yml",
                "- hosts: all\n  tasks:\n    - { name: own, command: \"true\" }\n  \
                 handlers:\n    - { name: own handler, command: \"true\" }\n  \
                 roles:\n    - app\n    - role: web\n      tags: [edge]\n      when: tls\n      \
                 port: 80\n      vars: { a: 1 }\n",
            ),
            (
                "roles/app/tasks/main.yaml",
                "- { name: app task, command: \"true\" }\n",
            ),
            (
                "roles/app/handlers/main.yml",
                "- { name: app handler, command: \"true\" }\n",
            ),
            ("roles/app/defaults/main.yml", "# nothing yet\n"),
            (
                "roles/web/tasks/main.yml",
                "- { name: web task, command: \"true\", when: up, tags: [w] }\n",
            ),
            ("roles/web/vars/main.yml", "b: 2\n"),
        ]);
        let playbook = playbook.unwrap();
        let play = &playbook.plays[0];
        assert_eq!(names(&play.tasks), ["app task", "web task", "own"]);
        assert_eq!(names(&play.handlers), ["own handler", "app handler"]);
        let web = &play.tasks[1];
        assert_eq!(web.tags, ["w", "edge"]);
        let when: Vec<String> = web.when.iter().map(|w| w.scalar_text().unwrap()).collect();
        assert_eq!(when, ["tls", "up"], "the role's condition first");
        let role = &play.roles[play.origins[web.origin].role.unwrap()];
        assert_eq!(role.name, "web");
        assert!(role.dir.ends_with("roles/web"));
        let keys = |layer: &[(String, crate::node::Node)]| -> Vec<String> {
            layer.iter().map(|(k, _)| k.clone()).collect()
        };
        assert_eq!(keys(&role.vars), ["b"]);
        assert_eq!(keys(&role.entry_vars), ["a"]);
        assert_eq!(keys(&role.params), ["port"]);
        assert!(play.roles[0].defaults.is_empty());
        assert_eq!(play.origins[play.tasks[2].origin].role, None);
    }

    #[test]
    fn imports_are_relative_to_the_importing_file_and_carry_their_vars() {
        let (_dir, playbook) = load(&[
            (
                "site.yml",
                "- hosts: all\n  tasks:\n    - import_tasks: tasks/a.yml\n      vars: { x: 1 }\n",
            ),
            (
                "tasks/a.yml",
                "- { name: a, command: \"true\" }\n- import_tasks: inner/b.yml\n  vars: { y: 2 }\n  tags: [b]\n",
            ),
            ("tasks/inner/b.yml", "- { name: b, command: \"true\" }\n"),
        ]);
        let play = &playbook.unwrap().plays[0];
        assert_eq!(names(&play.tasks), ["a", "b"]);
        let b = &play.origins[play.tasks[1].origin];
        let outer_first: Vec<&str> = b.import_vars.iter().map(|l| l[0].0.as_str()).collect();
        assert_eq!(outer_first, ["x", "y"]);
        assert_eq!(play.tasks[1].tags, ["b"]);
    }

    #[test]
    fn mistakes_are_located_in_the_file_that_holds_them() {
        let message = |files: &[(&str, &str)]| {
            let (dir, playbook) = load(files);
            let err = playbook.unwrap_err();
            let text = err
                .message
                .replace(&dir.path().display().to_string(), "DIR");
            (text, err.help.unwrap_or_default())
        };
        let (text, help) = message(&[
            ("site.yml", "- hosts: all\n  roles: [app]\n"),
            ("roles/app/tasks/main.yml", "- name: x\n  comand: ls\n"),
        ]);
        assert!(
            text.starts_with("DIR/roles/app/tasks/main.yml:2:3: unknown module"),
            "{text}"
        );
        assert!(help.contains("command"), "{help}");

        let (text, help) = message(&[
            ("site.yml", "- hosts: all\n  roles: [ap]\n"),
            ("roles/app/tasks/main.yml", ""),
        ]);
        assert!(text.contains("site.yml:2:11: no role `ap`"), "{text}");
        assert_eq!(help, "did you mean `app`?");

        let (text, help) = message(&[
            (
                "site.yml",
                "- hosts: all\n  tasks:\n    - import_tasks: a.yml\n",
            ),
            ("a.yml", "- import_tasks: b.yml\n"),
            ("b.yml", "- import_tasks: a.yml\n"),
        ]);
        assert!(
            text.contains("b.yml:1:17:") && text.ends_with("a.yml imports itself"),
            "{text}"
        );
        assert!(help.contains("cycle"), "{help}");

        let (text, _) = message(&[(
            "site.yml",
            "- hosts: all\n  tasks:\n    - import_tasks: nowhere.yml\n",
        )]);
        assert!(text.contains("site.yml:3:21: cannot read"), "{text}");

        let (text, _) = message(&[
            (
                "site.yml",
                "- hosts: all\n  tasks:\n    - import_tasks: a.yml\n      loop: [1]\n",
            ),
            ("a.yml", ""),
        ]);
        assert!(
            text.contains("site.yml:4:7: unknown import_tasks key `loop`"),
            "{text}"
        );
    }
}
