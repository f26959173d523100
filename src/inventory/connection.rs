//! How to reach a host: the connection variables (`ansible_host`, `ansible_user`, ...).

use super::{Host, Inventory};
use crate::error::{InputError, InputResult};
use crate::node::{Kind, Node};
use crate::playbook::template::engine;
use serde_json::Value;
use std::path::PathBuf;

/// How to reach a host, from its variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub address: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    /// Seconds.
    pub timeout: Option<u64>,
    pub become_root: Option<bool>,
    /// `ansible_connection: local`: run on this machine, without ssh.
    pub local: bool,
}

/// Connection variables converge reads; any other `ansible_*` one is reported as ignored.
const CONNECTION_VARS: [&str; 12] = [
    "ansible_host",
    "ansible_ssh_host",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_timeout",
    "ansible_ssh_timeout",
    "ansible_become",
    "ansible_connection",
];

impl Inventory {
    /// How to reach `host`, from `vars`, its final variables with templates rendered.
    ///
    /// The `ansible_*` names count wherever they were set. The short `host`, `port` and
    /// `user` count only in the host's own inventory entry, since elsewhere they are
    /// ordinary variables (a group's `port: 8080` is the application's); there they beat
    /// an `ansible_*` one set for a group, being more specific.
    ///
    /// Also returns a warning for every other `ansible_*` variable; one set in a file
    /// begins with its position, so the same warning for many hosts can be shown once.
    pub fn connection(&self, host: &Host, vars: &Value) -> InputResult<(Connection, Vec<String>)> {
        let mut connection = Connection::default();
        if let Some(s) = self.setting(host, vars, &["ansible_host", "ansible_ssh_host"], "host")? {
            connection.address = Some(text(&s.value).ok_or_else(|| {
                s.invalid(
                    host,
                    "a host name or an address",
                    "for example `ansible_host: 198.51.100.10`",
                )
            })?);
        }
        if let Some(s) = self.setting(host, vars, &["ansible_port", "ansible_ssh_port"], "port")? {
            let port = number(&s.value)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0);
            connection.port = Some(port.ok_or_else(|| {
                s.invalid(
                    host,
                    "a port number from 1 to 65535",
                    "the ssh port is usually 22",
                )
            })?);
        }
        if let Some(s) = self.setting(host, vars, &["ansible_user", "ansible_ssh_user"], "user")? {
            connection.user = Some(text(&s.value).ok_or_else(|| {
                s.invalid(host, "a user name", "for example `ansible_user: deploy`")
            })?);
        }
        let key_vars = ["ansible_ssh_private_key_file", "ansible_private_key_file"];
        if let Some(s) = self.setting(host, vars, &key_vars, "")? {
            let path = text(&s.value).ok_or_else(|| {
                s.invalid(
                    host,
                    "the path of a private key",
                    "for example `~/.ssh/id_ed25519`",
                )
            })?;
            connection.identity_file = Some(expand_home(&path));
        }
        let timeout_vars = ["ansible_timeout", "ansible_ssh_timeout"];
        if let Some(s) = self.setting(host, vars, &timeout_vars, "")? {
            connection.timeout = Some(number(&s.value).filter(|t| *t > 0).ok_or_else(|| {
                s.invalid(
                    host,
                    "a number of seconds above 0",
                    "for example `ansible_timeout: 10`",
                )
            })?);
        }
        if let Some(s) = self.setting(host, vars, &["ansible_become"], "")? {
            connection.become_root = Some(boolean(&s.value).ok_or_else(|| {
                s.invalid(
                    host,
                    "true or false",
                    "`ansible_become: true` runs tasks as root",
                )
            })?);
        }
        if let Some(s) = self.setting(host, vars, &["ansible_connection"], "")? {
            connection.local = match text(&s.value).as_deref() {
                Some("local") => true,
                Some("ssh") => false,
                _ => {
                    return Err(s.invalid(
                        host,
                        "`ssh` or `local`",
                        "converge connects over ssh, or with `local` runs on this machine",
                    ));
                }
            };
        }
        let warnings = vars
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| name.starts_with("ansible_"))
            .filter(|(name, _)| !CONNECTION_VARS.contains(&name.as_str()))
            .map(|(name, value)| {
                let warning = format!("`{name}` is ignored by converge");
                match self.written_at(host, name, value) {
                    Some((_, node)) => format!("{}: {warning}", node.span.position()),
                    None => warning,
                }
            })
            .collect();
        Ok((connection, warnings))
    }

    /// One connection setting: the first `ansible_*` name set, unless `short` is written
    /// in the host's entry and the `ansible_*` one only comes from a group.
    fn setting<'a>(
        &'a self,
        host: &'a Host,
        vars: &'a Value,
        names: &[&'a str],
        short: &str,
    ) -> InputResult<Option<Setting<'a>>> {
        let in_entry = host
            .vars
            .iter()
            .find(|(name, value)| !short.is_empty() && name == short && !value.is_null());
        let long = names
            .iter()
            .find_map(|&name| vars.get(name).filter(|v| !v.is_null()).map(|v| (name, v)));
        if let Some((name, value)) = long {
            let written = self.written_at(host, name, value);
            let from_group = written.is_some_and(|(for_host, _)| !for_host);
            if in_entry.is_none() || !from_group {
                return Ok(Some(Setting {
                    name,
                    value: value.clone(),
                    node: written.map(|(_, node)| node),
                }));
            }
        }
        let Some((name, node)) = in_entry else {
            return Ok(None);
        };
        let value = engine().render_node(node, vars)?;
        Ok((!value.is_null()).then_some(Setting {
            name,
            value,
            node: Some(node),
        }))
    }

    /// Where the winning definition of `name` is written in the inventory, and whether
    /// it is the host's own (entry or `host_vars`) rather than a group's. `None` when
    /// `value` did not come from there (a play's vars or `-e` set it).
    fn written_at<'a>(
        &'a self,
        host: &'a Host,
        name: &str,
        value: &Value,
    ) -> Option<(bool, &'a Node)> {
        let node = self.winning_definition(host, name)?;
        let templated = matches!(&node.1.kind, Kind::Str(s) if s.contains("{{"));
        (templated || node.1.to_value() == *value).then_some(node)
    }
}

struct Setting<'a> {
    name: &'a str,
    value: Value,
    node: Option<&'a Node>,
}

impl Setting<'_> {
    fn invalid(&self, host: &Host, expected: &str, help: &str) -> InputError {
        let message = format!(
            "`{}` of host `{}` must be {expected}, found {}",
            self.name, host.name, self.value
        );
        match self.node {
            Some(node) => node.error(message),
            None => InputError::new(message),
        }
        .help(help)
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Numbers may be written as strings (`"22"`), as Ansible allows.
fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The booleans Ansible accepts, since YAML 1.2 reads `yes` as a string.
fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => Some(true),
            "no" | "false" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn expand_home(path: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home,
        (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(path),
    }
}
