//! Helpers shared by the integration tests (each test binary uses a part of them).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use pcie_channel::descriptor::Descriptor;
use pcie_channel::layout::{Layout, CONSUMER_LINE};
use pcie_channel::{Direction, Geometry, Loopback, Receiver};

/// Four engines of eight entries of 256 bytes: rings that fill quickly. A quarter of a ring
/// (the publication and credit-return interval) is two entries.
pub const SMALL: Geometry = Geometry {
    engines: 4,
    ring_entries: 8,
    slot_bytes: 256,
    lanes: 16,
};

/// Receives everything that is there: (flow, bytes) in delivery order.
pub fn drain(rx: &mut Receiver<'_>) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    while rx
        .poll(64, |m| {
            let mut buf = vec![0; m.len()];
            m.copy_to(&mut buf).unwrap();
            out.push((m.flow(), buf));
        })
        .unwrap()
        > 0
    {}
    out
}

/// CRC-32 (IEEE, reflected, as zlib), bit by bit: independent of the crate's.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The other side's raw view of a loopback region, as a second process (or a hostile peer)
/// sees it: 32-bit words it loads and stores atomically.
pub struct RawPeer<'a> {
    words: &'a [AtomicU32],
    pub layout: Layout,
}

impl<'a> RawPeer<'a> {
    pub fn new(lo: &'a Loopback) -> RawPeer<'a> {
        // SAFETY: the loopback's region is `len` bytes, page-aligned and alive as long as `lo`;
        // viewing it as atomics is how a second process sees it, and every other access to it
        // is atomic or a raw copy.
        let words =
            unsafe { std::slice::from_raw_parts(lo.base().cast::<AtomicU32>(), lo.len() / 4) };
        RawPeer {
            words,
            layout: *lo.host().layout(),
        }
    }

    pub fn word(&self, offset: usize) -> &AtomicU32 {
        &self.words[offset / 4]
    }

    /// Little-endian u32 at `offset`.
    pub fn load(&self, offset: usize) -> u32 {
        u32::from_le(self.word(offset).load(Ordering::Acquire))
    }

    /// Stores a little-endian u32 at `offset` (Release, as a producer publishing).
    pub fn store(&self, offset: usize, value: u32) {
        self.word(offset).store(value.to_le(), Ordering::Release);
    }

    /// Writes `descriptor` into entry `position` of ring (`direction`, `engine`).
    pub fn write_descriptor(
        &self,
        direction: Direction,
        engine: usize,
        position: u32,
        descriptor: Descriptor,
    ) {
        let entries = self.layout.geometry.ring_entries;
        let entry =
            self.layout.descriptor_array(direction, engine) + (position % entries) as usize * 16;
        for (i, word) in descriptor.to_words().into_iter().enumerate() {
            self.store(entry + 4 * i, word);
        }
    }

    /// The descriptor in entry `position` of ring (`direction`, `engine`).
    pub fn read_descriptor(
        &self,
        direction: Direction,
        engine: usize,
        position: u32,
    ) -> Descriptor {
        let entries = self.layout.geometry.ring_entries;
        let entry =
            self.layout.descriptor_array(direction, engine) + (position % entries) as usize * 16;
        Descriptor::from_words([0, 1, 2, 3].map(|i| self.load(entry + 4 * i)))
    }

    /// Stores the producer index of ring (`direction`, `engine`).
    pub fn set_producer(&self, direction: Direction, engine: usize, value: u32) {
        self.store(self.layout.control(direction, engine), value);
    }

    /// The consumer index of ring (`direction`, `engine`).
    pub fn consumer(&self, direction: Direction, engine: usize) -> u32 {
        self.load(self.layout.control(direction, engine) + CONSUMER_LINE)
    }

    /// Bytes `range` of the region, read word by word.
    pub fn bytes(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        (range.start / 4..range.end / 4)
            .flat_map(|w| self.load(w * 4).to_le_bytes())
            .collect()
    }

    /// Stores `value` in the header field at `offset` and recomputes the header checksum, as a
    /// host writing a header of its own would.
    pub fn rewrite_header(&self, offset: usize, value: u32) {
        use pcie_channel::header::field;
        self.store(offset, value);
        let crc = crc32(&self.bytes(field::VERSION..field::CHECKSUM));
        self.store(field::CHECKSUM, crc);
    }
}
