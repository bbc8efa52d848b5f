//! Placement as an integer linear program over binary assignment variables, minimising the same
//! [`CostModel`] as the annealer over the same loads (messages priced by where both ends are,
//! through exact linearised products of assignment variables), solved by COIN-OR CBC run as a
//! program of its own ([`cbc`]), which is what lets the time limit hold. The limit covers the
//! whole call, building the program included; a greedy assignment is CBC's starting incumbent
//! and the answer whenever nothing better is found in time.
//!
//! The program is shrunk without changing its optimum: servers whose nodes are in the same
//! state (same type, same free resources, same instance counts) are interchangeable when no
//! uplink can run out, so only as many of each such class are kept as the application has
//! nodes.
//!
//! Submodules: [`model`] (variables, expressions, rows, the LP file) and [`cbc`] (running
//! CBC within the deadline, its solution file).

pub mod cbc;
pub mod model;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cbc::{Cbc, Outcome, SolverError, Status};
use model::{variable, Constraint, Expression, ProblemVariables, Variable};

use super::charges::{end_charges, pair_charges, ChangeSet, Target};
use super::communication::Mechanism;
use super::cost::{assignment_cost, CostModel, Loads};
use super::ledger::{Ledger, EPSILON};
use super::placement::{check_inputs, commit, PlaceError, Placement, Placer};
use super::topology::{ComputeId, NodeKind, Topology};
use super::workload::{Resource, Workload, RESOURCES};

/// The ILP placer and its settings.
#[derive(Clone, Debug)]
pub struct Ilp {
    /// Wall-clock limit of one call, building the program and solving it.
    pub time_limit: Duration,
    /// The objective.
    pub model: CostModel,
    /// The `cbc` program; `None`: `$E3_CBC`, else `cbc` on PATH, looked up at every call.
    pub program: Option<PathBuf>,
}

impl Default for Ilp {
    fn default() -> Self {
        Ilp {
            time_limit: Duration::from_secs(10),
            model: CostModel::default(),
            program: None,
        }
    }
}

/// How large a program was and what became of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgramSize {
    /// Binary assignment variables.
    pub binaries: usize,
    /// Continuous variables (products, totals, penalties).
    pub continuous: usize,
    /// Rows.
    pub rows: usize,
    /// Servers left out as interchangeable with kept ones.
    pub servers_dropped: usize,
}

/// The greedy first incumbent: DAG nodes in topological order, each where it adds least cost
/// among `candidates` (every allowed node when `None`).
pub fn greedy(
    model: &CostModel,
    workload: &Workload,
    topology: &Topology,
    ledger: &Ledger,
) -> Vec<ComputeId> {
    let all = super::cost::candidates(workload, topology);
    greedy_over(model, workload, topology, ledger, &all)
}

fn greedy_over(
    model: &CostModel,
    workload: &Workload,
    topology: &Topology,
    ledger: &Ledger,
    candidates: &[Vec<ComputeId>],
) -> Vec<ComputeId> {
    let mut loads = Loads::new(model, workload, topology, ledger);
    let mut nodes = vec![ComputeId(0); workload.dag().len()];
    for v in workload.dag().topological_order() {
        let mut best = (f64::INFINITY, candidates[v.index()][0]);
        for &n in &candidates[v.index()] {
            let delta = loads.add(v, n);
            loads.remove(v);
            if delta < best.0 {
                best = (delta, n);
            }
        }
        loads.add(v, best.1);
        nodes[v.index()] = best.1;
    }
    nodes
}

/// The candidate nodes of every DAG node after dropping interchangeable servers, and whether
/// uplinks must be modelled.
struct Reduction {
    candidates: Vec<Vec<ComputeId>>,
    /// Kept computing nodes, in index order.
    kept: Vec<ComputeId>,
    uplinks: bool,
    servers_dropped: usize,
}

fn reduce(workload: &Workload, topology: &Topology, ledger: &Ledger) -> Reduction {
    // Uplinks matter only if the application's whole traffic could overcommit one.
    let traffic: f64 = workload.flows().iter().map(|f| f.gbps()).sum();
    let uplinks = (0..ledger.uplink_count() as u32)
        .any(|u| ledger.uplink_used(u) + traffic > ledger.uplink_capacity(u) + EPSILON);
    let limit = workload.dag().len();
    let mut classes: HashMap<Vec<u64>, usize> = HashMap::new();
    let mut kept_server = vec![false; topology.servers().len()];
    for (s, server) in topology.servers().iter().enumerate() {
        let mut key = vec![u64::from(server.type_index)];
        if uplinks {
            key.push(u64::from(server.rack));
        }
        for n in server.first_node..server.first_node + server.node_count {
            let n = ComputeId(n);
            key.extend(ledger.free(n).iter().map(|x| x.to_bits()));
            key.push(u64::from(ledger.instances(n)));
        }
        let count = classes.entry(key).or_insert(0);
        if *count < limit {
            *count += 1;
            kept_server[s] = true;
        }
    }
    let kept: Vec<ComputeId> = (0..topology.len() as u32)
        .map(ComputeId)
        .filter(|&n| kept_server[topology.node(n).server as usize])
        .collect();
    let candidates = workload
        .dag()
        .node_ids()
        .map(|v| {
            let allowed: Vec<ComputeId> = kept
                .iter()
                .copied()
                .filter(|&n| workload.pin(v).allows(topology.node(n).spec.kind))
                .collect();
            if allowed.is_empty() {
                kept.clone()
            } else {
                allowed
            }
        })
        .collect();
    Reduction {
        candidates,
        kept,
        uplinks,
        servers_dropped: kept_server.iter().filter(|k| !**k).count(),
    }
}

/// Why building stopped.
struct OutOfTime {
    rows: usize,
}

/// The program being built: variables, the linear terms of every target's totals, the rows
/// and the objective.
struct Builder<'a> {
    topology: &'a Topology,
    ledger: &'a Ledger,
    model: &'a CostModel,
    deadline: Instant,
    vars: ProblemVariables,
    objective: Expression,
    rows: Vec<Constraint>,
    /// (target, resource) -> terms of its total beyond what the ledger holds.
    totals: BTreeMap<(Target, usize), Expression>,
    size: ProgramSize,
    scratch: ChangeSet,
}

impl Builder<'_> {
    fn check_clock(&self) -> Result<(), OutOfTime> {
        if Instant::now() > self.deadline {
            Err(OutOfTime {
                rows: self.rows.len(),
            })
        } else {
            Ok(())
        }
    }

    /// Adds `scale` times the scratch change set to the totals, as terms of `x`.
    fn add_scratch(&mut self, x: Variable, scale: f64) {
        for (target, amounts) in self.scratch.entries() {
            for (r, &a) in amounts.iter().enumerate() {
                if a != 0.0 {
                    self.totals
                        .entry((*target, r))
                        .or_default()
                        .add_mul(scale * a, x);
                }
            }
        }
    }

    /// A continuous variable equal to the product of binaries `a` and `b` (exactly, at any
    /// integral point).
    fn product(&mut self, a: Variable, b: Variable) -> Variable {
        let y = self.vars.add(variable().min(0.0).max(1.0));
        self.rows.push(Expression::from(y).leq(a));
        self.rows.push(Expression::from(y).leq(b));
        self.rows.push((Expression::from(a) + b - 1.0).leq(y));
        self.size.continuous += 1;
        y
    }

    /// A penalty variable for `amount - capacity` beyond zero, scaled by the capacity, in the
    /// objective at the violation weight.
    fn overflow(&mut self, amount: Expression, capacity: f64) {
        let over = self.vars.add(variable().min(0.0));
        self.rows
            .push(((amount - capacity) * (1.0 / capacity.max(1.0))).leq(over));
        self.objective.add_mul(self.model.weights.violation, over);
        self.size.continuous += 1;
    }
}

/// Assignment variables of one DAG node: (computing node, variable).
type Choices = Vec<(ComputeId, Variable)>;

impl Ilp {
    /// Builds the program; returns it with its assignment variables, or why it stopped.
    fn build<'a>(
        &'a self,
        workload: &'a Workload,
        topology: &'a Topology,
        ledger: &'a Ledger,
        reduction: &Reduction,
        start: &[ComputeId],
        deadline: Instant,
    ) -> Result<(Builder<'a>, Vec<Choices>), OutOfTime> {
        let mut b = Builder {
            topology,
            ledger,
            model: &self.model,
            deadline,
            vars: ProblemVariables::new(),
            objective: Expression::from(0.0),
            rows: Vec::new(),
            totals: BTreeMap::new(),
            size: ProgramSize {
                servers_dropped: reduction.servers_dropped,
                ..ProgramSize::default()
            },
            scratch: ChangeSet::new(),
        };
        let weights = self.model.weights;
        let dag = workload.dag();
        // Assignment variables, each with its own demand and its messages booked as network
        // ends (the linear part of every flow).
        let mut choices: Vec<Choices> = Vec::with_capacity(dag.len());
        for v in dag.node_ids() {
            b.check_clock()?;
            let mut options = Vec::new();
            for &n in &reduction.candidates[v.index()] {
                let initial = if start[v.index()] == n { 1.0 } else { 0.0 };
                let x = b.vars.add(variable().binary().initial(initial));
                b.size.binaries += 1;
                if !workload.pin(v).allows(topology.node(n).spec.kind) {
                    b.objective.add_mul(weights.violation, x);
                }
                b.scratch.clear();
                b.scratch
                    .add_amounts(n, workload.demand(v, &topology.node(n).spec), 1.0);
                for flow in workload.flows_of(v) {
                    end_charges(topology, flow, n, Mechanism::Network, 1.0, &mut b.scratch);
                }
                b.add_scratch(x, 1.0);
                options.push((n, x));
            }
            let sum: Expression = options.iter().map(|&(_, x)| x).sum();
            b.rows.push(sum.eq(1.0));
            choices.push(options);
        }
        // The quadratic part: for each flow between two DAG nodes, the correction from two
        // network ends to the exact pair, wherever it is not zero (one node, a host and a
        // SmartNIC of one server, or, when uplinks matter, two racks or pods).
        let index: Vec<HashMap<ComputeId, Variable>> = choices
            .iter()
            .map(|options| options.iter().copied().collect())
            .collect();
        for flow in workload.flows() {
            let Some(caller) = flow.caller else { continue };
            b.check_clock()?;
            let (a, c) = (&index[caller.index()], &index[flow.callee.index()]);
            let mut pairs: Vec<(ComputeId, ComputeId)> = Vec::new();
            for &(n, _) in &choices[caller.index()] {
                if c.contains_key(&n) {
                    pairs.push((n, n));
                }
                if topology.node(n).spec.kind == NodeKind::Host {
                    for nic in topology.server_nics(n) {
                        if c.contains_key(&nic) {
                            pairs.push((n, nic));
                        }
                    }
                } else {
                    let host = ComputeId(topology.server_of(n).first_node);
                    if host != n && c.contains_key(&host) {
                        pairs.push((n, host));
                    }
                }
            }
            for (n, m) in pairs {
                b.scratch.clear();
                pair_charges(topology, flow, n, m, 1.0, &mut b.scratch);
                end_charges(topology, flow, n, Mechanism::Network, -1.0, &mut b.scratch);
                end_charges(topology, flow, m, Mechanism::Network, -1.0, &mut b.scratch);
                let y = b.product(a[&n], c[&m]);
                b.add_scratch(y, 1.0);
            }
            if reduction.uplinks {
                uplink_products(
                    &mut b,
                    flow.gbps(),
                    &choices[caller.index()],
                    &choices[flow.callee.index()],
                );
            }
        }
        // Per node: totals, balance, interference, energy, overcommitment.
        let mut on_node: BTreeMap<ComputeId, Vec<Variable>> = BTreeMap::new();
        for options in &choices {
            for &(n, x) in options {
                on_node.entry(n).or_default().push(x);
            }
        }
        for &n in &reduction.kept {
            b.check_clock()?;
            node_terms(&mut b, n, on_node.get(&n).map_or(&[][..], Vec::as_slice));
        }
        for u in 0..ledger.uplink_count() as u32 {
            let Some(terms) = b
                .totals
                .remove(&(Target::Uplink(u), Resource::Bandwidth.index()))
            else {
                continue;
            };
            let amount = terms + ledger.uplink_used(u);
            b.overflow(amount, ledger.uplink_capacity(u));
        }
        // Replicas of a group on one server, beyond the first, are each a violation.
        let mut groups: BTreeMap<(u32, u32), Vec<Variable>> = BTreeMap::new();
        for v in dag.node_ids() {
            if workload.replica_peers(v).next().is_none() {
                continue;
            }
            for &(n, x) in &choices[v.index()] {
                let key = (workload.replica_group(v), topology.node(n).server);
                groups.entry(key).or_default().push(x);
            }
        }
        for members in groups.values() {
            if members.len() < 2 {
                continue;
            }
            let shared = b.vars.add(variable().min(0.0));
            b.size.continuous += 1;
            let sum: Expression = members.iter().copied().sum();
            b.rows.push((sum - 1.0).leq(shared));
            b.objective.add_mul(weights.violation, shared);
        }
        b.size.rows = b.rows.len();
        Ok((b, choices))
    }

    /// Builds and solves within the limit; returns the assignment and a note when the limit
    /// was hit (or CBC gave nothing better than the greedy start). Fails only when CBC is not
    /// there or cannot be started, or finds the program infeasible.
    fn solve(
        &self,
        workload: &Workload,
        topology: &Topology,
        ledger: &Ledger,
        started: Instant,
    ) -> Result<(Vec<ComputeId>, Option<Note>), PlaceError> {
        let cbc = Cbc::locate(self.program.as_deref()).map_err(PlaceError::Solver)?;
        let deadline = started + self.time_limit;
        let reduction = reduce(workload, topology, ledger);
        let start = greedy_over(
            &self.model,
            workload,
            topology,
            ledger,
            &reduction.candidates,
        );
        let greedy = |note: Note| Ok((start.clone(), Some(note)));
        let (builder, choices) =
            match self.build(workload, topology, ledger, &reduction, &start, deadline) {
                Ok(built) => built,
                Err(OutOfTime { rows }) => return greedy(Note::Building { rows }),
            };
        let Builder {
            vars,
            objective,
            rows,
            size,
            ..
        } = builder;
        let (status, values, interrupted) = match cbc.solve(&vars, &objective, &rows, deadline) {
            Ok(Outcome::Solved {
                status,
                values,
                interrupted,
            }) => (status, values, interrupted),
            Ok(Outcome::OutOfTimeWriting { rows }) => {
                return greedy(Note::Writing {
                    rows,
                    of: size.rows,
                })
            }
            Ok(Outcome::NoTimeLeft) => return greedy(Note::BeforeStart),
            Ok(Outcome::Killed) => return greedy(Note::Killed),
            Ok(Outcome::EndedWithoutSolution { how }) => {
                return greedy(Note::EndedWithoutSolution { how })
            }
            Err(error @ (SolverError::NotFound { .. } | SolverError::Start { .. })) => {
                return Err(PlaceError::Solver(error))
            }
            Err(error) => return greedy(Note::NoSolution(error.to_string())),
        };
        let limited = match status {
            Status::Optimal => false,
            Status::Stopped { integral: true } => true,
            Status::Stopped { integral: false } => return greedy(Note::NoIncumbent),
            Status::Infeasible => return Err(PlaceError::Solver(SolverError::Infeasible)),
            Status::Unbounded => return greedy(Note::Unbounded),
            Status::Other(line) => return greedy(Note::NoSolution(line)),
        };
        let cost =
            |nodes: &[ComputeId]| assignment_cost(&self.model, workload, topology, ledger, nodes);
        match read_assignment(&choices, &values) {
            // CBC's answer is checked against the greedy start with the annealer's own cost
            // (CBC 2.10 may report a polished iterate that is not its incumbent when stopped).
            Some(nodes) if cost(&nodes) <= cost(&start) + 1e-6 => {
                Ok((nodes, limited.then_some(Note::Incumbent { interrupted })))
            }
            Some(_) => greedy(Note::CostsMore { limited }),
            None => greedy(Note::NoIncumbent),
        }
    }
}

/// Why a placement is not CBC's optimum, or is CBC's at the limit: the `stopped_early` note.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Note {
    /// The limit ran out while building the program, after `rows` rows.
    Building {
        /// Rows built.
        rows: usize,
    },
    /// The limit ran out while writing the LP file, after `rows` of `of` rows.
    Writing {
        /// Rows written.
        rows: usize,
        /// Rows of the program.
        of: usize,
    },
    /// The limit ran out before CBC started.
    BeforeStart,
    /// CBC ignored the interrupt and was killed at the limit.
    Killed,
    /// CBC was interrupted and ended `how` without a solution.
    EndedWithoutSolution {
        /// How it ended ("exited with status 0").
        how: String,
    },
    /// CBC had no integral incumbent.
    NoIncumbent,
    /// CBC's answer costs more than the greedy start; `limited`: the limit had stopped CBC.
    CostsMore {
        /// Whether the limit had stopped CBC.
        limited: bool,
    },
    /// The limit stopped CBC and the placement is its best incumbent: `interrupted` a grace
    /// period before the limit, else at its own limit (set that much short of it).
    Incumbent {
        /// Whether CBC was interrupted.
        interrupted: bool,
    },
    /// CBC found the program unbounded.
    Unbounded,
    /// CBC gave no solution, for this reason.
    NoSolution(String),
}

impl Note {
    /// Whether the placement is the greedy start.
    #[cfg(test)]
    fn is_greedy(&self) -> bool {
        !matches!(self, Note::Incumbent { .. })
    }

    /// The note, for a placement under `limit`.
    fn text(&self, limit: Duration) -> String {
        let limit = format!("{limit:?}");
        let why = match self {
            Note::Building { rows } => format!(
                "time limit hit: the {limit} limit ran out while building the program ({rows} \
                 rows so far)"
            ),
            Note::Writing { rows, of } => format!(
                "time limit hit: the {limit} limit ran out while handing the program to CBC \
                 ({rows} of {of} rows written)"
            ),
            Note::BeforeStart => {
                format!("time limit hit: the {limit} limit ran out before CBC started")
            }
            Note::Killed => format!(
                "time limit hit: CBC did not stop when interrupted and was killed at the \
                 {limit} limit"
            ),
            Note::EndedWithoutSolution { how } => format!(
                "time limit hit: CBC was interrupted before the {limit} limit and {how} \
                 without giving a solution"
            ),
            Note::NoIncumbent => {
                format!("time limit hit: CBC found no integral incumbent within the {limit} limit")
            }
            Note::CostsMore { limited: true } => format!(
                "time limit hit: CBC's answer at the {limit} limit costs more than the greedy \
                 start"
            ),
            Note::CostsMore { limited: false } => {
                "CBC's answer costs more than the greedy start".to_owned()
            }
            Note::Incumbent { interrupted } => {
                let how = if *interrupted {
                    "interrupted a grace period before it"
                } else {
                    "at its own time limit, set a grace period short of it"
                };
                return format!(
                    "time limit hit: the {limit} limit stopped CBC ({how}); this is its best \
                     incumbent"
                );
            }
            Note::Unbounded => "CBC found the program unbounded".to_owned(),
            Note::NoSolution(why) => format!("CBC returned no solution ({why})"),
        };
        format!("{why}; this is the greedy start")
    }
}

/// Uplink loads of one flow of `gbps` between DAG nodes choosing among `a` and `b`: for every
/// rack (and pod), the flow crosses its uplink when exactly one end is inside, so the load is
/// `gbps (A + B - 2 AB)` with `A`, `B` the shares of each end inside and `AB` their product.
fn uplink_products(b: &mut Builder<'_>, gbps: f64, a: &Choices, c: &Choices) {
    let topology = b.topology;
    let racks = topology.racks().len() as u32;
    let mut inside: BTreeMap<u32, (Vec<Variable>, Vec<Variable>)> = BTreeMap::new();
    for (side, options) in [a, c].into_iter().enumerate() {
        for &(n, x) in options {
            let rack = topology.server_of(n).rack;
            let pod = racks + topology.racks()[rack as usize].pod;
            for u in [rack, pod] {
                let entry = inside.entry(u).or_default();
                if side == 0 {
                    entry.0.push(x);
                } else {
                    entry.1.push(x);
                }
            }
        }
    }
    for (u, (xs, ys)) in inside {
        let key = (Target::Uplink(u), Resource::Bandwidth.index());
        let total = b.totals.entry(key).or_default();
        for &x in xs.iter().chain(&ys) {
            total.add_mul(gbps, x);
        }
        if xs.is_empty() || ys.is_empty() {
            continue;
        }
        let (sa, sb) = (
            b.vars.add(variable().min(0.0).max(1.0)),
            b.vars.add(variable().min(0.0).max(1.0)),
        );
        b.size.continuous += 2;
        b.rows
            .push(Expression::from(sa).eq(xs.iter().copied().sum::<Expression>()));
        b.rows
            .push(Expression::from(sb).eq(ys.iter().copied().sum::<Expression>()));
        let both = b.product(sa, sb);
        b.totals.entry(key).or_default().add_mul(-2.0 * gbps, both);
    }
}

/// The terms of node `n`: its totals, the balance and energy of its CPU utilisation, the
/// interference of its instance count, and the overcommitment of every resource.
fn node_terms(b: &mut Builder<'_>, n: ComputeId, on_node: &[Variable]) {
    let ledger = b.ledger;
    let capacity = *ledger.capacity(n);
    let prior = ledger.used(n);
    let weights = b.model.weights;
    let spec = &b.topology.node(n).spec;
    let target = Target::Node(n);
    let mut totals: Vec<Option<Expression>> = (0..RESOURCES)
        .map(|r| b.totals.remove(&(target, r)))
        .collect();
    if on_node.is_empty() && totals.iter().all(Option::is_none) {
        return; // nothing of the application can reach this node
    }
    // CPU total as a variable of its own, so that the balance lines stay short.
    let cpu = Resource::Cpu.index();
    let cpu_total = b.vars.add(variable());
    b.size.continuous += 1;
    let cpu_terms = totals[cpu].take().unwrap_or_default();
    b.rows
        .push(Expression::from(cpu_total).eq(cpu_terms + prior[cpu]));
    let cores = capacity[cpu];
    if cores > 0.0 {
        let balance = b.vars.add(variable().min(0.0));
        b.size.continuous += 1;
        for &(slope, intercept) in b.model.balance.lines() {
            b.rows
                .push((Expression::from(cpu_total) * (slope / cores) + intercept).leq(balance));
        }
        b.objective.add_mul(weights.balance, balance);
        b.objective.add_mul(
            weights.energy * (spec.peak_w - spec.idle_w) / cores,
            cpu_total,
        );
    }
    if !on_node.is_empty() {
        let count = b.vars.add(variable().min(0.0));
        let pairs = b.vars.add(variable().min(0.0));
        b.size.continuous += 2;
        let sum: Expression = on_node.iter().copied().sum();
        b.rows
            .push(Expression::from(count).eq(sum + f64::from(ledger.instances(n))));
        for &(slope, intercept) in b.model.interference.lines() {
            b.rows
                .push((Expression::from(count) * slope + intercept).leq(pairs));
        }
        b.objective.add_mul(weights.interference, pairs);
    }
    for r in Resource::ALL {
        let i = r.index();
        let amount = match r {
            Resource::Cpu => Expression::from(cpu_total),
            // Every booking adds as many outstanding requests as busy cores.
            Resource::Outstanding => {
                let o = Resource::Outstanding.index();
                Expression::from(cpu_total) + (prior[o] - prior[cpu])
            }
            _ => match totals[i].take() {
                Some(terms) => terms + prior[i],
                None => continue,
            },
        };
        b.overflow(amount, capacity[i]);
    }
}

/// The computing node of every DAG node in `values` (by variable), or `None` if some
/// assignment is not integral.
fn read_assignment(choices: &[Choices], values: &[f64]) -> Option<Vec<ComputeId>> {
    choices
        .iter()
        .map(|options| {
            let mut chosen = None;
            for &(n, x) in options {
                let value = values[x.index()];
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
        let started = Instant::now();
        check_inputs(topology, ledger)?;
        let (nodes, note) = self.solve(workload, topology, ledger, started)?;
        let stopped = note.map(|note| note.text(self.time_limit));
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
mod tests;
