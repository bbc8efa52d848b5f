//! A NIC endpoint: the host's end of one NIC's PCIe channel, on its own thread. It polls the
//! NIC-to-host rings, hands UDP requests to the execution engine, sends the replies back on
//! the host-to-NIC rings, bumps the host's heartbeat and watches the NIC's, and counts
//! everything.
//!
//! Nothing is dropped for lack of room: when the runtime's queues are full the endpoint stops
//! taking messages off the channel (the NIC then sees `WouldBlock`, its backpressure), and
//! replies wait in order until the NIC returns credits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::Receiver as ReplyReceiver;
use pcie_channel::message::MessageHeader;
use pcie_channel::{ChannelError, ClaimError, EngineSet, MappedChannel, PeerWatch};

use crate::runtime::{BufferPool, Reply, Request, SubmitError, Submitter};

/// Messages taken from the channel per poll.
const BATCH: usize = 32;
/// How long a stopping endpoint keeps sending replies the workers still produce.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A heartbeat or control message from the NIC, for whoever runs the orchestrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlMessage {
    /// Which NIC.
    pub nic: usize,
    /// Heartbeat or control.
    pub kind: pcie_channel::message::Kind,
    /// Flow id it travelled on.
    pub flow: u32,
    /// Payload after the 16-byte header.
    pub payload: Vec<u8>,
}

/// What an endpoint counted (shared, read while it runs).
#[derive(Debug, Default)]
pub struct EndpointCounters {
    /// UDP requests handed to the runtime.
    pub requests: AtomicU64,
    /// Replies sent to the NIC.
    pub replies: AtomicU64,
    /// Heartbeat and control messages received.
    pub control: AtomicU64,
    /// Heartbeat and control messages nobody collected (no control sink, or it is full).
    pub control_dropped: AtomicU64,
    /// Messages whose header did not parse, or of a kind the host does not take.
    pub malformed: AtomicU64,
    /// UDP requests for a port with no service.
    pub no_service: AtomicU64,
    /// Times the runtime's queues were full (the endpoint then stops polling a while).
    pub backpressure: AtomicU64,
    /// Times the NIC had no credit for a reply (it is retried).
    pub reply_would_block: AtomicU64,
    /// Replies abandoned when the endpoint stopped before the NIC took them.
    pub replies_abandoned: AtomicU64,
    /// Whether the NIC's heartbeat moved within the timeout at the last check (1) or not (0).
    pub nic_alive: AtomicU64,
    /// The channel receiver's counts of refused descriptors (corrupt + orphans + skipped).
    pub channel_refused: AtomicU64,
}

/// A snapshot of [`EndpointCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// UDP requests handed to the runtime.
    pub requests: u64,
    /// Replies sent to the NIC.
    pub replies: u64,
    /// Heartbeat and control messages received.
    pub control: u64,
    /// Heartbeat and control messages nobody collected.
    pub control_dropped: u64,
    /// Messages that did not parse or of a kind the host does not take.
    pub malformed: u64,
    /// UDP requests for a port with no service.
    pub no_service: u64,
    /// Times the runtime's queues were full.
    pub backpressure: u64,
    /// Times the NIC had no credit for a reply.
    pub reply_would_block: u64,
    /// Replies abandoned at stop.
    pub replies_abandoned: u64,
    /// Whether the NIC's heartbeat moved within the timeout at the last check.
    pub nic_alive: bool,
    /// Descriptors the channel refused.
    pub channel_refused: u64,
}

impl EndpointCounters {
    /// The current values.
    pub fn snapshot(&self) -> EndpointStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EndpointStats {
            requests: get(&self.requests),
            replies: get(&self.replies),
            control: get(&self.control),
            control_dropped: get(&self.control_dropped),
            malformed: get(&self.malformed),
            no_service: get(&self.no_service),
            backpressure: get(&self.backpressure),
            reply_would_block: get(&self.reply_would_block),
            replies_abandoned: get(&self.replies_abandoned),
            nic_alive: get(&self.nic_alive) != 0,
            channel_refused: get(&self.channel_refused),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// How an endpoint runs.
#[derive(Clone, Copy, Debug)]
pub struct EndpointConfig {
    /// The NIC counts as disconnected after its heartbeat stands still this long.
    pub peer_timeout: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            peer_timeout: Duration::from_secs(1),
        }
    }
}

/// Everything one endpoint thread needs.
pub struct EndpointParts {
    /// Index of the NIC (requests carry it, replies come back by it).
    pub nic: usize,
    /// The channel (already created or attached as the host).
    pub channel: Arc<MappedChannel>,
    /// Where requests go.
    pub submitter: Submitter,
    /// Replies for this NIC.
    pub replies: ReplyReceiver<Reply>,
    /// Shared buffers.
    pub pool: Arc<BufferPool>,
    /// Heartbeats and control messages go here, if anyone listens.
    pub control: Option<crossbeam::channel::Sender<ControlMessage>>,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
    /// Counters.
    pub counters: Arc<EndpointCounters>,
    /// Timeouts.
    pub config: EndpointConfig,
}

/// Starts the endpoint thread. It claims every host-to-NIC engine and the NIC-to-host
/// receiver; it ends when `stop` is set (after sending the replies still coming, for a while)
/// and returns the claim error if the channel's endpoints were taken.
pub fn spawn(parts: EndpointParts) -> std::io::Result<JoinHandle<Result<(), ClaimError>>> {
    std::thread::Builder::new()
        .name(format!("e3-nic{}", parts.nic))
        .spawn(move || run(parts))
}

fn run(parts: EndpointParts) -> Result<(), ClaimError> {
    let channel = parts.channel.clone();
    let engines = EngineSet::first(channel.geometry().engines as usize);
    let mut tx = channel.sender(engines)?;
    let mut rx = channel.receiver()?;
    let mut state = Endpoint {
        parts,
        backlog: VecDeque::new(),
        outbox: VecDeque::new(),
        taken: Vec::with_capacity(BATCH),
    };
    let started = Instant::now();
    let mut watch = PeerWatch::new(state.parts.config.peer_timeout.as_nanos() as u64);
    let mut idle = 0u32;
    while !state.parts.stop.load(Ordering::Relaxed) {
        channel.beat();
        let alive = channel
            .check_peer(&mut watch, started.elapsed().as_nanos() as u64)
            .is_alive();
        state
            .parts
            .counters
            .nic_alive
            .store(u64::from(alive), Ordering::Relaxed);
        let moved = state.submit_backlog() + state.poll(&mut rx) + state.send_replies(&mut tx);
        if moved == 0 {
            idle = idle.saturating_add(1);
            back_off(idle);
        } else {
            idle = 0;
        }
    }
    state.finish(&mut tx, &rx);
    Ok(())
}

/// Spins briefly, then yields, then sleeps: quick to answer a burst, cheap when idle.
fn back_off(idle: u32) {
    if idle < 64 {
        std::hint::spin_loop();
    } else if idle < 256 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(50));
    }
}

struct Endpoint {
    parts: EndpointParts,
    /// Requests taken off the channel, not yet accepted by the runtime (in order).
    backlog: VecDeque<Request>,
    /// Replies not yet accepted by the channel (in order).
    outbox: VecDeque<Reply>,
    /// Messages of one poll, classified after it.
    taken: Vec<(u32, Vec<u8>)>,
}

impl Endpoint {
    /// Hands queued requests to the runtime until it is full; returns how many it took.
    fn submit_backlog(&mut self) -> usize {
        let mut accepted = 0;
        while let Some(request) = self.backlog.pop_front() {
            match self.parts.submitter.submit(request) {
                Ok(()) => accepted += 1,
                Err(SubmitError::Full(request)) => {
                    EndpointCounters::add(&self.parts.counters.backpressure, 1);
                    self.backlog.push_front(request);
                    break;
                }
                Err(SubmitError::NoService(request) | SubmitError::Stopped(request)) => {
                    EndpointCounters::add(&self.parts.counters.no_service, 1);
                    self.parts.pool.put(request.message);
                }
            }
        }
        EndpointCounters::add(&self.parts.counters.requests, accepted as u64);
        accepted
    }

    /// Takes a batch off the channel when the runtime has room; returns how many messages.
    fn poll(&mut self, rx: &mut pcie_channel::Receiver<'_>) -> usize {
        if !self.backlog.is_empty() {
            return 0;
        }
        let pool = &self.parts.pool;
        let taken = &mut self.taken;
        let polled = rx.poll(BATCH, |message| {
            let mut buffer = pool.take();
            buffer.resize(message.len(), 0);
            match message.copy_to(&mut buffer) {
                Ok(_) => taken.push((message.flow(), buffer)),
                Err(_) => pool.put(buffer),
            }
        });
        let n = match polled {
            Ok(n) => n,
            Err(ChannelError::Disconnected) => 0,
            Err(error) => {
                log::warn!("NIC {}: {error}", self.parts.nic);
                0
            }
        };
        self.parts
            .counters
            .channel_refused
            .store(rx.stats().refused(), Ordering::Relaxed);
        let mut taken = std::mem::take(&mut self.taken);
        for (flow, message) in taken.drain(..) {
            self.classify(flow, message);
        }
        self.taken = taken;
        if n > 0 {
            self.submit_backlog();
        }
        n
    }

    /// Puts a UDP request on the backlog; counts and forwards or drops anything else.
    fn classify(&mut self, flow: u32, message: Vec<u8>) {
        let counters = &self.parts.counters;
        let header = match MessageHeader::parse(&message) {
            Ok((header, _)) => header,
            Err(_) => {
                EndpointCounters::add(&counters.malformed, 1);
                self.parts.pool.put(message);
                return;
            }
        };
        match header {
            MessageHeader::UdpRequest(addressing) => {
                if !self.parts.submitter.serves(addressing.dst_port) {
                    EndpointCounters::add(&counters.no_service, 1);
                    self.parts.pool.put(message);
                    return;
                }
                self.backlog.push_back(Request {
                    nic: self.parts.nic,
                    flow,
                    addressing,
                    message,
                });
            }
            MessageHeader::Heartbeat | MessageHeader::Control => {
                EndpointCounters::add(&counters.control, 1);
                let forwarded = self.parts.control.as_ref().is_some_and(|sink| {
                    sink.try_send(ControlMessage {
                        nic: self.parts.nic,
                        kind: header.kind(),
                        flow,
                        payload: message[pcie_channel::message::HEADER_BYTES..].to_vec(),
                    })
                    .is_ok()
                });
                if !forwarded {
                    EndpointCounters::add(&counters.control_dropped, 1);
                }
                self.parts.pool.put(message);
            }
            MessageHeader::UdpReply(_) => {
                // Replies travel host to NIC only.
                EndpointCounters::add(&counters.malformed, 1);
                self.parts.pool.put(message);
            }
        }
    }

    /// Sends waiting replies in order until the NIC has no credit; returns how many went.
    fn send_replies(&mut self, tx: &mut pcie_channel::Sender<'_>) -> usize {
        self.outbox.extend(self.parts.replies.try_iter());
        let mut sent = 0;
        while let Some(reply) = self.outbox.front() {
            match tx.queue(reply.flow, &reply.message) {
                Ok(()) => {
                    sent += 1;
                    if let Some(reply) = self.outbox.pop_front() {
                        self.parts.pool.put(reply.message);
                    }
                }
                Err(ChannelError::WouldBlock) => {
                    EndpointCounters::add(&self.parts.counters.reply_would_block, 1);
                    break;
                }
                Err(error) => {
                    log::warn!("NIC {}: reply not sent: {error}", self.parts.nic);
                    break;
                }
            }
        }
        tx.publish();
        EndpointCounters::add(&self.parts.counters.replies, sent as u64);
        sent
    }

    /// Stops taking requests, then sends the replies the workers still produce until they are
    /// done (their queues drained) or the drain time runs out.
    fn finish(&mut self, tx: &mut pcie_channel::Sender<'_>, rx: &pcie_channel::Receiver<'_>) {
        for request in self.backlog.drain(..) {
            EndpointCounters::add(&self.parts.counters.no_service, 1);
            self.parts.pool.put(request.message);
        }
        // Let the workers finish: our submitter must go for them to see the end.
        self.parts.submitter = Submitter::closed();
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            self.send_replies(tx);
            let workers_done = match self.parts.replies.recv_timeout(Duration::from_millis(1)) {
                Ok(reply) => {
                    self.outbox.push_back(reply);
                    false
                }
                Err(crossbeam::channel::RecvTimeoutError::Disconnected) => true,
                Err(crossbeam::channel::RecvTimeoutError::Timeout) => false,
            };
            if workers_done && self.outbox.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let abandoned = self.outbox.len() + self.parts.replies.len();
                EndpointCounters::add(&self.parts.counters.replies_abandoned, abandoned as u64);
                break;
            }
        }
        self.parts
            .counters
            .channel_refused
            .store(rx.stats().refused(), Ordering::Relaxed);
    }
}
