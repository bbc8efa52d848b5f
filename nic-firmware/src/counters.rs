//! Counters of every stage: frames and bytes per port, dispatch, replies, and drops by reason.
//!
//! Each core writes only its own [`CoreCounters`] (one cache line apart from its neighbours'),
//! with plain loads and stores ([`CoreCounter`]), so counting costs neither a locked
//! instruction nor shared-line traffic on the packet path; readers sum over cores.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::platform::MAX_PORTS;
use crate::wire;

/// A count with a single writer: the core that owns it. Readers on other cores may see a
/// slightly old value, never a torn one.
#[derive(Debug, Default)]
pub struct CoreCounter(AtomicU64);

impl CoreCounter {
    /// Adds `n`. Only the owning core may call this (a load and a store, not a locked add).
    #[inline]
    pub fn add(&self, n: u64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_add(n), Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn increment(&self) {
        self.add(1);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The protocol layer a malformed frame failed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Ethernet header.
    Ethernet,
    /// ARP packet.
    Arp,
    /// IPv4 header.
    Ipv4,
    /// UDP header.
    Udp,
    /// ICMP message.
    Icmp,
    /// TCP header.
    Tcp,
}

impl Layer {
    const ALL: [Layer; 6] = [
        Layer::Ethernet,
        Layer::Arp,
        Layer::Ipv4,
        Layer::Udp,
        Layer::Icmp,
        Layer::Tcp,
    ];

    const fn name(self) -> &'static str {
        match self {
            Layer::Ethernet => "ethernet",
            Layer::Arp => "arp",
            Layer::Ipv4 => "ipv4",
            Layer::Udp => "udp",
            Layer::Icmp => "icmp",
            Layer::Tcp => "tcp",
        }
    }
}

const WIRE_ERRORS: [wire::Error; 9] = [
    wire::Error::Truncated,
    wire::Error::BadVersion,
    wire::Error::BadHeaderLength,
    wire::Error::BadLength,
    wire::Error::BadChecksum,
    wire::Error::Fragmented,
    wire::Error::BadOption,
    wire::Error::Unsupported,
    wire::Error::BufferTooSmall,
];

/// Why a frame or datagram was dropped. Every drop in the runtime is counted under one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The bytes are not a valid packet of a layer.
    Malformed(Layer, wire::Error),
    /// Addressed to another unicast MAC.
    NotOurMac,
    /// An EtherType other than IPv4 and ARP.
    UnknownEtherType,
    /// An ARP request for an address this NIC does not answer for, or an ARP reply.
    ArpNotForUs,
    /// An IPv4 destination that is neither the NIC's nor the host's.
    NotOurAddress,
    /// An IP protocol other than UDP, ICMP and TCP.
    UnknownProtocol,
    /// An ICMP message other than an echo request.
    IcmpNotEcho,
    /// A UDP datagram for the NIC on a port with no service.
    PortClosed,
    /// A request for a stopped service while the parking queue was full.
    ParkingFull,
    /// A non-UDP packet for the host IP (the host path carries UDP datagrams).
    HostNotUdp,
    /// The host path had no room.
    HostPathFull,
    /// The host path is not attached.
    HostPathDisconnected,
    /// A datagram from the host too large for one frame, or with no next hop known.
    HostDatagramUnroutable,
    /// A reply that did not fit in a frame.
    ReplyTooLarge,
    /// The port refused a frame for transmission.
    TransmitFailed,
    /// No free frame buffer for a reply (not reached while the pool holds
    /// [`frames_needed`](crate::runtime::frames_needed) buffers).
    NoBuffer,
    /// Flow-affine steering: the frame's core queue and the frames held back for it were full
    /// while another core ran short of work, so the frame was dropped rather than let block
    /// the port ([`TrafficManager::dispatch_behind`](crate::tm::TrafficManager::dispatch_behind)).
    CoreQueueFull,
}

impl DropReason {
    const FIXED: [DropReason; 16] = [
        DropReason::NotOurMac,
        DropReason::UnknownEtherType,
        DropReason::ArpNotForUs,
        DropReason::NotOurAddress,
        DropReason::UnknownProtocol,
        DropReason::IcmpNotEcho,
        DropReason::PortClosed,
        DropReason::ParkingFull,
        DropReason::HostNotUdp,
        DropReason::HostPathFull,
        DropReason::HostPathDisconnected,
        DropReason::HostDatagramUnroutable,
        DropReason::ReplyTooLarge,
        DropReason::TransmitFailed,
        DropReason::NoBuffer,
        DropReason::CoreQueueFull,
    ];
    const MALFORMED_COUNT: usize = Layer::ALL.len() * WIRE_ERRORS.len();
    /// How many distinct reasons there are (the length of a drop-counter array).
    pub const COUNT: usize = Self::MALFORMED_COUNT + Self::FIXED.len();

    /// The reason's dense index in `0..COUNT`.
    pub fn index(self) -> usize {
        match self {
            DropReason::Malformed(layer, error) => {
                let layer = Layer::ALL.iter().position(|&l| l == layer).unwrap_or(0);
                let error = WIRE_ERRORS.iter().position(|&e| e == error).unwrap_or(0);
                layer * WIRE_ERRORS.len() + error
            }
            fixed => {
                let offset = Self::FIXED.iter().position(|&r| r == fixed).unwrap_or(0);
                Self::MALFORMED_COUNT + offset
            }
        }
    }

    /// The reason with dense index `index`.
    pub fn from_index(index: usize) -> Option<DropReason> {
        match index.checked_sub(Self::MALFORMED_COUNT) {
            Some(fixed) => Self::FIXED.get(fixed).copied(),
            None => {
                let layer = Layer::ALL.get(index / WIRE_ERRORS.len())?;
                let error = WIRE_ERRORS.get(index % WIRE_ERRORS.len())?;
                Some(DropReason::Malformed(*layer, *error))
            }
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            DropReason::Malformed(layer, error) => return write!(f, "{}: {error}", layer.name()),
            DropReason::NotOurMac => "addressed to another MAC",
            DropReason::UnknownEtherType => "unknown EtherType",
            DropReason::ArpNotForUs => "ARP not for us",
            DropReason::NotOurAddress => "IPv4 destination is neither NIC nor host",
            DropReason::UnknownProtocol => "unknown IP protocol",
            DropReason::IcmpNotEcho => "ICMP other than echo request",
            DropReason::PortClosed => "no service on the UDP port",
            DropReason::ParkingFull => "service stopped and parking queue full",
            DropReason::HostNotUdp => "non-UDP packet for the host",
            DropReason::HostPathFull => "host path full",
            DropReason::HostPathDisconnected => "host path disconnected",
            DropReason::HostDatagramUnroutable => "host datagram too large or no next hop",
            DropReason::ReplyTooLarge => "reply too large for a frame",
            DropReason::TransmitFailed => "port refused the frame",
            DropReason::NoBuffer => "no free frame buffer for the reply",
            DropReason::CoreQueueFull => {
                "flow's core queue full while another core was short of work"
            }
        };
        f.write_str(text)
    }
}

/// Every count the runtime keeps, as [`CoreCounter`]s per core ([`CoreCounters`]) or as plain
/// sums ([`CounterTotals`]). Aligned so that two cores' counters never share a cache line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(align(128))]
pub struct Counts<C> {
    /// Frames received, per port.
    pub rx_frames: [C; MAX_PORTS],
    /// Bytes received, per port.
    pub rx_bytes: [C; MAX_PORTS],
    /// Frames sent, per port.
    pub tx_frames: [C; MAX_PORTS],
    /// Bytes sent, per port.
    pub tx_bytes: [C; MAX_PORTS],
    /// Frames steered to a core queue.
    pub dispatched: C,
    /// Frames run to completion.
    pub processed: C,
    /// Of those, frames taken from another core's queue (work conservation).
    pub stolen: C,
    /// ARP replies sent.
    pub arp_replies: C,
    /// ICMP echo replies sent.
    pub echo_replies: C,
    /// TCP resets sent for segments to the NIC IP.
    pub tcp_resets: C,
    /// Datagrams handed to the host.
    pub to_host: C,
    /// Datagrams from the host sent on the wire.
    pub from_host: C,
    /// Requests handled by a local service.
    pub service_requests: C,
    /// Requests for a stopped service set aside until it is re-routed.
    pub parked: C,
    /// Orchestrator commands handled.
    pub commands: C,
    /// Drops, indexed by [`DropReason::index`].
    pub drops: [C; DropReason::COUNT],
}

/// The counters one core writes.
pub type CoreCounters = Counts<CoreCounter>;
/// The counters summed over cores: a plain copy for reports and tests.
pub type CounterTotals = Counts<u64>;

impl<C> Counts<C> {
    /// Counts with every field made by `make`.
    pub fn generate(mut make: impl FnMut() -> C) -> Self {
        Counts {
            rx_frames: core::array::from_fn(|_| make()),
            rx_bytes: core::array::from_fn(|_| make()),
            tx_frames: core::array::from_fn(|_| make()),
            tx_bytes: core::array::from_fn(|_| make()),
            dispatched: make(),
            processed: make(),
            stolen: make(),
            arp_replies: make(),
            echo_replies: make(),
            tcp_resets: make(),
            to_host: make(),
            from_host: make(),
            service_requests: make(),
            parked: make(),
            commands: make(),
            drops: core::array::from_fn(|_| make()),
        }
    }

    /// Applies `f` to every field of `self` and the same field of `other`.
    pub fn zip_with<D, E>(&self, other: &Counts<D>, mut f: impl FnMut(&C, &D) -> E) -> Counts<E> {
        fn each<C, D, E, const N: usize>(
            a: &[C; N],
            b: &[D; N],
            f: &mut impl FnMut(&C, &D) -> E,
        ) -> [E; N] {
            core::array::from_fn(|i| f(&a[i], &b[i]))
        }
        Counts {
            rx_frames: each(&self.rx_frames, &other.rx_frames, &mut f),
            rx_bytes: each(&self.rx_bytes, &other.rx_bytes, &mut f),
            tx_frames: each(&self.tx_frames, &other.tx_frames, &mut f),
            tx_bytes: each(&self.tx_bytes, &other.tx_bytes, &mut f),
            dispatched: f(&self.dispatched, &other.dispatched),
            processed: f(&self.processed, &other.processed),
            stolen: f(&self.stolen, &other.stolen),
            arp_replies: f(&self.arp_replies, &other.arp_replies),
            echo_replies: f(&self.echo_replies, &other.echo_replies),
            tcp_resets: f(&self.tcp_resets, &other.tcp_resets),
            to_host: f(&self.to_host, &other.to_host),
            from_host: f(&self.from_host, &other.from_host),
            service_requests: f(&self.service_requests, &other.service_requests),
            parked: f(&self.parked, &other.parked),
            commands: f(&self.commands, &other.commands),
            drops: each(&self.drops, &other.drops, &mut f),
        }
    }
}

impl Default for CoreCounters {
    fn default() -> Self {
        Counts::generate(CoreCounter::default)
    }
}

impl CoreCounters {
    /// Counts one drop.
    #[inline]
    pub fn drop(&self, reason: DropReason) {
        self.drop_many(reason, 1);
    }

    /// Counts `n` drops for one reason.
    #[inline]
    pub fn drop_many(&self, reason: DropReason, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(counter) = self.drops.get(reason.index()) {
            counter.add(n);
        }
    }
}

impl CounterTotals {
    /// Sums `cores`.
    pub fn sum<'a>(cores: impl IntoIterator<Item = &'a CoreCounters>) -> Self {
        cores
            .into_iter()
            .fold(Counts::generate(|| 0), |total, core| {
                total.zip_with(core, |sum, counter| sum + counter.get())
            })
    }

    /// Drops counted under `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    /// All drops.
    pub fn total_dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// The reasons with a non-zero count, with their counts.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        self.drops
            .iter()
            .enumerate()
            .filter(|(_, &n)| n != 0)
            .filter_map(|(i, &n)| DropReason::from_index(i).map(|r| (r, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_indices_are_dense_and_round_trip() {
        for index in 0..DropReason::COUNT {
            let reason = DropReason::from_index(index).unwrap();
            assert_eq!(reason.index(), index, "{reason}");
        }
        assert_eq!(DropReason::from_index(DropReason::COUNT), None);
    }

    #[test]
    fn drop_reasons_name_layer_and_cause() {
        extern crate alloc;
        use alloc::string::ToString;
        let reason = DropReason::Malformed(Layer::Ipv4, wire::Error::BadChecksum);
        assert_eq!(reason.to_string(), "ipv4: checksum does not verify");
    }

    #[test]
    fn totals_sum_cores() {
        let cores = [CoreCounters::default(), CoreCounters::default()];
        cores[0].rx_frames[1].add(3);
        cores[1].rx_frames[1].add(4);
        cores[1].drop(DropReason::PortClosed);
        let totals = CounterTotals::sum(&cores);
        assert_eq!(totals.rx_frames[1], 7);
        assert_eq!(totals.dropped(DropReason::PortClosed), 1);
        assert_eq!(totals.total_dropped(), 1);
        assert_eq!(
            totals.nonzero_drops().collect::<alloc::vec::Vec<_>>(),
            [(DropReason::PortClosed, 1)]
        );
    }
}
