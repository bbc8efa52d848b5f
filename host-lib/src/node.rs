//! `HostNode`: the host half in one value — NIC endpoints over their channels plus the
//! execution engine — built with a small builder:
//!
//! ```no_run
//! # use host_lib::node::HostNode;
//! # fn kvs() -> Box<dyn microservices::Service> { unimplemented!() }
//! let node = HostNode::builder()
//!     .nic("/dev/shm/e3-nic0")          // attach to a channel the harness created
//!     .service(7000, kvs())             // a microservices::Service by UDP port
//!     .workers(2)
//!     .spawn()?;
//! // ... the NIC forwards requests for the host IP; the node answers them ...
//! let stats = node.shutdown()?;
//! # Ok::<(), host_lib::node::NodeError>(())
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use microservices::Service;
use pcie_channel::message::HEADER_BYTES;
use pcie_channel::{ClaimError, Geometry, MapError, MappedChannel, Role};

use crate::endpoint::{self, ControlMessage, EndpointConfig, EndpointCounters, EndpointStats};
use crate::runtime::{BufferPool, Runtime, RuntimeError, WorkerStats, MAX_RESPONSE};

/// How one NIC's channel is reached.
#[derive(Clone, Debug)]
enum NicSpec {
    /// Attach to a channel another process created.
    Attach(PathBuf),
    /// Create the channel file (and write the boot configuration) before the NIC boots.
    Create {
        path: PathBuf,
        size: Option<u64>,
        geometry: Geometry,
        boot_config: Option<Vec<u8>>,
    },
}

/// Why a node could not start or stopped badly.
#[derive(Debug)]
pub enum NodeError {
    /// A channel file could not be created, mapped or attached.
    Map(MapError),
    /// The boot configuration could not be written.
    BootConfig(pcie_channel::BootConfigError),
    /// The execution engine could not start.
    Runtime(RuntimeError),
    /// A thread could not be started.
    Spawn(std::io::Error),
    /// Another endpoint already holds NIC `nic`'s channel.
    Claim {
        /// Which NIC.
        nic: usize,
        /// What was taken.
        error: ClaimError,
    },
    /// A node thread panicked.
    Panicked(&'static str),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Map(e) => write!(f, "{e}"),
            NodeError::BootConfig(e) => write!(f, "boot configuration: {e}"),
            NodeError::Runtime(e) => write!(f, "{e}"),
            NodeError::Spawn(e) => write!(f, "starting a thread: {e}"),
            NodeError::Claim { nic, error } => write!(f, "NIC {nic}: {error}"),
            NodeError::Panicked(what) => write!(f, "{what} thread panicked"),
        }
    }
}

impl std::error::Error for NodeError {}

/// What a node counted: one entry per NIC, one per worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Per NIC endpoint, in the order the NICs were added.
    pub nics: Vec<EndpointStats>,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
}

/// Builds a [`HostNode`].
pub struct HostNodeBuilder {
    nics: Vec<NicSpec>,
    services: Vec<(u16, Box<dyn Service>)>,
    workers: usize,
    queue_depth: usize,
    config: EndpointConfig,
    control: Option<crossbeam::channel::Sender<ControlMessage>>,
}

impl HostNodeBuilder {
    /// Adds a NIC whose channel another process created (the HIL harness, a previous run).
    pub fn nic(mut self, path: impl Into<PathBuf>) -> Self {
        self.nics.push(NicSpec::Attach(path.into()));
        self
    }

    /// Adds a NIC whose channel this node creates at `path` (`size` bytes, or just what the
    /// geometry needs) with `boot_config` written for the firmware to read at boot.
    pub fn create_nic(
        mut self,
        path: impl Into<PathBuf>,
        size: Option<u64>,
        geometry: Geometry,
        boot_config: Option<Vec<u8>>,
    ) -> Self {
        self.nics.push(NicSpec::Create {
            path: path.into(),
            size,
            geometry,
            boot_config,
        });
        self
    }

    /// Serves UDP `port` (on the host IP) with `service`.
    pub fn service(mut self, port: u16, service: Box<dyn Service>) -> Self {
        self.services.push((port, service));
        self
    }

    /// Worker threads (default 1). Services are spread over them.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Requests each worker may have queued before endpoints hold back (default 1024).
    pub fn queue_depth(mut self, depth: usize) -> Self {
        self.queue_depth = depth;
        self
    }

    /// How long a NIC's heartbeat may stand still before it counts as disconnected.
    pub fn peer_timeout(mut self, timeout: Duration) -> Self {
        self.config.peer_timeout = timeout;
        self
    }

    /// Where heartbeats and control messages from the NICs go (else they are counted and
    /// dropped).
    pub fn control_sink(mut self, sink: crossbeam::channel::Sender<ControlMessage>) -> Self {
        self.control = Some(sink);
        self
    }

    /// Opens every channel, starts the workers and one endpoint thread per NIC.
    pub fn spawn(self) -> Result<HostNode, NodeError> {
        let mut channels = Vec::new();
        for spec in &self.nics {
            channels.push(Arc::new(open(spec)?));
        }
        let pool = Arc::new(BufferPool::new(
            4 * self.queue_depth.max(64),
            HEADER_BYTES + MAX_RESPONSE,
        ));
        let (reply_senders, reply_receivers): (Vec<_>, Vec<_>) = channels
            .iter()
            .map(|_| crossbeam::channel::unbounded())
            .unzip();
        let mut runtime = Runtime::start(
            self.services,
            self.workers,
            self.queue_depth,
            reply_senders,
            pool.clone(),
        )
        .map_err(NodeError::Runtime)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut endpoints = Vec::new();
        for (nic, (channel, replies)) in channels.iter().zip(reply_receivers).enumerate() {
            let counters = Arc::new(EndpointCounters::default());
            let Some(submitter) = runtime.submitter() else {
                break;
            };
            let parts = endpoint::EndpointParts {
                nic,
                channel: channel.clone(),
                submitter,
                replies,
                pool: pool.clone(),
                control: self.control.clone(),
                stop: stop.clone(),
                counters: counters.clone(),
                config: self.config,
            };
            match endpoint::spawn(parts) {
                Ok(handle) => endpoints.push((handle, counters)),
                Err(error) => {
                    stop.store(true, Ordering::Relaxed);
                    runtime.release();
                    return Err(NodeError::Spawn(error));
                }
            }
        }
        runtime.release();
        Ok(HostNode {
            channels,
            endpoints,
            runtime: Some(runtime),
            stop,
        })
    }
}

fn open(spec: &NicSpec) -> Result<MappedChannel, NodeError> {
    match spec {
        NicSpec::Attach(path) => MappedChannel::attach(path, Role::Host).map_err(NodeError::Map),
        NicSpec::Create {
            path,
            size,
            geometry,
            boot_config,
        } => {
            let size = size.unwrap_or(geometry.region_bytes() as u64);
            let channel =
                MappedChannel::create_sized(path, size, *geometry).map_err(NodeError::Map)?;
            if let Some(config) = boot_config {
                channel
                    .write_boot_config(config)
                    .map_err(NodeError::BootConfig)?;
            }
            Ok(channel)
        }
    }
}

/// An endpoint's thread: it ends with the claim error if the channel's endpoints were taken.
type EndpointThread = JoinHandle<Result<(), ClaimError>>;

/// The host half running: endpoints polling their NICs, workers running services. Stops on
/// [`HostNode::shutdown`] or drop.
pub struct HostNode {
    channels: Vec<Arc<MappedChannel>>,
    endpoints: Vec<(EndpointThread, Arc<EndpointCounters>)>,
    runtime: Option<Runtime>,
    stop: Arc<AtomicBool>,
}

impl HostNode {
    /// A builder with one worker and no NIC or service yet.
    pub fn builder() -> HostNodeBuilder {
        HostNodeBuilder {
            nics: Vec::new(),
            services: Vec::new(),
            workers: 1,
            queue_depth: 1024,
            config: EndpointConfig::default(),
            control: None,
        }
    }

    /// NIC `nic`'s channel (heartbeats, boot configuration, geometry).
    pub fn channel(&self, nic: usize) -> Option<&MappedChannel> {
        self.channels.get(nic).map(|c| &**c)
    }

    /// Counters so far.
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            nics: self.endpoints.iter().map(|(_, c)| c.snapshot()).collect(),
            workers: self
                .runtime
                .as_ref()
                .map(Runtime::stats)
                .unwrap_or_default(),
        }
    }

    /// Stops taking requests, lets the workers finish and the endpoints send their replies,
    /// joins every thread and returns the final counters.
    pub fn shutdown(mut self) -> Result<NodeStats, NodeError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<NodeStats, NodeError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut result = Ok(());
        let mut nics = Vec::new();
        for (nic, (handle, counters)) in self.endpoints.drain(..).enumerate() {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => result = Err(NodeError::Claim { nic, error }),
                Err(_) => result = Err(NodeError::Panicked("endpoint")),
            }
            nics.push(counters.snapshot());
        }
        let workers = self.runtime.take().map(Runtime::join).unwrap_or_default();
        result.map(|()| NodeStats { nics, workers })
    }
}

impl Drop for HostNode {
    fn drop(&mut self) {
        if !self.endpoints.is_empty() || self.runtime.is_some() {
            if let Err(error) = self.stop_and_join() {
                log::error!("host node stopped badly: {error}");
            }
        }
    }
}
