//! `converge graph`: each host's DAG as text or Graphviz DOT.

use super::{HostPlan, NodeState};
use crate::report::redact;
use std::fmt::Write;

/// A node's name as shown: secret values hidden, like everywhere else.
fn name(plan: &HostPlan, i: usize) -> String {
    redact(&plan.nodes[i].name, &plan.secrets)
}

fn marker(plan: &HostPlan, i: usize) -> &'static str {
    let node = &plan.nodes[i];
    if matches!(node.state, NodeState::Unresolved) {
        " [unresolved: needs facts]"
    } else if matches!(node.state, NodeState::Skipped(_)) {
        " [skipped: when]"
    } else if node.is_handler {
        " [handler]"
    } else {
        ""
    }
}

/// Nodes in run order, each with what it waits for.
pub fn render_text(play: &str, plan: &HostPlan) -> String {
    let mut out = format!("{} / {}\n", plan.host, play);
    for (position, &i) in plan.order.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:>2}. {}{}",
            position + 1,
            name(plan, i),
            marker(plan, i)
        );
        for (dep, kind) in plan.graph.dependencies(i) {
            let _ = writeln!(
                out,
                "        after {} ({})",
                name(plan, dep),
                kind.describe()
            );
        }
    }
    out
}

pub fn render_dot(play: &str, plan: &HostPlan) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = format!(
        "digraph {} {{\n  rankdir=TB;\n",
        quote(&format!("{} / {play}", plan.host))
    );
    for (i, node) in plan.nodes.iter().enumerate() {
        let label = format!("{}{}", name(plan, i), marker(plan, i));
        let style = if node.action().is_none() {
            ", style=dashed"
        } else if node.is_handler {
            ", shape=box"
        } else {
            ""
        };
        let _ = writeln!(out, "  n{i} [label={}{style}];", quote(&label));
    }
    for &i in &plan.order {
        for (dep, kind) in plan.graph.dependencies(i) {
            let _ = writeln!(out, "  n{dep} -> n{i} [label={}];", quote(&kind.describe()));
        }
    }
    out.push_str("}\n");
    out
}
