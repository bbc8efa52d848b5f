//! `cargo xtask bench placement`: E3 Table 6. Time per deployed microservice while deploying
//! exactly 10,000 microservices (the eight applications in turn, the last one cut down to make
//! up the count) onto FatTrees of Type2-SmartNIC servers, for HCM, simulated annealing and the
//! ILP (under a wall budget per size), beside the paper's figures; the straightforward HCM (the
//! test oracle) is the baseline measured in the same run, and its placements must equal HCM's.
//! Then HCM and its oracle at 10,000 and 50,000 servers. Writes target/placement/table6.csv
//! and table6.svg.
//!
//! Options: `--quick` (exactly 1,000 microservices, for a smoke run), `--ilp-budget SECONDS` (wall
//! time the ILP gets per cluster size, default 30: it places applications in turn until the
//! budget is spent), `--ilp-limit SECONDS` (the limit of one ILP placement, building the
//! program included, fractions allowed, default 1).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use host_lib::control::annealing::Annealing;
use host_lib::control::evaluate::nominal_rps;
use host_lib::control::hcm::oracle::Oracle;
use host_lib::control::hcm::Hcm;
use host_lib::control::ilp::Ilp;
use host_lib::control::ledger::Ledger;
use host_lib::control::placement::{Placement, Placer};
use host_lib::control::profile::builtin_profile;
use host_lib::control::topology::{Cluster, Topology};
use host_lib::control::workload::Workload;
use indicatif::{ProgressBar, ProgressStyle};
use microservices::apps::{App, Dag, DagBuilder, EdgeKind, TierId, Wiring};
use plotters::prelude::*;

/// Cluster sizes of Table 6 and the paper's milliseconds per microservice (HCM, annealing,
/// ILP; `None` where the paper says only ">> 1 s").
const TABLE_6: [(u32, f64, f64, Option<f64>); 6] = [
    (100, 4.85, 3.15, Some(7.64)),
    (200, 8.31, 4.73, Some(19.43)),
    (400, 19.83, 7.43, Some(84.83)),
    (600, 34.32, 15.64, Some(361.85)),
    (800, 74.39, 23.50, None),
    (1000, 263.46, 61.42, None),
];
/// Sizes beyond the paper, HCM only.
const LARGE: [u32; 2] = [10_000, 50_000];

struct Options {
    microservices: usize,
    ilp_budget: Duration,
    ilp_limit: Duration,
}

fn options() -> Options {
    let mut options = Options {
        microservices: 10_000,
        ilp_budget: Duration::from_secs(30),
        ilp_limit: Duration::from_secs(1),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| args.get(i + 1).and_then(|v| v.parse::<f64>().ok());
        match args[i].as_str() {
            "--quick" => options.microservices = 1_000,
            "--ilp-budget" => {
                options.ilp_budget = Duration::from_secs_f64(value(i).unwrap_or(30.0));
                i += 1;
            }
            "--ilp-limit" => {
                options.ilp_limit = Duration::from_secs_f64(value(i).unwrap_or(1.0));
                i += 1;
            }
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    options
}

/// The applications to deploy, in turn, until exactly `count` microservices: each offered a
/// share of 30% of the nominal capacity of the smallest cluster. Every built-in application
/// has a multiple of 12 nodes, so the last one is a copy of the next application of the
/// cycle cut down to make up the count (see [`cut_down`]).
fn stream(count: usize) -> Vec<Workload> {
    let smallest = Cluster::type2_fat_tree(TABLE_6[0].0).topology();
    let mean_nodes = App::ALL.iter().map(|a| a.node_count()).sum::<usize>() / App::ALL.len();
    let instances = count.div_ceil(mean_nodes);
    let offered = |dag: Dag| {
        let profiles = dag
            .tiers()
            .iter()
            .map(|t| builtin_profile(t.kind))
            .collect();
        let unit = Workload::new(dag, profiles, 1.0).expect("built-in profiles");
        let rate = 0.3 * nominal_rps(&unit, &smallest) / instances as f64;
        unit.with_rate(rate).expect("positive rate")
    };
    let mut workloads = Vec::new();
    let mut total = 0;
    for (i, app) in App::ALL.iter().cycle().enumerate() {
        let left = count - total;
        if left == 0 {
            break;
        }
        if app.node_count() <= left {
            workloads.push(offered(app.dag()));
            total += app.node_count();
            continue;
        }
        let next = App::ALL.iter().cycle().skip(i % App::ALL.len());
        if let Some(dag) = next.take(App::ALL.len()).find_map(|a| cut_down(*a, left)) {
            workloads.push(offered(dag));
        }
        break;
    }
    workloads
}

/// `app` cut down to exactly `nodes` DAG nodes, if it can be: every tier's shards scaled by
/// one factor (largest remainders, at least one shard each; the tiers must have the same
/// number of backups), the same calls, each spread over no more shards than its target tier
/// now has.
fn cut_down(app: App, nodes: usize) -> Option<Dag> {
    let full = app.dag();
    let tiers = full.tiers();
    let per_shard = 1 + usize::from(tiers[0].backups);
    if tiers
        .iter()
        .any(|t| 1 + usize::from(t.backups) != per_shard)
        || !nodes.is_multiple_of(per_shard)
    {
        return None;
    }
    let want = nodes / per_shard;
    let total: usize = tiers.iter().map(|t| usize::from(t.shards)).sum();
    if want < tiers.len() || want >= total {
        return None;
    }
    let exact: Vec<f64> = tiers
        .iter()
        .map(|t| f64::from(t.shards) * want as f64 / total as f64)
        .collect();
    let mut shards: Vec<usize> = exact.iter().map(|x| (x.floor() as usize).max(1)).collect();
    while shards.iter().sum::<usize>() < want {
        let behind = |i: usize| exact[i] - shards[i] as f64;
        let i = (0..tiers.len()).max_by(|&a, &b| behind(a).total_cmp(&behind(b)))?;
        shards[i] += 1;
    }
    if shards.iter().sum::<usize>() != want {
        return None;
    }
    let mut builder = DagBuilder::new(format!("{} (cut to {nodes})", app.name()));
    let mut ids = Vec::new();
    for (tier, &count) in tiers.iter().zip(&shards) {
        let shards = u16::try_from(count).ok()?;
        ids.push(
            builder
                .tier(tier.name.clone(), tier.kind, shards, tier.backups)
                .ok()?,
        );
    }
    // The calls, read off the first shard of every tier: how many shards of each tier it calls.
    for (from, &id) in ids.iter().enumerate() {
        let first = full.first_node(TierId(from as u16));
        let mut spreads: BTreeMap<usize, u16> = BTreeMap::new();
        for edge in full.out_edges(first) {
            if edge.kind == EdgeKind::Call {
                *spreads.entry(full.node(edge.to).tier.index()).or_default() += 1;
            }
        }
        for (to, spread) in spreads {
            let wiring = if spread == tiers[to].shards {
                Wiring::All
            } else {
                Wiring::Spread(spread.min(u16::try_from(shards[to]).ok()?))
            };
            builder.connect(id, ids[to], wiring).ok()?;
        }
    }
    builder.build().ok()
}

/// One run of one algorithm on one cluster size.
struct Run {
    /// Milliseconds per deployed microservice.
    ms: f64,
    /// Microservices deployed.
    deployed: usize,
    /// Placements, for comparing HCM with its oracle.
    placements: Vec<Placement>,
    /// Placements a time limit cut short.
    limit_hits: usize,
}

fn deploy(
    placer: &mut dyn Placer,
    topology: &Topology,
    workloads: &[Workload],
    budget: Option<Duration>,
    bar: &ProgressBar,
) -> Run {
    let mut ledger = Ledger::new(topology);
    let mut deployed = 0;
    let mut placements = Vec::new();
    let mut limit_hits = 0;
    let mut spent = Duration::ZERO;
    for workload in workloads {
        if budget.is_some_and(|b| spent >= b) {
            break;
        }
        let started = Instant::now();
        let placement = placer
            .place(workload, topology, &mut ledger)
            .expect("placement");
        spent += started.elapsed();
        deployed += workload.dag().len();
        limit_hits += usize::from(placement.stopped_early.is_some());
        placements.push(placement);
        bar.inc(workload.dag().len() as u64);
    }
    Run {
        ms: spent.as_secs_f64() * 1e3 / deployed.max(1) as f64,
        deployed,
        placements,
        limit_hits,
    }
}

fn bar(label: String, total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} microservices {elapsed}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label);
    bar
}

struct Row {
    servers: u32,
    hcm: Run,
    oracle: Option<Run>,
    annealing: Option<Run>,
    ilp: Option<Run>,
    paper: Option<(f64, f64, Option<f64>)>,
}

/// HCM, then its oracle, on `topology`.
fn hcm_and_oracle(
    topology: &Topology,
    workloads: &[Workload],
    servers: u32,
    total: usize,
) -> (Run, Run) {
    let label = |name: &str| format!("{name} on {servers} servers");
    let hcm = deploy(
        &mut Hcm,
        topology,
        workloads,
        None,
        &bar(label("hcm"), total),
    );
    let oracle = deploy(
        &mut Oracle,
        topology,
        workloads,
        None,
        &bar(label("hcm oracle"), total),
    );
    (hcm, oracle)
}

fn main() {
    let options = options();
    let workloads = stream(options.microservices);
    let total: usize = workloads.iter().map(|w| w.dag().len()).sum();
    if let Some(last) = workloads.last() {
        println!(
            "{total} microservices in {} applications, the last {}",
            workloads.len(),
            last.dag().name()
        );
    }
    let mut rows = Vec::new();
    for &(servers, hcm_ms, annealing_ms, ilp_ms) in &TABLE_6 {
        let topology = Cluster::type2_fat_tree(servers).topology();
        let label = |name: &str| format!("{name} on {servers} servers");
        let (hcm, oracle) = hcm_and_oracle(&topology, &workloads, servers, total);
        let annealing = deploy(
            &mut Annealing::default(),
            &topology,
            &workloads,
            None,
            &bar(label("annealing"), total),
        );
        // The ILP's limit covers each whole placement, so every size gets its budget.
        let mut ilp = Ilp {
            time_limit: options.ilp_limit,
            ..Ilp::default()
        };
        let ilp = Some(deploy(
            &mut ilp,
            &topology,
            &workloads,
            Some(options.ilp_budget),
            &bar(label("ilp"), total),
        ));
        rows.push(Row {
            servers,
            hcm,
            oracle: Some(oracle),
            annealing: Some(annealing),
            ilp,
            paper: Some((hcm_ms, annealing_ms, ilp_ms)),
        });
    }
    for &servers in &LARGE {
        let topology = Cluster::type2_fat_tree(servers).topology();
        let (hcm, oracle) = hcm_and_oracle(&topology, &workloads, servers, total);
        rows.push(Row {
            servers,
            hcm,
            oracle: Some(oracle),
            annealing: None,
            ilp: None,
            paper: None,
        });
    }
    let table = render(&rows, total, &options);
    print!("{table}");
    let dir = output_dir();
    if let Err(error) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("table6.csv"), csv(&rows)))
    {
        eprintln!("could not write {}: {error}", dir.display());
    }
    match plot(&rows, &dir.join("table6.svg")) {
        Ok(()) => println!("wrote {0}/table6.csv and {0}/table6.svg", dir.display()),
        Err(error) => eprintln!("could not draw the plot: {error}"),
    }
}

fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("placement")
}

fn identical(a: &Run, b: &Run) -> bool {
    a.placements.len() == b.placements.len()
        && a.placements
            .iter()
            .zip(&b.placements)
            .all(|(x, y)| x.nodes == y.nodes && x.violations == y.violations)
}

fn render(rows: &[Row], total: usize, options: &Options) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nTable 6: milliseconds per deployed microservice, {total} microservices onto Type2-SmartNIC FatTrees (40 servers per rack)"
    );
    let _ = writeln!(
        out,
        "paper = E3 Table 6; x = paper / ours; baseline = straightforward HCM (oracle) in this run"
    );
    let _ = writeln!(
        out,
        "{:>7} | {:>9} {:>8} {:>8} | {:>9} {:>8} {:>7} | {:>9} {:>8} {:>7} {:>6} {:>7} | {:>9} {:>8} {:>9} | {:>10}",
        "servers",
        "hcm ms",
        "paper",
        "x",
        "anneal ms",
        "paper",
        "x",
        "ilp ms",
        "paper",
        "x",
        "done",
        "limit",
        "oracle ms",
        "/hcm",
        "identical",
        "violations"
    );
    for row in rows {
        let hcm = &row.hcm;
        let (paper_hcm, paper_annealing, paper_ilp) = row
            .paper
            .map_or((None, None, None), |p| (Some(p.0), Some(p.1), Some(p.2)));
        let num =
            |x: Option<f64>, digits: usize| x.map_or("-".to_string(), |x| format!("{x:.digits$}"));
        let ratio = |paper: Option<f64>, ours: Option<f64>| match (paper, ours) {
            (Some(p), Some(o)) if o > 0.0 && p >= o => format!("{:.0}x", p / o),
            (Some(p), Some(o)) if o > 0.0 => format!("{:.2}x", p / o),
            _ => "-".to_string(),
        };
        let ilp_paper = match paper_ilp {
            Some(Some(ms)) => format!("{ms:.2}"),
            Some(None) => ">>1000".to_string(),
            None => "-".to_string(),
        };
        let ilp_ms = row.ilp.as_ref().map(|r| r.ms);
        let ilp_done = row.ilp.as_ref().map_or("-".to_string(), |r| {
            format!("{:.0}%", r.deployed as f64 * 100.0 / total as f64)
        });
        let ilp_hits = row.ilp.as_ref().map_or("-".to_string(), |r| {
            format!("{}/{}", r.limit_hits, r.placements.len())
        });
        let oracle_ms = row.oracle.as_ref().map(|r| r.ms);
        let same = row
            .oracle
            .as_ref()
            .map_or("-", |o| if identical(hcm, o) { "yes" } else { "NO" });
        let violations: usize = hcm.placements.iter().map(|p| p.violations.len()).sum();
        let _ = writeln!(
            out,
            "{:>7} | {:>9.4} {:>8} {:>8} | {:>9} {:>8} {:>7} | {:>9} {:>8} {:>7} {:>6} {:>7} | {:>9} {:>8} {:>9} | {:>10}",
            row.servers,
            hcm.ms,
            num(paper_hcm, 2),
            ratio(paper_hcm, Some(hcm.ms)),
            num(row.annealing.as_ref().map(|r| r.ms), 3),
            num(paper_annealing, 2),
            ratio(paper_annealing, row.annealing.as_ref().map(|r| r.ms)),
            num(ilp_ms, 2),
            ilp_paper,
            ratio(paper_ilp.flatten(), ilp_ms),
            ilp_done,
            ilp_hits,
            num(oracle_ms, 3),
            match oracle_ms {
                Some(o) if hcm.ms > 0.0 => format!("{:.0}x", o / hcm.ms),
                _ => "-".to_string(),
            },
            same,
            violations
        );
    }
    let _ = writeln!(
        out,
        "ILP: each placement (building the program and solving it) capped at {:?}, {:?} of placing per size; done = share of the {total} microservices placed in that budget; limit = placements that hit the cap (CBC's incumbent or the greedy start) / placements",
        options.ilp_limit, options.ilp_budget
    );
    out
}

fn csv(rows: &[Row]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record([
        "servers",
        "hcm_ms",
        "paper_hcm_ms",
        "annealing_ms",
        "paper_annealing_ms",
        "ilp_ms",
        "paper_ilp_ms",
        "ilp_deployed",
        "oracle_ms",
        "hcm_equals_oracle",
    ]);
    for row in rows {
        let opt = |x: Option<f64>| x.map_or(String::new(), |x| x.to_string());
        let _ = writer.write_record([
            row.servers.to_string(),
            row.hcm.ms.to_string(),
            opt(row.paper.map(|p| p.0)),
            opt(row.annealing.as_ref().map(|r| r.ms)),
            opt(row.paper.map(|p| p.1)),
            opt(row.ilp.as_ref().map(|r| r.ms)),
            opt(row.paper.and_then(|p| p.2)),
            row.ilp
                .as_ref()
                .map_or(String::new(), |r| r.deployed.to_string()),
            opt(row.oracle.as_ref().map(|r| r.ms)),
            row.oracle
                .as_ref()
                .map_or(String::new(), |o| identical(&row.hcm, o).to_string()),
        ]);
    }
    writer
        .into_inner()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// Reads one figure of a row, if the row has it.
type Figure = dyn Fn(&Row) -> Option<f64>;

fn plot(rows: &[Row], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "ms per deployed microservice (E3 Table 6)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (80f64..60_000f64).log_scale(),
            (0.0005f64..1000f64).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("servers")
        .y_desc("ms per microservice")
        .draw()?;
    let series: [(&str, RGBColor, Box<Figure>); 7] = [
        ("HCM (ours)", RED, Box::new(|r: &Row| Some(r.hcm.ms))),
        (
            "annealing (ours)",
            BLUE,
            Box::new(|r: &Row| r.annealing.as_ref().map(|a| a.ms)),
        ),
        (
            "ILP (ours, capped)",
            GREEN,
            Box::new(|r: &Row| r.ilp.as_ref().map(|a| a.ms)),
        ),
        (
            "HCM oracle (ours)",
            MAGENTA,
            Box::new(|r: &Row| r.oracle.as_ref().map(|a| a.ms)),
        ),
        (
            "HCM (paper)",
            RGBColor(255, 160, 160),
            Box::new(|r: &Row| r.paper.map(|p| p.0)),
        ),
        (
            "annealing (paper)",
            RGBColor(150, 150, 255),
            Box::new(|r: &Row| r.paper.map(|p| p.1)),
        ),
        (
            "ILP (paper)",
            RGBColor(140, 220, 140),
            Box::new(|r: &Row| r.paper.and_then(|p| p.2)),
        ),
    ];
    for (name, color, value) in series {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| value(r).map(|v| (f64::from(r.servers), v.max(0.0005))))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
