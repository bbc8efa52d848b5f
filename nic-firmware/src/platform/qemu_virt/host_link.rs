//! The PCIe channel (the `pcie-channel` crate) on the ivshmem BAR: attaching to it as the NIC,
//! the boot configuration the host wrote into it, each side's heartbeat, and the runtime's host
//! path over it (the runtime's own [`ChannelHostPath`], which counts what it refuses).

#![cfg(target_os = "none")]

use alloc::boxed::Box;
use alloc::vec;
use core::sync::atomic::{AtomicBool, Ordering};

use log::{info, warn};
use nic_firmware::host_path::ChannelHostPath;
use pcie_channel::{
    AttachError, BootConfigError, Channel, EngineSet, PeerWatch, Role, BOOT_CONFIG_CAPACITY,
};
use spin::{Mutex, Once};

use super::pci::Region;

/// The runtime's host path on this board: the channel's, when the host made one (its receiver
/// is about 18 KiB, so it lives on the heap).
pub type HostLink = Option<Box<ChannelHostPath<'static>>>;

/// How long the host's heartbeat may stand still before the channel counts as disconnected.
const HOST_TIMEOUT_NS: u64 = 1_000_000_000;

static CHANNEL: Once<Channel> = Once::new();
static WATCH: Mutex<PeerWatch> = Mutex::new(PeerWatch::new(HOST_TIMEOUT_NS));
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

/// The host path over `channel` (all its engines towards the host), or none.
pub fn host_path(channel: Option<&'static Channel>) -> HostLink {
    let channel = channel?;
    let engines = EngineSet::first(channel.geometry().engines as usize);
    match (channel.sender(engines), channel.receiver()) {
        (Ok(tx), Ok(rx)) => Some(Box::new(ChannelHostPath::new(tx, rx))),
        (Err(e), _) | (_, Err(e)) => {
            warn!("host channel: cannot claim its endpoints: {e}");
            None
        }
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

/// Messages from the host the path refused (not a UDP reply, bad header, too large) and
/// descriptors the channel found corrupt, orphaned or skipped, so far.
pub fn refused(path: &HostLink) -> (u64, u64) {
    path.as_ref().map_or((0, 0), |path| {
        (path.drops().total(), path.receive_stats().refused())
    })
}
