//! Helpers for module unit tests: parameters from YAML, and a "host" that is this
//! machine with system commands (systemctl, apt-get, dpkg-query, ...) replaced by fake
//! scripts in a temp dir, so the real probes and scripts run without changing the system.

use super::{
    Action, Ctx, Failure, HostInfo, Module, Outcome, Params, Probed, Resource, RestartBook,
};
use crate::error::{InputResult, SourceFile};
use crate::playbook::node;
use crate::transport::{
    ExecOutput, LocalTransport, Script, Stream, Transport, TransportError, quote,
};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `module.prepare` on the parameters written as YAML (a task's module value).
pub fn prepare(
    module: &dyn Module,
    yaml: &str,
    playbook_dir: &Path,
) -> InputResult<Vec<Box<dyn Action>>> {
    let node = node::parse(&SourceFile::new("play.yml", yaml))?;
    let params = Params {
        module: module.name(),
        value: node.to_value(),
        node: &node,
        playbook_dir,
        vars: &Value::Null,
    };
    module.prepare(&params)
}

/// The one action of a task, or the error message of its preparation.
pub fn one_action(module: &dyn Module, yaml: &str, dir: &Path) -> Result<Box<dyn Action>, String> {
    let mut actions = prepare(module, yaml, dir).map_err(|e| e.message)?;
    assert_eq!(actions.len(), 1);
    Ok(actions.remove(0))
}

/// Every diff of an outcome as the user sees it, on host `web1`.
pub fn diff_text(outcome: &Outcome) -> String {
    outcome.diffs.iter().map(|d| d.unified("web1")).collect()
}

/// Commands that change a system: always shadowed by a fake.
const GUARDED: &[&str] = &[
    "systemctl",
    "apt-get",
    "apt-cache",
    "dpkg-query",
    "dpkg",
    "journalctl",
    "sudo",
];

/// This machine, with fake commands first on PATH and every fake call logged.
#[derive(Debug)]
pub struct FakeHost {
    pub dir: tempfile::TempDir,
    local: LocalTransport,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    pub fn new() -> FakeHost {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("bin")).expect("bin dir");
        let host = FakeHost {
            dir,
            local: LocalTransport::new(),
        };
        // A test must never reach the real system commands, even one it forgot to fake.
        for cmd in GUARDED {
            host.fake(
                cmd,
                &format!("echo '{cmd} is not faked in this test' >&2; exit 99"),
            );
        }
        host
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Install a fake `name` running the sh `body`; each call appends `name ARGS` to the log.
    pub fn fake(&self, name: &str, body: &str) {
        let path = self.path("bin").join(name);
        let log = self.path("log");
        let log = quote(log.to_str().expect("utf-8 temp path"));
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"{name} $*\" >> {log}\n{body}\n"),
        )
        .expect("fake command");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// The calls of the fake commands so far, one per line.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    pub async fn probe(&self, action: &dyn Action) -> Probed {
        let out = self
            .exec(Script {
                body: &action.probe(),
                stdin: &[],
                become_root: false,
            })
            .await
            .expect("probe");
        Probed {
            stdout: out.stdout_text(),
            status: out.status,
        }
    }

    /// Probe and converge one action, as the runner does.
    pub async fn run(
        &self,
        action: &dyn Action,
        apply: bool,
        restarts: &mut RestartBook,
        changed: &HashSet<Resource>,
    ) -> Result<Outcome, Failure> {
        let probed = self.probe(action).await;
        self.converge(action, &probed, apply, restarts, changed)
            .await
    }

    /// Converge one action on a given probe output.
    pub async fn converge(
        &self,
        action: &dyn Action,
        probed: &Probed,
        apply: bool,
        restarts: &mut RestartBook,
        changed: &HashSet<Resource>,
    ) -> Result<Outcome, Failure> {
        let host = HostInfo {
            name: "web1".into(),
            ..HostInfo::default()
        };
        let mut ctx = Ctx::new(apply, &host, self, false, restarts, changed);
        action.converge(probed, &mut ctx).await
    }
}

#[async_trait]
impl Transport for FakeHost {
    async fn exec(&self, script: Script<'_>) -> Result<ExecOutput, TransportError> {
        let bin = self.path("bin");
        let body = format!(
            "PATH={}:$PATH\n{}",
            quote(bin.to_str().expect("utf-8 temp path")),
            script.body
        );
        self.local
            .exec(Script {
                body: &body,
                stdin: script.stdin,
                become_root: false,
            })
            .await
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<Box<dyn Stream>, TransportError> {
        self.local.connect_tcp(host, port).await
    }

    fn login_is_root(&self) -> bool {
        true
    }

    async fn close(&self) {}
}
