//! The host half of the platform, linked into services: the execution engine, NIC endpoints
//! over the PCIe channel, and the control plane (topology, application DAGs, placement).
//!
//! Layers of the data path, from the bottom:
//! - [`endpoint`]: one thread per NIC on its `pcie-channel` region: polls the NIC-to-host rings,
//!   hands UDP requests to the runtime, sends the replies back, heartbeats, counters.
//! - [`runtime`]: the execution engine: worker threads with multi-producer single-consumer
//!   queues, a service table by UDP port, requests run to completion.
//! - [`node`]: [`HostNode`] ties them together behind a small builder.
//!
//! The control plane lives in [`control`].

pub mod control;
pub mod endpoint;
pub mod node;
pub mod runtime;

pub use node::{HostNode, HostNodeBuilder, NodeError, NodeStats};
