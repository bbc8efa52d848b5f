//! Placement as an integer linear program over binary assignment variables, minimising the same
//! [`CostModel`] as the annealer, solved by COIN-OR CBC (through `good_lp`) under a time limit.
//! A greedy assignment is handed to the solver as its first incumbent; when the limit stops
//! the solver, its best incumbent is returned and the placement says so.

use std::collections::HashMap;
use std::time::Duration;

use good_lp::solvers::coin_cbc::{coin_cbc, CoinCbcProblem};
use good_lp::{
    variable, Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus, SolverModel,
    Variable, WithTimeLimit,
};
use microservices::apps::NodeId;

use super::cost::{candidates, utilisation, CostModel, Loads};
use super::ledger::Ledger;
use super::placement::{check_inputs, commit, PlaceError, Placement, Placer};
use super::topology::{ComputeId, Topology};
use super::workload::{Amounts, Workload, RESOURCES};

/// The ILP placer and its settings.
#[derive(Clone, Debug)]
pub struct Ilp {
    /// Wall-clock limit of one solve (CBC counts whole seconds, so this rounds up).
    pub time_limit: Duration,
    /// The objective.
    pub model: CostModel,
}

impl Default for Ilp {
    fn default() -> Self {
        Ilp {
            time_limit: Duration::from_secs(10),
            model: CostModel::default(),
        }
    }
}

/// Assignment variables of one DAG node: (computing node, variable).
type Choices = Vec<(ComputeId, Variable)>;

/// The greedy first incumbent: DAG nodes in topological order, each where it adds least cost.
pub fn greedy(
    model: &CostModel,
    workload: &Workload,
    topology: &Topology,
    ledger: &Ledger,
) -> Vec<ComputeId> {
    let allowed = candidates(workload, topology);
    let mut loads = Loads::new(model, workload, topology, ledger);
    let mut nodes = vec![ComputeId(0); workload.dag().len()];
    for v in workload.dag().topological_order() {
        let mut best = (f64::INFINITY, allowed[v.index()][0]);
        for &n in &allowed[v.index()] {
            let delta = loads.delta_add(v, n);
            if delta < best.0 {
                best = (delta, n);
            }
        }
        loads.add(v, best.1);
        nodes[v.index()] = best.1;
    }
    nodes
}

/// What the program is built from, computed once.
struct Inputs<'a> {
    workload: &'a Workload,
    topology: &'a Topology,
    ledger: &'a Ledger,
    allowed: Vec<Vec<ComputeId>>,
    start: Vec<ComputeId>,
}

impl Inputs<'_> {
    /// Load of every node in the greedy start, for the initial values of the auxiliary
    /// variables.
    fn start_loads(&self) -> (Vec<Amounts>, Vec<u32>) {
        let mut used: Vec<Amounts> = (0..self.topology.len() as u32)
            .map(|n| self.ledger.used(ComputeId(n)))
            .collect();
        let mut count: Vec<u32> = (0..self.topology.len() as u32)
            .map(|n| self.ledger.instances(ComputeId(n)))
            .collect();
        for v in self.workload.dag().node_ids() {
            let n = self.start[v.index()];
            let demand = self.workload.demand(v, &self.topology.node(n).spec);
            for (u, d) in used[n.index()].iter_mut().zip(demand) {
                *u += d;
            }
            count[n.index()] += 1;
        }
        (used, count)
    }
}

impl Ilp {
    /// Builds and solves the program; returns the assignment and a note when the limit
    /// stopped the solver.
    fn solve(&self, inputs: &Inputs<'_>) -> Result<(Vec<ComputeId>, Option<String>), PlaceError> {
        let Inputs {
            workload,
            topology,
            ledger,
            allowed,
            start,
        } = inputs;
        let weights = self.model.weights;
        let dag = workload.dag();
        let mut vars = ProblemVariables::new();
        let mut objective = Expression::from(0.0);
        let choices: Vec<Choices> = dag
            .node_ids()
            .map(|v| {
                allowed[v.index()]
                    .iter()
                    .map(|&n| {
                        let initial = if start[v.index()] == n { 1.0 } else { 0.0 };
                        let x = vars.add(variable().binary().initial(initial));
                        if !workload.pin(v).allows(topology.node(n).spec.kind) {
                            objective.add_mul(weights.violation, x);
                        }
                        (n, x)
                    })
                    .collect()
            })
            .collect();
        let mut on_node: Vec<Vec<(NodeId, Variable)>> = vec![Vec::new(); topology.len()];
        for v in dag.node_ids() {
            for &(n, x) in &choices[v.index()] {
                on_node[n.index()].push((v, x));
            }
        }
        let (start_used, start_count) = inputs.start_loads();
        let mut rows = Vec::new();
        for v in dag.node_ids() {
            let sum: Expression = choices[v.index()].iter().map(|&(_, x)| x).sum();
            rows.push(sum.eq(1.0));
        }
        for n in (0..topology.len() as u32).map(ComputeId) {
            let spec = &topology.node(n).spec;
            let capacity = ledger.capacity(n);
            let prior = ledger.used(n);
            // Resource totals of the node, as expressions of the assignment.
            let mut totals: Vec<Expression> = prior.iter().map(|&p| Expression::from(p)).collect();
            let mut count = Expression::from(f64::from(ledger.instances(n)));
            let mut most = prior;
            for &(v, x) in &on_node[n.index()] {
                let demand = workload.demand(v, spec);
                for r in 0..RESOURCES {
                    totals[r].add_mul(demand[r], x);
                    most[r] += demand[r];
                }
                count.add_mul(1.0, x);
            }
            let cores = capacity[0];
            let utilisation_expr = if cores > 0.0 {
                totals[0].clone() * (1.0 / cores)
            } else {
                Expression::from(0.0)
            };
            let used = &start_used[n.index()];
            let start_u = utilisation(capacity, used);
            let balance = vars.add(variable().min(0.0).initial(self.model.balance.at(start_u)));
            for &(slope, intercept) in self.model.balance.lines() {
                rows.push((utilisation_expr.clone() * slope + intercept).leq(balance));
            }
            let start_k = f64::from(start_count[n.index()]);
            let pairs = vars.add(
                variable()
                    .min(0.0)
                    .initial(self.model.interference.at(start_k)),
            );
            for &(slope, intercept) in self.model.interference.lines() {
                rows.push((count.clone() * slope + intercept).leq(pairs));
            }
            objective.add_mul(weights.balance, balance);
            objective.add_mul(weights.interference, pairs);
            objective += utilisation_expr * (weights.energy * (spec.peak_w - spec.idle_w));
            for r in 0..RESOURCES {
                if most[r] <= capacity[r] {
                    continue; // cannot overflow whatever the assignment
                }
                let scale = capacity[r].max(1.0);
                let start_over = (used[r] - capacity[r]).max(0.0) / scale;
                let over = vars.add(variable().min(0.0).initial(start_over));
                rows.push(((totals[r].clone() - capacity[r]) * (1.0 / scale)).leq(over));
                objective.add_mul(weights.violation, over);
            }
        }
        // Replicas of a group on one server, beyond the first, are each a violation.
        let mut groups: HashMap<(u32, u32), Vec<(NodeId, Variable)>> = HashMap::new();
        for v in dag.node_ids() {
            if workload.replica_peers(v).next().is_none() {
                continue;
            }
            for &(n, x) in &choices[v.index()] {
                let key = (workload.replica_group(v), topology.node(n).server);
                groups.entry(key).or_default().push((v, x));
            }
        }
        let mut keys: Vec<_> = groups.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let members = &groups[&key];
            let start_members = members
                .iter()
                .filter(|&&(v, _)| topology.node(start[v.index()]).server == key.1)
                .count() as f64;
            let shared = vars.add(variable().min(0.0).initial((start_members - 1.0).max(0.0)));
            let sum: Expression = members.iter().map(|&(_, x)| x).sum();
            rows.push((sum - 1.0).leq(shared));
            objective.add_mul(weights.violation, shared);
        }
        let mut problem: CoinCbcProblem = vars.minimise(objective).using(coin_cbc);
        problem.set_parameter("log", "0");
        problem.set_parameter("slogLevel", "0");
        problem = problem.with_time_limit(self.time_limit.as_secs_f64().max(1.0));
        for row in rows {
            problem.add_constraint(row);
        }
        let solution = match problem.solve() {
            Ok(solution) => solution,
            Err(ResolutionError::Infeasible) => {
                return Err(PlaceError::Solver("the program is infeasible".into()))
            }
            Err(error) => {
                return Ok((
                    start.clone(),
                    Some(format!(
                        "CBC returned no solution ({error}); using the greedy start"
                    )),
                ))
            }
        };
        let limited = matches!(solution.status(), SolutionStatus::TimeLimit);
        match read_assignment(&choices, &solution) {
            Some(nodes) if limited => Ok((
                nodes,
                Some(format!(
                    "the ILP stopped at its {:?} time limit; this is its best incumbent",
                    self.time_limit
                )),
            )),
            Some(nodes) => Ok((nodes, None)),
            None => Ok((
                start.clone(),
                Some(format!(
                    "the ILP found no integral incumbent within its {:?} time limit; using the greedy start",
                    self.time_limit
                )),
            )),
        }
    }
}

/// The computing node of every DAG node in `solution`, or `None` if some assignment is not
/// integral.
fn read_assignment(choices: &[Choices], solution: &impl Solution) -> Option<Vec<ComputeId>> {
    choices
        .iter()
        .map(|options| {
            let mut chosen = None;
            for &(n, x) in options {
                let value = solution.value(x);
                if (value - value.round()).abs() > 1e-6 {
                    return None;
                }
                if value.round() == 1.0 {
                    if chosen.is_some() {
                        return None;
                    }
                    chosen = Some(n);
                }
            }
            chosen
        })
        .collect()
}

impl Placer for Ilp {
    fn name(&self) -> &'static str {
        "ilp"
    }

    fn place(
        &mut self,
        workload: &Workload,
        topology: &Topology,
        ledger: &mut Ledger,
    ) -> Result<Placement, PlaceError> {
        check_inputs(topology, ledger)?;
        let inputs = Inputs {
            workload,
            topology,
            ledger,
            allowed: candidates(workload, topology),
            start: greedy(&self.model, workload, topology, ledger),
        };
        let (nodes, stopped) = self.solve(&inputs)?;
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
    use microservices::apps::{App, DagBuilder, Wiring};
    use microservices::ServiceKind;

    #[test]
    fn never_worse_than_its_greedy_start() {
        let topology = Cluster::builtin("3xtype1").unwrap().topology();
        let mut ledger = Ledger::new(&topology);
        let before = ledger.clone();
        let workload = Workload::builtin(App::NfvDin, 200_000.0).unwrap();
        let mut ilp = Ilp {
            time_limit: Duration::from_secs(2),
            ..Ilp::default()
        };
        let start = greedy(&ilp.model, &workload, &topology, &before);
        let placement = ilp.place(&workload, &topology, &mut ledger).unwrap();
        let cost =
            |nodes: &[ComputeId]| assignment_cost(&ilp.model, &workload, &topology, &before, nodes);
        assert!(cost(&placement.nodes) <= cost(&start) + 1e-6);
        assert!(placement.violations.is_empty());
    }

    #[test]
    fn finds_the_optimum_of_a_small_program() {
        // Two primaries with one backup each on two Type1 servers: the optimum puts one
        // instance on each of the four computing nodes, the backups on the other server.
        let mut builder = DagBuilder::new("small");
        let a = builder.tier("a", ServiceKind::Nat, 1, 1).unwrap();
        let b = builder.tier("b", ServiceKind::Count, 1, 1).unwrap();
        builder.connect(a, b, Wiring::All).unwrap();
        let dag = builder.build().unwrap();
        let profiles = dag
            .tiers()
            .iter()
            .map(|t| crate::control::profile::builtin_profile(t.kind))
            .collect();
        let workload = Workload::new(dag, profiles, 100_000.0).unwrap();
        let mut cluster = Cluster::builtin("3xtype1").unwrap();
        cluster.servers[0].1 = 2;
        let topology = cluster.topology();
        let mut ledger = Ledger::new(&topology);
        let placement = Ilp::default()
            .place(&workload, &topology, &mut ledger)
            .unwrap();
        assert!(placement.stopped_early.is_none());
        assert!(placement.violations.is_empty());
        let mut used = placement.nodes.clone();
        used.sort();
        used.dedup();
        assert_eq!(used.len(), 4);
    }
}
