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
    /// Per target user, what sudo made of the password: learned once per connection,
    /// only when there is a password to give, so a wrong one is tried once (not with
    /// every command, which could lock the account) and never meets a long-lived script
    /// whose stdin would feed sudo's retries.
    verdicts: tokio::sync::Mutex<HashMap<String, Verdict>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    /// sudo runs commands without asking.
    NotAsked,
    Accepted,
    Refused,
}

/// Prints what sudo does with the password on stdin (its first line): nothing asked,
/// accepted, or neither. `-k` ignores cached credentials, so the answer holds for every
/// later `sudo -k` of the connection.
const VERDICT_SCRIPT: &str = r#"if [ $# -gt 0 ] && ! id -u -- "$2" >/dev/null 2>&1; then echo no-such-user
elif sudo -n -k "$@" true 2>/dev/null; then echo not-asked
elif sudo -S -p '' -k "$@" true 2>/dev/null; then echo accepted; fi"#;

impl Escalation {
    pub fn new(password: Option<BecomePassword>) -> Escalation {
        Escalation {
            password,
            verdicts: Default::default(),
        }
    }

    /// How to run a script as `run_as` over `transport`: `sudo -n` unless a password is
    /// given and sudo wants it there, which costs one exec per target user.
    pub(super) async fn sudo(
        &self,
        transport: &dyn Transport,
        target: &str,
        run_as: &RunAs,
        login_is_root: bool,
    ) -> Result<Sudo, TransportError> {
        let Some(user) = run_as.sudo_user(login_is_root) else {
            return Ok(Sudo::none());
        };
        let as_user: Vec<String> = match user {
            "root" => Vec::new(),
            user => vec!["-u".into(), user.into()],
        };
        let Some(password) = &self.password else {
            return Ok(no_password(as_user));
        };
        let mut line = password.expose().as_bytes().to_vec();
        line.push(b'\n');
        let mut verdicts = self.verdicts.lock().await;
        let verdict = match verdicts.get(user) {
            Some(verdict) => *verdict,
            None => {
                // Not remembered: a later task may create the user.
                let body = crate::quote::quote_all(
                    ["/bin/sh", "-c", VERDICT_SCRIPT, "sh"]
                        .into_iter()
                        .chain(as_user.iter().map(String::as_str)),
                );
                let out = transport
                    .exec(Script {
                        body: &body,
                        stdin: super::Input::Bytes(&line),
                        run_as: &RunAs::Login,
                        timeout: Some(super::PROBE_TIMEOUT),
                        purpose: super::Purpose::Probe,
                    })
                    .await?;
                let verdict = match out.stdout_text().trim() {
                    "no-such-user" => {
                        return Err(TransportError::Become {
                            target: target.to_string(),
                            reason: format!("cannot run as {user}: no such user on the host"),
                        });
                    }
                    "not-asked" => Verdict::NotAsked,
                    "accepted" => Verdict::Accepted,
                    _ => Verdict::Refused,
                };
                verdicts.insert(user.to_string(), verdict);
                verdict
            }
        };
        match verdict {
            Verdict::NotAsked => Ok(no_password(as_user)),
            Verdict::Refused => Err(TransportError::Become {
                target: target.to_string(),
                reason: format!(
                    "sudo refused the become password to run as {user} (a wrong one, or the \
                     login may not use sudo there)"
                ),
            }),
            Verdict::Accepted => {
                let mut words: Vec<String> =
                    ["sudo", "-S", "-p", "", "-k"].map(String::from).into();
                words.extend(as_user);
                Ok(Sudo {
                    words,
                    stdin_prefix: Some(line),
                })
            }
        }
    }
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

    /// A clear error for a script that `sudo -n` refused to start; None when it ran.
    pub(super) fn refused(&self, target: &str, out: &ExecOutput) -> Option<TransportError> {
        // With the password, sudo -k was checked to accept it.
        if self.stdin_prefix.is_some() || self.words.is_empty() || out.status != 1 {
            return None;
        }
        asks_password(out).then(|| TransportError::Become {
            target: target.to_string(),
            reason: "sudo asks for a password: give it with --ask-become-pass (-K), or as \
                     `ansible_become_password` in the inventory (kept secret: in a vault file)"
                .to_string(),
        })
    }

    /// What goes to stdin before the script's own input: the password line when sudo
    /// reads one.
    pub(super) fn prefix(&self) -> Vec<u8> {
        self.stdin_prefix.clone().unwrap_or_default()
    }
}

pub(super) fn no_password(as_user: Vec<String>) -> Sudo {
    let mut words: Vec<String> = ["sudo", "-n"].map(String::from).into();
    words.extend(as_user);
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
        assert!(
            Sudo::none().refused("h1", &out).is_none(),
            "no sudo, no refusal"
        );
        let ran = ExecOutput {
            status: 1,
            ..Default::default()
        };
        assert!(sudo.refused("h1", &ran).is_none());
    }
}
