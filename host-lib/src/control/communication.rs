//! What communication between two computing nodes costs: the mechanism a message takes
//! (shared-memory queue, PCIe, the network), the core time it costs at each end, the links it
//! crosses (server ports, PCIe, ToR and pod uplinks) and its latency. Every default figure and
//! its source is in docs/placement.md, "Communication".

use std::fmt;

use super::topology::{ComputeId, CoreClass, NodeKind, Topology};

/// How a message travels between two computing nodes (E3 section 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// Both ends on one computing node: per-core shared-memory queues.
    Queue,
    /// A host and a SmartNIC of the same server: DMA over the NIC's PCIe link.
    Pcie,
    /// Anything else, through server ports and switches: NIC to NIC of one server goes out and
    /// back in through the ToR (E3's choice over relaying through the host or PCIe peer to
    /// peer); a host without ports of its own reaches the network through its SmartNICs.
    Network,
}

/// A link with a capacity in Gb/s per direction. Request and reply of a call have the same
/// size, so a call loads every link it crosses equally in both directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// The network ports of a computing node (a SmartNIC, or a host with its own NIC).
    Port(ComputeId),
    /// The PCIe link between a SmartNIC and its host.
    Pcie(ComputeId),
    /// Uplinks of a ToR (index = rack) or of a pod (index = racks + pod).
    Uplink(u32),
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::Port(n) => write!(f, "ports of node {}", n.0),
            Link::Pcie(n) => write!(f, "PCIe link of node {}", n.0),
            Link::Uplink(u) => write!(f, "uplink {u}"),
        }
    }
}

/// Core time each message costs at one end, microseconds, per core class (indexed by
/// [`CoreClass::index`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MessageCpu {
    /// A shared-memory queue: enqueue or dequeue.
    pub queue_us: [f64; 2],
    /// A DMA ring: the PCIe channel, or a kernel-bypass stack on a NIC queue.
    pub driver_us: [f64; 2],
    /// What the Linux stack adds on a host for each network message (E3 section 3.1: hosts
    /// talk to other servers through Linux).
    pub kernel_us: f64,
    /// A SmartNIC core relaying one message between its port and its host (demultiplex by
    /// destination IP, post the DMA).
    pub forward_us: f64,
}

/// Unloaded latency of each mechanism, microseconds. Queueing on busy links comes on top.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// One way through a shared-memory queue.
    pub queue_us: f64,
    /// Round trip host <-> SmartNIC over PCIe.
    pub pcie_rtt_us: f64,
    /// Round trip SmartNIC <-> SmartNIC through the ToR.
    pub tor_rtt_us: f64,
    /// Round trip host <-> host through the ToR with kernel bypass (the anchor of the
    /// others).
    pub host_rtt_us: f64,
    /// One switch hop above the ToR (ToR to aggregation, aggregation to core).
    pub hop_us: f64,
}

/// The communication model of a cluster.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Network {
    /// Core time per message.
    pub cpu: MessageCpu,
    /// Latency per mechanism.
    pub latency: Latency,
    /// Downlink over uplink bandwidth of a ToR and of a pod (1 = a non-blocking FatTree).
    pub oversubscription: f64,
}

/// Per-message core time of a kernel-bypass stack on a beefy core: Table 1's lightest host
/// service, KVS, serves 2.005 M requests/s on 2 DPDK cores (0.998 us of core per request, one
/// message in and one out around a hash lookup); we give the two messages 0.8 us of it.
pub const BEEFY_DRIVER_US: f64 = 0.4;
/// How much longer a wimpy SmartNIC core takes for packet-bound work: the median over Table 1's
/// NATv4, Count, EMA, KVS and Flow monitor of SmartNIC over DPDK-host core time per request
/// (2.80, 2.92, 2.94, 5.92, 2.97).
pub const WIMPY_SLOWDOWN: f64 = 2.94;
/// What the Linux stack adds per message over kernel bypass on a beefy core: the median over
/// the same five services of Linux minus DPDK core time per request (2.15, 1.02, 2.08, 3.11,
/// 2.13 us), halved for the request's two messages.
pub const KERNEL_US: f64 = 1.06;
/// A shared-memory queue per message on a beefy core: crossbeam's `ArrayQueue` moved 512-byte
/// messages between two threads at 6.82 M/s on this project's machine (docs/pcie-channel.md),
/// about 0.15 us of each thread per message.
pub const BEEFY_QUEUE_US: f64 = 0.15;
/// One way through a shared-memory queue: half the crossbeam ping-pong round trip measured
/// beside it (1.107 us).
pub const QUEUE_LATENCY_US: f64 = 0.55;
/// Host <-> host round trip in a rack with kernel bypass (ours: E3 prints Figure 3 as bars).
pub const HOST_RTT_US: f64 = 16.0;
/// E3 Figure 3 (section 2.4): SmartNIC-host round trips over PCIe are up to 83.3% and
/// SmartNIC-SmartNIC round trips through the ToR up to 86.2% below host-host ones.
pub const PCIE_RTT_SHARE: f64 = 1.0 - 0.833;
/// See [`PCIE_RTT_SHARE`].
pub const TOR_RTT_SHARE: f64 = 1.0 - 0.862;
/// One switch hop above the ToR (ours: about one ToR pass).
pub const HOP_US: f64 = 1.0;
/// Usable PCIe bandwidth of a LiquidIO II (PCIe Gen3 x8), Gb/s per direction: 8 lanes at
/// 8 GT/s with 128b/130b coding give 63.0 Gb/s; 256-byte payloads carry 24 bytes of TLP
/// framing, header and link CRC each, leaving 256/280 of it.
pub const LIQUIDIO_PCIE_GBPS: f64 = 8.0 * 8.0 * 128.0 / 130.0 * 256.0 / 280.0;

impl Default for Network {
    fn default() -> Self {
        let wimpy = |beefy: f64| beefy * WIMPY_SLOWDOWN;
        Network {
            cpu: MessageCpu {
                queue_us: [BEEFY_QUEUE_US, wimpy(BEEFY_QUEUE_US)],
                driver_us: [BEEFY_DRIVER_US, wimpy(BEEFY_DRIVER_US)],
                kernel_us: KERNEL_US,
                forward_us: wimpy(BEEFY_DRIVER_US),
            },
            latency: Latency {
                queue_us: QUEUE_LATENCY_US,
                pcie_rtt_us: HOST_RTT_US * PCIE_RTT_SHARE,
                tor_rtt_us: HOST_RTT_US * TOR_RTT_SHARE,
                host_rtt_us: HOST_RTT_US,
                hop_us: HOP_US,
            },
            oversubscription: 1.0,
        }
    }
}

impl Network {
    /// A model where messages cost no core time (latencies and links unchanged): for tests
    /// that count cores by hand.
    pub fn without_message_cpu() -> Network {
        Network {
            cpu: MessageCpu {
                queue_us: [0.0; 2],
                driver_us: [0.0; 2],
                kernel_us: 0.0,
                forward_us: 0.0,
            },
            ..Network::default()
        }
    }

    /// Core time of one message at an end of `kind` and `class` using `mechanism`, us.
    pub fn message_us(&self, mechanism: Mechanism, kind: NodeKind, class: CoreClass) -> f64 {
        let c = class.index();
        match mechanism {
            Mechanism::Queue => self.cpu.queue_us[c],
            Mechanism::Pcie => self.cpu.driver_us[c],
            Mechanism::Network => {
                self.cpu.driver_us[c]
                    + match kind {
                        NodeKind::Host => self.cpu.kernel_us,
                        NodeKind::Nic => 0.0,
                    }
            }
        }
    }

    /// Checks that every figure is finite and not negative, and the oversubscription at least 1.
    pub fn check(&self) -> Result<(), &'static str> {
        let c = &self.cpu;
        let l = &self.latency;
        let figures = [
            c.queue_us[0],
            c.queue_us[1],
            c.driver_us[0],
            c.driver_us[1],
            c.kernel_us,
            c.forward_us,
            l.queue_us,
            l.pcie_rtt_us,
            l.tor_rtt_us,
            l.host_rtt_us,
            l.hop_us,
        ];
        if figures.iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err("communication figures must be finite and not negative");
        }
        if l.host_rtt_us < l.tor_rtt_us {
            return Err("the host round trip cannot be shorter than the ToR round trip");
        }
        if !self.oversubscription.is_finite() || self.oversubscription < 1.0 {
            return Err("oversubscription must be at least 1");
        }
        Ok(())
    }
}

impl Topology {
    /// The mechanism a message from `a` to `b` takes.
    pub fn mechanism(&self, a: ComputeId, b: ComputeId) -> Mechanism {
        if a == b {
            return Mechanism::Queue;
        }
        let (x, y) = (self.node(a), self.node(b));
        if x.server == y.server && x.spec.kind != y.spec.kind {
            Mechanism::Pcie
        } else {
            Mechanism::Network
        }
    }

    /// Whether node `n` reaches the network through its server's SmartNICs (a host without
    /// ports of its own; E3 section 3.2's ECMP over the SmartNIC ports).
    pub fn relays_through_nics(&self, n: ComputeId) -> bool {
        let node = self.node(n);
        node.spec.kind == NodeKind::Host
            && node.spec.bandwidth_gbps <= 0.0
            && self.server_of(n).node_count > 1
    }

    /// The SmartNICs of `n`'s server.
    pub fn server_nics(&self, n: ComputeId) -> impl Iterator<Item = ComputeId> + '_ {
        let server = self.server_of(n);
        (server.first_node..server.first_node + server.node_count)
            .map(ComputeId)
            .filter(move |&m| self.node(m).spec.kind == NodeKind::Nic)
    }

    /// The links a network message crosses between `n` and its ToR, each with the share of the
    /// message it carries: `n`'s own ports, or, for a host that relays through its SmartNICs,
    /// each NIC's PCIe link and ports with an equal share (ECMP).
    pub fn for_each_access_link(&self, n: ComputeId, visit: &mut impl FnMut(Link, f64)) {
        if self.relays_through_nics(n) {
            let count = self.server_nics(n).count() as f64;
            for nic in self.server_nics(n) {
                visit(Link::Pcie(nic), 1.0 / count);
                visit(Link::Port(nic), 1.0 / count);
            }
        } else {
            visit(Link::Port(n), 1.0);
        }
    }

    /// The uplinks between the racks (and pods) of `a` and `b`.
    pub fn for_each_uplink(&self, a: ComputeId, b: ComputeId, visit: &mut impl FnMut(Link)) {
        let (ra, rb) = (self.server_of(a).rack, self.server_of(b).rack);
        if ra == rb {
            return;
        }
        visit(Link::Uplink(ra));
        visit(Link::Uplink(rb));
        let (pa, pb) = (self.racks()[ra as usize].pod, self.racks()[rb as usize].pod);
        if pa != pb {
            let racks = self.racks().len() as u32;
            visit(Link::Uplink(racks + pa));
            visit(Link::Uplink(racks + pb));
        }
    }

    /// Every link a message from `a` to `b` crosses, with the share of it each carries.
    pub fn for_each_path_link(
        &self,
        a: ComputeId,
        b: ComputeId,
        visit: &mut impl FnMut(Link, f64),
    ) {
        match self.mechanism(a, b) {
            Mechanism::Queue => {}
            Mechanism::Pcie => {
                let nic = if self.node(a).spec.kind == NodeKind::Nic {
                    a
                } else {
                    b
                };
                visit(Link::Pcie(nic), 1.0);
            }
            Mechanism::Network => {
                self.for_each_access_link(a, visit);
                self.for_each_uplink(a, b, &mut |link| visit(link, 1.0));
                self.for_each_access_link(b, visit);
            }
        }
    }

    /// Capacity of `link`, Gb/s per direction.
    pub fn link_capacity(&self, link: Link) -> f64 {
        match link {
            Link::Port(n) => self.node(n).spec.bandwidth_gbps,
            Link::Pcie(n) => self.node(n).spec.pcie_gbps,
            Link::Uplink(u) => self.uplink_capacity(u),
        }
    }

    /// Switch hops above the ToRs between `a` and `b`: 0 in one rack, 2 across racks of a pod
    /// (ToR, aggregation, ToR), 4 across pods (through the core).
    pub fn hops_above_tor(&self, a: ComputeId, b: ComputeId) -> u32 {
        let (ra, rb) = (self.server_of(a).rack, self.server_of(b).rack);
        if ra == rb {
            0
        } else if self.racks()[ra as usize].pod == self.racks()[rb as usize].pod {
            2
        } else {
            4
        }
    }

    /// Unloaded one-way latency of a message from `a` to `b`, microseconds, without the time
    /// its bytes take on the links: a queue; half a PCIe round trip; or half a SmartNIC-to-
    /// SmartNIC round trip through the ToR, plus for each host end its share of the
    /// host-to-host round trip and its Linux stack, plus the hops above the ToRs.
    pub fn base_latency_us(&self, a: ComputeId, b: ComputeId) -> f64 {
        let network = self.network();
        let l = &network.latency;
        match self.mechanism(a, b) {
            Mechanism::Queue => l.queue_us,
            Mechanism::Pcie => l.pcie_rtt_us / 2.0,
            Mechanism::Network => {
                let hosts = [a, b]
                    .iter()
                    .filter(|&&n| self.node(n).spec.kind == NodeKind::Host)
                    .count() as f64;
                let host_end = (l.host_rtt_us - l.tor_rtt_us) / 4.0 + network.cpu.kernel_us;
                l.tor_rtt_us / 2.0
                    + hosts * host_end
                    + f64::from(self.hops_above_tor(a, b)) * l.hop_us
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::topology::Cluster;

    #[test]
    fn figure_3_ratios_hold() {
        let network = Network::default();
        let l = network.latency;
        assert!((l.pcie_rtt_us / l.host_rtt_us - 0.167).abs() < 1e-9);
        assert!((l.tor_rtt_us / l.host_rtt_us - 0.138).abs() < 1e-9);
        network.check().unwrap();
        // The PCIe Gen3 x8 figure: 63.0 Gb/s raw, 57.6 usable.
        assert!(
            (LIQUIDIO_PCIE_GBPS - 57.61).abs() < 0.01,
            "{LIQUIDIO_PCIE_GBPS}"
        );
    }

    #[test]
    fn mechanisms_links_and_latency_of_a_type2_server() {
        let mut cluster = Cluster::type2_fat_tree(100);
        cluster.racks_per_pod = 2;
        let topo = cluster.topology();
        let n = ComputeId;
        // Server 0: host 0, NICs 1-4; server 1: host 5, NICs 6-9. Rack 1 starts at node 200,
        // pod 1 at node 400.
        assert_eq!(topo.mechanism(n(1), n(1)), Mechanism::Queue);
        assert_eq!(topo.mechanism(n(0), n(2)), Mechanism::Pcie);
        assert_eq!(topo.mechanism(n(1), n(2)), Mechanism::Network);
        assert_eq!(topo.mechanism(n(0), n(5)), Mechanism::Network);
        assert!(topo.relays_through_nics(n(0)) && !topo.relays_through_nics(n(1)));
        let links = |a, b| {
            let mut out = Vec::new();
            topo.for_each_path_link(n(a), n(b), &mut |link, share| out.push((link, share)));
            out
        };
        assert_eq!(links(2, 0), [(Link::Pcie(n(2)), 1.0)]);
        assert_eq!(
            links(1, 6),
            [(Link::Port(n(1)), 1.0), (Link::Port(n(6)), 1.0)]
        );
        // A host's network message is spread over its four NICs' PCIe links and ports.
        let host = links(0, 6);
        assert_eq!(host.len(), 9);
        assert!(host.contains(&(Link::Pcie(n(3)), 0.25)));
        assert!(host.contains(&(Link::Port(n(4)), 0.25)));
        // Across racks and pods: the uplinks of both racks, then of both pods.
        let racks = topo.racks().len() as u32;
        assert!(links(1, 206).contains(&(Link::Uplink(1), 1.0)));
        assert!(links(1, 406).contains(&(Link::Uplink(racks + 1), 1.0)));
        // Latency grows with the distance, NIC-NIC below host-NIC over PCIe below host-host.
        let lat = |a, b| topo.base_latency_us(n(a), n(b));
        assert!(lat(1, 1) < lat(1, 6) && lat(1, 6) < lat(0, 2) && lat(0, 2) < lat(0, 5));
        assert!(lat(1, 6) < lat(1, 206) && lat(1, 206) < lat(1, 406));
        assert_eq!(topo.link_capacity(Link::Port(n(1))), 10.0);
        assert_eq!(topo.link_capacity(Link::Port(n(0))), 0.0);
    }
}
