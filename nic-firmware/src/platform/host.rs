//! The software NIC: the runtime on host threads, its wire and its host path made of memory
//! queues. Tests and benchmarks push raw frames in and read raw frames out; nothing else
//! differs from a board.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use std::vec::Vec;

use super::{Board, DatagramMeta, Devices, HostPath, HostPathError, Port, PortError};
use crate::counters::CounterTotals;
use crate::runtime::{Config, Runtime, RuntimeError};
use crate::tm::pool::FRAME_CAPACITY;
use crate::wire::MacAddress;

mod slot_queue;

pub use slot_queue::SlotQueue;

/// A frame queue (no tag).
pub type FrameQueue = SlotQueue<()>;

/// The two directions of one port's wire, seen from the network side.
#[derive(Clone)]
pub struct Wire {
    /// Frames the network sends to the NIC.
    pub to_nic: Arc<FrameQueue>,
    /// Frames the NIC sent.
    pub from_nic: Arc<FrameQueue>,
}

impl Wire {
    /// Queues `frame` for the NIC; false when the wire's queue is full.
    pub fn send(&self, frame: &[u8]) -> bool {
        self.to_nic.push((), frame)
    }

    /// The next frame the NIC sent, waiting up to `timeout`.
    pub fn receive(&self, timeout: Duration) -> Option<Vec<u8>> {
        wait_for(timeout, || self.from_nic.pop().map(|(_, frame)| frame))
    }
}

/// Polls `attempt` until it yields or `timeout` passes.
fn wait_for<T>(timeout: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = attempt() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::yield_now();
    }
}

/// A port whose wire is a pair of memory queues.
pub struct MemoryPort {
    mac: MacAddress,
    wire: Wire,
    bits_per_second: u64,
}

impl Port for MemoryPort {
    fn mac(&self) -> MacAddress {
        self.mac
    }

    fn receive(&mut self, buffer: &mut [u8]) -> Option<usize> {
        let mut lengths = [0];
        let received = self.receive_burst(&mut [buffer], &mut lengths);
        (received == 1).then_some(lengths[0])
    }

    fn receive_burst(&mut self, buffers: &mut [&mut [u8]], lengths: &mut [usize]) -> usize {
        let room = buffers.len().min(lengths.len());
        let mut received = 0;
        while received < room {
            let popped = self.wire.to_nic.pop_with(room - received, |(), frame| {
                let area = buffers
                    .get_mut(received)
                    .and_then(|buffer| buffer.get_mut(..frame.len()));
                // Like a MAC, drop what does not fit the receive buffer.
                if let (Some(area), Some(length)) = (area, lengths.get_mut(received)) {
                    area.copy_from_slice(frame);
                    *length = frame.len();
                    received += 1;
                }
                true
            });
            if popped == 0 {
                break;
            }
        }
        received
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), PortError> {
        if self.wire.from_nic.push((), frame) {
            Ok(())
        } else {
            Err(PortError::Full)
        }
    }

    fn transmit_burst(&mut self, frames: &[&[u8]]) -> usize {
        let mut next = frames.iter();
        self.wire.from_nic.push_with(frames.len(), |slot| {
            let frame = next.next()?;
            let area = slot.get_mut(..frame.len())?;
            area.copy_from_slice(frame);
            Some(((), frame.len()))
        })
    }

    fn link_bits_per_second(&self) -> u64 {
        self.bits_per_second
    }

    fn pending(&mut self) -> usize {
        self.wire.to_nic.len()
    }
}

/// The host's side of the memory host path.
#[derive(Clone)]
pub struct HostEnd {
    /// Datagrams the NIC forwarded to the host.
    pub to_host: Arc<SlotQueue<DatagramMeta>>,
    /// Datagrams the host wants sent on the wire.
    pub from_host: Arc<SlotQueue<DatagramMeta>>,
}

impl HostEnd {
    /// The next datagram for the host, waiting up to `timeout`.
    pub fn receive(&self, timeout: Duration) -> Option<(DatagramMeta, Vec<u8>)> {
        wait_for(timeout, || self.to_host.pop())
    }

    /// Queues a datagram for the wire; false when full.
    pub fn send(&self, meta: DatagramMeta, payload: &[u8]) -> bool {
        self.from_host.push(meta, payload)
    }
}

/// The host path of the software NIC: two memory queues.
pub struct MemoryHostPath {
    end: HostEnd,
}

impl HostPath for MemoryHostPath {
    fn send_to_host(&mut self, meta: &DatagramMeta, payload: &[u8]) -> Result<(), HostPathError> {
        if payload.len() > FRAME_CAPACITY {
            return Err(HostPathError::TooLarge);
        }
        if self.end.to_host.push(*meta, payload) {
            Ok(())
        } else {
            Err(HostPathError::Full)
        }
    }

    fn receive_from_host(&mut self, payload: &mut [u8]) -> Option<(DatagramMeta, usize)> {
        self.end.from_host.pop_into(payload)
    }
}

/// The software NIC's board: host threads as cores, memory queues as ports, and a host path
/// (memory queues by default, or any other, such as the PCIe channel).
pub struct SoftwareBoard<H: HostPath = MemoryHostPath> {
    cores: usize,
    started: Instant,
    ports: heapless::Vec<MemoryPort, { super::MAX_PORTS }>,
    /// Behind a lock only so that the board is `Sync` whatever the path; taken once.
    host: spin::Mutex<Option<H>>,
}

std::thread_local! {
    static CORE_ID: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Link rate the memory ports report (10 Gb/s, the E3 LiquidIO's).
pub const LINK_BITS_PER_SECOND: u64 = 10_000_000_000;
/// Frames each wire queue holds.
pub const WIRE_QUEUE_FRAMES: usize = 4096;

impl SoftwareBoard {
    /// A board of `cores` cores and one port per MAC of `macs` (at most
    /// [`MAX_PORTS`](super::MAX_PORTS); port `i` has `macs[i]`), with wire queues of
    /// `queue_frames` frames; returns it with the network and host ends of its devices.
    pub fn new(
        cores: usize,
        macs: &[MacAddress],
        queue_frames: usize,
    ) -> (Self, Vec<Wire>, HostEnd) {
        let host = HostEnd {
            to_host: Arc::new(SlotQueue::new(queue_frames)),
            from_host: Arc::new(SlotQueue::new(queue_frames)),
        };
        let path = MemoryHostPath { end: host.clone() };
        let (board, wires) = SoftwareBoard::with_host_path(cores, macs, queue_frames, path);
        (board, wires, host)
    }
}

impl<H: HostPath> SoftwareBoard<H> {
    /// A board like [`SoftwareBoard::new`] whose host path is `host`.
    pub fn with_host_path(
        cores: usize,
        macs: &[MacAddress],
        queue_frames: usize,
        host: H,
    ) -> (Self, Vec<Wire>) {
        let macs = &macs[..macs.len().min(super::MAX_PORTS)];
        let wires: Vec<Wire> = macs
            .iter()
            .map(|_| Wire {
                to_nic: Arc::new(FrameQueue::new(queue_frames)),
                from_nic: Arc::new(FrameQueue::new(queue_frames)),
            })
            .collect();
        let ports = wires
            .iter()
            .zip(macs)
            .map(|(wire, &mac)| MemoryPort {
                mac,
                wire: wire.clone(),
                bits_per_second: LINK_BITS_PER_SECOND,
            })
            .collect();
        let board = SoftwareBoard {
            cores: cores.max(1),
            started: Instant::now(),
            ports,
            host: spin::Mutex::new(Some(host)),
        };
        (board, wires)
    }
}

impl<H: HostPath> Board for SoftwareBoard<H> {
    type Port = MemoryPort;
    type Host = Option<H>;

    fn take_devices(&mut self) -> Devices<MemoryPort, Option<H>> {
        Devices {
            ports: core::mem::take(&mut self.ports),
            host: self.host.get_mut().take(),
        }
    }

    fn core_count(&self) -> usize {
        self.cores
    }

    fn core_id(&self) -> usize {
        CORE_ID.with(|id| id.get())
    }

    fn now_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    #[cfg(target_arch = "x86_64")]
    fn cycles(&self) -> u64 {
        // SAFETY: RDTSC reads a counter; it has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
}

/// A running software NIC: the runtime on one thread per core.
pub struct SoftwareNic {
    runtime: Arc<Runtime<SoftwareBoard>>,
    threads: Vec<thread::JoinHandle<Result<(), RuntimeError>>>,
    wires: Vec<Wire>,
    host: HostEnd,
}

impl SoftwareNic {
    /// Starts `config` on `cores` threads with one port per MAC of `macs`.
    pub fn start(config: Config, cores: usize, macs: &[MacAddress]) -> Result<Self, RuntimeError> {
        let (board, wires, host) = SoftwareBoard::new(cores, macs, WIRE_QUEUE_FRAMES);
        let runtime = Arc::new(Runtime::new(config, board)?);
        let threads = (0..runtime.board().core_count())
            .map(|core| {
                let runtime = Arc::clone(&runtime);
                thread::Builder::new()
                    .name(std::format!("nic-core-{core}"))
                    .spawn(move || {
                        CORE_ID.with(|id| id.set(core));
                        runtime.run_core(core)
                    })
                    .expect("spawning a software NIC core thread")
            })
            .collect();
        Ok(SoftwareNic {
            runtime,
            threads,
            wires,
            host,
        })
    }

    /// The network side of port `port`.
    pub fn wire(&self, port: usize) -> &Wire {
        &self.wires[port]
    }

    /// The host side of the host path.
    pub fn host(&self) -> &HostEnd {
        &self.host
    }

    /// The runtime (counters, queues, services).
    pub fn runtime(&self) -> &Runtime<SoftwareBoard> {
        &self.runtime
    }

    /// Stops every core and returns the final counters.
    pub fn stop(self) -> CounterTotals {
        self.runtime.stop();
        for thread in self.threads {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => log::error!("software NIC core failed: {error}"),
                Err(_) => log::error!("software NIC core panicked"),
            }
        }
        self.runtime.counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures;

    fn port(queue_frames: usize) -> (MemoryPort, Wire) {
        let (mut board, mut wires, _host) =
            SoftwareBoard::new(1, &[fixtures::NIC_MAC], queue_frames);
        (board.take_devices().ports.remove(0), wires.remove(0))
    }

    #[test]
    fn bursts_receive_in_order_and_drop_what_does_not_fit() {
        let (mut port, wire) = port(8);
        for frame in [&[1u8; 10][..], &[2; 40], &[3; 20], &[4; 5]] {
            assert!(wire.send(frame));
        }
        let mut buffers = [[0u8; 32]; 2];
        let mut into = buffers.each_mut().map(|b| &mut b[..]);
        let mut lengths = [0; 2];
        // The 40-byte frame does not fit a 32-byte buffer: dropped, like a MAC would.
        assert_eq!(port.receive_burst(&mut into, &mut lengths), 2);
        assert_eq!(lengths, [10, 20]);
        assert_eq!(buffers[0][..10], [1; 10]);
        assert_eq!(buffers[1][..20], [3; 20]);
        let mut one = [0u8; 8];
        assert_eq!(port.receive(&mut one), Some(5));
        assert_eq!(port.receive(&mut one), None);
    }

    #[test]
    fn bursts_transmit_until_the_wire_is_full() {
        let (mut port, wire) = port(3);
        let frames: [&[u8]; 4] = [b"one", b"two", b"three", b"four"];
        assert_eq!(port.transmit_burst(&frames), 3);
        assert_eq!(port.transmit(b"five"), Err(PortError::Full));
        let sent: Vec<Vec<u8>> = std::iter::from_fn(|| wire.from_nic.pop().map(|f| f.1)).collect();
        assert_eq!(sent, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
    }
}
