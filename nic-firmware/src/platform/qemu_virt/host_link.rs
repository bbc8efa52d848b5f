//! The NIC side of the PCIe channel (the `pcie-channel` crate) on the ivshmem BAR, as the
//! runtime's host path: datagrams for the host IP go to the host as UDP-request messages, the
//! host's UDP-reply messages come back to leave on the wire. The region also carries the boot
//! configuration and each side's heartbeat.
//!
//! The runtime has its own `host_path::ChannelHostPath` doing the same message work; this board
//! keeps its own until that one exposes its receiver's statistics (the counters line reports the
//! channel's corrupt descriptors), then switches to it.

#![cfg(target_os = "none")]

use alloc::boxed::Box;
use alloc::vec;
use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use log::{info, warn};
use nic_firmware::platform::{DatagramMeta, Endpoint, HostPath, HostPathError};
use nic_firmware::runtime::flow_of;
use nic_firmware::wire::Ipv4Address;
use pcie_channel::message::{MessageHeader, UdpAddressing, HEADER_BYTES};
use pcie_channel::{
    AttachError, BootConfigError, Channel, ChannelError, EngineSet, PeerWatch, Receiver, Role,
    Sender, BOOT_CONFIG_CAPACITY,
};
use spin::{Mutex, Once};

use super::pci::Region;

/// Most refused messages skipped in one call of `receive_from_host`.
const REFUSED_PER_CALL: usize = 32;
/// How long the host's heartbeat may stand still before the channel counts as disconnected.
const HOST_TIMEOUT_NS: u64 = 1_000_000_000;

static CHANNEL: Once<Channel> = Once::new();
static WATCH: Mutex<PeerWatch> = Mutex::new(PeerWatch::new(HOST_TIMEOUT_NS));
/// Messages from the host refused (not a UDP reply, bad header, too large), and the channel's
/// own count of corrupt, orphaned or skipped descriptors.
static REJECTED: AtomicU64 = AtomicU64::new(0);
static CHANNEL_CORRUPT: AtomicU64 = AtomicU64::new(0);
/// Whether the host's heartbeat moved within the timeout at the last tick.
static HOST_ALIVE: AtomicBool = AtomicBool::new(false);

/// Attaches to the channel the host initialised in the shared region.
pub fn attach(region: Region) -> Result<&'static Channel, AttachError> {
    // SAFETY: the region is the ivshmem BAR, mapped normal memory by the final page table for
    // the life of the firmware; nothing else in the image touches it (all access goes through
    // this one `Channel`).
    let channel =
        unsafe { Channel::attach_raw(region.address as *mut u8, region.size as usize, Role::Nic) }?;
    let channel = CHANNEL.call_once(|| channel);
    let g = channel.geometry();
    info!(
        "host channel: {} engines per direction, {} entries of {} bytes",
        g.engines, g.ring_entries, g.slot_bytes
    );
    Ok(channel)
}

/// The boot configuration the host wrote into the channel, if it wrote one.
pub fn boot_config(channel: &Channel) -> Result<Option<alloc::vec::Vec<u8>>, BootConfigError> {
    let mut bytes = vec![0u8; BOOT_CONFIG_CAPACITY];
    match channel.read_boot_config(&mut bytes) {
        Ok(length) => {
            bytes.truncate(length);
            Ok(Some(bytes))
        }
        Err(BootConfigError::Missing) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The host path: over the channel when there is one, refusing (and counted by the runtime)
/// when there is none.
pub struct HostLink {
    link: Option<ChannelLink>,
}

struct ChannelLink {
    tx: Sender<'static>,
    /// About 18 KiB, so on the heap.
    rx: Box<Receiver<'static>>,
}

impl HostLink {
    /// A link over `channel` (all its engines towards the host), or none.
    pub fn new(channel: Option<&'static Channel>) -> HostLink {
        let link = channel.and_then(|channel| {
            let engines = EngineSet::first(channel.geometry().engines as usize);
            match (channel.sender(engines), channel.receiver()) {
                (Ok(tx), Ok(rx)) => Some(ChannelLink {
                    tx,
                    rx: Box::new(rx),
                }),
                (Err(e), _) | (_, Err(e)) => {
                    warn!("host channel: cannot claim its endpoints: {e}");
                    None
                }
            }
        });
        HostLink { link }
    }
}

fn path_error(error: ChannelError) -> HostPathError {
    match error {
        ChannelError::WouldBlock => HostPathError::Full,
        ChannelError::TooLarge { .. } | ChannelError::BufferTooSmall { .. } => {
            HostPathError::TooLarge
        }
        ChannelError::Failed(_) | ChannelError::Disconnected => HostPathError::Disconnected,
    }
}

fn to_ip(address: Ipv4Address) -> Ipv4Addr {
    Ipv4Addr::from(address.0)
}

impl HostPath for HostLink {
    fn send_to_host(&mut self, meta: &DatagramMeta, payload: &[u8]) -> Result<(), HostPathError> {
        let Some(link) = self.link.as_mut() else {
            return Err(HostPathError::Disconnected);
        };
        let header = MessageHeader::UdpRequest(UdpAddressing {
            src_ip: to_ip(meta.remote.ip),
            src_port: meta.remote.port,
            dst_ip: to_ip(meta.local.ip),
            dst_port: meta.local.port,
        });
        let mut reservation = link
            .tx
            .reserve(meta.flow, HEADER_BYTES + payload.len())
            .map_err(path_error)?;
        let buffer = reservation.buffer();
        header
            .encode(payload, buffer)
            .map_err(|_| HostPathError::TooLarge)?;
        reservation
            .commit(HEADER_BYTES + payload.len())
            .map_err(path_error)
    }

    fn receive_from_host(&mut self, payload: &mut [u8]) -> Option<(DatagramMeta, usize)> {
        let link = self.link.as_mut()?;
        let found = link.next_reply(payload);
        let stats = link.rx.stats();
        CHANNEL_CORRUPT.store(
            stats.corrupt + stats.orphans + stats.skipped,
            Ordering::Relaxed,
        );
        found
    }
}

impl ChannelLink {
    /// The next UDP reply from the host, copied into `payload`. Other messages are refused and
    /// counted; one call never skips more than a burst of them.
    fn next_reply(&mut self, payload: &mut [u8]) -> Option<(DatagramMeta, usize)> {
        for _ in 0..REFUSED_PER_CALL {
            let received = self.rx.recv().ok()??;
            let message = received.message();
            let accepted = message.as_contiguous().and_then(|bytes| {
                let (header, data) = MessageHeader::parse(bytes).ok()?;
                let MessageHeader::UdpReply(a) = header else {
                    return None;
                };
                let out = payload.get_mut(..data.len())?;
                out.copy_from_slice(data);
                let remote = Endpoint::new(Ipv4Address(a.dst_ip.octets()), a.dst_port);
                let local = Endpoint::new(Ipv4Address(a.src_ip.octets()), a.src_port);
                // The flow is the runtime's own hash of the addresses, not the host's word.
                let meta = DatagramMeta {
                    remote,
                    local,
                    flow: flow_of(&remote, &local),
                };
                Some((meta, data.len()))
            });
            match accepted {
                Some(found) => return Some(found),
                None => {
                    REJECTED.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        None
    }
}

/// Core 0's periodic channel work: beat our heartbeat, watch the host's.
pub fn tick(now_ns: u64) {
    if let Some(channel) = CHANNEL.get() {
        channel.beat();
        let status = channel.check_peer(&mut WATCH.lock(), now_ns);
        HOST_ALIVE.store(status.is_alive(), Ordering::Relaxed);
    }
}

/// The channel's state for the counters line: `none`, `up`, `disconnected` or `failed`.
pub fn state() -> &'static str {
    match CHANNEL.get() {
        None => "none",
        Some(channel) if channel.failure().is_some() => "failed",
        Some(_) if HOST_ALIVE.load(Ordering::Relaxed) => "up",
        Some(_) => "disconnected",
    }
}

/// Messages refused and descriptors the channel found corrupt, so far.
pub fn rejected() -> (u64, u64) {
    (
        REJECTED.load(Ordering::Relaxed),
        CHANNEL_CORRUPT.load(Ordering::Relaxed),
    )
}
