//! The control plane: cluster topology, application workloads and their placement.
//!
//! Layers, from the bottom:
//! - [`topology`] and [`levels`]: datacenter -> pods -> racks -> servers -> computing nodes
//!   (host processor, SmartNICs), the Table 4 server types and clusters, and the communication
//!   levels between two computing nodes with their latency and bandwidth.
//! - [`profile`] and [`workload`]: per-service profiles (Table 1) and an application DAG
//!   (`microservices::apps`) with an offered rate, turned into per-node resource demands.
//! - [`ledger`] and [`index`]: what every computing node has left, with a segment tree for
//!   pruned searches.
//! - [`placement`]: the [`Placer`](placement::Placer) trait, the placement result and its
//!   violations; [`hcm`], [`annealing`] and [`ilp`] implement it; [`cost`] is the objective the
//!   last two minimise.
//! - [`evaluate`]: scores any placement with one model (utilisation, bottleneck throughput,
//!   latency, power, requests per joule, cost efficiency).
//! - [`config`]: applications and clusters read from TOML files.

pub mod annealing;
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
