//! Unit-test helpers: parse a module's parameters from YAML, and run an action on this
//! machine (its real probe through /bin/sh, then converge over the local transport).
//! Only for actions whose effects stay inside a tempdir — or, with [`FakeHost`], whose
//! system commands (systemctl, apt-get, dpkg-query, ...) are replaced by fakes.

use super::{
    Action, Ctx, Failure, HostInfo, Module, Outcome, Params, Probed, Resource, RestartBook,
};
use crate::error::SourceFile;
use crate::playbook::node;
use crate::transport::{
    ExecOutput, LocalTransport, Script, Stream, Transport, TransportError, quote,
};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Prepare a module's actions from parameters written as YAML, as the engine would;
/// a refusal is its message.
pub fn prepare(
    module: &dyn Module,
    yaml: &str,
    playbook_dir: &Path,
    vars: &Value,
) -> Result<Vec<Box<dyn Action>>, String> {
    let node = node::parse(&SourceFile::new("play.yml", yaml)).expect("test YAML parses");
    let params = Params {
        module: module.name(),
        value: node.to_value(),
        node: &node,
        playbook_dir,
        vars,
        play_modules: &[],
    };
    module.prepare(&params).map_err(|e| e.message)
}

/// Like [`prepare`] for a module that yields exactly one action.
pub fn one(module: &dyn Module, yaml: &str) -> Box<dyn Action> {
    let mut actions =
        prepare(module, yaml, Path::new("."), &Value::Null).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(actions.len(), 1);
    actions.remove(0)
}

/// Parameters written as YAML, deserialized as `Params::parse` does (to reach the
/// parts of an action that `prepare` hides behind `dyn Action`).
pub fn parsed<T: serde::de::DeserializeOwned>(module: &dyn Module, yaml: &str) -> T {
    let node = node::parse(&SourceFile::new("play.yml", yaml)).expect("test YAML parses");
    let params = Params {
        module: module.name(),
        value: node.to_value(),
        node: &node,
        playbook_dir: Path::new("."),
        vars: &Value::Null,
        play_modules: &[],
    };
    params.parse().unwrap_or_else(|e| panic!("{}", e.message))
}

/// The error message of parameters that must be refused.
pub fn refused(module: &dyn Module, yaml: &str) -> String {
    match prepare(module, yaml, Path::new("."), &Value::Null) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(message) => message,
    }
}

/// The action's probe run over `transport`, wrapped as the runner's batch wraps each one.
async fn probe_on(transport: &dyn Transport, action: &dyn Action) -> Probed {
    let body = format!("(\n{}\n) 2>/dev/null </dev/null", action.probe());
    let out = transport
        .exec(Script {
            body: &body,
            stdin: &[],
            become_root: false,
        })
        .await
        .expect("local probe runs");
    Probed {
        stdout: out.stdout_text(),
        status: out.status,
    }
}

/// Converge `action` over `transport` as the runner does.
async fn converge_on(
    transport: &dyn Transport,
    host: &HostInfo,
    action: &dyn Action,
    probed: &Probed,
    apply: bool,
    restarts: &mut RestartBook,
    assumed: &HashSet<Resource>,
) -> Result<Outcome, Failure> {
    let mut ctx = Ctx::new(apply, host, transport, false, restarts, assumed);
    action.converge(probed, &mut ctx).await
}

/// A host for tests: this machine, with optional secrets and assumed resources.
#[derive(Default)]
pub struct Local {
    pub host: HostInfo,
    pub assumed: HashSet<Resource>,
    transport: LocalTransport,
}

impl Local {
    /// The action's probe, wrapped as the runner's batch wraps each one.
    pub async fn probe(&self, action: &dyn Action) -> Probed {
        probe_on(&self.transport, action).await
    }

    /// Converge `action` against an already probed state.
    pub async fn converge_with(
        &self,
        action: &dyn Action,
        probed: &Probed,
        apply: bool,
    ) -> Result<Outcome, Failure> {
        let mut restarts = RestartBook::default();
        converge_on(
            &self.transport,
            &self.host,
            action,
            probed,
            apply,
            &mut restarts,
            &self.assumed,
        )
        .await
    }

    /// Probe, then converge.
    pub async fn run(&self, action: &dyn Action, apply: bool) -> Result<Outcome, Failure> {
        let probed = self.probe(action).await;
        self.converge_with(action, &probed, apply).await
    }
}

/// The diffs of an outcome as the report shows them, for snapshots.
pub fn diff_text(outcome: &Outcome) -> String {
    outcome.diffs.iter().map(|d| d.unified("host")).collect()
}

/// Commands that change a system: always shadowed by a fake in a [`FakeHost`].
const GUARDED: &[&str] = &[
    "systemctl",
    "apt-get",
    "apt-cache",
    "dpkg-query",
    "dpkg",
    "journalctl",
    "sudo",
];

/// This machine with fake commands first on PATH (in a temp dir that also serves as
/// the test's scratch space), every fake call logged. Lets the real probes and scripts
/// of system modules run without touching the system.
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

    /// Probe and converge one action, as the runner does, with the run's restart book
    /// and the resources earlier tasks changed.
    pub async fn run(
        &self,
        action: &dyn Action,
        apply: bool,
        restarts: &mut RestartBook,
        changed: &HashSet<Resource>,
    ) -> Result<Outcome, Failure> {
        let probed = probe_on(self, action).await;
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
            name: "host".into(),
            ..HostInfo::default()
        };
        converge_on(self, &host, action, probed, apply, restarts, changed).await
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
