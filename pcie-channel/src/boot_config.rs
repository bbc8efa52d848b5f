//! The boot configuration area: opaque bytes the host writes before the NIC boots and the
//! firmware reads at boot, framed by a length and a CRC-32 (docs/pcie-channel.md §3.2).
//!
//! The channel does not interpret the bytes; the board layer defines their format (NIC IP,
//! host IP, MAC, services by UDP port, ...).

use core::fmt;
use core::sync::atomic::Ordering;

use crate::layout::{BOOT_CONFIG_BYTES, BOOT_CONFIG_OFFSET};
use crate::region::{copy_from_shared, copy_to_shared, Region};

/// "BOOT" read as a little-endian u32: the area holds a configuration.
pub const BOOT_MAGIC: u32 = u32::from_le_bytes(*b"BOOT");
/// Bytes of the area's own header (magic, length, checksum, generation).
pub const BOOT_HEADER_BYTES: usize = 16;
/// Largest configuration the area holds.
pub const BOOT_CONFIG_CAPACITY: usize = BOOT_CONFIG_BYTES - BOOT_HEADER_BYTES;

/// Byte offsets inside the area.
mod field {
    pub const MAGIC: usize = 0x0;
    pub const LENGTH: usize = 0x4;
    pub const CHECKSUM: usize = 0x8;
    pub const GENERATION: usize = 0xC;
}

/// Why a boot configuration could not be written or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootConfigError {
    /// The configuration is larger than [`BOOT_CONFIG_CAPACITY`].
    TooLarge(usize),
    /// The host has not written a configuration (magic absent).
    Missing,
    /// The stored length exceeds the capacity.
    BadLength(u32),
    /// The caller's buffer is smaller than the stored configuration.
    BufferTooSmall {
        /// Bytes stored.
        stored: usize,
    },
    /// The stored checksum does not match the stored bytes.
    Checksum {
        /// Stored checksum.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
}

impl fmt::Display for BootConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootConfigError::TooLarge(n) => write!(
                f,
                "boot configuration of {n} bytes exceeds the {BOOT_CONFIG_CAPACITY}-byte area"
            ),
            BootConfigError::Missing => f.write_str("no boot configuration written by the host"),
            BootConfigError::BadLength(n) => {
                write!(f, "stored boot configuration length {n} exceeds the area")
            }
            BootConfigError::BufferTooSmall { stored } => {
                write!(f, "buffer too small for the {stored}-byte boot configuration")
            }
            BootConfigError::Checksum { stored, computed } => write!(
                f,
                "boot configuration checksum {stored:#010x} does not match its bytes ({computed:#010x})"
            ),
        }
    }
}

fn word(region: &Region, offset: usize) -> &core::sync::atomic::AtomicU32 {
    region.u32_at(BOOT_CONFIG_OFFSET + offset)
}

/// Marks the area empty (at channel initialisation).
pub(crate) fn clear(region: &Region) {
    for offset in [
        field::MAGIC,
        field::LENGTH,
        field::CHECKSUM,
        field::GENERATION,
    ] {
        word(region, offset).store(0, Ordering::Relaxed);
    }
}

/// Writes `config`: clears the magic, writes the bytes, length, checksum and next generation,
/// then stores the magic with Release.
pub(crate) fn write(region: &Region, config: &[u8]) -> Result<u32, BootConfigError> {
    if config.len() > BOOT_CONFIG_CAPACITY {
        return Err(BootConfigError::TooLarge(config.len()));
    }
    word(region, field::MAGIC).store(0, Ordering::Relaxed);
    let data = region.bytes_at(BOOT_CONFIG_OFFSET + BOOT_HEADER_BYTES, config.len());
    // SAFETY: `bytes_at` checked the destination lies in the region; `config` is local memory.
    unsafe { copy_to_shared(config, data) };
    let generation =
        u32::from_le(word(region, field::GENERATION).load(Ordering::Relaxed)).wrapping_add(1);
    word(region, field::LENGTH).store((config.len() as u32).to_le(), Ordering::Relaxed);
    word(region, field::CHECKSUM).store(crc32fast::hash(config).to_le(), Ordering::Relaxed);
    word(region, field::GENERATION).store(generation.to_le(), Ordering::Relaxed);
    // B1: Release, pairs with B2 (the reader's Acquire): bytes and framing are visible first.
    word(region, field::MAGIC).store(BOOT_MAGIC.to_le(), Ordering::Release);
    Ok(generation)
}

/// Copies the configuration into `out` (read once) and checks its length and checksum there.
/// Returns the number of bytes.
pub(crate) fn read(region: &Region, out: &mut [u8]) -> Result<usize, BootConfigError> {
    // B2: Acquire, pairs with B1 (the writer's Release of the magic).
    if u32::from_le(word(region, field::MAGIC).load(Ordering::Acquire)) != BOOT_MAGIC {
        return Err(BootConfigError::Missing);
    }
    let stored_len = u32::from_le(word(region, field::LENGTH).load(Ordering::Relaxed));
    let len = stored_len as usize;
    if len > BOOT_CONFIG_CAPACITY {
        return Err(BootConfigError::BadLength(stored_len));
    }
    let Some(out) = out.get_mut(..len) else {
        return Err(BootConfigError::BufferTooSmall { stored: len });
    };
    let stored = u32::from_le(word(region, field::CHECKSUM).load(Ordering::Relaxed));
    let data = region.bytes_at(BOOT_CONFIG_OFFSET + BOOT_HEADER_BYTES, len);
    // SAFETY: `bytes_at` checked the `len` source bytes lie in the region.
    unsafe { copy_from_shared(data, out) };
    let computed = crc32fast::hash(out);
    if computed != stored {
        return Err(BootConfigError::Checksum { stored, computed });
    }
    Ok(len)
}
