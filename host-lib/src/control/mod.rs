//! The control plane: cluster topology, application workloads and their placement.
//!
//! Layers, from the bottom:
//! - [`topology`] and [`levels`]: datacenter -> pods -> racks -> servers -> computing nodes
//!   (host processor, SmartNICs), the Table 4 server types and clusters, and the levels HCM
//!   searches from a computing node, closest first.
//! - [`communication`]: what a message costs between two computing nodes: the mechanism
//!   (shared-memory queue, PCIe, network), core time at both ends, the links it crosses
//!   (ports, PCIe, uplinks) and its latency.
//! - [`profile`] and [`workload`]: per-service profiles (Table 1) and an application DAG
//!   (`microservices::apps`) with an offered rate, turned into per-node demands and flows of
//!   messages.
//! - [`charges`], [`ledger`] and [`index`]: what placing an instance changes (its work and
//!   its messages, priced once their other ends are known); what every node and uplink has
//!   left, with a segment tree for pruned searches.
//! - [`placement`]: the [`Placer`](placement::Placer) trait, the placement result and its
//!   violations; [`hcm`], [`annealing`] and [`ilp`] implement it; [`cost`] is the objective the
//!   last two minimise.
//! - [`evaluate`]: scores any placement with one model (utilisation, bottleneck throughput,
//!   latency, power, requests per joule, cost efficiency).
//! - [`config`]: applications and clusters read from TOML files.

pub mod annealing;
pub mod charges;
pub mod communication;
pub mod config;
pub mod cost;
pub mod evaluate;
pub mod hcm;
pub mod ilp;
pub mod index;
pub mod ledger;
pub mod levels;
pub mod placement;
pub mod profile;
pub mod topology;
pub mod workload;
