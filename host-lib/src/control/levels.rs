//! Communication levels between two computing nodes, closest first: the order in which HCM
//! searches a parent's hierarchical topology (what each level costs is
//! [`super::communication`]'s business).

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
    }
}
