//! Good files load; bad files give the promised messages, with their line.

use std::path::Path;

use super::*;
use crate::control::topology::Cluster;

const APP: &str = r#"
name = "thermostat"
rate = 1000.0

[[tier]]
name = "gw"
service = "apigw"
shards = 2
backups = 1

[[tier]]
name = "db"
service = "sql"
shards = 4
memory_gb = 1.5

[[tier]]
name = "avg"
service = "ema"
shards = 4
pin = "nic"
nic_us = 3.0

[[call]]
from = "gw"
to = "db"
spread = 2

[[call]]
from = "gw"
to = "avg"
"#;

fn app_error(text: &str) -> String {
    parse_app(Path::new("app.toml"), text)
        .unwrap_err()
        .to_string()
}

fn cluster_error(text: &str) -> String {
    parse_cluster(Path::new("c.toml"), text)
        .unwrap_err()
        .to_string()
}

#[test]
fn loads_an_application() {
    let app = parse_app(Path::new("app.toml"), APP).unwrap();
    let dag = app.workload.dag();
    assert_eq!(dag.name(), "thermostat");
    assert_eq!(dag.len(), 2 * 2 + 4 + 4);
    assert_eq!(app.rate, Some(1000.0));
    assert_eq!(app.workload.profiles()[1].memory_gb, 1.5);
    assert_eq!(app.workload.profiles()[2].pin, Pin::Nic);
    assert_eq!(app.workload.profiles()[2].core_us[1], 3.0);
    // gw shard 0 calls two db shards and all four avg shards.
    let groups: Vec<usize> = dag
        .call_groups(microservices::apps::NodeId(0))
        .map(|(_, g)| g.len())
        .collect();
    assert_eq!(groups, [2, 4]);
    let cluster = Cluster::builtin("3xtype1").unwrap();
    app.check_against(&cluster.topology()).unwrap();
}

#[test]
fn refuses_a_cycle_at_a_call_on_it() {
    let text = format!("{APP}\n[[call]]\nfrom = \"avg\"\nto = \"gw\"\n");
    assert_eq!(
        app_error(&text),
        "app.toml:34: the calls form a cycle: gw -> avg -> gw"
    );
}

#[test]
fn refuses_unknown_services_and_dangling_calls() {
    let text = APP.replace("service = \"ema\"", "service = \"emu\"");
    assert!(app_error(&text).starts_with("app.toml:19: unknown service `emu` (known: ipsec"));
    let text = APP.replace("to = \"avg\"", "to = \"avgg\"");
    assert_eq!(
        app_error(&text),
        "app.toml:31: call names tier `avgg`, which is not defined"
    );
}

#[test]
fn refuses_negative_resources() {
    let text = APP.replace("memory_gb = 1.5", "memory_gb = -1.5");
    assert_eq!(
        app_error(&text),
        "app.toml:15: memory_gb must not be negative (got -1.5)"
    );
    let text = APP.replace("shards = 4\nmemory_gb", "shards = -4\nmemory_gb");
    assert!(
        app_error(&text).starts_with("app.toml:14: invalid value: integer `-4`"),
        "{}",
        app_error(&text)
    );
}

#[test]
fn refuses_impossible_constraints() {
    let text = APP.replace("memory_gb = 1.5", "memory_gb = 1.5\npin = \"nic\"");
    assert_eq!(
        app_error(&text),
        "app.toml:16: impossible constraint: sql runs only on hosts, so it cannot be pinned to nic"
    );
    // NIC-pinned `avg` on a cluster without SmartNICs.
    let app = parse_app(Path::new("app.toml"), APP).unwrap();
    let beefy = Cluster::builtin("3xbeefy").unwrap().topology();
    assert_eq!(
        app.check_against(&beefy).unwrap_err().to_string(),
        "app.toml:18: impossible constraint: tier `avg` is pinned to nic nodes and cluster `3xbeefy` has none"
    );
    // More memory per instance than any host of the cluster has.
    let text = APP.replace("memory_gb = 1.5", "memory_gb = 100.0");
    let app = parse_app(Path::new("app.toml"), &text).unwrap();
    let message = app
        .check_against(&Cluster::builtin("3xtype1").unwrap().topology())
        .unwrap_err()
        .to_string();
    assert!(
        message
            .starts_with("app.toml:12: impossible constraint: tier `db` needs 100 of memory (GB)"),
        "{message}"
    );
}

#[test]
fn refuses_syntax_errors_and_unknown_fields() {
    let text = APP.replace("shards = 2", "shards = = 2");
    assert!(
        app_error(&text).starts_with("app.toml:8: "),
        "{}",
        app_error(&text)
    );
    let text = APP.replace("backups = 1", "backup = 1");
    assert!(
        app_error(&text).starts_with("app.toml:9: unknown field `backup`"),
        "{}",
        app_error(&text)
    );
}

const CLUSTER: &str = r#"
name = "lab"
servers_per_rack = 2

[[server_type]]
name = "bluefield-box"
cost = 9000
host = { cores = 16, core = "beefy", memory_gb = 128, bandwidth_gbps = 100, idle_w = 90, peak_w = 200 }
nics = [{ cores = 16, core = "wimpy", memory_gb = 16, bandwidth_gbps = 100, idle_w = 20, peak_w = 75, count = 2 }]

[[servers]]
type = "bluefield-box"
count = 3

[[servers]]
type = "type1-smartnic"
count = 1

[network]
pcie_rtt_us = 1.5
oversubscription = 3
"#;

#[test]
fn loads_a_cluster() {
    let cluster = parse_cluster(Path::new("c.toml"), CLUSTER).unwrap();
    let topology = cluster.topology();
    assert_eq!(topology.len(), 3 * 3 + 2);
    assert_eq!(topology.racks().len(), 2);
    assert_eq!(cluster.cost(), 3.0 * 9000.0 + 4650.0);
    assert_eq!(topology.network().latency.pcie_rtt_us, 1.5);
    assert_eq!(topology.network().oversubscription, 3.0);
    // Rack 0's uplinks: two bluefield boxes' 300 Gb/s of ports each, over 3.
    assert!((topology.uplink_capacity(0) - 600.0 / 3.0).abs() < 1e-9);
}

#[test]
fn refuses_bad_clusters() {
    let text = CLUSTER.replace("type = \"type1-smartnic\"", "type = \"type9\"");
    assert!(cluster_error(&text).starts_with("c.toml:16: unknown server type `type9`"));
    let text = CLUSTER.replace("idle_w = 20, peak_w = 75", "idle_w = 20, peak_w = -75");
    assert_eq!(
        cluster_error(&text),
        "c.toml:9: peak_w must not be negative (got -75)"
    );
    let text = CLUSTER.replace("pcie_rtt_us = 1.5", "pcie_rtt = 1.5");
    assert!(
        cluster_error(&text).starts_with("c.toml:20: unknown field `pcie_rtt`"),
        "{}",
        cluster_error(&text)
    );
    let text = CLUSTER.replace("oversubscription = 3", "oversubscription = 0.5");
    assert_eq!(
        cluster_error(&text),
        "c.toml:21: oversubscription must be at least 1 (got 0.5)"
    );
    let text = CLUSTER.replace("pcie_rtt_us = 1.5", "host_rtt_us = 1.5");
    assert_eq!(
        cluster_error(&text),
        "c.toml:19: the host round trip cannot be shorter than the ToR round trip"
    );
    // A server needs ports somewhere.
    let text = CLUSTER.replace(
        "bandwidth_gbps = 100, idle_w = 20",
        "bandwidth_gbps = 0, idle_w = 20",
    );
    assert_eq!(
        cluster_error(&text),
        "c.toml:9: a SmartNIC needs network ports"
    );
    let text = CLUSTER
        .replace("count = 3", "count = 0")
        .replace("count = 1\n", "count = 0\n");
    assert_eq!(
        cluster_error(&text),
        "c.toml:2: the cluster has no [[servers]]"
    );
}
