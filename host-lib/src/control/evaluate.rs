//! The evaluator: scores any placement of one application with one model: per-node
//! utilisation, bottleneck throughput, end-to-end latency along the DAG, cluster power, requests
//! per joule and cost efficiency over years of ownership (docs/placement.md gives the model).

use serde::Serialize;

use microservices::apps::{NodeId, Role};

use super::placement::Placement;
use super::topology::{ComputeId, Topology};
use super::workload::{Resource, Workload};

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
    /// Highest rate the placement sustains before a node runs out of cores or bandwidth.
    pub bottleneck_rps: f64,
    /// The node that limits it.
    pub bottleneck: String,
    /// Mean end-to-end latency at the offered rate along the DAG's critical path,
    /// microseconds; `None` when a node is overloaded at that rate.
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

/// Scores `placement` of `workload` on an otherwise idle `topology`.
pub fn evaluate(workload: &Workload, topology: &Topology, placement: &Placement) -> Evaluation {
    let rate = workload.rate();
    let count = topology.len();
    // Per node: cores and bandwidth used per offered request per second, and instances.
    let mut cpu = vec![0.0; count];
    let mut bandwidth = vec![0.0; count];
    let mut instances = vec![0u32; count];
    for v in workload.dag().node_ids() {
        let n = placement.node_of(v);
        let demand = workload.demand(v, &topology.node(n).spec);
        if rate > 0.0 {
            cpu[n.index()] += demand[Resource::Cpu.index()] / rate;
            bandwidth[n.index()] += demand[Resource::Bandwidth.index()] / rate;
        }
        instances[n.index()] += 1;
    }
    let mut bottleneck = (f64::INFINITY, String::from("none"));
    for (i, node) in topology.nodes().iter().enumerate() {
        let limits = [
            (f64::from(node.spec.cores), cpu[i]),
            (node.spec.bandwidth_gbps, bandwidth[i]),
        ];
        for (capacity, per_request) in limits {
            if per_request > 0.0 && capacity / per_request < bottleneck.0 {
                bottleneck = (capacity / per_request, topology.label(ComputeId(i as u32)));
            }
        }
    }
    let utilisation_at = |x: f64, i: usize| {
        let cores = f64::from(topology.nodes()[i].spec.cores);
        if cores > 0.0 {
            x * cpu[i] / cores
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
                instances: instances[i],
                utilisation: utilisation[i],
                power_w: power_at(rate, i),
            })
            .collect(),
        bottleneck_rps: peak,
        bottleneck: bottleneck.1,
        latency_us: latency_us(workload, topology, placement, &utilisation),
        power_w: cluster_power(rate),
        peak_power_w,
        requests_per_joule: peak / peak_power_w,
        offered_requests_per_joule: rate / cluster_power(rate),
        cost_efficiency_1y: cost_efficiency(peak, peak_power_w, topology.cost(), 1.0),
        cost_efficiency_5y: cost_efficiency(peak, peak_power_w, topology.cost(), 5.0),
    }
}

/// Mean latency of a request over the sources, each the critical path below it: a node's
/// service time inflated by its computing node's queueing (`t / (1 - utilisation)`), then, for
/// every downstream tier, the mean over the shards it may call of the round trip to that shard
/// and its own latency, taking the slowest tier.
fn latency_us(
    workload: &Workload,
    topology: &Topology,
    placement: &Placement,
    utilisation: &[f64],
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
        let bytes = workload.profile(v).request_bytes;
        let slowest = dag
            .call_groups(v)
            .map(|(_, group)| {
                group
                    .iter()
                    .map(|e| {
                        let w = e.to;
                        2.0 * topology.transfer_us(n, placement.node_of(w), bytes)
                            + below[w.index()]
                    })
                    .sum::<f64>()
                    / group.len() as f64
            })
            .fold(0.0, f64::max);
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
