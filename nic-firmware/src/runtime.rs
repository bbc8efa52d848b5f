//! The runtime: configuration, start-up, and the run-to-completion loop of each core.
//!
//! One [`Runtime`] is shared by all cores; each core calls [`Runtime::run_core`] (or drives a
//! [`Core`] by hand with [`Core::poll`]). One poll of a core:
//! 1. samples the traffic manager's queue depth if a sample is due (the core queues, the frames
//!    held back at the ports and what the ports report waiting in their receive rings);
//! 2. receives a burst from each port no other core is receiving from (one port call each,
//!    starting one port further at every poll, so that a busy port starves none), and
//!    steers it to the core queues (one lock per queue: the traffic manager), its own share
//!    straight to its batch while its queue is empty; frames no queue takes are held back at
//!    the port, in order;
//! 3. sends on the wire what the host queued for it, if no other core is doing so;
//! 4. runs a burst of its own queue to completion (or, idle, of the busiest queue): demux,
//!    then ARP, ICMP echo, the host path, the agent or a counted drop at once, and the requests
//!    for local services service by service (one lock hold and two cycle-counter reads per
//!    service per burst), each response written straight into its request's buffer, where its
//!    reply is built;
//! 5. hands every frame it built to its port, one port call per port.
//!
//! After [`Runtime::new`] nothing allocates: frames and replies live in the pool, every queue
//! is bounded.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use microservices::engines::Engines;
use microservices::{Context, Service};

use crate::agent::{Agent, AgentConfig, Measurements};
use crate::counters::{CoreCounters, CounterTotals, DropReason, Layer};
use crate::demux::{self, Addresses, Datagram, Verdict};
use crate::neighbours::{LastLearned, Neighbours, NextHop};
use crate::platform::{Board, DatagramMeta, Devices, Endpoint, HostPath, HostPathError, Port};
use crate::service_table::{Route, RouteCache, ServiceTable, TableError};
use crate::tm::pool::{reply_offset, FramePool, FrameToken, FRAME_CAPACITY};
use crate::tm::steering::{self, Steering};
use crate::tm::{Descriptor, TrafficManager, BURST, QUEUE_DEPTH};
use crate::wire::{
    self, ethernet, ipv4, udp, ArpRepr, EtherType, EthernetRepr, IcmpRepr, IpProtocol, Ipv4Address,
    Ipv4Repr, MacAddress, TcpRepr, UdpFrameRepr, UdpRepr,
};

/// Offset of the IPv4 header in a frame.
const IP_OFFSET: usize = ethernet::HEADER_LEN;
/// Offset of the transport header in a frame the runtime builds (no IP options).
const L4_OFFSET: usize = IP_OFFSET + ipv4::HEADER_LEN;
/// Offset of the UDP data in a frame the runtime builds.
const UDP_PAYLOAD_OFFSET: usize = udp::FRAME_PAYLOAD_OFFSET;
/// Largest UDP payload in one 1500-byte IP packet.
pub const MAX_UDP_PAYLOAD: usize = 1500 - ipv4::HEADER_LEN - udp::HEADER_LEN;

/// Everything the runtime needs to start.
pub struct Config {
    /// The IPs this NIC answers for (its MACs are its ports': [`Port::mac`]).
    pub addresses: Addresses,
    /// How frames are steered to cores.
    pub steering: Steering,
    /// The engines services call (hardware-backed on the NIC).
    pub engines: &'static dyn Engines,
    /// Services deployed at start-up, each with the UDP port of the NIC IP it serves.
    pub services: Vec<(u16, Box<dyn Service>)>,
    /// Frame buffers in the pool; at least [`frames_needed`].
    pub frames: usize,
    /// Where datagrams from the host go when their destination was never heard from (the
    /// top-of-rack switch's MAC, on port 0).
    pub gateway_mac: Option<MacAddress>,
    /// Period of the traffic manager's queue-depth samples.
    pub depth_sample_period_ns: u64,
    /// The orchestrator agent (commands and heartbeats); `None` runs without one.
    pub agent: Option<AgentConfig>,
}

impl Config {
    /// A configuration with defaults: round-robin, no services, 2048 frames, 100 us samples.
    pub fn new(addresses: Addresses, engines: &'static dyn Engines) -> Self {
        Config {
            addresses,
            steering: Steering::RoundRobin,
            engines,
            services: Vec::new(),
            frames: 2048,
            gateway_mac: None,
            depth_sample_period_ns: 100_000,
            agent: None,
        }
    }

    /// Adds a service on `udp_port`.
    pub fn with_service(mut self, udp_port: u16, service: Box<dyn Service>) -> Self {
        self.services.push((udp_port, service));
        self
    }
}

/// Why the runtime could not start or run a core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeError {
    /// The board has no port.
    NoPort,
    /// Too few frames for the cores' queues.
    TooFewFrames {
        /// Frames configured.
        frames: usize,
        /// Frames needed.
        needed: usize,
    },
    /// A start-up service (or the agent's port) could not be routed.
    Service(TableError),
    /// A core id outside `0..core_count`.
    NoSuchCore(usize),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::NoPort => f.write_str("the board has no port"),
            RuntimeError::TooFewFrames { frames, needed } => {
                write!(f, "{frames} frames configured, {needed} needed")
            }
            RuntimeError::Service(error) => write!(f, "start-up service: {error}"),
            RuntimeError::NoSuchCore(core) => write!(f, "no core {core}"),
        }
    }
}

struct PortState<P> {
    device: spin::Mutex<P>,
    /// The port's MAC ([`Port::mac`], read once at start-up): what frames received on the port
    /// must be addressed to (or broadcast), and the source of every frame sent on it.
    mac: MacAddress,
    /// Frames received but not yet accepted by a core queue; whoever holds this lock is the
    /// port's receiver.
    backlog: spin::Mutex<heapless::Deque<Descriptor, BURST>>,
    /// The backlog's length, readable without its lock (for depth samples).
    held: AtomicUsize,
    /// What the port last reported waiting in its receive ring ([`Port::pending`]).
    pending: AtomicUsize,
}

impl<P: Port> PortState<P> {
    /// Frames waiting at this port for the traffic manager: held back by the runtime, and in
    /// the port's receive ring (asked of the port unless a core is using it right now, in
    /// which case its last answer stands).
    fn waiting(&self) -> usize {
        let pending = match self.device.try_lock() {
            Some(mut device) => {
                let pending = device.pending();
                self.pending.store(pending, Ordering::Relaxed);
                pending
            }
            None => self.pending.load(Ordering::Relaxed),
        };
        self.held.load(Ordering::Relaxed).saturating_add(pending)
    }
}

/// The NIC runtime, shared by every core of a board.
pub struct Runtime<B: Board> {
    board: B,
    addresses: Addresses,
    engines: &'static dyn Engines,
    ports: heapless::Vec<PortState<B::Port>, { crate::platform::MAX_PORTS }>,
    host: spin::Mutex<B::Host>,
    pool: FramePool,
    tm: TrafficManager,
    services: ServiceTable,
    neighbours: Neighbours,
    agent: Option<Agent>,
    parking: spin::Mutex<heapless::Deque<Descriptor, PARKING>>,
    counters: Box<[CoreCounters]>,
    stopping: AtomicBool,
}

/// Requests held for stopped services, at most.
pub const PARKING: usize = 256;

/// The frame buffers a runtime of `cores` cores and `ports` ports can hold at once, which is
/// the least `Config::frames` it starts with, so that no core ever waits for a buffer: per
/// core its queue, its cache (two bursts), its batch, the answers of its batch built in fresh
/// buffers and the buffer it builds in; per port a held-back burst; and the parking queue.
pub const fn frames_needed(cores: usize, ports: usize) -> usize {
    cores * (QUEUE_DEPTH + 4 * BURST + 1) + ports * BURST + PARKING
}

impl<B: Board> Runtime<B> {
    /// Takes the board's devices, allocates the frame pool and queues, deploys the start-up
    /// services. The only allocations the runtime makes happen here.
    pub fn new(config: Config, mut board: B) -> Result<Self, RuntimeError> {
        let cores = board.core_count().max(1);
        let Devices { ports, host } = board.take_devices();
        if ports.is_empty() {
            return Err(RuntimeError::NoPort);
        }
        let needed = frames_needed(cores, ports.len());
        if config.frames < needed {
            return Err(RuntimeError::TooFewFrames {
                frames: config.frames,
                needed,
            });
        }
        let ports = ports
            .into_iter()
            .map(|device| PortState {
                mac: device.mac(),
                device: spin::Mutex::new(device),
                backlog: spin::Mutex::new(heapless::Deque::new()),
                held: AtomicUsize::new(0),
                pending: AtomicUsize::new(0),
            })
            .collect();
        let services = ServiceTable::new(cores);
        for (port, service) in config.services {
            let slot = services.install(service).map_err(RuntimeError::Service)?;
            services
                .set_route(port, Some(Route::Local(slot)))
                .map_err(RuntimeError::Service)?;
        }
        if let Some(agent) = &config.agent {
            services
                .set_route(agent.port, Some(Route::Agent))
                .map_err(RuntimeError::Service)?;
        }
        let gateway = config.gateway_mac.map(|mac| NextHop { mac, port: 0 });
        Ok(Runtime {
            addresses: config.addresses,
            engines: config.engines,
            ports,
            host: spin::Mutex::new(host),
            pool: FramePool::new(config.frames),
            tm: TrafficManager::new(config.steering, cores, config.depth_sample_period_ns),
            services,
            neighbours: Neighbours::new(gateway),
            agent: config.agent.map(Agent::new),
            parking: spin::Mutex::new(heapless::Deque::new()),
            counters: (0..cores).map(|_| CoreCounters::default()).collect(),
            stopping: AtomicBool::new(false),
            board,
        })
    }

    /// [`Runtime::new`] on the heap, where a board keeps the runtime for good: the runtime is a
    /// few KiB (ports, queues, tables), so a boot stack holds it once at most, never the
    /// several copies moving it by value would take.
    pub fn new_boxed(config: Config, board: B) -> Result<Box<Self>, RuntimeError> {
        Self::new(config, board).map(Box::new)
    }

    /// Runs core `core_id` until [`Runtime::stop`]. Call once per core, from that core.
    pub fn run_core(&self, core_id: usize) -> Result<(), RuntimeError> {
        let mut core = self.core(core_id)?;
        while !self.stopping.load(Ordering::Relaxed) {
            if core.poll() == 0 {
                core::hint::spin_loop();
            }
        }
        Ok(())
    }

    /// The state of core `core_id`, to poll by hand (tests, benchmarks, a board's own loop).
    pub fn core(&self, core_id: usize) -> Result<Core<'_, B>, RuntimeError> {
        if core_id >= self.counters.len() {
            return Err(RuntimeError::NoSuchCore(core_id));
        }
        Ok(Core {
            runtime: self,
            id: core_id,
            free: heapless::Vec::new(),
            batch: heapless::Deque::new(),
            tx: None,
            outgoing: heapless::Vec::new(),
            calls: heapless::Vec::new(),
            now_ns: 0,
            learned: LastLearned::default(),
            routes: RouteCache::default(),
            first_port: 0,
        })
    }

    /// Asks every core's [`Runtime::run_core`] to return.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The counters, summed over cores.
    pub fn counters(&self) -> CounterTotals {
        CounterTotals::sum(self.counters.iter())
    }

    /// The counters of core `core` alone (what it received, steered, served, stole, dropped).
    pub fn core_counters(&self, core: usize) -> Option<CounterTotals> {
        self.counters
            .get(core)
            .map(core::iter::once)
            .map(CounterTotals::sum)
    }

    /// The board.
    pub fn board(&self) -> &B {
        &self.board
    }

    /// The traffic manager (queue depths).
    pub fn traffic_manager(&self) -> &TrafficManager {
        &self.tm
    }

    /// The service table.
    pub fn services(&self) -> &ServiceTable {
        &self.services
    }

    /// The IPs this runtime answers for.
    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    /// The MAC of port `port` (what it accepts unicast frames for and sends from).
    pub fn port_mac(&self, port: usize) -> Option<MacAddress> {
        self.ports.get(port).map(|state| state.mac)
    }

    /// Runs `f` on the host path (waiting for a core that is using it).
    pub fn with_host_path<R>(&self, f: impl FnOnce(&mut B::Host) -> R) -> R {
        f(&mut self.host.lock())
    }

    /// The orchestrator agent, if configured.
    pub fn agent(&self) -> Option<&Agent> {
        self.agent.as_ref()
    }

    /// Requests parked for stopped services right now.
    pub fn parked(&self) -> usize {
        self.parking.lock().len()
    }
}

/// One core's private state: its free-buffer cache, its batch, the buffer its next frame is
/// built in, the frames it has built and not yet sent, and the service requests of its batch.
pub struct Core<'r, B: Board> {
    runtime: &'r Runtime<B>,
    id: usize,
    free: heapless::Vec<FrameToken, { 2 * BURST }>,
    batch: heapless::Deque<Descriptor, BURST>,
    /// The pool buffer the next frame this core sends is built in; sending it moves it to
    /// `outgoing` and puts a fresh buffer here.
    tx: Option<FrameToken>,
    /// Frames built and not yet handed to their port, oldest first (one port call per burst).
    outgoing: heapless::Vec<Outgoing, BURST>,
    /// The requests of this batch for local services, run by service after the batch is
    /// classified.
    calls: heapless::Vec<Call, BURST>,
    /// The time at the start of this poll (what services see as "now").
    now_ns: u64,
    /// The sender this core last taught the neighbour table.
    learned: LastLearned,
    /// The routes this core looked up last.
    routes: RouteCache,
    /// The port this core receives from first at its next poll ([`Core::receive`]).
    first_port: usize,
}

/// A frame built for a port and not yet handed to it: `len` bytes from `start` of its buffer.
struct Outgoing {
    frame: FrameToken,
    start: u16,
    len: u16,
    port: u8,
}

/// A request for a local service, waiting for its service's turn in the batch. Its reply is
/// built in the same buffer, after the request ([`reply_offset`]), with the addressing read
/// back from the request's headers.
struct Call {
    /// The request frame.
    request: Descriptor,
    slot: u16,
    /// Where the UDP data lies in the request frame.
    payload: (u16, u16),
    /// The UDP data length of the reply (a response or an error response); `None` when the
    /// service was gone by the time its turn came.
    answered: Option<u16>,
}

impl<B: Board> Drop for Core<'_, B> {
    fn drop(&mut self) {
        self.flush();
        let pool = &self.runtime.pool;
        for call in core::mem::take(&mut self.calls) {
            pool.give(call.request.frame);
        }
        while let Some(descriptor) = self.batch.pop_front() {
            pool.give(descriptor.frame);
        }
        if let Some(tx) = self.tx.take() {
            pool.give(tx);
        }
        pool.give_all(&mut self.free);
    }
}

impl<B: Board> Drop for Runtime<B> {
    fn drop(&mut self) {
        if !self.parking.lock().is_empty() || self.tm.total_depth() != 0 {
            log::debug!("runtime dropped with frames still queued or parked");
        }
    }
}

impl<'r, B: Board> Core<'r, B> {
    /// This core's id.
    pub fn id(&self) -> usize {
        self.id
    }

    fn counters(&self) -> &'r CoreCounters {
        &self.runtime.counters[self.id]
    }

    /// The MAC of `port`, which frames received on it are for and frames sent on it are from
    /// (the zero MAC for a port that does not exist, which no frame is sent on).
    #[inline]
    fn port_mac(&self, port: usize) -> MacAddress {
        self.runtime
            .ports
            .get(port)
            .map_or(MacAddress([0; 6]), |state| state.mac)
    }

    /// One round of the loop; returns how many frames and datagrams it moved (0: idle).
    pub fn poll(&mut self) -> usize {
        let runtime = self.runtime;
        let now_ns = runtime.board.now_ns();
        self.now_ns = now_ns;
        runtime.tm.sample_depth(now_ns, || {
            runtime.ports.iter().map(PortState::waiting).sum::<usize>()
        });
        if self.id == 0 {
            self.agent_tick(now_ns);
        }
        let received = self.receive();
        let from_host = self.receive_from_host();
        let processed = self.run_to_completion();
        self.flush();
        received + from_host + processed
    }

    /// A buffer from this core's cache, refilled from the pool in bursts.
    fn take_buffer(&mut self) -> Option<FrameToken> {
        if self.free.is_empty() {
            self.runtime.pool.take(BURST, &mut self.free);
        }
        self.free.pop()
    }

    /// Refills this core's cache to at least a burst of buffers if the pool has them; returns
    /// how many buffers the cache holds.
    fn top_up(&mut self) -> usize {
        if self.free.len() < BURST {
            self.runtime.pool.take(BURST, &mut self.free);
        }
        self.free.len()
    }

    /// Gives a buffer back to this core's cache, spilling half to the pool when full.
    #[inline]
    fn release(&mut self, token: FrameToken) {
        if let Err(token) = self.free.push(token) {
            self.spill_and_release(token);
        }
    }

    /// [`Core::release`] into a full cache: half of it goes back to the pool first.
    #[cold]
    #[inline(never)]
    fn spill_and_release(&mut self, token: FrameToken) {
        let mut spill: heapless::Vec<FrameToken, BURST> = heapless::Vec::new();
        while spill.len() < BURST {
            match self.free.pop() {
                Some(t) => {
                    let _ = spill.push(t);
                }
                None => break,
            }
        }
        self.runtime.pool.give_all(&mut spill);
        let _ = self.free.push(token);
    }

    /// The buffer the next frame is built in.
    fn tx_bytes(&mut self) -> &mut [u8] {
        if self.tx.is_none() {
            self.tx = self.take_buffer();
        }
        match &mut self.tx {
            Some(token) => self.runtime.pool.bytes_mut(token),
            None => &mut [],
        }
    }

    /// The traffic manager's input: a burst from every port this core can take, to the queues
    /// (and its own share to its batch), starting one port further at every poll. Returns how
    /// many frames it moved: received from a port, steered (a frame received and steered in
    /// one go counts twice), or dropped.
    ///
    /// The port that goes first gets the batch and the queue's room first: a lone core whose
    /// batch one port fills has no room left for the next, and a queue one port refills to
    /// the brim at every poll holds back every other port's frames. Taking the ports in turn
    /// gives each a poll in which it goes first, so none is starved however busy another is.
    ///
    /// Out of line: it runs once a poll, and inlined into [`Core::poll`] it changed how the
    /// per-frame loop there was compiled (5 instructions a frame more, docs/nic-runtime.md).
    #[inline(never)]
    fn receive(&mut self) -> usize {
        let ports = &self.runtime.ports;
        let first = self.first_port;
        self.first_port = if first + 1 < ports.len() {
            first + 1
        } else {
            0
        };
        let in_turn = ports.iter().enumerate().skip(first);
        let mut moved = 0;
        for (index, port) in in_turn.chain(ports.iter().enumerate().take(first)) {
            let Some(mut backlog) = port.backlog.try_lock() else {
                continue;
            };
            moved += self.receive_port(index, port, &mut backlog);
            port.held.store(backlog.len(), Ordering::Relaxed);
        }
        moved
    }

    /// Steers the frames `port` held back and a burst received from it. Frames no queue could
    /// take stay held, in order, and while some are held the port is not received from (its
    /// ring holds the rest, as a hardware traffic manager's would), unless a core is running
    /// short of work under flow-affine steering: then a burst is received behind the held
    /// frames, so that one full core does not block the others' flows
    /// ([`TrafficManager::dispatch_behind`]).
    fn receive_port(
        &mut self,
        index: usize,
        port: &PortState<B::Port>,
        backlog: &mut heapless::Deque<Descriptor, BURST>,
    ) -> usize {
        let mut moved = 0;
        if !backlog.is_empty() {
            moved += self.dispatch_burst(backlog);
        }
        let runtime = self.runtime;
        if backlog.is_empty() && runtime.tm.keeps_all(self.id) {
            // Every frame of the burst is this core's, and none is queued for it: receive
            // straight into its batch, as many as it has room for (none, if a port before this
            // one filled it: this port goes first at a later poll).
            let mut batch = core::mem::take(&mut self.batch);
            let before = batch.len();
            moved += self.receive_into(index, port, &mut batch);
            let kept = batch.len() - before;
            self.batch = batch;
            self.counters().dispatched.add(kept as u64);
            return moved + kept;
        }
        if backlog.is_empty() {
            moved += self.receive_into(index, port, backlog);
            return moved + self.dispatch_burst(backlog);
        }
        if !runtime.tm.core_short_of_work() {
            return moved;
        }
        let mut fresh = heapless::Deque::new();
        moved += self.receive_into(index, port, &mut fresh);
        let steered = runtime
            .tm
            .dispatch_behind(backlog, &mut fresh, |descriptor| {
                flow_hash_of_frame(&runtime.pool, descriptor)
            });
        self.counters().dispatched.add(steered as u64);
        let refused = fresh.len();
        self.counters()
            .drop_many(DropReason::CoreQueueFull, refused as u64);
        while let Some(descriptor) = fresh.pop_front() {
            self.release(descriptor.frame);
        }
        moved + steered
    }

    /// Receives a burst from `port` to the back of `into`, as many frames as the cache has
    /// buffers for and `into` has room for; returns how many frames the port gave. A port is
    /// not asked for frames there is no room for: they wait in its ring.
    fn receive_into(
        &mut self,
        index: usize,
        port: &PortState<B::Port>,
        into: &mut heapless::Deque<Descriptor, BURST>,
    ) -> usize {
        let runtime = self.runtime;
        let room = self.top_up().min(BURST - into.len());
        if room == 0 {
            return 0;
        }
        let mut lengths = [0usize; BURST];
        let received = {
            // The last `room` buffers of the cache, newest first, so that the frames
            // received come off its end in order.
            let mut buffers: heapless::Vec<&mut [u8], BURST> = self
                .free
                .iter_mut()
                .rev()
                .take(room)
                .map(|token| &mut runtime.pool.bytes_mut(token)[..FRAME_CAPACITY])
                .collect();
            let received = port
                .device
                .lock()
                .receive_burst(&mut buffers, &mut lengths[..room]);
            received.min(room)
        };
        let counters = self.counters();
        let mut bytes = 0;
        for &len in &lengths[..received] {
            let Some(frame) = self.free.pop() else {
                break;
            };
            if len > FRAME_CAPACITY {
                // The port broke its contract: count the frame, keep the buffer.
                counters.drop(DropReason::Malformed(
                    Layer::Ethernet,
                    wire::Error::BadLength,
                ));
                self.release(frame);
                continue;
            }
            bytes += len as u64;
            // Cannot fail: `room` leaves room.
            let _ = into.push_back(Descriptor {
                frame,
                len: len as u16,
                port: index as u8,
            });
        }
        counters.rx_frames[index].add(received as u64);
        counters.rx_bytes[index].add(bytes);
        received
    }

    /// Steers what `frames` holds (received by this core) to the cores; what no queue takes
    /// stays, in order. This core's own share goes straight into its batch while its queue
    /// is empty ([`TrafficManager::dispatch_burst_keeping`]): one hop, not two.
    fn dispatch_burst(&mut self, frames: &mut heapless::Deque<Descriptor, BURST>) -> usize {
        let runtime = self.runtime;
        let moved = runtime.tm.dispatch_burst_keeping(
            frames,
            |descriptor| flow_hash_of_frame(&runtime.pool, descriptor),
            (self.id, &mut self.batch),
        );
        self.counters().dispatched.add(moved as u64);
        moved
    }

    fn dispatch(&self, descriptor: Descriptor) -> Result<(), Descriptor> {
        let runtime = self.runtime;
        let flow = match runtime.tm.steering() {
            Steering::FlowAffine => flow_hash_of_frame(&runtime.pool, &descriptor),
            Steering::RoundRobin => 0,
        };
        runtime.tm.dispatch(flow, descriptor)?;
        self.counters().dispatched.increment();
        Ok(())
    }

    /// Runs a burst to completion: the frames this core kept from what it received, then its
    /// queue's (or, when both are empty, the busiest queue's), up to [`BURST`]. Classifies every
    /// frame, answering what the runtime answers itself, then runs the service requests
    /// service by service, then queues their replies in order.
    fn run_to_completion(&mut self) -> usize {
        let runtime = self.runtime;
        // A frame of the batch takes at most one buffer (for an answer of the runtime's own:
        // a service's reply is built in its request's buffer), from the cache or, when that
        // runs dry, from the pool, which `frames_needed` sizes for a batch of such answers.
        // Topping the cache up here instead would make every poll take a burst from the pool
        // and give one back.
        runtime.tm.pull(self.id, &mut self.batch, BURST);
        if self.batch.is_empty() {
            let stolen = runtime.tm.steal(self.id, &mut self.batch, BURST);
            self.counters().stolen.add(stolen as u64);
        }
        let done = self.batch.len();
        self.counters().processed.add(done as u64);
        while let Some(descriptor) = self.batch.pop_front() {
            self.process(descriptor);
        }
        self.run_calls();
        done
    }

    /// One frame of the batch: a UDP datagram for the NIC the demux's fast path recognises
    /// goes straight to [`Core::serve`], every other frame to the general classifier.
    fn process(&mut self, descriptor: Descriptor) {
        let runtime = self.runtime;
        let port = usize::from(descriptor.port);
        let bytes = runtime.pool.bytes(&descriptor.frame);
        let frame = bytes.get(..usize::from(descriptor.len)).unwrap_or_default();
        let mac = self.port_mac(port);
        let Some(datagram) = demux::fast::nic_udp(frame, mac, runtime.addresses.nic_ip) else {
            return self.process_general(descriptor);
        };
        let payload = offset_in(frame, datagram.payload);
        let disposition = self.serve(port, &datagram);
        self.settle(descriptor, disposition, payload);
    }

    /// Gives back, parks or sets aside (with its UDP data at `payload`) a frame whose datagram
    /// [`Core::serve`] has dealt with.
    #[inline]
    fn settle(&mut self, descriptor: Descriptor, disposition: Disposition, payload: (u16, u16)) {
        match disposition {
            Disposition::Done => self.release(descriptor.frame),
            Disposition::Park => self.park(descriptor),
            Disposition::Call(slot) => self.defer_call(descriptor, slot, payload),
        }
    }

    /// A frame the fast path left: the general classifier's verdict, carried out.
    #[inline(never)]
    fn process_general(&mut self, descriptor: Descriptor) {
        let runtime = self.runtime;
        let counters = self.counters();
        let port = usize::from(descriptor.port);
        let bytes = runtime.pool.bytes(&descriptor.frame);
        let frame = bytes.get(..usize::from(descriptor.len)).unwrap_or_default();
        match demux::try_classify(frame, self.port_mac(port), &runtime.addresses) {
            Ok(Verdict::Arp(request)) => self.answer_arp(port, &request),
            Ok(Verdict::Echo {
                source_mac,
                source,
                identifier,
                sequence,
                data,
            }) => {
                let reply = IcmpRepr::EchoReply {
                    identifier,
                    sequence,
                    data,
                };
                self.answer_echo(port, source_mac, source, &reply);
            }
            Ok(Verdict::Nic(ref datagram)) => {
                let payload = offset_in(frame, datagram.payload);
                let disposition = self.serve(port, datagram);
                return self.settle(descriptor, disposition, payload);
            }
            Ok(Verdict::Host(ref datagram)) => self.forward_to_host(port, datagram),
            Ok(Verdict::TcpReset {
                source_mac,
                source,
                segment,
                payload_len,
            }) => self.reset(port, source_mac, source, &segment, payload_len),
            Ok(Verdict::Drop(reason)) | Err(reason) => counters.drop(reason),
        }
        self.release(descriptor.frame);
    }

    fn answer_arp(&mut self, port: usize, request: &ArpRepr) {
        let mac = self.port_mac(port);
        let reply = request.reply_from(mac);
        let ethernet = EthernetRepr {
            source: mac,
            destination: request.sender_mac,
            ethertype: EtherType::Arp,
        };
        let built = ethernet
            .emit(self.tx_bytes())
            .and_then(|rest| reply.emit(rest));
        if let Ok(len) = built {
            self.counters().arp_replies.increment();
            self.transmit(port, ethernet::HEADER_LEN + len);
        } else {
            self.counters().drop(DropReason::ReplyTooLarge);
        }
    }

    fn answer_echo(
        &mut self,
        port: usize,
        mac: MacAddress,
        destination: Ipv4Address,
        reply: &IcmpRepr<'_>,
    ) {
        let Some(len) = self
            .tx_bytes()
            .get_mut(L4_OFFSET..)
            .and_then(|area| reply.emit(area).ok())
        else {
            self.counters().drop(DropReason::ReplyTooLarge);
            return;
        };
        let source = self.runtime.addresses.nic_ip;
        if self.send_ipv4(port, mac, source, destination, IpProtocol::Icmp, len) {
            self.counters().echo_replies.increment();
        }
    }

    fn reset(
        &mut self,
        port: usize,
        mac: MacAddress,
        destination: Ipv4Address,
        segment: &TcpRepr,
        payload_len: usize,
    ) {
        let source = self.runtime.addresses.nic_ip;
        let reset = segment.reset_for(payload_len);
        let area = self.tx_bytes().get_mut(L4_OFFSET..).unwrap_or_default();
        let Ok(len) = reset.emit_in_place(area, 0, source, destination) else {
            self.counters().drop(DropReason::ReplyTooLarge);
            return;
        };
        if self.send_ipv4(port, mac, source, destination, IpProtocol::Tcp, len) {
            self.counters().tcp_resets.increment();
        }
    }

    /// A datagram for the NIC: to the service routed on its port (later, with the rest of the
    /// batch's requests to it), the host, or the agent.
    fn serve(&mut self, port: usize, datagram: &Datagram<'_>) -> Disposition {
        let runtime = self.runtime;
        self.learn(port, datagram);
        let routes = &mut self.routes;
        match runtime
            .services
            .route_cached(routes, datagram.destination.port)
        {
            Some(Route::Local(slot)) => return Disposition::Call(slot),
            Some(Route::Host) => self.forward_to_host(port, datagram),
            Some(Route::Agent) => self.command(port, datagram),
            Some(Route::Parked(_)) => return Disposition::Park,
            None => self.counters().drop(DropReason::PortClosed),
        }
        Disposition::Done
    }

    /// Sets a request aside for its service's turn.
    fn defer_call(&mut self, request: Descriptor, slot: usize, payload: (u16, u16)) {
        if self.calls.is_full() {
            self.run_calls();
        }
        let call = Call {
            request,
            slot: slot as u16,
            payload,
            answered: None,
        };
        if let Err(call) = self.calls.push(call) {
            self.release(call.request.frame);
        }
    }

    /// Runs the deferred requests, every service's in arrival order, one service after the
    /// other; then queues the replies in arrival order.
    fn run_calls(&mut self) {
        let mut ran: u64 = 0;
        for first in 0..self.calls.len() {
            if ran & (1 << first) == 0 {
                ran |= self.run_service(first);
            }
        }
        for call in core::mem::take(&mut self.calls) {
            self.reply(call);
        }
    }

    /// Runs, under one hold of the service's lock, every deferred request from `first` on that
    /// is for the service of request `first`, and counts them with the board cycles the whole
    /// run took (two reads of the cycle counter per run, not per request). Returns the set of
    /// requests it ran, as a bit mask of their indices.
    fn run_service(&mut self, first: usize) -> u64 {
        let runtime = self.runtime;
        let Some(slot) = self.calls.get(first).map(|call| call.slot) else {
            return 0;
        };
        let mut mine: u64 = 0;
        for (index, call) in self.calls.iter().enumerate().skip(first) {
            if call.slot == slot {
                mine |= 1 << index;
            }
        }
        let mut context = Context {
            engines: runtime.engines,
            now_ns: self.now_ns,
            core: self.id as u16,
        };
        let calls = &mut self.calls[first..];
        let mine_here = mine >> first;
        let outcome = runtime.services.with_service(usize::from(slot), |service| {
            let (mut requests, mut errors) = (0u64, 0u64);
            let started = runtime.board.cycles();
            for (index, call) in calls.iter_mut().enumerate() {
                if mine_here & (1 << index) == 0 {
                    continue;
                }
                let (start, len) = (usize::from(call.payload.0), usize::from(call.payload.1));
                let at = reply_offset(usize::from(call.request.len));
                let buffer = runtime.pool.bytes_mut(&mut call.request.frame);
                let (request, response) = buffer.split_at_mut_checked(at).unwrap_or_default();
                let request = request.get(start..start + len).unwrap_or_default();
                let response = response
                    .get_mut(UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + MAX_UDP_PAYLOAD)
                    .unwrap_or_default();
                let len = match service.handle(&mut context, request, response) {
                    Ok(len) => len.min(MAX_UDP_PAYLOAD),
                    Err(error) => {
                        errors += 1;
                        error.write_response(response)
                    }
                };
                call.answered = Some(len as u16);
                requests += 1;
            }
            let elapsed = runtime.board.cycles().wrapping_sub(started);
            (requests, errors, elapsed)
        });
        if let Some((requests, errors, elapsed)) = outcome {
            self.counters().service_requests.add(requests);
            runtime
                .services
                .record(self.id, usize::from(slot), requests, errors, elapsed);
        }
        mine
    }

    /// Writes the headers of the reply to a request that has run in front of its response
    /// (in the request's buffer, after the request) and queues it.
    fn reply(&mut self, call: Call) {
        let Call {
            request,
            payload,
            answered,
            ..
        } = call;
        let Descriptor {
            mut frame,
            len,
            port,
        } = request;
        let port = usize::from(port);
        let Some(answer) = answered else {
            // The service was removed between the route lookup and its turn.
            self.counters().drop(DropReason::PortClosed);
            self.release(frame);
            return;
        };
        let at = reply_offset(usize::from(len));
        let source_mac = self.port_mac(port);
        let udp_offset = usize::from(payload.0).wrapping_sub(udp::HEADER_LEN);
        let buffer = self.runtime.pool.bytes_mut(&mut frame);
        let (request, reply) = buffer.split_at_mut_checked(at).unwrap_or_default();
        // The request was parsed as a UDP datagram with its data at `payload`: its headers
        // are there.
        let built = match UdpFrameRepr::reply_to(request, udp_offset, source_mac) {
            Some(repr) => repr
                .emit_in_place(reply, usize::from(answer))
                .map(|reply_len| ethernet::pad_to_minimum(reply, reply_len))
                .map_err(|_| DropReason::ReplyTooLarge),
            None => Err(DropReason::Malformed(Layer::Udp, wire::Error::Truncated)),
        };
        match built {
            Ok(reply_len) => self.push_outgoing(port, frame, at, reply_len),
            Err(reason) => {
                self.counters().drop(reason);
                self.release(frame);
            }
        }
    }

    /// Holds a request for a stopped service until its port is routed again.
    fn park(&mut self, descriptor: Descriptor) {
        let refused = self.runtime.parking.lock().push_back(descriptor);
        match refused {
            Ok(()) => self.counters().parked.increment(),
            Err(descriptor) => {
                self.counters().drop(DropReason::ParkingFull);
                self.release(descriptor.frame);
            }
        }
    }

    /// Hands every parked request back to the traffic manager, to be classified again under
    /// the new routes (those still parked come back to parking).
    fn release_parked(&mut self) {
        let runtime = self.runtime;
        let mut parking = runtime.parking.lock();
        for _ in 0..parking.len() {
            let Some(descriptor) = parking.pop_front() else {
                break;
            };
            if let Err(back) = self.dispatch(descriptor) {
                let _ = parking.push_back(back);
            }
        }
    }

    /// An orchestrator command: carry it out and answer.
    fn command(&mut self, port: usize, datagram: &Datagram<'_>) {
        let runtime = self.runtime;
        let Some(agent) = runtime.agent.as_ref() else {
            self.counters().drop(DropReason::PortClosed);
            return;
        };
        let answer = self
            .tx_bytes()
            .get_mut(UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + MAX_UDP_PAYLOAD)
            .unwrap_or_default();
        let (len, release) = agent.execute(&runtime.services, datagram.payload, answer);
        self.counters().commands.increment();
        if release {
            self.release_parked();
        }
        self.send_udp(port, &reversed(datagram), len);
    }

    /// Core 0's agent duty: the heartbeat, when due.
    fn agent_tick(&mut self, now_ns: u64) {
        let runtime = self.runtime;
        let Some(agent) = runtime.agent.as_ref() else {
            return;
        };
        if !agent.heartbeat_due(now_ns) {
            return;
        }
        let counters = runtime.counters();
        let mut link_bits_per_second = [0; crate::platform::MAX_PORTS];
        for (rate, port) in link_bits_per_second.iter_mut().zip(&runtime.ports) {
            *rate = port.device.lock().link_bits_per_second();
        }
        let beat = agent.heartbeat(&Measurements {
            now_ns,
            cycles: runtime.board.cycles(),
            cores: runtime.counters.len(),
            depth: runtime.tm.take_depth_interval(),
            counters: &counters,
            link_bits_per_second,
            services: &runtime.services,
        });
        let Some(controller) = agent.config().controller else {
            return;
        };
        let Some(hop) = runtime.neighbours.lookup(controller.ip) else {
            self.counters().drop(DropReason::HostDatagramUnroutable);
            return;
        };
        let bytes = beat.encode();
        let Some(area) = self
            .tx_bytes()
            .get_mut(UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + bytes.len())
        else {
            return;
        };
        area.copy_from_slice(&bytes);
        let datagram = Datagram {
            source_mac: hop.mac,
            source: Endpoint {
                ip: runtime.addresses.nic_ip,
                port: agent.config().port,
            },
            destination: controller,
            payload: &[],
        };
        self.send_udp(usize::from(hop.port), &datagram, bytes.len());
    }

    /// Remembers where the sender of a datagram for the NIC or the host is: the next hop of
    /// the host's replies to it and of the agent's heartbeats, if it is the controller.
    fn learn(&mut self, port: usize, datagram: &Datagram<'_>) {
        let hop = NextHop {
            mac: datagram.source_mac,
            port: port as u8,
        };
        let neighbours = &self.runtime.neighbours;
        neighbours.learn_once(&mut self.learned, datagram.source.ip, hop);
    }

    /// A datagram for the host: over the host path, remembering where its sender is.
    fn forward_to_host(&mut self, port: usize, datagram: &Datagram<'_>) {
        let runtime = self.runtime;
        self.learn(port, datagram);
        let meta = DatagramMeta {
            remote: datagram.source,
            local: datagram.destination,
            flow: flow_of(&datagram.source, &datagram.destination),
        };
        let sent = runtime.host.lock().send_to_host(&meta, datagram.payload);
        let counters = self.counters();
        match sent {
            Ok(()) => counters.to_host.increment(),
            Err(HostPathError::Full) => counters.drop(DropReason::HostPathFull),
            Err(HostPathError::TooLarge) => counters.drop(DropReason::HostDatagramUnroutable),
            Err(HostPathError::Disconnected) => counters.drop(DropReason::HostPathDisconnected),
        }
    }

    /// Datagrams the host queued for the wire, if no other core is taking them.
    fn receive_from_host(&mut self) -> usize {
        let runtime = self.runtime;
        let Some(mut host) = runtime.host.try_lock() else {
            return 0;
        };
        let mut sent = 0;
        while sent < BURST {
            let area = self
                .tx_bytes()
                .get_mut(UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + MAX_UDP_PAYLOAD)
                .unwrap_or_default();
            let Some((meta, len)) = host.receive_from_host(area) else {
                break;
            };
            sent += 1;
            let hop = runtime.neighbours.lookup(meta.remote.ip);
            let (Some(hop), true) = (hop, len <= MAX_UDP_PAYLOAD) else {
                self.counters().drop(DropReason::HostDatagramUnroutable);
                continue;
            };
            let datagram = Datagram {
                source_mac: hop.mac,
                source: meta.local,
                destination: meta.remote,
                payload: &[],
            };
            if self.send_udp(usize::from(hop.port), &datagram, len) {
                self.counters().from_host.increment();
            }
        }
        sent
    }

    /// Sends the `len` bytes of UDP data already in the transmit buffer from
    /// `datagram.source` to `datagram.destination` at `datagram.source_mac`.
    fn send_udp(&mut self, port: usize, datagram: &Datagram<'_>, len: usize) -> bool {
        let source_mac = self.port_mac(port);
        match build_udp(self.tx_bytes(), source_mac, datagram, len) {
            Ok(len) => self.transmit(port, len),
            Err(reason) => {
                self.counters().drop(reason);
                false
            }
        }
    }

    /// Puts Ethernet and IPv4 headers in front of the `l4_len` bytes at [`L4_OFFSET`] of the
    /// transmit buffer and sends the frame.
    fn send_ipv4(
        &mut self,
        port: usize,
        mac: MacAddress,
        source: Ipv4Address,
        destination: Ipv4Address,
        protocol: IpProtocol,
        l4_len: usize,
    ) -> bool {
        let ip = Ipv4Repr {
            source,
            destination,
            protocol,
            payload_len: l4_len,
            ttl: ipv4::DEFAULT_TTL,
        };
        let our_mac = self.port_mac(port);
        match build_ipv4(self.tx_bytes(), our_mac, mac, &ip) {
            Ok(len) => self.transmit(port, len),
            Err(reason) => {
                self.counters().drop(reason);
                false
            }
        }
    }

    /// Sends the first `len` bytes of the transmit buffer on `port` (with the next burst).
    fn transmit(&mut self, port: usize, len: usize) -> bool {
        let Some(frame) = self.tx.take() else {
            self.counters().drop(DropReason::NoBuffer);
            return false;
        };
        self.queue(port, frame, len);
        true
    }

    /// Queues the first `len` bytes of `frame` for `port`, padded to the minimum frame.
    fn queue(&mut self, port: usize, mut frame: FrameToken, len: usize) {
        let len = ethernet::pad_to_minimum(self.runtime.pool.bytes_mut(&mut frame), len);
        self.push_outgoing(port, frame, 0, len);
    }

    /// Queues the `len` bytes from `start` of `frame` (a whole frame, padded) for `port`.
    #[inline]
    fn push_outgoing(&mut self, port: usize, frame: FrameToken, start: usize, len: usize) {
        if self.outgoing.is_full() {
            self.flush();
        }
        let outgoing = Outgoing {
            frame,
            start: start as u16,
            len: len as u16,
            port: port as u8,
        };
        if let Err(outgoing) = self.outgoing.push(outgoing) {
            self.release(outgoing.frame);
        }
    }

    /// Hands the queued frames to their ports, one burst per port, and takes their buffers
    /// back.
    fn flush(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        let runtime = self.runtime;
        let counters = self.counters();
        for (index, state) in runtime.ports.iter().enumerate() {
            let mut frames: heapless::Vec<&[u8], BURST> = heapless::Vec::new();
            let mut bytes = 0;
            for outgoing in self.outgoing.iter() {
                if usize::from(outgoing.port) != index {
                    continue;
                }
                let buffer = runtime.pool.bytes(&outgoing.frame);
                let start = usize::from(outgoing.start);
                let frame = buffer
                    .get(start..start + usize::from(outgoing.len))
                    .unwrap_or_default();
                bytes += frame.len();
                // Cannot fail: `outgoing` holds at most a burst.
                let _ = frames.push(frame);
            }
            if frames.is_empty() {
                continue;
            }
            let sent = state
                .device
                .lock()
                .transmit_burst(&frames)
                .min(frames.len());
            let unsent = frames.get(sent..).unwrap_or_default();
            bytes -= unsent.iter().map(|frame| frame.len()).sum::<usize>();
            counters.tx_frames[index].add(sent as u64);
            counters.tx_bytes[index].add(bytes as u64);
            counters.drop_many(DropReason::TransmitFailed, unsent.len() as u64);
        }
        let ports = runtime.ports.len();
        let mut nowhere = 0;
        while let Some(outgoing) = self.outgoing.pop() {
            nowhere += u64::from(usize::from(outgoing.port) >= ports);
            self.release(outgoing.frame);
        }
        counters.drop_many(DropReason::TransmitFailed, nowhere);
    }
}

/// Builds a UDP frame around the `len` bytes of data already at [`UDP_PAYLOAD_OFFSET`] of
/// `buffer`, from `datagram.source` at `source_mac` to `datagram.destination` at
/// `datagram.source_mac`; returns the frame length.
fn build_udp(
    buffer: &mut [u8],
    source_mac: MacAddress,
    datagram: &Datagram<'_>,
    len: usize,
) -> Result<usize, DropReason> {
    let repr = UdpFrameRepr {
        source_mac,
        destination_mac: datagram.source_mac,
        source: datagram.source.ip,
        destination: datagram.destination.ip,
        udp: UdpRepr {
            source_port: datagram.source.port,
            destination_port: datagram.destination.port,
        },
    };
    repr.emit_in_place(buffer, len)
        .map_err(|_| DropReason::ReplyTooLarge)
}

/// Puts Ethernet and IPv4 headers in front of the transport bytes at [`L4_OFFSET`] of
/// `buffer`; returns the frame length.
fn build_ipv4(
    buffer: &mut [u8],
    source_mac: MacAddress,
    destination_mac: MacAddress,
    ip: &Ipv4Repr,
) -> Result<usize, DropReason> {
    let ethernet = EthernetRepr {
        source: source_mac,
        destination: destination_mac,
        ethertype: EtherType::Ipv4,
    };
    ethernet
        .emit(buffer)
        .and_then(|rest| ip.emit(rest))
        .map_err(|_| DropReason::ReplyTooLarge)?;
    Ok(L4_OFFSET + ip.payload_len)
}

/// The addressing of the reply to `request`: from where it went, back to where it came from.
fn reversed(request: &Datagram<'_>) -> Datagram<'static> {
    Datagram {
        source_mac: request.source_mac,
        source: request.destination,
        destination: request.source,
        payload: &[],
    }
}

/// Where `part`, a sub-slice of `whole` (a frame buffer, so shorter than 64 KiB), starts in it
/// and how long it is.
fn offset_in(whole: &[u8], part: &[u8]) -> (u16, u16) {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    (start as u16, part.len() as u16)
}

/// Whether a request is finished with or must wait for its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Disposition {
    /// Answered, forwarded or dropped: its buffer can be reused.
    Done,
    /// Its service is stopped: hold the frame.
    Park,
    /// For the local service in this slot: run it with the rest of the batch's requests.
    Call(usize),
}

/// The [`steering::flow_hash`] of the frame `descriptor` holds.
#[inline]
fn flow_hash_of_frame(pool: &FramePool, descriptor: &Descriptor) -> u32 {
    let bytes = pool.bytes(&descriptor.frame);
    steering::flow_hash(bytes.get(..usize::from(descriptor.len)).unwrap_or_default())
}

/// The flow id of a datagram between two end points (symmetric).
pub fn flow_of(a: &Endpoint, b: &Endpoint) -> u32 {
    steering::flow_hash_of(a.ip.to_bits(), a.port, b.ip.to_bits(), b.port, 17)
}
