//! Every algorithm, on loads that fit and loads that do not: no node or link is overcommitted
//! and no fault domain shared without a reported violation, and the ledger holds exactly the
//! placement, messages included.

use std::collections::HashMap;
use std::time::Duration;

use microservices::apps::App;

use super::{Breach, Placer};
use crate::control::annealing::Annealing;
use crate::control::charges::{end_charges, pair_charges, ChangeSet, Target};
use crate::control::communication::Mechanism;
use crate::control::hcm::Hcm;
use crate::control::ilp::Ilp;
use crate::control::ledger::{Ledger, EPSILON};
use crate::control::topology::{Cluster, ComputeId};
use crate::control::workload::{capacity, Resource, Workload, RESOURCES};

fn placers() -> Vec<Box<dyn Placer>> {
    vec![
        Box::new(Hcm),
        Box::new(Annealing {
            moves_per_node: 200,
            ..Annealing::with_seed(5)
        }),
        Box::new(Ilp {
            time_limit: Duration::from_secs(1),
            ..Ilp::default()
        }),
    ]
}

fn check(app: App, rate: f64, cluster: &str) -> usize {
    let topology = Cluster::builtin(cluster).unwrap().topology();
    let workload = Workload::builtin(app, rate).unwrap();
    let mut reported = 0;
    for mut placer in placers() {
        let mut ledger = Ledger::new(&topology);
        let placement = placer.place(&workload, &topology, &mut ledger).unwrap();
        let name = placer.name();
        // Recompute what every node and uplink holds, straight from the flows: every instance's
        // own demand, the clients' messages at the sources, every other flow as a pair.
        let mut exact = ChangeSet::new();
        for v in workload.dag().node_ids() {
            let n = placement.node_of(v);
            exact.add_amounts(n, workload.demand(v, &topology.node(n).spec), 1.0);
        }
        for flow in workload.flows() {
            let b = placement.node_of(flow.callee);
            match flow.caller {
                None => end_charges(&topology, flow, b, Mechanism::Network, 1.0, &mut exact),
                Some(a) => pair_charges(&topology, flow, placement.node_of(a), b, 1.0, &mut exact),
            }
        }
        let mut used = vec![[0.0; RESOURCES]; topology.len()];
        let mut uplinks = vec![0.0; ledger.uplink_count()];
        for (target, amounts) in exact.entries() {
            match *target {
                Target::Node(n) => used[n.index()] = *amounts,
                Target::Uplink(u) => uplinks[u as usize] = amounts[Resource::Bandwidth.index()],
            }
        }
        let mut servers: HashMap<(u32, u32), u32> = HashMap::new();
        for v in workload.dag().node_ids() {
            let n = placement.node_of(v);
            if workload.replica_peers(v).next().is_some() {
                *servers
                    .entry((workload.replica_group(v), topology.node(n).server))
                    .or_default() += 1;
            }
        }
        for (i, node) in topology.nodes().iter().enumerate() {
            let n = ComputeId(i as u32);
            assert_eq!(
                ledger.used(n).map(|x| (x * 1e6).round()),
                used[i].map(|x| (x * 1e6).round()),
                "{name}: ledger of {i}"
            );
            let capacity = capacity(&node.spec);
            for r in Resource::ALL {
                if used[i][r.index()] > capacity[r.index()] + EPSILON {
                    assert!(
                        placement.violations.iter().any(|v| {
                            (v.on == n && v.breaches.contains(&Breach::Resource(r)))
                                || v.breaches.contains(&Breach::Remote(n, r))
                        }),
                        "{name}: {r} of node {i} overcommitted without a violation"
                    );
                }
            }
        }
        for (u, load) in uplinks.iter().enumerate() {
            assert!(
                (ledger.uplink_used(u as u32) - load).abs() < 1e-6,
                "{name}: uplink {u}"
            );
            if *load > ledger.uplink_capacity(u as u32) + EPSILON {
                assert!(
                    placement
                        .violations
                        .iter()
                        .any(|v| v.breaches.contains(&Breach::Uplink(u as u32))),
                    "{name}: uplink {u} overcommitted without a violation"
                );
            }
        }
        let shared: u32 = servers.values().map(|&c| c.saturating_sub(1)).sum();
        let fault_reports = placement
            .violations
            .iter()
            .filter(|v| {
                v.breaches
                    .iter()
                    .any(|b| matches!(b, Breach::FaultDomain(_)))
            })
            .count() as u32;
        assert!(
            fault_reports >= shared,
            "{name}: {shared} replicas share a server, {fault_reports} reported"
        );
        for v in &placement.violations {
            assert!(!v.breaches.is_empty());
        }
        reported += placement.violations.len();
    }
    reported
}

#[test]
fn a_load_that_fits_breaks_no_rule() {
    assert_eq!(check(App::IotTs, 5_000.0, "3xtype1"), 0);
    assert_eq!(check(App::NfvFin, 200_000.0, "2xtype2"), 0);
}

#[test]
fn an_overload_is_always_reported() {
    // Far beyond what the cluster can carry: every algorithm must overcommit, and say so.
    assert!(check(App::IotTs, 500_000.0, "3xtype1") > 0);
    // A single server cannot keep replicas apart.
    assert!(check(App::IotTs, 1_000.0, "1xsuperbeefy") > 0);
}
