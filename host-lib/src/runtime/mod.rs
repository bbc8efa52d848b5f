//! The host execution engine: worker threads, each with its own multi-producer single-consumer
//! queue, a service table by UDP port, and requests run to completion.
//!
//! Every service instance lives on one worker (services are spread over the workers when the
//! runtime starts), so a service is never entered twice at once and the requests of one port,
//! hence of one flow, are handled in arrival order. Replies go back on the queue of the NIC the
//! request came from, ready to send: the channel's message header followed by the response.
//! Shutdown is clean: once every [`Submitter`] is dropped the workers finish what is queued and
//! exit.

pub mod pool;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use microservices::engines::SoftwareEngines;
use microservices::{Context, Service};
use pcie_channel::message::{MessageHeader, UdpAddressing, HEADER_BYTES};

pub use pool::BufferPool;

/// Largest response a service may write (bigger answers get `ResponseTooSmall`).
pub const MAX_RESPONSE: usize = 8192;

/// One UDP request from a NIC.
#[derive(Debug)]
pub struct Request {
    /// Which NIC (endpoint index) it came from; the reply goes back there.
    pub nic: usize,
    /// The channel flow id (the NIC's 5-tuple hash); the reply uses it too.
    pub flow: u32,
    /// Client and service addresses.
    pub addressing: UdpAddressing,
    /// The whole channel message (header included; the payload starts at `HEADER_BYTES`).
    pub message: Vec<u8>,
}

impl Request {
    /// The UDP payload.
    pub fn payload(&self) -> &[u8] {
        self.message.get(HEADER_BYTES..).unwrap_or(&[])
    }
}

/// A reply ready for the channel.
#[derive(Debug)]
pub struct Reply {
    /// Flow id of the request.
    pub flow: u32,
    /// Channel message: `UdpReply` header, then the response (status byte first).
    pub message: Vec<u8>,
}

/// Why a request was not queued. The request comes back so nothing is lost.
#[derive(Debug)]
pub enum SubmitError {
    /// No service listens on the request's destination port.
    NoService(Request),
    /// The worker's queue is full: retry later (backpressure).
    Full(Request),
    /// The runtime has stopped.
    Stopped(Request),
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::NoService(r) => {
                write!(f, "no service on UDP port {}", r.addressing.dst_port)
            }
            SubmitError::Full(_) => f.write_str("worker queue full"),
            SubmitError::Stopped(_) => f.write_str("runtime stopped"),
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug)]
pub enum RuntimeError {
    /// Zero workers asked for.
    NoWorkers,
    /// Two services on one port.
    DuplicatePort(u16),
    /// A worker thread could not be started.
    Spawn(std::io::Error),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::NoWorkers => f.write_str("the runtime needs at least one worker"),
            RuntimeError::DuplicatePort(port) => {
                write!(f, "two services on UDP port {port}")
            }
            RuntimeError::Spawn(e) => write!(f, "starting a worker thread: {e}"),
        }
    }
}

impl std::error::Error for RuntimeError {}

/// Counters of one worker (shared, read while it runs).
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Requests handled.
    pub requests: AtomicU64,
    /// Requests whose service answered with an error response.
    pub service_errors: AtomicU64,
    /// Replies whose NIC endpoint was already gone.
    pub orphaned_replies: AtomicU64,
    /// Nanoseconds spent inside services.
    pub busy_ns: AtomicU64,
}

/// A snapshot of [`WorkerCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Requests handled.
    pub requests: u64,
    /// Requests answered with an error response.
    pub service_errors: u64,
    /// Replies whose NIC endpoint was already gone.
    pub orphaned_replies: u64,
    /// Nanoseconds spent inside services.
    pub busy_ns: u64,
}

impl WorkerCounters {
    /// The current values.
    pub fn snapshot(&self) -> WorkerStats {
        WorkerStats {
            requests: self.requests.load(Ordering::Relaxed),
            service_errors: self.service_errors.load(Ordering::Relaxed),
            orphaned_replies: self.orphaned_replies.load(Ordering::Relaxed),
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
        }
    }
}

/// Hands requests to the worker that owns their port's service. Clone one per endpoint.
#[derive(Clone)]
pub struct Submitter {
    routes: Arc<HashMap<u16, usize>>,
    queues: Vec<Sender<Request>>,
}

impl Submitter {
    /// Queues `request` on its service's worker without blocking.
    pub fn submit(&self, request: Request) -> Result<(), SubmitError> {
        let Some(&worker) = self.routes.get(&request.addressing.dst_port) else {
            return Err(SubmitError::NoService(request));
        };
        match self.queues[worker].try_send(request) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(request)) => Err(SubmitError::Full(request)),
            Err(TrySendError::Disconnected(request)) => Err(SubmitError::Stopped(request)),
        }
    }

    /// A submitter that refuses everything (what a stopping endpoint keeps).
    pub fn closed() -> Submitter {
        Submitter {
            routes: Arc::new(HashMap::new()),
            queues: Vec::new(),
        }
    }

    /// Whether a service listens on `port`.
    pub fn serves(&self, port: u16) -> bool {
        self.routes.contains_key(&port)
    }
}

/// The running workers.
pub struct Runtime {
    submitter: Option<Submitter>,
    workers: Vec<JoinHandle<()>>,
    counters: Vec<Arc<WorkerCounters>>,
}

impl Runtime {
    /// Starts `workers` threads and spreads `services` over them (round-robin by port order).
    /// `replies[n]` receives the replies to requests from NIC `n`; `queue_depth` bounds each
    /// worker's queue.
    pub fn start(
        services: Vec<(u16, Box<dyn Service>)>,
        workers: usize,
        queue_depth: usize,
        replies: Vec<Sender<Reply>>,
        pool: Arc<BufferPool>,
    ) -> Result<Runtime, RuntimeError> {
        if workers == 0 {
            return Err(RuntimeError::NoWorkers);
        }
        let mut tables: Vec<HashMap<u16, Box<dyn Service>>> =
            (0..workers).map(|_| HashMap::new()).collect();
        let mut routes = HashMap::new();
        let mut services = services;
        services.sort_by_key(|(port, _)| *port);
        for (i, (port, service)) in services.into_iter().enumerate() {
            if routes.insert(port, i % workers).is_some() {
                return Err(RuntimeError::DuplicatePort(port));
            }
            tables[i % workers].insert(port, service);
        }
        let epoch = Instant::now();
        let mut queues = Vec::new();
        let mut handles = Vec::new();
        let mut counters = Vec::new();
        for (core, table) in tables.into_iter().enumerate() {
            let (queue, inbox) = channel::bounded(queue_depth.max(1));
            let worker = Worker {
                core: core as u16,
                services: table,
                inbox,
                replies: replies.clone(),
                pool: pool.clone(),
                counters: Arc::new(WorkerCounters::default()),
                epoch,
            };
            counters.push(worker.counters.clone());
            let handle = std::thread::Builder::new()
                .name(format!("e3-worker-{core}"))
                .spawn(move || worker.run())
                .map_err(RuntimeError::Spawn)?;
            queues.push(queue);
            handles.push(handle);
        }
        Ok(Runtime {
            submitter: Some(Submitter {
                routes: Arc::new(routes),
                queues,
            }),
            workers: handles,
            counters,
        })
    }

    /// A handle that queues requests.
    pub fn submitter(&self) -> Option<Submitter> {
        self.submitter.clone()
    }

    /// Each worker's counters.
    pub fn stats(&self) -> Vec<WorkerStats> {
        self.counters.iter().map(|c| c.snapshot()).collect()
    }

    /// Drops this runtime's own submitter (the workers stop once the others are gone too).
    pub fn release(&mut self) {
        self.submitter = None;
    }

    /// Drops this runtime's submitter and waits for the workers, which exit once every other
    /// submitter is gone and their queues are empty.
    pub fn join(mut self) -> Vec<WorkerStats> {
        self.submitter = None;
        for handle in self.workers.drain(..) {
            if handle.join().is_err() {
                log::error!("a runtime worker panicked");
            }
        }
        self.stats()
    }
}

struct Worker {
    core: u16,
    services: HashMap<u16, Box<dyn Service>>,
    inbox: Receiver<Request>,
    replies: Vec<Sender<Reply>>,
    pool: Arc<BufferPool>,
    counters: Arc<WorkerCounters>,
    epoch: Instant,
}

impl Worker {
    /// Runs every request to completion until all submitters are dropped.
    fn run(mut self) {
        while let Ok(request) = self.inbox.recv() {
            let reply = self.handle(&request);
            self.pool.put(request.message);
            let Some(reply) = reply else { continue };
            match self.replies.get(request.nic) {
                Some(sink) if sink.send(reply).is_ok() => {}
                _ => {
                    self.counters
                        .orphaned_replies
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn handle(&mut self, request: &Request) -> Option<Reply> {
        let service = self.services.get_mut(&request.addressing.dst_port)?;
        let mut message = self.pool.take();
        message.resize(HEADER_BYTES + MAX_RESPONSE, 0);
        let started = Instant::now();
        let mut ctx = Context {
            engines: &SoftwareEngines::SHARED,
            now_ns: started.duration_since(self.epoch).as_nanos() as u64,
            core: self.core,
        };
        let (len, error) = service.serve(&mut ctx, request.payload(), &mut message[HEADER_BYTES..]);
        let c = &self.counters;
        c.busy_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        c.requests.fetch_add(1, Ordering::Relaxed);
        if error.is_some() {
            c.service_errors.fetch_add(1, Ordering::Relaxed);
        }
        let header = MessageHeader::UdpReply(request.addressing.reply());
        // The buffer holds at least the header: `emit` cannot fail here.
        let _ = header.emit(&mut message);
        message.truncate(HEADER_BYTES + len.min(MAX_RESPONSE));
        Some(Reply {
            flow: request.flow,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use microservices::services::Echo;
    use microservices::ServiceId;

    fn echo() -> Box<dyn Service> {
        Box::new(Echo::new(ServiceId(1)))
    }

    fn request(port: u16, body: &[u8]) -> Request {
        let addressing = UdpAddressing {
            src_ip: [10, 0, 0, 9].into(),
            src_port: 4000,
            dst_ip: [10, 0, 0, 1].into(),
            dst_port: port,
        };
        let mut message = vec![0; HEADER_BYTES];
        message.extend_from_slice(body);
        Request {
            nic: 0,
            flow: 77,
            addressing,
            message,
        }
    }

    #[test]
    fn requests_run_on_their_port_and_replies_carry_the_swapped_addressing() {
        let (replies, reply_rx) = channel::unbounded();
        let pool = Arc::new(BufferPool::new(16, HEADER_BYTES + MAX_RESPONSE));
        let runtime = Runtime::start(
            vec![(7000, echo()), (7001, echo())],
            2,
            8,
            vec![replies],
            pool,
        )
        .unwrap();
        let submitter = runtime.submitter().unwrap();
        submitter.submit(request(7000, b"abc")).unwrap();
        assert!(matches!(
            submitter.submit(request(9, b"x")),
            Err(SubmitError::NoService(_))
        ));
        let reply = reply_rx.recv().unwrap();
        assert_eq!(reply.flow, 77);
        let (header, body) = MessageHeader::parse(&reply.message).unwrap();
        let MessageHeader::UdpReply(addressing) = header else {
            panic!("{header:?}")
        };
        assert_eq!(addressing.dst_port, 4000);
        assert_eq!(addressing.src_port, 7000);
        assert_eq!(body, b"\0abc");
        drop(submitter);
        let stats = runtime.join();
        assert_eq!(stats.iter().map(|s| s.requests).sum::<u64>(), 1);
    }

    #[test]
    fn duplicate_ports_and_zero_workers_are_refused() {
        let pool = Arc::new(BufferPool::new(1, 64));
        assert!(matches!(
            Runtime::start(vec![], 0, 1, vec![], pool.clone()),
            Err(RuntimeError::NoWorkers)
        ));
        assert!(matches!(
            Runtime::start(vec![(1, echo()), (1, echo())], 1, 1, vec![], pool),
            Err(RuntimeError::DuplicatePort(1))
        ));
    }
}
