//! HCM, E3's hierarchical communication-aware placement (paper section 3.3, Algorithm 1): the
//! breadth-first walk, and the fast searches it uses at datacenter scale.
//!
//! The walk (`traverse`) starts from the DAG's source nodes. A node not yet deployed gets the
//! first computing node that fits it (first fit, communication ignored; when nothing fits, the
//! node closest to fitting, reported as a violation). Each direct descendant not yet deployed
//! is then placed by walking the levels of its parent's hierarchical topology, closest first,
//! and taking the best fit of the first level that has one; when no level has one it falls
//! back to first fit.
//!
//! One reading is ours: Algorithm 1 as printed re-places and re-enqueues a descendant once per
//! parent (its queue holds one entry per path, exponential in the DAG's depth, and a re-placed
//! node would leave its earlier resources behind). We place every node once, next to the first
//! parent the breadth-first walk reaches it from, and enqueue it once.
//!
//! [`Fast`] walks the levels as ranges of the topology and prunes them with the ledger's index.
//! [`oracle::Oracle`] is Algorithm 1 written out again on its own (its own walk, full scans of
//! lists, its own bookkeeping); the two must give the same placement (a property test checks
//! it).

pub mod oracle;

use std::collections::VecDeque;
use std::ops::Range;

use microservices::apps::NodeId;

use super::index::KindMask;
use super::ledger::Ledger;
use super::levels::Level;
use super::placement::{check_inputs, Deployment, PlaceError, Placement, Placer};
use super::profile::Pin;
use super::topology::{ComputeId, CoreClass, NodeKind, Topology};
use super::workload::{Amounts, Workload};

/// `MS_PLACE`: the best fit in the closest level that has one, else first fit.
fn place_near(
    search: &Fast<'_>,
    deployment: &Deployment<'_>,
    w: NodeId,
    parent: ComputeId,
) -> ComputeId {
    Level::ALL
        .into_iter()
        .find_map(|level| search.best_fit(deployment, w, parent, level))
        .unwrap_or_else(|| search.first_fit(deployment, w))
}

/// `MS_DAG_TRAVERSE`: the breadth-first walk from the source nodes.
fn traverse(
    search: &Fast<'_>,
    name: &'static str,
    workload: &Workload,
    topology: &Topology,
    ledger: &mut Ledger,
) -> Result<Placement, PlaceError> {
    check_inputs(topology, ledger)?;
    let dag = workload.dag();
    let mut deployment = Deployment::new(workload, topology, ledger);
    let mut queued = vec![false; dag.len()];
    let mut queue: VecDeque<NodeId> = dag.sources().collect();
    for v in &queue {
        queued[v.index()] = true;
    }
    while let Some(v) = queue.pop_front() {
        let n = match deployment.node_of(v) {
            Some(n) => n,
            None => {
                let n = search.first_fit(&deployment, v);
                deployment.deploy(v, n);
                n
            }
        };
        for w in dag.successors(v) {
            if deployment.node_of(w).is_none() {
                let m = place_near(search, &deployment, w, n);
                deployment.deploy(w, m);
            }
            if !queued[w.index()] {
                queued[w.index()] = true;
                queue.push_back(w);
            }
        }
    }
    Ok(deployment.finish(name, None))
}

/// HCM with the fast searches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hcm;

impl Placer for Hcm {
    fn name(&self) -> &'static str {
        "hcm"
    }

    fn place(
        &mut self,
        workload: &Workload,
        topology: &Topology,
        ledger: &mut Ledger,
    ) -> Result<Placement, PlaceError> {
        traverse(&Fast { topology }, self.name(), workload, topology, ledger)
    }
}

/// Searches over ranges of the topology, pruned by the ledger's index.
#[derive(Clone, Copy, Debug)]
pub struct Fast<'t> {
    topology: &'t Topology,
}

impl<'t> Fast<'t> {
    /// Searches over `topology`.
    pub fn new(topology: &'t Topology) -> Self {
        Fast { topology }
    }

    /// The least `v`'s own work needs of every resource on any node, and the kinds its pin
    /// allows: what the index prunes with (its messages only add to that, except where they
    /// release a placed peer's bookings, see [`Deployment::release_sites`]).
    fn key(workload: &Workload, v: NodeId) -> (Amounts, KindMask) {
        let beefy = workload.demand_on(v, CoreClass::Beefy);
        let wimpy = workload.demand_on(v, CoreClass::Wimpy);
        let mut lower = *beefy;
        for (l, w) in lower.iter_mut().zip(wimpy) {
            *l = l.min(*w);
        }
        let kinds = match workload.pin(v) {
            Pin::Any => KindMask::ANY,
            Pin::Host => KindMask::only(NodeKind::Host),
            Pin::Nic => KindMask::only(NodeKind::Nic),
        };
        (lower, kinds)
    }

    /// The ranges of node indices at `level` from `parent`, in index order, and the node kinds
    /// the level holds.
    fn level_ranges(&self, parent: ComputeId, level: Level) -> ([Range<usize>; 2], KindMask) {
        let topology = self.topology;
        let p = parent.index();
        let server = topology.server_of(parent);
        let server = server.first_node as usize..(server.first_node + server.node_count) as usize;
        let rack = topology.rack_of(parent);
        let rack_range = rack.nodes.0 as usize..rack.nodes.1 as usize;
        let (first_rack, end_rack) = topology.pods()[rack.pod as usize];
        let pod = topology.racks()[first_rack as usize].nodes.0 as usize
            ..topology.racks()[end_rack as usize - 1].nodes.1 as usize;
        let around = |outer: &Range<usize>, inner: &Range<usize>| {
            [outer.start..inner.start, inner.end..outer.end]
        };
        match level {
            Level::SameNode => ([p..p + 1, 0..0], KindMask::ANY),
            Level::SameServer => ([server.start..p, p + 1..server.end], KindMask::ANY),
            Level::RackNic => (around(&rack_range, &server), KindMask::only(NodeKind::Nic)),
            Level::RackHost => (around(&rack_range, &server), KindMask::only(NodeKind::Host)),
            Level::Pod => (around(&pod, &rack_range), KindMask::ANY),
            Level::Datacenter => (around(&(0..topology.len()), &pod), KindMask::ANY),
        }
    }
}

impl Fast<'_> {
    /// `find_first_fit`: the first node that fits `v`, or the one closest to fitting.
    pub fn first_fit(&self, deployment: &Deployment<'_>, v: NodeId) -> ComputeId {
        let (lower, kinds) = Self::key(deployment.workload(), v);
        let mut found = None;
        deployment.ledger().index().for_each_candidate(
            0..self.topology.len(),
            &lower,
            kinds,
            &mut |n| {
                let n = ComputeId(n as u32);
                if deployment.fits(v, n) {
                    found = Some(n);
                    return false;
                }
                true
            },
        );
        // The index prunes with `v`'s own demand, which placing it next to a peer may more
        // than offset by releasing the peer's provisional bookings: look at those nodes too.
        for n in deployment.release_sites(v) {
            if found.is_some_and(|f| n >= f) {
                break;
            }
            if deployment.fits(v, n) {
                found = Some(n);
                break;
            }
        }
        found.unwrap_or_else(|| deployment.closest(v))
    }

    /// `find_best_fit` over the nodes at `level` from `parent`: the fitting node with the
    /// least left over, ties to the lowest index.
    pub fn best_fit(
        &self,
        deployment: &Deployment<'_>,
        v: NodeId,
        parent: ComputeId,
        level: Level,
    ) -> Option<ComputeId> {
        let workload = deployment.workload();
        let (lower, pin_kinds) = Self::key(workload, v);
        let (ranges, level_kinds) = self.level_ranges(parent, level);
        let kinds = pin_kinds.and(level_kinds);
        let mut best: Option<(f64, ComputeId)> = None;
        let mut consider = |n: ComputeId| {
            if deployment.fits(v, n) {
                let left = deployment.leftover(v, n);
                if best.is_none_or(|(score, m)| left < score || (left == score && n < m)) {
                    best = Some((left, n));
                }
            }
        };
        for range in &ranges {
            deployment.ledger().index().for_each_candidate(
                range.clone(),
                &lower,
                kinds,
                &mut |n| {
                    consider(ComputeId(n as u32));
                    true
                },
            );
        }
        for n in deployment.release_sites(v) {
            let in_level = ranges.iter().any(|r| r.contains(&n.index()));
            if in_level && kinds.has(self.topology.node(n).spec.kind) {
                consider(n);
            }
        }
        best.map(|(_, n)| n)
    }
}

#[cfg(test)]
mod tests;
