//! The ledger of what every computing node has left: the runtime statistics placement reads
//! (free resources, outstanding requests, instances deployed), updated as instances are placed.

use super::index::FreeIndex;
use super::topology::{ComputeId, Topology};
use super::workload::{capacity, Amounts, Resource, RESOURCES};

/// Slack allowed when comparing a demand with what is free, against rounding.
pub const EPSILON: f64 = 1e-9;

/// Free resources and instance counts of every computing node of one topology, with an
/// index over the free resources for searches.
#[derive(Clone, Debug, PartialEq)]
pub struct Ledger {
    capacity: Vec<Amounts>,
    free: Vec<Amounts>,
    instances: Vec<u32>,
    index: FreeIndex,
}

impl Ledger {
    /// An empty cluster: everything free.
    pub fn new(topology: &Topology) -> Ledger {
        Ledger::with_cpu_limit(topology, 1.0)
    }

    /// An empty cluster whose nodes may be planned only up to `limit` of their cores (the
    /// operator's headroom; 1.0 plans to the last core).
    pub fn with_cpu_limit(topology: &Topology, limit: f64) -> Ledger {
        let limit = if limit.is_finite() && limit > 0.0 {
            limit
        } else {
            1.0
        };
        let capacity: Vec<Amounts> = topology
            .nodes()
            .iter()
            .map(|n| {
                let mut c = capacity(&n.spec);
                c[Resource::Cpu.index()] *= limit;
                c
            })
            .collect();
        let kinds = topology.nodes().iter().map(|n| n.spec.kind).collect();
        Ledger {
            index: FreeIndex::new(kinds, &capacity),
            free: capacity.clone(),
            instances: vec![0; capacity.len()],
            capacity,
        }
    }

    /// The index over what every node has left.
    pub fn index(&self) -> &FreeIndex {
        &self.index
    }

    /// Number of computing nodes.
    pub fn len(&self) -> usize {
        self.capacity.len()
    }

    /// Whether the ledger covers no node.
    pub fn is_empty(&self) -> bool {
        self.capacity.is_empty()
    }

    /// What node `n` offers in all.
    pub fn capacity(&self, n: ComputeId) -> &Amounts {
        &self.capacity[n.index()]
    }

    /// What node `n` has left (negative where it is overcommitted).
    pub fn free(&self, n: ComputeId) -> &Amounts {
        &self.free[n.index()]
    }

    /// What node `n` has in use.
    pub fn used(&self, n: ComputeId) -> Amounts {
        let mut used = self.capacity[n.index()];
        for (u, f) in used.iter_mut().zip(&self.free[n.index()]) {
            *u -= f;
        }
        used
    }

    /// Fraction of node `n`'s cores in use.
    pub fn cpu_utilisation(&self, n: ComputeId) -> f64 {
        let cores = self.capacity[n.index()][Resource::Cpu.index()];
        if cores > 0.0 {
            1.0 - self.free[n.index()][Resource::Cpu.index()] / cores
        } else {
            0.0
        }
    }

    /// Instances deployed on node `n`.
    pub fn instances(&self, n: ComputeId) -> u32 {
        self.instances[n.index()]
    }

    /// Whether `demand` fits in what node `n` has left.
    pub fn fits(&self, n: ComputeId, demand: &Amounts) -> bool {
        fits(&self.free[n.index()], demand)
    }

    /// The resources of node `n` that `demand` would overcommit.
    pub fn shortfalls(&self, n: ComputeId, demand: &Amounts) -> Vec<Resource> {
        let free = &self.free[n.index()];
        Resource::ALL
            .into_iter()
            .filter(|r| demand[r.index()] > free[r.index()] + EPSILON)
            .collect()
    }

    /// How far `demand` is from fitting node `n`: the overcommitted amounts, each as a
    /// fraction of the node's capacity, summed (0 when it fits).
    pub fn shortfall(&self, n: ComputeId, demand: &Amounts) -> f64 {
        let free = &self.free[n.index()];
        let capacity = &self.capacity[n.index()];
        (0..RESOURCES)
            .map(|r| {
                let over = demand[r] - free[r];
                if over <= EPSILON {
                    0.0
                } else if capacity[r] > 0.0 {
                    over / capacity[r]
                } else {
                    // A resource the node does not have at all: as bad as a whole capacity
                    // short, plus the amount.
                    1.0 + over
                }
            })
            .sum()
    }

    /// Best-fit score of `demand` on node `n`: what would be left of the resources the demand
    /// uses, as fractions of capacity, summed. Smaller is a tighter fit.
    pub fn leftover(&self, n: ComputeId, demand: &Amounts) -> f64 {
        let free = &self.free[n.index()];
        let capacity = &self.capacity[n.index()];
        (0..RESOURCES)
            .filter(|&r| capacity[r] > 0.0 && demand[r] > 0.0)
            .map(|r| (free[r] - demand[r]) / capacity[r])
            .sum()
    }

    /// Records an instance with `demand` on node `n`.
    pub fn take(&mut self, n: ComputeId, demand: &Amounts) {
        for (f, d) in self.free[n.index()].iter_mut().zip(demand) {
            *f -= d;
        }
        self.index.update(n.index(), &self.free[n.index()]);
        self.instances[n.index()] += 1;
    }

    /// Removes an instance with `demand` from node `n`.
    pub fn release(&mut self, n: ComputeId, demand: &Amounts) {
        for (f, d) in self.free[n.index()].iter_mut().zip(demand) {
            *f += d;
        }
        self.index.update(n.index(), &self.free[n.index()]);
        self.instances[n.index()] = self.instances[n.index()].saturating_sub(1);
    }
}

/// Whether `demand` fits in `free`.
pub fn fits(free: &Amounts, demand: &Amounts) -> bool {
    free.iter().zip(demand).all(|(f, d)| *d <= *f + EPSILON)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::topology::Cluster;

    #[test]
    fn take_release_and_fit() {
        let topo = Cluster::builtin("3xtype1").unwrap().topology();
        let mut ledger = Ledger::new(&topo);
        let nic = ComputeId(1);
        let demand = [6.0, 1.0, 0.0, 1.0, 1.0];
        assert!(ledger.fits(nic, &demand));
        ledger.take(nic, &demand);
        assert!(ledger.fits(nic, &demand));
        assert_eq!(ledger.cpu_utilisation(nic), 0.5);
        ledger.take(nic, &demand);
        assert!(!ledger.fits(nic, &demand));
        assert_eq!(ledger.shortfalls(nic, &demand), [Resource::Cpu]);
        assert!((ledger.shortfall(nic, &demand) - 0.5).abs() < 1e-12);
        // The NIC has no disk: any disk demand misses by more than a whole capacity.
        assert!(ledger.shortfall(ComputeId(5), &[0.0, 0.0, 1.0, 0.0, 0.0]) > 1.0);
        ledger.release(nic, &demand);
        assert_eq!(ledger.instances(nic), 1);
        assert!(ledger.fits(nic, &demand));
    }
}
