//! The host end of an emulated NIC's PCIe channel for the HIL tests and the demo: creates the
//! channel file QEMU maps as the ivshmem BAR, writes the NIC's boot configuration into it, and
//! answers the UDP requests the NIC forwards for the host IP with microservices running on a
//! host thread, replying over the channel.
//!
//! This drives `pcie-channel` directly; host-lib's endpoint and runtime can take its place once
//! they exist.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use microservices::engines::SoftwareEngines;
use microservices::{Context, Service};
use pcie_channel::message::{MessageHeader, HEADER_BYTES};
use pcie_channel::{ChannelError, EngineSet, Geometry, MappedChannel, PeerWatch};

use crate::nic::ChannelFile;

/// The channel geometry of the emulated NICs (the crate's default: 8 engines).
pub const GEOMETRY: Geometry = Geometry::DEFAULT;

/// The channel file size for [`GEOMETRY`]: a power of two, since it becomes a PCI BAR.
pub fn channel_size() -> u64 {
    (GEOMETRY.region_bytes() as u64).next_power_of_two()
}

/// What the host side counted.
#[derive(Debug, Default)]
pub struct HostCounters {
    /// UDP requests answered.
    pub served: AtomicU64,
    /// Messages refused (not a UDP request, or for a port with no service).
    pub refused: AtomicU64,
    /// Replies the channel would not take in time.
    pub reply_failures: AtomicU64,
}

/// A running host side: one host with one channel per NIC it carries. Stops (and marks the host
/// Stopped in each channel) when dropped.
pub struct HostSide {
    paths: Vec<PathBuf>,
    channels: Vec<Arc<MappedChannel>>,
    stop: Arc<AtomicBool>,
    counters: Arc<HostCounters>,
    thread: Option<JoinHandle<()>>,
}

impl HostSide {
    /// Creates one channel file per NIC (`path` and the boot configuration written into it),
    /// and starts answering the requests that arrive on any of them with `services` (by UDP
    /// port), shared by all NICs.
    pub fn start(
        nics: &[(PathBuf, String)],
        services: Vec<(u16, Box<dyn Service>)>,
    ) -> Result<HostSide> {
        let mut channels = Vec::new();
        for (path, boot_config) in nics {
            let channel = MappedChannel::create_sized(path, channel_size(), GEOMETRY)
                .with_context(|| format!("creating the channel at {}", path.display()))?;
            channel
                .write_boot_config(boot_config.as_bytes())
                .map_err(|e| anyhow::anyhow!("writing the boot configuration: {e}"))?;
            channels.push(Arc::new(channel));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(HostCounters::default());
        let thread = {
            let (channels, stop, counters) = (channels.clone(), stop.clone(), counters.clone());
            std::thread::Builder::new()
                .name("e3-host".into())
                .spawn(move || serve(&channels, &stop, &counters, services))
                .context("starting the host thread")?
        };
        Ok(HostSide {
            paths: nics.iter().map(|(path, _)| path.clone()).collect(),
            channels,
            stop,
            counters,
            thread: Some(thread),
        })
    }

    /// The file QEMU should map for NIC `nic` (in the order given to [`HostSide::start`]).
    pub fn channel_file(&self, nic: usize) -> ChannelFile {
        ChannelFile {
            path: self.paths[nic].clone(),
            size: channel_size(),
        }
    }

    /// The host side's counters.
    pub fn counters(&self) -> &HostCounters {
        &self.counters
    }

    /// Whether NIC `nic`'s heartbeat moves: watched for one and a half `timeout`s.
    pub fn nic_alive(&self, nic: usize, timeout: Duration) -> bool {
        let mut watch = PeerWatch::new(timeout.as_nanos() as u64);
        let start = Instant::now();
        let now = || start.elapsed().as_nanos() as u64;
        let channel = &self.channels[nic];
        let before = channel.peer_heartbeat();
        watch.observe(before, channel.peer_state(), now());
        std::thread::sleep(timeout + timeout / 2);
        watch
            .observe(channel.peer_heartbeat(), channel.peer_state(), now())
            .is_alive()
    }
}

impl Drop for HostSide {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The host thread: beat the heartbeats, answer requests on every channel, until told to stop.
fn serve(
    channels: &[Arc<MappedChannel>],
    stop: &AtomicBool,
    counters: &HostCounters,
    services: Vec<(u16, Box<dyn Service>)>,
) {
    let mut services: HashMap<u16, Box<dyn Service>> = services.into_iter().collect();
    let engines = EngineSet::first(GEOMETRY.engines as usize);
    let mut ends = Vec::new();
    for channel in channels {
        let (Ok(tx), Ok(rx)) = (channel.sender(engines), channel.receiver()) else {
            return;
        };
        ends.push((channel, tx, Box::new(rx)));
    }
    let started = Instant::now();
    let mut response = vec![0u8; 2048];
    let mut reply = vec![0u8; 2048];
    let mut pending: Vec<(u32, Vec<u8>)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        for (channel, tx, rx) in ends.iter_mut() {
            channel.beat();
            let polled = serve_channel(
                rx,
                &mut services,
                started,
                counters,
                &mut response,
                &mut reply,
                &mut pending,
            );
            for (flow, message) in pending.drain(..) {
                if !send_with_retry(tx, flow, &message) {
                    counters.reply_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            busy |= polled > 0;
        }
        if !busy {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// Answers up to a burst of requests from one channel into `pending`; returns how many
/// messages it took.
fn serve_channel(
    rx: &mut pcie_channel::Receiver<'_>,
    services: &mut HashMap<u16, Box<dyn Service>>,
    started: Instant,
    counters: &HostCounters,
    response: &mut [u8],
    reply: &mut [u8],
    pending: &mut Vec<(u32, Vec<u8>)>,
) -> usize {
    let polled = rx.poll(32, |message| {
        let Some(bytes) = message.as_contiguous() else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok((MessageHeader::UdpRequest(addressing), request)) = MessageHeader::parse(bytes)
        else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(service) = services.get_mut(&addressing.dst_port) else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut ctx = Context {
            engines: &SoftwareEngines::SHARED,
            now_ns: started.elapsed().as_nanos() as u64,
            core: 0,
        };
        let n = match service.handle(&mut ctx, request, response) {
            Ok(n) => n,
            Err(error) => error.write_response(response),
        };
        let header = MessageHeader::UdpReply(addressing.reply());
        if let Ok(len) = header.encode(&response[..n], reply) {
            pending.push((message.flow(), reply[..len].to_vec()));
            counters.served.fetch_add(1, Ordering::Relaxed);
        }
    });
    polled.unwrap_or(0)
}

/// Sends, retrying for up to a second while the NIC has not returned credits.
fn send_with_retry(tx: &mut pcie_channel::Sender<'_>, flow: u32, message: &[u8]) -> bool {
    debug_assert!(message.len() >= HEADER_BYTES);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match tx.send(flow, message) {
            Ok(()) => return true,
            Err(ChannelError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(_) => return false,
        }
    }
}
