//! What the runtime needs from a board: ports, a channel to the host, a clock and its cores.
//!
//! A board (`qemu_virt`, later BlueField or LiquidIO) implements [`Board`] and hands its
//! devices to [`Runtime::new`](crate::Runtime::new). The runtime serialises every call on one
//! device (it keeps each [`Port`] and the [`HostPath`] behind a lock), so device drivers need no
//! locking of their own and take `&mut self`. [`host`] is the software NIC: the same runtime on
//! host threads, with frames in and out of memory queues.

use core::fmt;

use crate::wire::{Ipv4Address, MacAddress};

#[cfg(any(test, feature = "std"))]
pub mod host;

/// Most ports a runtime drives.
pub const MAX_PORTS: usize = 4;

/// One Ethernet MAC port behind the traffic manager.
pub trait Port: Send {
    /// The port's MAC address.
    fn mac(&self) -> MacAddress;

    /// Copies the next received frame (without FCS) into `buffer` and returns its length, or
    /// `None` when no frame is waiting. A frame longer than `buffer` is dropped by the port
    /// (and counted there): the runtime's buffers hold the largest Ethernet frame.
    fn receive(&mut self, buffer: &mut [u8]) -> Option<usize>;

    /// Receives up to `buffers.len()` frames in one go, the `i`-th into `buffers[i]` with its
    /// length in `lengths[i]`, and returns how many. The runtime calls this once per poll of the
    /// port with a burst of buffers; the default calls [`Port::receive`] once per frame, and a
    /// driver whose queue works in bursts (one index update for many frames) overrides it.
    fn receive_burst(&mut self, buffers: &mut [&mut [u8]], lengths: &mut [usize]) -> usize {
        let mut received = 0;
        for (buffer, length) in buffers.iter_mut().zip(lengths.iter_mut()) {
            let Some(len) = self.receive(buffer) else {
                break;
            };
            *length = len;
            received += 1;
        }
        received
    }

    /// Queues `frame` for transmission.
    fn transmit(&mut self, frame: &[u8]) -> Result<(), PortError>;

    /// Queues `frames` for transmission in order and returns how many the port took: the
    /// first refusal ends the burst, and the frames from there on are counted as dropped by the
    /// runtime. The default calls [`Port::transmit`] once per frame.
    fn transmit_burst(&mut self, frames: &[&[u8]]) -> usize {
        frames
            .iter()
            .take_while(|frame| self.transmit(frame).is_ok())
            .count()
    }

    /// Line rate in bits per second, for link utilisation.
    fn link_bits_per_second(&self) -> u64;

    /// Frames the port has received and not yet handed over by [`Port::receive`] (its receive
    /// ring's backlog), counted into the traffic manager's queue depth (the standing-queue
    /// signal) when a depth sample is taken. The default, for a driver that cannot tell, is 0:
    /// the depth then counts only the frames the runtime holds.
    fn pending(&mut self) -> usize {
        0
    }
}

/// A port driver on the heap (a board keeps large drivers, such as virtio queues, off its boot
/// stack and out of the runtime's own allocation).
impl<P: Port + ?Sized> Port for alloc::boxed::Box<P> {
    fn mac(&self) -> MacAddress {
        (**self).mac()
    }

    fn receive(&mut self, buffer: &mut [u8]) -> Option<usize> {
        (**self).receive(buffer)
    }

    fn receive_burst(&mut self, buffers: &mut [&mut [u8]], lengths: &mut [usize]) -> usize {
        (**self).receive_burst(buffers, lengths)
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), PortError> {
        (**self).transmit(frame)
    }

    fn transmit_burst(&mut self, frames: &[&[u8]]) -> usize {
        (**self).transmit_burst(frames)
    }

    fn link_bits_per_second(&self) -> u64 {
        (**self).link_bits_per_second()
    }

    fn pending(&mut self) -> usize {
        (**self).pending()
    }
}

/// Why a port did not take a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortError {
    /// The transmit ring is full; the runtime counts the frame as dropped.
    Full,
    /// The frame is longer than the port sends.
    TooLong,
    /// The link is down.
    LinkDown,
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortError::Full => "transmit ring full",
            PortError::TooLong => "frame too long for the port",
            PortError::LinkDown => "link down",
        })
    }
}

/// One end of a UDP flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// IPv4 address.
    pub ip: Ipv4Address,
    /// UDP port.
    pub port: u16,
}

impl Endpoint {
    /// `ip`:`port`.
    pub const fn new(ip: Ipv4Address, port: u16) -> Self {
        Endpoint { ip, port }
    }
}

/// How a UDP datagram crosses between NIC and host: who it is from and for, and its flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DatagramMeta {
    /// The end on the network (the client that sent it, or the one a reply goes to).
    pub remote: Endpoint,
    /// The end on the host (the host IP and the service's port).
    pub local: Endpoint,
    /// Flow identifier: the hash of the 5-tuple, the same for both directions of a flow, so
    /// the channel can keep a flow's datagrams in order on one engine.
    pub flow: u32,
}

/// The path between this NIC and the host it fronts (E3's PCIe channel). Datagrams for the
/// host IP go out through it; the host's replies come back through it and leave on the wire.
pub trait HostPath: Send {
    /// Hands a datagram received from the network to the host.
    fn send_to_host(&mut self, meta: &DatagramMeta, payload: &[u8]) -> Result<(), HostPathError>;

    /// Copies the next datagram the host wants sent into `payload` and returns its addressing
    /// and length, or `None` when the host has nothing queued.
    fn receive_from_host(&mut self, payload: &mut [u8]) -> Option<(DatagramMeta, usize)>;
}

/// Why the host path did not take a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostPathError {
    /// No room towards the host right now (no credits, ring full).
    Full,
    /// Larger than the path carries.
    TooLarge,
    /// The host side is not attached or has failed.
    Disconnected,
}

impl fmt::Display for HostPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostPathError::Full => "host path full",
            HostPathError::TooLarge => "datagram too large for the host path",
            HostPathError::Disconnected => "host path disconnected",
        })
    }
}

/// A board without a host: datagrams for the host IP are refused and counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHost;

impl HostPath for NoHost {
    fn send_to_host(&mut self, _: &DatagramMeta, _: &[u8]) -> Result<(), HostPathError> {
        Err(HostPathError::Disconnected)
    }

    fn receive_from_host(&mut self, _: &mut [u8]) -> Option<(DatagramMeta, usize)> {
        None
    }
}

/// A host path that may be absent: `None` behaves as [`NoHost`].
impl<H: HostPath> HostPath for Option<H> {
    fn send_to_host(&mut self, meta: &DatagramMeta, payload: &[u8]) -> Result<(), HostPathError> {
        match self {
            Some(path) => path.send_to_host(meta, payload),
            None => Err(HostPathError::Disconnected),
        }
    }

    fn receive_from_host(&mut self, payload: &mut [u8]) -> Option<(DatagramMeta, usize)> {
        self.as_mut()?.receive_from_host(payload)
    }
}

/// A host path on the heap (a channel's receiver is tens of KiB: boards keep it out of the
/// runtime's own allocation and off the boot stack).
impl<H: HostPath + ?Sized> HostPath for alloc::boxed::Box<H> {
    fn send_to_host(&mut self, meta: &DatagramMeta, payload: &[u8]) -> Result<(), HostPathError> {
        (**self).send_to_host(meta, payload)
    }

    fn receive_from_host(&mut self, payload: &mut [u8]) -> Option<(DatagramMeta, usize)> {
        (**self).receive_from_host(payload)
    }
}

/// The devices a board hands to the runtime once, at start-up.
pub struct Devices<P, H> {
    /// The MAC ports, at most [`MAX_PORTS`]; index = port number.
    pub ports: heapless::Vec<P, MAX_PORTS>,
    /// The path to the host.
    pub host: H,
}

/// A board the runtime runs on.
///
/// The board boots, brings up its devices, builds the runtime with
/// [`Runtime::new`](crate::Runtime::new) and then calls
/// [`Runtime::run_core`](crate::Runtime::run_core) once on every core, with core ids
/// `0..core_count()`.
pub trait Board: Sync {
    /// The MAC port driver.
    type Port: Port;
    /// The host path driver.
    type Host: HostPath;

    /// Hands the devices to the runtime; called once, by `Runtime::new`.
    fn take_devices(&mut self) -> Devices<Self::Port, Self::Host>;

    /// How many cores run the runtime.
    fn core_count(&self) -> usize;

    /// The calling core's id, in `0..core_count()`.
    fn core_id(&self) -> usize;

    /// Monotonic time in nanoseconds since an arbitrary start.
    fn now_ns(&self) -> u64;

    /// A cheap monotonic cycle counter (CNTVCT_EL0 on ARMv8, the TSC on x86), read around
    /// every service call. Its rate need not be known: the agent relates it to
    /// [`Board::now_ns`] over each heartbeat interval. Defaults to `now_ns`.
    fn cycles(&self) -> u64 {
        self.now_ns()
    }
}
