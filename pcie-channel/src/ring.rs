//! The index protocol of one engine ring: free-running producer and consumer indices, credits,
//! and the Acquire/Release pairs that hand entries from one side to the other.
//!
//! This module moves no bytes: it says which ring positions a side may touch. It is generic
//! over the index cell so that the loom model (`tests/loom_ring.rs`) checks this very code.
//!
//! Memory-ordering pairs (docs/pcie-channel.md §5):
//! - P1 producer `publish` stores the producer index with Release; it pairs with C1, the
//!   consumer's Acquire load in `available`: descriptor and slot writes before P1 are visible
//!   after C1.
//! - C2 consumer `release_to` stores the consumer index with Release; it pairs with P2, the
//!   producer's Acquire load in `refresh_credits`: the consumer's reads of released slots happen
//!   before the producer overwrites them.
//!
//! Windows: each side's copy of the other's index only moves forward. A producer index read is
//! accepted in `last read ..= consumer + entries`, a consumer index in `last read ..= last
//! published`, all in wrapping arithmetic; anything else is a [`RingError`]. Going backwards
//! is refused as well as jumping too far: the consumer has already looked at the entries below
//! the last producer index it read, and would otherwise walk about 2^32 positions (reading
//! stale entries) to get back to a lower one.

use core::fmt;
use core::sync::atomic::Ordering;

/// A shared 32-bit index cell: `core`'s `AtomicU32` in the region, loom's in the model.
pub trait IndexCell {
    /// Atomic load.
    fn load(&self, order: Ordering) -> u32;
    /// Atomic store.
    fn store(&self, value: u32, order: Ordering);
}

impl IndexCell for core::sync::atomic::AtomicU32 {
    #[inline(always)]
    fn load(&self, order: Ordering) -> u32 {
        // Indices are little-endian in the region (docs/pcie-channel.md §1).
        u32::from_le(core::sync::atomic::AtomicU32::load(self, order))
    }
    #[inline(always)]
    fn store(&self, value: u32, order: Ordering) {
        core::sync::atomic::AtomicU32::store(self, value.to_le(), order)
    }
}

#[cfg(loom)]
impl IndexCell for loom::sync::atomic::AtomicU32 {
    fn load(&self, order: Ordering) -> u32 {
        loom::sync::atomic::AtomicU32::load(self, order)
    }
    fn store(&self, value: u32, order: Ordering) {
        loom::sync::atomic::AtomicU32::store(self, value, order)
    }
}

/// The peer broke the index protocol: the ring can no longer be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The producer index claims more than a ring's worth of unconsumed entries (or went
    /// backwards past the consumer).
    ProducerIndex {
        /// Value read.
        producer: u32,
        /// Our consumer index.
        consumer: u32,
    },
    /// The producer index went backwards: below the value read before, though not below our
    /// consumer index.
    ProducerRewound {
        /// Value read.
        producer: u32,
        /// Value read before.
        previous: u32,
    },
    /// The consumer index is ahead of what we published or more than a ring behind it.
    ConsumerIndex {
        /// Our producer index (last published).
        producer: u32,
        /// Value read.
        consumer: u32,
    },
    /// The consumer index went backwards: below the value read before, though not more than
    /// a ring behind our producer index.
    ConsumerRewound {
        /// Value read.
        consumer: u32,
        /// Value read before.
        previous: u32,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::ProducerIndex { producer, consumer } => write!(
                f,
                "peer producer index {producer} is out of the window of consumer index {consumer}"
            ),
            RingError::ProducerRewound { producer, previous } => write!(
                f,
                "peer producer index went back from {previous} to {producer}"
            ),
            RingError::ConsumerIndex { producer, consumer } => write!(
                f,
                "peer consumer index {consumer} is out of the window of producer index {producer}"
            ),
            RingError::ConsumerRewound { consumer, previous } => write!(
                f,
                "peer consumer index went back from {previous} to {consumer}"
            ),
        }
    }
}

/// The producer's side of one ring. Keeps its own producer index (never read back from shared
/// memory) and a cached copy of the consumer's.
#[derive(Debug)]
pub struct ProducerIndex<'a, C: IndexCell> {
    producer: &'a C,
    consumer: &'a C,
    entries: u32,
    /// Next position to fill (free-running).
    head: u32,
    /// Last published position.
    published: u32,
    /// Consumer index as last read and validated.
    tail: u32,
}

impl<'a, C: IndexCell> ProducerIndex<'a, C> {
    /// Takes over a ring whose producer index is `start` (0 on a fresh ring), reading the
    /// consumer index once.
    pub fn new(
        producer: &'a C,
        consumer: &'a C,
        entries: u32,
        start: u32,
    ) -> Result<Self, RingError> {
        let mut ring = ProducerIndex {
            producer,
            consumer,
            entries,
            head: start,
            published: start,
            tail: start.wrapping_sub(entries),
        };
        ring.refresh_credits()?;
        Ok(ring)
    }

    /// Positions that can be claimed without looking at the consumer index again.
    #[inline]
    pub fn cached_credits(&self) -> u32 {
        self.entries - self.head.wrapping_sub(self.tail)
    }

    /// Reads the consumer index (once) and returns the free positions. The index must lie in
    /// `tail ..= published` (the value read before up to what we published): a consumer can
    /// release neither an entry it has not been given nor one it released already.
    #[inline]
    pub fn refresh_credits(&mut self) -> Result<u32, RingError> {
        // P2: Acquire, pairs with C2 (the consumer's Release in `release_to`): the consumer
        // has finished reading every slot below this index before we may overwrite it.
        let tail = self.consumer.load(Ordering::Acquire);
        // Invariant: tail <= published <= head <= tail + entries (wrapping, from `self.tail`).
        if tail.wrapping_sub(self.tail) > self.published.wrapping_sub(self.tail) {
            return Err(self.consumer_error(tail));
        }
        self.tail = tail;
        Ok(self.cached_credits())
    }

    /// Why a consumer index outside the window is refused: behind the one read before (but
    /// within a ring of our head), or else out of the window altogether (more than a ring
    /// behind, or ahead of what we published).
    #[cold]
    fn consumer_error(&self, tail: u32) -> RingError {
        let behind = tail.wrapping_sub(self.tail) > self.head.wrapping_sub(self.tail);
        if behind && self.head.wrapping_sub(tail) <= self.entries {
            RingError::ConsumerRewound {
                consumer: tail,
                previous: self.tail,
            }
        } else {
            RingError::ConsumerIndex {
                producer: self.published,
                consumer: tail,
            }
        }
    }

    /// Free positions, reading the consumer index only when the cache says fewer than `want`.
    #[inline]
    pub fn credits(&mut self, want: u32) -> Result<u32, RingError> {
        let cached = self.cached_credits();
        if cached >= want {
            Ok(cached)
        } else {
            self.refresh_credits()
        }
    }

    /// Claims the next position; the caller fills its descriptor and slot, then publishes.
    /// Returns `None` when no credit is cached (call [`Self::credits`] first).
    #[inline]
    pub fn claim(&mut self) -> Option<u32> {
        if self.cached_credits() == 0 {
            return None;
        }
        let position = self.head;
        self.head = self.head.wrapping_add(1);
        Some(position)
    }

    /// Gives back the most recent unpublished claim (an abandoned reservation).
    #[inline]
    pub fn unclaim(&mut self) {
        if self.head != self.published {
            self.head = self.head.wrapping_sub(1);
        }
    }

    /// Position the next claim returns.
    #[inline]
    pub fn head(&self) -> u32 {
        self.head
    }

    /// Whether claimed positions await publication.
    #[inline]
    pub fn has_unpublished(&self) -> bool {
        self.head != self.published
    }

    /// Makes every claimed position visible to the consumer; returns whether there was any.
    #[inline]
    pub fn publish(&mut self) -> bool {
        if self.head == self.published {
            return false;
        }
        // P1: Release, pairs with C1 (the consumer's Acquire in `available`): descriptor and
        // slot writes of every claimed position happen before the consumer reads them.
        self.producer.store(self.head, Ordering::Release);
        self.published = self.head;
        true
    }
}

/// The consumer's side of one ring. Keeps its own consumer index and the producer index read
/// at the last [`ConsumerIndex::available`].
#[derive(Debug)]
pub struct ConsumerIndex<'a, C: IndexCell> {
    producer: &'a C,
    consumer: &'a C,
    entries: u32,
    /// Oldest position not yet released (free-running).
    tail: u32,
    /// Last published consumer index.
    published: u32,
    /// Producer index as last read and validated.
    head: u32,
}

impl<'a, C: IndexCell> ConsumerIndex<'a, C> {
    /// Takes over a ring whose consumer index is `start` (0 on a fresh ring).
    pub fn new(producer: &'a C, consumer: &'a C, entries: u32, start: u32) -> Self {
        ConsumerIndex {
            producer,
            consumer,
            entries,
            tail: start,
            published: start,
            head: start,
        }
    }

    /// Reads the producer index (once) and returns the position one past the last visible
    /// entry; entries in `tail()..head` may be read. The index must lie in `head() ..= tail() +
    /// entries`: never below the value read before (the consumer may already have looked past
    /// it), never more than a ring ahead of the consumer index.
    #[inline]
    pub fn available(&mut self) -> Result<u32, RingError> {
        // C1: Acquire, pairs with P1 (the producer's Release in `publish`): every descriptor
        // and slot below this index is fully written.
        let head = self.producer.load(Ordering::Acquire);
        // Invariant: tail <= self.head <= tail + entries (wrapping), so the room is 0..=entries.
        // An index that has not moved (an idle ring, what a spinning receiver sees) is in it.
        let room = self.tail.wrapping_add(self.entries).wrapping_sub(self.head);
        if head != self.head && head.wrapping_sub(self.head) > room {
            return Err(self.producer_error(head));
        }
        self.head = head;
        Ok(head)
    }

    /// Why a producer index outside the window is refused: behind the one read before (but not
    /// behind the consumer index), or else out of the window altogether.
    #[cold]
    fn producer_error(&self, head: u32) -> RingError {
        if head.wrapping_sub(self.tail) <= self.entries {
            RingError::ProducerRewound {
                producer: head,
                previous: self.head,
            }
        } else {
            RingError::ProducerIndex {
                producer: head,
                consumer: self.tail,
            }
        }
    }

    /// Producer index as last read by [`Self::available`].
    #[inline]
    pub fn head(&self) -> u32 {
        self.head
    }

    /// Oldest unreleased position.
    #[inline]
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// Ring depth.
    #[inline]
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// Releases every position below `position` (locally; [`Self::publish`] tells the producer).
    /// `position` must lie in `tail()..=head()`; anything else is ignored.
    #[inline]
    pub fn release_to(&mut self, position: u32) {
        if position.wrapping_sub(self.tail) <= self.head.wrapping_sub(self.tail) {
            self.tail = position;
        }
    }

    /// Returns released positions to the producer as credits.
    #[inline]
    pub fn publish(&mut self) {
        if self.tail != self.published {
            // C2: Release, pairs with P2 (the producer's Acquire in `refresh_credits`): our reads
            // of the released slots happen before the producer reuses them.
            self.consumer.store(self.tail, Ordering::Release);
            self.published = self.tail;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU32;

    #[test]
    fn credits_follow_the_consumer_and_wrap() {
        let (p, c) = (AtomicU32::new(u32::MAX - 2), AtomicU32::new(u32::MAX - 2));
        let mut tx = ProducerIndex::new(&p, &c, 4, u32::MAX - 2).unwrap();
        let mut rx = ConsumerIndex::new(&p, &c, 4, u32::MAX - 2);
        assert_eq!(tx.credits(1).unwrap(), 4);
        for _ in 0..4 {
            tx.claim().unwrap();
        }
        assert_eq!(tx.claim(), None);
        assert_eq!(
            rx.available().unwrap(),
            u32::MAX - 2,
            "nothing published yet"
        );
        tx.publish();
        assert_eq!(rx.available().unwrap(), 1, "wrapped past u32::MAX");
        rx.release_to(u32::MAX);
        rx.publish();
        assert_eq!(tx.credits(1).unwrap(), 2);
    }

    #[test]
    fn out_of_window_indices_are_errors_not_panics() {
        let (p, c) = (AtomicU32::new(0), AtomicU32::new(0));
        let mut tx = ProducerIndex::new(&p, &c, 8, 0).unwrap();
        let mut rx = ConsumerIndex::new(&p, &c, 8, 0);
        p.store(9, Ordering::Relaxed);
        assert!(matches!(
            rx.available(),
            Err(RingError::ProducerIndex { .. })
        ));
        c.store(1, Ordering::Relaxed);
        assert!(matches!(
            tx.refresh_credits(),
            Err(RingError::ConsumerIndex { .. })
        ));
        // Taking over a ring: a consumer index a full ring behind is legal (no credit), one
        // more is not.
        c.store(0u32.wrapping_sub(8), Ordering::Relaxed);
        let mut tx = ProducerIndex::new(&p, &c, 8, 0).unwrap();
        assert_eq!(tx.refresh_credits(), Ok(0));
        c.store(0u32.wrapping_sub(9), Ordering::Relaxed);
        assert!(tx.refresh_credits().is_err());
        assert!(ProducerIndex::new(&p, &c, 8, 0).is_err());
    }

    #[test]
    fn a_producer_index_only_moves_forward() {
        // Across the wrap of the free-running counter.
        let start = u32::MAX - 1;
        let (p, c) = (AtomicU32::new(start), AtomicU32::new(start));
        let mut rx = ConsumerIndex::new(&p, &c, 8, start);
        p.store(start.wrapping_add(4), Ordering::Relaxed);
        assert_eq!(rx.available(), Ok(2));
        assert_eq!(rx.available(), Ok(2), "the same value again is fine");
        // Back to 1 or to the consumer index: still within a ring of it, but rewound.
        for back in [1, start] {
            p.store(back, Ordering::Relaxed);
            assert_eq!(
                rx.available(),
                Err(RingError::ProducerRewound {
                    producer: back,
                    previous: 2
                })
            );
            assert_eq!(rx.head(), 2, "the refused value is not taken");
        }
        // Below the consumer index, or more than a ring ahead of it: out of the window.
        for out in [start - 1, start.wrapping_add(9)] {
            p.store(out, Ordering::Relaxed);
            assert_eq!(
                rx.available(),
                Err(RingError::ProducerIndex {
                    producer: out,
                    consumer: start
                })
            );
        }
        // A full ring ahead of the consumer index is the far edge of the window.
        p.store(start.wrapping_add(8), Ordering::Relaxed);
        assert_eq!(rx.available(), Ok(6));
        // Releasing moves the window: the edge moves with the consumer index.
        rx.release_to(start.wrapping_add(3));
        p.store(start.wrapping_add(11), Ordering::Relaxed);
        assert_eq!(rx.available(), Ok(9));
    }

    #[test]
    fn a_consumer_index_only_moves_forward_and_never_past_what_was_published() {
        let (p, c) = (AtomicU32::new(0), AtomicU32::new(0));
        let mut tx = ProducerIndex::new(&p, &c, 8, 0).unwrap();
        for _ in 0..6 {
            tx.claim().unwrap();
        }
        tx.publish();
        tx.claim().unwrap();
        c.store(4, Ordering::Relaxed);
        assert_eq!(tx.refresh_credits(), Ok(5));
        c.store(3, Ordering::Relaxed);
        assert_eq!(
            tx.refresh_credits(),
            Err(RingError::ConsumerRewound {
                consumer: 3,
                previous: 4
            })
        );
        assert_eq!(tx.cached_credits(), 5, "the refused value is not taken");
        // Claimed but not published: the consumer cannot have been given it.
        c.store(7, Ordering::Relaxed);
        assert_eq!(
            tx.refresh_credits(),
            Err(RingError::ConsumerIndex {
                producer: 6,
                consumer: 7
            })
        );
        c.store(6, Ordering::Relaxed);
        assert_eq!(tx.refresh_credits(), Ok(7));
    }

    #[test]
    fn release_outside_the_window_is_ignored() {
        let (p, c) = (AtomicU32::new(3), AtomicU32::new(0));
        let mut rx = ConsumerIndex::new(&p, &c, 8, 0);
        rx.available().unwrap();
        rx.release_to(5);
        assert_eq!(rx.tail(), 0);
        rx.release_to(3);
        assert_eq!(rx.tail(), 3);
    }
}
