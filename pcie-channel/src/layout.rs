//! The region's geometry and the byte offset of every structure in it (docs/pcie-channel.md §2).
//!
//! Everything here is pure arithmetic on a validated [`Geometry`]; nothing touches memory. Both
//! sides compute the layout from the geometry alone and never trust offsets read from the peer.

use core::fmt;

/// Largest number of engines (descriptor rings) per direction.
pub const MAX_ENGINES: usize = 16;
/// Largest number of descriptors in one engine ring (the next-segment field is 16 bits).
pub const MAX_RING_ENTRIES: u32 = 4096;
/// Smallest number of descriptors in one engine ring.
pub const MIN_RING_ENTRIES: u32 = 2;
/// Largest buffer slot (a segment's length travels in 16 bits).
pub const MAX_SLOT_BYTES: u32 = 32 * 1024;
/// Smallest buffer slot.
pub const MIN_SLOT_BYTES: u32 = 64;
/// Largest number of ordering lanes (flows are hashed onto lanes).
pub const MAX_LANES: u32 = 1024;
/// Largest number of segments one message is split into.
pub const MAX_SEGMENTS: usize = 255;

/// Bytes of the header page at offset 0.
pub const HEADER_BYTES: usize = 0x1000;
/// Offset of the boot configuration area.
pub const BOOT_CONFIG_OFFSET: usize = 0x1000;
/// Bytes of the boot configuration area (its own 16-byte header included).
pub const BOOT_CONFIG_BYTES: usize = 0x2000;
/// Offset of the first ring control block.
pub const CONTROL_OFFSET: usize = BOOT_CONFIG_OFFSET + BOOT_CONFIG_BYTES;
/// Bytes of one ring control block: the producer's cache line, then the consumer's.
pub const CONTROL_BYTES: usize = 2 * CACHE_LINE;
/// Offset of the consumer index inside a control block.
pub const CONSUMER_LINE: usize = CACHE_LINE;
/// The cache-line size the layout separates writers by (64 on x86-64 and Arm A-profile).
pub const CACHE_LINE: usize = 64;
/// Bytes of one descriptor.
pub const DESCRIPTOR_BYTES: usize = 16;
/// Alignment of the slot area (a page, so a BAR mapping can map slots alone).
pub const SLOT_AREA_ALIGN: usize = 0x1000;

/// Which way messages travel on a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Host produces, NIC consumes (replies, commands). Index 0 in the layout.
    ToNic = 0,
    /// NIC produces, host consumes (requests, heartbeats). Index 1 in the layout.
    ToHost = 1,
}

impl Direction {
    /// Both directions, in layout order.
    pub const ALL: [Direction; 2] = [Direction::ToNic, Direction::ToHost];

    /// Position of this direction's rings in the layout.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// The shape of a channel: how many engines, how deep their rings, how large their slots.
///
/// Both directions share one geometry. Every ring entry owns one slot of `slot_bytes`, so the
/// buffer pool of an engine is `ring_entries * slot_bytes` bytes and credits are ring entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Engines (descriptor rings) per direction, 1..=16.
    pub engines: u32,
    /// Descriptors per ring, a power of two in 2..=4096.
    pub ring_entries: u32,
    /// Bytes per buffer slot, a power of two in 64..=32768.
    pub slot_bytes: u32,
    /// Ordering lanes, a power of two in 1..=1024; flow `f` is ordered on lane `f % lanes`.
    pub lanes: u32,
}

impl Geometry {
    /// Eight engines (as on LiquidIO), 256 entries of 2 KiB each, 256 lanes: a region of
    /// `0x81_4000` bytes (8.1 MiB, docs/pcie-channel.md section 2), which a 16 MiB PCI BAR holds.
    pub const DEFAULT: Geometry = Geometry {
        engines: 8,
        ring_entries: 256,
        slot_bytes: 2048,
        lanes: 256,
    };

    /// Checks every bound of the specification.
    pub const fn validate(&self) -> Result<(), GeometryError> {
        if self.engines == 0 || self.engines as usize > MAX_ENGINES {
            return Err(GeometryError::Engines(self.engines));
        }
        if !self.ring_entries.is_power_of_two()
            || self.ring_entries < MIN_RING_ENTRIES
            || self.ring_entries > MAX_RING_ENTRIES
        {
            return Err(GeometryError::RingEntries(self.ring_entries));
        }
        if !self.slot_bytes.is_power_of_two()
            || self.slot_bytes < MIN_SLOT_BYTES
            || self.slot_bytes > MAX_SLOT_BYTES
        {
            return Err(GeometryError::SlotBytes(self.slot_bytes));
        }
        if !self.lanes.is_power_of_two() || self.lanes > MAX_LANES {
            return Err(GeometryError::Lanes(self.lanes));
        }
        Ok(())
    }

    /// The smallest geometry-compatible region size in bytes.
    pub const fn region_bytes(&self) -> usize {
        Layout::of(*self).total
    }

    /// The largest message this geometry carries: 255 segments, and never more slots than one
    /// direction has (so a sender owning every engine can always send it into an empty channel).
    pub const fn max_message_bytes(&self) -> usize {
        let slots = (self.engines * self.ring_entries) as usize;
        let segments = if slots < MAX_SEGMENTS {
            slots
        } else {
            MAX_SEGMENTS
        };
        segments * self.slot_bytes as usize
    }
}

impl Default for Geometry {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A geometry field out of the specification's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeometryError {
    /// Engine count not in 1..=16.
    Engines(u32),
    /// Ring entries not a power of two in 2..=4096.
    RingEntries(u32),
    /// Slot size not a power of two in 64..=32768.
    SlotBytes(u32),
    /// Lane count not a power of two in 1..=1024.
    Lanes(u32),
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeometryError::Engines(n) => write!(f, "engine count {n} not in 1..=16"),
            GeometryError::RingEntries(n) => {
                write!(f, "ring entries {n} not a power of two in 2..=4096")
            }
            GeometryError::SlotBytes(n) => {
                write!(f, "slot size {n} not a power of two in 64..=32768")
            }
            GeometryError::Lanes(n) => write!(f, "lane count {n} not a power of two in 1..=1024"),
        }
    }
}

/// Byte offsets of the structures of one geometry (all relative to the region's base).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The geometry this layout was computed from.
    pub geometry: Geometry,
    /// First descriptor array.
    pub descriptors: usize,
    /// First buffer slot.
    pub slots: usize,
    /// Bytes the region needs.
    pub total: usize,
}

const fn align_up(value: usize, align: usize) -> usize {
    (value + align - 1) & !(align - 1)
}

impl Layout {
    /// The layout of a geometry. The geometry must be valid ([`Geometry::validate`]); the
    /// arithmetic cannot overflow for any valid geometry (at most 2 * 16 * 4096 * 32 KiB).
    pub const fn of(geometry: Geometry) -> Layout {
        let rings = 2 * geometry.engines as usize;
        let entries = geometry.ring_entries as usize;
        let descriptors = CONTROL_OFFSET + rings * CONTROL_BYTES;
        let slots = align_up(
            descriptors + rings * Self::descriptor_stride(entries),
            SLOT_AREA_ALIGN,
        );
        let total = slots + rings * entries * geometry.slot_bytes as usize;
        Layout {
            geometry,
            descriptors,
            slots,
            total,
        }
    }

    /// Bytes from one ring's descriptor array to the next: whole cache lines.
    const fn descriptor_stride(entries: usize) -> usize {
        align_up(entries * DESCRIPTOR_BYTES, CACHE_LINE)
    }

    /// Ring number of (direction, engine): direction-major.
    const fn ring(&self, direction: Direction, engine: usize) -> usize {
        direction.index() * self.geometry.engines as usize + engine
    }

    /// Offset of a ring's control block (producer index at +0, consumer index at +64).
    pub const fn control(&self, direction: Direction, engine: usize) -> usize {
        CONTROL_OFFSET + self.ring(direction, engine) * CONTROL_BYTES
    }

    /// Offset of a ring's descriptor array.
    pub const fn descriptor_array(&self, direction: Direction, engine: usize) -> usize {
        self.descriptors
            + self.ring(direction, engine)
                * Self::descriptor_stride(self.geometry.ring_entries as usize)
    }

    /// Offset of a ring's first slot.
    pub const fn slot_array(&self, direction: Direction, engine: usize) -> usize {
        self.slots
            + self.ring(direction, engine)
                * self.geometry.ring_entries as usize
                * self.geometry.slot_bytes as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_geometry_layout_is_the_documented_one() {
        let layout = Layout::of(Geometry::DEFAULT);
        // docs/pcie-channel.md §2, example geometry (8 engines, 256 x 2 KiB, 256 lanes).
        assert_eq!(CONTROL_OFFSET, 0x3000);
        assert_eq!(layout.control(Direction::ToNic, 0), 0x3000);
        assert_eq!(layout.control(Direction::ToNic, 7), 0x3380);
        assert_eq!(layout.control(Direction::ToHost, 0), 0x3400);
        assert_eq!(layout.descriptors, 0x3800);
        assert_eq!(
            layout.descriptor_array(Direction::ToHost, 0),
            0x3800 + 8 * 0x1000
        );
        assert_eq!(layout.slots, 0x14000);
        assert_eq!(layout.slot_array(Direction::ToNic, 1), 0x14000 + 0x8_0000);
        assert_eq!(layout.total, 0x14000 + 16 * 0x8_0000);
        assert_eq!(Geometry::DEFAULT.region_bytes(), 0x81_4000);
    }

    #[test]
    fn every_structure_is_cache_line_aligned_and_inside_the_region() {
        for engines in [1, 3, 16] {
            for ring_entries in [2, 64, 4096] {
                for slot_bytes in [64, 2048, 32768] {
                    let g = Geometry {
                        engines,
                        ring_entries,
                        slot_bytes,
                        lanes: 1,
                    };
                    g.validate().unwrap();
                    let l = Layout::of(g);
                    for d in Direction::ALL {
                        for e in 0..engines as usize {
                            assert_eq!(l.control(d, e) % CACHE_LINE, 0);
                            assert_eq!(l.descriptor_array(d, e) % CACHE_LINE, 0);
                            assert_eq!(l.slot_array(d, e) % CACHE_LINE, 0);
                            assert!(l.control(d, e) + CONTROL_BYTES <= l.descriptors);
                            assert!(
                                l.descriptor_array(d, e) + ring_entries as usize * 16 <= l.slots
                            );
                            assert!(
                                l.slot_array(d, e) + (ring_entries * slot_bytes) as usize
                                    <= l.total
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn out_of_bounds_geometries_are_refused() {
        let ok = Geometry::DEFAULT;
        let bad = [
            Geometry { engines: 0, ..ok },
            Geometry { engines: 17, ..ok },
            Geometry {
                ring_entries: 1,
                ..ok
            },
            Geometry {
                ring_entries: 100,
                ..ok
            },
            Geometry {
                ring_entries: 8192,
                ..ok
            },
            Geometry {
                slot_bytes: 32,
                ..ok
            },
            Geometry {
                slot_bytes: 65536,
                ..ok
            },
            Geometry { lanes: 0, ..ok },
            Geometry { lanes: 2048, ..ok },
            Geometry { lanes: 3, ..ok },
        ];
        for g in bad {
            assert!(g.validate().is_err(), "{g:?}");
        }
    }
}
