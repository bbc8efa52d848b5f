//! What placing one instance changes in the cluster: its own work, memory and disk on its
//! computing node, and each of its flows priced by the communication model once the other end
//! is known. A flow whose other end is not placed yet is booked as if that end were on another
//! server (core time of a network message, the access links); when the other end is placed
//! that provisional booking is released for the exact one. Every placer and the evaluator go
//! through [`placement_changes`], so they all count the same cores and the same link loads.

use microservices::apps::NodeId;

use super::communication::{Link, Mechanism};
use super::topology::{ComputeId, Topology};
use super::workload::{Amounts, Flow, Resource, Workload, RESOURCES};

/// Where an amount lands: a computing node, or an uplink (amount in [`Resource::Bandwidth`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// A computing node.
    Node(ComputeId),
    /// A ToR's or a pod's uplinks (see [`Link::Uplink`]).
    Uplink(u32),
}

/// Changes to the amounts in use of a few targets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChangeSet {
    entries: Vec<(Target, Amounts)>,
}

impl ChangeSet {
    /// No change.
    pub fn new() -> Self {
        ChangeSet::default()
    }

    /// Forgets every change, keeping the allocation.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The changes, one entry per target, in the order first touched.
    pub fn entries(&self) -> &[(Target, Amounts)] {
        &self.entries
    }

    fn slot(&mut self, target: Target) -> &mut Amounts {
        let i = match self.entries.iter().position(|(t, _)| *t == target) {
            Some(i) => i,
            None => {
                self.entries.push((target, [0.0; RESOURCES]));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }

    /// Adds `amount` of `resource` to `target`.
    pub fn add(&mut self, target: Target, resource: Resource, amount: f64) {
        self.slot(target)[resource.index()] += amount;
    }

    /// Adds busy cores to node `n`: its CPU and the outstanding requests they bring.
    pub fn add_cores(&mut self, n: ComputeId, cores: f64) {
        let slot = self.slot(Target::Node(n));
        slot[Resource::Cpu.index()] += cores;
        slot[Resource::Outstanding.index()] += cores;
    }

    /// Adds `sign` times `amounts` to node `n`.
    pub fn add_amounts(&mut self, n: ComputeId, amounts: &Amounts, sign: f64) {
        let slot = self.slot(Target::Node(n));
        for (s, a) in slot.iter_mut().zip(amounts) {
            *s += sign * a;
        }
    }

    /// Adds `gbps` to the load of `link`.
    pub fn add_link(&mut self, link: Link, gbps: f64) {
        match link {
            Link::Port(n) => self.add(Target::Node(n), Resource::Bandwidth, gbps),
            Link::Pcie(n) => self.add(Target::Node(n), Resource::Pcie, gbps),
            Link::Uplink(u) => self.add(Target::Uplink(u), Resource::Bandwidth, gbps),
        }
    }

    /// The change on node `n` (zero if untouched).
    pub fn on(&self, n: ComputeId) -> Amounts {
        self.entries
            .iter()
            .find(|(t, _)| *t == Target::Node(n))
            .map_or([0.0; RESOURCES], |(_, a)| *a)
    }
}

/// Books `sign` times what one end of `flow`, on `n`, costs when its messages take
/// `mechanism`: core time per message on `n`, and for a network message the links from `n`
/// to its ToR and the SmartNIC cores that relay a host's messages.
pub fn end_charges(
    topology: &Topology,
    flow: &Flow,
    n: ComputeId,
    mechanism: Mechanism,
    sign: f64,
    out: &mut ChangeSet,
) {
    let network = topology.network();
    let spec = &topology.node(n).spec;
    let messages = flow.rate * flow.messages_per_end();
    let us = network.message_us(mechanism, spec.kind, spec.core_class);
    out.add_cores(n, sign * messages * us / 1e6);
    if mechanism != Mechanism::Network {
        return;
    }
    let gbps = flow.gbps();
    let relays = topology.relays_through_nics(n);
    topology.for_each_access_link(n, &mut |link, share| {
        out.add_link(link, sign * share * gbps);
        if let (true, Link::Port(nic)) = (relays, link) {
            out.add_cores(nic, sign * share * messages * network.cpu.forward_us / 1e6);
        }
    });
}

/// Books `sign` times what `flow` costs with its ends on `a` and `b`: both ends, and the links
/// only a pair crosses (a PCIe link, uplinks).
pub fn pair_charges(
    topology: &Topology,
    flow: &Flow,
    a: ComputeId,
    b: ComputeId,
    sign: f64,
    out: &mut ChangeSet,
) {
    let mechanism = topology.mechanism(a, b);
    end_charges(topology, flow, a, mechanism, sign, out);
    end_charges(topology, flow, b, mechanism, sign, out);
    let gbps = sign * flow.gbps();
    match mechanism {
        Mechanism::Queue => {}
        Mechanism::Pcie => topology.for_each_path_link(a, b, &mut |link, _| {
            out.add_link(link, gbps);
        }),
        Mechanism::Network => topology.for_each_uplink(a, b, &mut |link| out.add_link(link, gbps)),
    }
}

/// Everything placing `v` on `n` changes, given where the other nodes are (`placed`, which
/// must say `None` for `v` itself): `v`'s own demand, and for each of its flows either the
/// exact pair (releasing the provisional booking of a placed peer) or a provisional end.
/// Removing `v` from `n` is the same set negated.
pub fn placement_changes(
    workload: &Workload,
    topology: &Topology,
    v: NodeId,
    n: ComputeId,
    placed: impl Fn(NodeId) -> Option<ComputeId>,
    out: &mut ChangeSet,
) {
    out.clear();
    out.add_amounts(n, workload.demand(v, &topology.node(n).spec), 1.0);
    for flow in workload.flows_of(v) {
        match flow.peer(v).and_then(&placed) {
            None => end_charges(topology, flow, n, Mechanism::Network, 1.0, out),
            Some(m) => {
                end_charges(topology, flow, m, Mechanism::Network, -1.0, out);
                pair_charges(topology, flow, n, m, 1.0, out);
            }
        }
    }
}

/// Nodes whose provisional bookings placing `v` may release (where its placed peers are, and
/// the SmartNICs relaying for a placed peer on a host), sorted: a search that prunes with
/// `v`'s own demand must look at these besides.
pub fn release_sites(
    workload: &Workload,
    topology: &Topology,
    v: NodeId,
    placed: impl Fn(NodeId) -> Option<ComputeId>,
) -> Vec<ComputeId> {
    let mut sites = Vec::new();
    for flow in workload.flows_of(v) {
        if let Some(m) = flow.peer(v).and_then(&placed) {
            sites.push(m);
            if topology.relays_through_nics(m) {
                sites.extend(topology.server_nics(m));
            }
        }
    }
    sites.sort_unstable();
    sites.dedup();
    sites
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::communication::Network;
    use crate::control::topology::Cluster;
    use crate::control::workload::nat_calls_count;

    /// `a` (NAT) calls `b` (Count), 100,000 calls per second of 512 bytes.
    fn pair() -> Workload {
        nat_calls_count(0, 100_000.0)
    }

    /// What the whole application holds with `a` on `x` and `b` on `y`.
    fn total(workload: &Workload, topology: &Topology, x: u32, y: u32) -> ChangeSet {
        let mut first = ChangeSet::new();
        placement_changes(
            workload,
            topology,
            NodeId(0),
            ComputeId(x),
            |_| None,
            &mut first,
        );
        let mut second = ChangeSet::new();
        let at = |u: NodeId| (u == NodeId(0)).then_some(ComputeId(x));
        placement_changes(workload, topology, NodeId(1), ComputeId(y), at, &mut second);
        for (target, amounts) in second.entries() {
            for r in Resource::ALL {
                first.add(*target, r, amounts[r.index()]);
            }
        }
        first
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn a_call_costs_by_mechanism() {
        // Two Type2 servers: host 0, NICs 1-4; host 5, NICs 6-9.
        let topology = Cluster::builtin("2xtype2").unwrap().topology();
        let network = Network::default();
        let w = pair();
        let calls = 100_000.0;
        let own = |v: u32, n: u32| workload_cores(&w, &topology, v, n);
        let cpu = |set: &ChangeSet, n: u32| set.on(ComputeId(n))[Resource::Cpu.index()];
        let port = |set: &ChangeSet, n: u32| set.on(ComputeId(n))[Resource::Bandwidth.index()];
        let pcie = |set: &ChangeSet, n: u32| set.on(ComputeId(n))[Resource::Pcie.index()];
        let gbps = calls * 512.0 * 8.0 / 1e9;
        let wimpy = network.cpu.driver_us[1];
        // Both on NIC 1: the call costs a queue message at each end, four in all, and loads
        // no link (the port carries the clients' requests only).
        let same = total(&w, &topology, 1, 1);
        let queue = 4.0 * calls * network.cpu.queue_us[1] / 1e6;
        assert!(close(cpu(&same, 1), own(0, 1) + own(1, 1) + queue));
        assert!(close(port(&same, 1), gbps));
        // NIC 1 to NIC 2 of the same server: out and in through the ToR, both ports loaded.
        let tor = total(&w, &topology, 1, 2);
        assert!(close(cpu(&tor, 1), own(0, 1) + 2.0 * calls * wimpy / 1e6));
        assert!(close(port(&tor, 1), 2.0 * gbps) && close(port(&tor, 2), gbps));
        // Host 0 to its NIC 3: PCIe, a driver message at each end, the NIC's PCIe link only
        // (besides the quarter of the clients' requests each NIC relays to the host).
        let dma = total(&w, &topology, 0, 3);
        let beefy = network.cpu.driver_us[0];
        assert!(close(cpu(&dma, 0), own(0, 0) + 2.0 * calls * beefy / 1e6));
        assert!(close(pcie(&dma, 3), 1.25 * gbps) && close(port(&dma, 3), 0.25 * gbps));
        // Host 0 to NIC 6 of the other server: the host's Linux stack, its four NICs relay a
        // quarter each over PCIe and their ports (of the call and of the clients' requests).
        let far = total(&w, &topology, 0, 6);
        let host_us = beefy + network.cpu.kernel_us;
        assert!(close(cpu(&far, 0), own(0, 0) + 2.0 * calls * host_us / 1e6));
        let relay = 0.25 * 2.0 * calls * network.cpu.forward_us / 1e6;
        for nic in 1..5 {
            assert!(close(cpu(&far, nic), 2.0 * relay));
            assert!(close(pcie(&far, nic), gbps / 2.0) && close(port(&far, nic), gbps / 2.0));
        }
        assert!(close(port(&far, 6), gbps));
        // The cheaper the mechanism, the fewer cores in all.
        let cores = |set: &ChangeSet| -> f64 {
            set.entries()
                .iter()
                .map(|(_, a)| a[Resource::Cpu.index()])
                .sum()
        };
        assert!(cores(&same) < cores(&tor));
        assert!(cores(&total(&w, &topology, 0, 0)) < cores(&dma));
        assert!(cores(&dma) < cores(&far));
        // The clients' requests arrive at `a` over the network wherever it is.
        assert!(cpu(&same, 1) > own(0, 1) + queue);
    }

    fn workload_cores(w: &Workload, topology: &Topology, v: u32, n: u32) -> f64 {
        let spec = &topology.node(ComputeId(n)).spec;
        let own = w.demand(NodeId(v), spec)[Resource::Cpu.index()];
        // `a` also takes the clients' requests over the network.
        if v == 0 {
            let network = topology.network();
            let us = network.message_us(Mechanism::Network, spec.kind, spec.core_class);
            own + 2.0 * w.rate() * us / 1e6
        } else {
            own
        }
    }

    #[test]
    fn the_order_of_placement_does_not_matter() {
        // Placed `a` then `b`, or `b` then `a`, the provisional bookings cancel and leave the
        // exact cost: both own demands, the clients' messages at `a`, and the pair.
        let topology = Cluster::builtin("2xtype2").unwrap().topology();
        let w = pair();
        let flows = w.flows();
        for (x, y) in [(0, 0), (0, 3), (1, 6), (0, 5), (2, 1), (7, 0)] {
            let (x, y) = (ComputeId(x), ComputeId(y));
            let mut exact = ChangeSet::new();
            exact.add_amounts(x, w.demand(NodeId(0), &topology.node(x).spec), 1.0);
            exact.add_amounts(y, w.demand(NodeId(1), &topology.node(y).spec), 1.0);
            let client = flows.iter().find(|f| f.caller.is_none()).unwrap();
            end_charges(&topology, client, x, Mechanism::Network, 1.0, &mut exact);
            let call = flows.iter().find(|f| f.caller.is_some()).unwrap();
            pair_charges(&topology, call, x, y, 1.0, &mut exact);
            let mut reversed = ChangeSet::new();
            let at_b = |u: NodeId| (u == NodeId(1)).then_some(y);
            placement_changes(&w, &topology, NodeId(0), x, at_b, &mut reversed);
            let mut b_alone = ChangeSet::new();
            placement_changes(&w, &topology, NodeId(1), y, |_| None, &mut b_alone);
            for (target, amounts) in b_alone.entries() {
                for r in Resource::ALL {
                    reversed.add(*target, r, amounts[r.index()]);
                }
            }
            for built in [total(&w, &topology, x.0, y.0), reversed] {
                let mut targets: Vec<Target> = exact
                    .entries()
                    .iter()
                    .chain(built.entries())
                    .map(|(t, _)| *t)
                    .collect();
                targets.sort_unstable();
                targets.dedup();
                let get = |set: &ChangeSet, t: Target| {
                    set.entries()
                        .iter()
                        .find(|(u, _)| *u == t)
                        .map_or([0.0; RESOURCES], |(_, a)| *a)
                };
                for t in targets {
                    let (want, got) = (get(&exact, t), get(&built, t));
                    for r in 0..RESOURCES {
                        assert!((want[r] - got[r]).abs() < 1e-12, "{x:?} {y:?} {t:?}");
                    }
                }
            }
        }
        let sites = release_sites(&w, &topology, NodeId(1), |u| {
            (u == NodeId(0)).then_some(ComputeId(0))
        });
        assert_eq!(sites, (0..5).map(ComputeId).collect::<Vec<_>>());
    }
}
