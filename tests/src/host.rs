//! The host end of the emulated NICs' PCIe channels for the HIL tests and the demo: a host-lib
//! [`HostNode`] (the host library a service links: one endpoint thread per NIC, worker threads
//! running the services) creates each channel file QEMU maps as the NIC's ivshmem BAR, writes the
//! NIC's boot configuration into it, and answers the UDP requests the NICs forward for the host
//! IP, replying over the channel.
//!
//! What stays here is the harness's part: the geometry and the file size QEMU is given (a PCI
//! BAR is a power of two), waiting on the node's counters, and removing the files afterwards.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use host_lib::node::NodeStats;
use host_lib::HostNode;
use microservices::Service;
use pcie_channel::Geometry;

use crate::nic::ChannelFile;

/// The channel geometry of the emulated NICs (the crate's default: 8 engines).
pub const GEOMETRY: Geometry = Geometry::DEFAULT;

/// How long a NIC's heartbeat may stand still before the host node counts it as gone.
pub const PEER_TIMEOUT: Duration = Duration::from_millis(300);

/// The channel file size for [`GEOMETRY`]: a power of two, since it becomes a PCI BAR.
pub fn channel_size() -> u64 {
    (GEOMETRY.region_bytes() as u64).next_power_of_two()
}

/// A running host side: one host node with one channel per NIC it carries. Stops (the node
/// marks the host Stopped in each channel) and removes the channel files when dropped.
pub struct HostSide {
    paths: Vec<PathBuf>,
    node: Option<HostNode>,
}

impl HostSide {
    /// Creates one channel file per NIC (`path`, with the boot configuration written into it)
    /// and starts a host node that answers the requests arriving on any of them with `services`
    /// (by UDP port), shared by all NICs, on one worker.
    pub fn start(
        nics: &[(PathBuf, String)],
        services: Vec<(u16, Box<dyn Service>)>,
    ) -> Result<HostSide> {
        let mut builder = HostNode::builder().peer_timeout(PEER_TIMEOUT);
        for (path, boot_config) in nics {
            builder = builder.create_nic(
                path.clone(),
                Some(channel_size()),
                GEOMETRY,
                Some(boot_config.clone().into_bytes()),
            );
        }
        for (port, service) in services {
            builder = builder.service(port, service);
        }
        let node = builder.spawn().context("starting the host node")?;
        Ok(HostSide {
            paths: nics.iter().map(|(path, _)| path.clone()).collect(),
            node: Some(node),
        })
    }

    /// The file QEMU should map for NIC `nic` (in the order given to [`HostSide::start`]).
    pub fn channel_file(&self, nic: usize) -> ChannelFile {
        ChannelFile {
            path: self.paths[nic].clone(),
            size: channel_size(),
        }
    }

    /// What the host node counted so far: per NIC endpoint, per worker.
    pub fn stats(&self) -> NodeStats {
        self.node.as_ref().map(HostNode::stats).unwrap_or_default()
    }

    /// Requests the host node's workers handled, over every NIC.
    pub fn served(&self) -> u64 {
        self.stats().workers.iter().map(|w| w.requests).sum()
    }

    /// Waits until the node's counters satisfy `accept` (polled every millisecond); returns
    /// them, or the last ones seen after `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        accept: impl Fn(&NodeStats) -> bool,
    ) -> Result<NodeStats, NodeStats> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats();
            if accept(&stats) {
                return Ok(stats);
            }
            if Instant::now() >= deadline {
                return Err(stats);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whether the node sees NIC `nic`'s heartbeat move, once the counters have had one and a
    /// half [`PEER_TIMEOUT`]s to notice a NIC that stopped.
    pub fn nic_alive(&self, nic: usize) -> bool {
        std::thread::sleep(PEER_TIMEOUT + PEER_TIMEOUT / 2);
        self.stats().nics.get(nic).is_some_and(|n| n.nic_alive)
    }

    /// Stops the node (it finishes what is queued and sends the last replies) and returns its
    /// final counters.
    pub fn shutdown(mut self) -> Result<NodeStats> {
        let node = self
            .node
            .take()
            .context("the host node is already stopped")?;
        node.shutdown().context("stopping the host node")
    }
}

impl Drop for HostSide {
    fn drop(&mut self) {
        drop(self.node.take());
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}
