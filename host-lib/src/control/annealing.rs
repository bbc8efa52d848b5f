//! Simulated annealing after Service Fabric's cluster resource manager: random single-instance
//! moves accepted by the Metropolis rule under a geometric temperature schedule, minimising the
//! shared [`CostModel`]. Seeded and reproducible: the time budget is only looked at every
//! [`CLOCK_EVERY`] moves, so a run it cuts short is the run of the same seed stopped after that
//! many moves, and the placement says how many so it can be replayed.

use std::time::{Duration, Instant};

use microservices::apps::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cost::{candidates, CostModel, Loads};
use super::ledger::Ledger;
use super::placement::{check_inputs, commit, PlaceError, Placement, Placer};
use super::topology::{ComputeId, Topology};
use super::workload::Workload;

/// Moves between two looks at the clock.
pub const CLOCK_EVERY: u64 = 1024;

/// Simulated annealing and its settings.
#[derive(Clone, Debug)]
pub struct Annealing {
    /// Seed of the random moves.
    pub seed: u64,
    /// Moves tried per DAG node.
    pub moves_per_node: u64,
    /// Wall-clock budget: a cap, looked at every [`CLOCK_EVERY`] moves; the run stops there
    /// when it is spent and says after how many moves.
    pub time_budget: Duration,
    /// Stop after this many moves of the schedule (replays a run the budget cut short).
    pub stop_after: Option<u64>,
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
            stop_after: None,
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
    /// budget cut it short. `expired` is asked every [`CLOCK_EVERY`] moves whether the budget
    /// is spent.
    fn anneal(
        &self,
        workload: &Workload,
        topology: &Topology,
        ledger: &Ledger,
        expired: &mut dyn FnMut() -> bool,
    ) -> (Vec<ComputeId>, Option<String>) {
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
        let last = self.stop_after.map_or(moves, |s| s.min(moves));
        for step in 0..last {
            if step > 0 && step % CLOCK_EVERY == 0 && expired() {
                stopped = Some(format!(
                    "time limit hit: annealing spent its {:?} budget after {step} of {moves} moves \
                     (seed {}; the same placement again: stop after {step} moves)",
                    self.time_budget, self.seed
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
        let started = Instant::now();
        let budget = self.time_budget;
        let mut expired = || started.elapsed() > budget;
        let (nodes, stopped) = self.anneal(workload, topology, ledger, &mut expired);
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

    /// Runs with a clock that says the budget is spent at its `expire_at`-th look.
    fn cut(seed: u64, expire_at: u32) -> (Vec<ComputeId>, Option<String>) {
        let topology = Cluster::builtin("3xtype1").unwrap().topology();
        let ledger = Ledger::new(&topology);
        let workload = Workload::builtin(App::NfvFin, 20_000.0).unwrap();
        let annealing = Annealing {
            moves_per_node: 100,
            ..Annealing::with_seed(seed)
        };
        let mut looks = 0;
        let mut expired = || {
            looks += 1;
            looks >= expire_at
        };
        annealing.anneal(&workload, &topology, &ledger, &mut expired)
    }

    #[test]
    fn a_run_the_budget_cuts_is_reproducible() {
        // The clock is looked at every 1024 moves; however slow the machine, a cut run is the
        // same seed's run stopped at a multiple of 1024 moves, and says so.
        let (a, note) = cut(11, 3);
        let note = note.expect("the budget was hit");
        assert!(note.contains("after 3072 of 7200 moves"), "{note}");
        assert_eq!(cut(11, 3).0, a);
        let topology = Cluster::builtin("3xtype1").unwrap().topology();
        let ledger = Ledger::new(&topology);
        let workload = Workload::builtin(App::NfvFin, 20_000.0).unwrap();
        let replay = Annealing {
            moves_per_node: 100,
            stop_after: Some(3072),
            ..Annealing::with_seed(11)
        };
        let (b, none) = replay.anneal(&workload, &topology, &ledger, &mut || false);
        assert_eq!(a, b);
        assert!(none.is_none());
        // A budget that is never spent gives the full schedule, different from the cut one.
        let (full, none) = cut(11, u32::MAX);
        assert!(none.is_none());
        assert_ne!(full, a);
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
