//! What a module may use while it converges on one host.

use super::{Failure, Resource};
use crate::transport::{ExecOutput, RunAs, Script, Transport};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};

/// The host a task runs on.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    pub name: String,
    /// `facts.*`, gathered in the first round trip.
    pub facts: Value,
    /// Every form the play's secrets took in this host's plan (their values, their
    /// fields, what templates made of them: `playbook::taint`), never to be shown.
    pub secrets: Vec<String>,
}

impl HostInfo {
    /// Whether `bytes` hold any form of a secret (or a private key).
    pub fn is_secret(&self, bytes: &[u8]) -> bool {
        super::files::holds_private_key(bytes)
            || self
                .secrets
                .iter()
                .filter(|s| !s.is_empty())
                .any(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
    }
}

/// Restarts asked for and done in this run, so each service restarts at most once.
#[derive(Debug, Default)]
pub struct RestartBook {
    pending: BTreeSet<String>,
    done: BTreeSet<String>,
}

impl RestartBook {
    fn key(service: &str) -> String {
        service.trim_end_matches(".service").to_string()
    }

    /// Something changed that the running service must pick up.
    pub fn request(&mut self, service: &str) {
        self.pending.insert(Self::key(service));
    }

    pub fn is_pending(&self, service: &str) -> bool {
        self.pending.contains(&Self::key(service))
    }

    /// The service was (re)started after every change so far: pending restarts are folded in.
    pub fn mark_restarted(&mut self, service: &str) {
        let key = Self::key(service);
        self.pending.remove(&key);
        self.done.insert(key);
    }

    pub fn was_restarted(&self, service: &str) -> bool {
        self.done.contains(&Self::key(service))
    }

    /// Services still waiting for a restart at the end of the run.
    pub fn pending(&self) -> Vec<String> {
        self.pending.iter().cloned().collect()
    }
}

pub struct Ctx<'a> {
    /// False in check mode: compute and report, change nothing.
    pub apply: bool,
    pub host: &'a HostInfo,
    transport: &'a dyn Transport,
    run_as: RunAs,
    /// The task's `timeout:` for each command; None: the transport's default.
    timeout: Option<std::time::Duration>,
    /// A snippet recording the restarts this task owes if it changes anything, run in
    /// front of its first command in apply mode: the intent is on the host before the
    /// change is live, so a crash in between cannot lose the restart.
    restart_intent: std::sync::Mutex<Option<String>>,
    pub restarts: &'a mut RestartBook,
    /// Resources that earlier tasks changed, or in check mode would have changed.
    changed: &'a HashSet<Resource>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        apply: bool,
        host: &'a HostInfo,
        transport: &'a dyn Transport,
        run_as: RunAs,
        restarts: &'a mut RestartBook,
        changed: &'a HashSet<Resource>,
    ) -> Ctx<'a> {
        Ctx {
            apply,
            host,
            transport,
            run_as,
            timeout: None,
            restart_intent: std::sync::Mutex::new(None),
            restarts,
            changed,
        }
    }

    /// Run `snippet` in front of the first command this task runs when applying.
    pub fn with_restart_intent(self, snippet: Option<String>) -> Ctx<'a> {
        *self
            .restart_intent
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = snippet;
        self
    }

    /// Whether a restart intent is still waiting for the task's first command (none
    /// ran): once it went to the host, the slot is empty.
    pub fn restart_intent_pending(&self) -> bool {
        self.restart_intent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Each command of this task may run for `timeout` at most.
    pub fn with_timeout(mut self, timeout: Option<std::time::Duration>) -> Ctx<'a> {
        self.timeout = timeout;
        self
    }

    pub fn is_secret(&self, bytes: &[u8]) -> bool {
        self.host.is_secret(bytes)
    }

    pub fn transport(&self) -> &dyn Transport {
        self.transport
    }

    /// In check mode, whether an earlier task would have created or changed `resource`
    /// (so a missing user or unit is expected, not an error).
    pub fn assumes(&self, resource: &Resource) -> bool {
        self.changed.iter().any(|r| r.satisfies(resource))
    }

    /// Run a script; a non-zero exit is returned, not an error.
    pub async fn run(&self, body: &str) -> Result<ExecOutput, Failure> {
        self.run_input(body, &[]).await
    }

    /// Run a script with bytes on its stdin.
    pub async fn run_input(&self, body: &str, stdin: &[u8]) -> Result<ExecOutput, Failure> {
        let intent = if self.apply {
            self.restart_intent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
        } else {
            None
        };
        let with_intent = intent.map(|snippet| format!("{snippet}{body}"));
        let body = with_intent.as_deref().unwrap_or(body);
        let script = Script {
            body,
            stdin,
            run_as: &self.run_as,
            timeout: self.timeout,
        };
        Ok(self.transport.exec(script).await?)
    }

    /// Run a script that must succeed; its stdout, or a failure naming `what` with stderr.
    pub async fn run_ok(&self, what: &str, body: &str) -> Result<String, Failure> {
        let out = self.run(body).await?;
        check(what, out)
    }

    /// Like [`Ctx::run_ok`], with stdin.
    pub async fn run_input_ok(
        &self,
        what: &str,
        body: &str,
        stdin: &[u8],
    ) -> Result<String, Failure> {
        let out = self.run_input(body, stdin).await?;
        check(what, out)
    }
}

fn check(what: &str, out: ExecOutput) -> Result<String, Failure> {
    if out.success() {
        Ok(out.stdout_text())
    } else {
        let stderr = out.stderr_text();
        let detail = if stderr.is_empty() {
            out.stdout_text().trim().to_string()
        } else {
            stderr
        };
        Err(Failure::new(format!(
            "{what} failed (exit {}): {detail}",
            out.status
        )))
    }
}
