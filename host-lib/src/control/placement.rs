//! What every placement algorithm returns, the trait they implement, and the one place where
//! an instance is recorded on a node, with its messages priced by where their other ends are,
//! and its violations (overcommitted resources or links, a broken pin, a replica sharing its
//! primary's fault domain) are noted.

use std::fmt;

use microservices::apps::NodeId;

use super::charges::{placement_changes, release_sites, ChangeSet, Target};
use super::ilp::cbc::SolverError;
use super::ledger::Ledger;
use super::profile::Pin;
use super::topology::{ComputeId, Topology};
use super::workload::{Resource, Workload};

/// One rule a placed instance breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Breach {
    /// The node had not enough of this resource left.
    Resource(Resource),
    /// Another computing node had not enough of this resource left for the instance's
    /// messages (a peer's node, or a SmartNIC relaying for a host).
    Remote(ComputeId, Resource),
    /// An uplink had not enough bandwidth left for the instance's messages.
    Uplink(u32),
    /// The node is of a kind the instance is pinned away from.
    Pin(Pin),
    /// A member of the instance's replica group is on the same server.
    FaultDomain(NodeId),
}

impl Breach {
    /// The breach of an instance placed on `n` whose booking overcommits `resource` of
    /// `target`.
    pub fn of_shortfall(n: ComputeId, (target, resource): (Target, Resource)) -> Breach {
        match target {
            Target::Node(m) if m == n => Breach::Resource(resource),
            Target::Node(m) => Breach::Remote(m, resource),
            Target::Uplink(u) => Breach::Uplink(u),
        }
    }
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breach::Resource(resource) => write!(f, "not enough {resource}"),
            Breach::Remote(node, resource) => {
                write!(f, "not enough {resource} on computing node {}", node.0)
            }
            Breach::Uplink(u) => write!(f, "not enough bandwidth on uplink {u}"),
            Breach::Pin(pin) => write!(f, "pinned to {pin} nodes"),
            Breach::FaultDomain(peer) => write!(f, "shares a server with replica {}", peer.0),
        }
    }
}

/// An instance placed where it breaks a rule (because nothing better was found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The DAG node.
    pub node: NodeId,
    /// Where it went.
    pub on: ComputeId,
    /// What it breaks.
    pub breaches: Vec<Breach>,
}

/// Where every node of an application went.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The algorithm that produced it.
    pub algorithm: &'static str,
    /// The computing node of each DAG node, indexed by [`NodeId`].
    pub nodes: Vec<ComputeId>,
    /// Instances placed in breach of a rule.
    pub violations: Vec<Violation>,
    /// Set when the algorithm stopped before it finished (a time limit) and why.
    pub stopped_early: Option<String>,
}

impl Placement {
    /// The computing node of `v`.
    pub fn node_of(&self, v: NodeId) -> ComputeId {
        self.nodes[v.index()]
    }
}

/// Why an algorithm could not place at all.
#[derive(Clone, Debug, PartialEq)]
pub enum PlaceError {
    /// The topology has no computing node.
    EmptyTopology,
    /// The ledger belongs to a topology of another size.
    LedgerMismatch {
        /// Nodes in the topology.
        topology: usize,
        /// Nodes in the ledger.
        ledger: usize,
    },
    /// The MILP solver (CBC) could not be run, or found no solution can exist.
    Solver(SolverError),
}

impl fmt::Display for PlaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceError::EmptyTopology => f.write_str("the cluster has no computing node"),
            PlaceError::LedgerMismatch { topology, ledger } => write!(
                f,
                "the ledger covers {ledger} nodes but the cluster has {topology}"
            ),
            PlaceError::Solver(error) => write!(f, "the MILP solver failed: {error}"),
        }
    }
}

impl std::error::Error for PlaceError {}

/// A placement algorithm: given an application, the cluster and what its nodes have left,
/// decides where every DAG node goes, records the instances in the ledger and reports every
/// rule it had to break.
pub trait Placer {
    /// Short name: `hcm`, `annealing`, `ilp`.
    fn name(&self) -> &'static str;

    /// Places `workload` on `topology`, updating `ledger`.
    fn place(
        &mut self,
        workload: &Workload,
        topology: &Topology,
        ledger: &mut Ledger,
    ) -> Result<Placement, PlaceError>;
}

/// Checks the arguments every placer gets.
pub fn check_inputs(topology: &Topology, ledger: &Ledger) -> Result<(), PlaceError> {
    if topology.is_empty() {
        return Err(PlaceError::EmptyTopology);
    }
    if ledger.len() != topology.len() {
        return Err(PlaceError::LedgerMismatch {
            topology: topology.len(),
            ledger: ledger.len(),
        });
    }
    Ok(())
}

/// A placement being built: records instances in the ledger one at a time and notes what
/// each one breaks.
#[derive(Debug)]
pub struct Deployment<'a> {
    workload: &'a Workload,
    topology: &'a Topology,
    ledger: &'a mut Ledger,
    nodes: Vec<Option<ComputeId>>,
    violations: Vec<Violation>,
}

impl<'a> Deployment<'a> {
    /// Nothing placed yet.
    pub fn new(workload: &'a Workload, topology: &'a Topology, ledger: &'a mut Ledger) -> Self {
        Deployment {
            workload,
            topology,
            nodes: vec![None; workload.dag().len()],
            ledger,
            violations: Vec::new(),
        }
    }

    /// The workload being placed.
    pub fn workload(&self) -> &'a Workload {
        self.workload
    }

    /// The ledger as it stands.
    pub fn ledger(&self) -> &Ledger {
        self.ledger
    }

    /// Where `v` went, if placed.
    pub fn node_of(&self, v: NodeId) -> Option<ComputeId> {
        self.nodes[v.index()]
    }

    /// What placing `v` on `n` would change, given where the nodes placed so far are.
    pub fn changes(&self, v: NodeId, n: ComputeId) -> ChangeSet {
        let mut changes = ChangeSet::new();
        placement_changes(
            self.workload,
            self.topology,
            v,
            n,
            |u| self.nodes[u.index()],
            &mut changes,
        );
        changes
    }

    /// Nodes whose bookings placing `v` may release (see [`release_sites`]).
    pub fn release_sites(&self, v: NodeId) -> Vec<ComputeId> {
        release_sites(self.workload, self.topology, v, |u| self.nodes[u.index()])
    }

    /// Whether `v` may go on `n`: pinned kind, fault domain, and enough of every resource on
    /// `n` and wherever its messages land.
    pub fn fits(&self, v: NodeId, n: ComputeId) -> bool {
        let spec = &self.topology.node(n).spec;
        self.workload.pin(v).allows(spec.kind)
            && self.fault_domain_clear(v, n)
            && self.ledger.fits_changes(n, &self.changes(v, n))
    }

    /// Best-fit score of `v` on `n`: what `n` would have left of the resources placing `v`
    /// uses there (see [`Ledger::leftover`]).
    pub fn leftover(&self, v: NodeId, n: ComputeId) -> f64 {
        self.ledger.leftover(n, &self.changes(v, n).on(n))
    }

    /// Whether `v`'s kind and fault domain allow `n` (resources aside).
    pub fn allowed(&self, v: NodeId, n: ComputeId) -> bool {
        self.workload.pin(v).allows(self.topology.node(n).spec.kind)
            && self.fault_domain_clear(v, n)
    }

    /// Whether no placed replica of `v`'s group is on `n`'s server.
    pub fn fault_domain_clear(&self, v: NodeId, n: ComputeId) -> bool {
        self.fault_peer(v, n).is_none()
    }

    fn fault_peer(&self, v: NodeId, n: ComputeId) -> Option<NodeId> {
        let server = self.topology.node(n).server;
        self.workload.replica_peers(v).find(|&peer| {
            self.nodes[peer.index()].is_some_and(|m| self.topology.node(m).server == server)
        })
    }

    /// The node closest to taking `v` when none can: the smallest [`Ledger::shortfall`] among
    /// the nodes its pin and fault domain allow, or among all nodes if none does; ties go to
    /// the lowest index.
    pub fn closest(&self, v: NodeId) -> ComputeId {
        /// Added to the shortfall of a node the pin or fault domain rules out.
        const DISALLOWED: f64 = 1e6;
        let mut best = (f64::INFINITY, ComputeId(0));
        for n in (0..self.topology.len() as u32).map(ComputeId) {
            let mut miss = self.ledger.shortfall_of(n, &self.changes(v, n));
            if !self.allowed(v, n) {
                miss += DISALLOWED;
            }
            if miss < best.0 {
                best = (miss, n);
            }
        }
        best.1
    }

    /// Records `v` on `n`, noting any rule it breaks.
    pub fn deploy(&mut self, v: NodeId, n: ComputeId) {
        let spec = &self.topology.node(n).spec;
        let changes = self.changes(v, n);
        let mut breaches: Vec<Breach> = self
            .ledger
            .shortfalls_of(n, &changes)
            .into_iter()
            .map(|shortfall| Breach::of_shortfall(n, shortfall))
            .collect();
        let pin = self.workload.pin(v);
        if !pin.allows(spec.kind) {
            breaches.push(Breach::Pin(pin));
        }
        if let Some(peer) = self.fault_peer(v, n) {
            breaches.push(Breach::FaultDomain(peer));
        }
        if !breaches.is_empty() {
            log::debug!("node {} on {}: {breaches:?}", v.0, self.topology.label(n));
            self.violations.push(Violation {
                node: v,
                on: n,
                breaches,
            });
        }
        self.ledger.apply(&changes, 1.0);
        self.ledger.count(n, 1);
        self.nodes[v.index()] = Some(n);
    }

    /// The finished placement. Nodes never placed (none, for a correct algorithm) go to
    /// node 0 and are reported as a violation of every resource.
    pub fn finish(mut self, algorithm: &'static str, stopped_early: Option<String>) -> Placement {
        for v in self.workload.dag().node_ids() {
            if self.nodes[v.index()].is_none() {
                self.deploy(v, ComputeId(0));
            }
        }
        Placement {
            algorithm,
            nodes: self
                .nodes
                .into_iter()
                .map(|n| n.unwrap_or(ComputeId(0)))
                .collect(),
            violations: self.violations,
            stopped_early,
        }
    }
}

/// Records a complete assignment (`nodes[v]` for every DAG node) in the ledger, in the DAG's
/// node order, and reports its violations.
pub fn commit(
    workload: &Workload,
    topology: &Topology,
    ledger: &mut Ledger,
    nodes: &[ComputeId],
    algorithm: &'static str,
    stopped_early: Option<String>,
) -> Placement {
    let mut deployment = Deployment::new(workload, topology, ledger);
    for v in workload.dag().node_ids() {
        deployment.deploy(v, nodes[v.index()]);
    }
    deployment.finish(algorithm, stopped_early)
}

#[cfg(test)]
mod tests;
