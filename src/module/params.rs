//! Typed module parameters, with errors that point at the parameter in the playbook.

use crate::error::{InputError, InputResult};
use crate::node::{Node, PathStep};
use crate::playbook::taint::Taint;
use crate::playbook::template::Scope;
use regex::Regex;
use serde::de::{DeserializeOwned, Error as _, IntoDeserializer, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

/// One task's parameters, rendered for one host.
pub struct Params<'a> {
    pub module: &'static str,
    /// The rendered value (the YAML with every template filled in).
    pub value: Value,
    /// Where the parameters were written, to locate errors.
    pub node: &'a Node,
    /// The playbook's folder: relative `src` paths start here...
    pub playbook_dir: &'a Path,
    /// ...after the folder of the task's role, when it has one.
    pub role_dir: Option<&'a Path>,
    /// Every variable of the host (facts, item, vars) and the magic variables shared by
    /// the play's hosts, for modules that render templates.
    pub vars: Scope<'a>,
    /// Which of those variables hold a secret, and where the parameters do.
    pub taint: &'a Taint,
    /// The modules of every task in the play, for checks that span tasks.
    pub play_modules: &'a [&'static str],
}

impl Params<'_> {
    /// Deserialize into the module's parameter struct (`deny_unknown_fields`).
    pub fn parse<T: DeserializeOwned>(&self) -> InputResult<T> {
        serde_path_to_error::deserialize(&self.value).map_err(|e| {
            let steps: Vec<PathStep> = e
                .path()
                .iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Map { key } => Some(PathStep::Key(key.clone())),
                    serde_path_to_error::Segment::Seq { index } => Some(PathStep::Index(*index)),
                    _ => None,
                })
                .collect();
            let inner = plain_words(&e.inner().to_string());
            self.located(&steps, &inner)
        })
    }

    fn located(&self, steps: &[PathStep], message: &str) -> InputError {
        // An unknown field is best shown on its key, not on the map that holds it.
        if let Some(field) = unknown_field(message) {
            let steps = match steps.split_last() {
                Some((PathStep::Key(last), parent)) if *last == field => parent,
                _ => steps,
            };
            let holder = self.node.find(steps);
            let at = holder.key_node(&field).unwrap_or(holder);
            return at
                .error(format!("{}: unknown parameter `{field}`", self.module))
                .label("unknown parameter")
                .help(format!(
                    "the parameters of `{}` are listed in modules/{}/README.md{}",
                    self.module,
                    self.module,
                    expected_list(message)
                ));
        }
        let at = self.node.find(steps);
        let where_ = path_text(steps);
        let (message, own_help) = match message.split_once(HELP_MARK) {
            Some((message, help)) => (message, Some(help)),
            None => (message, None),
        };
        let what = if where_.is_empty() {
            format!("{}: {message}", self.module)
        } else {
            format!("{}: `{where_}`: {message}", self.module)
        };
        let help = if let Some(help) = own_help {
            help.to_string()
        } else if message.contains("missing field") {
            format!("add the parameter; see modules/{}/README.md", self.module)
        } else {
            "check the value's type against the module's README".to_string()
        };
        at.error(what).help(help)
    }

    /// An error about one parameter, for checks beyond types.
    pub fn error_at(&self, key: &str, message: impl Into<String>) -> InputError {
        let node = self.node.find(&[PathStep::Key(key.to_string())]);
        node.error(format!("{}: `{key}`: {}", self.module, message.into()))
    }

    /// An error about a value inside a parameter (`allow[2]`, `domains[0]`).
    pub fn error_at_path(&self, path: &[PathStep], message: impl Into<String>) -> InputError {
        let where_ = path_text(path);
        self.node
            .find(path)
            .error(format!("{}: `{where_}`: {}", self.module, message.into()))
    }

    /// A local path: in a role's task, the first that exists of the role's
    /// `templates/` (for `template` and `systemd_unit`'s template) or `files/`, the
    /// role's folder, then the playbook's folder, as Ansible looks them up.
    pub fn local_path(&self, path: &str) -> PathBuf {
        let in_playbook = self.playbook_dir.join(path);
        let Some(role) = self.role_dir else {
            return in_playbook;
        };
        let sub = match self.module {
            "template" | "systemd_unit" => "templates",
            _ => "files",
        };
        [role.join(sub).join(path), role.join(path)]
            .into_iter()
            .find(|candidate| candidate.exists())
            .unwrap_or(in_playbook)
    }
}

/// `allow[2].port`: keys joined by dots, list positions in brackets.
fn path_text(steps: &[PathStep]) -> String {
    let mut text = String::new();
    for step in steps {
        if matches!(step, PathStep::Key(_)) && !text.is_empty() {
            text.push('.');
        }
        text.push_str(&step.to_string());
    }
    text
}

/// serde's message in the user's words: no Rust type names (`expected struct
/// FileParams`), no serde-internal forms (an enum "or map").
fn plain_words(message: &str) -> String {
    static STRUCT_FROM_LIST: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^invalid length \d+, expected struct \w+ with \d+ elements?$")
            .expect("static regex")
    });
    static STRUCT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"expected struct \w+").expect("static regex"));
    if STRUCT_FROM_LIST.is_match(message) {
        return "invalid type: a list, expected a mapping of parameters".to_string();
    }
    STRUCT
        .replace_all(message, "expected a mapping of parameters")
        .replace("expected string or map", "expected a string")
        .replace("invalid type: map,", "invalid type: a mapping,")
        .replace("invalid type: sequence,", "invalid type: a list,")
}

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

fn expected_list(message: &str) -> String {
    message
        .find(", expected ")
        .map(|i| format!(" ({})", &message[i + 2..]))
        .unwrap_or_default()
}

/// A file mode written as an octal string (`"0644"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Mode {
    /// Four octal digits, as the probes print them and diffs show them.
    pub fn text(self) -> String {
        format!("{:04o}", self.0)
    }

    /// The argument for `chmod`: five digits, because GNU chmod keeps a directory's
    /// setuid/setgid bits for a four-digit mode (`chmod 0755` leaves a 2755 dir at 2755).
    pub fn chmod_arg(self) -> String {
        format!("{:05o}", self.0)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => {
                let digits = s.trim();
                if digits.is_empty() || digits.len() > 4 {
                    return Err(D::Error::custom(format!(
                        "`{s}` is not an octal mode like \"0644\""
                    )));
                }
                u32::from_str_radix(digits, 8).map(Mode).map_err(|_| {
                    D::Error::custom(format!("`{s}` is not an octal mode like \"0644\""))
                })
            }
            other => {
                let written = other.as_f64().map_or(other.to_string(), |f| format!("{f}"));
                Err(D::Error::custom(format!(
                    "a mode must be a quoted octal string: write mode: \"0{written}\" (YAML 1.2 \
                     reads an unquoted 0644 as the decimal number 644)"
                )))
            }
        }
    }
}

/// An absolute path on a host, normalised (no empty or `.` components, no trailing `/`,
/// so `/opt/app/` and `/opt/app` are one path for ordering and diffs), without `..`
/// and without control characters: the write path enters directories by exactly these
/// components, and a newline could not be named safely in a message or a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPath(String);

impl HostPath {
    pub fn parse(path: &str) -> Result<HostPath, String> {
        if !path.starts_with('/') {
            return Err(format!("`{path}` is not an absolute path"));
        }
        if path.chars().any(char::is_control) {
            return Err(format!("{path:?} holds a control character (a newline?)"));
        }
        let parts: Vec<&str> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(format!("`{path}` contains `..`"));
        }
        Ok(HostPath(format!("/{}", parts.join("/"))))
    }
}

impl<'de> Deserialize<'de> for HostPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HostPath, D::Error> {
        HostPath::parse(&String::deserialize(d)?).map_err(|problem| {
            D::Error::custom(format!(
                "{problem}: write an absolute path like /opt/myapp/config"
            ))
        })
    }
}

impl std::ops::Deref for HostPath {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<HostPath> for String {
    fn from(path: HostPath) -> String {
        path.0
    }
}

/// `state: present | absent`, the usual switch of a module that manages one thing.
#[derive(Debug, Default, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Present,
    Absent,
}

/// An optional id (uid, gid) written as a number or as a decimal string, since
/// `-e uid=1001` gives a string.
pub fn opt_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("`{n}` is not a number from 0 to 4294967295"))),
        Value::String(s) => {
            s.trim().parse::<u32>().map(Some).map_err(|_| {
                D::Error::custom(format!("`{s}` is not a number from 0 to 4294967295"))
            })
        }
        other => Err(D::Error::custom(format!(
            "expected a number, found {other}"
        ))),
    }
}

/// A parameter that takes one string or a list (`name: nginx` or `name: [nginx, ufw]`).
pub fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct OneOrMany<T>(std::marker::PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrMany<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or a list of strings")
        }

        fn visit_str<E: serde::de::Error>(self, one: &str) -> Result<Vec<T>, E> {
            T::deserialize(one.into_deserializer()).map(|t| vec![t])
        }

        /// Each item deserialized in turn, so an error names its position.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }
    }

    d.deserialize_any(OneOrMany(std::marker::PhantomData))
}

/// Why a value of a validated parameter type is refused, and how to write it: the help
/// reaches the located error (see [`Params::parse`]).
#[derive(Debug)]
pub struct Invalid {
    pub message: String,
    pub help: &'static str,
}

const HELP_MARK: &str = "\nhelp: ";

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{HELP_MARK}{}", self.message, self.help)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SourceFile;
    use crate::node;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct P {
        path: String,
        mode: Option<Mode>,
    }

    fn parse(yaml: &str) -> InputResult<P> {
        let n = node::parse(&SourceFile::new("t.yml", yaml)).unwrap();
        let params = Params {
            module: "file",
            value: n.to_value(),
            node: &n,
            playbook_dir: Path::new("."),
            role_dir: None,
            vars: (&Value::Null).into(),
            taint: Taint::none(),
            play_modules: &[],
        };
        params.parse::<P>()
    }

    #[test]
    fn a_roles_files_come_before_the_playbooks() {
        let dir = tempfile::tempdir().unwrap();
        let (playbook, role) = (dir.path(), dir.path().join("roles/app"));
        for file in [
            "roles/app/templates/app.conf.hbs",
            "roles/app/files/app.bin",
            "roles/app/notes.txt",
            "app.conf.hbs",
            "shared.txt",
        ] {
            let path = playbook.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let n = node::parse(&SourceFile::new("t.yml", "{}")).unwrap();
        let at = |module, role_dir| Params {
            module,
            value: Value::Null,
            node: &n,
            playbook_dir: playbook,
            role_dir,
            vars: (&Value::Null).into(),
            taint: Taint::none(),
            play_modules: &[],
        };
        let in_role = Some(role.as_path());
        let template = at("template", in_role);
        assert_eq!(
            template.local_path("app.conf.hbs"),
            role.join("templates/app.conf.hbs")
        );
        assert_eq!(template.local_path("notes.txt"), role.join("notes.txt"));
        assert_eq!(
            template.local_path("shared.txt"),
            playbook.join("shared.txt")
        );
        assert_eq!(
            at("file", in_role).local_path("app.bin"),
            role.join("files/app.bin")
        );
        assert_eq!(
            at("template", None).local_path("app.conf.hbs"),
            playbook.join("app.conf.hbs")
        );
    }

    #[test]
    fn unknown_parameters_point_at_their_key() {
        let err = parse("path: /a\nmdoe: \"0644\"\n").unwrap_err();
        assert!(
            err.message
                .starts_with("t.yml:2:1: file: unknown parameter `mdoe`"),
            "{}",
            err.message
        );
        assert!(err.help.unwrap().contains("expected `path` or `mode`"));
    }

    #[test]
    fn unquoted_modes_are_refused_with_a_hint() {
        let err = parse("path: /a\nmode: 0644\n").unwrap_err();
        assert!(err.message.starts_with("t.yml:2:7:"), "{}", err.message);
        assert!(err.message.contains("quoted octal string"));
        assert_eq!(
            parse("path: /a\nmode: \"0640\"\n").unwrap().mode,
            Some(Mode(0o640))
        );
    }

    #[test]
    fn numbers_may_be_written_as_strings() {
        #[derive(Debug, Deserialize)]
        struct N {
            #[serde(default, deserialize_with = "opt_number")]
            id: Option<u32>,
        }
        let n = |v: Value| serde_json::from_value::<N>(v).map(|n| n.id);
        assert_eq!(n(serde_json::json!({"id": 1001})).unwrap(), Some(1001));
        assert_eq!(n(serde_json::json!({"id": "1001"})).unwrap(), Some(1001));
        assert_eq!(n(serde_json::json!({})).unwrap(), None);
        assert!(n(serde_json::json!({"id": -1})).is_err());
        assert!(n(serde_json::json!({"id": "x"})).is_err());
    }

    #[test]
    fn messages_name_no_rust_types() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Outer {
            inner: Option<P>,
            state: Option<State>,
            #[serde(default, deserialize_with = "one_or_many")]
            names: Vec<String>,
        }
        let error = |yaml: &str| {
            let n = node::parse(&SourceFile::new("t.yml", yaml)).unwrap();
            let params = Params {
                module: "m",
                value: n.to_value(),
                node: &n,
                playbook_dir: Path::new("."),
                role_dir: None,
                vars: (&Value::Null).into(),
                taint: Taint::none(),
                play_modules: &[],
            };
            params.parse::<Outer>().unwrap_err().message
        };
        for (yaml, expected) in [
            (
                "inner: 5\n",
                "`inner`: invalid type: integer `5`, expected a mapping of parameters",
            ),
            (
                "inner: [a]\n",
                "`inner`: invalid type: a list, expected a mapping of parameters",
            ),
            (
                "state: 5\n",
                "`state`: invalid type: integer `5`, expected a string",
            ),
            (
                "names: {a: 1}\n",
                "`names`: invalid type: a mapping, expected a string or a list of strings",
            ),
            (
                "names: [a, [b]]\n",
                "`names[1]`: invalid type: a list, expected a string",
            ),
        ] {
            let message = error(yaml);
            assert!(message.ends_with(expected), "{yaml}: {message}");
        }
        let top = node::parse(&SourceFile::new("t.yml", "/a\n")).unwrap();
        let params = Params {
            module: "file",
            value: top.to_value(),
            node: &top,
            playbook_dir: Path::new("."),
            role_dir: None,
            vars: (&Value::Null).into(),
            taint: Taint::none(),
            play_modules: &[],
        };
        let message = params.parse::<P>().unwrap_err().message;
        assert!(
            message
                .ends_with("file: invalid type: string \"/a\", expected a mapping of parameters"),
            "{message}"
        );
    }

    #[test]
    fn missing_parameters_are_named() {
        let err = parse("mode: \"0644\"\n").unwrap_err();
        assert!(
            err.message.contains("missing field `path`"),
            "{}",
            err.message
        );
    }
}
