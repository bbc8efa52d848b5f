//! The objective simulated annealing and the ILP minimise, after Service Fabric's cluster
//! resource manager: load balance and co-execution interference weigh most, then energy, with a
//! heavy penalty on every broken rule. A node's load includes the core time and link bandwidth
//! of its messages, priced by the communication model as every placer records them; the
//! objective itself, like Service Fabric's, has no term for distance. Each term is a convex
//! piecewise-linear function of a node's totals, so the ILP states exactly the same cost as
//! the annealer computes.

use std::collections::HashMap;

use microservices::apps::NodeId;

use super::charges::{placement_changes, ChangeSet, Target};
use super::ledger::Ledger;
use super::topology::{ComputeId, Topology};
use super::workload::{Amounts, Resource, Workload, RESOURCES};

/// A convex piecewise-linear function, the maximum of its lines `slope * x + intercept`.
#[derive(Clone, Debug, PartialEq)]
pub struct Convex {
    lines: Vec<(f64, f64)>,
}

impl Convex {
    /// The convex function through `points` (x ascending, slopes increasing), zero left of the
    /// first point and extended with the last slope right of the last.
    pub fn through(points: &[(f64, f64)]) -> Convex {
        let mut lines = vec![(0.0, 0.0)];
        for pair in points.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            let slope = (y1 - y0) / (x1 - x0);
            lines.push((slope, y0 - slope * x0));
        }
        Convex { lines }
    }

    /// The function's value at `x`.
    pub fn at(&self, x: f64) -> f64 {
        self.lines
            .iter()
            .map(|(slope, intercept)| slope * x + intercept)
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// Its lines, for stating it in a linear program.
    pub fn lines(&self) -> &[(f64, f64)] {
        &self.lines
    }
}

/// The weights of the cost's terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    /// Per unit of the balance function of a node's CPU utilisation.
    pub balance: f64,
    /// Per pair of instances sharing a node.
    pub interference: f64,
    /// Per watt of active power.
    pub energy: f64,
    /// Per broken rule: a whole capacity overcommitted, a replica sharing a fault domain, an
    /// instance on a node its pin forbids.
    pub violation: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            balance: 100.0,
            interference: 1.0,
            energy: 0.1,
            violation: 1e4,
        }
    }
}

/// The cost model.
#[derive(Clone, Debug, PartialEq)]
pub struct CostModel {
    /// Balance penalty of a node at CPU utilisation `u`: grows faster the fuller the node.
    pub balance: Convex,
    /// Interference of `k` instances on one node: the `k (k - 1) / 2` pairs, interpolated
    /// between powers of two.
    pub interference: Convex,
    /// Term weights.
    pub weights: Weights,
}

impl Default for CostModel {
    fn default() -> Self {
        let pairs: Vec<(f64, f64)> = (0..12)
            .map(|i| {
                let k = f64::from(1u32 << i);
                (k, k * (k - 1.0) / 2.0)
            })
            .collect();
        CostModel {
            balance: Convex::through(&[
                (0.0, 0.0),
                (0.25, 0.0625),
                (0.5, 0.1875),
                (0.75, 0.4375),
                (0.9, 0.7375),
                (1.0, 1.1375),
            ]),
            interference: Convex::through(&pairs),
            weights: Weights::default(),
        }
    }
}

impl CostModel {
    /// The cost of one node holding `used` with `instances` instances.
    pub fn node_cost(
        &self,
        spec_span_w: f64,
        capacity: &Amounts,
        used: &Amounts,
        instances: u32,
    ) -> f64 {
        let w = &self.weights;
        let utilisation = utilisation(capacity, used);
        w.balance * self.balance.at(utilisation)
            + w.interference * self.interference.at(f64::from(instances))
            + w.energy * spec_span_w * utilisation
            + w.violation * overflow(capacity, used)
    }
}

/// CPU utilisation of a node with `capacity` holding `used`.
pub fn utilisation(capacity: &Amounts, used: &Amounts) -> f64 {
    let cores = capacity[Resource::Cpu.index()];
    if cores > 0.0 {
        used[Resource::Cpu.index()] / cores
    } else {
        0.0
    }
}

/// Overcommitment of a node: per resource, the excess over capacity as a fraction of capacity
/// (of 1 where the node has none), summed.
pub fn overflow(capacity: &Amounts, used: &Amounts) -> f64 {
    (0..RESOURCES)
        .map(|r| (used[r] - capacity[r]).max(0.0) / capacity[r].max(1.0))
        .sum()
}

/// Where each DAG node may be put by the annealer and the ILP: the nodes its pin allows, or
/// every node when none does (the instance is then reported as a violation).
pub fn candidates(workload: &Workload, topology: &Topology) -> Vec<Vec<ComputeId>> {
    workload
        .dag()
        .node_ids()
        .map(|v| {
            let allowed: Vec<ComputeId> = (0..topology.len() as u32)
                .map(ComputeId)
                .filter(|&n| workload.pin(v).allows(topology.node(n).spec.kind))
                .collect();
            if allowed.is_empty() {
                (0..topology.len() as u32).map(ComputeId).collect()
            } else {
                allowed
            }
        })
        .collect()
}

/// An assignment being scored: the load of every node and uplink (the ledger's plus the
/// application's, messages included, priced through [`placement_changes`] exactly as the
/// placers record them) and how many members of each replica group share each server.
#[derive(Clone, Debug)]
pub struct Loads<'a> {
    model: &'a CostModel,
    workload: &'a Workload,
    topology: &'a Topology,
    capacity: Vec<Amounts>,
    span_w: Vec<f64>,
    used: Vec<Amounts>,
    instances: Vec<u32>,
    uplink_capacity: Vec<f64>,
    uplink_used: Vec<f64>,
    /// Where each DAG node is, if placed.
    at: Vec<Option<ComputeId>>,
    /// (replica group, server) -> members there, for groups with backups.
    fault: HashMap<(u32, u32), u32>,
    /// Instances on a node their pin forbids.
    pinned_out: u32,
    scratch: ChangeSet,
}

impl<'a> Loads<'a> {
    /// The loads of the ledger, with nothing of the application placed yet.
    pub fn new(
        model: &'a CostModel,
        workload: &'a Workload,
        topology: &'a Topology,
        ledger: &Ledger,
    ) -> Self {
        let ids = (0..topology.len() as u32).map(ComputeId);
        let uplinks = 0..ledger.uplink_count() as u32;
        Loads {
            model,
            workload,
            topology,
            capacity: ids.clone().map(|n| *ledger.capacity(n)).collect(),
            span_w: topology
                .nodes()
                .iter()
                .map(|n| n.spec.peak_w - n.spec.idle_w)
                .collect(),
            used: ids.clone().map(|n| ledger.used(n)).collect(),
            instances: ids.map(|n| ledger.instances(n)).collect(),
            uplink_capacity: uplinks.clone().map(|u| ledger.uplink_capacity(u)).collect(),
            uplink_used: uplinks.map(|u| ledger.uplink_used(u)).collect(),
            at: vec![None; workload.dag().len()],
            fault: HashMap::new(),
            pinned_out: 0,
            scratch: ChangeSet::new(),
        }
    }

    fn has_replicas(&self, v: NodeId) -> bool {
        self.workload.replica_peers(v).next().is_some()
    }

    fn fault_key(&self, v: NodeId, n: ComputeId) -> (u32, u32) {
        (self.workload.replica_group(v), self.topology.node(n).server)
    }

    fn pinned_out_at(&self, v: NodeId, n: ComputeId) -> bool {
        !self.workload.pin(v).allows(self.topology.node(n).spec.kind)
    }

    /// The cost of node `n` as it stands.
    pub fn node_cost(&self, n: ComputeId) -> f64 {
        self.model.node_cost(
            self.span_w[n.index()],
            &self.capacity[n.index()],
            &self.used[n.index()],
            self.instances[n.index()],
        )
    }

    /// The cost of uplink `u` as it stands: only overcommitment counts.
    pub fn uplink_cost(&self, u: u32) -> f64 {
        let capacity = self.uplink_capacity[u as usize];
        let over = (self.uplink_used[u as usize] - capacity).max(0.0);
        self.model.weights.violation * over / capacity.max(1.0)
    }

    fn target_cost(&self, target: Target) -> f64 {
        match target {
            Target::Node(n) => self.node_cost(n),
            Target::Uplink(u) => self.uplink_cost(u),
        }
    }

    /// Where `v` is, if placed.
    pub fn node_of(&self, v: NodeId) -> Option<ComputeId> {
        self.at[v.index()]
    }

    /// Applies `sign` times the scratch change set and returns how the cost of the targets it
    /// touches (and of `n`, whose instance count moves by `sign`) changed.
    fn apply_scratch(&mut self, n: ComputeId, sign: f64) -> f64 {
        let scratch = std::mem::take(&mut self.scratch);
        let touched_n = scratch.entries().iter().any(|(t, _)| *t == Target::Node(n));
        let before: f64 = scratch
            .entries()
            .iter()
            .map(|(t, _)| self.target_cost(*t))
            .sum::<f64>()
            + if touched_n { 0.0 } else { self.node_cost(n) };
        for (target, amounts) in scratch.entries() {
            match *target {
                Target::Node(m) => {
                    for (u, a) in self.used[m.index()].iter_mut().zip(amounts) {
                        *u += sign * a;
                    }
                }
                Target::Uplink(u) => {
                    self.uplink_used[u as usize] += sign * amounts[Resource::Bandwidth.index()];
                }
            }
        }
        let count = &mut self.instances[n.index()];
        *count = if sign > 0.0 {
            *count + 1
        } else {
            count.saturating_sub(1)
        };
        let after: f64 = scratch
            .entries()
            .iter()
            .map(|(t, _)| self.target_cost(*t))
            .sum::<f64>()
            + if touched_n { 0.0 } else { self.node_cost(n) };
        self.scratch = scratch;
        after - before
    }

    /// Books (`sign` 1) or releases (`sign` -1) what `v` on `n` changes, given where the other
    /// nodes are (`v` itself counted as placed nowhere); returns how the cost changed.
    fn book(&mut self, v: NodeId, n: ComputeId, sign: f64) -> f64 {
        let at = &self.at;
        placement_changes(
            self.workload,
            self.topology,
            v,
            n,
            |u| at[u.index()],
            &mut self.scratch,
        );
        self.apply_scratch(n, sign)
    }

    /// Places `v` (placed nowhere) on `n`; returns how the cost changed.
    pub fn add(&mut self, v: NodeId, n: ComputeId) -> f64 {
        let mut delta = self.book(v, n, 1.0);
        self.at[v.index()] = Some(n);
        let violation = self.model.weights.violation;
        if self.has_replicas(v) {
            let count = self.fault.entry(self.fault_key(v, n)).or_insert(0);
            if *count > 0 {
                delta += violation;
            }
            *count += 1;
        }
        if self.pinned_out_at(v, n) {
            self.pinned_out += 1;
            delta += violation;
        }
        delta
    }

    /// Removes `v` from where it is; returns how the cost changed (nothing if not placed).
    pub fn remove(&mut self, v: NodeId) -> f64 {
        let Some(n) = self.at[v.index()].take() else {
            return 0.0;
        };
        let mut delta = self.book(v, n, -1.0);
        let violation = self.model.weights.violation;
        if self.has_replicas(v) {
            if let Some(count) = self
                .fault
                .get_mut(&(self.workload.replica_group(v), self.topology.node(n).server))
            {
                *count = count.saturating_sub(1);
                if *count > 0 {
                    delta -= violation;
                }
            }
        }
        if self.pinned_out_at(v, n) {
            self.pinned_out -= 1;
            delta -= violation;
        }
        delta
    }

    /// The whole cost: every node's and uplink's term, plus the broken fault domains and pins.
    pub fn total(&self) -> f64 {
        let nodes: f64 = (0..self.topology.len() as u32)
            .map(|n| self.node_cost(ComputeId(n)))
            .sum();
        let uplinks: f64 = (0..self.uplink_capacity.len() as u32)
            .map(|u| self.uplink_cost(u))
            .sum();
        let shared: u32 = self.fault.values().map(|&c| c.saturating_sub(1)).sum();
        nodes + uplinks + self.model.weights.violation * f64::from(shared + self.pinned_out)
    }
}

/// The cost of a complete assignment on top of the ledger.
pub fn assignment_cost(
    model: &CostModel,
    workload: &Workload,
    topology: &Topology,
    ledger: &Ledger,
    nodes: &[ComputeId],
) -> f64 {
    let mut loads = Loads::new(model, workload, topology, ledger);
    for v in workload.dag().node_ids() {
        loads.add(v, nodes[v.index()]);
    }
    loads.total()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::topology::Cluster;
    use microservices::apps::App;

    #[test]
    fn convex_functions_interpolate_their_points() {
        let model = CostModel::default();
        assert_eq!(model.interference.at(1.0), 0.0);
        assert_eq!(model.interference.at(2.0), 1.0);
        assert_eq!(model.interference.at(8.0), 28.0);
        assert_eq!(model.interference.at(6.0), 6.0 + 2.0 * (28.0 - 6.0) / 4.0);
        assert!((model.balance.at(0.9) - 0.7375).abs() < 1e-12);
        assert_eq!(model.balance.at(0.0), 0.0);
    }

    #[test]
    fn deltas_match_totals() {
        let topology = Cluster::builtin("3xtype1").unwrap().topology();
        let ledger = Ledger::new(&topology);
        let workload = Workload::builtin(App::IotTs, 8_000.0).unwrap();
        let model = CostModel::default();
        let mut loads = Loads::new(&model, &workload, &topology, &ledger);
        let mut total = loads.total();
        for v in workload.dag().node_ids() {
            // Everything on server 0's two nodes: fault domains and the NIC pin break too.
            let n = ComputeId(v.0 % 2);
            let delta = loads.add(v, n);
            let now = loads.total();
            assert!((now - total - delta).abs() < 1e-6 * now.abs().max(1.0));
            total = now;
        }
        for v in workload.dag().node_ids().step_by(3) {
            let delta = loads.remove(v);
            let now = loads.total();
            assert!((now - total - delta).abs() < 1e-6 * now.abs().max(1.0));
            total = now;
        }
        // Moving them back elsewhere: the messages follow (a different cost).
        for v in workload.dag().node_ids().step_by(3) {
            let delta = loads.add(v, ComputeId(2 + v.0 % 4));
            let now = loads.total();
            assert!((now - total - delta).abs() < 1e-6 * now.abs().max(1.0));
            total = now;
        }
    }
}
