//! The per-host DAG: explicit edges (requires, notify), implicit ones (resources),
//! list order as the tie-break, and cycles reported as the cycle they are.

use super::PlanNode;
use crate::error::{InputError, InputResult};
use crate::module::Resource;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeKind {
    Requires,
    Notify,
    /// Implicit: the source provides what the target needs.
    Needs(Resource),
}

impl EdgeKind {
    pub fn describe(&self) -> String {
        match self {
            EdgeKind::Requires => "requires".into(),
            EdgeKind::Notify => "notify".into(),
            EdgeKind::Needs(r) => match r {
                Resource::Dir(p) => format!("dir {p}"),
                Resource::Path(p) => format!("path {p}"),
                Resource::User(u) => format!("user {u}"),
                Resource::Group(g) => format!("group {g}"),
                Resource::Unit(u) => format!("unit {u}"),
                Resource::Package(p) => format!("package {p}"),
                Resource::Cert(c) => format!("certificate {c}"),
                Resource::AcmeChallenge(c) => format!("acme challenge for {c}"),
            },
        }
    }
}

pub struct Graph {
    pub graph: DiGraph<(), EdgeKind>,
}

impl Graph {
    pub fn new(nodes: &[PlanNode]) -> Graph {
        let mut graph = DiGraph::with_capacity(nodes.len(), nodes.len());
        for _ in nodes {
            graph.add_node(());
        }
        Graph { graph }
    }

    pub fn add_edge(&mut self, from: usize, to: usize, kind: EdgeKind) {
        if from != to
            && self
                .graph
                .find_edge(NodeIndex::new(from), NodeIndex::new(to))
                .is_none()
        {
            self.graph
                .add_edge(NodeIndex::new(from), NodeIndex::new(to), kind);
        }
    }

    /// Edges from what a node provides to what another needs.
    pub fn add_implicit_edges(&mut self, nodes: &[PlanNode]) {
        let resources: Vec<_> = nodes
            .iter()
            .map(|n| n.action().map(|a| a.resources()).unwrap_or_default())
            .collect();
        for (from, provider) in resources.iter().enumerate() {
            for provided in &provider.provides {
                for (to, consumer) in resources.iter().enumerate() {
                    if from == to {
                        continue;
                    }
                    // Two tasks providing the same thing keep their list order, not a cycle.
                    if consumer.provides.contains(provided) && from > to {
                        continue;
                    }
                    // The edge names what the source provides (`dir /opt/app`), not the
                    // path below it that the target needs.
                    if consumer.needs.iter().any(|n| provided.satisfies(n)) {
                        self.add_edge(from, to, EdgeKind::Needs(provided.clone()));
                    }
                }
            }
        }
    }

    /// Tasks whose completion `node` waits for.
    pub fn dependencies(&self, node: usize) -> impl Iterator<Item = (usize, &EdgeKind)> {
        self.graph
            .edges_directed(NodeIndex::new(node), Direction::Incoming)
            .map(|e| (petgraph::visit::EdgeRef::source(&e).index(), e.weight()))
    }

    /// Tasks that wait for `node`.
    pub fn dependents(&self, node: usize) -> impl Iterator<Item = (usize, &EdgeKind)> {
        self.graph
            .edges_directed(NodeIndex::new(node), Direction::Outgoing)
            .map(|e| (petgraph::visit::EdgeRef::target(&e).index(), e.weight()))
    }

    /// Topological order, list order breaking ties; a cycle is a located error.
    pub fn order(&self, nodes: &[PlanNode]) -> InputResult<Vec<usize>> {
        let mut indegree: Vec<usize> = (0..nodes.len())
            .map(|i| {
                self.graph
                    .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
                    .count()
            })
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> = indegree
            .iter()
            .enumerate()
            .filter(|(_, d)| **d == 0)
            .map(|(i, _)| Reverse(i))
            .collect();
        let mut order = Vec::with_capacity(nodes.len());
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for next in self
                .graph
                .neighbors_directed(NodeIndex::new(i), Direction::Outgoing)
            {
                indegree[next.index()] -= 1;
                if indegree[next.index()] == 0 {
                    ready.push(Reverse(next.index()));
                }
            }
        }
        if order.len() == nodes.len() {
            return Ok(order);
        }
        Err(self.cycle_error(nodes))
    }

    fn cycle_error(&self, nodes: &[PlanNode]) -> InputError {
        let cycle = petgraph::algo::tarjan_scc(&self.graph)
            .into_iter()
            .find(|scc| scc.len() > 1)
            .unwrap_or_default();
        // Walk the strongly connected component to spell the cycle in edge order.
        let mut path = Vec::new();
        if let Some(&start) = cycle.iter().min() {
            let mut at = start;
            loop {
                path.push(at);
                let next = self
                    .graph
                    .edges_directed(at, Direction::Outgoing)
                    .find(|e| cycle.contains(&petgraph::visit::EdgeRef::target(e)));
                match next {
                    Some(e) => {
                        at = petgraph::visit::EdgeRef::target(&e);
                        if at == start || path.contains(&at) {
                            path.push(at);
                            break;
                        }
                    }
                    None => break,
                }
            }
        }
        // A walk that closed on a node after the start: the cycle begins there.
        if let Some(&last) = path.last()
            && let Some(k) = path.iter().position(|&n| n == last)
        {
            path.drain(..k);
        }
        let name = |n: NodeIndex| format!("`{}`", nodes[n.index()].name);
        let chain: Vec<String> = path.iter().map(|&n| name(n)).collect();
        // `a -> b` alone does not say who depends on whom: spell out each edge.
        let reasons: Vec<String> = path
            .windows(2)
            .filter_map(|w| {
                let kind = &self.graph[self.graph.find_edge(w[0], w[1])?];
                let (from, to) = (name(w[0]), name(w[1]));
                Some(match kind {
                    EdgeKind::Requires => format!("{to} requires {from}"),
                    EdgeKind::Notify => format!("{from} notifies {to}"),
                    EdgeKind::Needs(_) => format!("{to} needs the {} of {from}", kind.describe()),
                })
            })
            .collect();
        let first = path.first().map_or(0, |n| n.index());
        nodes[first]
            .span
            .error(format!(
                "dependency cycle: {} ({})",
                chain.join(" -> "),
                reasons.join("; ")
            ))
            .label("this task is part of a cycle")
            .help("remove one of these requires/notify, or change the paths, owners or units that link them")
    }
}
