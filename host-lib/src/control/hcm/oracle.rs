//! The straightforward HCM, kept as the test oracle for [`super::Hcm`]: Algorithm 1 written out
//! on its own, over plain lists and its own record of what every node and uplink has left.
//!
//! Written again here, independently of the fast HCM: the breadth-first walk
//! (`MS_DAG_TRAVERSE`), `MS_PLACE`, `get_hierarchical_topo` (every node of the cluster sorted
//! into six lists), `find_first_fit` and `find_best_fit` as full scans, the node closest to
//! fitting, the rules of fit (pin, fault domain, enough of every resource on every target), the
//! shortfall and best-fit scores, the free amounts booked as instances are placed, and the
//! violations reported. Nothing of [`super::Fast`], its walk, the ledger's index or
//! [`crate::control::placement::Deployment`] is used.
//!
//! Shared with the fast HCM, and why:
//! - the inputs: the topology (with [`Topology::level`], the definition of the levels, which
//!   the fast HCM does not use, and the [`Level`]s in their order), the workload (demands,
//!   flows, pins, replica groups), and the [`Ledger`] it starts from (the runtime statistics)
//!   and records the result in, as every [`Placer`] must; and the types all of this is
//!   written in;
//! - [`placement_changes`], the pure function of the cost model that says what placing an
//!   instance on a node books where (its own demand, and each of its messages priced by
//!   where the other end is). It is the problem's definition rather than the algorithm:
//!   written twice it would be the same code, and charges.rs checks it against hand-worked
//!   figures;
//! - [`Breach::of_shortfall`], which names a shortfall this oracle found itself (a resource of
//!   the node, of a remote node, an uplink) as a breach: the report's vocabulary, which the
//!   property test compares, a three-way `match` with no decision of the algorithm in it;
//! - [`EPSILON`], the tolerance of every comparison of amounts: with another one the two would
//!   disagree on fits that differ only by rounding, which is not what the test is for;
//! - [`check_inputs`], the check every placer makes of its inputs before placing anything:
//!   the [`Placer`] contract's errors, not Algorithm 1.

use std::collections::VecDeque;

use microservices::apps::NodeId;

use crate::control::charges::{placement_changes, ChangeSet, Target};
use crate::control::ledger::{Ledger, EPSILON};
use crate::control::levels::Level;
use crate::control::placement::{check_inputs, Breach, PlaceError, Placement, Placer, Violation};
use crate::control::topology::{ComputeId, Topology};
use crate::control::workload::{Amounts, Resource, Workload, RESOURCES};

/// HCM written out straightforwardly.
#[derive(Clone, Copy, Debug, Default)]
pub struct Oracle;

impl Placer for Oracle {
    fn name(&self) -> &'static str {
        "hcm-oracle"
    }

    fn place(
        &mut self,
        workload: &Workload,
        topology: &Topology,
        ledger: &mut Ledger,
    ) -> Result<Placement, PlaceError> {
        check_inputs(topology, ledger)?;
        let mut run = Run::new(workload, topology, ledger);
        run.traverse();
        Ok(run.finish(self.name(), ledger))
    }
}

/// Added to the shortfall of a node the pin or fault domain rules out, so that such a node is
/// taken only when every node is ruled out.
const DISALLOWED: f64 = 1e6;

/// One run of Algorithm 1: where every DAG node went, and what every node and uplink has left.
struct Run<'a> {
    workload: &'a Workload,
    topology: &'a Topology,
    /// The computing node of every DAG node placed so far.
    at: Vec<Option<ComputeId>>,
    capacity: Vec<Amounts>,
    free: Vec<Amounts>,
    uplink_capacity: Vec<f64>,
    uplink_used: Vec<f64>,
    /// What each placement booked, in order, to be recorded in the ledger at the end.
    booked: Vec<(ComputeId, ChangeSet)>,
    violations: Vec<Violation>,
}

impl<'a> Run<'a> {
    fn new(workload: &'a Workload, topology: &'a Topology, ledger: &Ledger) -> Self {
        let nodes = (0..topology.len() as u32).map(ComputeId);
        let uplinks = 0..ledger.uplink_count() as u32;
        Run {
            workload,
            topology,
            at: vec![None; workload.dag().len()],
            capacity: nodes.clone().map(|n| *ledger.capacity(n)).collect(),
            free: nodes.map(|n| *ledger.free(n)).collect(),
            uplink_capacity: uplinks.clone().map(|u| ledger.uplink_capacity(u)).collect(),
            uplink_used: uplinks.map(|u| ledger.uplink_used(u)).collect(),
            booked: Vec::new(),
            violations: Vec::new(),
        }
    }

    fn all_nodes(&self) -> impl Iterator<Item = ComputeId> {
        (0..self.topology.len() as u32).map(ComputeId)
    }

    /// `MS_DAG_TRAVERSE`, placing every DAG node once and enqueueing it once.
    fn traverse(&mut self) {
        let dag = self.workload.dag();
        let mut seen = vec![false; dag.len()];
        let mut queue = VecDeque::new();
        for v in dag.sources() {
            seen[v.index()] = true;
            queue.push_back(v);
        }
        while let Some(v) = queue.pop_front() {
            let n = match self.at[v.index()] {
                Some(n) => n,
                None => {
                    let n = self.find_first_fit(v);
                    self.set_deployed_node(v, n);
                    n
                }
            };
            for w in dag.successors(v) {
                if self.at[w.index()].is_none() {
                    let m = self.ms_place(w, n);
                    self.set_deployed_node(w, m);
                }
                if !seen[w.index()] {
                    seen[w.index()] = true;
                    queue.push_back(w);
                }
            }
        }
    }

    /// `MS_PLACE`: the best fit of the closest level of `parent`'s hierarchical topology that
    /// has one, else the first fit.
    fn ms_place(&self, w: NodeId, parent: ComputeId) -> ComputeId {
        let topo = self.get_hierarchical_topo(parent);
        for level in Level::ALL {
            if let Some(n) = self.find_best_fit(w, &topo[level.index()]) {
                return n;
            }
        }
        self.find_first_fit(w)
    }

    /// `get_hierarchical_topo`: every computing node of the cluster in the list of its level
    /// as seen from `n`, in topology order.
    fn get_hierarchical_topo(&self, n: ComputeId) -> [Vec<ComputeId>; 6] {
        let mut levels: [Vec<ComputeId>; 6] = Default::default();
        for m in self.all_nodes() {
            levels[self.topology.level(n, m).index()].push(m);
        }
        levels
    }

    /// `find_first_fit`: the first node in topology order that fits `v`, or else the one
    /// closest to fitting.
    fn find_first_fit(&self, v: NodeId) -> ComputeId {
        match self.all_nodes().find(|&n| self.fits(v, n)) {
            Some(n) => n,
            None => self.closest(v),
        }
    }

    /// `find_best_fit`: the node of `list` that fits `v` with the least left over, ties to the
    /// first in the list.
    fn find_best_fit(&self, v: NodeId, list: &[ComputeId]) -> Option<ComputeId> {
        let mut best: Option<(f64, ComputeId)> = None;
        for &n in list {
            if !self.fits(v, n) {
                continue;
            }
            let left = self.leftover(v, n);
            if best.is_none_or(|(score, _)| left < score) {
                best = Some((left, n));
            }
        }
        best.map(|(_, n)| n)
    }

    /// The node with the smallest shortfall for `v` (a node its pin or fault domain rules out
    /// counts [`DISALLOWED`] more), ties to the first.
    fn closest(&self, v: NodeId) -> ComputeId {
        let mut best = (f64::INFINITY, ComputeId(0));
        for n in self.all_nodes() {
            let changes = self.changes(v, n);
            let mut miss: f64 = changes
                .entries()
                .iter()
                .map(|(target, amounts)| self.target_shortfall(n, *target, amounts))
                .sum();
            if !self.allowed(v, n) {
                miss += DISALLOWED;
            }
            if miss < best.0 {
                best = (miss, n);
            }
        }
        best.1
    }

    /// What placing `v` on `n` books, given where the DAG nodes placed so far are.
    fn changes(&self, v: NodeId, n: ComputeId) -> ChangeSet {
        let mut changes = ChangeSet::new();
        placement_changes(
            self.workload,
            self.topology,
            v,
            n,
            |u| self.at[u.index()],
            &mut changes,
        );
        changes
    }

    /// Whether `v`'s pin allows `n`'s kind and no placed member of its replica group is on
    /// `n`'s server.
    fn allowed(&self, v: NodeId, n: ComputeId) -> bool {
        self.workload.pin(v).allows(self.topology.node(n).spec.kind) && self.peer_on(v, n).is_none()
    }

    /// The first placed member of `v`'s replica group on `n`'s server.
    fn peer_on(&self, v: NodeId, n: ComputeId) -> Option<NodeId> {
        let server = self.topology.node(n).server;
        self.workload.replica_peers(v).find(|peer| {
            self.at[peer.index()].is_some_and(|m| self.topology.node(m).server == server)
        })
    }

    /// Whether `v` may go on `n`: allowed there, and every target it books on has room.
    fn fits(&self, v: NodeId, n: ComputeId) -> bool {
        self.allowed(v, n) && self.short_of(n, &self.changes(v, n)).is_empty()
    }

    /// `(free, capacity)` of `resource` on `target`.
    fn room(&self, target: Target, resource: Resource) -> (f64, f64) {
        match target {
            Target::Node(m) => (
                self.free[m.index()][resource.index()],
                self.capacity[m.index()][resource.index()],
            ),
            Target::Uplink(u) => {
                let u = u as usize;
                (
                    self.uplink_capacity[u] - self.uplink_used[u],
                    self.uplink_capacity[u],
                )
            }
        }
    }

    /// Whether `need` of `resource` on `target` does not fit, for an instance placed on `n`:
    /// on `n` itself every resource counts (one overcommitted already takes nothing more),
    /// elsewhere only an increase.
    fn over(&self, n: ComputeId, target: Target, resource: Resource, need: f64) -> bool {
        let counts = target == Target::Node(n) || need > EPSILON;
        counts && need > self.room(target, resource).0 + EPSILON
    }

    /// The resources an instance on `n` booking `changes` overcommits, target by target.
    fn short_of(&self, n: ComputeId, changes: &ChangeSet) -> Vec<(Target, Resource)> {
        let mut out = Vec::new();
        for (target, amounts) in changes.entries() {
            let resources: &[Resource] = match target {
                Target::Node(_) => &Resource::ALL,
                Target::Uplink(_) => &[Resource::Bandwidth],
            };
            for &r in resources {
                if self.over(n, *target, r, amounts[r.index()]) {
                    out.push((*target, r));
                }
            }
        }
        out
    }

    /// How far `amounts` on `target` is from fitting, for an instance placed on `n`: each
    /// overcommitted amount as a fraction of the capacity (one whole capacity plus the amount
    /// where the target has none of it), summed.
    fn target_shortfall(&self, n: ComputeId, target: Target, amounts: &Amounts) -> f64 {
        let resources: &[Resource] = match target {
            Target::Node(_) => &Resource::ALL,
            Target::Uplink(_) => &[Resource::Bandwidth],
        };
        let mut sum = 0.0;
        for &r in resources {
            let need = amounts[r.index()];
            if target != Target::Node(n) && need <= EPSILON {
                continue;
            }
            let (free, capacity) = self.room(target, r);
            let over = need - free;
            if over <= EPSILON {
                continue;
            }
            sum += if capacity > 0.0 {
                over / capacity
            } else {
                1.0 + over
            };
        }
        sum
    }

    /// The best-fit score of `v` on `n`: what `n` would have left of each resource `v` books
    /// there, as a fraction of its capacity, summed.
    fn leftover(&self, v: NodeId, n: ComputeId) -> f64 {
        let on_n = self.changes(v, n).on(n);
        let (free, capacity) = (&self.free[n.index()], &self.capacity[n.index()]);
        let mut sum = 0.0;
        for r in 0..RESOURCES {
            if capacity[r] > 0.0 && on_n[r] > 0.0 {
                sum += (free[r] - on_n[r]) / capacity[r];
            }
        }
        sum
    }

    /// `set_deployed_node`: books `v` on `n` and notes every rule it breaks.
    fn set_deployed_node(&mut self, v: NodeId, n: ComputeId) {
        let changes = self.changes(v, n);
        let pin = self.workload.pin(v);
        let shortfalls = self.short_of(n, &changes).into_iter();
        let breaches: Vec<Breach> = shortfalls
            .map(|shortfall| Breach::of_shortfall(n, shortfall))
            .chain((!pin.allows(self.topology.node(n).spec.kind)).then_some(Breach::Pin(pin)))
            .chain(self.peer_on(v, n).map(Breach::FaultDomain))
            .collect();
        if !breaches.is_empty() {
            self.violations.push(Violation {
                node: v,
                on: n,
                breaches,
            });
        }
        for (target, amounts) in changes.entries() {
            match *target {
                Target::Node(m) => {
                    for (f, a) in self.free[m.index()].iter_mut().zip(amounts) {
                        *f -= a;
                    }
                }
                Target::Uplink(u) => {
                    self.uplink_used[u as usize] += amounts[Resource::Bandwidth.index()]
                }
            }
        }
        self.at[v.index()] = Some(n);
        self.booked.push((n, changes));
    }

    /// The placement, recorded in `ledger`. A DAG node the walk never reached (none: every
    /// node of a DAG descends from a source) would go to node 0, reported.
    fn finish(mut self, algorithm: &'static str, ledger: &mut Ledger) -> Placement {
        for v in self.workload.dag().node_ids() {
            if self.at[v.index()].is_none() {
                self.set_deployed_node(v, ComputeId(0));
            }
        }
        for (n, changes) in &self.booked {
            ledger.apply(changes, 1.0);
            ledger.count(*n, 1);
        }
        Placement {
            algorithm,
            nodes: self.at.iter().map(|n| n.unwrap_or(ComputeId(0))).collect(),
            violations: self.violations,
            stopped_early: None,
        }
    }
}
