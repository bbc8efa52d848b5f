//! The runtime: configuration, start-up, and the run-to-completion loop of each core.
//!
//! One [`Runtime`] is shared by all cores; each core calls [`Runtime::run_core`] (or drives a
//! [`Core`] by hand with [`Core::poll`]). One poll of a core:
//! 1. samples the traffic manager's queue depth if a sample is due;
//! 2. receives a burst from each port no other core is receiving from, and steers each frame
//!    to a core queue (the traffic manager);
//! 3. sends on the wire what the host queued for it, if no other core is doing so;
//! 4. runs a burst of its own queue to completion (or, idle, of the busiest queue):
//!    demux, then ARP, ICMP echo, a service, the host path, or a counted drop.
//!
//! After [`Runtime::new`] nothing allocates: frames live in the pool, replies are built in a
//! per-core buffer, every queue is bounded.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use microservices::engines::Engines;
use microservices::{Context, Service};

use crate::agent::{Agent, AgentConfig, Measurements};
use crate::counters::{CoreCounters, CounterTotals, DropReason};
use crate::demux::{self, Addresses, Datagram, Verdict};
use crate::neighbours::{LastLearned, Neighbours, NextHop};
use crate::platform::{Board, DatagramMeta, Devices, Endpoint, HostPath, HostPathError, Port};
use crate::service_table::{Route, ServiceTable, TableError};
use crate::tm::pool::{FramePool, FrameToken, FRAME_CAPACITY};
use crate::tm::steering::{self, Steering};
use crate::tm::{Descriptor, TrafficManager, BURST, QUEUE_DEPTH};
use crate::wire::{
    ethernet, ipv4, udp, ArpRepr, EtherType, EthernetRepr, IcmpRepr, IpProtocol, Ipv4Address,
    Ipv4Repr, MacAddress, TcpRepr, UdpRepr,
};

/// Offset of the IPv4 header in a frame.
const IP_OFFSET: usize = ethernet::HEADER_LEN;
/// Offset of the transport header in a frame the runtime builds (no IP options).
const L4_OFFSET: usize = IP_OFFSET + ipv4::HEADER_LEN;
/// Offset of the UDP data in a frame the runtime builds.
const UDP_PAYLOAD_OFFSET: usize = L4_OFFSET + udp::HEADER_LEN;
/// Largest UDP payload in one 1500-byte IP packet.
pub const MAX_UDP_PAYLOAD: usize = 1500 - ipv4::HEADER_LEN - udp::HEADER_LEN;

/// Everything the runtime needs to start.
pub struct Config {
    /// The MAC and IPs this NIC answers for.
    pub addresses: Addresses,
    /// How frames are steered to cores.
    pub steering: Steering,
    /// The engines services call (hardware-backed on the NIC).
    pub engines: &'static dyn Engines,
    /// Services deployed at start-up, each with the UDP port of the NIC IP it serves.
    pub services: Vec<(u16, Box<dyn Service>)>,
    /// Frame buffers in the pool; at least enough to fill every core queue once.
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
    /// Frames received but not yet accepted by a core queue; whoever holds this lock is the
    /// port's receiver.
    backlog: spin::Mutex<heapless::Deque<Descriptor, BURST>>,
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

impl<B: Board> Runtime<B> {
    /// Takes the board's devices, allocates the frame pool and queues, deploys the start-up
    /// services. The only allocations the runtime makes happen here.
    pub fn new(config: Config, mut board: B) -> Result<Self, RuntimeError> {
        let cores = board.core_count().max(1);
        let needed = cores * (QUEUE_DEPTH + 2 * BURST) + PARKING;
        if config.frames < needed {
            return Err(RuntimeError::TooFewFrames {
                frames: config.frames,
                needed,
            });
        }
        let Devices { ports, host } = board.take_devices();
        if ports.is_empty() {
            return Err(RuntimeError::NoPort);
        }
        let ports = ports
            .into_iter()
            .map(|device| PortState {
                device: spin::Mutex::new(device),
                backlog: spin::Mutex::new(heapless::Deque::new()),
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
            tx: Box::new([0; FRAME_CAPACITY]),
            now_ns: 0,
            learned: LastLearned::default(),
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

    /// The addresses this runtime answers for.
    pub fn addresses(&self) -> &Addresses {
        &self.addresses
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

/// One core's private state: its free-buffer cache, its batch, its transmit buffer.
pub struct Core<'r, B: Board> {
    runtime: &'r Runtime<B>,
    id: usize,
    free: heapless::Vec<FrameToken, { 2 * BURST }>,
    batch: heapless::Deque<Descriptor, BURST>,
    tx: Box<[u8; FRAME_CAPACITY]>,
    /// The time at the start of this poll (what services see as "now").
    now_ns: u64,
    /// The sender this core last taught the neighbour table.
    learned: LastLearned,
}

impl<B: Board> Drop for Core<'_, B> {
    fn drop(&mut self) {
        self.runtime.pool.give_all(&mut self.free);
        while let Some(descriptor) = self.batch.pop_front() {
            self.runtime.pool.give(descriptor.frame);
        }
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

    /// One round of the loop; returns how many frames and datagrams it moved (0: idle).
    pub fn poll(&mut self) -> usize {
        let runtime = self.runtime;
        let now_ns = runtime.board.now_ns();
        self.now_ns = now_ns;
        runtime.tm.sample_depth(now_ns);
        if self.id == 0 {
            self.agent_tick(now_ns);
        }
        let received = self.receive();
        let from_host = self.receive_from_host();
        let processed = self.run_to_completion();
        received + from_host + processed
    }

    /// A buffer from this core's cache, refilled from the pool in bursts.
    fn take_buffer(&mut self) -> Option<FrameToken> {
        if self.free.is_empty() {
            self.runtime.pool.take(BURST, &mut self.free);
        }
        self.free.pop()
    }

    /// Gives a buffer back to this core's cache, spilling half to the pool when full.
    fn release(&mut self, token: FrameToken) {
        if let Err(token) = self.free.push(token) {
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
    }

    /// The traffic manager's input: frames from every port this core can take, to the queues.
    fn receive(&mut self) -> usize {
        let runtime = self.runtime;
        let mut moved = 0;
        for (index, port) in runtime.ports.iter().enumerate() {
            let Some(mut backlog) = port.backlog.try_lock() else {
                continue;
            };
            while let Some(descriptor) = backlog.pop_front() {
                match self.dispatch(descriptor) {
                    Ok(()) => moved += 1,
                    Err(back) => {
                        let _ = backlog.push_front(back);
                        break;
                    }
                }
            }
            if !backlog.is_empty() {
                continue;
            }
            let mut received: heapless::Vec<Descriptor, BURST> = heapless::Vec::new();
            {
                let mut device = port.device.lock();
                while !received.is_full() {
                    let Some(mut token) = self.take_buffer() else {
                        break;
                    };
                    let buffer = runtime.pool.bytes_mut(&mut token);
                    let Some(len) = device.receive(buffer).filter(|&len| len <= FRAME_CAPACITY)
                    else {
                        self.release(token);
                        break;
                    };
                    let _ = received.push(Descriptor {
                        frame: token,
                        len: len as u16,
                        port: index as u8,
                    });
                }
            }
            let counters = self.counters();
            counters.rx_frames[index].add(received.len() as u64);
            let bytes: u64 = received.iter().map(|d| u64::from(d.len)).sum();
            counters.rx_bytes[index].add(bytes);
            let mut held_back = false;
            for descriptor in received {
                if held_back {
                    let _ = backlog.push_back(descriptor);
                    continue;
                }
                match self.dispatch(descriptor) {
                    Ok(()) => moved += 1,
                    Err(back) => {
                        // The backlog was empty and holds a burst: this cannot fail.
                        let _ = backlog.push_back(back);
                        held_back = true;
                    }
                }
            }
        }
        moved
    }

    fn dispatch(&self, descriptor: Descriptor) -> Result<(), Descriptor> {
        let runtime = self.runtime;
        let flow = match runtime.tm.steering() {
            Steering::FlowAffine => {
                let bytes = runtime.pool.bytes(&descriptor.frame);
                steering::flow_hash(bytes.get(..usize::from(descriptor.len)).unwrap_or_default())
            }
            Steering::RoundRobin => 0,
        };
        runtime.tm.dispatch(flow, descriptor)?;
        self.counters().dispatched.increment();
        Ok(())
    }

    /// Runs a burst of this core's queue (or, when it is empty, of the busiest one) to
    /// completion.
    fn run_to_completion(&mut self) -> usize {
        let runtime = self.runtime;
        runtime.tm.pull(self.id, &mut self.batch);
        if self.batch.is_empty() {
            let stolen = runtime.tm.steal(self.id, &mut self.batch);
            self.counters().stolen.add(stolen as u64);
        }
        let mut done = 0;
        while let Some(descriptor) = self.batch.pop_front() {
            self.process(descriptor);
            done += 1;
        }
        done
    }

    fn process(&mut self, descriptor: Descriptor) {
        let runtime = self.runtime;
        let counters = self.counters();
        counters.processed.increment();
        let port = usize::from(descriptor.port);
        let bytes = runtime.pool.bytes(&descriptor.frame);
        let frame = bytes.get(..usize::from(descriptor.len)).unwrap_or_default();
        match demux::classify(frame, &runtime.addresses) {
            Verdict::Arp(request) => self.answer_arp(port, &request),
            Verdict::Echo {
                source_mac,
                source,
                identifier,
                sequence,
                data,
            } => {
                let reply = IcmpRepr::EchoReply {
                    identifier,
                    sequence,
                    data,
                };
                self.answer_echo(port, source_mac, source, &reply);
            }
            Verdict::Nic(datagram) => {
                self.learn(port, &datagram);
                if self.serve(port, &datagram) == Disposition::Park {
                    self.park(descriptor);
                    return;
                }
            }
            Verdict::Host(datagram) => self.forward_to_host(port, &datagram),
            Verdict::TcpReset {
                source_mac,
                source,
                segment,
                payload_len,
            } => self.reset(port, source_mac, source, &segment, payload_len),
            Verdict::Drop(reason) => counters.drop(reason),
        }
        self.release(descriptor.frame);
    }

    fn answer_arp(&mut self, port: usize, request: &ArpRepr) {
        let mac = self.runtime.addresses.mac;
        let reply = request.reply_from(mac);
        let ethernet = EthernetRepr {
            source: mac,
            destination: request.sender_mac,
            ethertype: EtherType::Arp,
        };
        let built = ethernet
            .emit(&mut self.tx[..])
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
            .tx
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
        let area = self.tx.get_mut(L4_OFFSET..).unwrap_or_default();
        let Ok(len) = reset.emit_in_place(area, 0, source, destination) else {
            self.counters().drop(DropReason::ReplyTooLarge);
            return;
        };
        if self.send_ipv4(port, mac, source, destination, IpProtocol::Tcp, len) {
            self.counters().tcp_resets.increment();
        }
    }

    /// A datagram for the NIC: to the service routed on its port, the host, or the agent.
    fn serve(&mut self, port: usize, datagram: &Datagram<'_>) -> Disposition {
        let runtime = self.runtime;
        match runtime.services.route(datagram.destination.port) {
            Some(Route::Local(slot)) => self.call_service(port, slot, datagram),
            Some(Route::Host) => self.forward_to_host(port, datagram),
            Some(Route::Agent) => self.command(port, datagram),
            Some(Route::Parked(_)) => return Disposition::Park,
            None => self.counters().drop(DropReason::PortClosed),
        }
        Disposition::Done
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
        let answer = &mut self.tx[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + MAX_UDP_PAYLOAD];
        let (len, release) = agent.execute(&runtime.services, datagram.payload, answer);
        self.counters().commands.increment();
        if release {
            self.release_parked();
        }
        self.answer(port, datagram, len);
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
        self.tx[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + bytes.len()].copy_from_slice(&bytes);
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

    fn call_service(&mut self, port: usize, slot: usize, datagram: &Datagram<'_>) {
        let runtime = self.runtime;
        let core = self.id as u16;
        let response = &mut self.tx[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + MAX_UDP_PAYLOAD];
        let now_ns = self.now_ns;
        let outcome = runtime.services.with_service(slot, |service| {
            let started = runtime.board.cycles();
            let mut context = Context {
                engines: runtime.engines,
                now_ns,
                core,
            };
            let result = service.handle(&mut context, datagram.payload, response);
            let elapsed = runtime.board.cycles().wrapping_sub(started);
            let len = match result {
                Ok(len) => Ok(len.min(MAX_UDP_PAYLOAD)),
                Err(error) => Err(error.write_response(response)),
            };
            (len, elapsed)
        });
        let Some((result, elapsed)) = outcome else {
            self.counters().drop(DropReason::PortClosed);
            return;
        };
        self.counters().service_requests.increment();
        runtime
            .services
            .record(self.id, slot, elapsed, result.is_err());
        let len = result.unwrap_or_else(|len| len);
        self.answer(port, datagram, len);
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
            let area = &mut self.tx[UDP_PAYLOAD_OFFSET..UDP_PAYLOAD_OFFSET + MAX_UDP_PAYLOAD];
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

    /// Answers `request` with the `len` bytes of UDP data already in the transmit buffer.
    fn answer(&mut self, port: usize, request: &Datagram<'_>, len: usize) {
        let reply = Datagram {
            source_mac: request.source_mac,
            source: request.destination,
            destination: request.source,
            payload: &[],
        };
        self.send_udp(port, &reply, len);
    }

    /// Sends the `len` bytes of UDP data already in the transmit buffer from
    /// `datagram.source` to `datagram.destination` at `datagram.source_mac`.
    fn send_udp(&mut self, port: usize, datagram: &Datagram<'_>, len: usize) -> bool {
        let repr = UdpRepr {
            source_port: datagram.source.port,
            destination_port: datagram.destination.port,
        };
        let (source, destination) = (datagram.source.ip, datagram.destination.ip);
        let area = self.tx.get_mut(L4_OFFSET..).unwrap_or_default();
        let Ok(udp_len) = repr.emit_in_place(area, len, source, destination) else {
            self.counters().drop(DropReason::ReplyTooLarge);
            return false;
        };
        let mac = datagram.source_mac;
        self.send_ipv4(port, mac, source, destination, IpProtocol::Udp, udp_len)
    }

    /// Puts Ethernet and IPv4 headers in front of the `l4_len` bytes at [`L4_OFFSET`] and
    /// sends the frame.
    fn send_ipv4(
        &mut self,
        port: usize,
        mac: MacAddress,
        source: Ipv4Address,
        destination: Ipv4Address,
        protocol: IpProtocol,
        l4_len: usize,
    ) -> bool {
        let ethernet = EthernetRepr {
            source: self.runtime.addresses.mac,
            destination: mac,
            ethertype: EtherType::Ipv4,
        };
        let ip = Ipv4Repr {
            source,
            destination,
            protocol,
            payload_len: l4_len,
            ttl: ipv4::DEFAULT_TTL,
        };
        let built = ethernet
            .emit(&mut self.tx[..])
            .and_then(|rest| ip.emit(rest));
        if built.is_err() {
            self.counters().drop(DropReason::ReplyTooLarge);
            return false;
        }
        self.transmit(port, L4_OFFSET + l4_len)
    }

    /// Sends the first `len` bytes of the transmit buffer on `port`, padded to the minimum.
    fn transmit(&mut self, port: usize, len: usize) -> bool {
        let len = ethernet::pad_to_minimum(&mut self.tx[..], len);
        let frame = self.tx.get(..len).unwrap_or_default();
        let counters = self.counters();
        let sent = match self.runtime.ports.get(port) {
            Some(state) => state.device.lock().transmit(frame).is_ok(),
            None => false,
        };
        if sent {
            counters.tx_frames[port].increment();
            counters.tx_bytes[port].add(len as u64);
        } else {
            counters.drop(DropReason::TransmitFailed);
        }
        sent
    }
}

/// Whether a request is finished with or must wait for its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Disposition {
    /// Answered, forwarded or dropped: its buffer can be reused.
    Done,
    /// Its service is stopped: hold the frame.
    Park,
}

/// The flow id of a datagram between two end points (symmetric).
pub fn flow_of(a: &Endpoint, b: &Endpoint) -> u32 {
    steering::flow_hash_of(a.ip.to_bits(), a.port, b.ip.to_bits(), b.port, 17)
}
