//! The application DAG: tiers of sharded, replicated microservices, their nodes and the edges
//! between them, built and checked by [`DagBuilder`].

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::kind::ServiceKind;

/// Index of a node in [`Dag::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The index as a `usize`, for slices.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Index of a tier in [`Dag::tiers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TierId(pub u16);

impl TierId {
    /// The index as a `usize`, for slices.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// One microservice of the application, deployed as `shards` primaries, each with `backups`
/// replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    /// Name, unique in the application.
    pub name: String,
    /// What the microservice does.
    pub kind: ServiceKind,
    /// Number of shards (primaries); at least one.
    pub shards: u16,
    /// Backup replicas per shard.
    pub backups: u8,
}

/// Whether a node serves requests or stands by for one that does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Serves the shard's requests.
    Primary,
    /// Holds a copy of `primary`'s state and takes over when it fails; never shares a fault
    /// domain with it.
    Backup {
        /// The primary this node replicates.
        primary: NodeId,
        /// Which of the shard's backups (0-based).
        index: u8,
    },
}

/// One deployable instance: a shard's primary or one of its backups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// What the node runs (its tier's kind).
    pub kind: ServiceKind,
    /// The tier it belongs to.
    pub tier: TierId,
    /// Which shard of the tier (0-based).
    pub shard: u16,
    /// Primary or backup.
    pub role: Role,
}

/// What travels over an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeKind {
    /// Requests, in the direction of the RPC.
    Call,
    /// State updates from a primary to one of its backups.
    Replicate,
}

/// A directed edge between two nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Edge {
    /// Upstream node.
    pub from: NodeId,
    /// Downstream node.
    pub to: NodeId,
    /// Calls or replication.
    pub kind: EdgeKind,
}

/// How the shards of one tier are wired to the shards of the tier it calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wiring {
    /// Every upstream shard calls every downstream shard.
    All,
    /// Upstream shard `i` of `m` calls `k` consecutive downstream shards of `n`, starting at
    /// `i * n / m` and wrapping around, so every downstream shard is called by about `k * m / n`
    /// upstream shards.
    Spread(u16),
}

/// Why a DAG was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DagError {
    /// Two tiers have the same name.
    DuplicateTier(String),
    /// A tier has no shards.
    NoShards(String),
    /// A tier id does not name a tier of this builder.
    UnknownTier(TierId),
    /// A tier calls itself.
    SelfLoop(String),
    /// The same pair of tiers is connected twice.
    DuplicateEdge {
        /// Upstream tier.
        from: String,
        /// Downstream tier.
        to: String,
    },
    /// A spread of zero, or wider than the downstream tier has shards.
    BadSpread {
        /// Upstream tier.
        from: String,
        /// Downstream tier.
        to: String,
        /// The spread asked for.
        spread: u16,
        /// Shards of the downstream tier.
        shards: u16,
    },
    /// The tier edges form a cycle; the tiers on it, in call order.
    Cycle(Vec<String>),
    /// More nodes than [`MAX_NODES`] or more edges than [`MAX_EDGES`].
    TooManyNodes,
}

/// The most nodes a DAG may have.
pub const MAX_NODES: usize = 1 << 20;
/// The most edges a DAG may have.
pub const MAX_EDGES: usize = 1 << 24;

impl fmt::Display for DagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DagError::DuplicateTier(name) => write!(f, "tier `{name}` is defined twice"),
            DagError::NoShards(name) => write!(f, "tier `{name}` has no shards"),
            DagError::UnknownTier(id) => write!(f, "tier #{} does not exist", id.0),
            DagError::SelfLoop(name) => write!(f, "tier `{name}` calls itself"),
            DagError::DuplicateEdge { from, to } => {
                write!(f, "tier `{from}` is connected to `{to}` twice")
            }
            DagError::BadSpread {
                from,
                to,
                spread,
                shards,
            } => write!(
                f,
                "spread {spread} from `{from}` to `{to}` must be between 1 and the {shards} shards of `{to}`"
            ),
            DagError::Cycle(tiers) => {
                f.write_str("the calls form a cycle: ")?;
                for name in tiers {
                    write!(f, "{name} -> ")?;
                }
                f.write_str(tiers.first().map(String::as_str).unwrap_or(""))
            }
            DagError::TooManyNodes => write!(
                f,
                "the application has more than {MAX_NODES} nodes or {MAX_EDGES} edges"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DagError {}

/// A connection between two tiers, as given to the builder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TierEdge {
    from: TierId,
    to: TierId,
    wiring: Wiring,
}

/// Collects tiers and tier connections, then expands them into a checked [`Dag`].
#[derive(Clone, Debug, Default)]
pub struct DagBuilder {
    name: String,
    tiers: Vec<Tier>,
    edges: Vec<TierEdge>,
}

impl DagBuilder {
    /// A builder for the application `name`.
    pub fn new(name: impl Into<String>) -> Self {
        DagBuilder {
            name: name.into(),
            tiers: Vec::new(),
            edges: Vec::new(),
        }
    }

    /// Adds a tier of `shards` primaries with `backups` replicas each.
    pub fn tier(
        &mut self,
        name: impl Into<String>,
        kind: ServiceKind,
        shards: u16,
        backups: u8,
    ) -> Result<TierId, DagError> {
        let name = name.into();
        if self.tiers.iter().any(|t| t.name == name) {
            return Err(DagError::DuplicateTier(name));
        }
        if shards == 0 {
            return Err(DagError::NoShards(name));
        }
        let id = u16::try_from(self.tiers.len()).map_err(|_| DagError::TooManyNodes)?;
        self.tiers.push(Tier {
            name,
            kind,
            shards,
            backups,
        });
        Ok(TierId(id))
    }

    /// The tier called `name`, if one was added.
    pub fn tier_named(&self, name: &str) -> Option<TierId> {
        self.tiers
            .iter()
            .position(|t| t.name == name)
            .map(|i| TierId(i as u16))
    }

    /// Makes the shards of `from` call the shards of `to`, wired as `wiring` says.
    pub fn connect(&mut self, from: TierId, to: TierId, wiring: Wiring) -> Result<(), DagError> {
        let upstream = self.get(from)?;
        let downstream = self.get(to)?;
        if from == to {
            return Err(DagError::SelfLoop(upstream.name.clone()));
        }
        if self.edges.iter().any(|e| e.from == from && e.to == to) {
            return Err(DagError::DuplicateEdge {
                from: upstream.name.clone(),
                to: downstream.name.clone(),
            });
        }
        if let Wiring::Spread(spread) = wiring {
            if spread == 0 || spread > downstream.shards {
                return Err(DagError::BadSpread {
                    from: upstream.name.clone(),
                    to: downstream.name.clone(),
                    spread,
                    shards: downstream.shards,
                });
            }
        }
        self.edges.push(TierEdge { from, to, wiring });
        Ok(())
    }

    fn get(&self, id: TierId) -> Result<&Tier, DagError> {
        self.tiers.get(id.index()).ok_or(DagError::UnknownTier(id))
    }

    /// Checks that the tiers form a DAG and expands them into nodes and edges.
    pub fn build(self) -> Result<Dag, DagError> {
        let tier_order = self.tier_order()?;
        let total: usize = self
            .tiers
            .iter()
            .map(|t| usize::from(t.shards) * (1 + usize::from(t.backups)))
            .sum();
        let edge_count: usize = self
            .edges
            .iter()
            .map(|e| {
                let m = usize::from(self.tiers[e.from.index()].shards);
                match e.wiring {
                    Wiring::All => m * usize::from(self.tiers[e.to.index()].shards),
                    Wiring::Spread(k) => m * usize::from(k),
                }
            })
            .sum::<usize>()
            + (total
                - self
                    .tiers
                    .iter()
                    .map(|t| usize::from(t.shards))
                    .sum::<usize>());
        if total > MAX_NODES || edge_count > MAX_EDGES {
            return Err(DagError::TooManyNodes);
        }
        // Nodes tier by tier: the primaries in shard order, then each round of backups.
        let mut nodes = Vec::with_capacity(total);
        let mut first_primary = Vec::with_capacity(self.tiers.len());
        let mut edges = Vec::new();
        for (t, tier) in self.tiers.iter().enumerate() {
            let tier_id = TierId(t as u16);
            let base = nodes.len() as u32;
            first_primary.push(base);
            for shard in 0..tier.shards {
                nodes.push(Node {
                    kind: tier.kind,
                    tier: tier_id,
                    shard,
                    role: Role::Primary,
                });
            }
            for index in 0..tier.backups {
                for shard in 0..tier.shards {
                    let primary = NodeId(base + u32::from(shard));
                    edges.push(Edge {
                        from: primary,
                        to: NodeId(nodes.len() as u32),
                        kind: EdgeKind::Replicate,
                    });
                    nodes.push(Node {
                        kind: tier.kind,
                        tier: tier_id,
                        shard,
                        role: Role::Backup { primary, index },
                    });
                }
            }
        }
        for edge in &self.edges {
            let m = u32::from(self.tiers[edge.from.index()].shards);
            let n = u32::from(self.tiers[edge.to.index()].shards);
            let from_base = first_primary[edge.from.index()];
            let to_base = first_primary[edge.to.index()];
            for i in 0..m {
                let from = NodeId(from_base + i);
                match edge.wiring {
                    Wiring::All => edges.extend((0..n).map(|j| Edge {
                        from,
                        to: NodeId(to_base + j),
                        kind: EdgeKind::Call,
                    })),
                    Wiring::Spread(k) => {
                        let start = i * n / m;
                        edges.extend((0..u32::from(k)).map(|j| Edge {
                            from,
                            to: NodeId(to_base + (start + j) % n),
                            kind: EdgeKind::Call,
                        }))
                    }
                }
            }
        }
        Ok(Dag::assemble(
            self.name, self.tiers, nodes, edges, tier_order,
        ))
    }

    /// Tiers in an order where every tier comes after the tiers that call it (Kahn's
    /// algorithm), or the cycle that prevents one.
    fn tier_order(&self) -> Result<Vec<TierId>, DagError> {
        let count = self.tiers.len();
        let mut indegree = vec![0usize; count];
        for edge in &self.edges {
            indegree[edge.to.index()] += 1;
        }
        let mut ready: Vec<usize> = (0..count).filter(|&t| indegree[t] == 0).collect();
        ready.reverse();
        let mut order = Vec::with_capacity(count);
        while let Some(t) = ready.pop() {
            order.push(TierId(t as u16));
            for edge in self.edges.iter().filter(|e| e.from.index() == t) {
                let to = edge.to.index();
                indegree[to] -= 1;
                if indegree[to] == 0 {
                    ready.push(to);
                }
            }
        }
        if order.len() == count {
            return Ok(order);
        }
        Err(DagError::Cycle(self.find_cycle(&indegree)))
    }

    /// A cycle among the tiers Kahn's algorithm could not order (those left with a
    /// positive in-degree): walk backwards along edges between them until a tier repeats.
    fn find_cycle(&self, indegree: &[usize]) -> Vec<String> {
        let stuck = |t: usize| indegree[t] > 0;
        let Some(start) = (0..self.tiers.len()).find(|&t| stuck(t)) else {
            return Vec::new();
        };
        let mut path = vec![start];
        let mut current = start;
        loop {
            let Some(previous) = self
                .edges
                .iter()
                .find(|e| e.to.index() == current && stuck(e.from.index()))
                .map(|e| e.from.index())
            else {
                return Vec::new();
            };
            if let Some(at) = path.iter().position(|&t| t == previous) {
                let mut cycle: Vec<String> = path[at..]
                    .iter()
                    .rev()
                    .map(|&t| self.tiers[t].name.clone())
                    .collect();
                cycle.rotate_right(1);
                return cycle;
            }
            path.push(previous);
            current = previous;
        }
    }
}

/// A checked application DAG: tiers, their nodes, and the edges between nodes, with adjacency
/// lists for walking it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dag {
    name: String,
    tiers: Vec<Tier>,
    nodes: Vec<Node>,
    /// Edges sorted by source node, then kind, then target node.
    edges: Vec<Edge>,
    /// `edges[out_start[v]..out_start[v + 1]]` leave node `v`.
    out_start: Vec<u32>,
    /// Number of edges entering each node.
    in_degree: Vec<u32>,
    /// Tiers in topological order.
    tier_order: Vec<TierId>,
}

impl Dag {
    fn assemble(
        name: String,
        tiers: Vec<Tier>,
        nodes: Vec<Node>,
        mut edges: Vec<Edge>,
        tier_order: Vec<TierId>,
    ) -> Dag {
        edges.sort_by_key(|e| (e.from, e.kind, e.to));
        edges.dedup();
        let mut out_start = vec![0u32; nodes.len() + 1];
        let mut in_degree = vec![0u32; nodes.len()];
        for edge in &edges {
            out_start[edge.from.index() + 1] += 1;
            in_degree[edge.to.index()] += 1;
        }
        for v in 0..nodes.len() {
            out_start[v + 1] += out_start[v];
        }
        Dag {
            name,
            tiers,
            nodes,
            edges,
            out_start,
            in_degree,
            tier_order,
        }
    }

    /// The application's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tiers, indexed by [`TierId`].
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// One tier.
    pub fn tier(&self, id: TierId) -> &Tier {
        &self.tiers[id.index()]
    }

    /// Every node, indexed by [`NodeId`].
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// Number of nodes (Table 3's N).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the DAG has no nodes (never true for a built DAG).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Ids of every node, in order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    /// Every edge, sorted by source node.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The edges leaving `node`: its calls (grouped by downstream tier), then its replication
    /// edges.
    pub fn out_edges(&self, node: NodeId) -> &[Edge] {
        let start = self.out_start[node.index()] as usize;
        let end = self.out_start[node.index() + 1] as usize;
        &self.edges[start..end]
    }

    /// The direct descendants of `node` (over calls and replication), in edge order.
    pub fn successors(&self, node: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.out_edges(node).iter().map(|e| e.to)
    }

    /// The calls leaving `node`, one slice per downstream tier: a request handled by `node`
    /// goes on to every such tier, to one of the nodes of its slice (chosen by the request's
    /// key).
    pub fn call_groups(&self, node: NodeId) -> CallGroups<'_> {
        let edges = self.out_edges(node);
        let calls = edges
            .iter()
            .position(|e| e.kind != EdgeKind::Call)
            .unwrap_or(edges.len());
        CallGroups {
            dag: self,
            rest: &edges[..calls],
        }
    }

    /// Number of edges entering `node`.
    pub fn in_degree(&self, node: NodeId) -> usize {
        self.in_degree[node.index()] as usize
    }

    /// The nodes no edge enters: where the application's requests arrive.
    pub fn sources(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.node_ids().filter(|&v| self.in_degree(v) == 0)
    }

    /// Tiers in topological order (every tier after the tiers that call it).
    pub fn tier_order(&self) -> &[TierId] {
        &self.tier_order
    }

    /// The first node of `tier` (its shard 0 primary); the tier's primaries follow it.
    pub fn first_node(&self, tier: TierId) -> NodeId {
        let before: usize = self.tiers[..tier.index()]
            .iter()
            .map(|t| usize::from(t.shards) * (1 + usize::from(t.backups)))
            .sum();
        NodeId(before as u32)
    }

    /// Nodes in topological order: tiers in [`Dag::tier_order`], each tier's nodes in id order.
    pub fn topological_order(&self) -> Vec<NodeId> {
        let mut order = Vec::with_capacity(self.nodes.len());
        for &tier in &self.tier_order {
            let first = self.first_node(tier).0;
            let t = &self.tiers[tier.index()];
            let count = u32::from(t.shards) * (1 + u32::from(t.backups));
            order.extend((first..first + count).map(NodeId));
        }
        order
    }

    /// Fan-out statistics over the nodes that call at least one other node.
    pub fn fan_out(&self) -> FanOut {
        let mut callers = 0usize;
        let mut calls = 0usize;
        let mut max = 0usize;
        for v in self.node_ids() {
            let out = self
                .out_edges(v)
                .iter()
                .filter(|e| e.kind == EdgeKind::Call)
                .count();
            if out > 0 {
                callers += 1;
                calls += out;
                max = max.max(out);
            }
        }
        FanOut {
            callers,
            calls,
            max,
        }
    }
}

/// Iterator over a node's calls grouped by downstream tier; see [`Dag::call_groups`].
#[derive(Clone, Debug)]
pub struct CallGroups<'a> {
    dag: &'a Dag,
    rest: &'a [Edge],
}

impl<'a> Iterator for CallGroups<'a> {
    type Item = (TierId, &'a [Edge]);

    fn next(&mut self) -> Option<Self::Item> {
        let first = self.rest.first()?;
        let tier = self.dag.node(first.to).tier;
        let len = self
            .rest
            .iter()
            .position(|e| self.dag.node(e.to).tier != tier)
            .unwrap_or(self.rest.len());
        let (group, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some((tier, group))
    }
}

/// How many calls leave the nodes of a DAG.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FanOut {
    /// Nodes that call at least one node.
    pub callers: usize,
    /// Call edges in all.
    pub calls: usize,
    /// The most calls leaving one node.
    pub max: usize,
}

impl FanOut {
    /// Mean calls per calling node.
    pub fn mean(&self) -> f64 {
        if self.callers == 0 {
            0.0
        } else {
            self.calls as f64 / self.callers as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn chain() -> DagBuilder {
        let mut b = DagBuilder::new("chain");
        let a = b.tier("a", ServiceKind::Nat, 2, 0).unwrap();
        let c = b.tier("c", ServiceKind::Count, 4, 1).unwrap();
        b.connect(a, c, Wiring::Spread(2)).unwrap();
        b
    }

    #[test]
    fn expands_tiers_into_nodes_and_edges() {
        let dag = chain().build().unwrap();
        // 2 primaries of a, 4 primaries and 4 backups of c.
        assert_eq!(dag.len(), 10);
        assert_eq!(dag.sources().collect::<Vec<_>>(), [NodeId(0), NodeId(1)]);
        // a0 calls c0, c1; a1 calls c2, c3.
        let calls: Vec<_> = dag.successors(NodeId(0)).collect();
        assert_eq!(calls, [NodeId(2), NodeId(3)]);
        let calls: Vec<_> = dag.successors(NodeId(1)).collect();
        assert_eq!(calls, [NodeId(4), NodeId(5)]);
        // c1 replicates to its backup, node 7.
        assert_eq!(
            dag.out_edges(NodeId(3)),
            [Edge {
                from: NodeId(3),
                to: NodeId(7),
                kind: EdgeKind::Replicate
            }]
        );
        assert_eq!(
            dag.node(NodeId(7)).role,
            Role::Backup {
                primary: NodeId(3),
                index: 0
            }
        );
        assert_eq!(dag.call_groups(NodeId(3)).count(), 0);
        let groups: Vec<_> = dag.call_groups(NodeId(0)).collect();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].0, TierId(1));
        assert_eq!(groups[0].1.len(), 2);
    }

    #[test]
    fn spread_wraps_and_balances() {
        let mut b = DagBuilder::new("wrap");
        let a = b.tier("a", ServiceKind::Nat, 3, 0).unwrap();
        let c = b.tier("c", ServiceKind::Count, 3, 0).unwrap();
        b.connect(a, c, Wiring::Spread(2)).unwrap();
        let dag = b.build().unwrap();
        let last: Vec<_> = dag.successors(NodeId(2)).collect();
        assert_eq!(last, [NodeId(3), NodeId(5)]);
        for v in 3..6 {
            assert_eq!(dag.in_degree(NodeId(v)), 2);
        }
    }

    #[test]
    fn topological_order_follows_calls() {
        let mut b = DagBuilder::new("diamond");
        let d = b.tier("d", ServiceKind::Sql, 1, 0).unwrap();
        let a = b.tier("a", ServiceKind::Nat, 1, 0).unwrap();
        let c = b.tier("c", ServiceKind::Count, 1, 0).unwrap();
        b.connect(a, c, Wiring::All).unwrap();
        b.connect(c, d, Wiring::All).unwrap();
        b.connect(a, d, Wiring::All).unwrap();
        let dag = b.build().unwrap();
        assert_eq!(dag.tier_order(), [a, c, d]);
        let order = dag.topological_order();
        let position = |v: NodeId| order.iter().position(|&x| x == v).unwrap();
        for e in dag.edges() {
            assert!(position(e.from) < position(e.to));
        }
        let groups: Vec<_> = dag.call_groups(dag.first_node(a)).collect();
        assert_eq!(groups.len(), 2);
    }

    #[test]
    fn refuses_cycles_and_names_them() {
        let mut b = DagBuilder::new("loop");
        let x = b.tier("x", ServiceKind::Nat, 1, 0).unwrap();
        let y = b.tier("y", ServiceKind::Nat, 1, 0).unwrap();
        let z = b.tier("z", ServiceKind::Nat, 1, 0).unwrap();
        b.connect(x, y, Wiring::All).unwrap();
        b.connect(y, z, Wiring::All).unwrap();
        b.connect(z, x, Wiring::All).unwrap();
        let error = b.build().unwrap_err();
        assert_eq!(
            error.to_string(),
            "the calls form a cycle: x -> y -> z -> x"
        );
    }

    #[test]
    fn refuses_oversized_dags() {
        let mut b = DagBuilder::new("huge");
        let a = b.tier("a", ServiceKind::Nat, u16::MAX, 0).unwrap();
        let c = b.tier("c", ServiceKind::Nat, u16::MAX, 0).unwrap();
        b.connect(a, c, Wiring::All).unwrap();
        assert_eq!(b.build(), Err(DagError::TooManyNodes));
        let mut b = DagBuilder::new("tall");
        b.tier("a", ServiceKind::Nat, u16::MAX, 255).unwrap();
        assert_eq!(b.build(), Err(DagError::TooManyNodes));
    }

    #[test]
    fn refuses_bad_tiers_and_edges() {
        let mut b = chain();
        assert_eq!(
            b.tier("a", ServiceKind::Nat, 1, 0),
            Err(DagError::DuplicateTier("a".into()))
        );
        assert_eq!(
            b.tier("z", ServiceKind::Nat, 0, 0),
            Err(DagError::NoShards("z".into()))
        );
        assert_eq!(
            b.connect(TierId(0), TierId(0), Wiring::All),
            Err(DagError::SelfLoop("a".into()))
        );
        assert!(matches!(
            b.connect(TierId(0), TierId(1), Wiring::All),
            Err(DagError::DuplicateEdge { .. })
        ));
        assert!(matches!(
            b.connect(TierId(1), TierId(0), Wiring::Spread(3)),
            Err(DagError::BadSpread { shards: 2, .. })
        ));
        assert_eq!(
            b.connect(TierId(0), TierId(9), Wiring::All),
            Err(DagError::UnknownTier(TierId(9)))
        );
    }
}
