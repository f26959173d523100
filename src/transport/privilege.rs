//! Who a script runs as, and how sudo gets there: `sudo -n` when sudo needs no
//! password, otherwise `sudo -S -p '' -k` with the become password as the first line of
//! the script's stdin (never in argv, where `ps` on the host would show it).

use super::{ExecOutput, Script, Transport, TransportError};
use std::collections::HashMap;
use std::fmt;

/// Who a script runs as on the host; also the key that groups probes into one exec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunAs {
    /// The login user, without sudo.
    #[default]
    Login,
    /// root, through sudo unless the login is root.
    Root,
    /// Another user, through `sudo -u USER`.
    User(String),
}

impl RunAs {
    /// As Ansible reads `become` and `become_user`: the user counts only with `become`,
    /// and root is the default.
    pub fn new(become_: bool, user: Option<&str>) -> RunAs {
        match user {
            _ if !become_ => RunAs::Login,
            None | Some("root") => RunAs::Root,
            Some(user) => RunAs::User(user.to_string()),
        }
    }

    /// The target user sudo needs, or None when the script runs as the login.
    fn sudo_user(&self, login_is_root: bool) -> Option<&str> {
        match self {
            RunAs::Login => None,
            RunAs::Root if login_is_root => None,
            RunAs::Root => Some("root"),
            RunAs::User(user) => Some(user),
        }
    }
}

/// The become password: shown nowhere, not even in debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct BecomePassword(String);

impl BecomePassword {
    pub fn new(password: String) -> BecomePassword {
        BecomePassword(password)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BecomePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// How one connection runs scripts as other users.
#[derive(Debug, Default)]
pub struct Escalation {
    password: Option<BecomePassword>,
    /// Per target user: whether sudo asks for the password (learned once per
    /// connection, only when there is a password to give).
    asks: tokio::sync::Mutex<HashMap<String, bool>>,
}

/// The sudo words and stdin prefix that run a script as some user.
pub(super) struct Sudo {
    words: Vec<String>,
    /// The password line, when sudo reads one.
    pub(super) stdin_prefix: Option<Vec<u8>>,
}

impl Sudo {
    pub(super) fn none() -> Sudo {
        Sudo {
            words: Vec::new(),
            stdin_prefix: None,
        }
    }

    pub(super) fn words(&self) -> impl Iterator<Item = &str> {
        self.words.iter().map(String::as_str)
    }

    /// A clear error for a script that sudo refused to start; None when it ran.
    pub(super) fn refused(&self, target: &str, out: &ExecOutput) -> Option<TransportError> {
        if self.words.is_empty() || out.status != 1 {
            return None;
        }
        let reason = if asks_password(out) {
            "sudo asks for a password: give it with --ask-become-pass (-K), or as \
             `ansible_become_password` in the inventory (kept secret: in a vault file)"
        } else if out.stderr_text().contains("incorrect password attempt") {
            "sudo refused the become password"
        } else {
            return None;
        };
        Some(TransportError::Become {
            target: target.to_string(),
            reason: reason.to_string(),
        })
    }

    /// `stdin` with the password line in front when sudo reads one.
    pub(super) fn stdin(&self, stdin: &[u8]) -> Vec<u8> {
        let mut all = self.stdin_prefix.clone().unwrap_or_default();
        all.extend_from_slice(stdin);
        all
    }
}

impl Escalation {
    pub fn new(password: Option<BecomePassword>) -> Escalation {
        Escalation {
            password,
            asks: Default::default(),
        }
    }

    /// How to run a script as `run_as` over `transport`: `sudo -n` unless a password is
    /// given and sudo asks for it there, which costs one exec per target user.
    pub(super) async fn sudo(
        &self,
        transport: &dyn Transport,
        run_as: &RunAs,
        login_is_root: bool,
    ) -> Result<Sudo, TransportError> {
        let Some(user) = run_as.sudo_user(login_is_root) else {
            return Ok(Sudo::none());
        };
        let target: Vec<String> = match user {
            "root" => Vec::new(),
            user => vec!["-u".into(), user.into()],
        };
        let Some(password) = &self.password else {
            return Ok(no_password(target));
        };
        let mut asks = self.asks.lock().await;
        let asked = match asks.get(user) {
            Some(asked) => *asked,
            None => {
                let probe = crate::quote::quote_all(
                    ["sudo", "-n", "-k"]
                        .into_iter()
                        .chain(target.iter().map(String::as_str))
                        .chain(["true"]),
                );
                let out = transport
                    .exec(Script {
                        body: &probe,
                        stdin: b"",
                        run_as: &RunAs::Login,
                        timeout: Some(super::PROBE_TIMEOUT),
                    })
                    .await?;
                let asked = !out.success() && asks_password(&out);
                asks.insert(user.to_string(), asked);
                asked
            }
        };
        if !asked {
            return Ok(no_password(target));
        }
        // `-k`: sudo ignores cached credentials, so it reads the line every time
        // (a line left unread would reach the script).
        let mut words: Vec<String> = ["sudo", "-S", "-p", "", "-k"].map(String::from).into();
        words.extend(target);
        let mut line = password.expose().as_bytes().to_vec();
        line.push(b'\n');
        Ok(Sudo {
            words,
            stdin_prefix: Some(line),
        })
    }

}

pub(super) fn no_password(target: Vec<String>) -> Sudo {
    let mut words: Vec<String> = ["sudo", "-n"].map(String::from).into();
    words.extend(target);
    Sudo {
        words,
        stdin_prefix: None,
    }
}

/// sudo's own words when `-n` meets a rule that wants a password.
fn asks_password(out: &ExecOutput) -> bool {
    out.stderr_text()
        .lines()
        .any(|l| l.starts_with("sudo: a password is required"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn become_user_counts_only_with_become_and_root_is_the_default() {
        assert_eq!(RunAs::new(false, Some("app")), RunAs::Login);
        assert_eq!(RunAs::new(true, None), RunAs::Root);
        assert_eq!(RunAs::new(true, Some("root")), RunAs::Root);
        assert_eq!(RunAs::new(true, Some("app")), RunAs::User("app".into()));
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let e = Escalation::new(Some(BecomePassword::new("hunter2".into())));
        assert!(!format!("{e:?}").contains("hunter2"));
    }

    #[test]
    fn a_missing_password_is_explained() {
        let out = ExecOutput {
            status: 1,
            stdout: Vec::new(),
            stderr: b"sudo: a password is required\n".to_vec(),
        };
        let sudo = no_password(Vec::new());
        let error = sudo.refused("h1", &out).unwrap();
        assert!(error.to_string().contains("--ask-become-pass"), "{error}");
        assert!(Sudo::none().refused("h1", &out).is_none(), "no sudo, no refusal");
        let ran = ExecOutput {
            status: 1,
            ..Default::default()
        };
        assert!(sudo.refused("h1", &ran).is_none());
    }
}
