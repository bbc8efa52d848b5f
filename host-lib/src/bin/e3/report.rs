//! `e3 report`: every built-in application on one cluster (3xType1 by default) with HCM,
//! simulated annealing and the ILP; the evaluator's requests per joule and latency side by
//! side, in the shape of E3 Figure 6.

use std::error::Error;

use host_lib::control::config::cluster_by_name_or_path;
use microservices::apps::App;
use serde::Serialize;

use crate::place::{place_and_score, workload_for, Algorithm, Knobs, Outcome};

/// Options of `e3 report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The cluster.
    #[arg(long, default_value = "3xtype1")]
    cluster: String,
    #[command(flatten)]
    knobs: Knobs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    app: &'static str,
    outcomes: Vec<Outcome>,
}

/// Entry point of `e3 report`.
pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let topology = cluster_by_name_or_path(&args.cluster)?.topology();
    let mut rows = Vec::new();
    for app in App::ALL {
        let workload = workload_for(app.name(), &topology, None, args.knobs.load)?;
        let outcomes = Algorithm::ALL
            .iter()
            .map(|&algo| place_and_score(&workload, &topology, algo, &args.knobs))
            .collect::<Result<Vec<_>, _>>()?;
        if !args.json {
            eprintln!("placed {app}");
        }
        rows.push(Row {
            app: app.name(),
            outcomes,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{} applications on {}, offered {:.0}% of nominal capacity",
        rows.len(),
        topology.name(),
        args.knobs.load * 100.0
    );
    println!();
    println!(
        "{:<9} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>8} {:>8} | {:>8} {:>8} | violations h/a/i",
        "app",
        "RPJ hcm",
        "anneal",
        "ilp",
        "lat hcm",
        "anneal",
        "ilp",
        "RPJ/ann",
        "RPJ/ilp",
        "lat/ann",
        "lat/ilp",
    );
    let mut wins = [0usize; 4];
    for row in &rows {
        let rpj: Vec<f64> = row
            .outcomes
            .iter()
            .map(|o| o.score.requests_per_joule)
            .collect();
        let lat: Vec<Option<f64>> = row.outcomes.iter().map(|o| o.score.latency_us).collect();
        let latency = |l: Option<f64>| l.map_or("overload".to_string(), |l| format!("{l:.1}"));
        // HCM's gain: more requests per joule (+%), less latency (-% of the baseline).
        let gain = |a: f64, b: f64| (a / b - 1.0) * 100.0;
        let cut = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:+.1}%", (1.0 - a / b) * 100.0),
            _ => "-".to_string(),
        };
        if rpj[0] > rpj[1] {
            wins[0] += 1;
        }
        if rpj[0] > rpj[2] {
            wins[1] += 1;
        }
        if matches!((lat[0], lat[1]), (Some(a), Some(b)) if a < b) {
            wins[2] += 1;
        }
        if matches!((lat[0], lat[2]), (Some(a), Some(b)) if a < b) {
            wins[3] += 1;
        }
        let violations: Vec<String> = row
            .outcomes
            .iter()
            .map(|o| o.violations.len().to_string())
            .collect();
        println!(
            "{:<9} | {:>9.1} {:>9.1} {:>9.1} | {:>9} {:>9} {:>9} | {:>+7.1}% {:>+7.1}% | {:>8} {:>8} | {}",
            row.app,
            rpj[0],
            rpj[1],
            rpj[2],
            latency(lat[0]),
            latency(lat[1]),
            latency(lat[2]),
            gain(rpj[0], rpj[1]),
            gain(rpj[0], rpj[2]),
            cut(lat[0], lat[1]),
            cut(lat[0], lat[2]),
            violations.join("/")
        );
    }
    println!();
    println!(
        "HCM ahead in requests per joule on {}/{n} vs annealing, {}/{n} vs ILP; in latency on {}/{n} vs annealing, {}/{n} vs ILP",
        wins[0],
        wins[1],
        wins[2],
        wins[3],
        n = rows.len()
    );
    for row in &rows {
        for outcome in &row.outcomes {
            if let Some(note) = &outcome.stopped_early {
                println!("note: {} {}: {note}", row.app, outcome.algorithm);
            }
        }
    }
    Ok(())
}
