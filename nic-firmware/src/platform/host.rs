//! The software NIC: the runtime on host threads, its wire and its host path made of memory
//! queues. Tests and benchmarks push raw frames in and read raw frames out; nothing else
//! differs from a board.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use std::vec::Vec;

use super::{Board, DatagramMeta, Devices, HostPath, HostPathError, Port, PortError};
use crate::counters::CounterTotals;
use crate::runtime::{Config, Runtime, RuntimeError};
use crate::tm::pool::FRAME_CAPACITY;
use crate::wire::MacAddress;

/// A bounded queue of byte strings of at most [`FRAME_CAPACITY`] bytes, each with a small
/// `Copy` tag, in slots allocated once: pushing and popping copy bytes and never allocate.
pub struct SlotQueue<T: Copy + Default> {
    inner: Mutex<Slots<T>>,
    pushed: AtomicU64,
}

struct Slots<T> {
    tags: Vec<T>,
    lens: Vec<usize>,
    bytes: Vec<u8>,
    head: usize,
    len: usize,
}

impl<T: Copy + Default> SlotQueue<T> {
    /// A queue of `capacity` slots.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SlotQueue {
            inner: Mutex::new(Slots {
                tags: vec![T::default(); capacity],
                lens: vec![0; capacity],
                bytes: vec![0; capacity * FRAME_CAPACITY],
                head: 0,
                len: 0,
            }),
            pushed: AtomicU64::new(0),
        }
    }

    /// Appends a copy of `bytes` with `tag`; false (and nothing queued) when full or when
    /// `bytes` is longer than a slot.
    pub fn push(&self, tag: T, bytes: &[u8]) -> bool {
        let Ok(mut slots) = self.inner.lock() else {
            return false;
        };
        let capacity = slots.lens.len();
        if bytes.len() > FRAME_CAPACITY || slots.len == capacity {
            return false;
        }
        let index = (slots.head + slots.len) % capacity;
        slots.tags[index] = tag;
        slots.lens[index] = bytes.len();
        slots.bytes[index * FRAME_CAPACITY..][..bytes.len()].copy_from_slice(bytes);
        slots.len += 1;
        self.pushed.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Copies the oldest entry into `out` (truncated to `out`'s length) and removes it;
    /// returns its tag and full length.
    pub fn pop_into(&self, out: &mut [u8]) -> Option<(T, usize)> {
        let mut slots = self.inner.lock().ok()?;
        if slots.len == 0 {
            return None;
        }
        let index = slots.head;
        let len = slots.lens[index];
        let copy = len.min(out.len());
        out[..copy].copy_from_slice(&slots.bytes[index * FRAME_CAPACITY..][..copy]);
        slots.head = (index + 1) % slots.lens.len();
        slots.len -= 1;
        Some((slots.tags[index], len))
    }

    /// The oldest entry as an owned vector (test convenience; allocates).
    pub fn pop(&self) -> Option<(T, Vec<u8>)> {
        let mut buffer = vec![0; FRAME_CAPACITY];
        let (tag, len) = self.pop_into(&mut buffer)?;
        buffer.truncate(len);
        Some((tag, buffer))
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |slots| slots.len)
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries ever pushed.
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }
}

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
        loop {
            let ((), len) = self.wire.to_nic.pop_into(buffer)?;
            // Like a MAC, drop what does not fit the receive buffer.
            if len <= buffer.len() {
                return Some(len);
            }
        }
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), PortError> {
        if self.wire.from_nic.push((), frame) {
            Ok(())
        } else {
            Err(PortError::Full)
        }
    }

    fn link_bits_per_second(&self) -> u64 {
        self.bits_per_second
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
    /// A board of `cores` cores and `ports` ports with `mac`, with wire queues of
    /// `queue_frames` frames; returns it with the network and host ends of its devices.
    pub fn new(
        cores: usize,
        ports: usize,
        mac: MacAddress,
        queue_frames: usize,
    ) -> (Self, Vec<Wire>, HostEnd) {
        let host = HostEnd {
            to_host: Arc::new(SlotQueue::new(queue_frames)),
            from_host: Arc::new(SlotQueue::new(queue_frames)),
        };
        let path = MemoryHostPath { end: host.clone() };
        let (board, wires) = SoftwareBoard::with_host_path(cores, ports, mac, queue_frames, path);
        (board, wires, host)
    }
}

impl<H: HostPath> SoftwareBoard<H> {
    /// A board like [`SoftwareBoard::new`] whose host path is `host`.
    pub fn with_host_path(
        cores: usize,
        ports: usize,
        mac: MacAddress,
        queue_frames: usize,
        host: H,
    ) -> (Self, Vec<Wire>) {
        let wires: Vec<Wire> = (0..ports.clamp(1, super::MAX_PORTS))
            .map(|_| Wire {
                to_nic: Arc::new(FrameQueue::new(queue_frames)),
                from_nic: Arc::new(FrameQueue::new(queue_frames)),
            })
            .collect();
        let ports = wires
            .iter()
            .map(|wire| MemoryPort {
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
    /// Starts `config` on `cores` threads with `ports` ports.
    pub fn start(config: Config, cores: usize, ports: usize) -> Result<Self, RuntimeError> {
        let mac = config.addresses.mac;
        let (board, wires, host) = SoftwareBoard::new(cores, ports, mac, WIRE_QUEUE_FRAMES);
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
