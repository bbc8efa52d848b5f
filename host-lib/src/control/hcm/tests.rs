//! HCM on small hand-built topologies where the answer is known level by level, and the fast
//! searches against the oracle on random DAGs and clusters.

use microservices::apps::{Dag, DagBuilder, NodeId, Wiring};
use microservices::ServiceKind;
use proptest::prelude::*;

use super::oracle::Oracle;
use super::Hcm;
use crate::control::communication::{Mechanism, Network};
use crate::control::ledger::Ledger;
use crate::control::placement::{Breach, Placement, Placer};
use crate::control::profile::{builtin_profile, Pin, Profile};
use crate::control::topology::{
    builtin_server_types, Cluster, ComputeId, CoreClass, NodeKind, Topology,
};
use crate::control::workload::Workload;

/// Six Type1-SmartNIC servers, two to a rack, two racks to a pod: server `s` has its host at
/// node `2s` and its NIC at `2s + 1`; racks {s0, s1}, {s2, s3} form pod 0, rack {s4, s5} pod 1.
/// Messages cost no core time here, so that cores can be counted by hand (the level-by-level
/// answers); `messages_are_priced_where_they_land` below runs with the default costs.
fn six_servers() -> Topology {
    let mut cluster = Cluster::builtin("3xtype1").unwrap();
    cluster.servers[0].1 = 6;
    cluster.servers_per_rack = 2;
    cluster.racks_per_pod = 2;
    cluster.network = Network::without_message_cpu();
    cluster.topology()
}

/// A profile that needs exactly one core per million requests per second on any core.
fn one_core(pin: Pin) -> Profile {
    Profile {
        request_bytes: 0.0,
        core_us: [1.0, 1.0],
        memory_gb: 0.0,
        disk_gb: 0.0,
        stateful: true,
        pin,
    }
}

/// Tier `a` (one shard, `backups` backups) calls tier `b` (one shard, pinned by `pin`); one
/// million requests per second, so every primary needs one core.
fn pair(backups: u8, pin: Pin) -> Workload {
    let mut builder = DagBuilder::new("pair");
    let a = builder.tier("a", ServiceKind::Nat, 1, backups).unwrap();
    let b = builder.tier("b", ServiceKind::Count, 1, 0).unwrap();
    builder.connect(a, b, Wiring::All).unwrap();
    let dag = builder.build().unwrap();
    Workload::new(dag, vec![one_core(Pin::Any), one_core(pin)], 1e6).unwrap()
}

/// Runs both HCMs with the given nodes' cores taken beforehand, checks they agree, and
/// returns the placement.
fn place(workload: &Workload, topology: &Topology, cores_left: &[(u32, f64)]) -> Placement {
    let mut ledger = Ledger::new(topology);
    for &(n, left) in cores_left {
        let n = ComputeId(n);
        let taken = ledger.capacity(n)[0] - left;
        ledger.take(n, &[taken, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }
    place_on(workload, topology, ledger)
}

/// Runs both HCMs from `ledger`, checks they agree, and returns the placement.
fn place_on(workload: &Workload, topology: &Topology, mut ledger: Ledger) -> Placement {
    let mut oracle_ledger = ledger.clone();
    let fast = Hcm.place(workload, topology, &mut ledger).unwrap();
    let oracle = Oracle
        .place(workload, topology, &mut oracle_ledger)
        .unwrap();
    assert_eq!(fast.nodes, oracle.nodes);
    assert_eq!(fast.violations, oracle.violations);
    assert_eq!(ledger, oracle_ledger);
    fast
}

fn nodes(placement: &Placement) -> Vec<u32> {
    placement.nodes.iter().map(|n| n.0).collect()
}

#[test]
fn descendant_goes_to_the_closest_level_with_room() {
    let topology = six_servers();
    let w = pair(0, Pin::Any);
    // Room everywhere: same node.
    assert_eq!(nodes(&place(&w, &topology, &[])), [0, 0]);
    // Node 0 has room for `a` only: the other node of the server (its NIC).
    assert_eq!(nodes(&place(&w, &topology, &[(0, 1.0)])), [0, 1]);
    // The whole server is full after `a`: a NIC of the rack before its host.
    assert_eq!(nodes(&place(&w, &topology, &[(0, 1.0), (1, 0.0)])), [0, 3]);
    // ... then the host of the rack.
    assert_eq!(
        nodes(&place(&w, &topology, &[(0, 1.0), (1, 0.0), (3, 0.0)])),
        [0, 2]
    );
    // Rack full: the pod, best fit (node 6 has the least left over), not first fit.
    let rack_full = [(0, 1.0), (1, 0.0), (2, 0.0), (3, 0.0), (6, 2.0)];
    assert_eq!(nodes(&place(&w, &topology, &rack_full)), [0, 6]);
    // Pod full: another pod.
    let pod_full = [
        (0, 1.0),
        (1, 0.0),
        (2, 0.0),
        (3, 0.0),
        (4, 0.0),
        (5, 0.0),
        (6, 0.0),
        (7, 0.0),
        (10, 0.5),
    ];
    assert_eq!(nodes(&place(&w, &topology, &pod_full)), [0, 8]);
}

#[test]
fn source_takes_the_first_fit_and_a_full_cluster_is_reported() {
    let topology = six_servers();
    let w = pair(0, Pin::Any);
    // Nodes 0 to 2 are too full for `a`: first fit is node 3, and `b` joins it.
    let full = [(0, 0.5), (1, 0.0), (2, 0.9)];
    assert_eq!(nodes(&place(&w, &topology, &full)), [3, 3]);
    // No room anywhere: each instance goes to the node closest to fitting it (node 9, then,
    // once `a` overcommits it, the first of the others) and both are reported.
    let none: Vec<(u32, f64)> = (0..12)
        .map(|n| (n, if n == 9 { 0.5 } else { 0.0 }))
        .collect();
    let placement = place(&w, &topology, &none);
    assert_eq!(nodes(&placement), [9, 0]);
    assert_eq!(placement.violations.len(), 2);
    assert!(placement
        .violations
        .iter()
        .all(|v| v.breaches == [Breach::Resource(crate::control::workload::Resource::Cpu)]));
}

#[test]
fn backups_never_share_a_server_with_their_primary() {
    let topology = six_servers();
    let w = pair(2, Pin::Any);
    // Nodes: a = 0, its backups 1 and 2, b = 3. The backups skip server 0 (nodes 0, 1): the
    // first goes to the rack's other NIC, the second to another server's NIC or host.
    let placement = place(&w, &topology, &[]);
    let at = |v: u32| placement.node_of(NodeId(v));
    assert_eq!(at(0), ComputeId(0));
    assert_eq!(at(1), ComputeId(3));
    let servers: Vec<u32> = (0..3).map(|v| topology.node(at(v)).server).collect();
    assert!(servers[0] != servers[1] && servers[1] != servers[2] && servers[0] != servers[2]);
    assert!(placement.violations.is_empty());
    // With a single server the rule cannot hold: the backups are reported, never hidden.
    let mut cluster = Cluster::builtin("3xtype1").unwrap();
    cluster.servers[0].1 = 1;
    let single = cluster.topology();
    let placement = place(&w, &single, &[]);
    assert_eq!(
        placement
            .violations
            .iter()
            .filter(|v| matches!(v.breaches[..], [Breach::FaultDomain(_)]))
            .count(),
        2
    );
}

#[test]
fn pins_are_respected() {
    let topology = six_servers();
    let w = pair(0, Pin::Host);
    assert_eq!(nodes(&place(&w, &topology, &[])), [0, 0]);
    // Host-only `b` skips the NICs of the server and of the rack for the rack's other host.
    assert_eq!(nodes(&place(&w, &topology, &[(0, 1.0)])), [0, 2]);
    // `a` lands on the NIC (node 0 is full); `b` again skips every NIC.
    let placement = place(&w, &topology, &[(0, 0.0)]);
    assert_eq!(nodes(&placement), [1, 2]);
    assert!(placement.violations.is_empty());
}

/// The built-in profile of every tier of `dag`, pinned to SmartNICs.
fn nic_pinned(dag: &Dag) -> Vec<Profile> {
    dag.tiers()
        .iter()
        .map(|t| Profile {
            pin: Pin::Nic,
            ..builtin_profile(t.kind)
        })
        .collect()
}

#[test]
fn messages_are_priced_where_they_land() {
    // NIC-pinned `a` (NAT) calls `b` (Count) at 100,000 calls/s, default message costs. `a`
    // goes to the first NIC, booking its call to `b` as a network end until `b` is placed;
    // that NIC then has less room than `b`'s own work needs, but placing `b` beside `a`
    // turns both ends of the call into queue messages and releases `a`'s network end, which
    // more than pays for it: HCM finds it (the fast search through the release sites, the
    // oracle by scanning) and the ledger holds the exact pair.
    let topology = Cluster::builtin("3xtype1").unwrap().topology();
    let mut builder = DagBuilder::new("pair");
    let a = builder.tier("a", ServiceKind::Nat, 1, 0).unwrap();
    let b = builder.tier("b", ServiceKind::Count, 1, 0).unwrap();
    builder.connect(a, b, Wiring::All).unwrap();
    let dag = builder.build().unwrap();
    let profiles = nic_pinned(&dag);
    let rate = 1e5;
    let w = Workload::new(dag, profiles.clone(), rate).unwrap();
    let network = topology.network();
    let per_call = |mechanism| {
        2.0 * rate * network.message_us(mechanism, NodeKind::Nic, CoreClass::Wimpy) / 1e6
    };
    let (network_end, queue_end) = (per_call(Mechanism::Network), per_call(Mechanism::Queue));
    let own = |p: &Profile| rate * p.us_on(CoreClass::Wimpy) / 1e6;
    let (own_a, own_b) = (own(&profiles[0]), own(&profiles[1]));
    let a_total = own_a + 2.0 * network_end; // the clients' requests and the call to `b`
    let b_change = own_b + 2.0 * queue_end - network_end;
    assert!(b_change < own_b);
    let left_after_a = (b_change + own_b) / 2.0;
    let placement = place(&w, &topology, &[(1, a_total + left_after_a)]);
    assert_eq!(nodes(&placement), [1, 1]);
    assert!(placement.violations.is_empty());
    let mut ledger = Ledger::new(&topology);
    ledger.take(
        ComputeId(1),
        &[12.0 - a_total - left_after_a, 0.0, 0.0, 0.0, 0.0, 0.0],
    );
    Hcm.place(&w, &topology, &mut ledger).unwrap();
    let exact = own_a + own_b + network_end + 2.0 * queue_end;
    let left = ledger.free(ComputeId(1))[0];
    assert!(
        (left - (a_total + left_after_a - exact)).abs() < 1e-9,
        "{left}"
    );
}

#[test]
fn a_source_goes_where_releasing_its_peers_bookings_makes_room() {
    // Sources `a` and `c` (IPsec) both call five tiers `b1`..`b5` (Count), all NIC-pinned, with
    // the default message costs. `a` takes the first NIC (node 1) and the `b`s join it, each
    // booking its call from `c` as a provisional network end. Placing `c` on node 1 then turns
    // five network ends into queue messages: its booking there is its own demand plus the
    // clients' network end less five times (network end - two queue ends), below its own
    // demand on either core class (IPsec: fewer cores on a NIC). Node 1 is left with room
    // between the two: the fast search, which prunes with the own demand, must find node 1
    // among the release sites, as the oracle's scan does.
    let topology = Cluster::builtin("3xtype1").unwrap().topology();
    let mut builder = DagBuilder::new("fan-in");
    let a = builder.tier("a", ServiceKind::IpSec, 1, 0).unwrap();
    let c = builder.tier("c", ServiceKind::IpSec, 1, 0).unwrap();
    for i in 1..=5 {
        let b = builder
            .tier(format!("b{i}"), ServiceKind::Count, 1, 0)
            .unwrap();
        builder.connect(a, b, Wiring::All).unwrap();
        builder.connect(c, b, Wiring::All).unwrap();
    }
    let dag = builder.build().unwrap();
    let profiles = nic_pinned(&dag);
    let w = Workload::new(dag, profiles, 2e5).unwrap();
    let (a, c) = (NodeId(0), NodeId(1));
    assert_eq!(w.dag().sources().collect::<Vec<_>>(), [a, c]);
    let nic = ComputeId(1);
    let outstanding = crate::control::workload::Resource::Outstanding.index();
    // What `a` and the `b`s book on node 1, placed in the walk's order.
    let mut placed = vec![None; w.dag().len()];
    let mut booked = 0.0;
    let mut changes = crate::control::charges::ChangeSet::new();
    for v in [0, 2, 3, 4, 5, 6].map(NodeId) {
        let at = |u: NodeId| placed[u.index()];
        crate::control::charges::placement_changes(&w, &topology, v, nic, at, &mut changes);
        booked += changes.on(nic)[outstanding];
        placed[v.index()] = Some(nic);
    }
    let at = |u: NodeId| placed[u.index()];
    crate::control::charges::placement_changes(&w, &topology, c, nic, at, &mut changes);
    let c_change = changes.on(nic)[outstanding];
    let c_own = [CoreClass::Beefy, CoreClass::Wimpy]
        .map(|class| w.demand_on(c, class)[outstanding])
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    assert!(c_change < c_own, "{c_change} {c_own}");
    // Busy cores beforehand so that node 1 has (c_change + c_own) / 2 left after the `b`s.
    let mut ledger = Ledger::new(&topology);
    let capacity = ledger.capacity(nic)[outstanding];
    let taken = capacity - booked - (c_change + c_own) / 2.0;
    ledger.take(nic, &[taken, 0.0, 0.0, 0.0, 0.0, taken]);
    let placement = place_on(&w, &topology, ledger);
    assert_eq!(nodes(&placement), [1; 7]);
    assert!(placement.violations.is_empty());
}

/// A random DAG: up to five tiers of random services, shards and backups, each tier calling
/// some later ones.
fn arbitrary_workload() -> impl Strategy<Value = Workload> {
    let tier = (0..16usize, 1..5u16, 0..2u8, 0..3u8);
    (
        prop::collection::vec(tier, 1..6),
        prop::collection::vec(any::<bool>(), 15),
        1e3..4e5f64,
    )
        .prop_map(|(tiers, links, rate)| {
            let mut builder = DagBuilder::new("random");
            let mut profiles = Vec::new();
            let ids: Vec<_> = tiers
                .iter()
                .enumerate()
                .map(|(i, &(kind, shards, backups, pin))| {
                    let kind = ServiceKind::ALL[kind];
                    let mut profile = builtin_profile(kind);
                    profile.pin = [Pin::Any, Pin::Host, Pin::Nic][usize::from(pin)];
                    profiles.push(profile);
                    builder
                        .tier(format!("t{i}"), kind, shards, backups)
                        .unwrap()
                })
                .collect();
            let mut link = links.into_iter().cycle();
            for i in 0..ids.len() {
                for j in i + 1..ids.len() {
                    if link.next() == Some(true) {
                        let shards = tiers[j].1;
                        builder
                            .connect(ids[i], ids[j], Wiring::Spread(shards.min(2)))
                            .unwrap();
                    }
                }
            }
            Workload::new(builder.build().unwrap(), profiles, rate).unwrap()
        })
}

/// A random cluster: up to eight servers of the built-in types, racked in small racks and pods.
fn arbitrary_topology() -> impl Strategy<Value = Topology> {
    (
        prop::collection::vec((0..5usize, 1..4u32), 1..4),
        1..4u32,
        1..3u32,
    )
        .prop_map(|(servers, per_rack, per_pod)| {
            let types = builtin_server_types();
            let servers = servers
                .into_iter()
                .map(|(t, count)| (types[t].clone(), count))
                .collect();
            let mut cluster = Cluster::new("random", servers);
            cluster.servers_per_rack = per_rack;
            cluster.racks_per_pod = per_pod;
            cluster.topology()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn fast_hcm_equals_the_oracle(
        workloads in prop::collection::vec(arbitrary_workload(), 1..4),
        topology in arbitrary_topology(),
        preload in prop::collection::vec((any::<prop::sample::Index>(), 0.0..1.0f64), 0..6),
    ) {
        // Some nodes partly busy beforehand (a share of their cores), so that nodes run
        // nearly full, then several applications one after another on the same ledger, as a
        // cluster fills.
        let mut fast_ledger = Ledger::new(&topology);
        for (node, share) in &preload {
            let n = ComputeId(node.index(topology.len()) as u32);
            let cores = share * fast_ledger.capacity(n)[0];
            fast_ledger.take(n, &[cores, 0.0, 0.0, 0.0, 0.0, cores]);
        }
        let mut oracle_ledger = fast_ledger.clone();
        for workload in &workloads {
            let fast = Hcm.place(workload, &topology, &mut fast_ledger).unwrap();
            let oracle = Oracle.place(workload, &topology, &mut oracle_ledger).unwrap();
            prop_assert_eq!(&fast.nodes, &oracle.nodes);
            prop_assert_eq!(&fast.violations, &oracle.violations);
        }
        prop_assert_eq!(fast_ledger, oracle_ledger);
    }
}
