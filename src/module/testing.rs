//! Unit-test helpers: parse a module's parameters from YAML, run an action on this
//! machine (its real probe through /bin/sh, then converge over the local transport) —
//! only for actions whose effects stay inside a tempdir — or against a fake host that
//! answers scripts with canned outputs, to drive `converge` without touching a machine.

use super::{
    Action, Ctx, Failure, HostInfo, Module, Outcome, Params, Probed, Resource, RestartBook,
};
use crate::error::SourceFile;
use crate::playbook::node::{self, Node};
use crate::transport::{ExecOutput, LocalTransport, Script, Stream, Transport, TransportError};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
        let body = format!("(\n{}\n) 2>/dev/null </dev/null", action.probe());
        let out = self
            .transport
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

    /// Converge `action` against an already probed state.
    pub async fn converge_with(
        &self,
        action: &dyn Action,
        probed: &Probed,
        apply: bool,
    ) -> Result<Outcome, Failure> {
        let mut restarts = RestartBook::default();
        let mut ctx = Ctx::new(
            apply,
            &self.host,
            &self.transport,
            false,
            &mut restarts,
            &self.assumed,
        );
        action.converge(probed, &mut ctx).await
    }

    /// Probe, then converge.
    pub async fn run(&self, action: &dyn Action, apply: bool) -> Result<Outcome, Failure> {
        let probed = self.probe(action).await;
        self.converge_with(action, &probed, apply).await
    }
}

/// A task's parameters as written in YAML, for `Module::prepare`.
pub struct TestParams {
    module: &'static str,
    node: Node,
    vars: Value,
    dir: PathBuf,
}

impl TestParams {
    pub fn new(module: &'static str, yaml: &str) -> TestParams {
        let node = node::parse(&SourceFile::new("play.yml", yaml)).expect("test YAML parses");
        TestParams {
            module,
            node,
            vars: Value::Null,
            dir: PathBuf::from("."),
        }
    }

    pub fn vars(mut self, vars: Value) -> TestParams {
        self.vars = vars;
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> TestParams {
        self.dir = dir.into();
        self
    }

    pub fn params(&self) -> Params<'_> {
        Params {
            module: self.module,
            value: self.node.to_value(),
            node: &self.node,
            playbook_dir: &self.dir,
            vars: &self.vars,
        }
    }
}

type Responder = Box<dyn Fn(&str, &[u8]) -> ExecOutput + Send + Sync>;

/// A host that answers every script through `respond` and records what it was sent.
pub struct FakeHost {
    respond: Responder,
    pub scripts: Mutex<Vec<String>>,
}

impl std::fmt::Debug for FakeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeHost")
    }
}

impl FakeHost {
    pub fn new(respond: impl Fn(&str, &[u8]) -> ExecOutput + Send + Sync + 'static) -> FakeHost {
        FakeHost {
            respond: Box::new(respond),
            scripts: Mutex::new(Vec::new()),
        }
    }

    /// A host on which every script succeeds silently.
    pub fn ok() -> FakeHost {
        FakeHost::new(|_, _| ExecOutput::default())
    }

    pub fn sent(&self) -> Vec<String> {
        self.scripts.lock().expect("not poisoned").clone()
    }

    /// Whether any script sent contains `needle`.
    pub fn ran(&self, needle: &str) -> bool {
        self.sent().iter().any(|s| s.contains(needle))
    }
}

#[async_trait]
impl Transport for FakeHost {
    async fn exec(&self, script: Script<'_>) -> Result<ExecOutput, TransportError> {
        self.scripts
            .lock()
            .expect("not poisoned")
            .push(script.body.to_string());
        Ok((self.respond)(script.body, script.stdin))
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<Box<dyn Stream>, TransportError> {
        Err(TransportError::Io(format!(
            "no network in tests ({host}:{port})"
        )))
    }

    fn login_is_root(&self) -> bool {
        true
    }

    async fn close(&self) {}
}

/// An output with `stdout`, `stderr` and an exit status.
pub fn output(status: i32, stdout: &str, stderr: &str) -> ExecOutput {
    ExecOutput {
        status,
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

/// What a [`Ctx`] borrows, owned, for tests.
#[derive(Default)]
pub struct TestCtx {
    pub info: HostInfo,
    pub restarts: RestartBook,
    pub changed: HashSet<Resource>,
}

impl TestCtx {
    /// A context on host `web1`; `changed` lists the resources earlier tasks changed.
    pub fn new(changed: &[Resource]) -> TestCtx {
        TestCtx {
            info: HostInfo {
                name: "web1".into(),
                ..HostInfo::default()
            },
            restarts: RestartBook::default(),
            changed: changed.iter().cloned().collect(),
        }
    }

    pub fn ctx<'a>(&'a mut self, apply: bool, host: &'a dyn Transport) -> Ctx<'a> {
        Ctx::new(
            apply,
            &self.info,
            host,
            true,
            &mut self.restarts,
            &self.changed,
        )
    }
}

/// Converge `action` on `host` with `probe` as its probed state; `changed` lists the
/// resources earlier tasks changed.
pub async fn converge(
    action: &dyn Action,
    probe: &str,
    apply: bool,
    changed: &[Resource],
    host: &dyn Transport,
) -> (Result<Outcome, Failure>, RestartBook) {
    let mut t = TestCtx::new(changed);
    let probed = Probed {
        stdout: probe.to_string(),
        status: 0,
    };
    let result = action.converge(&probed, &mut t.ctx(apply, host)).await;
    (result, t.restarts)
}

/// The diffs of an outcome as the report shows them, for snapshots.
pub fn diff_text(outcome: &Outcome) -> String {
    outcome.diffs.iter().map(|d| d.unified("host")).collect()
}
