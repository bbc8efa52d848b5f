//! The host half of the platform, linked into services: the execution engine, NIC endpoints
//! over the PCIe channel, and the control plane (topology, application DAGs, placement).

pub mod control;
