//! The objective simulated annealing and the ILP minimise, after Service Fabric's cluster
//! resource manager: load balance and co-execution interference weigh most, then energy, with a
//! heavy penalty on every broken rule. Each term is a convex piecewise-linear function of a
//! node's totals, so the ILP states exactly the same cost as the annealer computes.

use std::collections::HashMap;

use microservices::apps::NodeId;

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

/// An assignment being scored: the load of every node (the ledger's plus the application's) and
/// how many members of each replica group share each server.
#[derive(Clone, Debug)]
pub struct Loads<'a> {
    model: &'a CostModel,
    workload: &'a Workload,
    topology: &'a Topology,
    capacity: Vec<Amounts>,
    span_w: Vec<f64>,
    used: Vec<Amounts>,
    instances: Vec<u32>,
    /// (replica group, server) -> members there, for groups with backups.
    fault: HashMap<(u32, u32), u32>,
    /// Instances on a node their pin forbids.
    pinned_out: u32,
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
            fault: HashMap::new(),
            pinned_out: 0,
        }
    }

    fn demand(&self, v: NodeId, n: ComputeId) -> &'a Amounts {
        self.workload.demand(v, &self.topology.node(n).spec)
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

    /// The cost of node `n` if it held `extra` more (negative to remove) and `instances`.
    fn node_cost_with(&self, n: ComputeId, extra: &Amounts, sign: f64, instances: u32) -> f64 {
        let mut used = self.used[n.index()];
        for (u, e) in used.iter_mut().zip(extra) {
            *u += sign * e;
        }
        self.model.node_cost(
            self.span_w[n.index()],
            &self.capacity[n.index()],
            &used,
            instances,
        )
    }

    /// The cost of node `n` as it stands.
    pub fn node_cost(&self, n: ComputeId) -> f64 {
        self.node_cost_with(n, &[0.0; RESOURCES], 0.0, self.instances[n.index()])
    }

    /// Places `v` on `n`.
    pub fn add(&mut self, v: NodeId, n: ComputeId) {
        let demand = *self.demand(v, n);
        for (u, d) in self.used[n.index()].iter_mut().zip(&demand) {
            *u += d;
        }
        self.instances[n.index()] += 1;
        if self.has_replicas(v) {
            *self.fault.entry(self.fault_key(v, n)).or_insert(0) += 1;
        }
        if self.pinned_out_at(v, n) {
            self.pinned_out += 1;
        }
    }

    /// Removes `v` from `n`.
    pub fn remove(&mut self, v: NodeId, n: ComputeId) {
        let demand = *self.demand(v, n);
        for (u, d) in self.used[n.index()].iter_mut().zip(&demand) {
            *u -= d;
        }
        self.instances[n.index()] -= 1;
        if self.has_replicas(v) {
            if let Some(count) = self.fault.get_mut(&self.fault_key(v, n)) {
                *count -= 1;
            }
        }
        if self.pinned_out_at(v, n) {
            self.pinned_out -= 1;
        }
    }

    /// How the cost changes if `v` joins `n` (having been placed nowhere).
    pub fn delta_add(&self, v: NodeId, n: ComputeId) -> f64 {
        let count = self.instances[n.index()];
        let mut delta =
            self.node_cost_with(n, self.demand(v, n), 1.0, count + 1) - self.node_cost(n);
        if self.has_replicas(v) && self.fault.get(&self.fault_key(v, n)).copied().unwrap_or(0) > 0 {
            delta += self.model.weights.violation;
        }
        if self.pinned_out_at(v, n) {
            delta += self.model.weights.violation;
        }
        delta
    }

    /// How the cost changes if `v` leaves `n`.
    pub fn delta_remove(&self, v: NodeId, n: ComputeId) -> f64 {
        let count = self.instances[n.index()];
        let mut delta =
            self.node_cost_with(n, self.demand(v, n), -1.0, count - 1) - self.node_cost(n);
        if self.has_replicas(v) && self.fault.get(&self.fault_key(v, n)).copied().unwrap_or(0) > 1 {
            delta -= self.model.weights.violation;
        }
        if self.pinned_out_at(v, n) {
            delta -= self.model.weights.violation;
        }
        delta
    }

    /// The whole cost: every node's term, plus the broken fault domains and pins.
    pub fn total(&self) -> f64 {
        let nodes: f64 = (0..self.topology.len() as u32)
            .map(|n| self.node_cost(ComputeId(n)))
            .sum();
        let shared: u32 = self.fault.values().map(|&c| c.saturating_sub(1)).sum();
        nodes + self.model.weights.violation * f64::from(shared + self.pinned_out)
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
            let delta = loads.delta_add(v, n);
            loads.add(v, n);
            let now = loads.total();
            assert!((now - total - delta).abs() < 1e-6 * now.abs().max(1.0));
            total = now;
        }
        for v in workload.dag().node_ids().step_by(3) {
            let n = ComputeId(v.0 % 2);
            let delta = loads.delta_remove(v, n);
            loads.remove(v, n);
            let now = loads.total();
            assert!((now - total - delta).abs() < 1e-6 * now.abs().max(1.0));
            total = now;
        }
    }
}
