//! One host's plan: the play's tasks expanded (loops, `when`, templates) into actions,
//! ordered by a DAG of explicit and implicit edges.

mod dag;
mod expand;
mod magic;
mod render;

pub use dag::{EdgeKind, Graph};
pub use expand::{Expansion, HostVars, Selection, build};
pub use magic::play_magic;
pub use render::{render_dot, render_text};

use crate::error::Span;
use crate::module::Action;
use serde_json::Value;

/// One action of one task (item) on one host.
pub struct PlanNode {
    /// The name shown to the user: `NAME [ITEM]`, `NAME (PHASE)`.
    pub name: String,
    /// The task this node belongs to (index into the play's tasks, then handlers).
    pub task: usize,
    pub module: &'static str,
    pub item: Option<Value>,
    pub state: NodeState,
    pub is_handler: bool,
    /// Who the task's commands and probe run as on the host.
    pub run_as: crate::transport::RunAs,
    pub no_log: bool,
    pub never_changed: bool,
    /// The task's `timeout:` for each command it runs; None: the transport's default.
    pub timeout: Option<std::time::Duration>,
    pub span: Span,
}

/// Whether a node runs, known before connecting.
pub enum NodeState {
    /// What to do on the host.
    Runs(Box<dyn Action>),
    /// Why it will not run (`when:` is false).
    Skipped(String),
    /// Not resolvable without facts (graph and validate only).
    Unresolved,
}

impl PlanNode {
    /// The action, when the node runs.
    pub fn action(&self) -> Option<&dyn Action> {
        match &self.state {
            NodeState::Runs(action) => Some(action.as_ref()),
            NodeState::Skipped(_) | NodeState::Unresolved => None,
        }
    }
}

pub struct HostPlan {
    pub host: String,
    pub nodes: Vec<PlanNode>,
    pub graph: Graph,
    /// Node indices in the order they run.
    pub order: Vec<usize>,
    /// Every form the play's secrets took while this plan was made (values, fields,
    /// what templates rendered from them), redacted from all output.
    pub secrets: Vec<String>,
    /// The host's variables (for connection settings).
    pub vars: Value,
}
