//! The ledger of what every computing node and uplink has left: the runtime statistics
//! placement reads (free resources, outstanding requests, instances deployed), updated as
//! instances are placed.

use super::charges::{ChangeSet, Target};
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
    /// Capacity and load of every uplink (see [`super::communication::Link::Uplink`]).
    uplink_capacity: Vec<f64>,
    uplink_used: Vec<f64>,
}

/// Where a change set would overcommit: the target and the resource.
pub type Shortfall = (Target, Resource);

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
        let uplink_capacity: Vec<f64> = (0..topology.uplink_count() as u32)
            .map(|u| topology.uplink_capacity(u))
            .collect();
        Ledger {
            index: FreeIndex::new(kinds, &capacity),
            free: capacity.clone(),
            instances: vec![0; capacity.len()],
            capacity,
            uplink_used: vec![0.0; uplink_capacity.len()],
            uplink_capacity,
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
            .map(|r| miss(demand[r] - free[r], capacity[r]))
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

    /// Capacity of uplink `u`, Gb/s per direction.
    pub fn uplink_capacity(&self, u: u32) -> f64 {
        self.uplink_capacity[u as usize]
    }

    /// Load of uplink `u`, Gb/s per direction.
    pub fn uplink_used(&self, u: u32) -> f64 {
        self.uplink_used[u as usize]
    }

    /// Number of uplinks.
    pub fn uplink_count(&self) -> usize {
        self.uplink_capacity.len()
    }

    /// Where placing an instance on `n` with `changes` would overcommit: on `n` itself every
    /// resource the change does not fit in (an overcommitted resource of `n` takes nothing
    /// more, as [`Ledger::fits`] has it), elsewhere every increase that does not fit.
    pub fn shortfalls_of(&self, n: ComputeId, changes: &ChangeSet) -> Vec<Shortfall> {
        let mut out = Vec::new();
        for (target, amounts) in changes.entries() {
            match *target {
                Target::Node(m) => {
                    let free = &self.free[m.index()];
                    for r in Resource::ALL {
                        let need = amounts[r.index()];
                        if (m == n || need > EPSILON) && need > free[r.index()] + EPSILON {
                            out.push((*target, r));
                        }
                    }
                }
                Target::Uplink(u) => {
                    let need = amounts[Resource::Bandwidth.index()];
                    if need > EPSILON && need > self.uplink_free(u) + EPSILON {
                        out.push((*target, Resource::Bandwidth));
                    }
                }
            }
        }
        out
    }

    /// Whether placing an instance on `n` with `changes` fits: see [`Ledger::shortfalls_of`].
    pub fn fits_changes(&self, n: ComputeId, changes: &ChangeSet) -> bool {
        changes
            .entries()
            .iter()
            .all(|(target, amounts)| match *target {
                Target::Node(m) if m == n => fits(&self.free[m.index()], amounts),
                Target::Node(m) => amounts
                    .iter()
                    .zip(&self.free[m.index()])
                    .all(|(need, f)| *need <= EPSILON || *need <= *f + EPSILON),
                Target::Uplink(u) => {
                    let need = amounts[Resource::Bandwidth.index()];
                    need <= EPSILON || need <= self.uplink_free(u) + EPSILON
                }
            })
    }

    fn uplink_free(&self, u: u32) -> f64 {
        self.uplink_capacity[u as usize] - self.uplink_used[u as usize]
    }

    /// How far placing an instance on `n` with `changes` is from fitting: what each target
    /// misses, as a fraction of its capacity (see [`Ledger::shortfall`]; elsewhere than on `n`
    /// only increases count), summed.
    pub fn shortfall_of(&self, n: ComputeId, changes: &ChangeSet) -> f64 {
        changes
            .entries()
            .iter()
            .map(|(target, amounts)| match *target {
                Target::Node(m) if m == n => self.shortfall(m, amounts),
                // Only what the increases miss: a resource this instance adds nothing to
                // does not count, however overcommitted it already is.
                Target::Node(m) => {
                    let (free, capacity) = (&self.free[m.index()], &self.capacity[m.index()]);
                    (0..RESOURCES)
                        .filter(|&r| amounts[r] > EPSILON)
                        .map(|r| miss(amounts[r] - free[r], capacity[r]))
                        .sum()
                }
                Target::Uplink(u) => {
                    let need = amounts[Resource::Bandwidth.index()];
                    if need <= EPSILON {
                        0.0
                    } else {
                        miss(need - self.uplink_free(u), self.uplink_capacity[u as usize])
                    }
                }
            })
            .sum()
    }

    /// Applies `sign` times `changes` (instance counts are untouched).
    pub fn apply(&mut self, changes: &ChangeSet, sign: f64) {
        for (target, amounts) in changes.entries() {
            match *target {
                Target::Node(n) => {
                    for (f, a) in self.free[n.index()].iter_mut().zip(amounts) {
                        *f -= sign * a;
                    }
                    self.index.update(n.index(), &self.free[n.index()]);
                }
                Target::Uplink(u) => {
                    self.uplink_used[u as usize] += sign * amounts[Resource::Bandwidth.index()];
                }
            }
        }
    }

    /// Counts one more (`+1`) or one fewer (`-1`) instance on node `n`.
    pub fn count(&mut self, n: ComputeId, delta: i32) {
        let count = &mut self.instances[n.index()];
        *count = count.saturating_add_signed(delta);
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

/// What an amount `over` beyond what is free misses, as a fraction of `capacity` (0 when it
/// is not beyond); a resource the node does not have at all misses a whole capacity plus the
/// amount.
fn miss(over: f64, capacity: f64) -> f64 {
    if over <= EPSILON {
        0.0
    } else if capacity > 0.0 {
        over / capacity
    } else {
        1.0 + over
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
        let demand = [6.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        assert!(ledger.fits(nic, &demand));
        ledger.take(nic, &demand);
        assert!(ledger.fits(nic, &demand));
        assert_eq!(ledger.cpu_utilisation(nic), 0.5);
        ledger.take(nic, &demand);
        assert!(!ledger.fits(nic, &demand));
        assert_eq!(ledger.shortfalls(nic, &demand), [Resource::Cpu]);
        assert!((ledger.shortfall(nic, &demand) - 0.5).abs() < 1e-12);
        // The NIC has no disk: any disk demand misses by more than a whole capacity.
        assert!(ledger.shortfall(ComputeId(5), &[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]) > 1.0);
        ledger.release(nic, &demand);
        assert_eq!(ledger.instances(nic), 1);
        assert!(ledger.fits(nic, &demand));
    }

    #[test]
    fn elsewhere_only_what_the_instance_adds_misses() {
        // 3xType1: host 0 and NIC 1 (12 cores, 20 Gb/s of ports). NIC 1 is 6 cores over.
        let topo = Cluster::builtin("3xtype1").unwrap().topology();
        let mut ledger = Ledger::new(&topo);
        let (host, nic) = (ComputeId(0), ComputeId(1));
        ledger.take(nic, &[18.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // An instance on the host that loads NIC 1's ports with 25 Gb/s: NIC 1 misses 5 Gb/s
        // of 20 (0.25), and its cores, to which the instance adds nothing, do not count.
        let mut changes = ChangeSet::new();
        changes.add_cores(host, 1.0);
        changes.add(Target::Node(nic), Resource::Bandwidth, 25.0);
        assert!((ledger.shortfall_of(host, &changes) - 0.25).abs() < 1e-12);
        assert_eq!(
            ledger.shortfalls_of(host, &changes),
            [(Target::Node(nic), Resource::Bandwidth)]
        );
        // Adding 1 core there too misses 7 of 12 cores (its outstanding requests, of which
        // none were taken, still fit).
        changes.add_cores(nic, 1.0);
        let want = 0.25 + 7.0 / 12.0;
        assert!((ledger.shortfall_of(host, &changes) - want).abs() < 1e-12);
        // On the instance's own node an overcommitted resource counts even if it adds none:
        // half a GB of memory fits, the 6 cores over (of 12) count.
        let mut on_nic = ChangeSet::new();
        on_nic.add(Target::Node(nic), Resource::Memory, 0.5);
        assert!((ledger.shortfall_of(nic, &on_nic) - 0.5).abs() < 1e-12);
    }
}
