//! The header page at offset 0: magic, version, geometry, feature bits, checksum, and the two
//! liveness lines (docs/pcie-channel.md §3). Initialised by the host, validated by whoever
//! attaches.

use core::fmt;
use core::sync::atomic::Ordering;

use crate::layout::{
    Geometry, GeometryError, Layout, BOOT_CONFIG_BYTES, BOOT_CONFIG_OFFSET, CONTROL_OFFSET,
    HEADER_BYTES,
};
use crate::region::Region;

/// "E3PCIECH" read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"E3PCIECH");
/// The format version this crate writes and accepts.
pub const VERSION: u32 = 1;
/// Feature bits this crate understands (version 1 defines none; any set bit is refused).
pub const KNOWN_FEATURES: u32 = 0;

/// Byte offsets of the header fields.
pub mod field {
    /// u64 magic, stored last by the host with Release.
    pub const MAGIC: usize = 0x00;
    /// u32 format version.
    pub const VERSION: usize = 0x08;
    /// u32 required feature bits.
    pub const FEATURES: usize = 0x0C;
    /// u32 engines per direction.
    pub const ENGINES: usize = 0x10;
    /// u32 descriptors per ring.
    pub const RING_ENTRIES: usize = 0x14;
    /// u32 bytes per slot.
    pub const SLOT_BYTES: usize = 0x18;
    /// u32 ordering lanes.
    pub const LANES: usize = 0x1C;
    /// u64 bytes the layout uses.
    pub const REGION_BYTES: usize = 0x20;
    /// u32 offset of the boot configuration area.
    pub const BOOT_CONFIG_OFFSET: usize = 0x28;
    /// u32 bytes of the boot configuration area.
    pub const BOOT_CONFIG_BYTES: usize = 0x2C;
    /// u32 offset of the first ring control block.
    pub const CONTROL_OFFSET: usize = 0x30;
    /// u32 offset of the first descriptor array.
    pub const DESCRIPTORS_OFFSET: usize = 0x34;
    /// u32 offset of the first slot.
    pub const SLOTS_OFFSET: usize = 0x38;
    /// u32 CRC-32 (IEEE) of the bytes 0x08..0x3C.
    pub const CHECKSUM: usize = 0x3C;
    /// The host's liveness line: u32 state at +0, u64 heartbeat at +8.
    pub const HOST_LINE: usize = 0x80;
    /// The NIC's liveness line: u32 state at +0, u64 heartbeat at +8.
    pub const NIC_LINE: usize = 0xC0;
    /// Offset of the state word inside a liveness line.
    pub const STATE: usize = 0x0;
    /// Offset of the heartbeat counter inside a liveness line.
    pub const HEARTBEAT: usize = 0x8;
    /// Offset of the waiting word inside a liveness line: bit 0 set while this side's receiver
    /// may sleep on its doorbell, bits 1.. count its waits (docs/pcie-channel.md §4.4).
    pub const WAITING: usize = 0x10;
}

/// Which side of the channel this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The host: creates the region, sends on `ToNic`, receives on `ToHost`.
    Host,
    /// The NIC firmware: attaches, sends on `ToHost`, receives on `ToNic`.
    Nic,
}

impl Role {
    /// The other side.
    pub const fn peer(self) -> Role {
        match self {
            Role::Host => Role::Nic,
            Role::Nic => Role::Host,
        }
    }

    /// Offset of this side's liveness line.
    pub(crate) const fn line(self) -> usize {
        match self {
            Role::Host => field::HOST_LINE,
            Role::Nic => field::NIC_LINE,
        }
    }
}

/// A side's state word in its liveness line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SideState {
    /// Not attached (0).
    Absent,
    /// Attached and running (1).
    Ready,
    /// Detached cleanly (2).
    Stopped,
    /// Saw the peer break the protocol and stopped trusting the channel (3).
    Failed,
    /// Any other value: the peer wrote garbage.
    Unknown(u32),
}

impl SideState {
    /// The stored word.
    pub const fn code(self) -> u32 {
        match self {
            SideState::Absent => 0,
            SideState::Ready => 1,
            SideState::Stopped => 2,
            SideState::Failed => 3,
            SideState::Unknown(code) => code,
        }
    }

    /// The state a stored word stands for.
    pub const fn from_code(code: u32) -> SideState {
        match code {
            0 => SideState::Absent,
            1 => SideState::Ready,
            2 => SideState::Stopped,
            3 => SideState::Failed,
            other => SideState::Unknown(other),
        }
    }
}

/// Why a region was refused at attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// The region is smaller than the header, or than the layout its geometry needs.
    TooSmall {
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The base address is not 64-byte aligned.
    Misaligned,
    /// No initialised channel here (magic mismatch; 0 when the host has not initialised yet).
    Magic(u64),
    /// A format version this crate does not speak.
    Version(u32),
    /// The header checksum does not match its contents.
    Checksum {
        /// Stored checksum.
        stored: u32,
        /// Checksum of the stored fields.
        computed: u32,
    },
    /// Required feature bits this crate does not know.
    Features(u32),
    /// The geometry is out of bounds.
    Geometry(GeometryError),
    /// A layout field disagrees with the one computed from the geometry.
    Layout {
        /// Offset of the header field.
        field: usize,
        /// Stored value.
        stored: u64,
        /// Value computed from the geometry.
        expected: u64,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::TooSmall { len, need } => {
                write!(f, "region of {len} bytes is smaller than the {need} bytes needed")
            }
            AttachError::Misaligned => f.write_str("region base is not 64-byte aligned"),
            AttachError::Magic(m) => write!(
                f,
                "no channel header (magic {m:#018x}, expected {MAGIC:#018x}): not initialised by the host"
            ),
            AttachError::Version(v) => {
                write!(f, "channel format version {v}, this build speaks {VERSION}")
            }
            AttachError::Checksum { stored, computed } => write!(
                f,
                "header checksum {stored:#010x} does not match its contents ({computed:#010x})"
            ),
            AttachError::Features(bits) => write!(f, "unknown required feature bits {bits:#x}"),
            AttachError::Geometry(e) => write!(f, "bad geometry: {e}"),
            AttachError::Layout {
                field,
                stored,
                expected,
            } => write!(
                f,
                "header field at {field:#x} holds {stored:#x}, the geometry gives {expected:#x}"
            ),
        }
    }
}

impl From<GeometryError> for AttachError {
    fn from(e: GeometryError) -> Self {
        AttachError::Geometry(e)
    }
}

/// The u32 fields between VERSION and CHECKSUM, in order, for one layout.
fn fields(layout: &Layout, features: u32) -> [(usize, u64); 12] {
    let g = layout.geometry;
    [
        (field::VERSION, VERSION.into()),
        (field::FEATURES, features.into()),
        (field::ENGINES, g.engines.into()),
        (field::RING_ENTRIES, g.ring_entries.into()),
        (field::SLOT_BYTES, g.slot_bytes.into()),
        (field::LANES, g.lanes.into()),
        (field::REGION_BYTES, layout.total as u64),
        (field::BOOT_CONFIG_OFFSET, BOOT_CONFIG_OFFSET as u64),
        (field::BOOT_CONFIG_BYTES, BOOT_CONFIG_BYTES as u64),
        (field::CONTROL_OFFSET, CONTROL_OFFSET as u64),
        (field::DESCRIPTORS_OFFSET, layout.descriptors as u64),
        (field::SLOTS_OFFSET, layout.slots as u64),
    ]
}

/// Reads header bytes 0x08..0x3C (little-endian words, Relaxed after the magic's Acquire) and
/// returns their CRC-32.
fn checksum_of_stored(region: &Region) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for offset in (field::VERSION..field::CHECKSUM).step_by(4) {
        let word = u32::from_le(region.u32_at(offset).load(Ordering::Relaxed));
        hasher.update(&word.to_le_bytes());
    }
    hasher.finalize()
}

/// Host side: zeroes the header, control blocks and descriptors, writes the header for `layout`,
/// marks the host Ready and finally stores the magic (Release). The region must hold
/// `layout.total` bytes (the caller checked).
pub(crate) fn initialise(region: &Region, layout: &Layout) {
    // Whoever attaches first sees no magic until everything below is written.
    region.u64_at(field::MAGIC).store(0, Ordering::Relaxed);
    for offset in (8..HEADER_BYTES).step_by(4) {
        region.u32_at(offset).store(0, Ordering::Relaxed);
    }
    // Control blocks and descriptors: indices start at 0.
    for offset in (CONTROL_OFFSET..layout.slots).step_by(4) {
        region.u32_at(offset).store(0, Ordering::Relaxed);
    }
    for (offset, value) in fields(layout, KNOWN_FEATURES) {
        if offset == field::REGION_BYTES {
            region
                .u64_at(offset)
                .store(value.to_le(), Ordering::Relaxed);
        } else {
            region
                .u32_at(offset)
                .store((value as u32).to_le(), Ordering::Relaxed);
        }
    }
    let checksum = checksum_of_stored(region);
    region
        .u32_at(field::CHECKSUM)
        .store(checksum.to_le(), Ordering::Relaxed);
    set_state(region, Role::Host, SideState::Ready);
    // H1: Release, pairs with H2 (the Acquire in `validate`): every header, control-block and
    // descriptor store above is visible to whoever sees the magic.
    region
        .u64_at(field::MAGIC)
        .store(MAGIC.to_le(), Ordering::Release);
}

/// Validates the header of `region` and returns the layout it describes.
pub(crate) fn validate(region: &Region) -> Result<Layout, AttachError> {
    if region.len() < HEADER_BYTES {
        return Err(AttachError::TooSmall {
            len: region.len(),
            need: HEADER_BYTES,
        });
    }
    // H2: Acquire, pairs with H1 (the host's Release of the magic in `initialise`).
    let magic = u64::from_le(region.u64_at(field::MAGIC).load(Ordering::Acquire));
    if magic != MAGIC {
        return Err(AttachError::Magic(magic));
    }
    let read = |offset: usize| u32::from_le(region.u32_at(offset).load(Ordering::Relaxed));
    let version = read(field::VERSION);
    if version != VERSION {
        return Err(AttachError::Version(version));
    }
    let stored = read(field::CHECKSUM);
    let computed = checksum_of_stored(region);
    if stored != computed {
        return Err(AttachError::Checksum { stored, computed });
    }
    let features = read(field::FEATURES);
    if features & !KNOWN_FEATURES != 0 {
        return Err(AttachError::Features(features & !KNOWN_FEATURES));
    }
    let geometry = Geometry {
        engines: read(field::ENGINES),
        ring_entries: read(field::RING_ENTRIES),
        slot_bytes: read(field::SLOT_BYTES),
        lanes: read(field::LANES),
    };
    geometry.validate()?;
    let layout = Layout::of(geometry);
    for (offset, expected) in fields(&layout, features) {
        let stored = if offset == field::REGION_BYTES {
            u64::from_le(region.u64_at(offset).load(Ordering::Relaxed))
        } else {
            read(offset).into()
        };
        if stored != expected {
            return Err(AttachError::Layout {
                field: offset,
                stored,
                expected,
            });
        }
    }
    if region.len() < layout.total {
        return Err(AttachError::TooSmall {
            len: region.len(),
            need: layout.total,
        });
    }
    Ok(layout)
}

/// Stores a side's state word.
pub(crate) fn set_state(region: &Region, role: Role, state: SideState) {
    region
        .u32_at(role.line() + field::STATE)
        .store(state.code().to_le(), Ordering::Release);
}

/// Loads a side's state word.
pub(crate) fn state(region: &Region, role: Role) -> SideState {
    SideState::from_code(u32::from_le(
        region
            .u32_at(role.line() + field::STATE)
            .load(Ordering::Acquire),
    ))
}

/// Stores a side's waiting word. Relaxed: the caller orders it with a SeqCst fence (W1, see
/// `notify`).
pub(crate) fn set_waiting(region: &Region, role: Role, word: u32) {
    region
        .u32_at(role.line() + field::WAITING)
        .store(word.to_le(), Ordering::Relaxed);
}

/// Loads a side's waiting word. Relaxed: the caller orders it with a SeqCst fence (W2).
pub(crate) fn waiting(region: &Region, role: Role) -> u32 {
    u32::from_le(
        region
            .u32_at(role.line() + field::WAITING)
            .load(Ordering::Relaxed),
    )
}

/// Adds one to this side's heartbeat counter (only this side writes it, so load + store).
pub(crate) fn beat(region: &Region, role: Role) -> u64 {
    let cell = region.u64_at(role.line() + field::HEARTBEAT);
    let next = u64::from_le(cell.load(Ordering::Relaxed)).wrapping_add(1);
    // Relaxed: the counter orders nothing; the peer only checks that it moves.
    cell.store(next.to_le(), Ordering::Relaxed);
    next
}

/// Loads a side's heartbeat counter.
pub(crate) fn heartbeat(region: &Region, role: Role) -> u64 {
    u64::from_le(
        region
            .u64_at(role.line() + field::HEARTBEAT)
            .load(Ordering::Relaxed),
    )
}
