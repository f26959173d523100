//! Unit-test helpers: parse a module's parameters from YAML, and run an action on this
//! machine (its real probe through /bin/sh, then converge over the local transport).
//! Only for actions whose effects stay inside a tempdir.

use super::{
    Action, Ctx, Failure, HostInfo, Module, Outcome, Params, Probed, Resource, RestartBook,
};
use crate::error::SourceFile;
use crate::playbook::node;
use crate::transport::{LocalTransport, Script, Transport};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

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

/// The diffs of an outcome as the report shows them, for snapshots.
pub fn diff_text(outcome: &Outcome) -> String {
    outcome.diffs.iter().map(|d| d.unified("host")).collect()
}
