//! The evaluator: scores any placement of one application with one model: per-node
//! utilisation (the instances' work and their messages), bottleneck throughput over cores,
//! ports, PCIe links and uplinks, end-to-end latency along the DAG with queueing at busy nodes
//! and links, cluster power, requests per joule and cost efficiency over years of ownership
//! (docs/placement.md gives the model).

use serde::Serialize;

use microservices::apps::{NodeId, Role};

use super::communication::Link;
use super::ledger::Ledger;
use super::placement::{commit, Placement};
use super::topology::{ComputeId, Topology};
use super::workload::{Amounts, Resource, Workload};

/// Electricity price, $ per kWh (E3 section 5.5: the average U.S. price).
pub const ELECTRICITY_USD_PER_KWH: f64 = 0.0733;
/// Seconds in a (365-day) year.
pub const YEAR_S: f64 = 365.0 * 24.0 * 3600.0;

/// One computing node's share of the evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeScore {
    /// `s3/nic0`.
    pub label: String,
    /// Instances of the application on it.
    pub instances: u32,
    /// CPU utilisation at the offered rate.
    pub utilisation: f64,
    /// Power at the offered rate, W.
    pub power_w: f64,
}

/// The evaluator's scores of one placement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Offered requests per second.
    pub offered_rps: f64,
    /// Per computing node, in topology order.
    pub nodes: Vec<NodeScore>,
    /// Highest rate the placement sustains before a node runs out of cores or a link (ports,
    /// PCIe, uplinks) of bandwidth.
    pub bottleneck_rps: f64,
    /// What limits it: `s0/nic0 cores`, `s1/nic0 ports`, `uplink 3`.
    pub bottleneck: String,
    /// Mean end-to-end latency at the offered rate along the DAG's critical path,
    /// microseconds; `None` when a node or link is overloaded at that rate.
    pub latency_us: Option<f64>,
    /// Cluster power at the offered rate, W.
    pub power_w: f64,
    /// Cluster power at the bottleneck rate, W.
    pub peak_power_w: f64,
    /// Energy efficiency at the bottleneck rate (E3's peak-utilisation figure).
    pub requests_per_joule: f64,
    /// Energy efficiency at the offered rate.
    pub offered_requests_per_joule: f64,
    /// Requests per dollar over one year of ownership at the bottleneck rate.
    pub cost_efficiency_1y: f64,
    /// Requests per dollar over five years of ownership at the bottleneck rate.
    pub cost_efficiency_5y: f64,
}

/// Requests per dollar over `years` of ownership: throughput times time over purchase cost
/// plus the electricity of that time (E3 section 5.5).
pub fn cost_efficiency(throughput_rps: f64, power_w: f64, capex_usd: f64, years: f64) -> f64 {
    let seconds = years * YEAR_S;
    let energy_kwh = power_w * seconds / 3600.0 / 1000.0;
    throughput_rps * seconds / (capex_usd + energy_kwh * ELECTRICITY_USD_PER_KWH)
}

/// Nominal capacity of `topology` for `workload`, requests per second: every core of the
/// cluster busy, each request costing its [`Workload::best_core_us_per_request`]. Offered
/// loads are given as fractions of it.
pub fn nominal_rps(workload: &Workload, topology: &Topology) -> f64 {
    let unit = if workload.rate() > 0.0 {
        workload.clone()
    } else {
        match workload.with_rate(1.0) {
            Ok(w) => w,
            Err(_) => return 0.0,
        }
    };
    let cores: f64 = topology
        .nodes()
        .iter()
        .map(|n| f64::from(n.spec.cores))
        .sum();
    let per_request = unit.best_core_us_per_request();
    if per_request > 0.0 {
        cores * 1e6 / per_request
    } else {
        0.0
    }
}

/// What a placement of an application holds on the cluster at its offered rate: every
/// node's resources (its instances' work and their messages) and every uplink's load.
#[derive(Clone, Debug, PartialEq)]
pub struct Usage {
    /// Per computing node, indexed by [`ComputeId`].
    pub nodes: Vec<Amounts>,
    /// Per uplink.
    pub uplinks: Vec<f64>,
    /// Instances per computing node.
    pub instances: Vec<u32>,
}

impl Usage {
    /// The usage of `placement` on an otherwise empty cluster, counted as the placers count it.
    pub fn of(workload: &Workload, topology: &Topology, placement: &Placement) -> Usage {
        let mut ledger = Ledger::new(topology);
        commit(
            workload,
            topology,
            &mut ledger,
            &placement.nodes,
            placement.algorithm,
            None,
        );
        let ids = (0..topology.len() as u32).map(ComputeId);
        Usage {
            nodes: ids.clone().map(|n| ledger.used(n)).collect(),
            uplinks: (0..ledger.uplink_count() as u32)
                .map(|u| ledger.uplink_used(u))
                .collect(),
            instances: ids.map(|n| ledger.instances(n)).collect(),
        }
    }

    /// Load of `link` at the offered rate, Gb/s per direction.
    pub fn link_load(&self, link: Link) -> f64 {
        match link {
            Link::Port(n) => self.nodes[n.index()][Resource::Bandwidth.index()],
            Link::Pcie(n) => self.nodes[n.index()][Resource::Pcie.index()],
            Link::Uplink(u) => self.uplinks[u as usize],
        }
    }
}

/// Scores `placement` of `workload` on an otherwise idle `topology`.
pub fn evaluate(workload: &Workload, topology: &Topology, placement: &Placement) -> Evaluation {
    let rate = workload.rate();
    let count = topology.len();
    let usage = Usage::of(workload, topology, placement);
    // Everything scales with the offered rate: per request, the cores of every node and the
    // load of every link.
    let per_request = |x: f64| if rate > 0.0 { x / rate } else { 0.0 };
    let mut bottleneck = (f64::INFINITY, String::from("none"));
    let mut limit = |capacity: f64, load: f64, what: &dyn Fn() -> String| {
        let per = per_request(load);
        if per > 0.0 && capacity / per < bottleneck.0 {
            bottleneck = (capacity / per, what());
        }
    };
    for (i, node) in topology.nodes().iter().enumerate() {
        let n = ComputeId(i as u32);
        let used = &usage.nodes[i];
        limit(
            f64::from(node.spec.cores),
            used[Resource::Cpu.index()],
            &|| format!("{} cores", topology.label(n)),
        );
        limit(
            node.spec.bandwidth_gbps,
            used[Resource::Bandwidth.index()],
            &|| format!("{} ports", topology.label(n)),
        );
        limit(node.spec.pcie_gbps, used[Resource::Pcie.index()], &|| {
            format!("{} PCIe", topology.label(n))
        });
    }
    for (u, load) in usage.uplinks.iter().enumerate() {
        limit(topology.uplink_capacity(u as u32), *load, &|| {
            format!("uplink {u}")
        });
    }
    let utilisation_at = |x: f64, i: usize| {
        let cores = f64::from(topology.nodes()[i].spec.cores);
        if cores > 0.0 {
            per_request(usage.nodes[i][Resource::Cpu.index()]) * x / cores
        } else {
            0.0
        }
    };
    let power_at = |x: f64, i: usize| {
        let spec = &topology.nodes()[i].spec;
        spec.idle_w + utilisation_at(x, i).min(1.0) * (spec.peak_w - spec.idle_w)
    };
    let cluster_power = |x: f64| (0..count).map(|i| power_at(x, i)).sum::<f64>();
    let peak = if bottleneck.0.is_finite() {
        bottleneck.0
    } else {
        rate
    };
    let peak_power_w = cluster_power(peak);
    let utilisation: Vec<f64> = (0..count).map(|i| utilisation_at(rate, i)).collect();
    Evaluation {
        offered_rps: rate,
        nodes: (0..count)
            .map(|i| NodeScore {
                label: topology.label(ComputeId(i as u32)),
                instances: usage.instances[i],
                utilisation: utilisation[i],
                power_w: power_at(rate, i),
            })
            .collect(),
        bottleneck_rps: peak,
        bottleneck: bottleneck.1,
        latency_us: latency_us(workload, topology, placement, &utilisation, &usage),
        power_w: cluster_power(rate),
        peak_power_w,
        requests_per_joule: peak / peak_power_w,
        offered_requests_per_joule: rate / cluster_power(rate),
        cost_efficiency_1y: cost_efficiency(peak, peak_power_w, topology.cost(), 1.0),
        cost_efficiency_5y: cost_efficiency(peak, peak_power_w, topology.cost(), 5.0),
    }
}

/// One-way time of a message of `bytes` from `a` to `b` at the offered load, microseconds:
/// the mechanism's unloaded latency, plus its bytes on every link it crosses, each slowed by
/// that link's queueing (`1 / (1 - utilisation)`); `None` when a link is saturated.
pub fn message_us(
    topology: &Topology,
    usage: &Usage,
    a: ComputeId,
    b: ComputeId,
    bytes: f64,
) -> Option<f64> {
    let mut total = topology.base_latency_us(a, b);
    let mut saturated = false;
    topology.for_each_path_link(a, b, &mut |link, share| {
        let capacity = topology.link_capacity(link);
        let busy = if capacity > 0.0 {
            usage.link_load(link) / capacity
        } else {
            1.0
        };
        if busy >= 1.0 {
            saturated = true;
            return;
        }
        // Gb/s is bits per nanosecond: 8 bytes / (Gb/s * 1000) microseconds.
        total += share * bytes * 8.0 / (capacity * 1e3) / (1.0 - busy);
    });
    (!saturated).then_some(total)
}

/// Mean latency of a request over the sources, each the critical path below it: a node's own
/// work inflated by its computing node's queueing (`t / (1 - utilisation)`), then, for every
/// downstream tier, the mean over the shards it may call of the request and reply messages to
/// that shard and its own latency, taking the slowest tier. `None` when a node or link is
/// saturated at the offered rate.
fn latency_us(
    workload: &Workload,
    topology: &Topology,
    placement: &Placement,
    utilisation: &[f64],
    usage: &Usage,
) -> Option<f64> {
    let dag = workload.dag();
    let mut below = vec![0.0; dag.len()];
    for v in dag.topological_order().into_iter().rev() {
        if dag.node(v).role != Role::Primary {
            continue;
        }
        let n = placement.node_of(v);
        let busy = utilisation[n.index()];
        if busy >= 1.0 {
            return None;
        }
        let service = workload.profile(v).us_on(topology.node(n).spec.core_class) / (1.0 - busy);
        let mut slowest: f64 = 0.0;
        for (_, group) in dag.call_groups(v) {
            let mut sum = 0.0;
            for e in group {
                let m = placement.node_of(e.to);
                let bytes = workload.profile(e.to).request_bytes;
                let request = message_us(topology, usage, n, m, bytes)?;
                let reply = message_us(topology, usage, m, n, bytes)?;
                sum += request + reply + below[e.to.index()];
            }
            slowest = slowest.max(sum / group.len() as f64);
        }
        below[v.index()] = service + slowest;
    }
    let sources: Vec<NodeId> = dag.sources().collect();
    Some(sources.iter().map(|v| below[v.index()]).sum::<f64>() / sources.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::hcm::Hcm;
    use crate::control::ledger::Ledger;
    use crate::control::placement::{commit, Placer};
    use crate::control::profile::{Pin, Profile};
    use crate::control::topology::{builtin_server_type, Cluster};
    use microservices::apps::{App, DagBuilder, Wiring};
    use microservices::ServiceKind;

    /// `|got - want| <= tolerance * |want|`.
    fn near(got: f64, want: f64, tolerance: f64) -> bool {
        (got - want).abs() <= tolerance * want.abs()
    }

    #[test]
    fn cost_efficiency_by_hand() {
        // 1000 req/s on a $1000 server drawing 100 W. One year: 8760 h x 100 W = 876 kWh,
        // $64.2108 at $0.0733, so 3.1536e10 requests for $1064.2108: 2.96332e7 req/$.
        // Five years: 4380 kWh, $321.054, 1.5768e11 requests for $1321.054: 1.19359e8 req/$.
        assert!(near(
            cost_efficiency(1000.0, 100.0, 1000.0, 1.0),
            29_633_226.8,
            1e-9
        ));
        assert!(near(
            cost_efficiency(1000.0, 100.0, 1000.0, 5.0),
            119_359_238.9,
            1e-9
        ));
    }

    /// Two Beefy servers in one rack (hosts 0 and 1: 12 beefy cores, 20 Gb/s of ports, 83 W
    /// idle, 201 W peak, $4500 each), default message costs; `a` (20 us of work per request on
    /// a beefy core) calls `b` (30 us), 512-byte requests, 100,000 requests/s.
    fn two_beefy_and_a_pair() -> (Topology, Workload) {
        let beefy = builtin_server_type("beefy").unwrap();
        let topology = Cluster::new("2xbeefy", vec![(beefy, 2)]).topology();
        let mut builder = DagBuilder::new("pair");
        let a = builder.tier("a", ServiceKind::Nat, 1, 0).unwrap();
        let b = builder.tier("b", ServiceKind::Count, 1, 0).unwrap();
        builder.connect(a, b, Wiring::All).unwrap();
        let profile = |us: f64| Profile {
            request_bytes: 512.0,
            core_us: [us, 3.0 * us],
            memory_gb: 0.0,
            disk_gb: 0.0,
            stateful: false,
            pin: Pin::Any,
        };
        let dag = builder.build().unwrap();
        let workload = Workload::new(dag, vec![profile(20.0), profile(30.0)], 1e5).unwrap();
        (topology, workload)
    }

    fn placed(workload: &Workload, topology: &Topology, nodes: [u32; 2]) -> Placement {
        let mut ledger = Ledger::new(topology);
        let nodes = nodes.map(ComputeId);
        commit(workload, topology, &mut ledger, &nodes, "hand", None)
    }

    #[test]
    fn a_pair_on_two_hosts_by_hand() {
        let (topology, workload) = two_beefy_and_a_pair();
        let score = evaluate(&workload, &topology, &placed(&workload, &topology, [0, 1]));
        // A network message costs a host 0.4 us (kernel-bypass ring) + 1.06 us (Linux) of
        // core. `a` on host 0: 2 cores of work, the clients' request and reply (2 x 1.46 us x
        // 1e5/s = 0.292 cores) and its call to `b` (0.292): 2.584 cores, u = 0.215333.
        // `b` on host 1: 3 + 0.292 = 3.292 cores, u = 0.274333.
        assert!(near(score.nodes[0].utilisation, 2.584 / 12.0, 1e-12));
        assert!(near(score.nodes[1].utilisation, 3.292 / 12.0, 1e-12));
        assert_eq!(
            score.nodes.iter().map(|n| n.instances).collect::<Vec<_>>(),
            [1, 1]
        );
        // Bottleneck: host 1's cores at 12 / 3.292e-5 = 364,520.05 req/s (host 0's at
        // 464,396; host 0's ports carry 2 x 0.4096 Gb/s per 1e5 req/s: 2,441,406).
        assert_eq!(score.bottleneck, "s1/host cores");
        assert!(near(score.bottleneck_rps, 364_520.048_6, 1e-9));
        // Latency: `a`'s 20 us / (1 - 0.215333) = 25.4885; the request to `b`: two hosts in
        // a rack 10.12 us (ToR round trip 2.208 / 2, plus per host end (16 - 2.208) / 4 +
        // 1.06), plus 512 bytes on each port (0.2048 us at 20 Gb/s) slowed by its load:
        // host 0's port at 0.8192 of 20 Gb/s, 0.2048 / 0.95904 = 0.213547; host 1's at
        // 0.4096, 0.2048 / 0.97952 = 0.209082: 10.542629; the reply the same; `b`'s
        // 30 / (1 - 0.274333) = 41.341295. In all 25.488530 + 2 x 10.542629 + 41.341295.
        assert!(near(score.latency_us.unwrap(), 87.915_083, 1e-7));
        // Power at the offered rate: 83 + 0.215333 x 118 = 108.4093 W and 83 + 0.274333 x
        // 118 = 115.3713 W.
        assert!(near(score.power_w, 223.780_667, 1e-8));
        assert!(near(score.offered_requests_per_joule, 446.866_128, 1e-8));
        // At the bottleneck host 1 is full (201 W) and host 0 at 2.584e-5 x 364,520.05 / 12
        // = 0.784933 (175.6221 W): 376.6221 W, 967.867 requests per joule.
        assert!(near(score.peak_power_w, 376.622_114, 1e-8));
        assert!(near(score.requests_per_joule, 967.866_822, 1e-8));
        // Cost efficiency: one year at 376.6221 W is 3299.21 kWh, $241.832; 364,520.05 req/s
        // x 31,536,000 s over $9241.832 = 1.243856e9 req/$; five years: $1209.16 of power,
        // 5.629995e9 req/$.
        assert!(near(score.cost_efficiency_1y, 1.243_855_565e9, 1e-9));
        assert!(near(score.cost_efficiency_5y, 5.629_994_948e9, 1e-9));
    }

    #[test]
    fn a_pair_on_one_host_by_hand() {
        let (topology, workload) = two_beefy_and_a_pair();
        let score = evaluate(&workload, &topology, &placed(&workload, &topology, [0, 0]));
        // Host 0: 5 cores of work, the clients' messages over the network (0.292 cores) and
        // the call through a shared-memory queue, 0.15 us per message at each end (2 ends x
        // 2 messages x 0.15 us x 1e5/s = 0.06): 5.352 cores, u = 0.446. Host 1 idles.
        assert!(near(score.nodes[0].utilisation, 0.446, 1e-12));
        assert_eq!(score.nodes[1].utilisation, 0.0);
        assert_eq!(score.nodes[1].power_w, 83.0);
        // Bottleneck 12 / 5.352e-5 = 224,215.25 req/s, host 0's cores.
        assert_eq!(score.bottleneck, "s0/host cores");
        assert!(near(score.bottleneck_rps, 224_215.246_6, 1e-9));
        // Latency: (20 + 30) us / (1 - 0.446) plus two queue messages of 0.55 us: 91.352708.
        assert!(near(score.latency_us.unwrap(), 91.352_708, 1e-7));
        // Power: 83 + 0.446 x 118 + 83 = 218.628 W; at the bottleneck 201 + 83 = 284 W,
        // 224,215.25 / 284 = 789.490 requests per joule.
        assert!(near(score.power_w, 218.628, 1e-9));
        assert!(near(score.peak_power_w, 284.0, 1e-9));
        assert!(near(score.requests_per_joule, 789.490_305, 1e-8));
    }

    #[test]
    fn at_the_bottleneck_rate_the_bottleneck_is_exactly_full() {
        let topology = Cluster::builtin("3xtype1").unwrap().topology();
        let workload = Workload::builtin(App::NfvFin, 100_000.0).unwrap();
        let mut ledger = Ledger::new(&topology);
        let placement = Hcm.place(&workload, &topology, &mut ledger).unwrap();
        let score = evaluate(&workload, &topology, &placement);
        assert_eq!(score.nodes.iter().map(|n| n.instances).sum::<u32>(), 72);
        assert!(score.bottleneck_rps > score.offered_rps);
        let (label, what) = score.bottleneck.split_once(' ').unwrap();
        assert_eq!(what, "cores", "{}", score.bottleneck);
        // Offered the bottleneck rate, that node is exactly full and none is over.
        let at_peak = workload.with_rate(score.bottleneck_rps).unwrap();
        let full = evaluate(&at_peak, &topology, &placement);
        let node = full.nodes.iter().find(|n| n.label == label).unwrap();
        assert!(near(node.utilisation, 1.0, 1e-9), "{}", node.utilisation);
        assert!(full.nodes.iter().all(|n| n.utilisation <= 1.0 + 1e-9));
        assert!(near(full.power_w, score.peak_power_w, 1e-9));
        assert!(near(full.bottleneck_rps, score.bottleneck_rps, 1e-9));
        // Every node is at least idle, and busier at the bottleneck than at the offered rate.
        let idle: f64 = topology.nodes().iter().map(|n| n.spec.idle_w).sum();
        assert!(score.power_w > idle && score.peak_power_w > score.power_w);
        assert!(score.cost_efficiency_5y > score.cost_efficiency_1y);
    }

    #[test]
    fn latency_grows_with_load_until_overload() {
        let topology = Cluster::builtin("3xtype1").unwrap().topology();
        let workload = Workload::builtin(App::NfvFin, 100_000.0).unwrap();
        // Everything on one NIC: queueing grows with the rate until the NIC is overloaded.
        let crowded = vec![ComputeId(1); workload.dag().len()];
        let mut scratch = Ledger::new(&topology);
        let crowded = commit(&workload, &topology, &mut scratch, &crowded, "test", None);
        let light = evaluate(&workload, &topology, &crowded).latency_us.unwrap();
        assert!(light > 0.0);
        let busier = workload.with_rate(300_000.0).unwrap();
        assert!(evaluate(&busier, &topology, &crowded).latency_us.unwrap() > light);
        let heavy = workload.with_rate(1e6).unwrap();
        assert_eq!(evaluate(&heavy, &topology, &crowded).latency_us, None);
    }
}
