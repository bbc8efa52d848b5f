//! PCIe bring-up: enumerate bus 0 through ECAM, size every memory BAR and place it in the board's
//! window (no firmware before us assigns them), enable the devices, and find the ivshmem BAR that
//! is the NIC side of the host channel. Config-space access and BAR sizing are virtio-drivers'
//! `PciRoot`; the placement policy is [`BarAllocator`].
#![cfg(target_os = "none")]

use core::fmt;

use log::{info, warn};
use virtio_drivers::transport::pci::bus::{
    BarInfo, Cam, Command, DeviceFunction, MemoryBarType, MmioCam, PciError, PciRoot,
};

use super::bar_window::{BarAllocator, BarError};
use super::map;

/// ivshmem's PCI identity (Red Hat, Inc. / Inter-VM shared memory).
const IVSHMEM: (u16, u16) = (0x1af4, 0x1110);
/// The ivshmem BAR that holds the shared memory.
const IVSHMEM_SHARED_BAR: u8 = 2;
/// Most functions enumerated on bus 0.
const MAX_FUNCTIONS: usize = 32;

/// A region of physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Physical (and, identity mapped, virtual) address.
    pub address: u64,
    /// Length in bytes.
    pub size: u64,
}

/// What enumeration found.
pub struct PciReport {
    /// The ivshmem shared-memory BAR, if there is an ivshmem device.
    pub shared: Option<Region>,
}

/// Why enumeration failed.
#[derive(Debug)]
pub enum PciSetupError {
    /// Reading a BAR failed.
    Bar(DeviceFunction, PciError),
    /// A BAR could not be placed.
    Place(DeviceFunction, u8, BarError),
}

impl fmt::Display for PciSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PciSetupError::Bar(df, e) => write!(f, "{df}: reading BARs: {e}"),
            PciSetupError::Place(df, bar, e) => write!(f, "{df} BAR{bar}: {e}"),
        }
    }
}

/// Enumerates bus 0, assigns the BARs, enables memory decoding and bus mastering.
pub fn enumerate() -> Result<PciReport, PciSetupError> {
    // SAFETY: map::ECAM is the host bridge's ECAM window (256 buses x 1 MiB), mapped as device
    // memory by both page tables; this is the only configuration-space accessor.
    let cam = unsafe { MmioCam::new(map::ECAM.start as *mut u8, Cam::Ecam) };
    let mut root = PciRoot::new(cam);
    let mut registers = BarAllocator::new(map::PCI_REGISTERS);
    let mut prefetchable = BarAllocator::new(map::PCI_PREFETCHABLE);
    let functions: heapless::Vec<_, MAX_FUNCTIONS> =
        root.enumerate_bus(0).take(MAX_FUNCTIONS).collect();
    let mut shared = None;
    for (df, info) in functions {
        info!(
            "pci {df}: {:04x}:{:04x} class {:02x}.{:02x}",
            info.vendor_id, info.device_id, info.class, info.subclass
        );
        let bars = root.bars(df).map_err(|e| PciSetupError::Bar(df, e))?;
        for (index, bar) in bars.iter().enumerate() {
            let index = index as u8;
            let Some(BarInfo::Memory {
                address_type,
                prefetchable: pf,
                size,
                ..
            }) = bar
            else {
                if let Some(BarInfo::IO { size, .. }) = bar {
                    warn!("pci {df} BAR{index}: {size}-byte I/O BAR left unassigned");
                }
                continue;
            };
            let window = if *pf {
                &mut prefetchable
            } else {
                &mut registers
            };
            let address = window
                .place(*size)
                .map_err(|e| PciSetupError::Place(df, index, e))?;
            match address_type {
                MemoryBarType::Width64 => root.set_bar_64(df, index, address),
                _ => root.set_bar_32(df, index, address as u32),
            }
            info!(
                "pci {df} BAR{index}: {size:#x} bytes at {address:#x}{}",
                if *pf { " (prefetchable)" } else { "" }
            );
            if (info.vendor_id, info.device_id) == IVSHMEM && index == IVSHMEM_SHARED_BAR {
                shared = Some(Region {
                    address,
                    size: *size,
                });
            }
        }
        root.set_command(df, Command::MEMORY_SPACE | Command::BUS_MASTER);
    }
    match shared {
        Some(r) => info!(
            "shared region (ivshmem BAR2): {:#x}, {} KiB",
            r.address,
            r.size / 1024
        ),
        None => warn!("no ivshmem device: the host channel is unavailable"),
    }
    Ok(PciReport { shared })
}
