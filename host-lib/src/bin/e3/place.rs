//! `e3 place`: places one application on one cluster with one algorithm, prints where every DAG
//! node went and the evaluator's scores (or all of it as JSON).

use std::error::Error;
use std::time::Duration;

use clap::ValueEnum;
use host_lib::control::annealing::Annealing;
use host_lib::control::config::{app_by_name_or_path, cluster_by_name_or_path};
use host_lib::control::evaluate::{evaluate, nominal_rps, Evaluation};
use host_lib::control::hcm::Hcm;
use host_lib::control::ilp::Ilp;
use host_lib::control::ledger::Ledger;
use host_lib::control::placement::{Placement, Placer};
use host_lib::control::topology::Topology;
use host_lib::control::workload::Workload;
use serde::Serialize;

/// A placement algorithm, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Algorithm {
    /// E3's hierarchical communication-aware placement.
    Hcm,
    /// Simulated annealing (Service Fabric's cost).
    Annealing,
    /// Integer linear program over the same cost, solved by COIN-OR CBC's `cbc` program
    /// ($E3_CBC, else `cbc` on PATH; Debian's coinor-cbc).
    Ilp,
}

impl Algorithm {
    /// Every algorithm, HCM first.
    pub const ALL: [Algorithm; 3] = [Algorithm::Hcm, Algorithm::Annealing, Algorithm::Ilp];

    /// The placer, configured from the command line's knobs.
    pub fn placer(self, knobs: &Knobs) -> Result<Box<dyn Placer>, Box<dyn Error>> {
        let seconds = |x: f64, what: &str| {
            Duration::try_from_secs_f64(x)
                .map_err(|_| format!("--{what} must be a number of seconds (got {x})"))
        };
        Ok(match self {
            Algorithm::Hcm => Box::new(Hcm),
            Algorithm::Annealing => Box::new(Annealing {
                time_budget: seconds(knobs.annealing_seconds, "annealing-seconds")?,
                stop_after: knobs.annealing_stop_after,
                ..Annealing::with_seed(knobs.seed)
            }),
            Algorithm::Ilp => Box::new(Ilp {
                time_limit: seconds(knobs.ilp_seconds, "ilp-seconds")?,
                ..Ilp::default()
            }),
        })
    }
}

/// Settings shared by `place` and `report`.
#[derive(Clone, Debug, clap::Args)]
pub struct Knobs {
    /// Offered load as a fraction of the cluster's nominal capacity for the application
    /// (ignored when a rate is given).
    #[arg(long, default_value_t = 0.3)]
    pub load: f64,
    /// Seed of simulated annealing.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Time budget of simulated annealing, seconds: a cap, looked at every 1024 moves; a run
    /// it cuts says after how many moves.
    #[arg(long, default_value_t = 10.0)]
    pub annealing_seconds: f64,
    /// Stop simulated annealing after this many moves (replays a run the budget cut short).
    #[arg(long)]
    pub annealing_stop_after: Option<u64>,
    /// Time limit of one ILP placement, building the program and solving it, seconds
    /// (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    pub ilp_seconds: f64,
    /// Plan nodes only up to this fraction of their cores (the operator's headroom).
    #[arg(long, default_value_t = 1.0)]
    pub cpu_limit: f64,
}

/// Options of `e3 place`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A built-in application (nfv-fin, nfv-din, nfv-ifid, rta-ptc, rta-sf, rta-shm, iot-dh,
    /// iot-ts) or an application TOML file.
    #[arg(long)]
    app: String,
    /// A built-in cluster (4xbeefy, 4xwimpy, 2xbeefy+2xwimpy, 2xtype2, 1xsuperbeefy, 3xtype1,
    /// 3xbeefy, type2xN) or a cluster TOML file.
    #[arg(long, default_value = "3xtype1")]
    cluster: String,
    /// The placement algorithm.
    #[arg(long, value_enum, default_value_t = Algorithm::Hcm)]
    algo: Algorithm,
    /// Offered requests per second (default: the file's rate, else the load).
    #[arg(long)]
    rate: Option<f64>,
    #[command(flatten)]
    knobs: Knobs,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// One application placed and scored.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The application.
    pub app: String,
    /// The cluster.
    pub cluster: String,
    /// The algorithm.
    pub algorithm: &'static str,
    /// Seconds the placement took.
    pub seconds: f64,
    /// Where every DAG node went.
    pub nodes: Vec<NodeOut>,
    /// Rules broken, one line each.
    pub violations: Vec<String>,
    /// Set when a time limit cut the algorithm short.
    pub stopped_early: Option<String>,
    /// The evaluator's scores.
    pub score: Evaluation,
}

/// Where one DAG node went.
#[derive(Debug, Serialize)]
pub struct NodeOut {
    /// DAG node index.
    pub node: u32,
    /// Its tier.
    pub tier: String,
    /// Shard index.
    pub shard: u16,
    /// `primary` or `backup`.
    pub role: &'static str,
    /// The computing node, `s0/nic0`.
    pub on: String,
}

/// Places `workload` with `algorithm` on an empty `topology` and scores it.
pub fn place_and_score(
    workload: &Workload,
    topology: &Topology,
    algorithm: Algorithm,
    knobs: &Knobs,
) -> Result<Outcome, Box<dyn Error>> {
    let mut ledger = Ledger::with_cpu_limit(topology, knobs.cpu_limit);
    let mut placer = algorithm.placer(knobs)?;
    let started = std::time::Instant::now();
    let placement = placer.place(workload, topology, &mut ledger)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(outcome(workload, topology, &placement, seconds))
}

fn outcome(
    workload: &Workload,
    topology: &Topology,
    placement: &Placement,
    seconds: f64,
) -> Outcome {
    let dag = workload.dag();
    let nodes = dag
        .node_ids()
        .map(|v| {
            let node = dag.node(v);
            NodeOut {
                node: v.0,
                tier: dag.tier(node.tier).name.clone(),
                shard: node.shard,
                role: match node.role {
                    microservices::apps::Role::Primary => "primary",
                    microservices::apps::Role::Backup { .. } => "backup",
                },
                on: topology.label(placement.node_of(v)),
            }
        })
        .collect();
    let violations = placement
        .violations
        .iter()
        .map(|v| {
            let breaches: Vec<String> = v.breaches.iter().map(ToString::to_string).collect();
            format!(
                "node {} on {}: {}",
                v.node.0,
                topology.label(v.on),
                breaches.join(", ")
            )
        })
        .collect();
    Outcome {
        app: dag.name().to_string(),
        cluster: topology.name().to_string(),
        algorithm: placement.algorithm,
        seconds,
        nodes,
        violations,
        stopped_early: placement.stopped_early.clone(),
        score: evaluate(workload, topology, placement),
    }
}

/// The workload of `app` (built-in name or file) on `topology`, at `rate` or else the file's
/// rate or else `load` of the nominal capacity.
pub fn workload_for(
    app: &str,
    topology: &Topology,
    rate: Option<f64>,
    load: f64,
) -> Result<Workload, Box<dyn Error>> {
    let (builtin, file) = app_by_name_or_path(app)?;
    let (workload, file_rate) = match (builtin, file) {
        (Some(app), _) => (Workload::builtin(app, 1.0)?, None),
        (None, Some(config)) => {
            config.check_against(topology)?;
            (config.workload.clone(), config.rate)
        }
        (None, None) => return Err("no application".into()),
    };
    let rate = match rate.or(file_rate) {
        Some(rate) => rate,
        None => load * nominal_rps(&workload, topology),
    };
    Ok(workload.with_rate(rate)?)
}

/// Entry point of `e3 place`.
pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let topology = cluster_by_name_or_path(&args.cluster)?.topology();
    let workload = workload_for(&args.app, &topology, args.rate, args.knobs.load)?;
    let outcome = place_and_score(&workload, &topology, args.algo, &args.knobs)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_outcome(&outcome);
    }
    Ok(())
}

fn print_outcome(outcome: &Outcome) {
    let score = &outcome.score;
    println!(
        "{} on {} with {}: {} instances placed in {:.3} s, offered {:.0} req/s",
        outcome.app,
        outcome.cluster,
        outcome.algorithm,
        outcome.nodes.len(),
        outcome.seconds,
        score.offered_rps
    );
    if let Some(note) = &outcome.stopped_early {
        println!("note: {note}");
    }
    println!();
    println!(
        "{:<12} {:<6} {:>6} {:<8} computing node",
        "tier", "shard", "node", "role"
    );
    for node in &outcome.nodes {
        println!(
            "{:<12} {:<6} {:>6} {:<8} {}",
            node.tier, node.shard, node.node, node.role, node.on
        );
    }
    println!();
    println!(
        "{:<12} {:>9} {:>12} {:>9}",
        "computing", "instances", "utilisation", "power W"
    );
    for node in score.nodes.iter().filter(|n| n.instances > 0) {
        println!(
            "{:<12} {:>9} {:>11.1}% {:>9.1}",
            node.label,
            node.instances,
            node.utilisation * 100.0,
            node.power_w
        );
    }
    let idle = score.nodes.iter().filter(|n| n.instances == 0).count();
    let busiest = score
        .nodes
        .iter()
        .map(|n| n.utilisation)
        .fold(0.0, f64::max);
    if idle > 0 {
        println!("({idle} computing nodes hold no instance)");
    }
    println!();
    println!(
        "bottleneck throughput  {:.0} req/s (limited by {})",
        score.bottleneck_rps, score.bottleneck
    );
    println!("busiest node at offered {:.1}%", busiest * 100.0);
    match score.latency_us {
        Some(latency) => println!("latency at offered     {latency:.1} us"),
        None => println!("latency at offered     overloaded"),
    }
    println!("power at offered       {:.1} W", score.power_w);
    println!("power at bottleneck    {:.1} W", score.peak_power_w);
    println!("requests per joule     {:.1}", score.requests_per_joule);
    println!(
        "cost efficiency 1 year {:.3e} req/$",
        score.cost_efficiency_1y
    );
    println!(
        "cost efficiency 5 year {:.3e} req/$",
        score.cost_efficiency_5y
    );
    if outcome.violations.is_empty() {
        println!("violations             none");
    } else {
        println!("violations             {}", outcome.violations.len());
        for line in &outcome.violations {
            println!("  {line}");
        }
    }
}
