//! The operator command end to end: runs the `e3` binary for `place` (tables and JSON, every
//! algorithm), `report`, and the errors it gives for unknown names and bad files.

#![cfg(feature = "cli")]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `e3` with `args`.
fn e3(args: &[&str]) -> Output {
    e3_with(args, &[])
}

/// Runs `e3` with `args` and the environment variables `vars` set.
fn e3_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_e3"))
        .args(args)
        .envs(vars.iter().copied())
        .output()
        .expect("run e3")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `e3` and expects it to succeed.
fn ok(args: &[&str]) -> String {
    let output = e3(args);
    assert!(
        output.status.success(),
        "e3 {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// Runs `e3` and expects it to fail with a message on stderr and nothing on stdout; returns
/// the message.
fn fails(args: &[&str]) -> String {
    let output = e3(args);
    assert!(!output.status.success(), "e3 {args:?} succeeded");
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(message.starts_with("e3: "), "{message}");
    message.trim_end().to_string()
}

/// A file in the temporary directory, unique to this process, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("e3-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("write temporary file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The labels of the computing nodes of 3xType1.
fn three_type1_labels() -> BTreeSet<String> {
    (0..3)
        .flat_map(|s| [format!("s{s}/host"), format!("s{s}/nic0")])
        .collect()
}

#[test]
fn place_prints_every_node_and_the_scores() {
    let out = ok(&["place", "--app", "nfv-fin", "--cluster", "3xtype1"]);
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("nfv-fin on 3xtype1 with hcm: 72 instances placed in "),
        "{first}"
    );
    // The placement table: one row per DAG node, `tier shard node role computing-node`.
    let labels = three_type1_labels();
    let mut placed = BTreeSet::new();
    let table = out
        .lines()
        .skip_while(|l| !l.starts_with("tier"))
        .skip(1)
        .take_while(|l| !l.is_empty());
    for row in table {
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(fields.len(), 5, "{row}");
        assert!(["flowmon", "nids", "ipsec"].contains(&fields[0]), "{row}");
        assert_eq!(fields[3], "primary", "{row}");
        assert!(labels.contains(fields[4]), "{row}");
        assert!(placed.insert(fields[2].parse::<u32>().unwrap()), "{row}");
    }
    assert_eq!(placed, (0..72).collect());
    for score in [
        "bottleneck throughput",
        "latency at offered",
        "power at offered",
        "power at bottleneck",
        "requests per joule",
        "cost efficiency 1 year",
        "cost efficiency 5 year",
        "violations             none",
    ] {
        assert!(out.contains(score), "no `{score}` in:\n{out}");
    }
}

/// Checks one `e3 place --json` outcome of `app` (with `nodes` DAG nodes) on 3xType1.
fn check_outcome(outcome: &Value, app: &str, algorithm: &str, nodes: u64) {
    assert_eq!(outcome["app"], app);
    assert_eq!(outcome["cluster"], "3xtype1");
    assert_eq!(outcome["algorithm"], algorithm);
    let labels = three_type1_labels();
    let placed: BTreeSet<u64> = outcome["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert!(labels.contains(n["on"].as_str().unwrap()), "{n}");
            assert!(n["tier"].is_string() && n["shard"].is_u64(), "{n}");
            assert!(["primary", "backup"].contains(&n["role"].as_str().unwrap()));
            n["node"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(placed, (0..nodes).collect(), "every DAG node placed once");
    assert!(outcome["violations"].is_array());
    let score = &outcome["score"];
    let number = |key: &str| {
        score[key]
            .as_f64()
            .unwrap_or_else(|| panic!("score {key}: {}", score[key]))
    };
    assert!(number("offered_rps") > 0.0);
    assert!(number("bottleneck_rps") >= number("offered_rps"));
    assert!(score["bottleneck"].is_string());
    for key in [
        "power_w",
        "peak_power_w",
        "requests_per_joule",
        "offered_requests_per_joule",
        "cost_efficiency_1y",
        "cost_efficiency_5y",
    ] {
        assert!(number(key) > 0.0, "{key}");
    }
    assert!(number("cost_efficiency_5y") > number("cost_efficiency_1y"));
    assert!(score["latency_us"].is_f64() || score["latency_us"].is_null());
    let per_node = score["nodes"].as_array().unwrap();
    assert_eq!(per_node.len(), 6);
    let instances: u64 = per_node
        .iter()
        .map(|n| n["instances"].as_u64().unwrap())
        .sum();
    assert_eq!(instances, nodes);
}

#[test]
fn place_json_for_every_algorithm() {
    for algorithm in ["hcm", "annealing", "ilp"] {
        let out = ok(&[
            "place",
            "--app",
            "iot-ts",
            "--algo",
            algorithm,
            "--annealing-seconds",
            "0.5",
            "--ilp-seconds",
            "0.5",
            "--json",
        ]);
        let outcome: Value = serde_json::from_str(&out).expect("JSON");
        check_outcome(&outcome, "iot-ts", algorithm, 108);
    }
}

#[test]
fn place_reads_application_files() {
    let app = TempFile::new(
        "thermostat.toml",
        "name = \"thermostat\"\nrate = 20000.0\n\n[[tier]]\nname = \"gw\"\nservice = \"apigw\"\n\
         shards = 2\nbackups = 1\n\n[[tier]]\nname = \"db\"\nservice = \"sql\"\nshards = 3\n\n\
         [[call]]\nfrom = \"gw\"\nto = \"db\"\n",
    );
    let out = ok(&["place", "--app", app.path(), "--json"]);
    let outcome: Value = serde_json::from_str(&out).expect("JSON");
    check_outcome(&outcome, "thermostat", "hcm", 7);
    assert_eq!(outcome["score"]["offered_rps"].as_f64(), Some(20000.0));
    // SQL is host-only.
    for node in outcome["nodes"].as_array().unwrap() {
        if node["tier"] == "db" {
            assert!(node["on"].as_str().unwrap().ends_with("/host"), "{node}");
        }
    }
}

#[test]
fn unknown_names_are_refused() {
    let message = fails(&["place", "--app", "no-such-app"]);
    assert_eq!(
        message,
        "e3: no-such-app: neither a built-in application nor a file: unknown application \
         (built in: nfv-fin, nfv-din, nfv-ifid, rta-ptc, rta-sf, rta-shm, iot-dh, iot-ts)"
    );
    let message = fails(&["place", "--app", "nfv-fin", "--cluster", "9xbeefy"]);
    assert!(
        message.starts_with(
            "e3: 9xbeefy: neither a built-in cluster (4xbeefy, 4xwimpy, 2xbeefy+2xwimpy, \
             2xtype2, 1xsuperbeefy, 3xtype1, 3xbeefy, type2xN) nor a file"
        ),
        "{message}"
    );
    let message = fails(&["report", "--cluster", "9xbeefy"]);
    assert!(message.starts_with("e3: 9xbeefy: neither"), "{message}");
}

#[test]
fn bad_files_are_refused_with_the_line() {
    let app = TempFile::new(
        "bad-app.toml",
        "name = \"bad\"\n\n[[tier]]\nname = \"gw\"\nservice = \"apigw\"\nshards = 2\n\n\
         [[tier]]\nname = \"avg\"\nservice = \"emu\"\nshards = 1\n",
    );
    let message = fails(&["place", "--app", app.path()]);
    let want = format!("e3: {}:10: unknown service `emu` (known: ipsec", app.path());
    assert!(message.starts_with(&want), "{message}");
    let cluster = TempFile::new(
        "bad-cluster.toml",
        "name = \"lab\"\n\n[[servers]]\ntype = \"mega\"\ncount = 2\n",
    );
    let message = fails(&["place", "--app", "nfv-fin", "--cluster", cluster.path()]);
    let want = format!(
        "e3: {}:4: unknown server type `mega` (known: beefy, wimpy",
        cluster.path()
    );
    assert!(message.starts_with(&want), "{message}");
    let syntax = TempFile::new("syntax.toml", "name = \"lab\"\n[[servers]\n");
    let message = fails(&["place", "--app", "nfv-fin", "--cluster", syntax.path()]);
    let want = format!("e3: {}:2: ", syntax.path());
    assert!(message.starts_with(&want), "{message}");
}

#[test]
fn report_compares_the_three_algorithms_on_every_application() {
    let out = ok(&[
        "report",
        "--ilp-seconds",
        "0.2",
        "--annealing-seconds",
        "0.2",
    ]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("8 applications on 3xtype1, offered 30% of nominal capacity")
    );
    let apps = [
        "nfv-fin", "nfv-din", "nfv-ifid", "rta-ptc", "rta-sf", "rta-shm", "iot-dh", "iot-ts",
    ];
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| apps.iter().any(|a| l.starts_with(&format!("{a:<9} |"))))
        .collect();
    assert_eq!(rows.len(), 8, "{out}");
    for row in rows {
        // app | 3 x RPJ | 3 x latency | 2 gains | 2 cuts | violations h/a/i
        let columns: Vec<&str> = row.split(" | ").collect();
        assert_eq!(columns.len(), 6, "{row}");
        let rpj: Vec<f64> = columns[1]
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        assert!(rpj.len() == 3 && rpj.iter().all(|x| *x > 0.0), "{row}");
        assert_eq!(columns[2].split_whitespace().count(), 3, "{row}");
        assert_eq!(columns[5].split('/').count(), 3, "{row}");
    }
    assert!(
        out.contains("\nHCM ahead in requests per joule on "),
        "{out}"
    );
    // The JSON form: every application, three outcomes each, HCM first (zero limits: the
    // ILP's greedy start and 1024 annealing moves, to keep it short).
    let json = ok(&[
        "report",
        "--ilp-seconds",
        "0",
        "--annealing-seconds",
        "0",
        "--json",
    ]);
    let report: Value = serde_json::from_str(&json).expect("JSON");
    let report = report.as_array().unwrap();
    assert_eq!(report.len(), 8);
    for (row, app) in report.iter().zip(apps) {
        assert_eq!(row["app"], app);
        let algorithms: Vec<&str> = row["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["algorithm"].as_str().unwrap())
            .collect();
        assert_eq!(algorithms, ["hcm", "annealing", "ilp"]);
        let ilp = &row["outcomes"][2];
        assert!(ilp["stopped_early"]
            .as_str()
            .unwrap()
            .starts_with("time limit hit"));
    }
}

#[test]
fn the_ilp_says_when_cbc_is_missing() {
    let output = e3_with(
        &["place", "--app", "nfv-din", "--algo", "ilp"],
        &[("E3_CBC", "/nonexistent/cbc")],
    );
    assert!(!output.status.success());
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    assert_eq!(
        stderr(&output).trim_end(),
        "e3: the MILP solver failed: CBC is not installed (E3_CBC names /nonexistent/cbc, \
         which is not an executable file): install Debian's coinor-cbc \
         (`apt-get install coinor-cbc`) or set E3_CBC to a cbc program"
    );
}
