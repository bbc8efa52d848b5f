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
    use crate::control::topology::Cluster;
    use microservices::apps::App;

    #[test]
    fn cost_efficiency_follows_the_formula() {
        // 1000 req/s for a year on a $1000 server drawing 100 W: 876 kWh, $64.21.
        let e = cost_efficiency(1000.0, 100.0, 1000.0, 1.0);
        let expected = 1000.0 * YEAR_S / (1000.0 + 876.0 * ELECTRICITY_USD_PER_KWH);
        assert!((e - expected).abs() / expected < 1e-12);
    }

    #[test]
    fn scores_are_consistent() {
        let topology = Cluster::builtin("3xtype1").unwrap().topology();
        let workload = Workload::builtin(App::NfvFin, 100_000.0).unwrap();
        let mut ledger = Ledger::new(&topology);
        let placement = Hcm.place(&workload, &topology, &mut ledger).unwrap();
        let score = evaluate(&workload, &topology, &placement);
        assert_eq!(score.nodes.iter().map(|n| n.instances).sum::<u32>(), 72);
        // At the bottleneck rate the bottleneck node is exactly full.
        assert!(score.bottleneck_rps > score.offered_rps);
        let idle: f64 = topology.nodes().iter().map(|n| n.spec.idle_w).sum();
        assert!(score.power_w > idle && score.peak_power_w > score.power_w);
        assert!(
            (score.requests_per_joule - score.bottleneck_rps / score.peak_power_w).abs() < 1e-9
        );
        assert!(score.cost_efficiency_5y > score.cost_efficiency_1y);
        let latency = score.latency_us.unwrap();
        assert!(latency > 0.0);
        // Everything on one NIC: queueing grows with the rate until the NIC is overloaded.
        let crowded = vec![ComputeId(1); workload.dag().len()];
        let mut scratch = Ledger::new(&topology);
        let crowded = commit(&workload, &topology, &mut scratch, &crowded, "test", None);
        let light = evaluate(&workload, &topology, &crowded).latency_us.unwrap();
        let busier = workload.with_rate(300_000.0).unwrap();
        assert!(evaluate(&busier, &topology, &crowded).latency_us.unwrap() > light);
        let heavy = workload.with_rate(1e6).unwrap();
        assert_eq!(evaluate(&heavy, &topology, &crowded).latency_us, None);
    }
}
