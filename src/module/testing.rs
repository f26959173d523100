//! Helpers for module unit tests: parameters from YAML, and a host that answers scripts
//! with canned outputs and remembers them, to drive `converge` without touching a machine.

use super::{Action, Ctx, Failure, HostInfo, Outcome, Params, Probed, Resource, RestartBook};
use crate::error::SourceFile;
use crate::playbook::node::{self, Node};
use crate::transport::{ExecOutput, Script, Stream, Transport, TransportError};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;

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

/// Run a probe snippet with the local `/bin/sh`, as the engine would on a host.
pub fn probe_locally(snippet: &str) -> String {
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(snippet)
        .output()
        .expect("/bin/sh runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The diffs of an outcome as the user sees them.
pub fn diff_text(outcome: &Outcome) -> String {
    outcome.diffs.iter().map(|d| d.unified("web1")).collect()
}
