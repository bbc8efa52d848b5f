//! The 16-byte descriptor of one segment, its encoding in four little-endian words, and the
//! checks that make a descriptor read from the peer safe to use (docs/pcie-channel.md §4).

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

/// One segment of a message as it sits in a ring entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Flow identifier (the NIC uses a 5-tuple hash); ordering holds per `flow % lanes`.
    pub flow: u32,
    /// Message sequence number on its lane (every segment carries its message's number).
    pub seq: u32,
    /// Bytes of this segment in its slot.
    pub len: u16,
    /// Position of this segment in its message, from 0.
    pub segment: u8,
    /// Segments in the message, 1..=255.
    pub segments: u8,
    /// Slot (ring index modulo the ring depth) of the next segment; 0 on the last.
    pub next_slot: u16,
    /// Engine of the next segment; 0 on the last.
    pub next_engine: u8,
    /// Reserved, 0.
    pub reserved: u8,
}

/// Why a descriptor read from the peer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DescriptorError {
    /// `segments` is 0 or `segment >= segments`.
    SegmentIndex,
    /// The length exceeds the slot, or a non-final segment does not fill its slot.
    Length,
    /// The next-segment reference names an engine or slot outside the geometry, or the
    /// segment after it is not the one the chain promises.
    Chain,
    /// The reserved byte is not 0.
    Reserved,
    /// The sequence number is outside the window of messages that can be in flight.
    Sequence,
    /// A segment whose message was already delivered or skipped (an orphan).
    Orphan,
}

impl fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DescriptorError::SegmentIndex => "segment index out of range",
            DescriptorError::Length => "segment length does not fit the slot rules",
            DescriptorError::Chain => "next-segment reference is invalid",
            DescriptorError::Reserved => "reserved descriptor byte is not zero",
            DescriptorError::Sequence => "sequence number outside the in-flight window",
            DescriptorError::Orphan => "segment of a message already delivered or skipped",
        })
    }
}

impl Descriptor {
    /// The descriptor of a message that fits one segment.
    #[inline]
    pub const fn whole(flow: u32, seq: u32, len: u16) -> Descriptor {
        Descriptor {
            flow,
            seq,
            len,
            segment: 0,
            segments: 1,
            next_slot: 0,
            next_engine: 0,
            reserved: 0,
        }
    }

    /// The four words as stored (before little-endian conversion).
    pub const fn to_words(&self) -> [u32; 4] {
        [
            self.flow,
            self.seq,
            self.len as u32 | (self.segment as u32) << 16 | (self.segments as u32) << 24,
            self.next_slot as u32 | (self.next_engine as u32) << 16 | (self.reserved as u32) << 24,
        ]
    }

    /// A descriptor from its four words.
    pub const fn from_words(words: [u32; 4]) -> Descriptor {
        Descriptor {
            flow: words[0],
            seq: words[1],
            len: words[2] as u16,
            segment: (words[2] >> 16) as u8,
            segments: (words[2] >> 24) as u8,
            next_slot: words[3] as u16,
            next_engine: (words[3] >> 16) as u8,
            reserved: (words[3] >> 24) as u8,
        }
    }

    /// The 16 bytes of the descriptor as they appear in the region.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.to_words()) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// Stores the descriptor into a ring entry (four Relaxed stores; the producer's Release
    /// publish orders them before the consumer reads).
    #[inline]
    pub(crate) fn store(&self, entry: &[AtomicU32; 4]) {
        for (cell, word) in entry.iter().zip(self.to_words()) {
            cell.store(word.to_le(), Ordering::Relaxed);
        }
    }

    /// Loads a ring entry once (four Relaxed loads; the consumer's Acquire of the producer
    /// index ordered them after the producer's stores).
    #[inline]
    pub(crate) fn load(entry: &[AtomicU32; 4]) -> Descriptor {
        Descriptor::from_words(Descriptor::load_words(entry))
    }

    /// The four words of a ring entry, loaded once (see [`Self::load`]).
    #[inline(always)]
    pub(crate) fn load_words(entry: &[AtomicU32; 4]) -> [u32; 4] {
        let w = |i: usize| u32::from_le(entry[i].load(Ordering::Relaxed));
        [w(0), w(1), w(2), w(3)]
    }

    /// Checks the fields that do not depend on other descriptors: segment numbering, length
    /// against the slot size, the chain reference against the geometry, the reserved byte.
    #[inline]
    pub fn check(
        &self,
        slot_bytes: u32,
        engines: u32,
        ring_entries: u32,
    ) -> Result<(), DescriptorError> {
        if self.segments == 0 || self.segment >= self.segments {
            return Err(DescriptorError::SegmentIndex);
        }
        if self.reserved != 0 {
            return Err(DescriptorError::Reserved);
        }
        let last = self.segment + 1 == self.segments;
        let len = u32::from(self.len);
        if len > slot_bytes || (!last && len != slot_bytes) {
            return Err(DescriptorError::Length);
        }
        let chain_ok = if last {
            self.next_engine == 0 && self.next_slot == 0
        } else {
            u32::from(self.next_engine) < engines && u32::from(self.next_slot) < ring_entries
        };
        if !chain_ok {
            return Err(DescriptorError::Chain);
        }
        Ok(())
    }

    /// Whether this is the last segment of its message.
    #[inline]
    pub fn is_last(&self) -> bool {
        self.segment.wrapping_add(1) == self.segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_bytes_match_the_spec_fixture() {
        // docs/pcie-channel.md §4: flow 0x11223344, seq 7, len 0x0800, segment 1 of 3,
        // next segment in slot 0x0102 of engine 5.
        let d = Descriptor {
            flow: 0x1122_3344,
            seq: 7,
            len: 0x0800,
            segment: 1,
            segments: 3,
            next_slot: 0x0102,
            next_engine: 5,
            reserved: 0,
        };
        assert_eq!(
            d.to_bytes(),
            [
                0x44, 0x33, 0x22, 0x11, 0x07, 0, 0, 0, 0x00, 0x08, 0x01, 0x03, 0x02, 0x01, 0x05,
                0x00
            ]
        );
        assert_eq!(Descriptor::from_words(d.to_words()), d);
        assert_eq!(core::mem::size_of::<[AtomicU32; 4]>(), 16);
    }

    #[test]
    fn checks_refuse_each_bad_field() {
        let good = Descriptor {
            flow: 1,
            seq: 0,
            len: 100,
            segment: 0,
            segments: 1,
            ..Descriptor::default()
        };
        assert_eq!(good.check(2048, 8, 256), Ok(()));
        let cases = [
            (
                Descriptor {
                    segments: 0,
                    ..good
                },
                DescriptorError::SegmentIndex,
            ),
            (
                Descriptor { segment: 1, ..good },
                DescriptorError::SegmentIndex,
            ),
            (Descriptor { len: 2049, ..good }, DescriptorError::Length),
            (
                Descriptor {
                    reserved: 1,
                    ..good
                },
                DescriptorError::Reserved,
            ),
            (
                Descriptor {
                    next_engine: 1,
                    ..good
                },
                DescriptorError::Chain,
            ),
            (
                Descriptor {
                    segments: 2,
                    len: 2048,
                    next_engine: 8,
                    ..good
                },
                DescriptorError::Chain,
            ),
            (
                Descriptor {
                    segments: 2,
                    len: 2048,
                    next_slot: 256,
                    ..good
                },
                DescriptorError::Chain,
            ),
            (
                Descriptor {
                    segments: 2,
                    ..good
                },
                DescriptorError::Length,
            ),
        ];
        for (d, want) in cases {
            assert_eq!(d.check(2048, 8, 256), Err(want), "{d:?}");
        }
    }
}
