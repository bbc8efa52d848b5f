//! Simulated annealing after Service Fabric's cluster resource manager: random single-instance
//! moves accepted by the Metropolis rule under a geometric temperature schedule, minimising the
//! shared [`CostModel`]; seedable, and deterministic for a seed when the move limit ends the run
//! before the time budget does.

use std::time::{Duration, Instant};

use microservices::apps::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cost::{candidates, CostModel, Loads};
use super::ledger::Ledger;
use super::placement::{check_inputs, commit, PlaceError, Placement, Placer};
use super::topology::{ComputeId, Topology};
use super::workload::Workload;

/// Simulated annealing and its settings.
#[derive(Clone, Debug)]
pub struct Annealing {
    /// Seed of the random moves.
    pub seed: u64,
    /// Moves tried per DAG node.
    pub moves_per_node: u64,
    /// Wall-clock budget; the run stops early (and says so) when it is spent.
    pub time_budget: Duration,
    /// Temperature of the first move, in cost units.
    pub start_temperature: f64,
    /// Temperature of the last move.
    pub end_temperature: f64,
    /// The objective.
    pub model: CostModel,
}

impl Default for Annealing {
    fn default() -> Self {
        Annealing {
            seed: 1,
            moves_per_node: 2000,
            time_budget: Duration::from_secs(10),
            start_temperature: 50.0,
            end_temperature: 0.01,
            model: CostModel::default(),
        }
    }
}

impl Annealing {
    /// Default settings with `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Annealing {
            seed,
            ..Annealing::default()
        }
    }

    /// Runs the schedule and returns the best assignment seen, with a note when the time
    /// budget cut it short.
    fn anneal(
        &self,
        workload: &Workload,
        topology: &Topology,
        ledger: &Ledger,
    ) -> (Vec<ComputeId>, Option<String>) {
        let started = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let allowed = candidates(workload, topology);
        let mut loads = Loads::new(&self.model, workload, topology, ledger);
        let mut current: Vec<ComputeId> = allowed
            .iter()
            .map(|c| c[rng.random_range(0..c.len())])
            .collect();
        for v in workload.dag().node_ids() {
            loads.add(v, current[v.index()]);
        }
        let mut cost = loads.total();
        let mut best = (cost, current.clone());
        let nodes = current.len() as u64;
        let moves = self.moves_per_node.saturating_mul(nodes).max(1);
        let cooling = (self.end_temperature / self.start_temperature).powf(1.0 / moves as f64);
        let mut temperature = self.start_temperature;
        let mut stopped = None;
        for step in 0..moves {
            if step % 1024 == 0 && started.elapsed() > self.time_budget {
                stopped = Some(format!(
                    "annealing spent its {:?} budget after {step} of {moves} moves",
                    self.time_budget
                ));
                break;
            }
            temperature *= cooling;
            let v = NodeId(rng.random_range(0..nodes) as u32);
            let options = &allowed[v.index()];
            let to = options[rng.random_range(0..options.len())];
            let from = current[v.index()];
            if to == from {
                continue;
            }
            let delta = loads.remove(v) + loads.add(v, to);
            if delta <= 0.0 || rng.random::<f64>() < (-delta / temperature).exp() {
                current[v.index()] = to;
                cost += delta;
                if cost < best.0 - 1e-9 {
                    best = (cost, current.clone());
                }
            } else {
                loads.remove(v);
                loads.add(v, from);
            }
        }
        (best.1, stopped)
    }
}

impl Placer for Annealing {
    fn name(&self) -> &'static str {
        "annealing"
    }

    fn place(
        &mut self,
        workload: &Workload,
        topology: &Topology,
        ledger: &mut Ledger,
    ) -> Result<Placement, PlaceError> {
        check_inputs(topology, ledger)?;
        let (nodes, stopped) = self.anneal(workload, topology, ledger);
        Ok(commit(
            workload,
            topology,
            ledger,
            &nodes,
            self.name(),
            stopped,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::cost::assignment_cost;
    use crate::control::topology::Cluster;
    use microservices::apps::App;

    fn run(seed: u64) -> (Placement, f64) {
        let topology = Cluster::builtin("3xtype1").unwrap().topology();
        let mut ledger = Ledger::new(&topology);
        let before = ledger.clone();
        let workload = Workload::builtin(App::IotTs, 8_000.0).unwrap();
        let mut annealing = Annealing {
            moves_per_node: 300,
            time_budget: Duration::from_secs(3600),
            ..Annealing::with_seed(seed)
        };
        let placement = annealing.place(&workload, &topology, &mut ledger).unwrap();
        let cost = assignment_cost(
            &annealing.model,
            &workload,
            &topology,
            &before,
            &placement.nodes,
        );
        (placement, cost)
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (a, _) = run(7);
        let (b, _) = run(7);
        assert_eq!(a, b);
        assert!(a.stopped_early.is_none());
    }

    #[test]
    fn beats_a_random_start_and_spreads() {
        let topology = Cluster::builtin("3xtype1").unwrap().topology();
        let ledger = Ledger::new(&topology);
        let workload = Workload::builtin(App::IotTs, 8_000.0).unwrap();
        let model = CostModel::default();
        let everything_on_one_host = vec![ComputeId(0); workload.dag().len()];
        let bad = assignment_cost(
            &model,
            &workload,
            &topology,
            &ledger,
            &everything_on_one_host,
        );
        let (placement, cost) = run(3);
        assert!(cost < bad / 10.0, "{cost} vs {bad}");
        // The replicas keep their fault domains and every computing node is used.
        assert!(
            placement.violations.is_empty(),
            "{:?}",
            placement.violations
        );
        for n in 0..topology.len() as u32 {
            assert!(placement.nodes.contains(&ComputeId(n)));
        }
    }
}
