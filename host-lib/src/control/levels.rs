//! Communication levels between two computing nodes, closest first, with the latency and
//! bandwidth of each (documented defaults, overridable from a cluster file).

use std::fmt;

use super::topology::{ComputeId, NodeKind, Topology};

/// How far apart two computing nodes are, closest first (HCM walks them in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// The same computing node: shared-memory queues.
    SameNode,
    /// Another computing node of the same server: host <-> NIC over PCIe, NIC <-> NIC through
    /// the ToR switch.
    SameServer,
    /// A SmartNIC of another server in the rack, through the ToR switch.
    RackNic,
    /// The host of another server in the rack, through the ToR switch and that server's NIC.
    RackHost,
    /// A node in another rack of the same pod.
    Pod,
    /// A node in another pod.
    Datacenter,
}

impl Level {
    /// Every level, closest first.
    pub const ALL: [Level; 6] = [
        Level::SameNode,
        Level::SameServer,
        Level::RackNic,
        Level::RackHost,
        Level::Pod,
        Level::Datacenter,
    ];

    /// Name used in cluster files.
    pub const fn name(self) -> &'static str {
        match self {
            Level::SameNode => "same_node",
            Level::SameServer => "same_server",
            Level::RackNic => "rack_nic",
            Level::RackHost => "rack_host",
            Level::Pod => "pod",
            Level::Datacenter => "datacenter",
        }
    }

    /// Position in [`Level::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What crossing one level costs a message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LevelCost {
    /// One-way latency, microseconds.
    pub latency_us: f64,
    /// Bandwidth one transfer sees, Gb/s.
    pub bandwidth_gbps: f64,
}

impl LevelCost {
    /// Time to send `bytes` across this level, microseconds.
    pub fn transfer_us(&self, bytes: f64) -> f64 {
        self.latency_us + bytes * 8.0 / (self.bandwidth_gbps * 1e3)
    }
}

/// The cost of every level.
///
/// Defaults (one-way): a shared-memory queue 0.5 us at 100 Gb/s; PCIe or NIC-to-NIC through
/// the ToR 2 us at 32 Gb/s; a NIC in the rack 3 us at 10 Gb/s; a host in the rack 8 us at
/// 10 Gb/s (E3 Figure 3: host-NIC and NIC-NIC round trips are up to 83.3% and 86.2% below
/// host-host ones); another rack 15 us, another pod 25 us, both at 10 Gb/s.
#[derive(Clone, Debug, PartialEq)]
pub struct Levels {
    costs: [LevelCost; 6],
}

impl Default for Levels {
    fn default() -> Self {
        let cost = |latency_us, bandwidth_gbps| LevelCost {
            latency_us,
            bandwidth_gbps,
        };
        Levels {
            costs: [
                cost(0.5, 100.0),
                cost(2.0, 32.0),
                cost(3.0, 10.0),
                cost(8.0, 10.0),
                cost(15.0, 10.0),
                cost(25.0, 10.0),
            ],
        }
    }
}

impl Levels {
    /// The cost of `level`.
    pub fn cost(&self, level: Level) -> LevelCost {
        self.costs[level.index()]
    }

    /// Replaces the cost of `level`.
    pub fn set(&mut self, level: Level, cost: LevelCost) {
        self.costs[level.index()] = cost;
    }
}

impl Topology {
    /// The level at which `to` sits as seen from `from`.
    pub fn level(&self, from: ComputeId, to: ComputeId) -> Level {
        if from == to {
            return Level::SameNode;
        }
        let a = self.server_of(from);
        let b = self.server_of(to);
        if self.node(from).server == self.node(to).server {
            Level::SameServer
        } else if a.rack == b.rack {
            match self.node(to).spec.kind {
                NodeKind::Nic => Level::RackNic,
                NodeKind::Host => Level::RackHost,
            }
        } else if self.racks()[a.rack as usize].pod == self.racks()[b.rack as usize].pod {
            Level::Pod
        } else {
            Level::Datacenter
        }
    }

    /// Time for a message of `bytes` from `from` to `to`, microseconds.
    pub fn transfer_us(&self, from: ComputeId, to: ComputeId, bytes: f64) -> f64 {
        self.levels().cost(self.level(from, to)).transfer_us(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::topology::Cluster;

    #[test]
    fn levels_from_one_node() {
        let mut cluster = Cluster::type2_fat_tree(100);
        cluster.racks_per_pod = 2;
        let topo = cluster.topology();
        let n = ComputeId;
        assert_eq!(topo.level(n(1), n(1)), Level::SameNode);
        assert_eq!(topo.level(n(1), n(0)), Level::SameServer);
        assert_eq!(topo.level(n(1), n(4)), Level::SameServer);
        assert_eq!(topo.level(n(1), n(6)), Level::RackNic);
        assert_eq!(topo.level(n(1), n(5)), Level::RackHost);
        assert_eq!(topo.level(n(1), n(205)), Level::Pod);
        assert_eq!(topo.level(n(1), n(405)), Level::Datacenter);
        let costs: Vec<f64> = Level::ALL
            .iter()
            .map(|&l| topo.levels().cost(l).transfer_us(512.0))
            .collect();
        assert!(costs.windows(2).all(|w| w[0] < w[1]), "{costs:?}");
    }
}
