//! Users and groups: the names `useradd` and `groupadd` accept, checked before any
//! host is touched (a name starting with `-` would also read as an option).

use super::Params;
use crate::error::InputResult;
use serde::de::{Deserialize, Deserializer, Error as _};

/// Why `name` cannot name a user or group, if it cannot.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.len() > 32 {
        return Some("is longer than 32 characters");
    }
    if name.starts_with(['-', '.']) {
        return Some("starts with `-` or `.`");
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Some("is all digits (it would read as an id)");
    }
    let body = name.strip_suffix('$').unwrap_or(name);
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Some("may hold only letters, digits, `.`, `_`, `-` and a final `$`");
    }
    None
}

/// A user or group name as a parameter (`owner`, `group`, `user`): checked when the
/// parameters are read, so a name that would reach `chown` as an option
/// (`--reference=/etc/shadow`) or break a unit file is a located error before any host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Account(String);

impl std::ops::Deref for Account {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Account {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Account, D::Error> {
        let name = String::deserialize(d)?;
        match name_problem(&name) {
            None => Ok(Account(name)),
            Some(problem) => Err(D::Error::custom(format!(
                "`{name}` is not a user or group name: it {problem}"
            ))),
        }
    }
}

impl From<Account> for String {
    fn from(account: Account) -> String {
        account.0
    }
}

/// A located error when a name under `key` is not a valid user or group name.
pub fn check_name(params: &Params<'_>, key: &str, name: &str) -> InputResult<()> {
    match name_problem(name) {
        None => Ok(()),
        Some(problem) => Err(params
            .error_at(key, format!("`{name}` {problem}"))
            .help("user and group names are like `myapp`, `www-data` or `svc_backup`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for name in ["myapp", "www-data", "svc_backup", "a.b", "host$", "App1"] {
            assert_eq!(name_problem(name), None, "{name}");
        }
    }

    #[test]
    fn names_that_would_break_a_command_are_refused() {
        for name in [
            "", "-r", ".x", "1001", "a b", "a:b", "a,b", "a/b", "$(id)", "a\nb", "x'y",
        ] {
            assert!(name_problem(name).is_some(), "{name:?}");
        }
        assert!(name_problem(&"a".repeat(33)).is_some());
    }
}
